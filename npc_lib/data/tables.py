"""Strict CSV reading for user-supplied tables: UTF-8, non-empty, required columns present."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from npc_lib.errors import CohortError


def read_csv_strict(path: str | Path, required: list[str]) -> pd.DataFrame:
    """Read a CSV as strings; clear errors for a missing, empty, non-UTF-8 or short-column file."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CohortError(f"{path}: not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} on line {line})",
                          hint="save the table as UTF-8 CSV") from None
    if not text.strip():
        raise CohortError(f"{path}: file is empty", hint=f"expected a header with: {', '.join(required)}")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise CohortError(f"{path}: malformed CSV ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CohortError(f"{path}: missing column(s) {', '.join(missing)}",
                          hint=f"required columns: {', '.join(required)}")
    if frame.empty:
        raise CohortError(f"{path}: has a header but no rows")
    return frame.apply(lambda col: col.str.strip())


def line_of(index: int) -> int:
    """CSV line number of a data row (the header is line 1)."""
    return int(index) + 2
