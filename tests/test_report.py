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
    (runs / "cohort.json").write_text(json.dumps({"cohort": str(cohort)}))
    return runs, cohort


def test_synthetic_cohort_and_random_backbones_are_both_flagged(tmp_path):
    runs, _ = _study(tmp_path, True, {"resnet50": "random", "xception": "imagenet"})
    flags = data_flags(runs)
    assert flags == {"synthetic": True, "scenario": "null", "random_backbones": ["resnet50"]}
    html = chapter_banner_html(flags)
    assert "Synthetic data." in html and "<code>null</code>" in html
    assert "Randomly initialised backbones." in html and "resnet50" in html and "xception" not in html


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
