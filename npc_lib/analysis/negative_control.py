"""Negative control, scored: the heads and the pixel reference fitted on the synthetic ``null`` scenario
(run by :mod:`npc_lib.null_study`).

In the ``null`` scenario DM is a random subset of the patients, independent of their images and
stage, so every AUC must come out near 0.5; a clear departure means that information about the
test labels leaks into training or scoring (a split by image rather than by patient,
preprocessing fitted on test data, a model chosen on test data...).

Everything the control fits lives under ``RunLayout.negative_control``; the scored table is
written to ``evaluation/negative_control.csv``.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from npc_lib.atomic import write_csv
from npc_lib.config import Profile
from npc_lib.analysis.evaluation import calibration_table, evaluate_runs, load_runs
from npc_lib.analysis.hybrid import training_oof
from npc_lib.analysis.study_evaluation import select_on_training
from npc_lib.analysis.null_bounds import null_bounds, permutation_sd
from npc_lib.analysis.references import pixel_reference_scores, score_references
from npc_lib.layout import RunLayout
from npc_lib.learn.study import Prepared, grid

log = logging.getLogger(__name__)
COLUMNS = ["dataset", "variant", "backbone", "auc", "auc_low", "auc_high", "patient_auc", "patient_auc_low",
           "patient_auc_high", "test_patients", "test_images"]
BOUND_COLUMNS = ["bound_low", "bound_high", "patient_bound_low", "patient_bound_high"]
PIXEL_REFERENCE = "pixel reference"


def score_negative_control(p: Profile, layout: RunLayout, prep: Prepared) -> pd.DataFrame:
    """Score the control's finished heads (``p``: the null profile; ``prep``: the null split and
    relabelled store under ``layout.negative_control``) and the pixel reference on the null labels,
    add each row's chance bounds and write ``evaluation/negative_control.csv``.

    Returns
    -------
    DataFrame with columns ``COLUMNS``, ``selected``, ``BOUND_COLUMNS`` and ``inside``: one row per
    dataset × variant × backbone (CNN heads, then the pixel reference model as backbone
    ``pixel reference``); AUCs with 95 % CIs on the null split's test patients, image and patient level.
    """
    home = layout.negative_control
    # the steps after training run on the null too: thresholds and model choice from out-of-fold
    # training scores, calibration; a test-set choice anywhere would show as an AUC off 0.5
    metas = [meta for meta, _ in load_runs(home.models)]
    oof, no_oof = training_oof(home.root, metas)
    cnn = evaluate_runs(home.models, n_boot=0, oof=oof)
    selection = select_on_training(metas, oof, no_oof, a_priori=p.model_choice)
    write_csv(home.table("model_selection"), selection, float_format="%.6g")
    write_csv(home.table("metrics"), cnn, float_format="%.6g")
    predictions = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): pred
                   for m, pred in load_runs(home.models)}
    write_csv(home.table("calibration"), calibration_table(predictions), float_format="%.6g")
    cnn = cnn.merge(selection[["dataset", "variant", "backbone", "selected"]], how="left",
                    on=["dataset", "variant", "backbone"])
    pseudo = pixel_reference_scores(prep.store, prep.split, p.geometry, layout.cache,
                                    datasets=p.datasets, variants=p.variants)
    wide = score_references(pseudo).pivot_table(index=["dataset", "variant"], columns="level",
                                                values=["auc", "auc_low", "auc_high", "patients", "images"],
                                                aggfunc="first")
    ref = pd.DataFrame({
        "dataset": [d for d, _ in wide.index], "variant": [v for _, v in wide.index], "backbone": PIXEL_REFERENCE,
        "auc": wide[("auc", "image")].to_numpy(), "auc_low": wide[("auc_low", "image")].to_numpy(),
        "auc_high": wide[("auc_high", "image")].to_numpy(), "patient_auc": wide[("auc", "patient")].to_numpy(),
        "patient_auc_low": wide[("auc_low", "patient")].to_numpy(),
        "patient_auc_high": wide[("auc_high", "patient")].to_numpy(),
        "test_patients": wide[("patients", "image")].to_numpy(), "test_images": wide[("images", "image")].to_numpy()})
    table = pd.concat([cnn.reindex(columns=COLUMNS + ["selected"]), ref[COLUMNS].assign(selected=False)],
                      ignore_index=True)
    scores = {(d, v, b): pd.read_parquet(home.model(d, v, b).predictions) for d, v, b in grid(p)}
    scores.update({(d, v, PIXEL_REFERENCE): frame for (d, v), frame in pseudo.items()})
    table = add_null_bounds(table, scores)
    write_csv(layout.table("negative_control"), table, float_format="%.6g")
    outside = table[~table["inside"]]
    if len(outside):
        log.warning("NEGATIVE CONTROL ALARM: %d of %d null AUCs outside their chance bounds (%s); "
                    "look for leakage of test labels", len(outside), len(table),
                    "; ".join(f"{r.dataset}/{r.variant}/{r.backbone}" for r in outside.itertuples()))
    return table




def add_null_bounds(table: pd.DataFrame, scores: dict) -> pd.DataFrame:
    """Each row's chance bounds at image and patient level (:mod:`npc_lib.analysis.null_bounds`,
    Bonferroni over every AUC of the table) and whether both AUCs lie inside them.

    ``scores`` maps (dataset, variant, backbone) to that row's image scores (``patient_id, label,
    split, probability``)."""
    m = 2 * len(table)  # image and patient AUC of every row
    out = table.copy()
    for col in BOUND_COLUMNS:
        out[col] = np.nan
    for i, r in out.iterrows():
        pred = scores[(r["dataset"], r["variant"], r["backbone"])]
        sd = permutation_sd(pred[pred["split"] == "test"].dropna(subset=["probability"]))
        out.loc[i, ["bound_low", "bound_high"]] = null_bounds(sd["image"], m)
        out.loc[i, ["patient_bound_low", "patient_bound_high"]] = null_bounds(sd["patient"], m)
    out["inside"] = (out["auc"].between(out["bound_low"], out["bound_high"])
                     & out["patient_auc"].between(out["patient_bound_low"], out["patient_bound_high"]))
    return out
