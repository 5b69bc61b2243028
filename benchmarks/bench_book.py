"""Benchmark: what the interactive views cost the book, in one run.

On a finished run whose book was built (``book/executed`` holds its notebooks): builds the book twice from
copies of the project's book sources, once as it is and once with every interactive view stripped (the view
pages out of the table of contents, the views' glued outputs emptied), and prints both build times and their
difference; then the time to compute each view from the run's saved results and its size, the heaviest pages
with what they load (HTML, scripts, styles, pictures), the pages with views, and the whole book's size.
Usage::

  python benchmarks/bench_book.py [--project .] [--runs runs/demo] [--out /tmp/bench-book]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIEW_PAGES = ("explore_slices", "explore_roc", "explore_gradcam")


def copy_project(project: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(project / name, dest / name)
    shutil.copytree(project / "book", dest / "book", ignore=shutil.ignore_patterns("_build"))
    return dest


def strip_views(book: Path) -> None:
    """Empty every glued view output and drop the view pages from the table of contents."""
    from npc_lib.show.views.embed import MARKER
    for nb_path in (book / "book" / "executed").rglob("*.ipynb"):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                html = "".join(out.get("data", {}).get("text/html", []))
                if MARKER in html:
                    out["data"]["text/html"] = ["<p></p>"]
        nb_path.write_text(json.dumps(nb))
    toc = (book / "_toc.yml").read_text()
    lines = [ln for ln in toc.splitlines() if not any(f"book/{p}" in ln for p in VIEW_PAGES)]
    lines = [ln for i, ln in enumerate(lines)
             if not (ln.strip() == "sections:" and i + 1 < len(lines) and "glob:" not in lines[i + 1]
                     and "file:" not in lines[i + 1])]
    (book / "_toc.yml").write_text("\n".join(lines) + "\n")
    for p in VIEW_PAGES:
        (book / "book" / f"{p}.md").unlink(missing_ok=True)
    for md in (book / "book").glob("*.md"):  # a chapter's forest plot glue: the table stays
        text = md.read_text()
        for name in ("travel_forest", "pretraining_resplit_forest", "negative_control_forest", "survival_forest"):
            text = text.replace(f"```{{glue}} {name}\n", "```{glue} " + name.replace("forest", "table")
                                .replace("negative_control_table", "negative_control") + "\n")
        md.write_text(text)


def build(book: Path) -> float:
    exe = Path(sys.executable).with_name("jupyter-book")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    res = subprocess.run([str(exe), "build", str(book), "--all", "--quiet"], capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"book build failed in {book}:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def view_costs(runs: Path, pictures: Path) -> list[tuple[str, float, int, int]]:
    """Each view computed from the run's saved results as the notebook does (slices and Grad-CAM with their
    pictures as files under ``pictures``): (name, seconds, bytes in its page, bytes of its picture files)."""
    import pandas as pd

    from npc_lib.analysis.explore import test_patient_menu
    from npc_lib.analysis.saved import load_study_evaluation
    from npc_lib.data.cache import open_image_store
    from npc_lib.layout import RunLayout
    from npc_lib.results import load_result
    from npc_lib.show.views.long_tables import control_forest, pretraining_forest, survival_forest, travel_forest
    from npc_lib.show.widgets import CamViewer, RocExplorer, SliceExplorer
    layout = RunLayout(runs)
    ref = layout.read_cohort_ref()
    store = open_image_store(layout.image_store(ref["store"]), verify=False)
    ev = load_study_evaluation(layout)
    patients, labels = test_patient_menu(store.index, layout.read_split())
    beyond = load_result(layout.result("clock"), None)
    table = layout.table
    makers = {
        "slices": lambda: SliceExplorer(ref["cohort"], store.index).view(patients, labels),
        "ROC": lambda: RocExplorer(ev.predictions, ev.references, ev.tnm).view(),
        "Grad-CAM": lambda: CamViewer(layout.gradcam_examples).view(),
        "travel forest": lambda: travel_forest(pd.read_csv(table("external_summary"))),
        "control forest": lambda: control_forest(ev.negative_control),
        "pretraining forest": lambda: pretraining_forest(pd.read_csv(table("pretraining_resplit_summary"))),
        "survival forest": lambda: survival_forest(beyond["survival_shown"]),
    }
    from npc_lib.show.views.pictures import picture_files
    out = []
    for name, make in makers.items():
        folder = pictures / name.replace(" ", "_")
        t0 = time.perf_counter()
        with picture_files(folder):
            view = make()
        files = sum(p.stat().st_size for p in folder.iterdir())
        out.append((name, time.perf_counter() - t0, view.size_bytes(), files))
    return out


def main(argv: list[str] | None = None) -> int:
    from npc_lib.machine import describe
    from npc_lib.show.book_pages import book_bytes, page_weights
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", type=Path, default=ROOT)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-book"))
    a = ap.parse_args(argv)
    print(f"machine: {describe()}; run {a.runs}")
    with_views = copy_project(a.project, a.out / "with_views")
    without = copy_project(a.project, a.out / "without_views")
    strip_views(without)
    t_without = build(without)
    t_with = build(with_views)
    print(f"book build: {t_with:.1f} s with the views, {t_without:.1f} s without; the views add "
          f"{t_with - t_without:+.1f} s ({t_with / t_without:.2f}x)")
    total = 0.0
    for name, seconds, size, files in view_costs(a.runs, a.out / "pictures"):
        total += seconds
        print(f"  view {name:20s} {seconds:6.2f} s to compute, {size / 1024:8.0f} KiB in its page, "
              f"{files / 1024:8.0f} KiB of pictures fetched when shown")
    print(f"  all views: {total:.1f} s in the notebooks")
    html = with_views / "_build" / "html"
    weights = page_weights(html)
    print(f"{'page':48s} {'HTML':>9s} {'scripts':>9s} {'styles':>9s} {'images':>9s} {'total':>9s} (KiB)")
    viewed = [p for p in weights if any(v in p for v in VIEW_PAGES) or p.endswith(("travel.html", "beyond.html",
                                                                                   "clock.html"))]
    heaviest = sorted(weights, key=lambda p: -weights[p]["total"])[:8]
    for page in dict.fromkeys([*heaviest, *viewed]):
        w = weights[page]
        print(f"{page:48s} " + " ".join(f"{w[k] / 1024:9.0f}" for k in ("html", "scripts", "styles", "images",
                                                                          "total")))
    largest = max(weights, key=lambda p: weights[p]["total"])
    print(f"largest page: {largest}, {weights[largest]['total'] / 1024 ** 2:.2f} MiB with what it loads "
          f"({weights[largest]['html'] / 1024 ** 2:.2f} MiB HTML)")
    print(f"whole book: {book_bytes(html) / 1024 ** 2:.1f} MiB "
          f"(without the views: {book_bytes(without / '_build' / 'html') / 1024 ** 2:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
