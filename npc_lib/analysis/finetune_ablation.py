"""What fine-tuning buys: EfficientNet-Lite0 with every layer trained (the paper's recipe, for the profile's
``finetune_ablation`` epochs) against the frozen-backbone heads, from ImageNet and from random weights, on
the same datasets, variants and test patients of the main split.

Four arms per dataset × variant: ImageNet + fine-tuned (``finetune/imagenet``), random + fine-tuned
(``finetune/random``), ImageNet + head (the main grid's Lite0 run) and random + head (``ablation``). Each
is scored at image level (DeLong CI clustered by patient) and patient level; ``seconds`` is the run's own
wall time (for the heads: their share of the stacked fit, after the backbone features, which are computed
once per image for every dataset, were cached).
"""
from __future__ import annotations

import pandas as pd

from npc_lib.analysis.evaluation import load_runs
from npc_lib.analysis.metrics import MetricError, auc_ci_delong, patient_scores
from npc_lib.layout import RunLayout
from npc_lib.vocabulary import LITE0

COLUMNS = ["dataset", "variant", "init", "mode", "level", "auc", "auc_low", "auc_high", "seconds", "epochs",
           "test_patients", "note"]


def _arms(layout: RunLayout) -> dict[tuple[str, str], RunLayout]:
    return {("imagenet", "finetune"): layout.finetune("imagenet"), ("random", "finetune"): layout.finetune("random"),
            ("imagenet", "head"): layout, ("random", "head"): layout.ablation}


def finetune_ablation(runs_dir: RunLayout | str) -> pd.DataFrame:
    """The four arms per dataset × variant × level (only the dataset × variant cells that were fine-tuned)."""
    layout = RunLayout.of(runs_dir)
    tuned = {(m["config"]["dataset"], m["config"]["variant"])
             for init in ("imagenet", "random") if layout.finetune(init).models.is_dir()
             for m, _ in load_runs(layout.finetune(init).models)}
    rows = []
    for (init, mode), arm in _arms(layout).items():
        if not arm.models.is_dir():
            continue
        for meta, pred in load_runs(arm.models):
            cfg = meta["config"]
            if cfg["backbone"] != LITE0 or (cfg["dataset"], cfg["variant"]) not in tuned:
                continue
            test = pred[pred["split"] == "test"]
            for level in ("image", "patient"):
                row = {"dataset": cfg["dataset"], "variant": cfg["variant"], "init": init, "mode": mode,
                       "level": level, "seconds": meta.get("wall_s"), "epochs": cfg["train"]["epochs"],
                       "test_patients": test["patient_id"].nunique(), "note": ""}
                try:
                    frame = patient_scores(test) if level == "patient" else test
                    groups = test["patient_id"].to_numpy() if level == "image" else None
                    ci = auc_ci_delong(frame["label"], frame["probability"], groups=groups)
                    row.update(auc=ci.auc, auc_low=ci.low, auc_high=ci.high)
                except MetricError as exc:
                    row["note"] = str(exc)
                rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    order = {("imagenet", "finetune"): 0, ("imagenet", "head"): 1, ("random", "finetune"): 2, ("random", "head"): 3}
    out["_o"] = [order[(i, m)] for i, m in zip(out["init"], out["mode"])]
    return out.sort_values(["dataset", "variant", "level", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def finetune_numbers(table: pd.DataFrame) -> dict:
    """What the book quotes: the epochs, and at patient level the mean AUC of each arm over the cells."""
    keys = ("ft_epochs", "ft_cells", "ft_imagenet_finetune", "ft_imagenet_head", "ft_random_finetune", "ft_random_head",
            "ft_seconds_imagenet")
    if not len(table):
        return dict.fromkeys(keys, "n/a")
    pat = table[table["level"] == "patient"]
    mean = pat.groupby(["init", "mode"])["auc"].mean()
    ft = table[(table["mode"] == "finetune") & (table["init"] == "imagenet") & (table["level"] == "patient")]
    return {"ft_epochs": int(table.loc[table["mode"] == "finetune", "epochs"].max()),
            "ft_cells": ", ".join(f"{d} {v}" for d, v in pat[["dataset", "variant"]].drop_duplicates().itertuples(index=False)),
            **{f"ft_{i}_{m}": f"{mean.get((i, m), float('nan')):.3f}" for i in ("imagenet", "random")
               for m in ("finetune", "head")},
            "ft_seconds_imagenet": f"{ft['seconds'].sum():.0f}" if len(ft) else "n/a"}
