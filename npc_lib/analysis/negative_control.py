"""Negative control: the same pipeline on the synthetic ``null`` scenario.

In the ``null`` scenario DM is a random subset of the patients, independent of their images and
stage, so every AUC must come out near 0.5; a clear departure means that information about the
test labels leaks into training or scoring (a split by image rather than by patient,
preprocessing fitted on test data, a model chosen on test data...).

The null cohort's images are the main cohort's: the generator draws every clinical variable and
latent image feature before DM, and only DM is drawn differently (:func:`null_clinical` checks
this for the profile's draw; a test renders both and compares pixels). So the control reuses the
main study's image store under the null labels and its cached features
(:mod:`npc_lib.data.relabel`), draws its own patient split from the null labels, and runs the
unchanged pipeline from there: heads over a reduced grid (``negative_control.backbones``, every
dataset and variant), then the pixel reference model. Everything lives under
``RunLayout.negative_control``; the scored table is written to ``evaluation/negative_control.csv``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.atomic import write_csv, write_json
from npc_lib.config import Profile, config_hash
from npc_lib.data.relabel import relabelled_store, share_features
from npc_lib.data.split import patient_split
from npc_lib.errors import NpcError
from npc_lib.analysis.evaluation import calibration_table, evaluate_runs, load_runs
from npc_lib.analysis.hybrid import training_oof
from npc_lib.analysis.study_evaluation import select_on_training
from npc_lib.analysis.null_bounds import null_bounds, permutation_sd
from npc_lib.analysis.references import pixel_reference_scores, score_references
from npc_lib.layout import RunLayout
from npc_lib.learn.study import Prepared, grid, train_grid

log = logging.getLogger(__name__)
COLUMNS = ["dataset", "variant", "backbone", "auc", "auc_low", "auc_high", "patient_auc", "patient_auc_low",
           "patient_auc_high", "test_patients", "test_images"]
BOUND_COLUMNS = ["bound_low", "bound_high", "patient_bound_low", "patient_bound_high"]
PIXEL_REFERENCE = "pixel reference"


def null_profile(profile: Profile) -> Profile:
    """The profile with its synthetic cohort switched to the ``null`` scenario and the grid
    reduced to ``negative_control.backbones`` (default: the profile's first backbone)."""
    grid = list(profile.negative_control_backbones)
    choice = profile.model_choice if profile.model_choice in grid else grid[0]  # the a-priori pick, as in the main run
    return profile.replaced({"cohort.scenario": "null", "backbones": grid, "model_choice": choice})


def null_clinical(profile: Profile, main_labels: pd.Series) -> pd.DataFrame:
    """The null scenario's clinical table for the profile's synthetic cohort.

    Checks the premise of the reuse: the null draw equals the main draw in every clinical variable
    and latent image feature (only DM and its time differ), and ``main_labels`` (patient_id -> DM of the main
    study's image store) are the main draw's DM, i.e. the store holds this profile's cohort.
    """
    from npc_lib.synth.clinical import draw_cohort
    c = profile.cohort
    main = draw_cohort(c.patients, c.seed, "paper")
    null = draw_cohort(c.patients, c.seed, "null")
    same = [col for col in null.truth.columns if col not in ("dm", "risk_probability")]
    outcome = [c for c in ("dm", "dm_months") if c in main.clinical]
    if not (main.clinical.drop(columns=outcome).equals(null.clinical.drop(columns=outcome))
            and main.truth[same].equals(null.truth[same])):
        raise NpcError("the null scenario's draw differs from the main draw in more than DM; "
                       "the negative control cannot reuse the main cohort's images")
    drawn = main.clinical.set_index("patient_id")["dm"]
    known = main_labels.index.isin(drawn.index)  # a patient without any ROI image has no row in the store
    if not known.all() or not (main_labels.astype(int) == drawn.reindex(main_labels.index)).all():
        raise NpcError("the main image store does not hold this profile's synthetic cohort "
                       f"({profile.cohort.patients} patients, seed {profile.cohort.seed}); "
                       "the negative control needs it")
    return null.clinical


def run_negative_control(profile: Profile, runs_dir: str | Path, main: Prepared, progress: bool = True) -> pd.DataFrame:
    """Run the null-scenario control for ``profile`` on the main study ``main`` (prepared in
    ``runs_dir``, features of the control's backbones cached) and write
    ``evaluation/negative_control.csv``.

    Returns
    -------
    DataFrame with columns ``COLUMNS``: one row per dataset × variant × backbone (CNN heads, then
    the pixel reference model as backbone ``pixel reference``); AUCs with 95 % CIs on the null
    split's test patients, at image and patient level.
    """
    t0 = time.perf_counter()
    layout = RunLayout(Path(runs_dir))
    home = layout.negative_control
    home.root.mkdir(parents=True, exist_ok=True)
    p = null_profile(profile)
    clinical = null_clinical(p, main.store.index.groupby("patient_id")["label"].first())
    split = patient_split(clinical, seed=int(p.split.seed), test_fraction=float(p.split.test_fraction))
    store = relabelled_store(main.store, clinical.set_index("patient_id")["dm"], home.cache)
    share_features(main.store, layout.cache, store, home.cache, p.backbones)
    write_csv(home.split, split.rename_axis("patient_id").reset_index())
    write_csv(home.table("null_clinical"), clinical)
    write_json(home.cohort_ref, {**layout.read_cohort_ref(), "store": store.fingerprint, "profile": p.name,
                                 "config_hash": config_hash(p), "labels": "null scenario (DM drawn at random)"})
    prep = Prepared(split, store, home.root)
    train_grid(p, prep, grid(p), progress=progress)
    # the steps after training run on the null too: thresholds and model choice from out-of-fold
    # training scores, calibration; a test-set choice anywhere would show as an AUC off 0.5
    metas = [meta for meta, _ in load_runs(home.models)]
    oof, no_oof = training_oof(home.root, metas)
    cnn = evaluate_runs(home.models, n_boot=0, oof=oof)
    selection = select_on_training(metas, oof, no_oof, a_priori=profile.model_choice)
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
    log.info("negative control (%d rows) in %.1f s", len(table), time.perf_counter() - t0)
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
