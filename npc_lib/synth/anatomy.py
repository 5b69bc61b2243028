"""Normal head-and-neck anatomy of the phantom, one axial slice at a time.

Skin, subcutaneous fat, airway with enhancing mucosa, nasal cavity and sinuses, pterygoid and
masseter muscles, mandible, tongue, parotid and submandibular glands, clivus / vertebra with
spinal cord, prevertebral and paraspinal muscles, sternocleidomastoid, carotid flow voids and
enhancing jugular veins, painted from ellipses whose size and position vary with the level
(0 at the skull base, 1 low in the neck) and the patient. Intensities are relative T1
contrast-enhanced values without fat suppression (fat ≈ 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from npc_lib.synth.shapes import ellipse, ring

NASOPHARYNX_LEVEL = 0.42  # slices with level < this are nasopharyngeal, the rest neck
# relative T1-CE intensities
AIR, CORTEX, CSF, MUSCLE, CORD, SKIN, TUMOUR, NODE = 0.02, 0.07, 0.15, 0.36, 0.45, 0.6, 0.56, 0.52
MARROW, GLAND, MUCOSA, PAROTID, FAT, VEIN, NECROSIS = 0.72, 0.74, 0.82, 0.86, 1.0, 1.12, 0.2


@dataclass
class PatientAnatomy:
    """Per-patient variation of the normal anatomy."""

    scale: float
    neck_width: float
    shift: tuple[float, float]
    fat: float
    intensity_scale: float
    bias: tuple
    noise: float

    @classmethod
    def draw(cls, rng, centre=None) -> "PatientAnatomy":
        """One patient's anatomy; ``centre`` (:class:`npc_lib.synth.centres.Centre`) sets the scanner's
        intensity scale, bias-field and noise ranges (default: centre A's)."""
        lo, hi = centre.intensity_scale if centre else (700, 1500)
        n_lo, n_hi = centre.noise if centre else (0.018, 0.035)
        return cls(scale=rng.uniform(0.93, 1.07), neck_width=rng.uniform(0.92, 1.08),
                   shift=(rng.uniform(-4, 4), rng.uniform(-4, 4)), fat=rng.uniform(4, 10),
                   intensity_scale=rng.uniform(lo, hi), bias=tuple(rng.normal(0, centre.bias_sd if centre else 0.12, 5)),
                   noise=rng.uniform(n_lo, n_hi))


def normal_anatomy(X, Y, level: float, a: PatientAnatomy) -> tuple[np.ndarray, np.ndarray]:
    """Normal anatomy of one slice: relative intensity image and body mask."""
    s = a.scale
    sx, sy = a.shift
    X, Y = (X - sx) / s, (Y - sy) / s
    img = np.full(X.shape, AIR, dtype=np.float32)
    ax, ay = (80 - 16 * level) * a.neck_width, 92 - 22 * level
    body = ellipse(X, Y, 0, 4, ax, ay)
    naso = level < NASOPHARYNX_LEVEL

    def paint(mask, value):
        img[mask & body] = value

    paint(body, FAT)
    paint(ring(X, Y, 0, 4, ax, ay, 1.6), SKIN)
    deep = ellipse(X, Y, 0, 6, ax - a.fat, ay - a.fat)
    paint(deep, 0.8)  # deep soft tissue: fat planes between the structures below
    paint(ring(X, Y, 0, 6, ax - a.fat, ay - a.fat, 3.0), MUSCLE * 1.2)  # platysma / superficial muscle
    for side in (-1, 1):
        paint(ellipse(X, Y, side * 20, 0, 8, 13), FAT)            # parapharyngeal fat
        paint(ellipse(X, Y, side * 22, 50, 18, 13), MUSCLE)       # paraspinal muscles
        paint(ellipse(X, Y, side * 10, 64, 10, 9), MUSCLE)
        paint(ellipse(X, Y, side * 8, 12, 5.5, 4), MUSCLE)        # longus capitis / colli
        if naso:
            paint(ellipse(X, Y, side * 31, -4, 8, 14, side * 20), MUSCLE)   # pterygoids
            paint(ellipse(X, Y, side * 53, 20, 11, 16), PAROTID)           # parotid
            paint(ellipse(X, Y, side * 60, -6, 7, 17), MUSCLE)             # masseter
            paint(ellipse(X, Y, side * 47, -6, 5, 14), CORTEX)             # mandibular ramus
            paint(ellipse(X, Y, side * 47, -6, 2.5, 11), MARROW)
        else:
            paint(ellipse(X, Y, side * 47, 22 + 8 * level, 8, 15, side * 35), MUSCLE)  # SCM
            if level < 0.75:
                paint(ellipse(X, Y, side * 34, -22, 10, 8), GLAND)         # submandibular
        paint(ellipse(X, Y, side * 24, 12, 3.5, 3.5), AIR * 2)            # carotid flow void
        paint(ellipse(X, Y, side * 31, 17, 5.5, 4.5), VEIN)               # internal jugular
    if naso:
        paint(ellipse(X, Y, 0, -10, 12, 6.5), MUCOSA)
        paint(ellipse(X, Y, 0, -10, 10, 4.8), AIR)                        # nasopharyngeal airway
        if level < NASOPHARYNX_LEVEL * 0.7:
            for side in (-1, 1):                                           # maxillary sinuses
                paint(ellipse(X, Y, side * 30, -46, 14, 15, side * 10), CORTEX)
                paint(ellipse(X, Y, side * 30, -46, 12, 13, side * 10), MUCOSA)
                paint(ellipse(X, Y, side * 30, -46, 10, 11, side * 10), AIR)
            paint(ellipse(X, Y, 0, -42, 18, 24), MUCOSA)                   # nasal cavity
            paint(ellipse(X, Y, 0, -42, 15, 21) & (np.abs(X) > 1.5), AIR)
            for side in (-1, 1):
                paint(ellipse(X, Y, side * 11, -42, 3, 14), MUCOSA)        # turbinates
        paint(ellipse(X, Y, 0, 24, 15, 10), CORTEX)                         # clivus
        paint(ellipse(X, Y, 0, 24, 12.5, 7.5), MARROW)
    else:
        if level < 0.75:
            paint(ellipse(X, Y, 0, -38, 34, 24), 0.42)                        # tongue
            paint(ellipse(X, Y, 0, -38, 2, 20), FAT * 0.9)                    # lingual septum
            mand = ring(X, Y, 0, -18, 52, 48, 8) & (Y < -14)                  # mandibular body
            paint(mand, CORTEX)
            paint(ring(X, Y, 0, -18, 50, 46, 4) & (Y < -15), MARROW)
        aw = 12 - 4 * level
        paint(ellipse(X, Y, 0, -12, aw + 2, 8), MUCOSA)
        paint(ellipse(X, Y, 0, -12, aw, 6), AIR)                             # oro/hypopharynx
    if not naso:
        paint(ellipse(X, Y, 0, 25, 14, 11), CORTEX)                          # vertebral body
        paint(ellipse(X, Y, 0, 25, 12, 9), MARROW)
        paint(ring(X, Y, 0, 42, 11, 9, 2.5), CORTEX)                         # posterior arch
    paint(ellipse(X, Y, 0, 42, 8.5, 6.5), CSF)                               # spinal canal
    paint(ellipse(X, Y, 0, 42, 5, 4), CORD)
    return img, body


def smooth_noise(rng, shape, sigma_px):
    """Unit-SD Gaussian-smoothed noise of ``shape`` (texture, bias fields)."""
    n = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px)
    return n / (n.std() + 1e-6)
