"""Forest plots of the book's long tables: one row per table row, estimates with their intervals, and the row's
numbers (as the table prints them) in a tooltip when the pointer rests on the row."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from npc_lib.show.views.embed import View

ROW_HEIGHT = 22  # pixels per table row


@dataclass(frozen=True)
class Series:
    """One estimate per row: its column, its interval's columns (None: no interval) and how it is drawn."""

    legend: str
    estimate: str
    low: str | None = None
    high: str | None = None
    colour: str = "#1f77b4"


def forest_view(table: pd.DataFrame, labels: list[str], series: list[Series], hover: pd.DataFrame, x_label: str,
                name: str, title: str, reference: float | None = None, band: tuple[str, str] | None = None,
                flagged: pd.Series | None = None) -> View:
    """A forest plot of ``table`` (numbers), one row per entry of ``labels`` (top to bottom).

    ``hover`` holds, row for row, what the tooltip shows (the printed table's columns); ``reference`` draws a
    vertical line (e.g. no change); ``band`` names two columns drawn as a grey interval behind the estimates
    (e.g. the chance bounds of the negative control); ``flagged`` (bool per row) draws those rows' estimates red.
    """
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
    from bokeh.plotting import figure
    from bokeh.transform import dodge
    if len(labels) != len(table) or len(hover) != len(table):
        raise ValueError("forest_view: labels, table and hover must have one entry per row")
    labels = _unique(labels)
    values = [table[c].to_numpy(float) for s in series for c in (s.estimate, s.low, s.high) if c]
    values += [table[c].to_numpy(float) for c in (band or ())] + ([np.array([reference])] if reference is not None
                                                                  else [])
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([0.0, 1.0])
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    pad = 0.05 * (hi - lo or 1.0)
    height = 110 + ROW_HEIGHT * len(labels)
    p = figure(width=640, height=height, y_range=FactorRange(*reversed(labels)), x_range=Range1d(lo - pad, hi + pad),
               x_axis_label=x_label, tools="xpan,xwheel_zoom,reset", toolbar_location="above", name=f"{name}-plot",
               title=title)
    p.yaxis.major_label_text_font_size = "8pt"
    shown = hover.reset_index(drop=True).astype(str).apply(lambda c: c.str.replace("<br>", " ", regex=False))
    tips = {f"h{i}": shown[c].tolist() for i, c in enumerate(shown.columns)}
    rows = ColumnDataSource({"row": labels, "left": [lo - pad] * len(labels), "right": [hi + pad] * len(labels),
                             **tips})
    targets = p.hbar(y="row", left="left", right="right", height=0.95, source=rows, fill_alpha=0, line_alpha=0,
                     hover_fill_color="#cccccc", hover_fill_alpha=0.35, name=f"{name}-rows")
    if band is not None:
        b = ColumnDataSource({"row": labels, "low": table[band[0]].to_numpy(float),
                              "high": table[band[1]].to_numpy(float)})
        p.hbar(y="row", left="low", right="high", height=0.55, source=b, fill_color="#dddddd", line_color=None,
               legend_label="chance bounds")
    if reference is not None:
        p.ray(x=[reference], y=[0], length=0, angle=np.pi / 2, line_color="#888888", line_dash="dashed")
        p.ray(x=[reference], y=[0], length=0, angle=-np.pi / 2, line_color="#888888", line_dash="dashed")
    offsets = np.linspace(-0.18, 0.18, len(series)) if len(series) > 1 else [0.0]
    red = np.zeros(len(labels), bool) if flagged is None else np.asarray(flagged, bool)
    for s, off in zip(series, offsets):
        y = dodge("row", float(off), range=p.y_range)
        src = ColumnDataSource({"row": labels, "x": table[s.estimate].to_numpy(float),
                                "low": table[s.low].to_numpy(float) if s.low else table[s.estimate].to_numpy(float),
                                "high": table[s.high].to_numpy(float) if s.high else table[s.estimate].to_numpy(float),
                                "colour": np.where(red, "#d62728", s.colour).tolist()})
        p.segment(x0="low", x1="high", y0=y, y1=y, source=src, line_color="colour", line_width=2)
        p.scatter(x="x", y=y, source=src, size=7, fill_color="colour", line_color="colour", legend_label=s.legend)
    p.add_tools(HoverTool(renderers=[targets], tooltips=[(c, f"@h{i}") for i, c in enumerate(shown.columns)],
                          mode="hline", point_policy="follow_mouse"))
    legend = p.legend[0]
    legend.orientation, legend.label_text_font_size, legend.location = "horizontal", "8pt", "center"
    p.add_layout(legend, "below")  # under the axis, clear of the rows
    return View(p, name, title)


def _unique(labels: list[str]) -> list[str]:
    """Labels made unique (a categorical axis needs it) by numbering repeats."""
    seen: dict[str, int] = {}
    out = []
    for lab in map(str, labels):
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} ({seen[lab]})")
    return out
