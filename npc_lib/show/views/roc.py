"""The ROC view: pick a dataset and a variant; toggle the backbones, the planted and pixel references and TNM
stage; hovering a curve's point shows its threshold, sensitivity and specificity (test patients)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from npc_lib.show.views.embed import View

EMPTY = {"fpr": [], "tpr": [], "threshold": [], "sensitivity": [], "specificity": []}


def roc_points(labels, scores) -> dict:
    """A patient-level ROC curve as the view draws it: every cut, with its threshold (the cut above every
    score is drawn just above the highest score) and the AUC; empty where the patients have one class."""
    y, s = np.asarray(labels, int), np.asarray(scores, float)
    if len(np.unique(y)) < 2 or not np.isfinite(s).all():
        return {**EMPTY, "auc": None}
    fpr, tpr, cut = roc_curve(y, s)
    above_all = np.ceil(s.max() * 1e4) / 1e4 + 1e-4  # a shown cut that still lies above every score
    cut = np.where(np.isfinite(cut), cut, above_all)
    return {"fpr": fpr.round(4).tolist(), "tpr": tpr.round(4).tolist(), "threshold": cut.round(4).tolist(),
            "sensitivity": tpr.round(3).tolist(), "specificity": (1 - fpr).round(3).tolist(),
            "auc": round(float(roc_auc_score(y, s)), 3)}


def roc_view(curves: dict, colours: dict, first: tuple[str, str], name: str = "roc") -> View:
    """``curves``: (dataset, variant) -> {curve name -> patient frame with ``label`` and ``score``}; every
    cell offers the same curve names (a missing one draws nothing). ``colours``: curve name -> colour."""
    from bokeh.layouts import column, row
    from bokeh.models import CheckboxGroup, ColumnDataSource, CustomJS, Div, HoverTool, Select
    from bokeh.plotting import figure
    names = list(dict.fromkeys(n for cell in curves.values() for n in cell))
    data = {f"{d}|{v}": {n: roc_points(f["label"], f["score"]) if (f := cell.get(n)) is not None else
                         {**EMPTY, "auc": None} for n in names} for (d, v), cell in curves.items()}
    key = f"{first[0]}|{first[1]}"
    p = figure(width=430, height=430, x_range=(-0.02, 1.02), y_range=(-0.02, 1.02), name=f"{name}-plot",
               x_axis_label="1 − specificity", y_axis_label="sensitivity", tools="pan,wheel_zoom,reset",
               toolbar_location="below")
    p.line([0, 1], [0, 1], line_dash="dotted", line_color="#999999")
    sources, lines, dots = [], [], []
    for n in names:
        src = ColumnDataSource({k: v for k, v in data[key][n].items() if k != "auc"})
        sources.append(src)
        dash = "solid" if n in colours.get("_backbones", ()) else "dashed"
        lines.append(p.line("fpr", "tpr", source=src, line_color=colours.get(n, "#444444"), line_width=2,
                            line_dash=dash, legend_label=n))
        dots.append(p.scatter("fpr", "tpr", source=src, size=7, fill_color=colours.get(n, "#444444"),
                              line_color=None, fill_alpha=0.35))
    p.add_tools(HoverTool(renderers=dots, tooltips=[("curve", "$name"), ("threshold", "@threshold"),
                                                     ("sensitivity", "@sensitivity"),
                                                     ("specificity", "@specificity")]))
    for n, d in zip(names, dots):
        d.name = n
    p.legend.location, p.legend.label_text_font_size = "bottom_right", "8pt"
    datasets = list(dict.fromkeys(d for d, _ in curves))
    variants = list(dict.fromkeys(v for _, v in curves))
    pick_d = Select(title="dataset", value=first[0], options=datasets, name=f"{name}-dataset", width=200)
    pick_v = Select(title="variant", value=first[1], options=variants, name=f"{name}-variant", width=200)
    toggles = CheckboxGroup(labels=names, active=list(range(len(names))), name=f"{name}-curves")
    aucs = Div(text=_auc_table(data[key], names), name=f"{name}-aucs", width=230)
    draw = CustomJS(args=dict(data=data, names=names, pick_d=pick_d, pick_v=pick_v, sources=sources, aucs=aucs),
                    code=_DRAW_JS)
    pick_d.js_on_change("value", draw)
    pick_v.js_on_change("value", draw)
    toggles.js_on_change("active", CustomJS(args=dict(lines=lines, dots=dots, toggles=toggles), code=_TOGGLE_JS))
    return View(row(p, column(pick_d, pick_v, toggles, aucs)), name, "ROC curves of the test patients")


def _auc_table(cell: dict, names: list[str]) -> str:
    rows = "".join(f"<tr><td>{n}</td><td>{'' if cell[n]['auc'] is None else format(cell[n]['auc'], '.3f')}</td></tr>"
                   for n in names)
    return f"<table class='npc-view-table'><tr><th>curve</th><th>patient AUC</th></tr>{rows}</table>"


_DRAW_JS = """
const cell = data[`${pick_d.value}|${pick_v.value}`];
let rows = "";
names.forEach((n, i) => {
  const c = cell ? cell[n] : null;
  sources[i].data = c ? {fpr: c.fpr, tpr: c.tpr, threshold: c.threshold, sensitivity: c.sensitivity,
                         specificity: c.specificity}
                      : {fpr: [], tpr: [], threshold: [], sensitivity: [], specificity: []};
  rows += `<tr><td>${n}</td><td>${c && c.auc !== null ? c.auc.toFixed(3) : ""}</td></tr>`;
});
aucs.text = `<table class='npc-view-table'><tr><th>curve</th><th>patient AUC</th></tr>${rows}</table>`;
"""
_TOGGLE_JS = """
lines.forEach((l, i) => { l.visible = dots[i].visible = toggles.active.includes(i); });
"""


def patient_frame(pred: pd.DataFrame, score: str = "probability") -> pd.DataFrame:
    """Test patients' mean score and label from per-image predictions."""
    test = pred[pred["split"] == "test"]
    return test.groupby("patient_id").agg(label=("label", "first"), score=(score, "mean")).reset_index()
