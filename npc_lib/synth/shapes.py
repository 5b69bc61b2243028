"""Vectorised 2-D shape masks on a millimetre grid (x: columns, y: rows, y grows posteriorly)."""
from __future__ import annotations

import numpy as np


def ellipse(X, Y, cx, cy, a, b, angle_deg: float = 0.0):
    """Boolean mask of an ellipse with semi-axes ``a`` (x) and ``b`` (y), rotated by ``angle_deg``."""
    dx, dy = X - cx, Y - cy
    if angle_deg:
        t = np.deg2rad(angle_deg)
        dx, dy = dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)
    return (dx / a) ** 2 + (dy / b) ** 2 <= 1.0


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
