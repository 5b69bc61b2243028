"""Negative control, scored: the heads and the pixel reference fitted on the synthetic ``null`` scenario
(run by :mod:`npc_lib.null_study`).

In the ``null`` scenario DM is a random subset of the patients, independent of their images and
stage, so every statistic must come out at its chance value: the AUC near 0.5, the accuracy and
sensitivity + specificity at the threshold in use near what a random labelling gives, calibration in
the large on test as on training, and the models chosen on training data no more often the best on test
than chance. A clear departure means that information about the test labels leaks into training or
scoring (test patients in training, a threshold, model or calibration chosen on test data...);
:mod:`npc_lib.analysis.null_checks` holds the checks.

Everything the control fits lives under ``RunLayout.negative_control``; the scored table is
written to ``evaluation/negative_control.csv``.
"""
from __future__ import annotations

import logging

import pandas as pd

from npc_lib.atomic import write_csv
from npc_lib.config import Profile
from npc_lib.analysis.evaluation import calibration_table, evaluate_runs, load_runs
from npc_lib.analysis.hybrid import training_oof
from npc_lib.analysis.selection import select_on_training
from npc_lib.analysis.metrics import patient_scores, youden_threshold
from npc_lib.analysis.null_checks import NullRow, check_null, citl
from npc_lib.analysis.references import pixel_reference_scores, score_references
from npc_lib.layout import RunLayout
from npc_lib.data.prepared import Prepared

log = logging.getLogger(__name__)
COLUMNS = ["dataset", "variant", "backbone", "auc", "auc_low", "auc_high", "patient_auc", "patient_auc_low",
           "patient_auc_high", "test_patients", "test_images"]
PIXEL_REFERENCE = "pixel reference"


def score_negative_control(p: Profile, layout: RunLayout, prep: Prepared) -> pd.DataFrame:
    """Score the control's finished heads (``p``: the null profile; ``prep``: the null split and
    relabelled store under ``layout.negative_control``) and the pixel reference on the null labels with
    :func:`npc_lib.analysis.null_checks.check_null`, and write ``evaluation/negative_control.csv`` (one row
    per model) and ``evaluation/negative_control_family.csv`` (the family checks).

    The steps after training run on the null as in the main study: thresholds and the model choice from
    the training patients' out-of-fold scores; the checks then look at the AUC, the accuracy and
    sensitivity + specificity at that threshold, calibration in the large against the training patients'
    and whether the chosen models have the top test AUCs more often than chance.

    Returns
    -------
    DataFrame with columns ``COLUMNS``, ``selected``, the checks' columns and ``inside``: one row per
    dataset × variant × backbone (CNN heads, then the pixel reference model as backbone
    ``pixel reference``); the family checks are in its ``attrs["family"]``.
    """
    home = layout.negative_control
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
    ref = score_references(pseudo).pivot_table(index=["dataset", "variant"], columns="level",
                                               values=["auc", "auc_low", "auc_high", "patients", "images"],
                                               aggfunc="first")
    ref = pd.DataFrame({
        "dataset": [d for d, _ in ref.index], "variant": [v for _, v in ref.index], "backbone": PIXEL_REFERENCE,
        "auc": ref[("auc", "image")].to_numpy(), "auc_low": ref[("auc_low", "image")].to_numpy(),
        "auc_high": ref[("auc_high", "image")].to_numpy(), "patient_auc": ref[("auc", "patient")].to_numpy(),
        "patient_auc_low": ref[("auc_low", "patient")].to_numpy(),
        "patient_auc_high": ref[("auc_high", "patient")].to_numpy(),
        "test_patients": ref[("patients", "image")].to_numpy(), "test_images": ref[("images", "image")].to_numpy()})
    cis = pd.concat([cnn.reindex(columns=COLUMNS + ["selected"]), ref[COLUMNS].assign(selected=False)],
                    ignore_index=True)
    rows = [_model_row(cnn_row, predictions, oof) for cnn_row in cnn.itertuples()]
    rows += [_reference_row((d, v, PIXEL_REFERENCE), frame) for (d, v), frame in pseudo.items()]
    checks, family = check_null(rows)
    table = cis.merge(checks.drop(columns=["auc", "selected", "test_patients"]), on=["dataset", "variant", "backbone"],
                      how="left", suffixes=("", "_check"))
    write_csv(layout.table("negative_control"), table, float_format="%.6g")
    write_csv(layout.table("negative_control_family"), family, float_format="%.6g")
    table.attrs["family"] = family
    alarms = null_alarms(table, family)
    if alarms:
        log.warning("NEGATIVE CONTROL ALARM: %s; look for leakage of test labels", "; ".join(alarms))
    return table


def _model_row(r, predictions: dict, oof: dict) -> NullRow:
    """A head of the control: its test images, its out-of-fold threshold and training calibration."""
    key = (r.dataset, r.variant, r.backbone)
    pred = predictions[key]
    train = patient_scores(oof[key]) if key in oof else patient_scores(pred[pred["split"] == "train"])
    c, se = citl(train["label"], train["probability"])
    return NullRow(key, pred[pred["split"] == "test"], float(r.patient_youden_threshold), c, se, bool(r.selected))


def _reference_row(key: tuple, frame: pd.DataFrame) -> NullRow:
    """The pixel reference of the control (fitted on the training images; its threshold and calibration
    come from its training patients' scores)."""
    train = patient_scores(frame[frame["split"] == "train"])
    c, se = citl(train["label"], train["probability"])
    return NullRow(key, frame[frame["split"] == "test"], youden_threshold(train["label"], train["probability"]),
                   c, se, reference=True)


def null_alarms(table: pd.DataFrame, family: pd.DataFrame | None = None) -> list[str]:
    """One phrase per failed check: the rows outside their bounds (naming the statistic) and the family
    checks outside theirs; empty when the control is clean."""
    out = [f"{r.dataset}/{r.variant}/{r.backbone}: {r.outside or 'outside'}" for r in table[~table["inside"]].itertuples()]
    if family is not None and len(family):
        out += [f"family check '{r.check}' = {r.statistic:.3g} outside [{r.bound_low:.3g}, {r.bound_high:.3g}]"
                for r in family[~family["inside"]].itertuples()]
    return out
