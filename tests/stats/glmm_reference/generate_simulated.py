"""Writes simulated.csv, the seeded data behind the glmer references (kept for provenance).

    python tests/stats/glmm_reference/generate_simulated.py

40 members of 20-400 patients (log-uniform), a binary outcome near 40% (the case where
gamma-Poisson shrinkage over-shrinks), a continuous risk factor whose mean differs between
members (so fixed effects fitted with and without member intercepts differ), a binary one, true
between-member SD 0.26 and one member ("M40", 60 patients) with a true odds ratio of 2.
"""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(20261206)
members = 40
sizes = np.exp(rng.uniform(np.log(20), np.log(400), members)).astype(int)
sizes[-1] = 60
effects = rng.normal(0.0, 0.26, members)
effects[-1] = np.log(2.0)
centre = rng.normal(0.0, 0.5, members)
rows = []
for j in range(members):
    x1 = rng.normal(centre[j], 1.0, sizes[j])
    x2 = (rng.uniform(size=sizes[j]) < 0.3).astype(int)
    eta = -0.4 + 0.5 * x1 - 0.4 * x2 + effects[j]
    y = (rng.uniform(size=sizes[j]) < 1 / (1 + np.exp(-eta))).astype(int)
    rows += [(f"M{j + 1:02d}", f"{a:.6f}", b, c) for a, b, c in zip(x1, x2, y, strict=True)]
out = Path(__file__).with_name("simulated.csv")
with out.open("w") as handle:
    handle.write("member,x1,x2,y\n")
    handle.writelines(f"{m},{a},{b},{c}\n" for m, a, b, c in rows)
