"""Tables laid out for the book as the paper prints them (the CSVs keep the long forms)."""
from __future__ import annotations

import pandas as pd

from .models import BACKBONES

VARIANT_HEADS = {"intratumour": "Intratumour", "intra_peritumour": "Intra-peritumour"}


def _model_name(key: str) -> str:
    return BACKBONES[key].constructor if key in BACKBONES else key


def table2_paper_form(t2: pd.DataFrame, level: str = "image") -> pd.DataFrame:
    """Table 2 as in the paper: one row per dataset × model (datasets named once), and per
    variant the AUC and accuracy (%) beside the published values and the differences.

    Parameters
    ----------
    t2 : the long table of :func:`npc_lib.evaluation.table2` (``group, dataset, backbone,
        auc_<variant>, accuracy_<variant>, ..._published, ..._diff``).
    level : only for the header: ``image`` (the paper's unit) or ``patient``.

    Returns
    -------
    DataFrame with two-level columns: ("", Dataset | Model) and (variant × AUC / accuracy) ×
    (ours, paper, Δ); the pixel reference model closes the table as its own row group.
    """
    rows, last = [], None
    for r in t2.to_dict("records"):
        group = r.get("group", "CNN")
        model = _model_name(r["backbone"]) if group == "CNN" else f"Pixel reference ({r['backbone']})"
        row = {("", "Dataset"): r["dataset"] if (r["dataset"], group) != last else "", ("", "Model"): model}
        last = (r["dataset"], group)
        for v, head in VARIANT_HEADS.items():
            for metric, label, scale in (("auc", "AUC", 1), ("accuracy", "Accuracy (%)", 1)):
                ours, pub = r.get(f"{metric}_{v}"), r.get(f"{metric}_{v}_published")
                row[(f"{head} {label}", f"ours ({level})")] = ours
                row[(f"{head} {label}", "paper")] = pub
                row[(f"{head} {label}", "Δ")] = r.get(f"{metric}_{v}_diff")
        rows.append(row)
    out = pd.DataFrame(rows)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out
