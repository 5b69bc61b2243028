"""The main job on the smoke profile, end to end: cohort → notebooks (papermill) → Jupyter Book;
then the built book in headless Chromium, and a PHI scan of everything written."""
from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import pydicom
import pytest

pytest.importorskip("papermill")
pytest.importorskip("jupyter_book")

from browser import open_page  # noqa: E402
from npc_lib.cli import main  # noqa: E402

TEXT_SUFFIXES = {".html", ".js", ".css", ".json", ".csv", ".ipynb", ".md", ".txt", ".log", ".svg", ".yml",
                 ".yaml", ".xml", ".glue"}


def test_smoke_run_succeeds_and_builds_every_page(smoke_book):
    root, runs, code = smoke_book
    summary = json.loads((runs / "run_summary.json").read_text())
    assert code == 0 and summary["failed"] == [], summary["failed"]
    assert summary["executed"] == 7 + 4  # 7 notebooks + one training page per dataset
    stages = {s["name"]: s for s in summary["stages"]}
    assert all(s["status"] == "ran" and s["seconds"] > 0 and s["cpu_seconds"] >= 0 for s in stages.values())
    assert {"cohort", "store", "evaluation", "external", "harmonisation", "finetune", "resplits", "clock",
            "gradcam", "book"} <= set(stages) and len(stages) > 45
    html = root / "_build" / "html"
    for page in ("index", "book/methods", "book/results", "book/beyond", "book/clock", "book/discussion",
                 "book/reproducibility", "book/executed/07_beyond", "book/travel", "book/executed/08_travel",
                 "book/checklist", "book/executed/01_cohort", "book/executed/04_evaluate", "book/executed/05_gradcam",
                 "book/executed/06_explore", "book/executed/status"):
        assert (html / f"{page}.html").is_file(), page
    assert len(list((html / "book" / "executed" / "train").glob("*.html"))) == 4


def test_the_main_job_validates_every_model_on_the_second_centre(smoke_book):
    """external.csv: every model of the grid (8 datasets x 2 variants x 5 backbones) and the references, scored
    on every patient of centre B's evaluation draw; harmonisation.csv: 3 intensity choices x 2 spacings for one
    backbone per dataset on the tuning draw, the choice made there, and on the evaluation draw no harmonisation
    and that choice (exploratory)."""
    import pandas as pd
    root, runs, _ = smoke_book
    ext = pd.read_csv(runs / "evaluation" / "external.csv")
    cnn = ext[~ext["backbone"].isin(["pixel reference", "planted risk", "TNM stage"])]
    assert len(cnn.drop_duplicates(["dataset", "variant", "backbone"])) == 4 * 2 * 5
    assert set(ext["backbone"]) >= {"pixel reference", "planted risk", "TNM stage"}
    b = pd.read_csv(runs / "centres" / "B" / "clinical.csv")
    pat = ext[(ext["level"] == "patient") & (ext["dataset"] == "NPC-CMLN")]
    assert (pat["external_patients"] == len(b)).all() and (pat["external_events"] == b["dm"].sum()).all()
    harm = pd.read_csv(runs / "evaluation" / "harmonisation.csv")
    cells = harm[harm["dataset"] != "all"]
    assert set(harm["draw"]) == {"tuning", "evaluation"}
    conditions = cells.drop_duplicates(["draw", "intensity", "resample"])
    assert (conditions["draw"] == "tuning").sum() == 6 and 1 <= (conditions["draw"] == "evaluation").sum() <= 2
    assert cells.groupby("dataset")["backbone"].nunique().eq(1).all()  # one backbone per dataset
    tuning = cells[(cells["draw"] == "tuning") & (cells["level"] == "patient")]
    best = tuning.groupby(["intensity", "resample"], sort=False)["auc_external"].mean().idxmax()
    info = json.loads((runs / "evaluation" / "external.json").read_text())
    assert (info["harmonisation"], info["resample"]) == (best[0], bool(best[1])), "chosen on the tuning draw"
    assert harm.loc[harm["chosen"], ["intensity", "resample"]].drop_duplicates().values.tolist() == [[best[0], best[1]]]
    evaluation = conditions[conditions["draw"] == "evaluation"]
    assert {(i, bool(r)) for i, r in zip(evaluation["intensity"], evaluation["resample"])} == {("none", False),
                                                                                             (best[0], bool(best[1]))}
    t = pd.read_csv(runs / "centres" / "B-tuning" / "clinical.csv")
    assert len(t) == 16 and info["tuning_patients"] == 16 and any("pixel spacing" in w for w in info["warnings"])
    page = (root / "_build" / "html" / "book" / "travel.html").read_text()
    summary = pd.read_csv(runs / "evaluation" / "external_summary.csv")
    planted = summary.loc[summary["what"] == "planted risk", "change"].mean()
    text = re.sub(r"<[^>]+>", "", page)
    assert "Does it travel?" in text and f"on average {planted:.3f}" in text.replace("\n", " ")


def test_glued_numbers_reach_the_chapters(smoke_book):
    root, runs, _ = smoke_book
    results = (root / "_build" / "html" / "book" / "results.html").read_text()
    patients = json.loads((runs / "cohort" / "generation_report.json").read_text())["patients"]
    assert f"holds {patients} patients" in re.sub(r"<[^>]+>", "", results).replace("\n", " ")
    log = (runs / "book_build.log").read_text()
    assert "glue_ref" not in log and "not found in doc" not in log, "a glued value is missing"
    assert "Synthetic data." in (root / "_build" / "html" / "book" / "executed" / "04_evaluate.html").read_text()
    for chapter in ("results", "beyond"):  # the chapters carry the run's banners too
        page = (root / "_build" / "html" / "book" / f"{chapter}.html").read_text()
        assert "Synthetic data." in page and "Randomly initialised backbones." in page, chapter
    assert "Randomly initialised backbones." in (root / "_build" / "html" / "book" / "executed" /
                                                 "05_gradcam.html").read_text()


def test_rerun_reuses_every_stage(smoke_book, capsys):
    root, runs, _ = smoke_book
    assert main(["run", "--profile", "smoke", "--runs", str(runs), "--book-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert " 0 ran, " in out and "0 notebooks executed, 11 reused" in out, out
    summary = json.loads((runs / "run_summary.json").read_text())
    assert {s["status"] for s in summary["stages"]} == {"reused"}


def test_a_change_to_the_external_validation_reruns_only_it_its_notebook_and_the_book(smoke_book, tmp_path):
    """A copy of the library with one line changed in the module that computes the external validation is put
    first on the path of the runner and of every kernel it starts: the external stage, the notebook that shows
    it and the book run again; every other stage is reused."""
    import os
    import subprocess
    import sys
    root, runs, _ = smoke_book
    lib = tmp_path / "lib"
    shutil.copytree(Path(__file__).resolve().parents[1] / "npc_lib", lib / "npc_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    module = lib / "npc_lib" / "stages" / "external.py"
    module.write_text(module.read_text() + "\nEXTERNAL_CHANGE = 1  # a change the digest must see\n")
    env = {**os.environ, "PYTHONPATH": str(lib)}
    # run from a folder without a package of that name: `python -m` puts the working directory first
    res = subprocess.run([sys.executable, "-m", "npc_lib", "run", "--profile", "smoke", "--runs", str(runs),
                          "--book-root", str(root)], env=env, capture_output=True, text=True, timeout=1800,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((runs / "run_summary.json").read_text())
    ran = sorted(s["name"] for s in summary["stages"] if s["status"] == "ran")
    assert ran == ["book", "external", "notebook:08_travel"], ran
    assert all(s["status"] == "reused" for s in summary["stages"] if s["name"] not in ran)


def _planted_identifiers(cohort: Path) -> set[str]:
    found = set()
    for folder in (cohort / "dicom").iterdir():
        ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
        found |= {str(ds.PatientName), str(ds.PatientID), str(ds.PatientBirthDate), str(ds.AccessionNumber),
                  str(ds.OtherPatientIDs)}
    return found


def test_no_dicom_identifier_in_the_book_or_the_runs(smoke_book):
    root, runs, _ = smoke_book
    secrets = _planted_identifiers(runs / "cohort")
    assert len(secrets) >= 4 * 40  # name, ID, birth date, accession, other IDs (a birth date may repeat)
    # one alternation, longest first, scanned once per file (a pattern per identifier took minutes)
    alternation = "|".join(re.escape(x) for x in sorted(secrets, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.])(?:{alternation})(?![\w])")
    assert all(pattern.search(f"<td>{x}</td>") for x in secrets)  # the scan would see each one
    scanned = 0
    for base in (root / "_build", runs):
        for f in base.rglob("*"):
            if not f.is_file() or (runs / "cohort" / "dicom") in f.parents or f.suffix not in TEXT_SUFFIXES:
                continue
            hit = pattern.search(f.read_text(errors="ignore"))
            scanned += 1
            assert hit is None, f"identifier {hit.group(0)!r} leaked into {f.relative_to(root)}"
    assert scanned > 100


READER_PAGES = ("book/results.html", "book/beyond.html", "book/executed/01_cohort.html",
                "book/executed/04_evaluate.html")


def _chromium():
    for exe in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(exe).exists() and shutil.which("chromedriver"):
            return exe
    return None


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium + chromium-driver not installed (CI installs them)")
def test_book_in_headless_chromium(smoke_book, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    root, runs, _ = smoke_book
    html = root / "_build" / "html"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    shots = runs / "screens"
    shots.mkdir(exist_ok=True)
    overflow_js = """
        const main = document.querySelector('article.bd-article') || document.querySelector('main');
        const limit = main.getBoundingClientRect().right + 1;
        return Array.from(document.querySelectorAll('table'))
            .filter(t => t.getBoundingClientRect().width > 0 && t.getBoundingClientRect().right > limit)
            .map(t => (t.innerText || '').slice(0, 60));"""
    try:
        train_page = sorted((html / "book" / "executed" / "train").glob("cmln.html"))[0]
        for page in ("index.html", "book/results.html", "book/beyond.html", "book/executed/01_cohort.html",
                     "book/executed/04_evaluate.html", "book/executed/05_gradcam.html",
                     "book/executed/06_explore.html", "book/executed/status.html",
                     str(train_page.relative_to(html))):
            open_page(driver, f"{base}/{page}")
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.currentSrc, i.complete && i.naturalWidth > 0])")
            broken = [src for src, ok in images if not ok]
            assert not broken, f"{page}: images that did not load: {broken}"
            if page in READER_PAGES:  # what a reader sees at 1280 px: whole page, no table wider than the text
                height = driver.execute_script("return document.body.scrollHeight")
                driver.set_window_size(1280, min(height + 50, 20000))
                driver.save_screenshot(str(shots / (page.replace("/", "_").replace(".html", "") + ".png")))
                driver.set_window_size(1280, 1600)
                wide = driver.execute_script(overflow_js)
                assert not wide, f"{page}: tables wider than the page at 1280 px: {wide}"
            else:
                driver.save_screenshot(str(shots / (page.replace("/", "_") + ".png")))
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, f"{page}: console errors {errors}"
            if page == "book/results.html":
                assert len(images) >= 6
                tables = driver.execute_script("return document.querySelectorAll('table').length")
                text = driver.execute_script("return document.body.innerText")
                assert tables >= 3 and "Training set" in text and "Intra-peritumour AUC" in text
                assert "np.float64" not in text and "PosixPath" not in text
            if "train/" in page:
                assert "Cervical lymph nodes" in driver.title, driver.title
            if page == "book/executed/status.html":  # where the time went: the Gantt chart, drawn, and the machine
                gantt = driver.execute_script("return Array.from(document.images).filter(i => i.currentSrc.includes("
                                              "'status_stages')).map(i => [i.naturalWidth, i.naturalHeight])")
                assert gantt and gantt[0][0] > 500 and gantt[0][1] > 300, gantt
                text = driver.execute_script("return document.body.innerText")
                assert "Critical path" in text and "Machine:" in text and " cores" in text
            if page == "book/results.html":  # the paper's figures, in its order, each captioned and described
                figs = driver.execute_script(
                    "return Array.from(document.querySelectorAll('figure')).map(f => [f.id, "
                    "(f.querySelector('img') || {}).alt || '', (f.querySelector('figcaption') || {}).innerText || ''])")
                numbered = [(fid, alt, cap) for fid, alt, cap in figs if fid.startswith("fig-") and fid[4].isdigit()]
                assert [f for f, _, _ in numbered] == ["fig-3-image", "fig-3-patient", "fig-4", "fig-5", "fig-6",
                                                       "fig-7", "fig-8"], figs
                for fid, alt, cap in numbered:
                    label = "Fig. " + fid.split("-")[1]
                    assert len(alt) > 30 and cap.startswith(label), (fid, alt, cap)
        # every page carries the stamp of the run that built it (a copied project: not a git checkout); read
        # from the book's own copy: a later `run --no-book` (as the tests above do) stamps only its summary
        stamp = json.loads((root / "book" / "executed" / "stamp.json").read_text())
        assert stamp["run_digest"] and stamp["version"]
        assert stamp["commit"] == "not a git checkout" and stamp["profile"] == "smoke"
        pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")  # index.html only redirects;
                       if p.relative_to(html).as_posix() != "index.html"      # _static holds the theme's macro
                       and not p.relative_to(html).as_posix().startswith("_static/"))  # snippets, not pages
        assert len(pages) >= 4 + 16
        for page in pages:
            open_page(driver, f"{base}/{page}")
            # textContent: the footer's text whether or not the page has laid it out yet
            text = driver.execute_script("const s = document.querySelector('.run-stamp'); "
                                         "return s ? s.textContent.replace(/\\s+/g, ' ') : ''")
            for part in (f"npc-dm-study {stamp['version']}", "not a git checkout", "profile smoke", stamp["run_digest"],
                         stamp["run_date"]):
                assert part in text, f"{page}: footer stamp {text!r} lacks {part!r}"
        urls = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        # chrome:// pages are the browser's own (new tab); anything on the network must be the local server
        outside = [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:", "//")) and not u.startswith(base)]
        assert any(u.startswith(base) for u in urls) and not outside, f"requests left localhost: {outside[:5]}"
    finally:
        driver.quit()
        server.shutdown()


def test_a_rebuild_shows_the_new_run_numbers_in_unchanged_chapters(smoke_book, tmp_path):
    """Chapters glue numbers from executed notebooks; a second build must not keep the old ones."""
    import nbformat

    from npc_lib.stages.book import build_book
    root, runs, _ = smoke_book
    other = tmp_path / "runs"
    shutil.copytree(runs / "executed", other / "executed")
    path = other / "executed" / "01_cohort.ipynb"
    nb = nbformat.read(path, as_version=4)
    patched = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == "patients":
                out["data"] = {k: "4321" for k in out["data"]}
                patched += 1
    assert patched == 1
    nbformat.write(nb, path)
    results = root / "_build" / "html" / "book" / "results.html"
    stamp = json.loads((root / "book" / "executed" / "stamp.json").read_text())
    try:
        build_book(root, other, {}, "smoke", stamp)
        assert "holds 4321 patients" in re.sub(r"<[^>]+>", "", results.read_text()).replace("\n", " ")
    finally:
        timeline = json.loads((runs / "stages" / "timeline.json").read_text())
        build_book(root, runs, timeline, "smoke", stamp)  # the book as the fixture built it, stamp included
    assert "holds 4321" not in re.sub(r"<[^>]+>", "", results.read_text()).replace("\n", " ")
