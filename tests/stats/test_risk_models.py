"""Risk models: agreement with statsmodels' formula API, diagnostics, refusals, prediction."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from numpy.testing import assert_allclose
from scipy import stats

from qicollab.stats import risk_models
from qicollab.stats.risk_models import (
    CollinearityError,
    Covariate,
    MissingValuesError,
    RiskModelError,
    RiskModelSpec,
    SeparationError,
    SingleLevelError,
    SpecificationError,
    TooFewEventsError,
    UnknownLevelError,
    c_statistic,
    detect_separation,
    fit_risk_model,
    hosmer_lemeshow,
)

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def medpar() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "count_medpar.csv", dtype={"provnum": str})
    frame["type"] = frame["type"].astype(str)
    return frame


def _medpar_spec(outcome: str, family: str) -> RiskModelSpec:
    covariates = (
        Covariate("hmo", "binary"),
        Covariate("white", "binary"),
        Covariate("type", "categorical", levels=("1", "2", "3"), reference="1"),
    )
    if outcome == "died":
        covariates = (*covariates, Covariate("age80", "binary"))
    return RiskModelSpec(outcome, family, covariates)  # type: ignore[arg-type]


def _by_our_terms(params: pd.Series) -> pd.Series:
    """statsmodels formula names (Intercept, C(type)[T.2]) as our terms (intercept, type[2])."""
    return params.rename(
        lambda name: "intercept" if name == "Intercept" else name.replace("C(type)[T.", "type[")
    )


def _simulated(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    rng = np.random.default_rng(seed)
    truth = {
        "intercept": -2.5,
        "age": 0.03,
        "emergency": 0.6,
        "asa[2]": 0.3,
        "asa[3]": 0.8,
    }
    frame = pd.DataFrame(
        {
            "age": rng.normal(0, 12, n),
            "emergency": rng.binomial(1, 0.3, n),
            "asa": rng.choice(["1", "2", "3"], n, p=[0.4, 0.4, 0.2]),
        }
    )
    eta = (
        truth["intercept"]
        + truth["age"] * frame["age"]
        + truth["emergency"] * frame["emergency"]
        + frame["asa"].map({"1": 0.0, "2": truth["asa[2]"], "3": truth["asa[3]"]})
    )
    frame["died"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return frame, truth


SIM_SPEC = RiskModelSpec(
    "died",
    "binomial",
    (
        Covariate("age"),
        Covariate("emergency", "binary"),
        Covariate("asa", "categorical", reference="1"),
    ),
)


class TestAgreesWithStatsmodelsFormulas:
    """Our own design matrix + fit against statsmodels' formula route on medpar."""

    def test_binomial(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("died", "binomial"))
        reference = smf.logit("died ~ hmo + white + C(type) + age80", medpar).fit(disp=0)
        ours = fit.coefficient_frame().set_index("term")
        params = _by_our_terms(reference.params)
        assert set(params.index) == set(ours.index)
        order = params.index
        assert_allclose(ours.loc[order, "estimate"], params, rtol=1e-6)
        assert_allclose(ours.loc[order, "std_error"], _by_our_terms(reference.bse), rtol=1e-5)
        assert_allclose(ours.loc[order, "p_value"], _by_our_terms(reference.pvalues), rtol=1e-4)
        assert_allclose(ours.loc[order, "ratio"], np.exp(params), rtol=1e-6)
        assert fit.ratio_name == "odds ratio"
        assert fit.diagnostics is not None
        assert fit.diagnostics.log_likelihood == pytest.approx(reference.llf)

    def test_poisson(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("los", "poisson"))
        reference = smf.poisson("los ~ hmo + white + C(type)", medpar).fit(disp=0)
        ours = fit.coefficient_frame().set_index("term")
        params = _by_our_terms(reference.params)
        assert_allclose(ours.loc[params.index, "estimate"], params, rtol=1e-6)
        assert_allclose(
            ours.loc[params.index, "std_error"], _by_our_terms(reference.bse), rtol=1e-5
        )
        assert fit.ratio_name == "rate ratio"

    def test_negative_binomial(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("los", "negbin"))
        reference = smf.negativebinomial("los ~ hmo + white + C(type)", medpar).fit(
            method="newton", disp=0
        )
        ours = fit.coefficient_frame().set_index("term")
        params = _by_our_terms(reference.params.drop("alpha"))
        assert_allclose(ours.loc[params.index, "estimate"], params, rtol=1e-5)
        assert fit.dispersion == pytest.approx(reference.params["alpha"], rel=1e-5)
        default = smf.negativebinomial("los ~ hmo + white + C(type)", medpar).fit(disp=0)
        assert fit.diagnostics is not None
        assert fit.diagnostics.log_likelihood >= default.llf - 1e-9  # BFGS stops a bit short

    def test_gaussian_is_ordinary_least_squares(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("los", "gaussian"))
        x = np.column_stack(
            [
                np.ones(len(medpar)),
                medpar["hmo"],
                medpar["white"],
                medpar["type"] == "2",
                medpar["type"] == "3",
            ]
        ).astype(float)
        beta, *_ = np.linalg.lstsq(x, medpar["los"].to_numpy(float), rcond=None)
        assert_allclose(fit.params, beta, rtol=1e-8)
        assert fit.ratio_name is None
        assert fit.coefficients[0].ratio is None

    def test_duck_typed_measure_spec(self, medpar: pd.DataFrame) -> None:
        from qicollab.measures.spec import Covariate as MCov
        from qicollab.measures.spec import CovariateType, OutcomeFamily
        from qicollab.measures.spec import RiskModelSpec as MSpec

        spec = MSpec(
            outcome="died",
            family=OutcomeFamily.BINOMIAL,
            covariates=(
                MCov("hmo", CovariateType.BINARY),
                MCov("type", CovariateType.CATEGORICAL, levels=("1", "2", "3"), reference="1"),
            ),
        )
        fit = fit_risk_model(medpar, spec)
        assert fit.terms == ("intercept", "hmo", "type[2]", "type[3]")


class TestCalibrationAndPrediction:
    def test_canonical_link_reproduces_the_total(self, medpar: pd.DataFrame) -> None:
        # METHODS 1.1: with an intercept and canonical link, sum(O) = sum(E) on the fit data
        for outcome, family in [("died", "binomial"), ("los", "poisson")]:
            fit = fit_risk_model(medpar, _medpar_spec(outcome, family))
            assert fit.fitted.sum() == pytest.approx(medpar[outcome].sum(), rel=1e-8)

    def test_predict_reapplies_stored_coefficients(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("died", "binomial"))
        new = medpar.sample(50, random_state=1)
        assert_allclose(fit.predict(new), fit.fitted[new.index.to_numpy()], rtol=1e-12)

    def test_predict_refuses_unknown_levels_and_missing_values(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("died", "binomial"))
        bad = medpar.head(3).copy()
        bad.loc[bad.index[1], "type"] = "4"
        with pytest.raises(UnknownLevelError, match="type"):
            fit.predict(bad)
        missing = medpar.head(3).copy()
        missing.loc[missing.index[0], "white"] = np.nan
        with pytest.raises(MissingValuesError, match="white"):
            fit.predict(missing)

    def test_exposure_offset(self) -> None:
        rng = np.random.default_rng(5)
        n = 4000
        frame = pd.DataFrame({"x": rng.normal(size=n), "days": rng.uniform(1, 30, n)})
        frame["infections"] = rng.poisson(frame["days"] * np.exp(-4 + 0.5 * frame["x"]))
        spec = RiskModelSpec("infections", "poisson", (Covariate("x"),), exposure="days")
        fit = fit_risk_model(frame, spec)
        assert fit.params[0] == pytest.approx(-4, abs=0.15)
        doubled = frame.assign(days=frame["days"] * 2)
        assert_allclose(fit.predict(doubled), 2 * fit.predict(frame))

    def test_warm_start_gives_the_cold_start_estimates(self, monkeypatch) -> None:
        frame, _ = _simulated(60_000, seed=11)
        cold = fit_risk_model(frame, SIM_SPEC, warm_start=False, diagnostics=False)
        monkeypatch.setattr(risk_models, "WARM_START_ROWS", 10_000)
        warm = fit_risk_model(frame, SIM_SPEC, warm_start=True, diagnostics=False)
        assert "warm-started" in warm.method
        assert "warm-started" not in cold.method
        assert_allclose(warm.params, cold.params, rtol=1e-7, atol=1e-9)
        assert_allclose(warm.covariance, cold.covariance, rtol=1e-6)
        assert warm.iterations < cold.iterations


class TestDiagnostics:
    def test_c_statistic_matches_pairwise_delong(self) -> None:
        rng = np.random.default_rng(3)
        y = rng.binomial(1, 0.3, 300)
        score = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding creates ties
        auc, lower, upper, se = c_statistic(y, score)
        pos, neg = score[y == 1], score[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        assert auc == pytest.approx(psi.mean())
        v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
        se_brute = np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
        assert se == pytest.approx(se_brute)
        assert (lower, upper) == pytest.approx((auc - 1.959964 * se, auc + 1.959964 * se))

    def test_hosmer_lemeshow_detects_misspecification(self) -> None:
        rng = np.random.default_rng(8)
        x = rng.normal(size=20_000)
        p_true = 1 / (1 + np.exp(-(-2 + 1.5 * x**2)))
        y = rng.binomial(1, p_true)
        _, df, p_good = hosmer_lemeshow(y, p_true)
        assert df == 8
        assert p_good > 0.01
        wrong = np.full(x.size, y.mean())
        wrong = wrong * (1 + 0.01 * x)  # predictions that ignore the curvature
        assert hosmer_lemeshow(y, wrong)[2] < 1e-6

    def test_hosmer_lemeshow_by_hand_on_ten_equal_groups(self) -> None:
        rng = np.random.default_rng(9)
        p = np.sort(rng.uniform(0.05, 0.6, 1000))
        y = rng.binomial(1, p)
        expected = 0.0
        for block in range(10):
            sl = slice(100 * block, 100 * (block + 1))
            o1, e1 = y[sl].sum(), p[sl].sum()
            expected += (o1 - e1) ** 2 / e1 + (o1 - e1) ** 2 / (100 - e1)
        statistic, df, pvalue = hosmer_lemeshow(y, p)
        assert df == 8
        assert statistic == pytest.approx(expected)
        assert pvalue == pytest.approx(stats.chi2.sf(expected, 8))

    def test_fit_diagnostics_fields(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("died", "binomial"))
        d = fit.diagnostics
        assert d is not None
        assert 0.5 < d.c_statistic < 1  # type: ignore[operator]
        assert d.c_statistic_ci[0] < d.c_statistic < d.c_statistic_ci[1]  # type: ignore[index]
        assert "DeLong" in d.c_statistic_method
        assert len(d.calibration) >= 3
        assert sum(g.n for g in d.calibration) == len(medpar)
        brier = np.mean((medpar["died"] - fit.fitted) ** 2)
        assert d.brier_score == pytest.approx(brier)
        events = medpar["died"].sum()
        assert d.events_per_variable == pytest.approx(min(events, len(medpar) - events) / 5)

    def test_count_model_has_no_c_statistic(self, medpar: pd.DataFrame) -> None:
        fit = fit_risk_model(medpar, _medpar_spec("los", "poisson"))
        assert fit.diagnostics is not None
        assert fit.diagnostics.c_statistic is None
        assert fit.diagnostics.calibration


class TestRefusals:
    def test_too_few_events_per_variable(self) -> None:
        frame, _ = _simulated(2000, seed=1)
        frame["died"] = 0
        frame.loc[frame.index[:30], "died"] = 1  # 30 events for 4 coefficients: EPV 7.5
        with pytest.raises(TooFewEventsError, match="per variable"):
            fit_risk_model(frame, SIM_SPEC)

    def test_too_few_observations_for_gaussian(self) -> None:
        frame = pd.DataFrame({"y": np.arange(15.0), "x": np.arange(15.0) ** 2, "z": np.ones(15)})
        frame.loc[0, "z"] = 2
        spec = RiskModelSpec("y", "gaussian", (Covariate("x"), Covariate("z")))
        with pytest.raises(TooFewEventsError, match="observations"):
            fit_risk_model(frame, spec)

    def test_complete_separation_on_a_numeric_covariate(self) -> None:
        frame, _ = _simulated(2000, seed=2)
        frame["died"] = (frame["age"] > 10).astype(int)
        with pytest.raises(SeparationError, match="age"):
            fit_risk_model(frame, SIM_SPEC)

    def test_quasi_separation_by_an_empty_cell(self) -> None:
        frame, _ = _simulated(3000, seed=3)
        frame.loc[frame["asa"] == "3", "died"] = 0
        with pytest.raises(SeparationError, match=r"asa\[3\]"):
            fit_risk_model(frame, SIM_SPEC)

    def test_multivariate_separation_found_by_the_linear_programme(self) -> None:
        rng = np.random.default_rng(4)
        n = 3000
        frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
        frame["y"] = (frame["a"] + frame["b"] > 0.5).astype(int)  # no single covariate separates
        spec = RiskModelSpec("y", "binomial", (Covariate("a"), Covariate("b")))
        with pytest.raises(SeparationError, match="a, b"):
            fit_risk_model(frame, spec)

    def test_lp_certifies_overlap_on_a_subset(self) -> None:
        frame, _ = _simulated(30_000, seed=5)
        design = np.column_stack(
            [np.ones(len(frame)), frame["age"], frame["emergency"], frame["asa"] == "2"]
        ).astype(float)
        check = detect_separation(design, frame["died"].to_numpy(float))
        assert not check.separated
        assert check.rows_checked < len(frame)

    def test_poisson_level_without_events(self, medpar: pd.DataFrame) -> None:
        frame = medpar.copy()
        frame.loc[frame["type"] == "3", "los"] = 0
        with pytest.raises(SeparationError, match=r"type\[3\]"):
            fit_risk_model(frame, _medpar_spec("los", "poisson"))

    def test_single_level_covariate(self) -> None:
        frame, _ = _simulated(2000, seed=6)
        frame["emergency"] = 1
        with pytest.raises(SingleLevelError, match="emergency"):
            fit_risk_model(frame, SIM_SPEC)

    def test_declared_level_without_rows(self) -> None:
        frame, _ = _simulated(2000, seed=6)
        spec = RiskModelSpec(
            "died", "binomial", (Covariate("asa", "categorical", ("1", "2", "3", "4"), "1"),)
        )
        with pytest.raises(SingleLevelError, match="no rows"):
            fit_risk_model(frame, spec)

    def test_collinear_covariates(self) -> None:
        frame, _ = _simulated(2000, seed=12)
        frame["age_months"] = frame["age"] * 12
        spec = RiskModelSpec("died", "binomial", (Covariate("age"), Covariate("age_months")))
        with pytest.raises(CollinearityError, match="age, age_months"):
            fit_risk_model(frame, spec)

    def test_missing_values_are_refused_not_dropped(self) -> None:
        frame, _ = _simulated(2000, seed=7)
        frame.loc[5, "age"] = np.nan
        with pytest.raises(MissingValuesError, match="row 6"):
            fit_risk_model(frame, SIM_SPEC)

    def test_unknown_categorical_level(self) -> None:
        frame, _ = _simulated(2000, seed=8)
        spec = RiskModelSpec(
            "died", "binomial", (Covariate("asa", "categorical", ("1", "2"), "1"),)
        )
        with pytest.raises(UnknownLevelError, match="'3'"):
            fit_risk_model(frame, spec)

    def test_binary_must_be_zero_one(self) -> None:
        frame, _ = _simulated(2000, seed=9)
        frame.loc[0, "emergency"] = 2
        with pytest.raises(UnknownLevelError, match="emergency"):
            fit_risk_model(frame, SIM_SPEC)

    def test_bad_outcome_and_bad_spec(self) -> None:
        frame, _ = _simulated(500, seed=10)
        with pytest.raises(SpecificationError, match="0/1"):
            fit_risk_model(frame.assign(died=frame["died"] * 2), SIM_SPEC)
        with pytest.raises(SpecificationError, match="missing columns"):
            fit_risk_model(frame.drop(columns="age"), SIM_SPEC)
        with pytest.raises(SpecificationError, match="family"):
            fit_risk_model(frame, RiskModelSpec("died", "probit", ()))  # type: ignore[arg-type]
        with pytest.raises(SpecificationError, match="reference"):
            fit_risk_model(
                frame,
                RiskModelSpec("died", "binomial", (Covariate("asa", "categorical", (), "9"),)),
            )

    def test_every_refusal_is_a_risk_model_error(self) -> None:
        for error in (TooFewEventsError, SeparationError, SingleLevelError, UnknownLevelError):
            assert issubclass(error, RiskModelError)
            assert issubclass(error, ValueError)

    def test_no_statsmodels_warning_escapes(self, medpar: pd.DataFrame) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit_risk_model(medpar, _medpar_spec("los", "negbin"))
