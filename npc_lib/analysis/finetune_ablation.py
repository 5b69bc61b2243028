"""What fine-tuning buys: EfficientNet-Lite0 with its top blocks fine-tuned (:mod:`npc_lib.learn.partial_finetune`)
against the same network's frozen-backbone head, from ImageNet and from random weights, on the same datasets,
variants and test patients of the main split.

Four arms per dataset × variant: ImageNet + fine-tuned (``finetune/imagenet``), random + fine-tuned
(``finetune/random``), ImageNet + head (the main grid's Lite0 run, the fine-tuned arm's warm start) and random +
head (``ablation``, likewise). Each is scored at image level (DeLong CI clustered by patient) and patient level;
each fine-tuned arm has a paired DeLong p value against its own head on the same test patients (``p_vs_head``).
``seconds`` is a fine-tuned run's own training time (the activations below its blocks were cached by the feature
pass); for a head, its share of the stacked fit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.analysis.evaluation import load_runs
from npc_lib.analysis.metrics import MetricError, auc_ci_delong, delong_test, patient_scores
from npc_lib.layout import RunLayout
from npc_lib.vocabulary import LITE0

COLUMNS = ["dataset", "variant", "init", "mode", "blocks_trained", "epochs", "level", "auc", "auc_low", "auc_high",
           "p_vs_head", "seconds", "test_patients", "note"]


def _arms(layout: RunLayout) -> dict[tuple[str, str], RunLayout]:
    return {("imagenet", "finetune"): layout.finetune("imagenet"), ("random", "finetune"): layout.finetune("random"),
            ("imagenet", "head"): layout, ("random", "head"): layout.ablation}


def _tests(layout: RunLayout) -> dict:
    out = {}
    for (init, mode), arm in _arms(layout).items():
        if arm.models.is_dir():
            for meta, pred in load_runs(arm.models, [LITE0]):
                cfg = meta["config"]
                if cfg["backbone"] == LITE0:
                    out[(cfg["dataset"], cfg["variant"], init, mode)] = (meta, pred[pred["split"] == "test"])
    return out


def finetune_ablation(runs_dir: RunLayout | str) -> pd.DataFrame:
    """The four arms per dataset × variant × level (only the dataset × variant cells that were fine-tuned).

    Parameters
    ----------
    runs_dir : the runs folder

    Returns
    -------
    DataFrame with ``COLUMNS``.
    """
    layout = RunLayout.of(runs_dir)
    tests = _tests(layout)
    tuned = {(d, v) for d, v, _, mode in tests if mode == "finetune"}
    rows = []
    for (d, v, init, mode), (meta, test) in tests.items():
        if (d, v) not in tuned:
            continue
        head = tests.get((d, v, init, "head"))
        ft = meta.get("finetune", {})
        for level in ("image", "patient"):
            row = {"dataset": d, "variant": v, "init": init, "mode": mode,
                   "blocks_trained": ft.get("blocks") if mode == "finetune" else 0,
                   "epochs": ft.get("best_epoch") if mode == "finetune" else meta["config"]["train"]["epochs"],
                   "level": level, "seconds": meta.get("wall_s"), "test_patients": test["patient_id"].nunique(),
                   "p_vs_head": np.nan, "note": ""}
            try:
                frame = patient_scores(test) if level == "patient" else test
                groups = test["patient_id"].to_numpy() if level == "image" else None
                ci = auc_ci_delong(frame["label"], frame["probability"], groups=groups)
                row.update(auc=ci.auc, auc_low=ci.low, auc_high=ci.high)
                if mode == "finetune" and head is not None:
                    other = head[1].set_index("image_id").loc[test["image_id"]]
                    if level == "patient":
                        mine = patient_scores(test).set_index("patient_id")
                        theirs = patient_scores(other.reset_index()).set_index("patient_id").loc[mine.index]
                        row["p_vs_head"] = delong_test(mine["label"], mine["probability"], theirs["probability"]).p
                    else:
                        row["p_vs_head"] = delong_test(test["label"], test["probability"],
                                                       other["probability"].to_numpy(), groups=groups).p
            except MetricError as exc:
                row["note"] = str(exc)
            rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    order = {("imagenet", "finetune"): 0, ("imagenet", "head"): 1, ("random", "finetune"): 2, ("random", "head"): 3}
    out["_o"] = [order[(i, m)] for i, m in zip(out["init"], out["mode"])]
    return out.sort_values(["dataset", "variant", "level", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def finetune_numbers(table: pd.DataFrame) -> dict:
    """What the book quotes: the blocks and epochs, and at patient level the mean AUC of each arm over the cells,
    the fine-tuned arms' gains over their heads and the smallest paired p value."""
    keys = ("ft_epochs", "ft_blocks", "ft_cells", "ft_imagenet_finetune", "ft_imagenet_head", "ft_random_finetune",
            "ft_random_head", "ft_seconds_imagenet", "ft_gain_imagenet", "ft_gain_random", "ft_min_p")
    if not len(table):
        return dict.fromkeys(keys, "n/a")
    pat = table[table["level"] == "patient"]
    mean = pat.groupby(["init", "mode"])["auc"].mean()
    tuned = table[table["mode"] == "finetune"]
    ft = tuned[(tuned["init"] == "imagenet") & (tuned["level"] == "patient")]
    return {"ft_epochs": f"{int(tuned['epochs'].min())}–{int(tuned['epochs'].max())}" if len(tuned) else "n/a",
            "ft_blocks": int(tuned["blocks_trained"].max()) if len(tuned) else "n/a",
            "ft_cells": ", ".join(f"{d} {v}" for d, v in pat[["dataset", "variant"]].drop_duplicates().itertuples(index=False)),
            **{f"ft_{i}_{m}": f"{mean.get((i, m), float('nan')):.3f}" for i in ("imagenet", "random")
               for m in ("finetune", "head")},
            **{f"ft_gain_{i}": f"{mean.get((i, 'finetune'), np.nan) - mean.get((i, 'head'), np.nan):+.3f}"
               for i in ("imagenet", "random")},
            "ft_min_p": f"{pat['p_vs_head'].min():.2g}" if pat["p_vs_head"].notna().any() else "n/a",
            "ft_seconds_imagenet": f"{ft['seconds'].sum():.0f}" if len(ft) else "n/a"}
