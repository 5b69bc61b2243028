"""How heavy each page of a built book is: its HTML and the local scripts, styles and pictures it references."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

KINDS = ("scripts", "styles", "images")


class _References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: dict[str, set[str]] = {k: set() for k in KINDS}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.found["scripts"].add(a["src"])
        elif tag == "link" and "stylesheet" in (a.get("rel") or "") and a.get("href"):
            self.found["styles"].add(a["href"])
        elif tag == "img" and a.get("src") and not a["src"].startswith("data:"):
            self.found["images"].add(a["src"])


def page_weights(html_dir: str | Path) -> dict[str, dict[str, int]]:
    """Every page (``_static`` and the redirecting ``index.html`` aside) -> bytes of its HTML, of each kind of
    local file it references (each file once) and their total. Pictures inside the page (data URIs) count in
    its HTML."""
    html_dir = Path(html_dir)
    out = {}
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir).as_posix()
        if rel.startswith("_static/") or rel == "index.html":
            continue
        parser = _References()
        parser.feed(page.read_text(errors="replace"))
        sizes = {"html": page.stat().st_size}
        for kind in KINDS:
            total = 0
            for ref in parser.found[kind]:
                url = urlparse(ref)
                if url.scheme or url.netloc:
                    continue  # not a local file (the book has none; a test checks the requests)
                target = (page.parent / unquote(url.path)).resolve()
                total += target.stat().st_size if target.is_file() else 0
            sizes[kind] = total
        sizes["total"] = sum(sizes.values())
        out[rel] = sizes
    return out


def book_bytes(html_dir: str | Path) -> int:
    """The whole built book's size on disk."""
    return sum(p.stat().st_size for p in Path(html_dir).rglob("*") if p.is_file())
