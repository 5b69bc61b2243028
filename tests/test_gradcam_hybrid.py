"""Grad-CAM (localisation, randomisation sanity check, exact rebuild of runs), the hybrid model
with out-of-fold image scores, and `npc-study evaluate` on the smoke grid."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from npc_lib.cli import main  # noqa: E402
from npc_lib.analysis.gradcam import (cam_in_roi, cam_model, gradcam, load_run_model, randomised_copy,  # noqa: E402
                             rank_correlations)
from npc_lib.analysis.hybrid import fit_hybrid, oof_patient_scores  # noqa: E402
from npc_lib.analysis.study_evaluation import evaluate_study  # noqa: E402
from npc_lib.data.rois import Geometry, roi_image, roi_mask  # noqa: E402
from npc_lib.show import plots  # noqa: E402
from npc_lib.show.plots import overlay  # noqa: E402


def _square_data(n: int, size: int = 32, seed: int = 0):
    """Noise images; label 1 = a bright 8x8 square somewhere. Returns images, labels, square masks."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.2, (n, size, size, 1)).astype(np.float32)
    y = np.arange(n) % 2
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        r, c = rng.integers(0, size - 8, 2)
        masks[i, r:r + 8, c:c + 8] = True
        if y[i]:
            x[i, r:r + 8, c:c + 8, 0] += 1.5
    return x, y.astype(np.float32), masks


@pytest.fixture(scope="module")
def tiny_cnn():
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(h)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    x, y, _ = _square_data(256)
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    return model


def test_gradcam_localises_the_evidence(tiny_cnn):
    x, y, masks = _square_data(64, seed=1)
    assert tiny_cnn.evaluate(x, y, verbose=0)[1] > 0.9
    cm = cam_model(tiny_cnn, "last_conv")
    cams = gradcam(cm, x[y == 1])
    assert cams.shape == (32, 32, 32) and cams.min() >= 0 and np.allclose(cams.max(axis=(1, 2)), 1)
    stats = pd.DataFrame([cam_in_roi(c, m) for c, m in zip(cams, masks[y == 1])])
    assert stats["area_share"].round(4).eq(64 / 1024).all()
    assert stats["enrichment"].median() > 3  # CAM mass concentrates on the square


def test_randomised_model_gives_different_cams(tiny_cnn):
    """Adebayo et al. 2018: explanations must depend on the learned weights."""
    x, y, _ = _square_data(32, seed=2)
    pos = x[y == 1]
    trained = gradcam(cam_model(tiny_cnn, "last_conv"), pos)
    again = gradcam(cam_model(tiny_cnn, "last_conv"), pos)
    rand = gradcam(cam_model(randomised_copy(tiny_cnn, seed=5), "last_conv"), pos)
    assert np.nanmedian(rank_correlations(trained, again)) == pytest.approx(1.0)
    assert np.nanmedian(rank_correlations(trained, rand)) < 0.5


def test_cam_helpers_edge_cases():
    assert np.isnan(cam_in_roi(np.zeros((4, 4)), np.ones((4, 4)))["fraction"])
    assert np.isnan(cam_in_roi(np.full((4, 4), np.nan), np.ones((4, 4)))["enrichment"])
    rgb = overlay(np.full((4, 4), 255, np.uint8), np.linspace(0, 1, 16).reshape(4, 4))
    assert rgb.shape == (4, 4, 3) and 0 <= rgb.min() and rgb.max() <= 1


def test_roi_mask_follows_the_image_transform():
    g = Geometry(peritumour_mm=3.0, canvas=48, input_size=32)
    sl = np.zeros((80, 80), np.float32)
    sl[20:40, 30:50] = 100.0
    sl += np.random.default_rng(0).normal(0, 1, sl.shape).astype(np.float32)
    box = (25, 15, 60, 45)
    img = roi_image(sl, box, g)
    mask = roi_mask(np.abs(sl) > 50, box, g)
    assert mask.shape == img.shape == (32, 32)
    assert img[mask].mean() > 200 and img[~mask & (img > 0)].mean() < 60


def test_rebuilt_run_models_match_saved_predictions(smoke_runs):
    from npc_lib.data.cache import open_image_store
    from npc_lib.learn.loaders import preprocess_images
    from npc_lib.learn.models import backbone
    for b in ("resnet50", "xception"):
        run = smoke_runs / "models" / f"npc-cmln__intra-peritumour__{b}"
        meta = json.loads((run / "run.json").read_text())
        store = open_image_store(smoke_runs / "cache" / f"images-{meta['store_fingerprint']}", verify=False)
        pred = pd.read_parquet(run / "predictions.parquet").head(12)
        cm = load_run_model(smoke_runs, run)
        x = preprocess_images(np.asarray(store.images("intra-peritumour")[pred["image_id"].to_numpy()]), backbone(b),
                              cm.input_size)
        np.testing.assert_allclose(cm.model.predict(x, verbose=0).ravel(), pred["probability"], atol=1e-4)


def test_hybrid_training_scores_are_out_of_fold(smoke_runs, small_cohort, monkeypatch):
    from npc_lib.analysis import hybrid as hybrid_mod
    from npc_lib.learn.train import dataset_view
    real_standardise, real_fit, fit_masks, fitted = hybrid_mod.standardise, hybrid_mod.fit_heads, [], []

    def spy_standardise(X, fit_rows):
        fit_masks.append(np.asarray(fit_rows).copy())
        return real_standardise(X, fit_rows)

    def spy_fit(tasks, **kw):
        fitted.extend(len(t.X_train) for t in tasks)
        return real_fit(tasks, **kw)

    monkeypatch.setattr(hybrid_mod, "standardise", spy_standardise)
    monkeypatch.setattr(hybrid_mod, "fit_heads", spy_fit)
    run = smoke_runs / "models" / "npc-cmln__intra-peritumour__resnet50"
    scores = oof_patient_scores(smoke_runs, run, folds=3)
    # every fold's head and scaling saw only the other folds' patients, and each training patient
    # is held out (scored) by exactly one fold, with all of their images
    from npc_lib.data.cache import open_image_store
    from npc_lib.layout import RunLayout
    layout = RunLayout(smoke_runs)
    meta = json.loads((run / "run.json").read_text())
    store = open_image_store(layout.image_store(meta["store_fingerprint"]), verify=False)
    view = dataset_view(store, "NPC-CMLN", layout.read_split())
    patients = view.loc[view["split"] == "train", "patient_id"].to_numpy()
    assert len(fit_masks) == 3 and fitted == [int(m.sum()) for m in fit_masks]
    held = np.stack([~m for m in fit_masks])
    assert (held.sum(0) == 1).all()  # each training image scored by one fold only
    for h in held:
        assert not set(patients[h]) & set(patients[~h])  # no patient on both sides of a fold
    pred = pd.read_parquet(run / "predictions.parquet")
    in_sample = pred[pred.split == "train"].groupby("patient_id")["probability"].mean()
    test = pred[pred.split == "test"].groupby("patient_id")["probability"].mean()
    tr = scores[scores.split == "train"].set_index("patient_id")["image_score"]
    te = scores[scores.split == "test"].set_index("patient_id")["image_score"]
    assert set(tr.index) == set(in_sample.index) and set(te.index) == set(test.index)
    assert not np.allclose(tr.loc[in_sample.index], in_sample)  # refitted without the patient
    np.testing.assert_allclose(te.loc[test.index], test)  # test: the run's own model


def test_hybrid_adds_the_image_signal():
    rng = np.random.default_rng(3)
    n = 700
    t = rng.integers(1, 5, n)
    nn = rng.integers(0, 4, n)
    stage = np.maximum(t, np.where(nn >= 2, 3, 2))
    image = rng.normal(size=n)
    dm = (0.4 * nn + 1.5 * image + rng.logistic(size=n) > 1.2).astype(int)
    clinical = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "age": rng.integers(20, 80, n),
                             "t_stage": [f"T{v}" for v in t], "n_stage": [f"N{v}" for v in nn],
                             "overall_stage": pd.Series(stage).map({1: "I", 2: "II", 3: "III", 4: "IV"}),
                             "dm": dm})
    scores = pd.DataFrame({"patient_id": clinical.patient_id, "split": np.where(np.arange(n) < 400, "train", "test"),
                           "label": dm, "image_score": 1 / (1 + np.exp(-image))})
    res = fit_hybrid(clinical, scores)
    auc = res["table"].set_index("model")["auc"]
    assert auc["hybrid"] > auc["clinical"] + 0.1 and auc["hybrid"] >= auc["image"] - 0.02
    cmp = res["comparisons"].set_index("comparison")
    assert cmp.loc["hybrid vs clinical", "p"] < 0.01
    assert res["coefficients"]["image_logit"] > 0 and res["coefficients"]["n"] > 0


def test_evaluate_writes_everything_for_the_smoke_grid(smoke_runs, small_cohort, capsys):
    assert main(["evaluate", str(smoke_runs), "--bootstrap", "200", "--hybrid-folds", "3"]) == 0
    out = smoke_runs / "evaluation"
    t2 = pd.read_csv(out / "table2.csv")
    assert len(t2) == 4 * 6 + 4 and set(t2["backbone"]) >= {"average", "resnet50", "efficientnet-lite0"}
    cnn = t2[t2["group"] == "CNN"].set_index(["dataset", "backbone"])["auc_intratumour"]
    paper_four = cnn.drop(index="efficientnet-lite0", level=1).drop(index="average", level=1)
    assert np.allclose(cnn.xs("average", level=1), paper_four.groupby(level=0).mean().reindex(
        cnn.xs("average", level=1).index), atol=1e-3)  # the published averages are over the paper's four backbones
    lite = t2[t2["backbone"] == "efficientnet-lite0"]
    assert lite["auc_intratumour_published"].isna().all()
    assert (t2["group"] == "pixel reference").sum() == 4  # the pixel reference's own row group
    for name in ("planted_reference.csv", "reference_model.csv"):
        ref = pd.read_csv(out / name)
        assert {"dataset", "variant", "level", "auc", "auc_low", "auc_high", "patients"} <= set(ref.columns)
        assert len(ref) == 16 and ref["auc"].dropna().between(0, 1).all()
    sel = pd.read_csv(out / "model_selection.csv")
    assert sel.groupby(["dataset", "variant"])["selected"].sum().eq(1).all()
    assert {"auc_intratumour", "auc_intra_peritumour", "auc_intratumour_published"} <= set(t2.columns)
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 40 and metrics["patient_auc"].dropna().between(0, 1).all()
    hybrid = pd.read_csv(out / "hybrid.csv")
    assert set(hybrid["model"]) == {"clinical", "image", "hybrid"} and hybrid["backbone"].nunique() == 5
    mat = pd.read_csv(out / "delong_matrix.csv").set_index("run")
    assert mat.shape == (40, 40) and np.allclose(np.diag(mat.to_numpy()), 1)
    assert not (out / "figures").exists()  # the evaluation computes; the notebooks draw
    assert "TNM stage IV" in capsys.readouterr().out


def test_every_evaluation_figure_is_one_plots_call(smoke_runs, tmp_path):
    """What 04_evaluate draws, each figure from one npc_lib.show.plots function on the returned results."""
    ev = evaluate_study(smoke_runs, n_boot=0, hybrid_folds=3)
    written = pd.read_csv(smoke_runs / "evaluation" / "metrics.csv")  # what this call wrote, row for row
    keys = ["dataset", "variant", "backbone"]
    assert len(ev.metrics) == len(written) == 40
    both = ev.metrics.merge(written, on=keys, suffixes=("", "_csv"), validate="one_to_one")
    np.testing.assert_allclose(both["auc"], both["auc_csv"], rtol=1e-5)
    np.testing.assert_allclose(both["patient_auc"], both["patient_auc_csv"], rtol=1e-5)
    hb = ev.hybrid["figure_backbone"]
    figures = {
        "fig3_roc_image": plots.fig3_roc(ev.predictions, "image", ev.references),
        "fig3_roc_patient": plots.fig3_roc(ev.predictions, "patient", ev.references),
        "fig4_tnm_roc": plots.fig4_tnm_roc(ev.tnm["label"], ev.tnm["stage_iv"], ev.tnm["ordinal_stage"]),
        "fig5_accuracy": plots.fig_curves(ev.histories, "accuracy"),
        "fig8_loss": plots.fig_curves(ev.histories, "loss"),
        "calibration": plots.fig_calibration(ev.calibration),
        "decision_curves": plots.fig_decision_curve(ev.decision),
        "hybrid_roc": plots.fig_hybrid_roc(ev.hybrid["test"][hb], hb),
        "delong_matrix": plots.fig_delong_matrix(ev.delong),
    }
    for name, fig in figures.items():
        png = plots.save(fig, tmp_path / name)[0]
        assert png.stat().st_size > 5000, name
    # one model per dataset × variant, the one with the best training out-of-fold AUC (never a test metric)
    sel = ev.selection
    chosen = sel[sel["selected"]].set_index(["dataset", "variant"])["backbone"]
    best = sel.sort_values(["train_oof_auc", "backbone"], ascending=[False, True]).groupby(["dataset", "variant"])["backbone"].first()
    assert chosen.sort_index().equals(best.sort_index()) and len(ev.calibration) == len(chosen) == 8


def test_the_mask_legend_decides_which_labels_are_a_lesion():
    import json

    from npc_lib.analysis.gradcam import LESION_LABELS, lesion_labels
    from npc_lib.synth.phantom import LABELS
    assert lesion_labels(json.dumps(LABELS)) == LESION_LABELS  # the generator's legend gives its values
    other = {0: "background", 7: "primary_tumour", 9: "node", 11: "node_necrosis", 12: "vessel"}
    assert lesion_labels(json.dumps(other)) == {"npc": (7,), "cmln": (9, 11)}
