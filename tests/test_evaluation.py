"""Evaluation of run predictions and the Table 2 layout beside the published table."""
import numpy as np
import pandas as pd
import pytest

from npc_lib.analysis.evaluation import evaluate_predictions, table2


def _pred(seed=0, signal=1.0, n_pat=80, per=3):
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"P{i:03d}" for i in range(n_pat)], per)
    label = np.repeat(rng.integers(0, 2, n_pat), per)
    split = np.repeat(np.where(np.arange(n_pat) < n_pat * 0.8, "train", "test"), per)
    logit = signal * (label - 0.5) * 2 + rng.normal(0, 1, len(pid))
    return pd.DataFrame({"patient_id": pid, "label": label, "split": split, "probability": 1 / (1 + np.exp(-logit)),
                         "image_id": np.arange(len(pid))})


def test_evaluate_predictions_levels_and_thresholds():
    m = evaluate_predictions(_pred(signal=0.4), n_boot=200)
    assert 0.6 < m["auc"] <= 1 and m["auc_low"] < m["auc"] < m["auc_high"]
    assert 0.6 < m["patient_auc"] <= 1 and m["patient_auc_boot_low"] < m["patient_auc"]
    assert m["test_patients"] == 16 and m["test_images"] == 48
    assert 0 <= m["youden_threshold"] <= 1 and m["note"] == ""


def test_one_class_test_split_is_nan_with_a_reason():
    p = _pred()
    p.loc[p.split == "test", "label"] = 0
    m = evaluate_predictions(p, n_boot=50)
    assert np.isnan(m["auc"]) and "one class" in m["note"]


def test_table2_beside_published():
    rows = []
    for d in ["NPC-CMLN", "NPC", "CMLN", "Max tumour"]:
        for b in ["efficientnet-b0", "inception-resnet-v2", "resnet50", "xception"]:
            for v in ["intratumour", "intra-peritumour"]:
                rows.append({"dataset": d, "backbone": b, "variant": v, "auc": 0.7, "accuracy": 0.75})
    t = table2(pd.DataFrame(rows))
    assert len(t) == 20  # 16 models + 4 averages
    row = t[(t.dataset == "CMLN") & (t.backbone == "xception")].iloc[0]
    assert row["auc_intra_peritumour_published"] == 0.91
    assert row["auc_intra_peritumour_diff"] == pytest.approx(0.7 - 0.91)
    assert row["accuracy_intratumour"] == pytest.approx(75.0)
    avg = t[(t.dataset == "CMLN") & (t.backbone == "average")].iloc[0]
    assert avg["auc_intra_peritumour_published"] == pytest.approx(np.mean([0.88, 0.86, 0.87, 0.91]))
