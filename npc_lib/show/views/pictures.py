"""Small pictures as data URIs (WebP) for the views: every image travels inside its page."""
from __future__ import annotations

import base64
import io

import numpy as np


def windowed(pixels: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """uint8 grey levels of ``pixels`` windowed at their own ``low`` and ``high`` percentiles."""
    lo, hi = np.percentile(pixels, [low, high])
    return (np.clip((pixels - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def data_uri(image: np.ndarray, size: int | None = None, quality: int = 70) -> str:
    """A uint8 grey (h, w) or RGB (h, w, 3) image as a WebP data URI, its longer side scaled to ``size``."""
    from PIL import Image
    im = Image.fromarray(np.ascontiguousarray(image))
    if size and max(im.size) != size:
        scale = size / max(im.size)
        im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="WEBP", quality=quality, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()
