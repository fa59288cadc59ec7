"""The report as a PNG: one horizontal stacked bar per rule (the busiest first).

matplotlib's object API on the Agg canvas — no pyplot, so no global figure state and no GUI
backend: safe in a worker thread (:func:`render_png_async` renders off the event loop, since a
chart takes tens of milliseconds of CPU).
"""

from __future__ import annotations

import asyncio
import io

from secbot.stats.report import StatsReport
from secbot.stats.table import period_title

#: Bars drawn; the rest of the rules are in the table beside the chart.
MAX_BARS = 12
#: (label, colour) of each stack segment, in drawing order.
SEGMENTS = (("auto-closed", "#8bc34a"), ("closed by people", "#2e7d32"),
            ("acknowledged", "#ffb300"), ("open", "#e53935"))


def render_png(report: StatsReport) -> bytes:
    """PNG bytes of the chart (a placeholder text when the period had no alerts)."""
    # Imported here: matplotlib costs a few hundred ms to import, which every CLI command
    # (they share the wiring) would otherwise pay at start.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lines = [line for line in report.rules if line.alerts][:MAX_BARS]
    figure = Figure(figsize=(9.0, 1.6 + 0.45 * max(1, len(lines))), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    names = [line.name if len(line.name) <= 38 else line.name[:37] + "…" for line in lines]
    left = [0] * len(lines)
    for (label, colour), values in zip(SEGMENTS, (
            [line.auto_closed for line in lines], [line.closed for line in lines],
            [line.acknowledged for line in lines], [line.open for line in lines]), strict=True):
        axes.barh(names, values, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.invert_yaxis()  # busiest rule on top
    axes.set_xlabel("alerts")
    axes.set_title(f"Alerts by rule, {period_title(report).split(' (')[0]}", fontsize=10)
    if lines:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=8,
                    frameon=False)
    else:
        axes.text(0.5, 0.5, "no alerts in this period", ha="center", va="center",
                  transform=axes.transAxes)
        axes.set_yticks([])
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def render_png_async(report: StatsReport) -> bytes:
    """:func:`render_png` in a worker thread."""
    return await asyncio.to_thread(render_png, report)


__all__ = ["render_png", "render_png_async"]
