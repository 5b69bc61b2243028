"""Vectorised 2-D shape masks on a millimetre grid (x: columns, y: rows, y grows posteriorly)."""
from __future__ import annotations

import numpy as np


def ellipse(X, Y, cx, cy, a, b, angle_deg: float = 0.0):
    """Boolean mask of an ellipse with semi-axes ``a`` (x) and ``b`` (y), rotated by ``angle_deg``.

    On a regular grid (``X`` constant down each column, ``Y`` along each row, as ``np.meshgrid`` makes them) only
    the block around the ellipse is computed: the same mask, faster."""
    block = _block(X, Y, cx, cy, max(abs(a), abs(b)))
    if block is not None:
        out = np.zeros(X.shape, bool)
        out[block] = _ellipse(X[block], Y[block], cx, cy, a, b, angle_deg)
        return out
    return _ellipse(X, Y, cx, cy, a, b, angle_deg)


def _ellipse(X, Y, cx, cy, a, b, angle_deg):
    dx, dy = X - cx, Y - cy
    if angle_deg:
        t = np.deg2rad(angle_deg)
        dx, dy = dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)
    return (dx / a) ** 2 + (dy / b) ** 2 <= 1.0


def _block(X, Y, cx, cy, r):
    """The rows and columns of a regular 2-D grid within ``r`` (plus a margin) of (cx, cy); None when the grid is
    not a regular one (or not 2-D)."""
    if np.ndim(X) != 2 or np.shape(X) != np.shape(Y) or X.shape[0] < 2 or X.shape[1] < 2:
        return None
    if X[0, 0] != X[-1, 0] or X[0, -1] != X[-1, -1] or Y[0, 0] != Y[0, -1] or Y[-1, 0] != Y[-1, -1]:
        return None
    xs, ys = X[0], Y[:, 0]
    if not (xs[0] < xs[1] and xs[-2] < xs[-1] and ys[0] < ys[1] and ys[-2] < ys[-1]):  # increasing, as a meshgrid
        return None
    r = r * 1.001 + 1e-6
    c0, c1 = np.searchsorted(xs, cx - r), np.searchsorted(xs, cx + r, "right")
    r0, r1 = np.searchsorted(ys, cy - r), np.searchsorted(ys, cy + r, "right")
    return slice(max(r0 - 1, 0), r1 + 1), slice(max(c0 - 1, 0), c1 + 1)


def ring(X, Y, cx, cy, a, b, width, angle_deg: float = 0.0):
    """Elliptical annulus of thickness ``width`` (mm) inside the ellipse (a, b)."""
    outer = ellipse(X, Y, cx, cy, a, b, angle_deg)
    inner = ellipse(X, Y, cx, cy, max(a - width, 1e-3), max(b - width, 1e-3), angle_deg)
    return outer & ~inner


def polar(X, Y, cx, cy, aspect: float = 1.0):
    """Radius (mm, y scaled by 1/aspect) and angle of every grid point about (cx, cy)."""
    dx, dy = X - cx, (Y - cy) / aspect
    return np.hypot(dx, dy), np.arctan2(dy, dx)


def harmonic_profile(theta, amplitudes, phases, orders):
    """Sum of cosine harmonics of the polar angle, used for lobulated and spiculated margins."""
    out = np.zeros_like(theta)
    for amp, ph, k in zip(amplitudes, phases, orders):
        out += amp * np.cos(k * theta + ph)
    return out


def bbox(mask) -> tuple[int, int, int, int] | None:
    """Half-open bounding box (x0, y0, x1, y1) in pixels of a boolean mask, or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
