"""Headless Chromium on a built book: a local server, a driver with the network logged, and helpers that reach
into Bokeh's shadow DOM (its widgets and tooltips live there)."""
from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path


def chromium() -> str | None:
    for exe in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(exe).exists() and shutil.which("chromedriver"):
            return exe
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextmanager
def served_book(html: Path, profile: Path, width: int = 1280, height: int = 1600):
    """(driver, base URL) on ``html`` served from 127.0.0.1; the server and browser stop afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        yield driver, f"http://127.0.0.1:{server.server_port}"
    finally:
        driver.quit()
        server.shutdown()


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call (the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


# every element matching a selector, through every open shadow root
DEEP_QUERY = """
const [selector] = arguments;
const found = [];
const walk = (root) => {
  root.querySelectorAll(selector).forEach(e => found.push(e));
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); });
};
walk(document);
return found;
"""


def deep_query(driver, selector: str) -> list:
    return driver.execute_script(DEEP_QUERY, selector)


def open_page(driver, url: str, timeout: float = 30.0) -> None:
    """Go to ``url`` and wait until that document (not one a redirect of the previous page brought) has loaded,
    its pictures included."""
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete) && "
        "(arguments[0].endsWith('/index.html') || location.href.split('#')[0] === arguments[0])", url))


def wait_for_views(driver, count: int, timeout: float = 20.0) -> None:
    """Wait until ``count`` Bokeh documents have drawn (and their pictures have loaded)."""
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "return window.Bokeh && Bokeh.documents.length >= arguments[0] && "
        "Array.from(document.querySelectorAll('.npc-view')).every(v => v.children.length > 0)", count))
    settle(driver)


def settle(driver, seconds: float = 1.5) -> None:
    """Let Bokeh redraw (image URLs load asynchronously)."""
    import time
    time.sleep(seconds)


def plot_pixels(driver, name: str):
    """The pixels of the Bokeh plot whose model is named ``name`` (a screenshot of its box), as an array."""
    import numpy as np
    from PIL import Image
    box = driver.execute_script("""
        const model = Bokeh.documents.map(d => d.get_model_by_name(arguments[0])).find(m => m);
        const view = Bokeh.index.find_one(model);
        const r = view.el.getBoundingClientRect();
        return [r.left, r.top, r.width, r.height, window.devicePixelRatio];""", name)
    left, top, width, height, ratio = box
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png()))
    crop = shot.crop((int(left * ratio), int(top * ratio), int((left + width) * ratio), int((top + height) * ratio)))
    return np.asarray(crop.convert("RGB"), dtype=np.int16)


def scroll_to_view(driver, index: int = 0) -> None:
    driver.execute_script("document.querySelectorAll('.npc-view')[arguments[0]].scrollIntoView({block: 'start'})",
                          index)
    settle(driver, 0.5)
