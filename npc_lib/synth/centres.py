"""Synthetic centres: what a different scanner, protocol and referral pattern change, with the same biology.

Centre ``A`` is the default cohort (the paper-like hospital). Another centre keeps the planted risk model
(the same weights on the same latent features) and changes what a hospital changes: the vendor's intensity
scale and the protocol's contrast, the noise level, the bias field, the in-plane field of view (so the pixel
spacing) and the slice thickness, and the case mix (the stage distribution and the DM rate). The generation
report records a centre's settings and the shifts measured on the written images.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from npc_lib.vocabulary import CENTRE_NAMES


@dataclass(frozen=True)
class Centre:
    """What one centre's scanner, protocol and case mix look like."""

    name: str
    intensity_scale: tuple[float, float] = (700.0, 1500.0)  # per-patient stored-value scale (vendor, field)
    contrast: float = 1.0            # gamma on the relative T1-CE intensities (protocol contrast)
    noise: tuple[float, float] = (0.018, 0.035)  # Rician noise SD range, relative to fat
    bias_sd: float = 0.12            # SD of the bias-field coefficients (coil profile)
    fov_mm: float = 230.0            # in-plane field of view: pixel spacing = fov / matrix
    slice_mm: float = 5.0            # slice thickness and spacing
    t_mix: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # multipliers of the published T1..T4 shares
    n_mix: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # multipliers of the published N0..N3 shares
    id_prefix: str = "P"             # patient IDs: P0001 (A), B0001 (B)

    def as_dict(self) -> dict:
        return asdict(self)


CENTRES = {
    "A": Centre("A"),
    # another vendor at 3 T: larger stored values, flatter contrast, more noise, a stronger coil profile,
    # a smaller field of view and thinner slices; referred earlier (fewer T4/N3). The DM rate follows from
    # the same risk model and intercept as centre A's, so the earlier case mix gives fewer metastases.
    "B": Centre("B", intensity_scale=(1800.0, 3200.0), contrast=0.8, noise=(0.03, 0.05), bias_sd=0.22,
                fov_mm=200.0, slice_mm=4.0, t_mix=(2.5, 1.6, 0.7, 0.35), n_mix=(2.5, 1.5, 0.7, 0.3), id_prefix="B"),
}


assert tuple(CENTRES) == CENTRE_NAMES, "register a centre's name in npc_lib.vocabulary.CENTRE_NAMES too"


def centre(name: str) -> Centre:
    """The registered centre ``name`` (``A``, ``B``); an unknown name is a clear error."""
    if name not in CENTRES:
        raise ValueError(f"unknown centre {name!r}; known: {', '.join(CENTRES)}")
    return CENTRES[name]
