"""Profiles (``npc_lib/profiles/*.yaml``): loaded by name or path, validated once, and handed on as a
frozen, typed :class:`Profile`.

A profile is checked against :mod:`npc_lib.profile_schema` when it is loaded (an unknown key, a
wrong type or a value out of range is one error naming the file and the key); afterwards every
reader uses attributes (``profile.geometry.input_size``), never string keys.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from npc_lib.errors import NpcError
from npc_lib.profile_schema import check_profile


@dataclass(frozen=True)
class CohortSettings:
    """The synthetic cohort a profile generates when no cohort folder is given."""

    patients: int
    matrix: int
    slices: int
    scenario: str
    seed: int


@dataclass(frozen=True)
class Geometry:
    """Parameters that determine every stored image (part of the image store's fingerprint)."""

    peritumour_mm: float = 3.0
    canvas: int = 512
    input_size: int = 512
    low_percentile: float = 1.0
    high_percentile: float = 99.0


@dataclass(frozen=True)
class SplitSettings:
    """The patient-level train/test split."""

    seed: int
    test_fraction: float


@dataclass(frozen=True)
class TrainSettings:
    """How each model is trained: a head on frozen features, or the whole network fine-tuned."""

    mode: str
    epochs: int
    batch_size: int
    learning_rate: float
    dropout: float
    l2: float
    seed: int


@dataclass(frozen=True)
class ExternalSettings:
    """The main job's external validation: a second synthetic centre and the harmonisation of its images."""

    centre: str
    patients: int
    matrix: int
    seed: int
    harmonisation: str          # auto (chosen on the tuning draw) | none | zscore | histogram
    resample: bool | str        # auto | True | False
    ablation_backbones: tuple[str, ...] = ()  # empty: every backbone of the profile
    tuning_patients: int = 0    # a separate draw of the centre the harmonisation is chosen on (0: none)
    tuning_seed: int = 0


@dataclass(frozen=True)
class Profile:
    """A validated profile. ``source`` is what it was loaded from (a shipped name or a file path) and
    ``overrides`` the dotted keys changed on top of it; :meth:`as_dict` gives the mapping it was built
    from (hashed into every run's record)."""

    name: str
    cohort: CohortSettings
    geometry: Geometry
    split: SplitSettings
    train: TrainSettings
    weights: str | None
    weights_fallback: str | None
    backbones: tuple[str, ...]
    datasets: tuple[str, ...]
    variants: tuple[str, ...]
    negative_control_backbones: tuple[str, ...]  # empty: no negative control
    model_choice: str | None
    resplits: int
    source: str
    external: ExternalSettings | None = None
    precision: str = "float32"  # the frozen backbones' arithmetic: float32 or bfloat16 (CPUs with AMX or AVX-512-BF16)
    overrides: dict = field(default_factory=dict, compare=False, hash=False)
    _raw: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_dict(cls, raw: dict, source: str, overrides: dict | None = None) -> "Profile":
        """Validate ``raw`` (one error naming ``source`` and the key) and type it."""
        check_profile(raw, source)
        nc = raw.get("negative_control") or {}
        return cls(name=raw["name"], cohort=CohortSettings(**raw["cohort"]), geometry=Geometry(**raw["geometry"]),
                   split=SplitSettings(**raw["split"]), train=TrainSettings(**raw["train"]),
                   weights=raw.get("weights"), weights_fallback=raw.get("weights_fallback"),
                   backbones=tuple(raw["backbones"]), datasets=tuple(raw["datasets"]), variants=tuple(raw["variants"]),
                   negative_control_backbones=(tuple(nc.get("backbones") or raw["backbones"])
                                               if raw.get("negative_control") is not None else ()),
                   model_choice=raw.get("model_choice"), resplits=int(raw.get("resplits") or 0), source=source,
                   external=(ExternalSettings(**{**raw["external"], "ablation_backbones": tuple(
                       raw["external"].get("ablation_backbones") or ())}) if raw.get("external") else None),
                   precision=raw.get("precision", "float32"),
                   overrides=dict(overrides or {}), _raw=copy.deepcopy(raw))

    def as_dict(self) -> dict:
        """The validated mapping (a copy), as read from the file with the overrides applied."""
        return copy.deepcopy(self._raw)

    def replaced(self, changes: dict) -> "Profile":
        """A new profile with dotted keys changed (``{"cohort.scenario": "null"}``), validated again."""
        raw = self.as_dict()
        for key, value in changes.items():
            _set(raw, key, value)
        return Profile.from_dict(raw, self.source, {**self.overrides, **changes})


def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("npc_lib.profiles").iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path, overrides: dict | None = None) -> Profile:
    """The :class:`Profile` of a shipped name (smoke, demo, paper) or a YAML path, with dotted-key
    overrides applied; any problem is one :class:`NpcError` naming the file and the key."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, source = path.read_text(), str(path.resolve())
    elif str(name_or_path) in profile_names():
        text = resources.files("npc_lib.profiles").joinpath(f"{name_or_path}.yaml").read_text()
        source = str(name_or_path)
    else:
        raise NpcError(f"unknown profile {name_or_path!r}", hint=f"use one of {', '.join(profile_names())} "
                       "or a path to a .yaml profile")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NpcError(f"profile {source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise NpcError(f"profile {source}: not a mapping of keys to values")
    for key, value in (overrides or {}).items():
        _set(raw, key, value)
    return Profile.from_dict(raw, source, overrides)


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def config_hash(obj) -> str:
    """Stable short hash of a JSON-able object (sorted keys); a :class:`Profile` hashes its mapping."""
    if isinstance(obj, Profile):
        obj = obj.as_dict()
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
