"""A sentence in the book is a claim: every number in the prose of the chapters (``book/*.md``) and of the
notebooks' markdown cells is glued from the run, marked as a published figure of the paper
(``{paper}`...```), or on the short allow-list below. No other digit may be typed into the prose."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a number in the prose may be without glue: each pattern with the reason it cannot change with a run.
ALLOWED = {
    r"\b(?:Figs?\.?|Figures?|Tables?)\s+\d+(?:\s*(?:–|-|and|,|to)\s*\d+)*": "the paper's figure and table numbers",
    r"(?<![\d.])(?:19|20)\d\d(?![\d.])": "years (publication years, dates in citations)",
    r"(?<![\d.])3 mm\b": "the paper's own definition of the peritumoural rim",
    r"(?<![\d.])95 %": "the confidence level of every interval",
    r"(?<![\d.])0\.5(?!\.?\d)": "chance AUC and the 0.5 probability threshold (definitions)",
    r"(?<![\d.])0\.05(?!\.?\d)": "the significance level",
    r"\bCC BY \d\.\d\b": "the paper's licence (CC BY 4.0)",
    r"\bAJCC 7th\b": "the staging edition of the data contract",
    r"§\s?\d+(?:\.\d+)*": "section numbers of the paper",
}
# a number: digits (with decimals, thousands separators, ranges handled as two numbers), optionally an
# ordinal suffix; digits glued to letters (ResNet50, T1, N0, Lite0, B0, F1, v2) are names, not numbers
NUMBER = re.compile(r"(?<![\w.\-])\d+(?:[.,]\d+)*(?:st|nd|rd|th)?(?![\w])")
ROLE = re.compile(r"\{(?:glue:text|glue:any|glue:md|glue|cite|cite:p|cite:t|doc|ref|numref|paper|download|term)\}`[^`]*`")
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")


def prose(markdown: str) -> list[tuple[int, str]]:
    """(line number, text) of the prose a reader sees: code blocks dropped, directive option lines and
    headers dropped (their captions kept), roles, inline code, links' targets and URLs removed."""
    out, fence, directive = [], None, False
    for no, line in enumerate(markdown.splitlines(), 1):
        m = FENCE.match(line.strip())
        if fence is None and m:
            fence, directive = m.group(1), m.group(2).strip().startswith("{")
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
                continue
            if not directive or line.strip().startswith(":"):
                continue  # code, or a directive's options (:doc:, :name:, :alt: are not prose)
        if line.lstrip().startswith(("(", "<!--")) and line.rstrip().endswith((")=", "-->")):
            continue  # a MyST target label or an HTML comment
        text = ROLE.sub(" ", line)
        text = re.sub(r"`[^`]*`", " ", text)
        text = re.sub(r"\]\([^)]*\)", "]", text)
        text = re.sub(r"https?://\S+|doi:\S+|10\.\d{4,}/\S+", " ", text)
        out.append((no, text))
    return out


def typed_numbers(markdown: str) -> list[str]:
    """Every number in the prose that is neither glued nor published nor allowed: ``line: number | text``."""
    found = []
    for no, text in prose(markdown):
        for pattern in ALLOWED:
            text = re.sub(pattern, " ", text)
        found += [f"{no}: {m.group(0)} | {text.strip()[:140]}" for m in NUMBER.finditer(text)]
    return found


def sources() -> list[tuple[str, str]]:
    out = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf8")) for p in sorted((ROOT / "book").glob("*.md"))]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text(encoding="utf8"))["cells"]):
            if cell["cell_type"] == "markdown":
                out.append((f"{nb.relative_to(ROOT)} cell {i}", "".join(cell["source"])))
    return out


def test_the_scan_sees_what_it_must():
    text = ("The demo has 441 patients and 32 models; {glue:text}`runs` models, {paper}`0.88`, Fig. 3, "
            "Table 2, 2023, the 3 mm rim, 95 % CI, AUC 0.5, `--bootstrap 2000`, ResNet50 and T1–T4, "
            "the 1st–99th percentiles, a 3.0 mm margin.\n```bash\nmake demo 40\n```\n"
            "```{glue:figure} fig3\n:name: fig-3\n:alt: 8 panels\n\nFig. 3 with 40 curves.\n```\n")
    numbers = [f.split(" | ")[0].split(": ")[1] for f in typed_numbers(text)]
    assert numbers == ["441", "32", "1st", "99th", "3.0", "40"]


@pytest.mark.parametrize("name,text", sources(), ids=[n for n, _ in sources()])
def test_no_number_is_typed_into_the_prose(name, text):
    found = typed_numbers(text)
    assert not found, f"{name}: numbers typed into prose (glue them, or mark a published figure " \
                      f"with {{paper}}`...`):\n" + "\n".join(found)


STALE = ["32 models", "four backbones each", "no time-to-event", "a single 4:1 split", "Three checks",
         "--test-fraction` (", "reproduces, end to end", "was produced by the code in this repository when",
         "show that the pipeline measures time to DM correctly", "shows that it can be recovered",
         "the same code reproduces the study's procedure", "about 90 test patients", "roughly ±0.1",
         "roughly +/-0.1", "eight comparisons", "all 32 models",
         # methods worded stronger than their test (the excess is not the scanner's loss alone; the alarm rate is
         # measured, not bounded; a p value counted in both directions is not a win)
         "case mix and sampling do not explain", "with probability at most", "significant after Holm"]


def test_none_of_the_stale_phrases_remain():
    files = [*ROOT.glob("book/*.md"), ROOT / "README.md", ROOT / "Makefile", *ROOT.glob("npc_lib/profiles/*.yaml"),
             *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("npc_lib/**/*.py")]
    hits = [f"{f.relative_to(ROOT)}: {phrase}" for f in files for phrase in STALE
            if phrase.lower() in f.read_text(encoding="utf8").lower()]
    assert not hits, hits
