"""The pretraining ablation: Lite0 from random weights on the main grid's datasets and patients."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("keras")

from npc_lib.analysis.ablation import pretraining_ablation, pretraining_summary  # noqa: E402
from npc_lib.config import load_profile  # noqa: E402
from npc_lib.learn.study import ablation_profile, open_prepared, train_ablation  # noqa: E402
from npc_lib.layout import RunLayout  # noqa: E402


def _pred(seed: int, signal: float, patients: int = 40, images: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(patients) % 3 == 0, images).astype(int)
    base = np.random.default_rng(0).normal(size=patients * images)
    return pd.DataFrame({"patient_id": np.repeat([f"P{i:03d}" for i in range(patients)], images),
                         "image_id": np.arange(patients * images), "split": "test", "label": label,
                         "probability": 1 / (1 + np.exp(-(signal * label + base + rng.normal(0, .3, label.size))))})


def test_ablation_compares_the_same_images_and_adjusts_for_multiplicity():
    strong = {(d, "intratumour"): _pred(1, 2.0) for d in ("NPC", "CMLN", "NPC-CMLN")}
    weak = {(d, "intratumour"): _pred(2, 0.0) for d in ("NPC", "CMLN", "NPC-CMLN")}
    t = pretraining_ablation(strong, weak)
    assert len(t) == 6 and set(t["level"]) == {"image", "patient"}
    assert (t["auc_difference"] > 0.2).all()
    from statsmodels.stats.multitest import multipletests
    for _, g in t.groupby("level"):  # Holm over the dataset × variant comparisons of each level, recomputed
        np.testing.assert_allclose(g["p_holm"], multipletests(g["p_delong"], method="holm")[1])
    patient = t[t["level"] == "patient"]
    assert (patient["test_patients"] == 40).all() and (patient["test_images"] == 160).all()
    shifted = {k: v.assign(image_id=v["image_id"] + 1000) for k, v in weak.items()}  # other images: refused
    t = pretraining_ablation(strong, shifted)
    assert t.loc[t.level == "image", "note"].str.contains("different test images").all()
    others = {k: v.assign(patient_id=v["patient_id"] + "x") for k, v in weak.items()}  # other patients: refused
    assert pretraining_ablation(strong, others)["note"].str.contains("different test").all()


def test_ablation_runs_only_when_lite0_is_pretrained():
    smoke = load_profile("smoke")
    p = ablation_profile(smoke)
    assert p.backbones == ("efficientnet-lite0",) and p.weights == "none" and p.train.mode == "head"
    paper = ablation_profile(load_profile("paper"))  # like with like: fine-tuned random against fine-tuned ImageNet
    assert paper.train.mode == "finetune" and paper.weights == "none"
    assert ablation_profile(smoke.replaced({"weights": "none"})) is None
    assert ablation_profile(smoke.replaced({"backbones": ["resnet50"], "model_choice": "resnet50"})) is None


def test_smoke_ablation_fits_eight_heads_on_the_main_split(smoke_runs):
    profile = load_profile("smoke")
    prep = open_prepared(smoke_runs)
    out = train_ablation(profile.replaced({"weights": "imagenet"}), prep, progress=False)
    assert len(out) == 8
    runs = RunLayout(smoke_runs).ablation.model_runs()
    assert len(runs) == 8
    for run in runs:
        meta = run.read_meta()
        assert meta["weights"]["used"] == "random" and meta["config"]["backbone"] == "efficientnet-lite0"
        pred = pd.read_parquet(run.predictions)
        split = pred.groupby("patient_id")["split"].first()
        assert split.equals(prep.split.reindex(split.index))  # the main run's patient split
    summary = pretraining_summary(pd.DataFrame(), pd.DataFrame(), None, pd.DataFrame())
    assert summary.empty


def test_finetune_ablation_trains_the_top_on_cached_activations_beside_the_heads(small_cohort, tmp_path, monkeypatch):
    """The fine-tuning ablation as the main job runs it (its stages' functions, in order): Lite0's features with the
    activations below its top block, its heads (the warm start), the random-weight arm, then the top block trained
    from both, once per arm (whatever other backbones the profile has); four arms on the same test patients, with a
    paired p value against the head."""
    import npc_lib.stages.finetune as stage
    fits = []
    monkeypatch.setattr(stage, "finetune_top", lambda *a, **k: fits.append(1) or real_finetune_top(*a, **k))
    real_finetune_top = __import__("npc_lib.learn.partial_finetune", fromlist=["finetune_top"]).finetune_top
    from npc_lib.analysis.finetune_ablation import finetune_numbers
    from npc_lib.data.prepared import prepare
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.features import compute_features
    from npc_lib.stages.finetune import fine_tune
    from npc_lib.stages.models import fit_models
    from npc_lib.stages.pretraining import fit_random_lite0
    profile = load_profile("smoke", {"weights": "imagenet", "backbones": ["efficientnet-lite0", "efficientnet-b0"],
                                     "model_choice": "efficientnet-lite0", "finetune_ablation": {
                                         "epochs": 2, "blocks": 1, "datasets": ["Max tumour"],
                                         "variants": ["intratumour"]}})
    ctx = RunContext(profile, RunLayout(tmp_path / "runs"), small_cohort, tmp_path)
    prep = prepare(profile, small_cohort, ctx.layout, progress=False)
    folder = compute_features(ctx, "efficientnet-lite0")[0]
    assert (folder / "intratumour.block16-input.npy").is_file()  # the activations below the top block
    fit_models(ctx, "efficientnet-lite0")
    fit_random_lite0(ctx)
    written = fine_tune(ctx)
    assert len(fits) == 2  # one fit per arm: the grid's other backbones do not repeat Lite0's
    table = pd.read_csv(written[-1])
    assert len(table) == 4 * 2 and set(zip(table["init"], table["mode"])) == {
        ("imagenet", "finetune"), ("random", "finetune"), ("imagenet", "head"), ("random", "head")}
    assert table["test_patients"].nunique() == 1
    tuned = table[table["mode"] == "finetune"]
    assert (tuned["blocks_trained"] == 1).all() and tuned["epochs"].between(1, 2).all()
    assert tuned["p_vs_head"].between(0, 1).all() and table.loc[table["mode"] == "head", "p_vs_head"].isna().all()
    for init in ("imagenet", "random"):
        run = ctx.layout.finetune(init).model("Max tumour", "intratumour", "efficientnet-lite0")
        meta = run.read_meta()
        assert meta["finetune"]["batch_norm"] == "inference mode" and meta["finetune"]["validation_images"] > 0
        pred = pd.read_parquet(run.predictions)
        split = pred.groupby("patient_id")["split"].first()
        assert split.equals(prep.split.reindex(split.index))  # the main split; validation carved from training
    assert finetune_numbers(table)["ft_blocks"] == 1


def test_frozen_batch_norm_gives_the_same_output_in_training_and_inference_mode():
    """Keras' BatchNormalization, trainable, uses the batch's own statistics in training mode: the same batch
    gives other outputs than in inference mode (the old ablation's confound). Frozen, it does not."""
    keras = pytest.importorskip("keras")
    from npc_lib.learn.lite0 import build_lite0_top
    from npc_lib.learn.partial_finetune import freeze_batch_norm
    x = np.random.default_rng(0).normal(size=(16, 3, 3, 192)).astype(np.float32) * 3 + 1
    keras.utils.set_random_seed(0)
    top = build_lite0_top(15, (3, 3, 192))
    old_train, old_infer = np.asarray(top(x, training=True)), np.asarray(top(x, training=False))
    assert np.abs(old_train - old_infer).max() > 1e-2
    assert freeze_batch_norm(top) == 4  # block 15's three and the top convolution's
    new_train, new_infer = np.asarray(top(x, training=True)), np.asarray(top(x, training=False))
    np.testing.assert_allclose(new_train, new_infer, rtol=0, atol=1e-6)
