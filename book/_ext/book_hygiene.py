"""Sphinx extension for a clean page in the reader's browser.

* Each script and stylesheet appears once per page. Under Sphinx 7.4, inline scripts that
  extensions register while documents are read (sphinx-thebe, sphinx-togglebutton) are emitted
  twice (once with ``filename=None``, once with ``""``), and a repeated ``const`` declaration is a
  JavaScript error.
* The theme gets an explicit default colour mode, so its script does not log an error when the
  reader has no stored preference.
"""
from __future__ import annotations


def _dedupe(assets: list) -> list:
    seen, kept = set(), []
    for asset in assets:
        attrs = getattr(asset, "attributes", {}) or {}
        key = (str(getattr(asset, "filename", asset) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            kept.append(asset)
    return kept


def _page_context(app, pagename, templatename, context, doctree) -> None:
    for name in ("script_files", "css_files"):
        if isinstance(context.get(name), list):
            context[name][:] = _dedupe(context[name])
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def setup(app):
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
