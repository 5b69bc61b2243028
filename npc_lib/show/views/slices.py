"""The slices view: pick a patient, scroll the slices that hold their ROIs, toggle the NPC and CMLN rectangles
and the 3 mm rim (the intra-peritumour rectangle)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.show.views.embed import View
from npc_lib.show.views.pictures import data_uri, windowed
from npc_lib.vocabulary import INTRA_PERITUMOUR, INTRATUMOUR

LAYERS = (("npc", INTRATUMOUR, "NPC (primary tumour)", "#ff5a36", "solid"),
          ("cmln", INTRATUMOUR, "CMLN (lymph nodes)", "#36c5ff", "solid"),
          (None, INTRA_PERITUMOUR, "3 mm rim (intra-peritumour)", "#ffd23f", "dashed"))


def patient_slices(pixels: np.ndarray, rows: pd.DataFrame, columns: dict, size: int, margin: int = 1) -> dict:
    """One patient's pictures and rectangles: the slices that hold an ROI, ``margin`` more on each side; the
    rectangles in picture coordinates (y up), one flat list ``[left, right, top, bottom, ...]`` per layer of
    :data:`LAYERS` (compact in the page; :func:`boxes` and the view's script unpack it)."""
    n, h, w = pixels.shape
    held = sorted(rows["slice_index"].astype(int).unique()) or [n // 2]
    ks = list(range(max(0, held[0] - margin), min(n, held[-1] + margin + 1)))
    grey = windowed(pixels[ks])  # one window for the patient's slices: scrolling keeps the contrast
    scale = size / max(h, w)
    out = {"slices": ks, "urls": [data_uri(g, size) for g in grey], "layers": []}
    for k in ks:
        here = rows[rows["slice_index"] == k]
        per_layer = []
        for region, variant, *_ in LAYERS:
            part = here if region is None else here[here["region"] == region]
            x0, y0, x1, y1 = (part[c].to_numpy(float) for c in columns[variant])
            edges = np.stack([x0 * scale, x1 * scale, (h - y0) * scale, (h - y1) * scale], axis=1)
            per_layer.append([round(float(c), 1) for c in edges.reshape(-1)])  # a tenth of a picture pixel
        out["layers"].append(per_layer)
    out["shape"] = (round(h * scale), round(w * scale))
    return out


def slices_view(patients: dict, labels: dict, first: str, name: str = "slices") -> View:
    """The view over :func:`patient_slices` of several patients (``labels``: patient -> what the menu says)."""
    from bokeh.layouts import column, row
    from bokeh.models import CheckboxGroup, ColumnDataSource, CustomJS, Div, Select, Slider
    from bokeh.plotting import figure
    h, w = patients[first]["shape"]
    p = figure(width=460, height=round(460 * h / w), x_range=(0, w), y_range=(0, h), tools="pan,wheel_zoom,reset",
               toolbar_location="below", match_aspect=True, name=f"{name}-plot")
    p.axis.visible = p.grid.visible = False
    start = _default_slice(patients[first])
    image = ColumnDataSource({"url": [patients[first]["urls"][start]]}, name=f"{name}-image")
    p.image_url(url="url", x=0, y=h, w=w, h=h, anchor="top_left", source=image)
    sources, renderers = [], []
    for i, (_, _, title, colour, dash) in enumerate(LAYERS):
        src = ColumnDataSource(boxes(patients[first]["layers"][start][i]))
        sources.append(src)
        renderers.append(p.quad(left="left", right="right", top="top", bottom="bottom", source=src,
                                fill_alpha=0, line_color=colour, line_width=2, line_dash=dash, legend_label=title))
    p.legend.location, p.legend.label_text_font_size, p.legend.background_fill_alpha = "top_left", "8pt", 0.6
    picker = Select(title="patient (test patients)", value=first, options=[(k, labels[k]) for k in patients],
                    name=f"{name}-patient", width=220)
    slider = Slider(start=0, end=max(1, len(patients[first]["slices"]) - 1), value=start, step=1,
                    title="slice (of those holding an ROI, ±1)", name=f"{name}-slider", width=220,
                    disabled=len(patients[first]["slices"]) < 2)
    toggles = CheckboxGroup(labels=[t for _, _, t, _, _ in LAYERS], active=list(range(len(LAYERS))),
                            name=f"{name}-layers")
    caption = Div(text=_caption(first, patients[first], start), name=f"{name}-caption", width=230)
    picker.tags = [patients]  # the patients' data, held once by the menu (a callback's own args would copy it)
    draw = CustomJS(args=dict(picker=picker, slider=slider, image=image, sources=sources, caption=caption),
                    code=_DRAW_JS)
    jump = CustomJS(args=dict(picker=picker, slider=slider), code=_JUMP_JS)
    picker.js_on_change("value", jump, draw)
    slider.js_on_change("value", draw)
    toggles.js_on_change("active", CustomJS(args=dict(renderers=renderers, toggles=toggles), code=_TOGGLE_JS))
    return View(row(p, column(picker, slider, toggles, caption)), name, "patient slices with ROIs")


def boxes(flat: list) -> dict:
    """A layer's flat ``[left, right, top, bottom, ...]`` as the columns a quad glyph draws."""
    e = np.asarray(flat, float).reshape(-1, 4)
    return {k: e[:, j].tolist() for j, k in enumerate(("left", "right", "top", "bottom"))}


def _default_slice(patient: dict) -> int:
    """The slice whose rectangles cover most area."""
    areas = [sum((np.array(b["right"]) - b["left"]) @ (np.array(b["top"]) - b["bottom"])
                 for b in map(boxes, layers[:2])) for layers in patient["layers"]]
    return int(np.argmax(areas)) if areas else 0


def _caption(pid: str, patient: dict, i: int) -> str:
    return f"<b>{pid}</b>, slice {patient['slices'][i]}"


_JUMP_JS = """
const p = picker.tags[0][picker.value];
let best = 0, area = -1;
p.layers.forEach((layers, i) => {
  let a = 0;
  for (const l of layers.slice(0, 2)) for (let j = 0; j < l.length; j += 4)
    a += (l[j + 1] - l[j]) * (l[j + 2] - l[j + 3]);
  if (a > area) { area = a; best = i; }
});
slider.end = Math.max(1, p.slices.length - 1);
slider.disabled = p.slices.length < 2;
slider.value = best;
"""
_DRAW_JS = """
const p = picker.tags[0][picker.value];
const i = Math.min(slider.value, p.slices.length - 1);
image.data = {url: [p.urls[i]]};
sources.forEach((s, j) => {
  const l = p.layers[i][j], d = {left: [], right: [], top: [], bottom: []};
  for (let k = 0; k < l.length; k += 4) {
    d.left.push(l[k]); d.right.push(l[k + 1]); d.top.push(l[k + 2]); d.bottom.push(l[k + 3]);
  }
  s.data = d;
});
caption.text = `<b>${picker.value}</b>, slice ${p.slices[i]}`;
"""
_TOGGLE_JS = """
renderers.forEach((r, i) => { r.visible = toggles.active.includes(i); });
"""
