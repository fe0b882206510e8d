"""Bar lengths for the report's charts: the HTML page's SVG bars and the Markdown's text bars
(the Dagster UI renders no Mermaid, so its chart is text) scale a value against the largest
of its series the same way, so both show the same picture."""

from __future__ import annotations

from collections.abc import Sequence

EIGHTHS = "▏▎▍▌▋▊▉"  # 1/8 .. 7/8 of a full block "█"


def fractions(values: Sequence[float | None]) -> list[float]:
    """Each value as a fraction of the largest (a missing value or an all-zero series: 0)."""
    top = max((v for v in values if v), default=0)
    return [(v or 0) / top if top > 0 else 0.0 for v in values]


def text_bar(fraction: float, width: int) -> str:
    """A bar of block characters, ``width`` full blocks long at fraction 1, in eighths of a
    block; a non-zero value shows at least an eighth, so it never looks like zero."""
    eighths = round(fraction * width * 8)
    if fraction > 0:
        eighths = max(eighths, 1)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest - 1] if rest else "")
