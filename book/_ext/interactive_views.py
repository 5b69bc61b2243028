"""Load BokehJS, from the bokeh wheel, on the pages that hold an interactive view, and nowhere else.

The JavaScript files are copied into the built book's ``_static/bokeh/``; a page whose body holds a view's
marker gets their script tags (relative paths: the book works opened from disk, offline).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from npc_lib.show.views.embed import MARKER, bokeh_js_files

STATIC = "_static/bokeh"


def _scripts(app, pagename, templatename, context, doctree):
    if MARKER not in context.get("body", ""):
        return
    context["script_files"] = [*context.get("script_files", []), *(f"{STATIC}/{p.name}" for p in bokeh_js_files())]


def _copy(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / STATIC
    out.mkdir(parents=True, exist_ok=True)
    for path in bokeh_js_files():
        shutil.copyfile(path, out / path.name)


def setup(app):
    app.connect("html-page-context", _scripts)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
