"""Lighter book pages: the icon script keeps the icons in use and nothing else, figures become palette PNGs
that look the same, and the views' pictures become files fetched when shown."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from PIL import Image

from npc_lib.show.icon_subset import ICON_ENTRY, subset_icons
from npc_lib.show.png_palette import MAX_MEAN_ERROR, palette_png
from npc_lib.show.views.pictures import PICTURE_SCHEME, data_uri, picture_files

SCRIPT = ('!function(){var a={"bars":[448,512,["navicon"],"f0c9","M0 0h1"],github:[496,512,[],"f09b","M1 1"],'
          '"x-twitter":[512,512,[],"e61b","M2 2"]};var b={sun:[512,512,[9728],"f185","M3 3"],'
          'moon:[384,512,[127769],"f186","M4 4"]};define(a,b)}();')


def _names(script):
    return [m.group(1).strip('"') for m in ICON_ENTRY.finditer(script)]


def test_the_icon_script_keeps_exactly_the_icons_in_use():
    assert _names(SCRIPT) == ["bars", "github", "x-twitter", "sun", "moon"]
    small = subset_icons(SCRIPT, {"github", "moon", "solid"})
    assert _names(small) == ["github", "moon"]
    assert "define(a,b)" in small and "{," not in small and ",," not in small
    assert _names(subset_icons(SCRIPT, {"navicon"})) == ["bars"]  # an alias keeps its icon
    assert _names(subset_icons(SCRIPT, set())) == []


def test_a_figure_becomes_a_smaller_palette_png_that_looks_the_same(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.linspace(0, 1, 200)
    for k in range(6):
        ax.plot(x, x ** (k + 1), label=f"curve {k}")
    ax.imshow(np.random.default_rng(0).random((20, 20)), extent=(0.6, 1, 0, 0.3), cmap="gray")
    ax.legend()
    path = tmp_path / "figure.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    original = np.asarray(Image.open(path).convert("RGB"), np.int16)
    before, after = palette_png(path)
    assert after < 0.7 * before
    with Image.open(path) as im:
        assert im.mode == "P"
        now = np.asarray(im.convert("RGB"), np.int16)
    assert np.abs(now - original).mean() <= MAX_MEAN_ERROR


def test_a_transparent_png_is_left_alone(tmp_path):
    path = tmp_path / "clear.png"
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[..., 3] = np.linspace(0, 255, 30, dtype=np.uint8)
    Image.fromarray(rgba).save(path)
    data = path.read_bytes()
    assert palette_png(path)[0] == palette_png(path)[1] and path.read_bytes() == data


def test_view_pictures_are_files_inside_the_block_and_data_uris_outside(tmp_path):
    grey = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    inline = data_uri(grey, 32)
    assert inline.startswith("data:image/webp;base64,")
    with picture_files(tmp_path / "slices"):
        named = data_uri(grey, 32)
    m = re.fullmatch(re.escape(PICTURE_SCHEME) + r"slices/([0-9a-f]{20}\.webp)", named)
    assert m, named
    written = (tmp_path / "slices" / m.group(1)).read_bytes()
    assert written == base64.b64decode(inline.split(",", 1)[1])  # the same picture, now a file
    assert data_uri(grey, 32) == inline  # the block is over


def test_a_failed_block_keeps_the_previous_pictures(tmp_path):
    grey = np.full((16, 16), 7, np.uint8)
    with picture_files(tmp_path / "cams"):
        first = data_uri(grey)
    with pytest.raises(RuntimeError):
        with picture_files(tmp_path / "cams"):
            data_uri(grey + 50)
            raise RuntimeError("a view failed half-way")
    assert [p.name for p in (tmp_path / "cams").iterdir()] == [first.rsplit("/", 1)[1]]
