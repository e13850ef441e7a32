"""Variation and assurance icons (NHS Making Data Count) as small accessible SVG badges.

The badges wear the NHS colours (blue improvement, orange concern, grey common cause, purple
neither; NHSRplotthedots' palette, darkened where white letters need contrast) and add a letter
and an arrow inside, so they also read in greyscale and to screen readers (each badge is an
``img`` with a ``<title>``). The words are always printed beside the badge too.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True, slots=True)
class Icon:
    """One badge: what it says, and how it is drawn."""

    key: str
    words: str
    letter: str
    fill: str
    stroke: str
    text_fill: str
    dash: str = ""

    def svg(self, size: int = 32) -> Markup:
        """The badge as inline SVG, labelled by its title."""
        dash = f' stroke-dasharray="{self.dash}"' if self.dash else ""
        font = 8.5 if len(self.letter) > 1 else 10
        return Markup(  # noqa: S704 - built from constants and escaped words
            f'<svg xmlns="http://www.w3.org/2000/svg" class="qc-icon" width="{size}" '
            f'height="{size}" viewBox="0 0 24 24" role="img" aria-label="{escape(self.words)}">'
            f"<title>{escape(self.words)}</title>"
            f'<circle cx="12" cy="12" r="10.5" fill="{self.fill}" stroke="{self.stroke}" '
            f'stroke-width="2"{dash}/>'
            f'<text x="12" y="15.5" font-size="{font}" font-weight="bold" text-anchor="middle" '
            f'font-family="DejaVu Sans, Arial, sans-serif" fill="{self.text_fill}">'
            f"{escape(self.letter)}</text></svg>"
        )


#: (fill, outline, letter): MDC blue, orange, purple and grey; letters at 4.5:1 contrast or more.
_IMPROVE = ("#1d70b8", "#0b3d6b", "white")
_CONCERN = ("#f5a623", "#8a4b00", "#2b1600")
_NEITHER = ("#5b3b8a", "#361475", "white")
_COMMON = ("#a6a6a6", "#595959", "#141414")

#: Keyed by the SPC engine's variation icon names (NHSRplotthedots'), every one it can emit
#: (``qicollab.stats.spc``): the last point's type, with the side it fell on.
VARIATION: dict[str, Icon] = {
    "common_cause": Icon("common_cause", "Common cause variation", "~", *_COMMON),
    "improvement_high": Icon(
        "improvement_high", "Special cause: improvement (higher)", "I↑", *_IMPROVE
    ),
    "improvement_low": Icon(
        "improvement_low", "Special cause: improvement (lower)", "I↓", *_IMPROVE
    ),
    "concern_high": Icon("concern_high", "Special cause: concern (higher)", "C↑", *_CONCERN),
    "concern_low": Icon("concern_low", "Special cause: concern (lower)", "C↓", *_CONCERN),
    "neutral_high": Icon(
        "neutral_high",
        "Special cause: neither improvement nor concern (higher)",
        "N↑",
        *_NEITHER,
        dash="3 2",
    ),
    "neutral_low": Icon(
        "neutral_low",
        "Special cause: neither improvement nor concern (lower)",
        "N↓",
        *_NEITHER,
        dash="3 2",
    ),
}
#: Keyed by the engine's assurance icon names: the target against the last point's limits.
ASSURANCE: dict[str, Icon] = {
    "consistent_pass": Icon("consistent_pass", "Consistently meets the target", "P", *_IMPROVE),
    "consistent_fail": Icon("consistent_fail", "Consistently misses the target", "F", *_CONCERN),
    "inconsistent": Icon(
        "inconsistent",
        "Hit and miss: may or may not meet the target",
        "?",
        *_COMMON,
    ),
}
NO_VARIATION = Icon(
    "none",
    "Variation not assessed (too few points)",
    "–",
    "white",
    "#9a9a9a",
    "#6b6b6b",
    dash="2 2",
)
NO_ASSURANCE = Icon(
    "none", "No target to assure against", "–", "white", "#9a9a9a", "#6b6b6b", dash="2 2"
)


def variation_icon(key: str | None, direction: str) -> Icon:
    """The badge for a stored variation icon name (None: not assessed).

    Runs stored before the SPC engine landed kept the last point's type instead
    (``special_cause_improvement``, ``special_cause_concern``): the side comes from the
    measure's direction, so improvement where higher is better is "improvement (higher)".
    """
    name = (key or "").removeprefix("special_cause_")
    if name in {"improvement", "concern"}:
        up = (name == "improvement") == (direction == "increase")
        name = f"{name}_{'high' if up else 'low'}"
    return VARIATION.get(name, NO_VARIATION)


def assurance_icon(key: str | None) -> Icon:
    """The badge for a stored assurance icon name (None: no target, or no limits to judge)."""
    return ASSURANCE.get(key or "", NO_ASSURANCE)


def status_badge(key: str | None, words: str, mark: str) -> Markup:
    """An outlier-status badge: the mark in a shape that differs by status, plus no colour need."""
    shapes = {
        "worse": (
            '<path d="M12 2 L22.5 21 L1.5 21 Z" fill="white" stroke="#7a3000" stroke-width="2"/>',
            "#7a3000",
            "16.5",
        ),
        "better": (
            '<circle cx="12" cy="12" r="10.5" fill="#1f4e9c" stroke="#0d2a5c" stroke-width="2"/>',
            "white",
            "15.5",
        ),
        "as-expected": (
            '<rect x="2" y="2" width="20" height="20" rx="3" fill="#e4e4e4" '
            'stroke="#6b6b6b" stroke-width="1.5"/>',
            "#333",
            "15.5",
        ),
    }
    shape, ink, baseline = shapes.get(
        key or "",
        (
            '<rect x="2" y="2" width="20" height="20" rx="3" fill="white" stroke="#9a9a9a" '
            'stroke-dasharray="2 2"/>',
            "#6b6b6b",
            "15.5",
        ),
    )
    return Markup(  # noqa: S704 - constants and escaped words
        f'<svg xmlns="http://www.w3.org/2000/svg" class="qc-icon" width="20" height="20" '
        f'viewBox="0 0 24 24" role="img" aria-label="{escape(words)}"><title>{escape(words)}'
        f"</title>{shape}"
        f'<text x="12" y="{baseline}" font-size="10" font-weight="bold" text-anchor="middle" '
        f'font-family="DejaVu Sans, Arial, sans-serif" fill="{ink}">{escape(mark)}</text></svg>'
    )
