"""Numbers as the report and the charts print them, and Markdown's building blocks.

Every number may be missing (None): it prints as "—". ∞ prints as "∞".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

DASH = "—"
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _num(value: Any) -> float | None:
    """A number, or None for null, NaN, booleans and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _special(x: float | None) -> str | None:
    """How a missing or infinite number is written (None: it is neither)."""
    return DASH if x is None else "∞" if math.isinf(x) else None


def seconds(value: float | None) -> str:
    """Seconds: at least 3 significant digits, 2 decimals from 1 s up (10.02), "—" if missing."""
    x = _num(value)
    if x is None or math.isinf(x):
        return _special(x) or DASH
    size = abs(x)
    if size == 0:
        return "0"
    if size < 1:
        return f"{x:#.3g}"
    if size < 100:
        return f"{x:.2f}"
    if size < 1000:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def rate(value: float | None) -> str:
    """Requests per second: whole numbers from 100 up (4,300), 3 significant digits below (0.450)."""
    x = _num(value)
    if x is None or math.isinf(x):
        return _special(x) or DASH
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:#.3g}"


def whole_rate(value: float | None) -> str:
    """Requests per second as a whole number: 4,300."""
    x = _num(value)
    return DASH if x is None else "∞" if math.isinf(x) else f"{x:,.0f}"


def ratio(value: float | None) -> str:
    """A ratio: 0.85×."""
    x = _num(value)
    return DASH if x is None else "∞" if math.isinf(x) else f"{x:.2f}×"


def millis(value: float | None) -> str:
    """Milliseconds, 3 significant digits: 14.0, 0.850, 120."""
    x = _num(value)
    if x is None:
        return DASH
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:#.3g}"


def share(value: float | None) -> str:
    """A share as a percentage: 0%, 12.5%."""
    x = _num(value)
    if x is None:
        return DASH
    return "0%" if x == 0 else f"{x:.1%}"


def _plain(spec: str) -> Callable[[float | None], str]:
    """A formatter that writes a number with the format spec, and DASH for no number."""

    def write(value: float | None) -> str:
        x = _num(value)
        return DASH if x is None else format(x, spec)

    return write


percent = _plain(".0%")  # a share as a whole percentage: 99%
count = _plain(",.0f")  # 12,345
knob = _plain("g")  # a knob's value as typed: 1, 0.25, 120
megabytes = _plain(".0f")


def vs(measured: str, model: str) -> str:
    return f"{measured} / {model}"


def duration(value: float | None) -> str:
    x = _num(value)
    if x is None:
        return DASH
    if x < 60:
        return f"{x:.0f} s"
    minutes, secs = divmod(round(x), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def date(value: str | None) -> str:
    if not value:
        return "date unknown"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is not None and when.utcoffset() == UTC.utcoffset(None):
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%Y-%m-%d %H:%M %z").strip()


def cores(value: int | list[int] | None) -> str:
    """core 0, or cores 0, 1: pinning may give one core or a list."""
    found = [str(c) for c in value] if isinstance(value, list) else [] if value is None else [str(value)]
    if not found:
        return "?"
    return f"core {found[0]}" if len(found) == 1 else "cores " + ", ".join(found)


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[int] = ()) -> str:
    """A GitHub Markdown table; columns whose index is in `right` are right-aligned."""
    right = set(right)
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mark(i: int) -> str:
    """A footnote's mark: ¹, ², ..."""
    return str(i).translate(_SUPERSCRIPT)
