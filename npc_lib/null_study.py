"""The negative control, run: the main study's pipeline on the synthetic ``null`` scenario.

In the ``null`` scenario DM is a random subset of the patients, independent of their images and
stage, so every AUC must come out near 0.5 (the scoring and its chance bounds are
:mod:`npc_lib.analysis.negative_control`). The null cohort's images are the main cohort's: the
generator draws every clinical variable and latent image feature before DM, and only DM is drawn
differently (:func:`null_clinical` checks this for the profile's draw). So the control reuses the
main study's image store under the null labels and its cached features (:mod:`npc_lib.data.relabel`),
draws its own patient split from the null labels and fits the heads of ``negative_control.backbones``
(default: every backbone of the profile) on every dataset and variant under ``RunLayout.negative_control``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from npc_lib.analysis.negative_control import score_negative_control
from npc_lib.atomic import write_csv, write_json
from npc_lib.config import Profile, config_hash
from npc_lib.data.relabel import relabelled_store, share_features
from npc_lib.data.split import study_split
from npc_lib.errors import NpcError
from npc_lib.layout import RunLayout
from npc_lib.learn.study import Prepared, grid, train_grid
from npc_lib.synth.clinical import draw_cohort

log = logging.getLogger(__name__)


def null_profile(profile: Profile) -> Profile:
    """The profile with its synthetic cohort switched to the ``null`` scenario and the grid
    of ``negative_control.backbones`` (default: every backbone of the profile)."""
    grid = list(profile.negative_control_backbones)
    choice = profile.model_choice if profile.model_choice in grid else grid[0]  # the a-priori pick, as in the main run
    return profile.replaced({"cohort.scenario": "null", "backbones": grid, "model_choice": choice})


def null_clinical(profile: Profile, main_labels: pd.Series) -> pd.DataFrame:
    """The null scenario's clinical table for the profile's synthetic cohort.

    Checks the premise of the reuse: the null draw equals the main draw in every clinical variable
    and latent image feature (only DM and its time differ), and ``main_labels`` (patient_id -> DM of the main
    study's image store) are the main draw's DM, i.e. the store holds this profile's cohort.
    """
    c = profile.cohort
    main = draw_cohort(c.patients, c.seed, "paper")
    null = draw_cohort(c.patients, c.seed, "null")
    same = [col for col in null.truth.columns if col not in ("dm", "risk_probability")]
    outcome = [c for c in ("dm", "dm_months", "dm_event") if c in main.clinical]
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


def run_negative_control(profile: Profile, runs_dir: RunLayout | str | Path, main: Prepared, progress: bool = True) -> pd.DataFrame:
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
    layout = RunLayout.of(runs_dir)
    home = layout.negative_control
    home.root.mkdir(parents=True, exist_ok=True)
    p = null_profile(profile)
    clinical = null_clinical(p, main.store.index.groupby("patient_id")["label"].first())
    split = study_split(clinical, p.split, home.split)
    store = relabelled_store(main.store, clinical.set_index("patient_id")["dm"], home.cache)
    share_features(main.store, layout.cache, store, home.cache, p.backbones)
    write_csv(home.table("null_clinical"), clinical)
    write_json(home.cohort_ref, {**layout.read_cohort_ref(), "store": store.fingerprint, "profile": p.name,
                                 "config_hash": config_hash(p), "labels": "null scenario (DM drawn at random)"})
    prep = Prepared(split, store, home)
    train_grid(p, prep, grid(p), progress=progress)
    table = score_negative_control(p, layout, prep)
    log.info("negative control (%d rows) in %.1f s", len(table), time.perf_counter() - t0)
    return table
