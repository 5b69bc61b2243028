"""A bad profile or a degenerate cohort stops before anything is computed, with one line that names
the file, the key (or dataset), the bad value and what is allowed."""
from __future__ import annotations

import pytest
import yaml

from npc_lib.config import load_profile
from npc_lib.errors import NpcError


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_shipped_profiles_pass(name):
    profile = load_profile(name)
    assert profile.name == name and profile.source == name
    assert profile.geometry.input_size == profile.as_dict()["geometry"]["input_size"]
    with pytest.raises(AttributeError):  # frozen: a profile is read, never changed in place
        profile.train.epochs = 1


def test_a_profile_file_is_typed_and_its_path_travels_to_the_notebooks(tmp_path):
    from npc_lib.layout import RunLayout
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.notebooks import parameters
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**load_profile("smoke").as_dict(), "name": "mine"}))
    profile = load_profile(path, {"weights": "none"})
    assert profile.source == str(path.resolve()) and profile.overrides == {"weights": "none"}
    params = parameters(RunContext(profile, RunLayout(tmp_path / "runs"), None, tmp_path))
    assert load_profile(params["profile"], params["overrides"]) == profile


@pytest.mark.parametrize("key,value,words", [
    ("train.epoch", 3, "unknown key 'train.epoch'"),
    ("resolution", 5, "unknown key 'resolution'"),
    ("train.epochs", 0, "train.epochs = 0 is not allowed; expected an integer >= 1"),
    ("train.epochs", "40", "train.epochs = '40' is not allowed"),
    ("split.test_fraction", 1.0, "split.test_fraction = 1.0 is not allowed; expected a number strictly between 0 and 1"),
    ("split.test_fraction", 0, "split.test_fraction = 0"),
    ("train.dropout", 1.0, "train.dropout = 1.0"),
    ("train.mode", "tune", "train.mode = 'tune' is not allowed; expected head or finetune"),
    ("backbones", ["resnet51"], "backbones = ['resnet51'] is not allowed"),
    ("datasets", ["NPC", "NPC"], "datasets = ['NPC', 'NPC']"),
    ("variants", ["peritumour"], "variants = ['peritumour']"),
    ("geometry.low_percentile", 99.5, "must be below geometry.high_percentile"),
    ("model_choice", "xception", None),  # allowed: one of the profile's backbones
])
def test_bad_values_name_key_value_and_rule(tmp_path, key, value, words):
    base = load_profile("smoke").as_dict()
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(base))
    if words is None:
        assert getattr(load_profile(path, {key: value}), key) == value
        return
    with pytest.raises(NpcError) as err:
        load_profile(path, {key: value})
    msg = str(err.value)
    assert str(path) in msg and words in msg, msg


def test_a_missing_key_and_a_broken_file_are_named(tmp_path):
    base = load_profile("smoke").as_dict()
    del base["split"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(NpcError, match="missing key split"):
        load_profile(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(NpcError, match="not valid YAML"):
        load_profile(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(NpcError, match="not a mapping"):
        load_profile(path)


def test_model_choice_must_be_a_profile_backbone():
    with pytest.raises(NpcError, match="model_choice = 'xception' is not one of its backbones"):
        load_profile("smoke", {"backbones": ["efficientnet-b0"], "model_choice": "xception"})


def test_a_degenerate_split_stops_before_training(small_cohort, tmp_path):
    from npc_lib.cli import main
    from npc_lib.learn.study import prepare
    profile = load_profile("smoke", {"split.test_fraction": 0.03, "weights": "none"})
    with pytest.raises(NpcError) as err:
        prepare(profile, small_cohort, tmp_path / "runs", progress=False)
    msg = str(err.value)
    assert msg.startswith("dataset ") and "test split holds" in msg and "test_fraction" in err.value.hint
    assert not (tmp_path / "runs" / "models").exists()  # nothing trained
    # the counts command still shows the counts (they are the diagnosis)
    assert main(["datasets", str(small_cohort), "--profile", "smoke", "--runs", str(tmp_path / "r2")]) == 0


def test_a_batch_larger_than_the_training_set_is_named(small_cohort, tmp_path):
    from npc_lib.learn.study import prepare
    profile = load_profile("smoke", {"train.batch_size": 5000})
    with pytest.raises(NpcError, match="train.batch_size = 5000 is larger than dataset"):
        prepare(profile, small_cohort, tmp_path, progress=False)
