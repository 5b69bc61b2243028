"""What a profile may hold: every key, its type and its allowed values, checked once on loading.

A profile with an unknown key, a value of the wrong type or out of range fails before anything is
computed, with one line naming the profile, the dotted key, the bad value and what is allowed.
Keys starting with ``_`` are the runner's own bookkeeping and are not checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from npc_lib.errors import NpcError
from npc_lib.vocabulary import BACKBONES, CENTRE_NAMES, DATASETS, variant_names


@dataclass(frozen=True)
class Rule:
    """One key: a check of its value and the words that say what is allowed."""

    ok: Callable[[object], bool]
    allowed: str | Callable[[], str]  # a callable: words that depend on what is registered
    required: bool = True


def _int(lo=None, hi=None):
    def ok(v):
        return isinstance(v, int) and not isinstance(v, bool) and (lo is None or v >= lo) and (hi is None or v <= hi)
    return ok


def _num(lo=None, hi=None, lo_open=False, hi_open=False):
    def ok(v):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return hi is None or (v < hi if hi_open else v <= hi)
    return ok


def _one_of(*values):
    return lambda v: v in values


def _list_of(values, allow_empty=False):
    return lambda v: isinstance(v, list) and (allow_empty or v) and all(x in values for x in v) and len(set(v)) == len(v)


SCHEMA: dict = {
    "name": Rule(lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "cohort": {
        "patients": Rule(_int(10), "an integer >= 10"),
        "matrix": Rule(_int(32), "an integer >= 32 (pixels)"),
        "slices": Rule(_int(4), "an integer >= 4"),
        "scenario": Rule(_one_of("paper", "null"), "paper or null"),
        "seed": Rule(_int(0), "an integer >= 0"),
    },
    "geometry": {
        "peritumour_mm": Rule(_num(0, lo_open=True), "a number > 0 (mm)"),
        "canvas": Rule(_int(8), "an integer >= 8 (pixels)"),
        "input_size": Rule(_int(8), "an integer >= 8 (pixels)"),
        "low_percentile": Rule(_num(0, 100), "a number in [0, 100]"),
        "high_percentile": Rule(_num(0, 100), "a number in [0, 100]"),
    },
    "split": {
        "seed": Rule(_int(0), "an integer >= 0"),
        "test_fraction": Rule(_num(0, 1, lo_open=True, hi_open=True), "a number strictly between 0 and 1"),
    },
    "train": {
        "mode": Rule(_one_of("head", "finetune"), "head or finetune"),
        "epochs": Rule(_int(1), "an integer >= 1"),
        "batch_size": Rule(_int(1), "an integer >= 1"),
        "learning_rate": Rule(_num(0, lo_open=True), "a number > 0"),
        "dropout": Rule(_num(0, 1, hi_open=True), "a number in [0, 1)"),
        "l2": Rule(_num(0), "a number >= 0"),
        "seed": Rule(_int(0), "an integer >= 0"),
    },
    "weights": Rule(lambda v: v is None or (isinstance(v, str) and bool(v)), "imagenet, none or a weights file path"),
    "weights_fallback": Rule(lambda v: v in (None, "none", "error", "random"), "none, random or error", required=False),
    "backbones": Rule(_list_of(BACKBONES), f"a non-empty list of distinct backbones from {', '.join(BACKBONES)}"),
    "datasets": Rule(_list_of(DATASETS), f"a non-empty list of distinct datasets from {', '.join(DATASETS)}"),
    "variants": Rule(lambda v: _list_of(variant_names())(v),
                     lambda: f"a non-empty list of distinct variants from {', '.join(variant_names())}"),
    "negative_control": {"_optional": True,
                         "backbones": Rule(_list_of(BACKBONES), f"a non-empty list of backbones from "
                                                                f"{', '.join(BACKBONES)}", required=False)},
    "finetune_ablation": {"_optional": True,
                          "epochs": Rule(_int(1), "an integer >= 1 (the most epochs; early stopping may end sooner)"),
                          "blocks": Rule(_int(1, 15), "an integer from 1 to 15 (EfficientNet-Lite0's top blocks "
                                                      "trained)", required=False),
                          "patience": Rule(_int(1), "an integer >= 1 (epochs without a better validation loss)",
                                           required=False),
                          "learning_rate": Rule(_num(0, lo_open=True), "a number > 0", required=False),
                          "datasets": Rule(_list_of(DATASETS), f"a non-empty list of datasets from {', '.join(DATASETS)}",
                                           required=False),
                          "variants": Rule(lambda v: _list_of(variant_names())(v),
                                           lambda: f"a non-empty list of variants from {', '.join(variant_names())}",
                                           required=False)},
    "external": {"_optional": True,
                 "centre": Rule(lambda v: v in CENTRE_NAMES[1:], f"one of {', '.join(CENTRE_NAMES[1:])} (a centre other "
                                                                 f"than the training centre A)"),
                 "patients": Rule(_int(10), "an integer >= 10"),
                 "matrix": Rule(_int(32), "an integer >= 32 (pixels)"),
                 "seed": Rule(_int(0), "an integer >= 0"),
                 "harmonisation": Rule(_one_of("auto", "none", "zscore", "histogram"),
                                       "auto (chosen on the tuning draw), none, zscore or histogram"),
                 "resample": Rule(lambda v: isinstance(v, bool) or v == "auto",
                                  "auto (chosen on the tuning draw), true or false"),
                 "tuning_patients": Rule(_int(10), "an integer >= 10 (the tuning draw of the centre)", required=False),
                 "tuning_seed": Rule(_int(0), "an integer >= 0", required=False),
                 "ablation_backbones": Rule(_list_of(BACKBONES), f"a non-empty list of backbones from "
                                                                 f"{', '.join(BACKBONES)}", required=False)},
    "precision": Rule(_one_of("float32", "bfloat16"), "float32 or bfloat16 (the frozen backbones' arithmetic)",
                      required=False),
    "model_choice": Rule(lambda v: v in BACKBONES, f"one of {', '.join(BACKBONES)}", required=False),
    "resplits": Rule(_int(0, 1000), "an integer from 0 to 1000", required=False),
}


def check_profile(profile: dict, source: str) -> None:
    """Raise :class:`NpcError` naming ``source``, the key, the value and what is allowed at the
    first problem in ``profile`` (unknown key, missing key, wrong type or value)."""
    if not isinstance(profile, dict):
        raise NpcError(f"profile {source}: not a mapping of keys to values")
    _check(profile, SCHEMA, source, "")
    if profile["geometry"]["low_percentile"] >= profile["geometry"]["high_percentile"]:
        raise NpcError(f"profile {source}: geometry.low_percentile = {profile['geometry']['low_percentile']!r} must be "
                       f"below geometry.high_percentile = {profile['geometry']['high_percentile']!r}")
    ext = profile.get("external") or {}
    if "auto" in (ext.get("harmonisation"), ext.get("resample")) and not ext.get("tuning_patients"):
        raise NpcError(f"profile {source}: external.harmonisation or external.resample is auto, which is chosen on a "
                       "tuning draw of the centre; set external.tuning_patients (and tuning_seed)")
    choice = profile.get("model_choice")
    if choice is not None and choice not in profile["backbones"]:
        raise NpcError(f"profile {source}: model_choice = {choice!r} is not one of its backbones "
                       f"({', '.join(profile['backbones'])})")


def _check(values: dict, schema: dict, source: str, prefix: str) -> None:
    for key, value in values.items():
        if str(key).startswith("_"):
            continue
        where = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(prefix + k for k in schema if not k.startswith("_"))
            raise NpcError(f"profile {source}: unknown key {where!r} (value {value!r}); allowed keys here: {known}")
        rule = schema[key]
        if isinstance(rule, dict):
            if value is None and rule.get("_optional"):
                continue
            if not isinstance(value, dict):
                raise NpcError(f"profile {source}: {where} = {value!r} must be a mapping of "
                               f"{', '.join(k for k in rule if not k.startswith('_'))}")
            _check(value, rule, source, where + ".")
        elif not rule.ok(value):
            allowed = rule.allowed() if callable(rule.allowed) else rule.allowed
            raise NpcError(f"profile {source}: {where} = {value!r} is not allowed; expected {allowed}")
    for key, rule in schema.items():
        if key.startswith("_") or key in values:
            continue
        if (isinstance(rule, Rule) and rule.required) or (isinstance(rule, dict) and not rule.get("_optional")):
            raise NpcError(f"profile {source}: missing key {prefix}{key}")
