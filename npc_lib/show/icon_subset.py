"""Keep only the icons a built book uses in the theme's Font Awesome script.

The book theme ships Font Awesome's whole free set as one 1.5 MB script that every page loads, about half of a
page's weight. Its icons are entries ``name:[width,height,[aliases],"unicode","svg path"]`` of the packs' object
literals; the pages use a few dozen of them (``fa-bars``, ``fa-magnifying-glass``, ...). The rest are dropped,
the script's code and licence header kept as they are.
"""
from __future__ import annotations

import re
from pathlib import Path

ICON_ENTRY = re.compile(r'(?<=[{,])("[a-z0-9-]+"|[a-z_$][a-z0-9_$]*):\[\d+,\d+,\[([^\]]*)\],"[0-9a-f]+",'
                        r'("[^"]*"|\[[^\]]*\])\]')
ICON_CLASS = re.compile(r"\bfa-([a-z0-9-]+)")


def used_icons(html_dir: str | Path, skip: str | Path | None = None) -> set[str]:
    """Every ``fa-NAME`` class named in the book's pages and its other scripts (``skip``: the icon script)."""
    html_dir, used = Path(html_dir), set()
    for path in [*html_dir.rglob("*.html"), *html_dir.rglob("*.js")]:
        if skip is not None and path.resolve() == Path(skip).resolve():
            continue
        used |= set(ICON_CLASS.findall(path.read_text(errors="replace")))
    return used


def subset_icons(script: str, used: set[str]) -> str:
    """``script`` without the icon entries whose name and aliases are all unused."""
    cut = []
    for m in ICON_ENTRY.finditer(script):
        names = {m.group(1).strip('"'), *(a.strip('"') for a in m.group(2).split(",") if a.startswith('"'))}
        if names & used:
            continue
        start, end = m.start(), m.end()
        if script[end:end + 1] == ",":
            end += 1  # the entry and the comma after it
        elif script[start - 1:start] == ",":
            start -= 1  # the last entry of its object: the comma before it
        cut.append((start, end))
    out, at = [], 0
    for start, end in cut:
        start = max(start, at)  # a last entry's leading comma may be a removed neighbour's trailing one
        out.append(script[at:start])
        at = max(at, end)
    out.append(script[at:])
    return "".join(out)


def subset_book_icons(html_dir: str | Path, script: str = "_static/scripts/fontawesome.js") -> tuple[int, int] | None:
    """Rewrite the book's icon script in place (temp file, then rename) to the icons its pages use; returns its
    sizes before and after, or None where the book has no such script."""
    path = Path(html_dir) / script
    if not path.is_file():
        return None
    text = path.read_text()
    small = subset_icons(text, used_icons(html_dir, skip=path))
    tmp = path.with_suffix(".js.tmp")
    tmp.write_text(small)
    tmp.replace(path)
    return len(text.encode()), len(small.encode())
