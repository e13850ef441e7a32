"""The risk-model specification of a patient-level measure, as a typed, validated value.

It is stored as a JSON document on the measure; this module is the only place that reads or
writes that document, so every consumer (templates, validation, the risk model fit) agrees on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class OutcomeFamily(enum.StrEnum):
    """The distribution of the outcome, which decides the regression model."""

    BINOMIAL = "binomial"
    POISSON = "poisson"
    NEGBIN = "negbin"
    GAUSSIAN = "gaussian"


class CovariateType(enum.StrEnum):
    """How a risk factor enters the model."""

    NUMERIC = "numeric"
    BINARY = "binary"
    CATEGORICAL = "categorical"


class SpecError(ValueError):
    """A risk-model specification that cannot be used, with the reason."""


@dataclass(frozen=True, slots=True)
class Covariate:
    """One risk factor: its column name, type, allowed values and reference level."""

    name: str
    type: CovariateType
    label: str = ""
    levels: tuple[str, ...] = ()
    reference: str | None = None
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            msg = f"covariate name {self.name!r} must be a simple identifier"
            raise SpecError(msg)
        if self.type is CovariateType.CATEGORICAL:
            if len(self.levels) < 2:
                msg = f"categorical covariate {self.name!r} needs at least two levels"
                raise SpecError(msg)
            if self.reference not in self.levels:
                msg = f"reference level of {self.name!r} must be one of its levels"
                raise SpecError(msg)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        data: dict[str, Any] = {"name": self.name, "type": self.type.value}
        if self.label:
            data["label"] = self.label
        if self.levels:
            data["levels"] = list(self.levels)
            data["reference"] = self.reference
        if self.minimum is not None:
            data["minimum"] = self.minimum
        if self.maximum is not None:
            data["maximum"] = self.maximum
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Covariate:
        """Read the stored form, rejecting unknown types."""
        try:
            kind = CovariateType(data["type"])
        except (KeyError, ValueError) as error:
            msg = f"covariate {data.get('name')!r} has no valid type"
            raise SpecError(msg) from error
        return cls(
            name=data["name"],
            type=kind,
            label=data.get("label", ""),
            levels=tuple(data.get("levels", ())),
            reference=data.get("reference"),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
        )


@dataclass(frozen=True, slots=True)
class RiskModelSpec:
    """Outcome, family and covariates of a patient-level measure's risk model."""

    outcome: str
    family: OutcomeFamily
    covariates: tuple[Covariate, ...] = field(default_factory=tuple)
    outcome_label: str = ""

    def __post_init__(self) -> None:
        names = [covariate.name for covariate in self.covariates]
        if len(set(names)) != len(names):
            msg = "covariate names must be unique"
            raise SpecError(msg)
        if self.outcome in names:
            msg = "the outcome cannot also be a covariate"
            raise SpecError(msg)

    @property
    def covariate_names(self) -> tuple[str, ...]:
        """Covariate column names in model order."""
        return tuple(covariate.name for covariate in self.covariates)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "outcome": self.outcome,
            "outcome_label": self.outcome_label,
            "family": self.family.value,
            "covariates": [covariate.to_json() for covariate in self.covariates],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RiskModelSpec:
        """Read the stored form."""
        try:
            family = OutcomeFamily(data["family"])
        except (KeyError, ValueError) as error:
            msg = "risk model has no valid outcome family"
            raise SpecError(msg) from error
        return cls(
            outcome=data["outcome"],
            family=family,
            covariates=tuple(Covariate.from_json(item) for item in data.get("covariates", ())),
            outcome_label=data.get("outcome_label", ""),
        )
