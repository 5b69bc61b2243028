"""tqdm progress bars that a caller or the TQDM_DISABLE environment variable can switch off."""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar, disabled when ``enabled`` is False or TQDM_DISABLE is set to 1/true."""
    off = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, disable=off or not enabled, **kwargs)


def end_open_bars() -> None:
    """Close the bars an error left open, so that the error's line starts on a line of its own."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
