"""Profiles (``npc_lib/profiles/*.yaml``): load by name or path, validate, and hash."""
from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import yaml

from npc_lib.errors import NpcError
from npc_lib.profile_schema import check_profile


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
    source = str(path) if path.suffix in (".yaml", ".yml") and path.is_file() else str(name_or_path)
    try:
        profile = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NpcError(f"profile {source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(profile, dict):
        raise NpcError(f"profile {source}: not a mapping of keys to values")
    for key, value in (overrides or {}).items():
        _set(profile, key, value)
    check_profile(profile, source)  # unknown keys, types and ranges: one line naming the key
    return profile


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def config_hash(obj) -> str:
    """Stable short hash of a JSON-able object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

