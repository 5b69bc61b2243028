"""The static book's interactive views, as a reader meets them: headless Chromium on the smoke book, served from
127.0.0.1, with every request logged. Controls are used as a reader uses them (slider keys, menus, the pointer)
and the plot's pixels compared before and after."""
from __future__ import annotations

import numpy as np
import pytest

from browser import (chromium, deep_query, plot_pixels, requested_urls, scroll_to_view, served_book, settle,
                     wait_for_views)

VIEW_PAGES = {"book/explore_slices.html": 1, "book/explore_roc.html": 1, "book/explore_gradcam.html": 1,
              "book/travel.html": 1, "book/beyond.html": 2, "book/clock.html": 1}
MAX_PAGE_BYTES = 3 * 1024 ** 2

needs_chromium = pytest.mark.skipif(chromium() is None,
                                    reason="Debian chromium + chromium-driver not installed (CI installs them)")


@pytest.fixture(scope="module")
def reader(smoke_book, tmp_path_factory):
    root, _, code = smoke_book
    assert code == 0
    with served_book(root / "_build" / "html", tmp_path_factory.mktemp("chromium")) as (driver, base):
        yield driver, base


def _open(reader, page: str):
    driver, base = reader
    driver.get(f"{base}/{page}")
    wait_for_views(driver, VIEW_PAGES[page])
    return driver


def _model_value(driver, name: str, attribute: str = "value"):
    return driver.execute_script("const m = Bokeh.documents.map(d => d.get_model_by_name(arguments[0]))"
                                 ".find(m => m); return m[arguments[1]];", name, attribute)


def _changed(before: np.ndarray, after: np.ndarray) -> float:
    """Mean absolute change per pixel channel (0–255) between two crops of one plot."""
    h, w = min(before.shape[0], after.shape[0]), min(before.shape[1], after.shape[1])
    return float(np.abs(after[:h, :w] - before[:h, :w]).mean())


@needs_chromium
def test_moving_the_slice_slider_changes_the_pictures_pixels(reader):
    from selenium.webdriver.common.keys import Keys
    driver = _open(reader, "book/explore_slices.html")
    scroll_to_view(driver)
    before, value = plot_pixels(driver, "slices-plot"), _model_value(driver, "slices-slider")
    handle = deep_query(driver, ".noUi-handle")[0]
    at_end = value >= _model_value(driver, "slices-slider", "end")
    handle.send_keys(Keys.ARROW_LEFT if at_end else Keys.ARROW_RIGHT)
    settle(driver)
    assert _model_value(driver, "slices-slider") != value
    assert _changed(before, plot_pixels(driver, "slices-plot")) > 0.5
    # the layer toggles: switching every rectangle off changes the pixels again (the outlines go)
    shown = plot_pixels(driver, "slices-plot")
    for box in deep_query(driver, "input[type=checkbox]"):
        box.click()
    settle(driver)
    assert _changed(shown, plot_pixels(driver, "slices-plot")) > 0.05


@needs_chromium
def test_choosing_another_dataset_changes_the_roc_curves(reader):
    from selenium.webdriver.support.ui import Select
    driver = _open(reader, "book/explore_roc.html")
    scroll_to_view(driver)
    before = plot_pixels(driver, "roc-plot")
    menu = Select(deep_query(driver, "select")[0])  # the dataset menu
    current = _model_value(driver, "roc-dataset")
    other = next(o.get_attribute("value") for o in menu.options if o.get_attribute("value") != current)
    menu.select_by_value(other)
    settle(driver)
    assert _model_value(driver, "roc-dataset") == other
    assert _changed(before, plot_pixels(driver, "roc-plot")) > 0.2
    aucs = driver.execute_script("return arguments[0].innerText", deep_query(driver, "table.npc-view-table")[0])
    assert "patient AUC" in aucs


@needs_chromium
def test_choosing_another_patient_changes_the_gradcam_map(reader):
    from selenium.webdriver.support.ui import Select
    driver = _open(reader, "book/explore_gradcam.html")
    scroll_to_view(driver)
    before = plot_pixels(driver, "gradcam-plot")
    stats = _model_value(driver, "gradcam-stats", "text")
    Select(deep_query(driver, "select")[1]).select_by_index(1)  # the patient menu
    settle(driver)
    assert _model_value(driver, "gradcam-patient") == "1"
    assert _changed(before, plot_pixels(driver, "gradcam-plot")) > 0.5
    assert "enrichment" in _model_value(driver, "gradcam-stats", "text") or "no map" in stats


@needs_chromium
def test_hovering_a_forest_row_shows_its_numbers(reader):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    driver = _open(reader, "book/travel.html")
    driver.execute_script("document.querySelector('.npc-view').scrollIntoView({block: 'center'})")
    settle(driver, 0.5)
    left, top, width, height = driver.execute_script("""
        const model = Bokeh.documents.map(d => d.get_model_by_name('travel-forest-plot')).find(m => m);
        const r = Bokeh.index.find_one(model).el.getBoundingClientRect();
        return [r.left, r.top, r.width, r.height];""")
    text = ""
    for frac in (0.5, 0.4, 0.6, 0.3, 0.7):  # rest the pointer on a row inside the frame
        action = ActionBuilder(driver)
        action.pointer_action.move_to_location(int(left + 0.75 * width), int(top + frac * height))
        action.perform()
        settle(driver, 0.6)
        text = " ".join(driver.execute_script("return arguments[0].innerText", t)
                        for t in deep_query(driver, "[class*=ooltip]"))
        if "AUC centre B" in text:
            break
    ActionChains(driver).reset_actions()
    assert "AUC centre B" in text and "Change" in text, text
    # the numbers are a row of the chapter's table (folded under "Show the table")
    rows = driver.execute_script("""
        return Array.from(document.querySelectorAll('details table tr, .dropdown table tr, table tr'))
            .map(r => Array.from(r.cells).map(c => c.textContent.replace(/\\s+/g, ' ').trim()));""")
    flat = " ".join(text.split())
    assert any(len(r) > 3 and all(c in flat for c in r[1:4]) for r in rows), (flat, rows[:3])


@needs_chromium
def test_the_view_pages_load_nothing_from_the_network_and_log_no_error(reader):
    driver, base = reader
    requested_urls(driver)  # drop what earlier tests asked for
    for page, count in VIEW_PAGES.items():
        driver.get(f"{base}/{page}")
        wait_for_views(driver, count)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"{page}: console errors {errors}"
    driver.get(f"{base}/book/methods.html")  # a page without a view loads no BokehJS
    settle(driver, 0.5)
    urls = requested_urls(driver)
    outside = [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:", "//")) and not u.startswith(base)]
    assert not outside, f"requests left the local files: {outside[:5]}"
    assert any(u.endswith("/_static/bokeh/bokeh.min.js") for u in urls)
    assert driver.execute_script("return typeof window.Bokeh") == "undefined"


def test_every_page_is_at_most_3_mb_with_what_it_loads(smoke_book):
    """Each page's HTML with the scripts, styles and pictures it loads from the book's own files."""
    from npc_lib.show.book_pages import page_weights
    root, _, _ = smoke_book
    weights = page_weights(root / "_build" / "html")
    assert weights, "no pages"
    heavy = {p: w for p, w in weights.items() if w["total"] > MAX_PAGE_BYTES}
    assert not heavy, heavy
    assert any(w["scripts"] > 1_000_000 for p, w in weights.items() if p in VIEW_PAGES)  # BokehJS counted


def test_a_view_fragment_keeps_its_document_inside_one_script():
    from bokeh.plotting import figure

    from npc_lib.show.views import View
    p = figure(title="</script><b>x</b>", name="t")
    p.line([0, 1], [0, 1])
    html = View(p, "test", "a test").html
    assert html.count("</script>") == 2 and "<\\/script>" in html and 'data-npc-view="test"' in html


def test_roc_points_give_each_cut_its_sensitivity_and_specificity():
    from npc_lib.show.views.roc import roc_points
    pts = roc_points([0, 0, 1, 1, 1], [0.1, 0.6, 0.4, 0.8, 0.9])
    assert pts["auc"] == pytest.approx(5 / 6, abs=1e-3)
    for thr, sens, spec in zip(pts["threshold"], pts["sensitivity"], pts["specificity"]):
        pred = np.array([0.1, 0.6, 0.4, 0.8, 0.9]) >= thr
        y = np.array([0, 0, 1, 1, 1], bool)
        assert sens == pytest.approx((pred & y).sum() / 3, abs=1e-3)
        assert spec == pytest.approx((~pred & ~y).sum() / 2, abs=1e-3)
    assert roc_points([1, 1], [0.2, 0.3])["auc"] is None
