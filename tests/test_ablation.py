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


def test_finetune_ablation_sets_four_arms_on_the_same_test_patients(smoke_runs):
    """EfficientNet-Lite0 fine-tuned from ImageNet and from random weights (one epoch, the smallest dataset)
    beside the frozen heads of the main grid and of the pretraining ablation."""
    from npc_lib.analysis.finetune_ablation import finetune_ablation, finetune_numbers
    from npc_lib.learn.study import finetune_profiles, train_finetune_ablation
    profile = load_profile("smoke", {"weights": "imagenet", "finetune_ablation": {
        "epochs": 1, "datasets": ["Max tumour"], "variants": ["intratumour"]}})
    assert set(finetune_profiles(profile)) == {"imagenet", "random"}
    assert not finetune_profiles(load_profile("paper")) and not finetune_profiles(load_profile("smoke"))
    prep = open_prepared(smoke_runs)
    train_ablation(profile, prep, progress=False)  # the frozen random arm (reused if there)
    out = train_finetune_ablation(profile, prep, progress=False)
    assert sorted(out["init"]) == ["imagenet", "random"]
    table = finetune_ablation(smoke_runs)
    assert len(table) == 4 * 2 and set(zip(table["init"], table["mode"])) == {
        ("imagenet", "finetune"), ("random", "finetune"), ("imagenet", "head"), ("random", "head")}
    assert table["test_patients"].nunique() == 1 and (table["epochs"][table["mode"] == "finetune"] == 1).all()
    for init in ("imagenet", "random"):
        run = RunLayout(smoke_runs).finetune(init).model("Max tumour", "intratumour", "efficientnet-lite0")
        meta = run.read_meta()
        assert meta["mode"] == "finetune" and meta["weights"]["used"] == ("imagenet" if init == "imagenet" else "random")
        split = pd.read_parquet(run.predictions).groupby("patient_id")["split"].first()
        assert split.equals(prep.split.reindex(split.index))  # the main split
    assert finetune_numbers(table)["ft_epochs"] == 1
