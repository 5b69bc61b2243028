"""The ablations' settings, read from a profile (pure: nothing is built or fitted here).

* The pretraining ablation: EfficientNet-Lite0 from random weights in the profile's own mode, everything else as
  the profile (:func:`ablation_profile`).
* The fine-tuning ablation: Lite0's top blocks fine-tuned on cached activations (:func:`finetune_settings`; the
  feature passes keep the activations below the trained blocks, :func:`lite0_tap_block`).
"""
from __future__ import annotations

from npc_lib.config import Profile
from npc_lib.vocabulary import LITE0

FINETUNE_DEFAULTS = {"blocks": 1, "patience": 3, "learning_rate": 1e-5}
TOTAL_LITE0_BLOCKS = 17  # 16 inverted-residual blocks and the 1280-filter top convolution


def ablation_profile(profile: Profile) -> Profile | None:
    """The pretraining ablation's profile: EfficientNet-Lite0 from random initialisation in the profile's own
    mode (head mode against head mode; fine-tuned against fine-tuned), everything else as ``profile``; None
    when the profile has no Lite0 or Lite0 itself runs without pretrained weights (nothing to compare)."""
    if LITE0 not in profile.backbones or str(profile.weights) in ("none", "random", "None"):
        return None
    return profile.replaced({"backbones": [LITE0], "weights": "none", "model_choice": LITE0})


def finetune_settings(profile: Profile) -> dict | None:
    """The fine-tuning ablation's settings (the profile's ``finetune_ablation`` over the defaults, datasets and
    variants defaulting to the grid's), or None where it does not run (no key, no Lite0, no pretrained Lite0 to
    compare with, or a profile that fine-tunes its whole grid)."""
    spec = profile.as_dict().get("finetune_ablation")
    if not spec or LITE0 not in profile.backbones or profile.train.mode == "finetune" or \
            ablation_profile(profile) is None:
        return None
    out = {**FINETUNE_DEFAULTS, **spec}
    out["datasets"] = [d for d in profile.datasets if d in (spec.get("datasets") or profile.datasets)]
    out["variants"] = [v for v in profile.variants if v in (spec.get("variants") or profile.variants)]
    return out


def tap_block(blocks: int) -> int:
    """The index of Lite0's first trained block (16: the top convolution) for ``blocks`` trained blocks."""
    if not 1 <= int(blocks) <= TOTAL_LITE0_BLOCKS - 2:
        raise ValueError(f"blocks = {blocks}: train between 1 and {TOTAL_LITE0_BLOCKS - 2} of Lite0's top blocks")
    return TOTAL_LITE0_BLOCKS - int(blocks)


def lite0_tap_block(profile: Profile) -> int | None:
    """Where Lite0's feature passes keep activations for the fine-tuning ablation (None when it does not run)."""
    s = finetune_settings(profile)
    return tap_block(s["blocks"]) if s else None
