"""Random-intercept logistic model (qicollab.stats.glmm) against lme4::glmer and known truth.

References: ``tests/stats/glmm_reference/references.json``, written by
``Rscript tests/stats/glmm_reference/references.R`` (R 4.2.2, lme4 1.1.31) with

    glmer(y ~ covariates + (1 | member), family = binomial, nAGQ = 15)
    eta <- predict(glm(y ~ covariates, family = binomial))
    glmer(y ~ 1 + offset(eta) + (1 | member), family = binomial, nAGQ = 15)

on lme4's ``cbpp`` (15 herds, expanded to 842 0/1 rows; ``cbpp.csv`` as R wrote it) and on
``simulated.csv`` (40 members, 4,793 rows; ``generate_simulated.py``, seeded). P_j is the sum of
``fitted()``, E_j the sum of ``plogis`` of the fixed part, the mode is ``ranef()``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special, stats

from qicollab.stats.glmm import RandomInterceptFit, random_intercept_logistic
from qicollab.stats.shrinkage import gamma_poisson_shrinkage

HERE = Path(__file__).with_name("glmm_reference")
REFERENCES = json.loads((HERE / "references.json").read_text())


def _cbpp() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pd.read_csv(HERE / "cbpp.csv")
    member, period, y = [], [], []
    for row in table.itertuples():
        member += [str(row.herd)] * row.size
        period += [row.period] * row.size
        y += [1] * row.incidence + [0] * (row.size - row.incidence)
    period_arr = np.asarray(period)
    design = np.column_stack([np.ones(len(y))] + [(period_arr == k) * 1.0 for k in (2, 3, 4)])
    return np.asarray(y, dtype=float), np.asarray(member), design


def _simulated() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pd.read_csv(HERE / "simulated.csv")
    design = np.column_stack([np.ones(len(table)), table["x1"], table["x2"]])
    return table["y"].to_numpy(float), table["member"].to_numpy(), design


DATA = {"cbpp": _cbpp, "simulated": _simulated}


def _fit(name: str, kind: str) -> RandomInterceptFit:
    y, member, design = DATA[name]()
    start = np.asarray(sm.Logit(y, design).fit(disp=0).params)
    if kind == "full":
        return random_intercept_logistic(y, member, design=design, start=start)
    return random_intercept_logistic(y, member, offset=design @ start)


@pytest.mark.parametrize("name", ["cbpp", "simulated"])
@pytest.mark.parametrize("kind", ["full", "offset"])
def test_agrees_with_glmer(name: str, kind: str) -> None:
    reference = REFERENCES[name][kind]
    fit = _fit(name, kind)
    frame = fit.to_frame().set_index("unit").loc[reference["member"]]
    ratio_r = np.asarray(reference["ratio"])
    # The targets, then the much closer agreement of the same model.
    assert stats.spearmanr(frame["ratio"], ratio_r).statistic >= 0.995
    assert np.max(np.abs(frame["ratio"] - ratio_r)) <= 0.07
    np.testing.assert_allclose(frame["ratio"], ratio_r, atol=1e-4)
    np.testing.assert_allclose(frame["predicted"], reference["predicted"], rtol=1e-4)
    np.testing.assert_allclose(frame["expected"], reference["expected"], rtol=1e-4)
    np.testing.assert_allclose(frame["random_effect"], reference["mode"], atol=1e-4)
    # lme4's conditional SD is the curvature at the mode; ours is the posterior SD by quadrature.
    np.testing.assert_allclose(frame["random_effect_sd"], reference["mode_sd"], atol=0.01)
    assert fit.sigma == pytest.approx(reference["sigma"], rel=1e-4)
    assert fit.log_likelihood == pytest.approx(reference["loglik"], abs=1e-4)
    np.testing.assert_allclose(fit.coefficients, list(reference["fixef"].values()), atol=1e-4)
    assert fit.converged
    assert fit.fixed_effects == ("refit" if kind == "full" else "offset")


def test_intervals_contain_the_estimate_and_widen_for_small_members() -> None:
    fit = _fit("simulated", "full")
    frame = fit.to_frame()
    assert (frame["lower"] < frame["ratio"]).all()
    assert (frame["ratio"] < frame["upper"]).all()
    width = np.log(frame["upper"] / frame["lower"])
    assert stats.spearmanr(width, frame["n"]).statistic < -0.5


def test_binning_changes_nothing_that_matters() -> None:
    y, member, design = _simulated()
    offset = design @ np.array([-0.3, 0.5, -0.4])
    coarse = random_intercept_logistic(y, member, offset=offset)
    exact = random_intercept_logistic(y, member, offset=offset, bin_width=1e-4)
    assert coarse.sigma == pytest.approx(exact.sigma, rel=1e-5)
    assert coarse.log_likelihood == pytest.approx(exact.log_likelihood, abs=1e-4)
    np.testing.assert_allclose(
        coarse.to_frame()[["ratio", "lower", "upper"]],
        exact.to_frame()[["ratio", "lower", "upper"]],
        rtol=1e-5,
    )


def _simulate(rng: np.random.Generator, sigma: float, members: int = 150) -> dict:
    """Members of 30-600 patients, outcome near 40%, one risk factor; the last member (300
    patients) has a true odds ratio of 2."""
    sizes = np.exp(rng.uniform(math.log(30), math.log(600), members)).astype(int)
    sizes[-1] = 300
    effect = rng.normal(0.0, sigma, members)
    effect[-1] = math.log(2.0)
    member = np.repeat(np.arange(members), sizes)
    x = rng.normal(0.0, 1.0, member.size)
    eta = -0.4 + 0.6 * x
    y = (rng.uniform(size=member.size) < special.expit(eta + effect[member])).astype(float)
    expected = np.bincount(member, special.expit(eta))
    true_ratio = np.bincount(member, special.expit(eta + effect[member])) / expected
    return {"y": y, "member": member, "eta": eta, "x": x, "true_ratio": true_ratio}


def test_known_truth_recovers_sigma_covers_and_shrinks_sensibly() -> None:
    """12 collaboratives of 150 members (about 23,000 patients each), true SD 0.26: sigma is
    recovered, 95% intervals cover the true P/E, shrinkage beats O/E and over-shrinks less than
    gamma-Poisson EB."""
    rng = np.random.default_rng(11)
    sigmas, covered, total = [], 0, 0
    planted_raw, planted_shrunk, planted_gamma, planted_true = [], [], [], []
    raw_error, shrunk_error = [], []
    for _ in range(12):
        data = _simulate(rng, 0.26)
        design = np.column_stack([np.ones(data["y"].size), data["x"]])
        fit = random_intercept_logistic(
            data["y"], data["member"], design=design, start=np.array([-0.4, 0.6])
        )
        frame = fit.to_frame().set_index("unit").sort_index()
        truth = data["true_ratio"]
        sigmas.append(fit.sigma)
        covered += int(np.sum((frame["lower"] <= truth) & (truth <= frame["upper"])))
        total += truth.size
        last = frame.iloc[-1]
        raw = last["observed"] / last["expected"]
        planted_raw.append(raw)
        planted_shrunk.append(last["ratio"])
        planted_true.append(truth[-1])
        gamma = gamma_poisson_shrinkage(frame["observed"], frame["expected"])
        planted_gamma.append(gamma.estimates[-1].shrunk)
        raw_error.append(np.mean((frame["observed"] / frame["expected"] - truth) ** 2))
        shrunk_error.append(np.mean((frame["ratio"] - truth) ** 2))
        # Shrinkage pulls towards 1, never past it.
        assert min(1.0, raw) <= last["ratio"] <= max(1.0, raw)
    assert abs(np.mean(sigmas) - 0.26) < 0.03
    assert max(abs(s - 0.26) for s in sigmas) < 0.1
    assert 0.92 <= covered / total <= 0.98
    # Shrinkage earns its keep: closer to the true ratios than O/E, in every collaborative.
    assert all(s < r for s, r in zip(shrunk_error, raw_error, strict=True))
    assert np.mean(shrunk_error) < 0.6 * np.mean(raw_error)
    # A real odds ratio of 2 (true P/E about 1.39 at this outcome rate) is shrunk less, and
    # nearer the truth, than by gamma-Poisson EB, whose Var(O) = E over-shrinks (issue 11).
    assert 1.25 < np.mean(planted_shrunk) < np.mean(planted_raw)
    assert np.mean(planted_gamma) < np.mean(planted_shrunk) - 0.04
    truth_planted = np.asarray(planted_true)
    assert np.mean(np.abs(planted_shrunk - truth_planted)) < np.mean(
        np.abs(planted_gamma - truth_planted)
    )


def test_no_between_member_variation_shrinks_everyone_to_one() -> None:
    rng = np.random.default_rng(5)
    data = _simulate(rng, 0.0, members=60)
    planted = data["member"] == 59  # no planted outlier here
    data["y"][planted] = (
        rng.uniform(size=planted.sum()) < special.expit(data["eta"][planted])
    ).astype(float)
    fit = random_intercept_logistic(data["y"], data["member"], offset=data["eta"])
    assert fit.sigma < 0.1
    frame = fit.to_frame()
    assert np.max(np.abs(frame["ratio"] - 1.0)) < 0.05


def test_labels_order_and_json_round_trip() -> None:
    y = np.array([1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1], dtype=float)
    units = ["b", "a", "b", "c", "a", "c", "b", "a", "c", "b", "a", "c"]
    fit = random_intercept_logistic(y, units)
    assert [u.unit for u in fit.units] == ["b", "a", "c"]
    assert [u.n for u in fit.units] == [4, 4, 4]
    again = RandomInterceptFit.from_json(json.loads(json.dumps(fit.to_json())))
    assert again == fit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y": [0, 1, 2], "units": ["a", "b", "c"]}, "row 3"),
        ({"y": [0, 1, 1], "units": ["a", "b"]}, "units has 2 values"),
        ({"y": [0, 0, 0], "units": ["a", "b", "c"]}, "no events"),
        ({"y": [0, 1, 1], "units": ["a", "b", "c"], "design": [[2.0], [1.0], [1.0]]}, "intercept"),
        ({"y": [0, 1, 1], "units": ["a", "b", "c"], "offset": [0.0, math.nan, 1.0]}, "offset"),
    ],
)
def test_bad_input_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_intercept_logistic(**kwargs)
