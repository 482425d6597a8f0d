"""What the benchmark prints when it is done: its bursts and its goals as rich tables.

    goal_table(results)       the goals as a rich Table (PASS green, FAIL red)
    burst_table(results)      makespans, measured / model, as a rich Table (None without bursts)
    console_summary(results)  the bursts, then the goals with the verdict
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from bench.format import DASH
from bench.report import NOT_MEASURED, burst_cell, verdict
from bench.results import Results


def goal_table(results: Results) -> Table:
    """Every goal as a rich Table: PASS green, FAIL red, not measured dim; the verdict as caption."""
    goals = results.goals
    style = "bold red" if any(g.passed is False for g in goals) else "bold green" if goals else "dim"
    shown = Table(title="Goals", caption=verdict(results), caption_justify="left", caption_style=style)
    for column in ("group", "goal", "target", "measured"):
        shown.add_column(column, overflow="fold")
    shown.add_column("result", justify="center", no_wrap=True)
    for g in goals:
        result = (Text("PASS", style="bold green") if g.passed is True else
                  Text("FAIL", style="bold red") if g.passed is False else Text("not measured", style="dim"))
        shown.add_row(g.group or "", g.name or "?", g.target or "", g.measured or DASH, result)
    return shown


def burst_table(results: Results) -> Table | None:
    """Makespans, measured / model, one row per N and one column per burst label; None without bursts."""
    labels, sizes, cells = results.burst_grid()
    if not cells:
        return None
    shown = Table(title="Bursts: makespan in s, measured / model")
    shown.add_column("N", justify="right")
    for label in labels:
        shown.add_column(label, justify="right", no_wrap=True)
    for n in sizes:
        row: list[Text | str] = [str(n)]
        for label in labels:
            text, reason = burst_cell(cells.get((label, n)))
            row.append(Text(text, style="dim") if reason else text)
        shown.add_row(*row)
    return shown


def console_summary(results: Results) -> list[RenderableType]:
    """What the benchmark prints when it is done: the bursts, then the goals with the verdict."""
    bursts = burst_table(results)
    return [bursts if bursts is not None else Text(f"bursts: {NOT_MEASURED}", style="dim"), goal_table(results)]
