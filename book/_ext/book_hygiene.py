"""Sphinx extension for a clean page in the reader's browser.

* Each script and stylesheet appears once per page. Under Sphinx 7.4, inline scripts that
  extensions register while documents are read (sphinx-thebe, sphinx-togglebutton) are emitted
  twice (once with ``filename=None``, once with ``""``), and a repeated ``const`` declaration is a
  JavaScript error.
* The theme gets an explicit default colour mode, so its script does not log an error when the
  reader has no stored preference.
* The site's ``index.html`` (a redirect to the root chapter) names the favicon and links the
  chapter, instead of a bare refresh tag that makes the browser ask for a missing /favicon.ico.
* A role for published figures: ``{paper}`0.88``` renders the value as an abbreviation whose tooltip says
  it is the paper's published value (the prose scan in the tests lets such values through unglued).
* Launch buttons open the committed source notebook in ``notebooks/`` (the executed copies under
  ``book/executed/`` exist only in a built tree, not in the repository): ``book/executed/04_evaluate``
  launches ``notebooks/04_evaluate.ipynb``, every training page ``notebooks/03_train.ipynb``.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

REDIRECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>{title}</title>
{icon}<meta http-equiv="Refresh" content="0; url={target}"/></head>
<body><p><a href="{target}">{title}</a></p></body></html>
"""


def _dedupe(assets: list) -> list:
    seen, kept = set(), []
    for asset in assets:
        attrs = getattr(asset, "attributes", {}) or {}
        key = (str(getattr(asset, "filename", asset) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            kept.append(asset)
    return kept


EXECUTED = re.compile(r"book/executed/(?:(train)/[^/?&#]+|([0-9]{2}_[a-z_]+))\.ipynb")


def source_notebook(url: str) -> str:
    """``url`` with an executed notebook's path replaced by its source in ``notebooks/``."""
    return EXECUTED.sub(lambda m: "notebooks/03_train.ipynb" if m.group(1) else f"notebooks/{m.group(2)}.ipynb", url)


def _point_launches_at_sources(buttons, inside: bool = False) -> None:
    for button in buttons or []:
        if isinstance(button, dict):
            if inside and isinstance(button.get("url"), str):
                button["url"] = source_notebook(button["url"])
            _point_launches_at_sources(button.get("buttons"), inside or button.get("label") == "launch-buttons")


def _page_context(app, pagename, templatename, context, doctree) -> None:
    _point_launches_at_sources(context.get("header_buttons"))
    for name in ("script_files", "css_files"):
        if isinstance(context.get(name), list):
            context[name][:] = _dedupe(context[name])
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def _index_redirect(app, exception) -> None:
    """Write index.html before sphinx-external-toc would write its bare redirect."""
    index = Path(app.outdir) / "index.html"
    if exception is not None or app.builder.name != "html" or app.config.root_doc == "index":
        return
    favicon = app.config.html_favicon
    icon = f'<link rel="icon" href="_static/{Path(favicon).name}"/>\n' if favicon and "://" not in favicon else ""
    title = html.escape(app.config.html_title or app.config.project or "")
    index.write_text(REDIRECT.format(title=title, icon=icon, target=f"{app.config.root_doc}.html"), encoding="utf8")


PUBLISHED = "published value: Hua et al. 2023, doi:10.2174/1386207325666220919091210"


def paper_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{paper}`value```: a figure as the paper published it, marked as such for the reader."""
    from docutils import nodes
    return [nodes.abbreviation(rawtext, text, explanation=PUBLISHED, classes=["published"])], []


def setup(app):
    app.add_role("paper", paper_role)
    app.connect("html-page-context", _page_context, priority=900)
    app.connect("build-finished", _index_redirect, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
