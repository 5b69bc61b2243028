"""The notebooks as an interactive user meets them.

A real JupyterLab server on 127.0.0.1 serves a project copy in which the smoke main job has run;
headless Chromium opens ``06_explore``, runs every cell (the kernel starts in ``notebooks/``, as
JupyterLab does) and works a slider. Then every notebook is executed with papermill from the
``notebooks/`` folder with its default parameters, and nothing may be written there.
"""
from __future__ import annotations

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


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium + chromium-driver not installed (CI installs them)")
def test_explore_notebook_runs_in_jupyterlab_and_its_widgets_draw(lab, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    base, root = lab
    before = _files(root / "notebooks")
    opts = webdriver.ChromeOptions()
    opts.binary_location = _chromium()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,1200",
                 "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'p'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    wait = WebDriverWait(driver, 120, poll_frequency=0.5)
    try:
        driver.get(f"{base}/lab/tree/notebooks/06_explore.ipynb")
        status = "return (document.querySelector('.jp-Notebook-ExecutionIndicator') || {}).dataset?.status"
        wait.until(lambda d: d.execute_script(status) == "idle")
        wait.until(lambda d: d.find_elements(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel')][text()='Run']"))
        driver.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel')][text()='Run']").click()
        wait.until(lambda d: d.find_elements(By.XPATH, "//div[contains(@class,'lm-Menu-itemLabel')][text()='Run All Cells']"))
        driver.find_element(By.XPATH, "//div[contains(@class,'lm-Menu-itemLabel')][text()='Run All Cells']").click()
        # textContent, not innerText: JupyterLab virtualises cells scrolled out of view
        prompts = ("return Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))"
                   ".map(p => p.textContent.trim())")
        wait.until(lambda d: all(p.startswith("[") and "*" not in p and p != "[ ]:" for p in d.execute_script(prompts)))
        wait.until(lambda d: d.execute_script(status) == "idle")
        errors = driver.execute_script(
            "return Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
            ".map(o => o.textContent).filter(t => /Traceback|Error:/.test(t))")
        assert not errors, f"error output in JupyterLab: {errors[0][:1500]}"
        views = driver.execute_script("return document.querySelectorAll('.jp-OutputArea-output .widget-vbox').length")
        assert views >= 3, f"{views} widget views rendered"
        reprs = driver.execute_script("return Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
                                      ".filter(o => /<Figure size|PosixPath/.test(o.textContent)).length")
        assert reprs == 0, "a figure or path shows as its text repr instead of an image"

        image_js = ("const box = document.querySelectorAll('.jp-OutputArea-output .widget-vbox')[0];"
                    "const img = box && box.querySelector('img'); return img ? img.src : null;")
        wait.until(lambda d: d.execute_script(image_js))
        first = driver.execute_script(image_js)
        assert first.startswith("data:image/png") or first.startswith("blob:") or first.startswith("http")
        handle = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-vbox .widget-slider .noUi-handle")[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: d.execute_script(image_js) not in (None, first))
        driver.save_screenshot(str(tmp_path / "lab.png"))
    finally:
        driver.quit()
    assert _files(root / "notebooks") == before, "the JupyterLab run wrote under notebooks/"


def test_every_notebook_runs_from_the_notebooks_folder_with_defaults(smoke_book, tmp_path):
    """As a kernel started in notebooks/ would: default parameters open the newest finished run."""
    import papermill as pm

    from npc_lib.runner import KERNEL_ARGUMENTS
    root, runs, code = smoke_book
    assert code == 0
    folder = root / "notebooks"
    before = _files(folder)
    env_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env_path}"
    try:
        for nb in sorted(folder.glob("*.ipynb")):
            pm.execute_notebook(str(nb), str(tmp_path / nb.name), cwd=str(folder), kernel_name="python3",
                                progress_bar=False, extra_arguments=KERNEL_ARGUMENTS)
    finally:
        os.environ["PATH"] = env_path
    assert _files(folder) == before, "a notebook wrote under notebooks/"
    import nbformat
    out = nbformat.read(tmp_path / "01_cohort.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "newest finished run: runs/smoke" in text
