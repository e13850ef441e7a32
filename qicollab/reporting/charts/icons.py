"""Variation and assurance icons (NHS Making Data Count) as small accessible SVG badges.

The NHS icons rely on colour (blue improvement, orange concern, grey common cause); ours add a
letter and an arrow inside the badge and differ in fill and outline, so they read in greyscale
and to screen readers (each badge is an ``img`` with a ``<title>``). The words are always
printed beside the badge too.
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

    def svg(self, size: int = 22) -> Markup:
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


_IMPROVE = ("#1f4e9c", "#0d2a5c", "white")
_CONCERN = ("white", "#b34700", "#7a3000")
_NEITHER = ("#ece6f3", "#5b3b8a", "#3d2260")

VARIATION: dict[str, Icon] = {
    "common_cause": Icon(
        "common_cause", "Common cause variation", "~", "#e4e4e4", "#6b6b6b", "#333"
    ),
    "improvement_high": Icon(
        "improvement_high", "Special cause: improvement (higher)", "I↑", *_IMPROVE
    ),
    "improvement_low": Icon(
        "improvement_low", "Special cause: improvement (lower)", "I↓", *_IMPROVE
    ),
    "concern_high": Icon("concern_high", "Special cause: concern (higher)", "C↑", *_CONCERN),
    "concern_low": Icon("concern_low", "Special cause: concern (lower)", "C↓", *_CONCERN),
    "neither_high": Icon(
        "neither_high", "Special cause: neither (higher)", "N↑", *_NEITHER, dash="3 2"
    ),
    "neither_low": Icon(
        "neither_low", "Special cause: neither (lower)", "N↓", *_NEITHER, dash="3 2"
    ),
    "improvement": Icon("improvement", "Special cause: improvement", "I", *_IMPROVE),
    "concern": Icon("concern", "Special cause: concern", "C", *_CONCERN),
    "neither": Icon("neither", "Special cause: neither", "N", *_NEITHER, dash="3 2"),
}
ASSURANCE: dict[str, Icon] = {
    "pass": Icon("pass", "Consistently meets the target", "P", *_IMPROVE),
    "fail": Icon("fail", "Consistently misses the target", "F", *_CONCERN),
    "hit_or_miss": Icon(
        "hit_or_miss",
        "Hit and miss: may or may not meet the target",
        "?",
        "#e4e4e4",
        "#6b6b6b",
        "#333",
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

_ALIASES = {
    "common": "common_cause",
    "commoncause": "common_cause",
    "cc": "common_cause",
    "improvement_up": "improvement_high",
    "improvement_down": "improvement_low",
    "concern_up": "concern_high",
    "concern_down": "concern_low",
    "neither_up": "neither_high",
    "neither_down": "neither_low",
    "neutral": "neither",
    "consistent_pass": "pass",
    "consistently_pass": "pass",
    "consistent_fail": "fail",
    "consistently_fail": "fail",
    "hitmiss": "hit_or_miss",
    "hit_and_miss": "hit_or_miss",
    "hit_miss": "hit_or_miss",
    "inconsistent": "hit_or_miss",
    "random": "hit_or_miss",
}


def _normalise(key: object) -> str:
    text = str(key or "").strip().lower().replace("-", "_").replace(" ", "_")
    for prefix in ("special_cause_", "variation_", "assurance_"):
        text = text.removeprefix(prefix)
    return _ALIASES.get(text, text)


def variation_icon(key: object, direction: str | None = None) -> Icon:
    """The badge for a stored variation icon name (tolerant of spelling variants).

    Engines that store only "improvement", "concern" or "neutral" (the point type of the last
    point) get the arrow from the measure's direction: improvement on a measure where higher
    is better is "improvement (higher)", a concern on it is "concern (lower)".
    """
    name = _normalise(key)
    if name in {"improvement", "concern", "neither"} and direction in {"increase", "decrease"}:
        up = (name == "improvement") == (direction == "increase")
        name = f"{name}_{'high' if up else 'low'}"
    return VARIATION.get(name, NO_VARIATION)


def assurance_icon(key: object) -> Icon:
    """The badge for a stored assurance icon name."""
    return ASSURANCE.get(_normalise(key), NO_ASSURANCE)


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
