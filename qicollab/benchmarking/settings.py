"""A run's method settings: one frozen, typed object with every default in one place.

A run stores ``RunSettings.to_json()`` (hashed into the snapshot hash: equal hashes, equal
numbers) and everything that computes or describes the run reads the fields. An unknown or
ill-typed setting (a typo in ``qicollab compute --set``, a stale key in a collaborative's
``default_methods``) is refused with its name, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qicollab.stats.funnel import DEFAULT_METHOD

#: Bump whenever a method changes its numbers (it is part of every snapshot hash).
#: 3: the calibrated random-effects funnel is the default for ratios and proportions, and the
#: run's funnels take every status from the core's exact decision limits.
METHODS_VERSION = 3

#: The funnel methods of :mod:`qicollab.stats.funnel` (SHMI is for ratios only).
RatioMethod = Literal["random-effects", "shmi", "cqc", "spiegelhalter"]
ProportionMethod = Literal["random-effects", "cqc", "spiegelhalter"]


class SettingsError(ValueError):
    """A run setting is unknown or has a value of the wrong kind."""


class RunSettings(BaseModel):
    """The method settings of a benchmark run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    methods_version: int = METHODS_VERSION
    #: Funnels: any method of :mod:`qicollab.stats.funnel`, by default its calibrated one
    #: (random effects with exact predictive tails, :data:`~qicollab.stats.funnel.
    #: DEFAULT_METHOD`); the published variants (SHMI truncation, CQC and Spiegelhalter
    #: winsorisation) stay selectable. ``trim`` is their truncation / winsorising fraction.
    funnel_ratio: RatioMethod = DEFAULT_METHOD
    funnel_proportion: ProportionMethod = DEFAULT_METHOD
    trim: float = Field(0.1, ge=0.0, lt=0.5)
    #: 95% is the warning limit, 99.8% the alarm limit.
    levels: tuple[float, ...] = (0.95, 0.998)
    #: "empirical-bayes": each member's value is shrunk towards the collaborative by its
    #: reliability, and deciles and the ABC ranking use the shrunk values; "none": raw values.
    shrinkage: Literal["empirical-bayes", "none"] = "empirical-bayes"
    #: ABC: the best members covering at least this share of the denominator.
    abc_fraction: float = Field(0.1, gt=0.0, le=1.0)
    #: Figures about peers (distributions, quantiles, ABC, funnels, deciles, statuses) need at
    #: least this many contributing members; the collaborative's ``min_contributors``.
    min_contributors: int = Field(5, ge=1)
    #: Control charts: "qic" (qicharts2) or "mdc" (Making Data Count).
    spc_mode: Literal["qic", "mdc"] = "qic"
    charts: bool = True
    #: RA-CUSUM: odds ratio to detect (doubling), in-control average run length, and the
    #: simulated paths that choose the limit.
    cusum_odds_ratio: float = Field(2.0, gt=1.0)
    cusum_arl: float = Field(10_000, gt=0)
    cusum_paths: int = Field(200, ge=20)

    @field_validator("levels")
    @classmethod
    def _levels_are_probabilities(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        if not levels or any(not 0 < level < 1 for level in levels):
            msg = "levels must be probabilities between 0 and 1, e.g. [0.95, 0.998]"
            raise ValueError(msg)
        return tuple(sorted(levels))

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (what the run stores and hashes)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Self:
        """Settings from stored or merged JSON; missing keys take their defaults."""
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in error.errors()
            )
            msg = f"invalid run settings: {problems}"
            raise SettingsError(msg) from error

    def merged(self, overrides: Mapping[str, Any] | None) -> Self:
        """These settings with some replaced (validated like any other)."""
        return type(self).from_json({**self.to_json(), **(overrides or {})})
