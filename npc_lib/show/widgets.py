"""Explorers with two faces: ipywidgets controls for JupyterLab (``widget()``) and an interactive view for the
static book (``view()``, :mod:`npc_lib.show.views`), both over the same data; ``static()`` is the default view
as a plain figure (what a printed page shows).

Every explorer keeps its controls in ``controls``, draws with the pure method ``figure()``
from the current values, and redraws on any change (``last_figure`` holds the latest figure,
so callbacks are testable without a kernel).
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle
import numpy as np
import pandas as pd

from npc_lib.errors import NpcError
from npc_lib.show.plots import overlay, roc_frame, roc_of_run
from npc_lib.data.dicom import read_series
from npc_lib.data.rois import VARIANT_REGISTRY


def figure_png(fig, dpi: int = 100):
    """A figure as an IPython PNG image: shown by every front end whatever matplotlib backend is
    active (a bare figure object under the Agg backend would show as its text repr)."""

    from IPython.display import Image
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return Image(data=buf.getvalue(), format="png")


class Explorer:
    """Base: controls → figure(); ``widget()`` for JupyterLab, ``static()`` for the book."""

    controls: dict

    def figure(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _connect(self):
        import ipywidgets as w
        self.output = w.Output()
        self.last_figure = None
        for c in self.controls.values():
            c.observe(lambda _change: self.refresh(), names="value")

    def refresh(self):
        if self.last_figure is not None:
            plt.close(self.last_figure)
        self.last_figure = self.figure()
        try:
            from IPython import get_ipython
            live = get_ipython() is not None
        except ImportError:  # pragma: no cover
            live = False
        if live:
            from IPython.display import clear_output, display
            with self.output:
                clear_output(wait=True)
                display(figure_png(self.last_figure))
        return self.last_figure

    def widget(self):
        import ipywidgets as w
        self.refresh()
        return w.VBox([w.HBox(list(self.controls.values())), self.output])

    def static(self):
        """The default view as a plain figure (what the book shows above the widget)."""
        return self.figure()


class SliceExplorer(Explorer):
    """A patient's slices with each registered variant's ROI rectangles (intratumour solid,
    intra-peritumour dashed, any further variant dotted).

    Parameters
    ----------
    cohort_dir : the cohort folder
    index : the image store's index (which slices hold ROIs, and their rectangles)
    """

    def __init__(self, cohort_dir: str | Path, index: pd.DataFrame):
        import ipywidgets as w
        self.cohort_dir, self.index = Path(cohort_dir), index
        patients = sorted(index["patient_id"].unique())
        first = index[index["patient_id"] == patients[0]]
        self._series = {}
        self.controls = {
            "patient": w.Dropdown(options=patients, value=patients[0], description="patient"),
            "slice": w.IntSlider(value=int(first["slice_index"].mode().iloc[0]), min=0, max=64, description="slice"),
            "boxes": w.ToggleButtons(options=["all", *VARIANT_REGISTRY], value="all"),
        }
        self._connect()
        self.controls["patient"].observe(lambda ch: self._jump(ch["new"]), names="value")

    def view(self, patients: list[str], labels: dict | None = None, size: int = 160):
        """The book face: ``patients``' slices that hold an ROI (±1), their rectangles and the 3 mm rim, with a
        patient menu (``labels``: patient -> what the menu says), a slice slider and layer toggles."""
        from npc_lib.data.rois import box_columns
        from npc_lib.show.views.slices import patient_slices, slices_view
        columns = box_columns()
        data = {pid: patient_slices(self._pixels(pid), self.index[self.index["patient_id"] == pid], columns, size)
                for pid in patients}
        return slices_view(data, labels or {p: p for p in patients}, patients[0])

    def _pixels(self, pid: str) -> np.ndarray:
        if pid not in self._series:
            self._series = {pid: read_series(self.cohort_dir / "dicom" / pid).pixels}  # one patient in RAM
        return self._series[pid]

    def _jump(self, pid: str):
        rows = self.index[self.index["patient_id"] == pid]
        self.controls["slice"].max = self._pixels(pid).shape[0] - 1
        if len(rows):
            self.controls["slice"].value = int(rows["slice_index"].mode().iloc[0])

    def figure(self):
        pid, k, mode = (self.controls[c].value for c in ("patient", "slice", "boxes"))
        px = self._pixels(pid)
        k = min(k, px.shape[0] - 1)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.imshow(px[k], cmap="gray", vmin=np.percentile(px[k], 1), vmax=np.percentile(px[k], 99.5))
        rows = self.index[(self.index["patient_id"] == pid) & (self.index["slice_index"] == k)]
        for r in rows.itertuples():
            colour = "#ff5a36" if r.region == "npc" else "#36c5ff"
            for i, (name, variant) in enumerate(VARIANT_REGISTRY.items()):
                if mode in ("all", name) and all(hasattr(r, c) for c in variant.columns):
                    x0, y0, x1, y1 = (getattr(r, c) for c in variant.columns)
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour,
                                           lw=1.4 if i == 0 else 1.0, ls=("-", "--", ":", "-.")[min(i, 3)]))
        ax.set_title(f"{pid}, slice {k}: {len(rows)} ROI(s) (red NPC, blue CMLN; dashed grown)", fontsize=9)
        ax.axis("off")
        fig.tight_layout()
        return fig


class RocExplorer(Explorer):
    """ROC curves of the chosen dataset × variant for the chosen backbones, image or patient level.

    Parameters
    ----------
    runs : (dataset, variant, backbone) -> predictions (one row per image)
    references : name -> {(dataset, variant) -> predictions of a reference scored like a run} (planted risk,
        pixel reference); drawn dashed in the book face
    tnm : the test patients' ``patient_id, label`` and a TNM score column ``tnm_column`` (the book face's TNM
        curve)
    """

    def __init__(self, runs: dict, references: dict | None = None, tnm: pd.DataFrame | None = None,
                 tnm_column: str = "ordinal_stage"):
        import ipywidgets as w
        self.runs, self.references, self.tnm, self.tnm_column = runs, references or {}, tnm, tnm_column
        datasets = sorted({k[0] for k in runs})
        variants = sorted({k[1] for k in runs})
        backbones = sorted({k[2] for k in runs})
        self.controls = {
            "dataset": w.Dropdown(options=datasets, value=datasets[0], description="dataset"),
            "variant": w.ToggleButtons(options=variants, value=variants[-1]),
            "level": w.ToggleButtons(options=["image", "patient"], value="patient"),
            "backbones": w.SelectMultiple(options=backbones, value=tuple(backbones), description="backbones"),
        }
        self._connect()

    def figure(self):
        d, v, level, chosen = (self.controls[c].value for c in ("dataset", "variant", "level", "backbones"))
        fig, ax = plt.subplots(figsize=(4.8, 4.8))
        for b in chosen:
            if (d, v, b) in self.runs:
                roc_of_run(ax, self.runs[(d, v, b)], level, b)
        roc_frame(ax, f"{d}, {v} ({level} level)")
        fig.tight_layout()
        return fig

    def view(self):
        """The book face: patient-level test ROC curves of every dataset × variant (backbones solid; the
        references and TNM stage dashed), with menus, curve toggles and point tooltips."""
        from npc_lib.show.plots.base import BACKBONE_COLOURS
        from npc_lib.show.views.roc import patient_frame, roc_view
        curves = {}
        for (d, v, b), pred in self.runs.items():
            cell = curves.setdefault((d, v), {})
            cell[b] = patient_frame(pred)
        for (d, v), cell in curves.items():
            for name, by_cell in self.references.items():
                if by_cell and (d, v) in by_cell and by_cell[(d, v)] is not None:
                    cell[name] = patient_frame(by_cell[(d, v)])
            if self.tnm is not None:
                ids = next(iter(cell.values()))["patient_id"]
                t = self.tnm[self.tnm["patient_id"].isin(ids)]
                cell["TNM stage"] = t.assign(score=t[self.tnm_column].astype(float))[["patient_id", "label", "score"]]
        backbones = sorted({k[2] for k in self.runs})
        colours = {**BACKBONE_COLOURS, "planted risk": "#222222", "pixel reference": "#8c564b",
                   "TNM stage": "#7f7f7f", "_backbones": tuple(backbones)}
        first = (self.controls["dataset"].value, self.controls["variant"].value)
        ordered = {k: {n: c[n] for n in [*backbones, *sorted(set(c) - set(backbones))] if n in c}
                   for k, c in sorted(curves.items())}
        return roc_view(ordered, colours, first)


class CamViewer(Explorer):
    """Grad-CAM overlays saved by the Grad-CAM notebook: model, image and overlay opacity.

    Parameters
    ----------
    cams_npz : the file :func:`npc_lib.analysis.cam_study.save_cam_examples` wrote
    """

    def __init__(self, cams_npz: str | Path):
        import ipywidgets as w
        if not Path(cams_npz).is_file():
            raise NpcError(f"no Grad-CAM maps at {cams_npz}: run the Grad-CAM notebook (05_gradcam) for this "
                           "study first")
        z = np.load(cams_npz, allow_pickle=False)
        self.data = {k: z[k] for k in z.files}
        keys = sorted({k.split("|")[0] for k in self.data if k.endswith("|images")})
        first = keys[0]
        backbones = sorted({k.split("|")[2] for k in self.data if k.startswith(first + "|cam|")})
        self.controls = {
            "run": w.Dropdown(options=keys, value=first, description="dataset"),
            "backbone": w.Dropdown(options=backbones, value=backbones[0], description="backbone"),
            "image": w.IntSlider(value=0, min=0, max=len(self.data[f"{first}|images"]) - 1, description="image"),
            "alpha": w.FloatSlider(value=0.45, min=0.0, max=1.0, step=0.05, description="overlay"),
        }
        self._connect()

    def view(self):
        """The book face: every saved image of every dataset × variant under each model's map, with menus, an
        opacity slider and the map's CAM-in-ROI share and enrichment."""
        from npc_lib.show.views.cams import cam_cells, cam_view
        examples = {}
        for key in sorted({k.split("|")[0] for k in self.data if k.endswith("|images")}):
            ex = {part: self.data[f"{key}|{part}"] for part in ("images", "masks", "labels")}
            if f"{key}|patients" in self.data:
                ex["patients"] = self.data[f"{key}|patients"]
            ex["cams"] = {k.split("|")[2]: v for k, v in self.data.items() if k.startswith(f"{key}|cam|")}
            examples[key] = ex
        return cam_view(cam_cells(examples), self.controls["run"].value, self.controls["backbone"].value)

    def figure(self):
        key, b, i, alpha = (self.controls[c].value for c in ("run", "backbone", "image", "alpha"))
        images, masks = self.data[f"{key}|images"], self.data[f"{key}|masks"]
        i = min(i, len(images) - 1)
        cam = self.data.get(f"{key}|cam|{b}")
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        if cam is not None and np.isfinite(cam[i]).all():
            ax.imshow(overlay(images[i], cam[i], alpha))
        else:
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            ax.text(0.5, 0.05, "no CAM (1×1 conv map)", transform=ax.transAxes, ha="center", color="w", fontsize=8)
        if masks[i].any():
            ax.contour(masks[i], levels=[0.5], colors="#ff4040", linewidths=0.8)
        label = "DM" if self.data[f"{key}|labels"][i] else "no DM"
        ax.set_title(f"{key.replace('~', ' ')}: {b}, image {i} ({label})", fontsize=8)
        ax.axis("off")
        fig.tight_layout()
        return fig
