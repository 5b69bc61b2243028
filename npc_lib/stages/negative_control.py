"""Stages ``negative_control:setup``, ``negative_control:<backbone>`` and ``negative_control``: the main study's
pipeline on the synthetic ``null`` scenario, the leakage alarm.

In the ``null`` scenario DM is a random subset of the patients, independent of their images and stage, so
every AUC must come out near 0.5 (the checks and their chance bounds: :mod:`npc_lib.analysis.negative_control`).
The null cohort's images are the main cohort's: the generator draws every clinical variable and latent image
feature before DM, and only DM is drawn differently (:func:`null_clinical` checks this). So the control reuses
the main image store under the null labels and the backbones' cached features (:mod:`npc_lib.data.relabel`),
draws its own patient split from the null labels and fits the heads of ``negative_control.backbones``.

Reads: the image store, each backbone's features, the pixel features; profile keys ``cohort``, ``split``,
``train``, ``datasets``, ``variants``, ``negative_control``, ``model_choice``.
Writes: ``negative_control/`` (null labels, split, relabelled store, heads with out-of-fold scores) and
``evaluation/negative_control.csv`` with ``evaluation/negative_control_family.csv``.
Serves: the book's leakage alarm (results page, at a glance); synthetic cohorts only.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from npc_lib.analysis.hybrid import write_oof_scores
from npc_lib.analysis.negative_control import score_negative_control
from npc_lib.atomic import write_csv, write_json
from npc_lib.config import Profile, config_hash
from npc_lib.data.prepared import Prepared, open_prepared
from npc_lib.data.relabel import relabelled_store, share_features
from npc_lib.data.split import study_split
from npc_lib.errors import NpcError
from npc_lib.stage import Stage
from npc_lib.layout import RunLayout
from npc_lib.learn.features import FeatureExtractor
from npc_lib.learn.study import grid
from npc_lib.learn.train import train_finetune, train_heads
from npc_lib.stages.context import RunContext
from npc_lib.synth.clinical import draw_cohort

NULL_KEYS = ("cohort", "split", "train", "datasets", "variants", "negative_control", "model_choice", "backbones",
             "weights", "weights_fallback", "geometry")
OOF_FOLDS = 5


def null_profile(profile: Profile) -> Profile:
    """The profile with its synthetic cohort switched to the ``null`` scenario and the grid
    of ``negative_control.backbones`` (default: every backbone of the profile)."""
    backbones = list(profile.negative_control_backbones)
    choice = profile.model_choice if profile.model_choice in backbones else backbones[0]  # the a-priori pick
    return profile.replaced({"cohort.scenario": "null", "backbones": backbones, "model_choice": choice})


def null_clinical(profile: Profile, main_labels: pd.Series) -> pd.DataFrame:
    """The null scenario's clinical table for the profile's synthetic cohort.

    Checks the premise of the reuse: the null draw equals the main draw in every clinical variable, latent image
    feature and follow-up (only the outcome differs: who develops DM, when — the null time has no necrosis signal —
    and so what is observed of it; no image depends on it), and
    ``main_labels`` (patient_id -> DM of the main
    study's image store) are the main draw's DM, i.e. the store holds this profile's cohort.
    """
    c = profile.cohort
    main = draw_cohort(c.patients, c.seed, "paper")
    null = draw_cohort(c.patients, c.seed, "null")
    same = [col for col in null.truth.columns
            if col not in ("dm", "dm_ever", "risk_probability", "timing_score", "dm_time_true")]
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


def set_up_null(ctx: RunContext) -> list:
    """The null labels, their patient split and the main store relabelled (hard links: no pixel is copied)."""
    layout, home = ctx.layout, ctx.layout.negative_control
    home.root.mkdir(parents=True, exist_ok=True)
    p = null_profile(ctx.profile)
    main = open_prepared(layout)
    clinical = null_clinical(p, main.store.index.groupby("patient_id")["label"].first())
    study_split(clinical, p.split, home.split)
    store = relabelled_store(main.store, clinical.set_index("patient_id")["dm"], home.cache)
    write_csv(home.table("null_clinical"), clinical)
    write_json(home.cohort_ref, {**layout.read_cohort_ref(), "store": store.fingerprint, "profile": p.name,
                                 "config_hash": config_hash(p), "labels": "null scenario (DM drawn at random)"})
    return [home.split, home.table("null_clinical"), home.cohort_ref, store.root]


def fit_null_models(ctx: RunContext, backbone: str) -> list:
    """The backbone's models on the null labels: in head mode its heads (features shared from the main store)
    with their out-of-fold training scores; in finetune mode its networks, trained as in the main study."""
    layout, home = ctx.layout, ctx.layout.negative_control
    p = null_profile(ctx.profile)
    main, null = open_prepared(layout), open_prepared(home)
    cells = [(d, v) for d, v, _ in grid(p, backbones=[backbone])]
    runs = [home.model(d, v, backbone) for d, v in cells]
    if not ctx.head_mode:
        for (d, v), run in zip(cells, runs):
            train_finetune(null.store, d, v, backbone, p, null.split, run, progress=ctx.progress)
        return [r.root for r in runs]
    extractor = FeatureExtractor(backbone, p)
    try:  # the main store's features of this backbone and weights (its images are the null store's)
        share_features(main.store, layout.cache, null.store, home.cache, [extractor.folder(main.store, layout.cache).name])
        feats = extractor.features(null.store, home.cache)
    finally:
        extractor.close()
    train_heads(null.store, feats, [(d, v, r) for (d, v), r in zip(cells, runs)], p, null.split)
    write_oof_scores(home, [r.root for r in runs], OOF_FOLDS)
    return [r.root for r in runs] + sorted({f.path.parent for f in feats.values()})


def score_null(ctx: RunContext) -> list:
    """Every null head and the pixel reference scored against chance, with the family checks."""
    p = null_profile(ctx.profile)
    home = ctx.layout.negative_control
    score_negative_control(p, ctx.layout, Prepared(home.read_split(), open_prepared(home).store, home))
    return [ctx.layout.table("negative_control"), ctx.layout.table("negative_control_family"),
            home.table("model_selection"), home.table("metrics"), home.table("calibration")]


def run_negative_control(profile: Profile, runs_dir: RunLayout | str | Path, main: Prepared | None = None,
                         progress: bool = False) -> pd.DataFrame:
    """The control's stages one after the other in this process, on a prepared study (its features computed or
    computed here); returns the scored table (:func:`npc_lib.analysis.negative_control.score_negative_control`)."""
    layout = RunLayout.of(runs_dir)
    ctx = RunContext(profile, layout, None, Path("."), progress)
    set_up_null(ctx)
    for b in profile.negative_control_backbones:
        fit_null_models(ctx, b)
    home = layout.negative_control
    return score_negative_control(null_profile(profile), layout, Prepared(home.read_split(), open_prepared(home).store,
                                                                          home))


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    backbones = ctx.profile.negative_control_backbones
    if not ctx.synthetic or not backbones:
        return []
    serves = "the negative control (leakage alarm)"
    out = [Stage("negative_control:setup", set_up_null, needs=("store",), reads=NULL_KEYS, serves=serves)]
    out += [Stage(f"negative_control:{b}", fit_null_models, (b,),
                  needs=("negative_control:setup", *((f"features:{b}",) if ctx.head_mode else ())),
                  reads=NULL_KEYS, heavy=not ctx.head_mode, serves=serves) for b in backbones]
    out.append(Stage("negative_control", score_null, needs=(*(f"negative_control:{b}" for b in backbones),
                                                           "pixel_features"), reads=NULL_KEYS, serves=serves))
    return out


def negative_control_alarms(layout: RunLayout) -> list[str]:
    """What the run's negative control found outside its chance bounds (empty: clean, or not run)."""
    from npc_lib.analysis.negative_control import null_alarms
    table_path, family_path = layout.table("negative_control"), layout.table("negative_control_family")
    if not table_path.is_file():
        return []
    family = pd.read_csv(family_path) if family_path.is_file() else None
    table = pd.read_csv(table_path)
    table["outside"] = table["outside"].astype(object).where(table["outside"].notna(), "")  # empty: read as NaN
    return null_alarms(table, family)
