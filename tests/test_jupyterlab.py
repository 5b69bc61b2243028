"""The notebooks as an interactive user meets them.

A real JupyterLab server on 127.0.0.1 serves a project copy in which the smoke main job has run;
headless Chromium opens ``06_explore``, runs every cell (the kernel starts in ``notebooks/``, as
JupyterLab does) and works a slider. Then every notebook is executed with papermill from the
``notebooks/`` folder with its default parameters, and nothing may be written there.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab")
pytest.importorskip("papermill")
nbformat = pytest.importorskip("nbformat")


def _chromium():
    for exe in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(exe).exists() and shutil.which("chromedriver"):
            return exe
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _files(folder: Path) -> set[str]:
    """Everything under ``folder`` except Jupyter's own checkpoints (ignored by git)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if ".ipynb_checkpoints" not in p.parts}


@pytest.fixture(scope="module")
def lab(smoke_book, tmp_path_factory):
    root, runs, code = smoke_book
    assert code == 0
    home = tmp_path_factory.mktemp("jupyter")
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(home / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--ServerApp.open_browser=False",
         "--ServerApp.allow_root=True"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("JupyterLab did not start:\n" + (home / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, root
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _kernel_state(base: str, path: str) -> str | None:
    """The execution state the server reports for the kernel of the notebook at ``path``."""
    with urllib.request.urlopen(f"{base}/api/sessions", timeout=5) as reply:
        sessions = json.load(reply)
    states = [s["kernel"]["execution_state"] for s in sessions if s.get("path") == path and s.get("kernel")]
    return states[0] if states else None


PROMPTS_JS = ("return Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))"
              ".map(p => p.textContent.trim())")  # textContent: JupyterLab virtualises cells out of view
VIEWS_JS = "return document.querySelectorAll('.jp-OutputArea-output .widget-vbox').length"
IMAGE_JS = ("const box = document.querySelectorAll('.jp-OutputArea-output .widget-vbox')[0];"
            "const img = box && box.querySelector('img'); return img ? img.src : null;")


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium + chromium-driver not installed (CI installs them)")
def test_explore_notebook_runs_in_jupyterlab_and_its_widgets_draw(lab, tmp_path):
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    base, root = lab
    path = "notebooks/06_explore.ipynb"
    code_cells = sum(c.cell_type == "code" for c in nbformat.read(root / path, as_version=4).cells)
    before = _files(root / "notebooks")
    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,1200",
                 "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'p'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)

    def wait(condition, what: str, seconds: float = 120):
        """Wait for ``condition``; on timeout fail with what was awaited, the prompts and a screenshot."""
        try:
            return WebDriverWait(driver, seconds, poll_frequency=0.5).until(condition)
        except TimeoutException:
            driver.save_screenshot(str(tmp_path / "lab-timeout.png"))
            pytest.fail(f"JupyterLab: no {what} within {seconds:.0f} s; prompts {driver.execute_script(PROMPTS_JS)}, "
                        f"kernel {_kernel_state(base, path)}; screenshot {tmp_path / 'lab-timeout.png'}")

    def run_all():
        menu = "//div[contains(@class,'lm-MenuBar-itemLabel')][text()='Run']"
        item = "//div[contains(@class,'lm-Menu-itemLabel')][text()='Run All Cells']"
        wait(lambda d: d.find_elements(By.XPATH, menu), "Run menu")[0].click()
        wait(lambda d: d.find_elements(By.XPATH, item), "Run All Cells item")[0].click()

    def finished(prompts: list[str]) -> bool:
        return len(prompts) == code_cells and all(p.startswith("[") and "*" not in p and p != "[ ]:" for p in prompts)

    try:
        driver.get(f"{base}/lab/tree/{path}")
        # the page shows every code cell and the server's kernel for this notebook is connected and idle
        wait(lambda d: len(d.execute_script(PROMPTS_JS)) == code_cells, f"{code_cells} code cells shown")
        wait(lambda d: _kernel_state(base, path) == "idle", "idle kernel")
        run_all()
        try:  # a click that lands while JupyterLab is still wiring the kernel up is lost: give it one more
            WebDriverWait(driver, 20, poll_frequency=0.5).until(
                lambda d: any(p != "[ ]:" for p in d.execute_script(PROMPTS_JS)))
        except TimeoutException:
            run_all()
        wait(lambda d: finished(d.execute_script(PROMPTS_JS)), "numbered prompt on every code cell")
        wait(lambda d: _kernel_state(base, path) == "idle", "idle kernel after the run")
        errors = driver.execute_script(
            "return Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
            ".map(o => o.textContent).filter(t => /Traceback|Error:/.test(t))")
        assert not errors, f"error output in JupyterLab: {errors[0][:1500]}"
        # widget views render after their comm messages arrive, which can be after the kernel is idle again
        wait(lambda d: d.execute_script(VIEWS_JS) >= 3, "three rendered widget views", 60)
        reprs = driver.execute_script("return Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
                                      ".filter(o => /<Figure size|PosixPath/.test(o.textContent)).length")
        assert reprs == 0, "a figure or path shows as its text repr instead of an image"

        first = wait(lambda d: d.execute_script(IMAGE_JS), "image in the first explorer", 60)
        assert first.startswith("data:image/png") or first.startswith("blob:") or first.startswith("http")
        handle = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-vbox .widget-slider .noUi-handle")[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        wait(lambda d: d.execute_script(IMAGE_JS) not in (None, first), "redrawn image after the slider moved", 60)
        driver.save_screenshot(str(tmp_path / "lab.png"))
    finally:
        driver.quit()
    assert _files(root / "notebooks") == before, "the JupyterLab run wrote under notebooks/"


def test_every_notebook_runs_from_the_notebooks_folder_with_defaults(smoke_book, tmp_path):
    """As papermill run by hand in notebooks/ would: default parameters open the newest finished run (whose stages
    saved what each notebook shows), two notebooks at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from npc_lib.stages.notebooks import NOTEBOOKS
    root, runs, code = smoke_book
    assert code == 0
    folder = root / "notebooks"
    before = _files(folder)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def papermill(nb: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "papermill", str(nb), str(tmp_path / nb.name), "--cwd", str(folder),
                               "-k", "python3", "--no-progress-bar"], env=env, capture_output=True, text=True)

    notebooks = sorted(folder.glob("*.ipynb"))
    assert [nb.stem for nb in notebooks] == NOTEBOOKS
    with ThreadPoolExecutor(2) as pool:
        for nb, res in zip(notebooks, pool.map(papermill, notebooks)):
            assert res.returncode == 0, f"{nb.name} failed from notebooks/:\n{res.stderr[-3000:]}"
    assert _files(folder) == before, "a notebook wrote under notebooks/"
    out = nbformat.read(tmp_path / "01_cohort.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "newest finished run: runs/smoke" in text
