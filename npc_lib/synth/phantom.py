"""Axial head-and-neck T1 contrast-enhanced MR phantom with a primary tumour and neck nodes.

One patient is a stack of axial slices from the skull base (slice 0) down the neck. Normal
anatomy (skin, subcutaneous fat, airway with enhancing mucosa, nasal cavity, pterygoid and
masseter muscles, mandible, tongue, parotid and submandibular glands, clivus / vertebra with
spinal cord, prevertebral and paraspinal muscles, sternocleidomastoid, carotid flow voids
and enhancing jugular veins) is painted from ellipses whose size and position vary with the
level and the patient. Lesions carry the latent DM features of ``synth.clinical``:

* primary tumour — lobulated, enhancing, in the nasopharyngeal slices, size by T stage;
  ``npc_heterogeneity`` mottles its enhancement, ``npc_infiltration`` adds infiltrative
  strands in the peritumoural band;
* nodes — count, size and side by N stage in the neck slices; ``node_necrosis`` makes a
  non-enhancing centre, ``node_ene`` adds extranodal strands in the peritumoural band.
  Necrosis and extranodal extension vary between a patient's nodes (one may be spared).

*Peritumoural* is defined by the annotation, as in the paper: the band between the rectangle
a reader draws around the visible (enhancing) lesion and that rectangle grown by
``PERITUMOUR_MM``. The reader's rectangle is the tight box of the lesion core with annotator
jitter; the strands are then painted in that band only, their depth (≤ 3 mm) and angular
coverage growing with the feature, and their position changing from slice to slice. So the
intratumoural crop never holds the rim signal and the intra-peritumoural crop holds all of it.

Intensities are those of a T1 contrast-enhanced sequence without fat suppression (relative,
fat ≈ 1); ``render`` adds partial-volume blur, tissue texture, a smooth bias field, a
per-patient scale and Rician noise, and returns uint16 slices, a label map (``LABELS``), the
annotated boxes and what each box shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from npc_lib.data.rois import grow_pixels
from npc_lib.synth.anatomy import FAT, NASOPHARYNX_LEVEL, NECROSIS, NODE, TUMOUR, PatientAnatomy, normal_anatomy, smooth_noise
from npc_lib.synth.shapes import bbox, ellipse, harmonic_profile, polar

LABELS = {0: "background", 1: "primary_tumour", 2: "primary_margin_infiltration",
          3: "node", 4: "node_necrosis", 5: "node_extranodal_extension"}
PERITUMOUR_MM = 3.0     # depth of the planted peritumoural features
STRAND_COVER = 0.6      # at the full feature, strands rise from the top 60 % of their angular profile

@dataclass
class Lesion:
    """An ellipsoidal lesion (primary or node) with lobulated and spiculated margins."""

    kind: str                      # "primary" | "node"
    cx: float                      # mm
    cy: float
    cz: float                      # slice index of the centre (float)
    radius: float                  # in-plane radius at the centre (mm)
    half_height: float             # mm along z
    aspect: float                  # y / x
    lobes: tuple = ()              # (amplitudes, phases, orders)
    spikes: tuple = ()
    core_feature: float = 0.0      # heterogeneity (primary) or necrosis (node)
    margin_feature: float = 0.0    # infiltration (primary) or ENE (node)
    texture_seed: int = 0
    region: str = field(init=False)

    def __post_init__(self):
        self.region = "npc" if self.kind == "primary" else "cmln"


def _lobes(rng, lo, hi):
    orders = (2, 3, 4, 5)
    return (tuple(rng.uniform(lo, hi, 4)), tuple(rng.uniform(0, 2 * np.pi, 4)), orders)


def _spikes(rng):
    orders = tuple(int(k) for k in rng.choice(np.arange(7, 20), 5, replace=False))
    return (tuple(rng.uniform(0.5, 1.0, 5)), tuple(rng.uniform(0, 2 * np.pi, 5)), orders)


def _node_share(rng, first: bool) -> float:
    """How much of the patient's nodal feature one node shows: the first (largest) node
    close to all of it, any further node between none (a spared node) and more."""
    if first:
        return float(rng.uniform(0.8, 1.2))
    return 0.0 if rng.random() < 0.3 else float(rng.uniform(0.4, 1.4))


def plan_lesions(rng, t_stage: str, n_stage: str, features: dict, n_slices: int,
                 slice_mm: float) -> list[Lesion]:
    """Place the primary tumour and the nodes of one patient (sizes by T and N stage)."""
    levels = np.linspace(0, 1, n_slices)
    naso = np.flatnonzero(levels < NASOPHARYNX_LEVEL)
    neck = np.flatnonzero(levels >= NASOPHARYNX_LEVEL - 0.05)
    t = int(t_stage[1])
    radius = (7.0, 11.0, 15.0, 19.5)[t - 1] * rng.uniform(0.85, 1.15)
    side = rng.choice([-1.0, 1.0])
    lesions = [Lesion(
        "primary", cx=side * rng.uniform(5, 9), cy=rng.uniform(-6, 0),
        cz=float(rng.uniform(naso[0] + 0.5, naso[-1] - 0.5)) if naso.size > 1 else 0.0,
        radius=radius, half_height=radius * rng.uniform(0.9, 1.3), aspect=rng.uniform(0.75, 0.95),
        lobes=_lobes(rng, 0.03, 0.11), spikes=_spikes(rng),
        core_feature=features["npc_heterogeneity"], margin_feature=features["npc_infiltration"],
        texture_seed=int(rng.integers(2**31)))]
    n = int(n_stage[1])
    if n == 0:
        return lesions
    specs = []  # (side, radius)
    if n == 1:
        specs = [(side, rng.uniform(6, 10)) for _ in range(rng.integers(1, 3))]
    elif n == 2:
        specs = [(s, rng.uniform(6.5, 11)) for s in (-1.0, 1.0) for _ in range(rng.integers(1, 3))]
    else:
        specs = [(side, rng.uniform(20, 26)), (-side, rng.uniform(6, 10))]
    used: dict[float, list[float]] = {-1.0: [], 1.0: []}
    for s, r in specs:
        hh = r * rng.uniform(0.9, 1.2)
        lo, hi = neck[0] + 0.3, neck[-1] - 0.3
        for _ in range(20):  # keep nodes on one side apart in z
            cz = float(rng.uniform(lo, hi))
            if all(abs(cz - z) * slice_mm > hh + 8 for z in used[s]):
                break
        used[s].append(cz)
        first = len(lesions) == 1
        necrosis = min(1.0, features["node_necrosis"] * _node_share(rng, first))
        ene = min(1.0, features["node_ene"] * _node_share(rng, first))
        lesions.append(Lesion(
            "node", cx=s * rng.uniform(34, 42), cy=rng.uniform(2, 14), cz=cz, radius=r,
            half_height=hh, aspect=rng.uniform(0.7, 0.9), lobes=_lobes(rng, 0.02, 0.07),
            spikes=_spikes(rng), core_feature=necrosis, margin_feature=ene,
            texture_seed=int(rng.integers(2**31))))
    return lesions


def _strand_depth(theta, amount: float, spikes: tuple, turn: float) -> np.ndarray:
    """Depth (mm, ≤ ``PERITUMOUR_MM``) of the strands at polar angle ``theta``: more and longer
    strands as ``amount`` (0–1) grows; ``turn`` rotates them (they differ between slices)."""
    if amount < 0.05:
        return np.zeros_like(theta)
    amps, phases, orders = spikes
    p = harmonic_profile(theta, amps, tuple(ph + k * turn for ph, k in zip(phases, orders)), orders)
    p = (p - p.min()) / (p.max() - p.min() + 1e-6)
    cover = STRAND_COVER * amount  # share of the profile's range that carries strands
    return PERITUMOUR_MM * np.sqrt(np.clip((p - (1 - cover)) / cover, 0, 1))


def _window(X, les: Lesion, reach: float, px_mm: float):
    m = X.shape[0]
    origin = X[0, 0]
    c0 = max(0, int((les.cx - reach - origin) / px_mm)); c1 = min(m, int((les.cx + reach - origin) / px_mm) + 2)
    r0 = max(0, int((les.cy - reach - origin) / px_mm)); r1 = min(m, int((les.cy + reach - origin) / px_mm) + 2)
    if c0 >= c1 or r0 >= r1:
        return None
    return (slice(r0, r1), slice(c0, c1))


def _paint_core(img, labels, X, Y, les: Lesion, dz_mm: float, px_mm: float):
    """Paint one lesion's cross-section (core, necrosis) into ``img``/``labels``; return its
    tight half-open box in pixels, or None where the lesion does not reach this slice."""
    frac = 1.0 - (dz_mm / les.half_height) ** 2
    if frac <= 0:
        return None
    r0 = les.radius * np.sqrt(frac)
    win = _window(X, les, r0 * 1.4 + 2 * px_mm, px_mm)
    if win is None:
        return None
    Xw, Yw, imgw, labw = X[win], Y[win], img[win], labels[win]
    r, theta = polar(Xw, Yw, les.cx, les.cy, les.aspect)
    r_core = r0 * (1 + harmonic_profile(theta, *les.lobes))
    core = r <= r_core
    if core.sum() < 2:
        return None
    tex_rng = np.random.default_rng([les.texture_seed, int(round(dz_mm * 10)) + 100000])
    if les.kind == "primary":
        mottle = smooth_noise(tex_rng, Xw.shape, max(1.0, 1.8 / px_mm))
        val = TUMOUR * (1 + 0.35 * les.core_feature * mottle)
        imgw[core] = val[core]
        labw[core] = 1
    else:
        imgw[core] = NODE
        labw[core] = 3
        nec_r = r_core * 0.8 * np.sqrt(les.core_feature)
        nec = core & (r <= nec_r * (1 + 0.15 * smooth_noise(tex_rng, Xw.shape, 2.0)))
        if les.core_feature > 0.1 and nec.any():
            imgw[core & ~nec & (r > nec_r * 0.85)] = NODE * 1.25     # enhancing rim
            imgw[nec] = NECROSIS
            labw[nec] = 4
    box = bbox(core)
    return box[0] + win[1].start, box[1] + win[0].start, box[2] + win[1].start, box[3] + win[0].start


def _paint_strands(img, layer, labels, X, Y, les: Lesion, drawn, grow: int, dz_mm: float, px_mm: float,
                   amount: float, turn: float, reach_mm: float, outside) -> int:
    """Paint the lesion's peritumoural strands in the band between the ``drawn`` box and that box
    grown by ``grow`` pixels, on background pixels outside every drawn box (``outside``) only.

    The strands go into ``layer`` as their difference to ``img`` (``img`` itself is unchanged), so
    that the caller can blur them separately and keep their blur out of the drawn boxes. Returns
    the number of pixels painted."""
    x0, y0, x1, y1 = drawn
    m = X.shape[0]
    gx0, gy0, gx1, gy1 = max(0, x0 - grow), max(0, y0 - grow), min(m, x1 + grow), min(m, y1 + grow)
    rows, cols = np.mgrid[gy0:gy1, gx0:gx1]
    # pixels outside the drawn box, counted in whole pixels (1 = the first ring outside)
    out = np.maximum(np.maximum(x0 - cols, cols - (x1 - 1)), np.maximum(y0 - rows, rows - (y1 - 1)))
    Xw, Yw = X[gy0:gy1, gx0:gx1], Y[gy0:gy1, gx0:gx1]
    r, theta = polar(Xw, Yw, les.cx, les.cy, les.aspect)
    frac = max(0.0, 1.0 - (dz_mm / les.half_height) ** 2)
    r_core = les.radius * np.sqrt(frac) * (1 + harmonic_profile(theta, *les.lobes))
    depth = _strand_depth(theta, amount, les.spikes, turn)
    strand = (out >= 1) & ((out - 0.5) * px_mm < depth) & (r - r_core <= reach_mm)
    labw = labels[gy0:gy1, gx0:gx1]
    strand &= (labw == 0) & outside[gy0:gy1, gx0:gx1]
    value = (TUMOUR if les.kind == "primary" else NODE) * 1.05
    layer[gy0:gy1, gx0:gx1][strand] = value - img[gy0:gy1, gx0:gx1][strand]
    labw[strand] = 2 if les.kind == "primary" else 5
    return int(strand.sum())


def jitter_box(rng, box, matrix: int, px_mm: float, jitter_mm: float):
    """Annotator jitter: each edge moves by up to ``jitter_mm``, mostly outwards."""
    j = max(1, int(round(jitter_mm / px_mm)))
    x0, y0, x1, y1 = box
    d = rng.integers(-1, j + 1, 4)
    x0, y0 = max(0, x0 - d[0]), max(0, y0 - d[1])
    x1, y1 = min(matrix, x1 + d[2]), min(matrix, y1 + d[3])
    return int(x0), int(y0), int(max(x1, x0 + 1)), int(max(y1, y0 + 1))


@dataclass(frozen=True)
class Annotation:
    """One drawn rectangle and what it shows (the ground truth of one ROI image)."""

    slice: int
    region: str
    lesion: int
    box: tuple[int, int, int, int]
    core_feature: float     # heterogeneity (primary) or necrosis (node) of this lesion
    margin_feature: float   # strand amount painted around this box on this slice
    rim_pixels: int         # pixels of planted strands in this box's peritumoural band


def render(rng, anatomy: PatientAnatomy, lesions: list[Lesion], matrix: int, n_slices: int,
           fov_mm: float, slice_mm: float, jitter_mm: float = 2.5, strands: bool = True, contrast: float = 1.0):
    """Render all slices.

    Returns ``(pixels uint16 [S, M, M], labels uint8 [S, M, M], annotations)`` where
    ``annotations`` lists an :class:`Annotation` (drawn box and what it shows) per lesion
    cross-section large enough to be drawn (≥ 2 × 2 pixels).

    The peritumoural strands never change a pixel inside a drawn box: they are painted outside
    every box, blurred with the image's point-spread on their own, and their blur is cut at the
    boxes' edges before it is added. ``strands=False`` renders the same patient (same random
    stream) without strands, which is how the generation report measures what leaks into the boxes.
    """
    px = fov_mm / matrix
    grow = grow_pixels(PERITUMOUR_MM, px)
    coords = (np.arange(matrix, dtype=np.float32) - (matrix - 1) / 2) * px
    X, Y = np.meshgrid(coords, coords)
    levels = np.linspace(0, 1, n_slices) if n_slices > 1 else np.zeros(1)
    u, v = X / (fov_mm / 2), Y / (fov_mm / 2)
    b = anatomy.bias
    bias = np.exp(b[0] * u + b[1] * v + b[2] * u * u + b[3] * v * v + b[4] * u * v).astype(np.float32)
    pixels = np.empty((n_slices, matrix, matrix), dtype=np.uint16)
    labels = np.zeros((n_slices, matrix, matrix), dtype=np.uint8)
    notes = []
    for k in range(n_slices):
        img, body = normal_anatomy(X, Y, float(levels[k]), anatomy)
        drawn = []
        for idx, les in enumerate(lesions):
            if les.kind == "node":  # a bulky node deforms the neck contour
                grow_ = ellipse(X, Y, les.cx, les.cy, les.radius + 6, (les.radius + 6) * les.aspect)
                if abs(k - les.cz) * slice_mm < les.half_height:
                    img[grow_ & ~body] = FAT
                    body = body | grow_
            box = _paint_core(img, labels[k], X, Y, les, (k - les.cz) * slice_mm, px)
            if box is not None and box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                drawn.append((idx, les, jitter_box(rng, box, matrix, px, jitter_mm)))
        inside = np.zeros(img.shape, bool)
        for _, _, (x0, y0, x1, y1) in drawn:
            inside[y0:y1, x0:x1] = True
        layer = np.zeros_like(img)
        for idx, les, box in drawn:  # strands after every core: they never cover a lesion
            amount = float(np.clip(les.margin_feature * rng.uniform(0.6, 1.4), 0, 1)) \
                if les.margin_feature >= 0.05 else 0.0
            n = _paint_strands(img, layer, labels[k], X, Y, les, box, grow, (k - les.cz) * slice_mm, px,
                               amount if strands else 0.0, turn=float(rng.uniform(0, 2 * np.pi)),
                               reach_mm=PERITUMOUR_MM + jitter_mm + 2 * px, outside=~inside)
            notes.append(Annotation(k, les.region, idx, box, round(float(les.core_feature), 6),
                                    round(amount, 6), n))
        spill = gaussian_filter(layer, 0.5)  # the same point-spread as the image's, cut at the boxes
        spill[inside] = 0.0
        img = gaussian_filter(img, 0.5) + spill
        if contrast != 1.0:  # another protocol's contrast: a gamma on the relative intensities
            img = np.power(np.clip(img, 0.0, None), contrast, dtype=np.float32)
        img *= 1 + 0.05 * smooth_noise(rng, img.shape, max(1.0, 1.5 / px)) * body
        img *= bias
        sigma = anatomy.noise
        mag = np.hypot(img + sigma * rng.standard_normal(img.shape, dtype=np.float32),
                       sigma * rng.standard_normal(img.shape, dtype=np.float32))
        pixels[k] = np.clip(np.round(mag * anatomy.intensity_scale), 0, 65535).astype(np.uint16)
    return pixels, labels, notes
