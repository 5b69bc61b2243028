"""Stage ``finetune``: what fine-tuning buys, EfficientNet-Lite0's top blocks trained on cached activations.

Reads: Lite0's heads (stage ``models:efficientnet-lite0``, the warm start) and its features with the activations
below the trained blocks (``features:efficientnet-lite0``); the random-weight Lite0's (stage ``pretraining``);
profile keys ``finetune_ablation`` (blocks, epochs, patience, learning rate, datasets, variants), ``train``.
Writes: ``finetune/<init>/models/<slug>/`` (predictions, history, ``run.json``) and
``evaluation/finetune_ablation.csv`` (four arms per dataset × variant × level, paired DeLong against the head).
Serves: the book's "what fine-tuning buys" (the paper fine-tunes every layer; a CPU run cannot, so this is the
transfer-learning recipe on Lite0's top blocks: BatchNormalization frozen, head warmed up, early stopping on
training patients). In ``finetune`` mode the whole grid is fine-tuned and this stage is left out.
"""
from __future__ import annotations

import time

import numpy as np

from npc_lib.ablations import ablation_profile, finetune_settings
from npc_lib.analysis.finetune_ablation import finetune_ablation
from npc_lib.atomic import atomic_path, write_csv, write_json
from npc_lib.config import Profile
from npc_lib.data.prepared import open_prepared
from npc_lib.stage import Stage
from npc_lib.layout import ModelRun
from npc_lib.learn.features import extract_features, tap_file
from npc_lib.learn.partial_finetune import finetune_top, tap_block, top_model, validation_patients
from npc_lib.learn.study import grid
from npc_lib.learn.train import dataset_view
from npc_lib.learn.runtime import versions
from npc_lib.stages.context import RunContext
from npc_lib.vocabulary import LITE0

VALIDATION_FRACTION = 0.2  # of the training patients, for early stopping


def _backbone(profile: Profile, features_folder):
    """The Lite0 feature extractor whose features (and activations) the arm's heads were fitted on."""
    from npc_lib.learn.models import build_feature_extractor, input_size_for, resolve_weights
    from npc_lib.learn.runtime import seeded_build
    weights, prov = resolve_weights(LITE0, profile.weights, profile.weights_fallback)
    with seeded_build(int(profile.train.seed)):
        model = build_feature_extractor(LITE0, input_size_for(LITE0, profile.geometry.input_size), weights)
    saved = features_folder / "backbone.weights.h5"
    if prov["used"] == "random" and saved.is_file():  # the random backbone the features came from
        model.load_weights(saved)
    return model


def _head(run: ModelRun) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    import keras
    kernel, bias = keras.models.load_model(run.head, compile=False).get_layer("dm_probability").get_weights()
    z = np.load(run.standardiser)
    return kernel.ravel(), float(bias[0]), z["mean"], z["sd"]


def fine_tune(ctx: RunContext) -> list:
    """Fine-tune Lite0's top blocks from ImageNet and from random weights on every chosen dataset × variant."""
    import keras
    s = finetune_settings(ctx.profile)
    prep = open_prepared(ctx.layout)
    first = tap_block(s["blocks"])
    tr = ctx.profile.train
    arms = {"imagenet": (ctx.profile, ctx.layout), "random": (ablation_profile(ctx.profile), ctx.layout.ablation)}
    written = []
    for init, (p, heads) in arms.items():
        feats = extract_features(prep.store, LITE0, p, ctx.layout.cache, tap_block=first)
        folder = next(iter(feats.values())).path.parent
        backbone = _backbone(p, folder)
        for d, v, _ in grid(p, datasets=s["datasets"], variants=s["variants"], backbones=[LITE0]):
            t0 = time.perf_counter()
            view = dataset_view(prep.store, d, prep.split)
            taps = np.load(folder / tap_file(v, first), mmap_mode="r")
            X = np.asarray(taps[view["image_id"].to_numpy()], np.float32)
            y = view["label"].to_numpy(np.float32)
            is_train = (view["split"] == "train").to_numpy()
            held = validation_patients(view[is_train], VALIDATION_FRACTION, int(tr.seed))
            val = is_train & view["patient_id"].isin(held).to_numpy()
            kernel, bias, mean, sd = _head(heads.model(d, v, LITE0))
            model = top_model(backbone, first, X.shape[1:], mean, sd, kernel, bias, tr.dropout, tr.l2)
            fit = finetune_top(model, X, y, is_train & ~val, val, epochs=s["epochs"], patience=s["patience"],
                               batch_size=tr.batch_size, learning_rate=s["learning_rate"], seed=int(tr.seed))
            written.append(_write_run(ctx.layout.finetune(init).model(d, v, LITE0), view, fit, s, init, p, d, v,
                                      time.perf_counter() - t0, int(val.sum())))
            keras.backend.clear_session()
    table = finetune_ablation(ctx.layout)
    write_csv(ctx.layout.table("finetune_ablation"), table, float_format="%.6g")
    return written + [ctx.layout.table("finetune_ablation")]


def _write_run(run: ModelRun, view, fit, s: dict, init: str, profile: Profile, d: str, v: str, seconds: float,
               validation_images: int):
    run.root.mkdir(parents=True, exist_ok=True)
    pred = view[["patient_id", "image_id", "split", "label", "region", "slice_index"]].assign(
        probability=fit.probabilities.astype(float))
    with atomic_path(run.predictions, suffix=".parquet") as tmp:
        pred.to_parquet(tmp, index=False)
    with atomic_path(run.history, suffix=".csv") as tmp:
        fit.history.to_csv(tmp, index=False)
    tr = profile.as_dict()["train"]
    write_json(run.meta, {"profile": profile.name, "mode": "finetune-top", "wall_s": round(seconds, 2),
                          "config": {"dataset": d, "variant": v, "backbone": LITE0, "train": tr,
                                     "weights": profile.weights},
                          "finetune": {"init": init, "blocks": s["blocks"], "max_epochs": s["epochs"],
                                       "patience": s["patience"], "learning_rate": s["learning_rate"],
                                       "best_epoch": fit.best_epoch, "epochs_run": len(fit.history),
                                       "validation_images": validation_images, "batch_norm": "inference mode",
                                       "warm_start": "the frozen-backbone head of the same dataset and variant"},
                          "versions": versions()})
    return run.root


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    if finetune_settings(ctx.profile) is None or "pretraining" not in known:
        return []
    return [Stage("finetune", fine_tune, needs=(f"models:{LITE0}", f"features:{LITE0}", "pretraining"),
                  reads=("finetune_ablation", "train", "weights", "weights_fallback", "geometry", "datasets",
                         "variants", "precision"), heavy=True, isolated=True,
                  serves="what fine-tuning buys (Lite0's top blocks)")]
