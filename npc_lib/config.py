"""Profiles (``npc_lib/profiles/*.yaml``): load by name or path, validate, and hash."""
from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import yaml

from npc_lib.errors import NpcError
from npc_lib.vocabulary import BACKBONES, DATASETS, VARIANTS

REQUIRED = ("name", "cohort", "geometry", "split", "train", "weights", "backbones", "datasets", "variants")


def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("npc_lib.profiles").iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path, overrides: dict | None = None) -> dict:
    """A profile dict from a shipped name (smoke, demo, paper) or a YAML path, with overrides merged."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    elif str(name_or_path) in profile_names():
        text = resources.files("npc_lib.profiles").joinpath(f"{name_or_path}.yaml").read_text()
    else:
        raise NpcError(f"unknown profile {name_or_path!r}", hint=f"use one of {', '.join(profile_names())} "
                       "or a path to a .yaml profile")
    profile = yaml.safe_load(text)
    for key, value in (overrides or {}).items():
        _set(profile, key, value)
    missing = [k for k in REQUIRED if k not in profile]
    if missing:
        raise NpcError(f"profile {name_or_path}: missing {', '.join(missing)}")
    for b in profile["backbones"]:
        if b not in BACKBONES:
            raise NpcError(f"profile {name_or_path}: unknown backbone {b!r}; known: {', '.join(BACKBONES)}")
    for d in profile["datasets"]:
        if d not in DATASETS:
            raise NpcError(f"profile {name_or_path}: unknown dataset {d!r}; known: {', '.join(DATASETS)}")
    for v in profile["variants"]:
        if v not in VARIANTS:
            raise NpcError(f"profile {name_or_path}: unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    choice = profile.get("model_choice")
    if choice is not None and choice not in profile["backbones"]:
        raise NpcError(f"profile {name_or_path}: model_choice {choice!r} is not one of its backbones "
                       f"({', '.join(profile['backbones'])})")
    if profile["train"]["mode"] not in ("head", "finetune"):
        raise NpcError(f"profile {name_or_path}: train.mode must be head or finetune")
    return profile


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def config_hash(obj) -> str:
    """Stable short hash of a JSON-able object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

