"""Lighter pages once the book is built: the theme's icon script trimmed to the icons the book uses
(:mod:`npc_lib.show.icon_subset`, about 1.4 MB off every page) and the figures as palette PNGs
(:mod:`npc_lib.show.png_palette`, about two thirds off the figures)."""
from __future__ import annotations

from npc_lib.show.icon_subset import subset_book_icons
from npc_lib.show.png_palette import palette_book_images


def _lighten(app, exception):
    if exception is None and app.builder.format == "html":
        subset_book_icons(app.outdir)
        palette_book_images(app.outdir)


def setup(app):
    app.connect("build-finished", _lighten)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
