"""Another site's folder: a trained run's models scored, unchanged, on a synthetic centre-B cohort."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from npc_lib.cli import main
from npc_lib.synth import SynthConfig, generate_cohort
from conftest import mini_profile


@pytest.fixture(scope="module")
def mini_run_and_centre_b(small_cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    profile = mini_profile(root)  # EfficientNet-Lite0 (random weights), NPC and CMLN, both variants
    runs = root / "runs"
    assert main(["train", str(small_cohort), "--profile", str(profile), "--runs", str(runs)]) == 0
    centre_b = root / "centre_b"
    generate_cohort(centre_b, SynthConfig.for_centre("B", patients=24, matrix=56, slices=8, seed=9), progress=False)
    return runs, centre_b


def test_evaluate_defaults_to_the_harmonisation_the_main_job_chose(mini_run_and_centre_b, capsys):
    """Without --harmonise, the command scores the centre the way the run's main job did (its
    harmonisation.json), so the two agree; without a choice on record, nothing is harmonised."""
    import json
    from npc_lib.layout import RunLayout
    runs, centre_b = mini_run_and_centre_b
    record = RunLayout(runs).table("harmonisation", ".json")
    record.parent.mkdir(parents=True, exist_ok=True)
    try:
        record.write_text(json.dumps({"chosen": {"intensity": "histogram", "resample": False}}))
        assert main(["evaluate", "--run", str(runs), "--external-cohort", str(centre_b)]) == 0
        assert "intensity histogram, crops at their own spacing" in capsys.readouterr().out
    finally:
        record.unlink()
    assert main(["evaluate", "--run", str(runs), "--external-cohort", str(centre_b)]) == 0
    assert "intensity none, crops at their own spacing" in capsys.readouterr().out


def test_evaluate_scores_a_run_on_another_sites_folder(mini_run_and_centre_b, capsys):
    runs, centre_b = mini_run_and_centre_b
    assert main(["evaluate", "--run", str(runs), "--external-cohort", str(centre_b)]) == 0
    out = capsys.readouterr().out
    assert "outside the training cohort" in out  # B's spacing and intensities differ from A's: said
    table = pd.read_csv(runs / "external" / "centre_b" / "evaluation" / "external.csv")
    models = table[table["backbone"] == "efficientnet-lite0"]
    assert len(models) == 2 * 2 * 2  # NPC and CMLN, two variants, image and patient level
    assert set(table["backbone"]) >= {"efficientnet-lite0", "pixel reference", "planted risk", "TNM stage"}
    clinical = pd.read_csv(centre_b / "clinical.csv")
    pat = models[models["level"] == "patient"]
    # every external patient with ROIs of the dataset is scored; the events are theirs
    rois = pd.read_csv(centre_b / "rois.csv")
    for r in pat.itertuples():
        region = {"NPC": "npc", "CMLN": "cmln"}[r.dataset]
        ids = set(rois.loc[rois["region"] == region, "patient_id"])
        assert r.external_patients == len(ids)
        assert r.external_events == int(clinical.loc[clinical["patient_id"].isin(ids), "dm"].sum())
    assert pat["auc_external"].between(0, 1).all() and pat["auc_internal"].between(0, 1).all()
    assert pat[["calibration_intercept_external", "calibration_slope_external", "brier_external",
                "sensitivity_external", "specificity_external"]].notna().all().all()
    # the internal column is the run's own test AUC (recomputed from its predictions)
    from npc_lib.analysis.metrics import auc_ci_delong, patient_scores
    pred = pd.read_parquet(runs / "models" / "npc__intratumour__efficientnet-lite0" / "predictions.parquet")
    pts = patient_scores(pred[pred["split"] == "test"])
    row = pat[(pat["dataset"] == "NPC") & (pat["variant"] == "intratumour")].iloc[0]
    assert row["auc_internal"] == pytest.approx(auc_ci_delong(pts["label"], pts["probability"]).auc)


def test_the_head_applied_outside_equals_the_run_on_its_own_images(mini_run_and_centre_b):
    """Scoring the training cohort itself as an 'external' folder gives back the run's own probabilities."""
    from npc_lib.learn.external_scores import score_external_cohort
    from npc_lib.layout import RunLayout
    runs, _ = mini_run_and_centre_b
    cohort = RunLayout(runs).read_cohort_ref()["cohort"]
    scores = score_external_cohort(runs, cohort, progress=False, out=RunLayout(runs.parent / "self"))
    own = pd.read_parquet(runs / "models" / "cmln__intra-peritumour__efficientnet-lite0" / "predictions.parquet")
    ext = scores.predictions[("CMLN", "intra-peritumour", "efficientnet-lite0")]
    merged = own.merge(ext, on=["patient_id", "image_id"], suffixes=("", "_ext"))
    assert len(merged) == len(own)
    np.testing.assert_allclose(merged["probability"], merged["probability_ext"], atol=1e-4)


def test_a_cohort_without_a_trained_dataset_is_refused_in_one_line(mini_run_and_centre_b, tmp_path, capsys):
    runs, centre_b = mini_run_and_centre_b
    bad = tmp_path / "no_nodes"
    shutil.copytree(centre_b, bad)
    rois = pd.read_csv(bad / "rois.csv")
    rois[rois["region"] != "cmln"].to_csv(bad / "rois.csv", index=False)
    assert main(["evaluate", "--run", str(runs), "--external-cohort", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no images for CMLN" in err and "the run trained on CMLN, NPC" in err and "Traceback" not in err


def test_resampling_and_harmonisation_change_only_the_roi_pixels(mini_run_and_centre_b):
    """Spacing resampling cuts centre B's crops at the training spacing (the ROI footprint shrinks by the spacing
    ratio); intensity harmonisation rewrites the ROI pixels only, leaves the canvas padding black, and moves each
    centre's pooled ROI mean and SD onto the training reference's (z-score) or its quantiles (histogram), through
    one map per region and variant applied to every image."""
    from npc_lib.data.cache import build_image_store, open_image_store
    from npc_lib.data.cohort import load_cohort
    from npc_lib.data.harmonise import (_footprints, apply_map, centre_map, fit_reference, harmonised_external_store,
                                        harmonised_store, training_spacing)
    from npc_lib.data.rois import Geometry, footprint
    from npc_lib.layout import RunLayout
    runs, centre_b = mini_run_and_centre_b
    layout = RunLayout(runs)
    train = open_image_store(layout.image_store(layout.read_cohort_ref()["store"]), verify=False)
    split = layout.read_split()
    geometry = Geometry(**train.manifest["geometry"])
    cohort = load_cohort(centre_b, progress=False)
    cache = runs / "harmonise-test"
    as_is = build_image_store(cohort, geometry, cache, progress=False)
    target = training_spacing(train, split)
    resampled = harmonised_external_store(cohort, train, split, cache, "none", resample=True)
    assert resampled.fingerprint != as_is.fingerprint and resampled.manifest["resample_mm"] == pytest.approx(target)
    spacing = float(as_is.index["spacing_col_mm"].iloc[0])
    assert spacing < target  # centre B's pixels are finer
    big = as_is.index.assign(area=(as_is.index["x1"] - as_is.index["x0"]) * (as_is.index["y1"] - as_is.index["y0"]))
    row = big.loc[big["area"].idxmax()]
    lit_as_is = (as_is.images("intratumour")[row.image_id] > 0).sum()
    lit_resampled = (resampled.images("intratumour")[row.image_id] > 0).sum()
    assert lit_resampled / lit_as_is == pytest.approx((spacing / target) ** 2, rel=0.25)

    reference = fit_reference(train, split.index[split.eq("train")])
    centre = fit_reference(as_is)  # centre B's pooled ROI intensities (here its own pixels)
    for method in ("zscore", "histogram"):
        out = harmonised_store(as_is, method, centre, reference, cache)
        assert out.fingerprint != as_is.fingerprint
        assert harmonised_store(as_is, method, centre, reference, cache).root == out.root  # reused, not rebuilt
        mapped = fit_reference(out)
        for variant in ("intratumour", "intra-peritumour"):
            src, dst = as_is.images(variant), out.images(variant)
            for image_id, mask in list(_footprints(as_is.index, variant, geometry, None))[:40]:
                assert not dst[image_id][~mask].any()  # the padding stays black
                key = (as_is.index.loc[image_id, "region"], variant)
                lut = centre_map(method, centre, reference, key)
                assert np.array_equal(dst[image_id][mask], apply_map(src[image_id][mask], lut))  # one map per centre
        for key in reference.mean:  # the centre's pooled distribution lands on the training images'
            if method == "zscore":
                assert mapped.mean[key] == pytest.approx(reference.mean[key], abs=2.0)
                assert mapped.sd[key] == pytest.approx(reference.sd[key], rel=0.1, abs=2.0)
            else:
                q = [25, 50, 75]
                assert np.abs(np.percentile(mapped.pixels[key], q) - np.percentile(reference.pixels[key], q)).max() < 6


def test_a_centre_map_keeps_what_differs_between_patients_and_a_per_image_map_does_not():
    """Two centre-B images that differ in necrosis (a dark core in one): after the centre's map (z-score or
    histogram), the necrotic one is still the darker by a like margin; normalising each image by its own mean and
    SD (the previous harmonisation) makes their means equal: the planted difference is gone."""
    from npc_lib.data.harmonise import Reference, apply_map, centre_map
    rng = np.random.default_rng(1)
    key = ("cmln", "intratumour")

    def reference_of(pixels):
        pixels = np.sort(pixels.astype(np.float32))
        return Reference({key: float(pixels.mean())}, {key: float(pixels.std())}, {key: pixels})
    training = reference_of(np.clip(rng.normal(130, 35, 50_000), 0, 255))
    plain = np.clip(rng.normal(170, 25, 2000), 0, 255).astype(np.uint8)  # another scanner: brighter, flatter
    necrotic = plain.copy()
    necrotic[:700] = np.clip(rng.normal(80, 15, 700), 0, 255).astype(np.uint8)  # a dark necrotic core
    centre = reference_of(np.concatenate([plain, necrotic, np.clip(rng.normal(170, 25, 20_000), 0, 255)]))
    gap = plain.mean() - necrotic.mean()
    for method in ("zscore", "histogram"):
        lut = centre_map(method, centre, training, key)
        assert np.all(np.diff(lut) >= 0), "monotone"
        a, b = apply_map(plain, lut).astype(float), apply_map(necrotic, lut).astype(float)
        assert a.mean() - b.mean() > 0.5 * gap * training.sd[key] / centre.sd[key], method
    per_image = [(x - x.mean()) / x.std() * training.sd[key] + training.mean[key] for x in (plain.astype(float),
                                                                                             necrotic.astype(float))]
    assert abs(per_image[0].mean() - per_image[1].mean()) < 1e-6  # the old per-image z-score erases it


def test_histogram_matching_undoes_a_planted_contrast_change():
    """A gamma (another protocol's contrast) applied to reference-like pixels: the centre's quantile map brings the
    quantiles back, its z-score map the mean and SD, and doing nothing leaves the shift."""
    from npc_lib.data.harmonise import Reference, apply_map, centre_map
    rng = np.random.default_rng(0)
    key = ("cmln", "intratumour")

    def reference_of(pixels):
        pixels = np.sort(pixels.astype(np.float32))
        return Reference({key: float(pixels.mean())}, {key: float(pixels.std())}, {key: pixels})
    ref = np.clip(rng.normal(120, 40, 50_000), 0, 255)
    shifted = np.round(255 * (np.clip(rng.normal(120, 40, 40_000), 0, 255) / 255) ** 0.6).astype(np.uint8)
    q = [10, 50, 90]
    before = np.abs(np.percentile(shifted, q) - np.percentile(ref, q)).max()
    matched = apply_map(shifted, centre_map("histogram", reference_of(shifted), reference_of(ref), key))
    assert before > 20 and np.abs(np.percentile(matched, q) - np.percentile(ref, q)).max() < 3
    z = apply_map(shifted, centre_map("zscore", reference_of(shifted), reference_of(ref), key)).astype(float)
    assert z.mean() == pytest.approx(ref.mean(), abs=1.5) and z.std() == pytest.approx(ref.std(), rel=0.05)
    assert np.array_equal(apply_map(shifted, centre_map("none", reference_of(shifted), reference_of(ref), key)), shifted)
    with pytest.raises(ValueError, match="unknown intensity harmonisation"):
        centre_map("n4", reference_of(shifted), reference_of(ref), key)


def _frames(rng, n, events, signal):
    y = np.r_[np.ones(events), np.zeros(n - events)].astype(int)
    p = 1 / (1 + np.exp(-(signal * (y - 0.5) * 2 + rng.normal(0, 1, n))))
    return pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)], "image_id": np.arange(n), "label": y,
                         "split": "test", "probability": p})


def test_the_summary_separates_a_scanner_loss_from_case_mix_and_sampling():
    """A model that keeps its signal on the external patients shows no change beyond the planted reference's; one
    that loses it (the scanner broke it) shows a loss whose interval lies below zero, and beyond the reference's."""
    from npc_lib.analysis.external import PLANTED, external_summary
    rng = np.random.default_rng(1)
    cell = ("CMLN", "intra-peritumour")
    internal = {(*cell, b): _frames(rng, 150, 40, 1.5) for b in ("kept", "broken", PLANTED)}
    external = {(*cell, "kept"): _frames(rng, 300, 60, 1.5), (*cell, "broken"): _frames(rng, 300, 60, 0.0),
                (*cell, PLANTED): _frames(rng, 300, 60, 1.5)}
    s = external_summary(internal, external, n_boot=400, groups={}).set_index("what")
    assert s.loc["broken", "change_high"] < 0 and s.loc["broken", "excess_high"] < 0
    assert s.loc["kept", "change_low"] < 0 < s.loc["kept", "change_high"]
    assert s.loc["kept", "excess_low"] < 0 < s.loc["kept", "excess_high"]
    assert np.isnan(s.loc[PLANTED, "excess_change"])
    assert s.loc["broken", "external_patients"] == 300 and s.loc["broken", "internal_patients"] == 150
