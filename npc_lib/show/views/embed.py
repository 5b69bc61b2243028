"""A Bokeh layout as a self-contained HTML fragment that renders where BokehJS is loaded (the book's pages).

The fragment holds the document as JSON and a short script that embeds it. Where BokehJS is absent (JupyterLab,
which shows the ipywidgets face instead) the script leaves a one-line note and raises nothing.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from npc_lib.show.views.pictures import BOOK_PICTURES, PICTURE_SCHEME

MARKER = "data-npc-view"  # the book's extension loads BokehJS on pages whose HTML holds it
WIDGETS_MARKER = "data-npc-widgets"  # ... and the widgets' bundle where a view has controls
BOKEH_BUNDLES = ("bokeh", "bokeh-widgets")  # the library itself and its widgets (no tables, GL or MathJax)


def bokeh_js_files(widgets: bool = True) -> list[Path]:
    """The BokehJS files the views need (``widgets``: with the widgets' bundle), from the installed bokeh
    package, in load order."""
    import bokeh
    folder = Path(bokeh.__file__).parent / "server" / "static" / "js"
    return [folder / f"{name}.min.js" for name in BOKEH_BUNDLES[:None if widgets else 1]]


class View:
    """An interactive view: a Bokeh layout, its name and the static figure printed in its place.

    In a notebook it displays as the HTML fragment (``_repr_html_``); :attr:`html` is the same string.
    """

    def __init__(self, layout, name: str, title: str = ""):
        from bokeh.embed import json_item
        self.layout, self.name, self.title = layout, name, title
        item = json.dumps(json_item(layout), separators=(",", ":"))  # key order kept: Bokeh defines models in it
        self.element_id = "npc-view-" + hashlib.sha1(f"{name}{item}".encode()).hexdigest()[:12]
        self._item = item
        from bokeh.models import Widget
        self.has_widgets = bool(list(layout.select({"type": Widget})))

    @property
    def html(self) -> str:
        # "</" inside a script would end it early
        data = self._item.replace("</", "<\\/")
        eid = self.element_id
        widgets = f' {WIDGETS_MARKER}="1"' if self.has_widgets else ""
        return (f'<div class="npc-view" id="{eid}" {MARKER}="{self.name}"{widgets} aria-label="{self.title}"></div>\n'
                f'<script type="application/json" id="{eid}-data">{data}</script>\n'
                "<script>(function () {"
                f'var el = document.getElementById("{eid}");'
                'if (!el) return;'
                'if (!window.Bokeh) { el.textContent = "(an interactive view: it draws in the built book; '
                'here the controls of the next cell do the same)"; return; }'
                # picture files (npc_lib.show.views.pictures) live in the book's _static, from its root
                'var root = document.documentElement.getAttribute("data-content_root") || "";'
                f'var text = document.getElementById("{eid}-data").textContent'
                f'.split("{PICTURE_SCHEME}").join(root + "{BOOK_PICTURES}/");'
                'var item = JSON.parse(text);'
                f'Bokeh.embed.embed_item(item, "{eid}");'
                "})();</script>")

    def _repr_html_(self) -> str:
        return self.html

    def size_bytes(self) -> int:
        """The fragment's size in bytes (what it adds to its page)."""
        return len(self.html.encode())
