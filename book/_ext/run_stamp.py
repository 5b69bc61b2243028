"""Sphinx extension: every page's footer says what produced the book.

The runner (``npc-study run``) writes ``book/executed/stamp.json``: package version, git commit (or
"not a git checkout"), profile, run date and the run's digest (over every notebook job's digest, which
covers the notebook, its parameters, the profile, the input data and the library code it reaches). A
book built without a run says so instead of showing nothing.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

STAMP = Path("book") / "executed" / "stamp.json"
FIELDS = (("version", "npc-dm-study"), ("commit", "commit"), ("profile", "profile"), ("run_date", "run"),
          ("run_digest", "run digest"))


def stamp_html(stamp: dict) -> str:
    """The footer line for ``stamp`` (empty or missing fields say so)."""
    if not stamp:
        return ('<p class="run-stamp">No run stamp: this book was not built by <code>npc-study run</code>, '
                'so no page can say which code and data produced it.</p>')
    parts = [f'<span class="run-stamp-{key.replace("_", "-")}">{label} '
             f'<code>{html.escape(str(stamp.get(key) or "unknown"))}</code></span>' for key, label in FIELDS]
    return '<p class="run-stamp">Built from ' + " · ".join(parts) + "</p>"


def read_stamp(srcdir: str | Path) -> dict:
    path = Path(srcdir) / STAMP
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return {}


def _page_context(app, pagename, templatename, context, doctree) -> None:
    context["theme_extra_footer"] = app.run_stamp_html


def _builder_inited(app) -> None:
    app.run_stamp_html = stamp_html(read_stamp(app.srcdir))


def setup(app):
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
