"""Load BokehJS, from the bokeh wheel, on the pages that hold an interactive view, and nowhere else.

The JavaScript files are copied into the built book's ``_static/bokeh/``; a page whose body holds a view's
marker gets their script tags (relative paths: the book works opened from disk, offline), the widgets' bundle
only where a view has controls. The views' picture files, which the runner copies to ``book/executed/pictures``,
go to ``_static/npc-pictures`` (:mod:`npc_lib.show.views.pictures`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from npc_lib.show.views.embed import MARKER, WIDGETS_MARKER, bokeh_js_files
from npc_lib.show.views.pictures import BOOK_PICTURES

STATIC = "_static/bokeh"
PICTURES = Path("book") / "executed" / "pictures"


def _scripts(app, pagename, templatename, context, doctree):
    body = context.get("body", "")
    if MARKER not in body:
        return
    files = bokeh_js_files(widgets=WIDGETS_MARKER in body)
    context["script_files"] = [*context.get("script_files", []), *(f"{STATIC}/{p.name}" for p in files)]


def _copy(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / STATIC
    out.mkdir(parents=True, exist_ok=True)
    for path in bokeh_js_files():
        shutil.copyfile(path, out / path.name)
    pictures = Path(app.srcdir) / PICTURES
    target = Path(app.outdir) / BOOK_PICTURES
    shutil.rmtree(target, ignore_errors=True)  # no picture of an earlier run stays behind
    if pictures.is_dir():
        shutil.copytree(pictures, target)


def setup(app):
    app.connect("html-page-context", _scripts)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
