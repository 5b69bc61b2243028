"""Small pictures (WebP) for the views: inside the page as data URIs, or as files the page fetches when the
reader asks for them.

A view offers every test patient's slices and maps, far more pictures than a reader looks at: inside the page
they would make it several megabytes. Built inside :func:`picture_files`, a view names its pictures
``npc-picture:<digest>.webp`` and writes them to a folder; the book copies that folder into its ``_static`` and
the view's embedding script points the names there (:mod:`npc_lib.show.views.embed`), so a picture is read
from disk when it is shown. Outside the block (JupyterLab, tests) the pictures stay data URIs.
"""
from __future__ import annotations

import base64
import hashlib
import io
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

PICTURE_SCHEME = "npc-picture:"  # a picture file's name in a view, before the page resolves it
BOOK_PICTURES = "_static/npc-pictures"  # where the built book keeps the files, from its root
_FOLDER: ContextVar[tuple[Path, str] | None] = ContextVar("npc_picture_folder", default=None)


@contextmanager
def picture_files(folder: str | Path):
    """Views built inside the block write their pictures to ``folder`` (replaced as a whole when the block
    ends without an error) instead of holding them as data URIs; they are named ``npc-picture:<folder
    name>/<digest>.webp``, so the book keeps each view's folder under its pictures' folder.

    Parameters
    ----------
    folder : the view's picture folder (``RunLayout.pictures / <view>``)

    Returns
    -------
    A context manager; inside it, the folder's final path.
    """
    from npc_lib.atomic import atomic_dir
    with atomic_dir(folder) as tmp:
        token = _FOLDER.set((tmp, Path(folder).name))
        try:
            yield Path(folder)
        finally:
            _FOLDER.reset(token)


def windowed(pixels: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """uint8 grey levels of ``pixels`` windowed at their own ``low`` and ``high`` percentiles."""
    lo, hi = np.percentile(pixels, [low, high])
    return (np.clip((pixels - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def data_uri(image: np.ndarray, size: int | None = None, quality: int = 70) -> str:
    """A uint8 grey (h, w) or RGB (h, w, 3) image as WebP, its longer side scaled to ``size``: a data URI, or
    inside :func:`picture_files` a file named by its content and its ``npc-picture:`` name."""
    from PIL import Image
    im = Image.fromarray(np.ascontiguousarray(image))
    if size and max(im.size) != size:
        scale = size / max(im.size)
        im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="WEBP", quality=quality, method=4)
    sink = _FOLDER.get()
    if sink is None:
        return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()
    folder, view_folder = sink
    name = hashlib.sha1(buf.getvalue()).hexdigest()[:20] + ".webp"
    path = folder / name
    if not path.exists():
        path.write_bytes(buf.getvalue())  # inside a temp folder that replaces the old one at the end
    return f"{PICTURE_SCHEME}{view_folder}/{name}"
