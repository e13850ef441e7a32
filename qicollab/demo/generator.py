"""Generate a realistic demo collaborative whose true hospital effects are known.

Everything is drawn from one seeded ``numpy.random.Generator``, so the same seed gives the same
collaborative on every machine. The truth (each hospital's effect per measure, the true outliers,
the hospitals that improved and when) is returned beside the data, so tests can check that the
statistics recover it.

The data-generating model, per measure m and hospital j:

* aggregate proportions: p_jt = logit^-1(logit(base_m) + u_jm + d_jm(t))
* aggregate rates: lambda_jt = base_m * exp(u_jm + d_jm(t)) per unit of exposure
* mean measures: value_jt ~ Normal(base_m * exp(u_jm + d_jm(t)), sd_m / sqrt(n_jt))
* patient-level binary outcomes: logit p_i = x_i' beta_m + u_jm
* patient-level length of stay: LOS_i ~ NegBin(mean exp(x_i' beta_m + u_jm), shape 2)

with u_jm ~ Normal(0, sigma_m) (the "in-control" spread), a few members given a fixed large
shift (true outliers), and d_jm(t) = a step of ``improvement_shift`` from the change date on for
the members that made a change, 0 otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qicollab.measures.spec import Covariate, CovariateType, OutcomeFamily, RiskModelSpec

DEFAULT_SEED = 20_240_101
FIRST_MONTH = dt.date(2023, 1, 1)
N_MONTHS = 36
#: Members that made a change start improving from this month on.
CHANGE_DATE = dt.date(2024, 7, 1)


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """A generated member organization."""

    code: str
    name: str
    org_type: str
    bed_size_band: str
    beds: int
    teaching: bool
    rurality: str
    region: str
    has_data_use_agreement: bool
    #: Relative activity: scales every denominator and case count.
    volume: float


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """A generated measure definition, in the fields of ``qicollab.measures.models.Measure``."""

    code: str
    title: str
    measure_type: str
    level: str
    direction: str
    unit: str
    multiplier: float
    numerator_definition: str
    denominator_definition: str
    description: str = ""
    exclusion_definition: str = ""
    #: On the data scale, like ``baseline`` (0.0008 events per line-day shows as 0.8 per 1,000).
    target: float | None = None
    minimum_volume: int = 0
    risk_model: RiskModelSpec | None = None
    #: Generating parameters (not stored on the measure).
    baseline: float = 0.0
    sigma: float = 0.0
    improvement_shift: float = 0.0


@dataclass(frozen=True, slots=True)
class DemoTruth:
    """What the statistics should recover."""

    seed: int
    change_date: dt.date
    #: measure code -> member code -> effect on the link scale (logit or log).
    effects: dict[str, dict[str, float]]
    #: measure code -> member codes given a large shift: "worse" / "better".
    outliers: dict[str, dict[str, str]]
    #: member codes that made a change at ``change_date`` (for the measures that improve).
    improvers: tuple[str, ...]
    #: measure code -> member code -> true O/E over the member's own cases (patient level).
    true_oe: dict[str, dict[str, float]]
    #: measure code -> the coefficients used to generate patient outcomes.
    coefficients: dict[str, dict[str, float]]
    sigmas: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form, saved beside the data."""
        return {
            "seed": self.seed,
            "change_date": self.change_date.isoformat(),
            "effects": self.effects,
            "outliers": self.outliers,
            "improvers": list(self.improvers),
            "true_oe": self.true_oe,
            "coefficients": self.coefficients,
            "sigmas": self.sigmas,
        }


@dataclass(frozen=True, slots=True)
class DemoCollaborative:
    """The generated data set: members, measures, values, patient rows and the truth."""

    members: tuple[MemberSpec, ...]
    measures: tuple[MeasureSpec, ...]
    months: tuple[dt.date, ...]
    #: member, measure, period (first of month), numerator, denominator, value
    aggregate: pd.DataFrame
    #: member, measure, year, month, sequence, case_key, outcome, then one column per covariate
    patients: pd.DataFrame
    truth: DemoTruth
    missing: tuple[tuple[str, str, dt.date], ...] = field(default=())


_PLACES = [
    "Riverside",
    "Hillcrest",
    "Lakeview",
    "Maple Grove",
    "Stonebridge",
    "Cedar Falls",
    "Brookhaven",
    "Fairmont",
    "Greenfield",
    "Harbor Point",
    "Ironwood",
    "Juniper",
    "Kingsley",
    "Linden",
    "Millbrook",
    "Northgate",
    "Oakridge",
    "Pinecrest",
    "Quarry Hill",
    "Redwood",
    "Silver Lake",
    "Thornbury",
    "Upton",
    "Valley Forge",
    "Westbrook",
    "Willow Creek",
    "Ashford",
    "Bayside",
    "Clearwater",
    "Dunmore",
    "Eastwick",
    "Foxhall",
    "Glenview",
    "Hartwell",
    "Indian Springs",
    "Jasper",
    "Kenwood",
    "Lowell",
    "Meadowlands",
    "Newport",
]
_REGIONS = ["North", "South", "East", "West"]


def _members(rng: np.random.Generator, n: int) -> tuple[MemberSpec, ...]:
    kinds = (
        # org type, teaching, rurality, beds range, volume range, label, share
        ("acute-hospital", True, "urban", (400, 900), (2.5, 4.0), "University Hospital", 0.2),
        ("acute-hospital", False, "urban", (150, 450), (1.0, 2.5), "General Hospital", 0.4),
        ("acute-hospital", False, "rural", (60, 180), (0.4, 1.0), "Community Hospital", 0.2),
        ("critical-access", False, "rural", (15, 25), (0.08, 0.2), "Critical Access Hospital", 0.2),
    )
    shares = np.array([kind[-1] for kind in kinds])
    counts = np.floor(shares * n).astype(int)
    counts[1] += n - counts.sum()
    members: list[MemberSpec] = []
    places = list(rng.permutation(_PLACES))
    index = 0
    for kind, count in zip(kinds, counts, strict=True):
        org_type, teaching, rurality, beds_range, volume_range, label, _ = kind
        for _ in range(count):
            beds = int(rng.integers(*beds_range))
            band = (
                "<100"
                if beds < 100
                else "100-299"
                if beds < 300
                else "300-499"
                if beds < 500
                else "500+"
            )
            members.append(
                MemberSpec(
                    code=f"H{index + 1:02d}",
                    name=f"{places[index % len(places)]} {label}",
                    org_type=org_type,
                    bed_size_band=band,
                    beds=beds,
                    teaching=teaching,
                    rurality=rurality,
                    region=_REGIONS[int(rng.integers(len(_REGIONS)))],
                    has_data_use_agreement=bool(rng.random() < 0.75),
                    volume=float(rng.uniform(*volume_range)),
                )
            )
            index += 1
    return tuple(members)


def _surgical_model() -> RiskModelSpec:
    return RiskModelSpec(
        outcome="died_30d",
        outcome_label="Died within 30 days of the operation",
        family=OutcomeFamily.BINOMIAL,
        covariates=(
            Covariate(
                "age_band",
                CovariateType.CATEGORICAL,
                "Age band",
                ("18-49", "50-64", "65-74", "75-84", "85-89", "90+"),
                "18-49",
            ),
            Covariate("sex", CovariateType.CATEGORICAL, "Sex", ("F", "M"), "F"),
            Covariate(
                "asa_class", CovariateType.CATEGORICAL, "ASA class", ("1", "2", "3", "4", "5"), "1"
            ),
            Covariate("diabetes", CovariateType.BINARY, "Diabetes"),
            Covariate("chf", CovariateType.BINARY, "Congestive heart failure"),
            Covariate("copd", CovariateType.BINARY, "COPD"),
            Covariate("ckd", CovariateType.BINARY, "Chronic kidney disease"),
            Covariate("emergency", CovariateType.BINARY, "Emergency admission"),
            Covariate(
                "procedure_group",
                CovariateType.CATEGORICAL,
                "Procedure group",
                ("general", "orthopaedic", "vascular", "colorectal"),
                "general",
            ),
        ),
    )


def _readmission_model() -> RiskModelSpec:
    surgical = _surgical_model()
    return RiskModelSpec(
        outcome="readmitted_30d",
        outcome_label="Readmitted within 30 days of discharge",
        family=OutcomeFamily.BINOMIAL,
        covariates=tuple(c for c in surgical.covariates if c.name != "asa_class"),
    )


def _los_model() -> RiskModelSpec:
    surgical = _surgical_model()
    return RiskModelSpec(
        outcome="los_days",
        outcome_label="Length of stay in days",
        family=OutcomeFamily.NEGBIN,
        covariates=tuple(
            c
            for c in surgical.covariates
            if c.name in {"age_band", "sex", "asa_class", "emergency", "procedure_group"}
        ),
    )


#: True coefficients (log-odds or log-rate scale) of the patient-level measures.
_COEFFICIENTS: dict[str, dict[str, float]] = {
    "SURG-MORT": {
        "intercept": -6.1,
        "age_band[50-64]": 0.45,
        "age_band[65-74]": 0.9,
        "age_band[75-84]": 1.35,
        "age_band[85-89]": 1.8,
        "age_band[90+]": 2.1,
        "sex[M]": 0.2,
        "asa_class[2]": 0.5,
        "asa_class[3]": 1.2,
        "asa_class[4]": 2.0,
        "asa_class[5]": 2.9,
        "diabetes": 0.25,
        "chf": 0.6,
        "copd": 0.35,
        "ckd": 0.45,
        "emergency": 1.0,
        "procedure_group[orthopaedic]": -0.3,
        "procedure_group[vascular]": 0.7,
        "procedure_group[colorectal]": 0.5,
    },
    "READMIT": {
        "intercept": -2.9,
        "age_band[50-64]": 0.15,
        "age_band[65-74]": 0.3,
        "age_band[75-84]": 0.45,
        "age_band[85-89]": 0.55,
        "age_band[90+]": 0.6,
        "sex[M]": 0.05,
        "diabetes": 0.3,
        "chf": 0.55,
        "copd": 0.4,
        "ckd": 0.35,
        "emergency": 0.45,
        "procedure_group[orthopaedic]": -0.1,
        "procedure_group[vascular]": 0.35,
        "procedure_group[colorectal]": 0.3,
    },
    "LOS": {
        "intercept": 1.0,
        "age_band[50-64]": 0.08,
        "age_band[65-74]": 0.15,
        "age_band[75-84]": 0.25,
        "age_band[85-89]": 0.32,
        "age_band[90+]": 0.36,
        "sex[M]": 0.02,
        "asa_class[2]": 0.1,
        "asa_class[3]": 0.25,
        "asa_class[4]": 0.45,
        "asa_class[5]": 0.7,
        "emergency": 0.35,
        "procedure_group[orthopaedic]": 0.1,
        "procedure_group[vascular]": 0.3,
        "procedure_group[colorectal]": 0.4,
    },
}


def _measures() -> tuple[MeasureSpec, ...]:
    return (
        MeasureSpec(
            code="HH",
            title="Hand-hygiene compliance",
            measure_type="proportion",
            level="aggregate",
            direction="increase",
            unit="%",
            multiplier=100.0,
            numerator_definition="Observed opportunities where hand hygiene was performed",
            denominator_definition="Hand-hygiene opportunities observed by trained auditors",
            target=0.9,
            minimum_volume=20,
            baseline=0.78,
            sigma=0.35,
            improvement_shift=0.6,
        ),
        MeasureSpec(
            code="SEPSIS",
            title="Sepsis bundle (SEP-1) compliance",
            measure_type="proportion",
            level="aggregate",
            direction="increase",
            unit="%",
            multiplier=100.0,
            numerator_definition="Patients with severe sepsis who received every bundle element",
            denominator_definition="Adult inpatients with severe sepsis or septic shock",
            exclusion_definition="Transfers in, comfort care within 6 hours, clinical trials",
            target=0.8,
            minimum_volume=10,
            baseline=0.6,
            sigma=0.3,
            improvement_shift=0.5,
        ),
        MeasureSpec(
            code="CLABSI",
            title="Central line-associated bloodstream infections",
            measure_type="rate",
            level="aggregate",
            direction="decrease",
            unit="per 1,000 line-days",
            multiplier=1000.0,
            numerator_definition="CLABSI events meeting NHSN surveillance definitions",
            denominator_definition="Central line-days",
            target=0.0008,
            minimum_volume=100,
            baseline=0.0012,
            sigma=0.25,
            improvement_shift=-0.5,
        ),
        MeasureSpec(
            code="FALLS",
            title="Inpatient falls with or without injury",
            measure_type="rate",
            level="aggregate",
            direction="decrease",
            unit="per 1,000 patient-days",
            multiplier=1000.0,
            numerator_definition="Inpatient falls reported",
            denominator_definition="Occupied bed-days (patient-days)",
            target=0.0025,
            minimum_volume=500,
            baseline=0.0032,
            sigma=0.2,
            improvement_shift=-0.35,
        ),
        MeasureSpec(
            code="D2P",
            title="Median door-to-provider time (emergency department)",
            measure_type="mean",
            level="aggregate",
            direction="decrease",
            unit="minutes",
            multiplier=1.0,
            numerator_definition="Median minutes from arrival to provider",
            denominator_definition="Emergency department visits in the month",
            target=20.0,
            minimum_volume=50,
            baseline=28.0,
            sigma=0.12,
            improvement_shift=-0.2,
        ),
        MeasureSpec(
            code="SURG-MORT",
            title="30-day surgical mortality (risk-adjusted)",
            measure_type="ratio",
            level="patient",
            direction="decrease",
            unit="%",
            multiplier=100.0,
            numerator_definition="Deaths within 30 days of the index operation",
            denominator_definition="Adult inpatient operations (general, orthopaedic, vascular, "
            "colorectal)",
            minimum_volume=25,
            risk_model=_surgical_model(),
            sigma=0.25,
        ),
        MeasureSpec(
            code="READMIT",
            title="30-day unplanned readmission (risk-adjusted)",
            measure_type="ratio",
            level="patient",
            direction="decrease",
            unit="%",
            multiplier=100.0,
            numerator_definition="Unplanned readmissions within 30 days",
            denominator_definition="Discharges alive after an index operation",
            minimum_volume=25,
            risk_model=_readmission_model(),
            sigma=0.15,
        ),
        MeasureSpec(
            code="LOS",
            title="Length of stay after surgery (risk-adjusted)",
            measure_type="ratio",
            level="patient",
            direction="decrease",
            unit="days",
            multiplier=1.0,
            numerator_definition="Days from operation to discharge",
            denominator_definition="Adult inpatient operations",
            minimum_volume=25,
            risk_model=_los_model(),
            sigma=0.08,
        ),
    )


def _months() -> tuple[dt.date, ...]:
    return tuple(
        dt.date(
            FIRST_MONTH.year + (FIRST_MONTH.month - 1 + i) // 12,
            (FIRST_MONTH.month - 1 + i) % 12 + 1,
            1,
        )
        for i in range(N_MONTHS)
    )


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw_effects(
    rng: np.random.Generator, members: tuple[MemberSpec, ...], measures: tuple[MeasureSpec, ...]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, str]]]:
    effects: dict[str, dict[str, float]] = {}
    outliers: dict[str, dict[str, str]] = {}
    # True outliers are larger hospitals, so they have the data to be detected.
    large = [m.code for m in members if m.volume >= 1.0]
    if len(large) < 3:  # tiny collaboratives (tests): any member will do
        large = [m.code for m in members]
    for measure in measures:
        codes = [m.code for m in members]
        u = rng.normal(0.0, measure.sigma, size=len(codes))
        effects[measure.code] = {code: float(value) for code, value in zip(codes, u, strict=True)}
        chosen = rng.choice(large, size=3, replace=False)
        worse_sign = 1.0 if measure.direction == "decrease" else -1.0
        outliers[measure.code] = {}
        for k, code in enumerate(str(c) for c in chosen):
            label = "worse" if k < 2 else "better"
            size = max(4.0 * measure.sigma, 0.4) if measure.level == "aggregate" else 0.8
            shift = size * (worse_sign if label == "worse" else -worse_sign)
            if measure.code == "LOS":
                shift *= 0.4
            effects[measure.code][code] = shift
            outliers[measure.code][code] = label
    return effects, outliers


def _aggregate_rows(  # noqa: PLR0917 - a private helper of generate()
    rng: np.random.Generator,
    members: tuple[MemberSpec, ...],
    measure: MeasureSpec,
    months: tuple[dt.date, ...],
    effects: dict[str, float],
    improvers: set[str],
) -> list[dict[str, Any]]:
    rows = []
    after_change = np.array([month >= CHANGE_DATE for month in months])
    for member in members:
        shift = measure.improvement_shift * after_change if member.code in improvers else 0.0
        eta = effects[member.code] + shift
        if measure.code == "HH":
            n = rng.poisson(120 * member.volume, size=len(months)) + 5
            p = _expit(math.log(measure.baseline / (1 - measure.baseline)) + eta)
            numerator, denominator, value = rng.binomial(n, p), n, None
        elif measure.code == "SEPSIS":
            n = rng.poisson(14 * member.volume, size=len(months))
            p = _expit(math.log(measure.baseline / (1 - measure.baseline)) + eta)
            numerator, denominator, value = rng.binomial(n, p), n, None
        elif measure.code == "CLABSI":
            n = np.round(rng.gamma(40.0, 450 * member.volume / 40.0, size=len(months)))
            numerator, denominator, value = rng.poisson(measure.baseline * np.exp(eta) * n), n, None
        elif measure.code == "FALLS":
            n = np.round(rng.gamma(60.0, 3200 * member.volume / 60.0, size=len(months)))
            numerator, denominator, value = rng.poisson(measure.baseline * np.exp(eta) * n), n, None
        else:  # D2P: a monthly median of a skewed distribution, with sampling noise
            n = rng.poisson(1500 * member.volume, size=len(months)) + 20
            mean = measure.baseline * np.exp(eta)
            value = np.round(rng.normal(mean, 12.0 / np.sqrt(n)), 1)
            numerator, denominator = None, n
        for i, month in enumerate(months):
            rows.append(
                {
                    "member": member.code,
                    "measure": measure.code,
                    "period": month,
                    "numerator": None if numerator is None else float(numerator[i]),
                    "denominator": float(denominator[i]),
                    "value": None if value is None else float(value[i]),
                }
            )
    return rows


def _patients(
    rng: np.random.Generator, members: tuple[MemberSpec, ...], months: tuple[dt.date, ...]
) -> pd.DataFrame:
    """One row per operation, with its risk factors (shared by the three patient measures)."""
    frames = []
    for member in members:
        per_month = rng.poisson(30 * member.volume, size=len(months))
        total = int(per_month.sum())
        month_index = np.repeat(np.arange(len(months)), per_month)
        age = rng.choice(6, size=total, p=[0.22, 0.26, 0.24, 0.18, 0.06, 0.04])
        asa = rng.choice(5, size=total, p=[0.12, 0.4, 0.35, 0.11, 0.02])
        frames.append(
            pd.DataFrame(
                {
                    "member": member.code,
                    "year": [months[i].year for i in month_index],
                    "month": [months[i].month for i in month_index],
                    "age_band": np.array(["18-49", "50-64", "65-74", "75-84", "85-89", "90+"])[age],
                    "sex": np.where(rng.random(total) < 0.48, "M", "F"),
                    "asa_class": (asa + 1).astype(str),
                    "diabetes": (rng.random(total) < 0.2 + 0.03 * age).astype(int),
                    "chf": (rng.random(total) < 0.04 + 0.03 * age).astype(int),
                    "copd": (rng.random(total) < 0.1 + 0.01 * age).astype(int),
                    "ckd": (rng.random(total) < 0.06 + 0.03 * age).astype(int),
                    "emergency": (rng.random(total) < 0.28).astype(int),
                    "procedure_group": rng.choice(
                        ["general", "orthopaedic", "vascular", "colorectal"],
                        size=total,
                        p=[0.4, 0.3, 0.12, 0.18],
                    ),
                }
            )
        )
    patients = pd.concat(frames, ignore_index=True)
    patients["sequence"] = patients.groupby(["member", "year"]).cumcount() + 1
    # Opaque case keys: random, unrelated to any identifier.
    patients["case_key"] = [f"C{value:012x}" for value in rng.integers(0, 2**48, len(patients))]
    return patients


def linear_predictor(frame: pd.DataFrame, coefficients: dict[str, float]) -> np.ndarray:
    """x'beta for terms named ``intercept``, ``flag`` and ``variable[level]``."""
    eta = np.full(len(frame), coefficients.get("intercept", 0.0))
    for term, beta in coefficients.items():
        if term == "intercept":
            continue
        if "[" in term:
            variable, level = term[:-1].split("[", 1)
            eta += beta * (frame[variable].astype(str).to_numpy() == level)
        else:
            eta += beta * frame[term].to_numpy(dtype=float)
    return eta


def generate(seed: int = DEFAULT_SEED, n_members: int = 40) -> DemoCollaborative:
    """The demo collaborative for ``seed``: same seed, same data, same truth."""
    rng = np.random.default_rng(seed)
    members = _members(rng, n_members)
    measures = _measures()
    months = _months()
    effects, outliers = _draw_effects(rng, members, measures)
    outlier_codes = {code for per in outliers.values() for code in per}
    candidates = [m.code for m in members if m.code not in outlier_codes]
    candidates = candidates or [m.code for m in members]
    n_improvers = min(6, max(1, len(candidates) // 2))
    improvers = tuple(sorted(rng.choice(candidates, size=n_improvers, replace=False).tolist()))

    aggregate_rows: list[dict[str, Any]] = []
    for measure in measures:
        if measure.level == "aggregate":
            aggregate_rows += _aggregate_rows(
                rng, members, measure, months, effects[measure.code], set(improvers)
            )
    aggregate = pd.DataFrame(aggregate_rows)
    # A few gaps: members that did not submit some months (the overview shows who is missing).
    gap_rows = rng.choice(len(aggregate), size=25, replace=False)
    missing = tuple(
        (aggregate.at[i, "member"], aggregate.at[i, "measure"], aggregate.at[i, "period"])
        for i in sorted(gap_rows)
    )
    aggregate = aggregate.drop(index=gap_rows).reset_index(drop=True)

    base = _patients(rng, members, months)
    patient_frames = []
    true_oe: dict[str, dict[str, float]] = {}
    member_index = base["member"].to_numpy()
    for measure in measures:
        if measure.level != "patient":
            continue
        spec = measure.risk_model
        assert spec is not None
        eta0 = linear_predictor(base, _COEFFICIENTS[measure.code])
        u = np.array([effects[measure.code][code] for code in member_index])
        if spec.family is OutcomeFamily.BINOMIAL:
            mean0, mean = _expit(eta0), _expit(eta0 + u)
            outcome = (rng.random(len(base)) < mean).astype(float)
        else:  # negative binomial length of stay, shape 2
            mean0, mean = np.exp(eta0), np.exp(eta0 + u)
            shape = 2.0
            outcome = rng.poisson(rng.gamma(shape, mean / shape)).astype(float)
        frame = base[
            ["member", "year", "month", "sequence", "case_key", *spec.covariate_names]
        ].copy()
        frame["case_key"] = frame["case_key"] + measure.code[:1]
        frame["measure"] = measure.code
        frame["outcome"] = outcome
        patient_frames.append(frame)
        sums = (
            pd.DataFrame({"member": member_index, "mean": mean, "mean0": mean0})
            .groupby("member")
            .sum()
        )
        true_oe[measure.code] = (sums["mean"] / sums["mean0"]).round(6).to_dict()
    patients = pd.concat(patient_frames, ignore_index=True)

    truth = DemoTruth(
        seed=seed,
        change_date=CHANGE_DATE,
        effects={k: {c: round(v, 6) for c, v in per.items()} for k, per in effects.items()},
        outliers=outliers,
        improvers=improvers,
        true_oe=true_oe,
        coefficients={k: dict(v) for k, v in _COEFFICIENTS.items()},
        sigmas={m.code: m.sigma for m in measures},
    )
    return DemoCollaborative(
        members=members,
        measures=measures,
        months=months,
        aggregate=aggregate,
        patients=patients,
        truth=truth,
        missing=missing,
    )
