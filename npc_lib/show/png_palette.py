"""Figures of the built book as palette PNGs: 256 colours instead of 16 million, about a third of the bytes.

Matplotlib writes true-colour PNGs; the book's figures (curves, bars, grey-scale crops, colour maps) need far
fewer colours, and their pages were several megabytes. A figure is rewritten only where the palette copy is
smaller and looks the same: every pixel's mean error at most ``MAX_MEAN_ERROR`` grey levels (of 255).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

MAX_MEAN_ERROR = 1.0


def palette_png(path: str | Path) -> tuple[int, int]:
    """Rewrite one PNG as a 256-colour palette image where that is smaller and within the error; returns its
    bytes before and after (equal where it was kept)."""
    from PIL import Image
    path = Path(path)
    before = path.stat().st_size
    with Image.open(path) as im:
        if im.mode == "P":
            return before, before
        rgba = np.asarray(im.convert("RGBA"))
    if (rgba[..., 3] != 255).any():
        return before, before  # transparency: kept as it is
    rgb = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
    small = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    error = np.abs(np.asarray(small.convert("RGB"), np.int16) - rgba[..., :3]).mean()
    buf = io.BytesIO()
    small.save(buf, format="PNG", optimize=True)
    if error > MAX_MEAN_ERROR or len(buf.getvalue()) >= before:
        return before, before
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return before, len(buf.getvalue())


def palette_book_images(html_dir: str | Path) -> tuple[int, int]:
    """:func:`palette_png` on every PNG of the built book's ``_images``; total bytes before and after."""
    sizes = [palette_png(p) for p in sorted((Path(html_dir) / "_images").glob("*.png"))]
    return sum(b for b, _ in sizes), sum(a for _, a in sizes)
