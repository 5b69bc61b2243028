"""The Grad-CAM view: pick a dataset × variant, a test patient's image and a model; the map lies over the ROI
image with the ROI outlined, and the CAM-in-ROI share and enrichment of that map are written beside it."""
from __future__ import annotations

import numpy as np

from npc_lib.analysis.gradcam import cam_in_roi
from npc_lib.show.views.embed import View
from npc_lib.show.views.pictures import data_uri

SIZE = 128  # picture side (pixels)


def cam_cells(examples: dict, size: int = SIZE) -> dict:
    """The view's data from the saved Grad-CAM examples (``"<dataset>~<variant>"`` -> images, masks, labels,
    patients and ``cams`` {backbone: maps}): pictures, ROI outlines and each map's CAM-in-ROI numbers."""
    from matplotlib import colormaps
    from skimage import measure
    cells = {}
    for key, ex in examples.items():
        images, masks = ex["images"], ex["masks"]
        s = images.shape[1]
        scale = size / s
        outlines = []
        for m in masks:
            xs, ys = [], []
            for c in measure.find_contours(np.asarray(m, float), 0.5):
                xs.append(list(np.round(c[:, 1] * scale, 1)))
                ys.append(list(np.round((s - c[:, 0]) * scale, 1)))
            outlines.append({"xs": xs, "ys": ys})
        heat, stats = {}, {}
        for b, cams in ex["cams"].items():
            heat[b], stats[b] = [], []
            for cam, m in zip(np.asarray(cams, np.float32), masks):
                if not np.isfinite(cam).all():
                    heat[b].append("")
                    stats[b].append("no map: the model's last convolutional grid is 1×1 at this input size")
                    continue
                rgba = (colormaps["viridis"](np.clip(cam, 0, 1)) * 255).astype(np.uint8)
                heat[b].append(data_uri(rgba[..., :3], size))
                r = cam_in_roi(cam, m)
                stats[b].append(f"CAM in the ROI {r['fraction']:.0%} of the map, ROI {r['area_share']:.0%} of the "
                                f"image: enrichment {r['enrichment']:.2f}" if np.isfinite(r["enrichment"]) else
                                "no positive CAM mass")
        patients = ex.get("patients", [f"image {i}" for i in range(len(images))])
        labels = [f"{p} · {'DM' if y else 'no DM'}" for p, y in zip(patients, ex["labels"])]
        cells[key] = {"labels": labels, "grey": [data_uri(im, size) for im in images], "heat": heat,
                      "stats": stats, "outlines": outlines}
    return cells


def cam_view(cells: dict, first: str, backbone: str, name: str = "gradcam") -> View:
    """The view over :func:`cam_cells`."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, Div, Select, Slider
    from bokeh.plotting import figure
    size = SIZE
    cell = cells[first]
    p = figure(width=380, height=380, x_range=(0, size), y_range=(0, size), tools="pan,wheel_zoom,reset",
               toolbar_location="below", name=f"{name}-plot")
    p.axis.visible = p.grid.visible = False
    grey = ColumnDataSource({"url": [cell["grey"][0]]})
    heat = ColumnDataSource({"url": [cell["heat"][backbone][0]]})
    outline = ColumnDataSource(cell["outlines"][0])
    p.image_url(url="url", x=0, y=size, w=size, h=size, anchor="top_left", source=grey)
    heat_glyph = p.image_url(url="url", x=0, y=size, w=size, h=size, anchor="top_left", source=heat,
                             global_alpha=0.45)
    p.multi_line("xs", "ys", source=outline, line_color="#ff4040", line_width=1.5)
    keys = list(cells)
    backbones = list(dict.fromkeys(b for c in cells.values() for b in c["heat"]))
    pick_cell = Select(title="dataset · variant", value=first, options=[(k, k.replace("~", " · ")) for k in keys],
                       name=f"{name}-cell", width=240)
    pick_image = Select(title="test patient (image)", value="0",
                        options=[(str(i), t) for i, t in enumerate(cell["labels"])], name=f"{name}-patient",
                        width=240)
    pick_model = Select(title="model (backbone)", value=backbone, options=backbones, name=f"{name}-model",
                        width=240)
    opacity = Slider(start=0, end=1, step=0.05, value=0.45, title="map opacity", width=240, name=f"{name}-opacity")
    stats = Div(text=cell["stats"][backbone][0], name=f"{name}-stats", width=240)
    pick_cell.tags = [cells]  # the cells' data, held once by the menu (a callback's own args would copy it)
    draw = CustomJS(args=dict(pick_cell=pick_cell, pick_image=pick_image, pick_model=pick_model,
                              grey=grey, heat=heat, outline=outline, stats=stats), code=_DRAW_JS)
    reset = CustomJS(args=dict(pick_cell=pick_cell, pick_image=pick_image), code=_CELL_JS)
    pick_cell.js_on_change("value", reset, draw)
    pick_image.js_on_change("value", draw)
    pick_model.js_on_change("value", draw)
    opacity.js_link("value", heat_glyph.glyph, "global_alpha")
    return View(row(p, column(pick_cell, pick_image, pick_model, opacity, stats)), name, "Grad-CAM maps")


_CELL_JS = """
const c = pick_cell.tags[0][pick_cell.value];
pick_image.options = c.labels.map((t, i) => [String(i), t]);
pick_image.value = "0";
"""
_DRAW_JS = """
const c = pick_cell.tags[0][pick_cell.value];
const i = Math.min(parseInt(pick_image.value), c.grey.length - 1);
const maps = c.heat[pick_model.value];
grey.data = {url: [c.grey[i]]};
heat.data = {url: [maps ? maps[i] : ""]};
outline.data = c.outlines[i];
stats.text = maps ? c.stats[pick_model.value][i] : "this model has no map for this dataset";
"""
