"""Load and validate a cohort directory into typed, identifier-free tables.

Problems are collected with the file, line and patient they concern. By default any problem
raises :class:`CohortError`; with ``exclude_invalid=True`` a patient-level problem excludes
that patient and an ROI-level problem drops that ROI row, each logged in ``exclusions`` and
counted in the cohort flow (the analogue of the paper's Fig. 1). Table-level problems
(missing column, duplicate IDs, unreadable CSV) always raise.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.data.dicom import Series, read_series
from npc_lib.errors import CohortError, DicomError
from npc_lib.progress import progress_bar
from npc_lib.data.staging import N_LEVELS, STAGE_LEVELS, T_LEVELS, overall_stage
from npc_lib.data.tables import line_of, read_csv_strict

log = logging.getLogger(__name__)

CLINICAL_COLUMNS = ["patient_id", "age", "sex", "t_stage", "n_stage", "overall_stage", "treatment", "dm"]
MIN_FOLLOW_UP_MONTHS = 36  # follow-up without DM the paper required; shorter gets a warning
ROI_COLUMNS = ["patient_id", "sop_instance_uid", "region", "x0", "y0", "x1", "y1"]
SERIES_CSV = "series.csv"
REGIONS = ("npc", "cmln")
TREATMENTS = ("CCR", "IC+CCR")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Problem:
    level: str        # "patient" | "roi"
    patient_id: str
    where: str        # file and line
    message: str

    def __str__(self):
        who = f" (patient {self.patient_id})" if self.patient_id else ""
        return f"{self.where}{who}: {self.message}"


@dataclass
class Cohort:
    """A validated cohort: clinical and ROI tables, series geometry, exclusions and flow."""

    root: Path
    clinical: pd.DataFrame
    rois: pd.DataFrame
    series: dict[str, Series]
    exclusions: pd.DataFrame
    flow: list[tuple[str, int]] = field(default_factory=list)

    def load_series(self, patient_id: str) -> Series:
        """The patient's series with pixels (float32 [slices, rows, cols])."""
        known = self.series.get(patient_id)
        return read_series(self.root / "dicom" / patient_id, load_pixels=True,
                           series_uid=known.series_instance_uid if known else None)

    @property
    def notes(self) -> pd.DataFrame:
        """What the reader skipped or adapted per patient (non-image files, localizers, other
        series, inferred transfer syntaxes, MONOCHROME1 inversion): ``patient_id, note``."""
        return pd.DataFrame([{"patient_id": p, "note": n} for p, s in self.series.items() for n in s.notes],
                            columns=["patient_id", "note"])

    def summary(self) -> dict:
        c, r = self.clinical, self.rois
        return {
            "patients": int(len(c)),
            "dm": int(c["dm"].sum()),
            "no_dm": int((c["dm"] == 0).sum()),
            "slices": int(sum(s.n_slices for s in self.series.values())),
            "rois": {reg: int((r["region"] == reg).sum()) for reg in REGIONS},
            "patients_with_roi": {reg: int(r.loc[r["region"] == reg, "patient_id"].nunique()) for reg in REGIONS},
            "matrix": sorted({f"{s.rows}x{s.cols}" for s in self.series.values()}),
            "pixel_spacing_mm": _range([s.pixel_spacing[1] for s in self.series.values()]),
            "slice_spacing_mm": _range([s.slice_spacing for s in self.series.values()]),
            "excluded_patients": int(self.exclusions.loc[self.exclusions["level"] == "patient", "patient_id"].nunique()),
            "dropped_rois": int((self.exclusions["level"] == "roi").sum()),
            "flow": [list(step) for step in self.flow],
        }


def _range(values):
    return [round(float(min(values)), 4), round(float(max(values)), 4)] if values else []


def _clean_clinical(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[Problem]]:
    problems: list[Problem] = []
    ids = frame["patient_id"]
    if (ids == "").any():
        i = int(np.flatnonzero(ids == "")[0])
        raise CohortError(f"{path} line {line_of(i)}: empty patient_id")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]
        lines = [line_of(i) for i in np.flatnonzero(ids == first)]
        raise CohortError(f"{path}: duplicate patient_id {first!r} on lines {lines}",
                          hint="each patient must appear exactly once")
    out = []
    for i, row in frame.iterrows():
        pid, where = row["patient_id"], f"{path.name} line {line_of(i)}"
        errs = []
        if not SAFE_ID.match(pid):
            errs.append(f"patient_id {pid!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
        try:
            age = float(row["age"])
            if not 0 <= age <= 120:
                errs.append(f"age {row['age']!r} outside 0–120 years")
        except ValueError:
            age = np.nan
            errs.append(f"age {row['age']!r} is not a number")
        sex = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}.get(row["sex"].upper())
        if sex is None:
            errs.append(f"unknown sex {row['sex']!r} (expected M or F)")
        t = row["t_stage"].upper()
        t = t if t.startswith("T") else f"T{t}"
        n = row["n_stage"].upper()
        n = n if n.startswith("N") else f"N{n}"
        stage = row["overall_stage"].upper().removeprefix("STAGE").strip()
        stage = "IV" if stage in ("IVA", "IVB", "IVC") else stage
        if t not in T_LEVELS:
            errs.append(f"unknown t_stage {row['t_stage']!r} (expected T1–T4)")
        if n not in N_LEVELS:
            errs.append(f"unknown n_stage {row['n_stage']!r} (expected N0–N3)")
        if stage not in STAGE_LEVELS:
            errs.append(f"unknown overall_stage {row['overall_stage']!r} (expected I, II, III or IV)")
        elif t in T_LEVELS and n in N_LEVELS and overall_stage(t, n) != stage:
            errs.append(f"overall_stage {stage} is inconsistent with {t}{n} (AJCC 7th gives {overall_stage(t, n)})")
        treatment = row["treatment"].upper().replace(" ", "")
        if treatment not in TREATMENTS:
            errs.append(f"unknown treatment {row['treatment']!r} (expected CCR or IC+CCR)")
        if row["dm"] not in ("0", "1"):
            errs.append(f"dm {row['dm']!r} must be 0 or 1")
        months = row.get("dm_months", "")
        if "dm_months" in frame.columns:
            try:
                months = float(months)
                if not np.isfinite(months) or months < 0:
                    errs.append(f"dm_months {row['dm_months']!r} must be a non-negative number of months")
            except ValueError:
                errs.append(f"dm_months {row['dm_months']!r} is not a number (months to DM, or to the last "
                            "follow-up without DM; leave the column out if unknown for every patient)")
                months = np.nan
        event = row.get("dm_event", "")
        if "dm_event" in frame.columns:
            if event not in ("0", "1"):
                errs.append(f"dm_event {event!r} must be 0 or 1 (1: DM observed at dm_months)")
            elif event == "1" and row["dm"] == "0":
                errs.append("dm_event 1 (DM observed) but dm 0")
        split = row.get("split", "")
        split = split.lower() if isinstance(split, str) else ""
        if "split" in frame.columns and split not in ("train", "test"):
            errs.append(f"split {row.get('split')!r} must be train or test")
        problems += [Problem("patient", pid, where, e) for e in errs]
        out.append({"patient_id": pid, "age": age, "sex": sex, "t_stage": t, "n_stage": n,
                    "overall_stage": stage, "treatment": treatment,
                    "dm": int(row["dm"]) if row["dm"] in ("0", "1") else -1,
                    **({"dm_months": months} if "dm_months" in frame.columns else {}),
                    **({"dm_event": int(event) if event in ("0", "1") else -1} if "dm_event" in frame.columns else {}),
                    **({"split": split} if "split" in frame.columns else {})})
    table = pd.DataFrame(out)
    if "dm_months" in table and not problems:
        short = table[(table["dm"] == 0) & (table["dm_months"] < MIN_FOLLOW_UP_MONTHS)]
        if len(short):
            log.warning("%s: %d patients without DM were followed for less than %d months (first: %s, %.1f "
                        "months); their censoring may hide a later DM", path.name, len(short),
                        MIN_FOLLOW_UP_MONTHS, short["patient_id"].iloc[0], short["dm_months"].iloc[0])
    return table, problems


def load_clinical(path: str | Path) -> pd.DataFrame:
    """Read and validate a clinical table alone (for ``table1`` and ``tnm``); raises on any problem."""
    path = Path(path)
    clinical, problems = _clean_clinical(read_csv_strict(path, CLINICAL_COLUMNS), path)
    if problems:
        raise _problems_error(problems, path)
    return clinical


def _clean_rois(frame: pd.DataFrame, path: Path, known: set[str]) -> tuple[pd.DataFrame, list[Problem]]:
    problems, out = [], []
    for i, row in frame.iterrows():
        pid, where = row["patient_id"], f"{path.name} line {line_of(i)}"
        if pid not in known:
            problems.append(Problem("roi", pid, where, f"unknown patient {pid!r} (not in clinical.csv)"))
            continue
        if row["region"] not in REGIONS:
            problems.append(Problem("roi", pid, where, f"unknown region {row['region']!r} (expected npc or cmln)"))
            continue
        try:
            x0, y0, x1, y1 = (int(row[c]) for c in ("x0", "y0", "x1", "y1"))
        except ValueError:
            problems.append(Problem("roi", pid, where, "x0, y0, x1, y1 must be integer pixel indices"))
            continue
        if x1 <= x0 or y1 <= y0:
            problems.append(Problem("roi", pid, where, f"empty rectangle (x0={x0}, x1={x1}, y0={y0}, y1={y1}; "
                                                       "need x1 > x0 and y1 > y0, half-open)"))
            continue
        if x0 < 0 or y0 < 0:
            problems.append(Problem("roi", pid, where, f"rectangle starts outside the image (x0={x0}, y0={y0})"))
            continue
        out.append({"roi_line": line_of(i), "patient_id": pid, "sop_instance_uid": row["sop_instance_uid"],
                    "region": row["region"], "x0": x0, "y0": y0, "x1": x1, "y1": y1})
    return pd.DataFrame(out, columns=["roi_line", *ROI_COLUMNS]), problems


def _problems_error(problems: list[Problem], root) -> CohortError:
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return CohortError(f"{problems[0]}{more}",
                       hint=f"fix the cohort at {root}, or rerun with --exclude-invalid to exclude "
                            "invalid patients/ROIs and log them")


def load_cohort(root: str | Path, exclude_invalid: bool = False, progress: bool = True) -> Cohort:
    """Validate ``root`` (clinical.csv, rois.csv, dicom/<patient>/) and return a :class:`Cohort`.

    Parameters
    ----------
    root : the cohort folder
    exclude_invalid : drop patients whose files fail validation instead of stopping
    progress : show a progress bar while reading DICOM headers

    Returns
    -------
    :class:`Cohort`: identifier-free ``clinical`` and ``rois`` tables, per-patient series and ``notes``.
    """
    root = Path(root)
    if not root.is_dir():
        raise CohortError(f"{root}: cohort directory does not exist")
    clin_path, roi_path = root / "clinical.csv", root / "rois.csv"
    clinical, problems = _clean_clinical(read_csv_strict(clin_path, CLINICAL_COLUMNS), clin_path)
    rois, roi_problems = _clean_rois(read_csv_strict(roi_path, ROI_COLUMNS), roi_path,
                                     set(clinical["patient_id"]))
    problems += roi_problems
    bad_patients = {p.patient_id for p in problems if p.level == "patient"}
    chosen = series_choices(root / SERIES_CSV, set(clinical["patient_id"]))
    series: dict[str, Series] = {}
    for pid in progress_bar(clinical["patient_id"], desc="reading DICOM headers", unit="patient",
                            enabled=progress):
        if pid in bad_patients and exclude_invalid:
            continue
        folder = root / "dicom" / pid
        if not folder.is_dir():
            problems.append(Problem("patient", pid, f"dicom/{pid}", "no series folder (patient without a series)"))
            continue
        try:
            series[pid] = read_series(folder, load_pixels=False, series_uid=chosen.get(pid))
        except DicomError as exc:
            msg = str(exc).replace(str(root) + "/", "")
            problems.append(Problem("patient", pid, f"dicom/{pid}", msg))
    problems += _check_rois_against_series(rois, series)
    if problems and not exclude_invalid:
        raise _problems_error(problems, root)
    return _apply_exclusions(root, clinical, rois, series, problems)


def series_choices(path: Path, known: set[str]) -> dict[str, str]:
    """``series.csv`` (optional): the SeriesInstanceUID to use for patients whose folder holds
    several image series."""
    if not path.is_file():
        return {}
    frame = read_csv_strict(path, ["patient_id", "series_instance_uid"])
    out = {}
    for i, row in frame.iterrows():
        pid, uid = row["patient_id"].strip(), row["series_instance_uid"].strip()
        where = f"{path.name} line {line_of(i)}"
        if pid not in known:
            raise CohortError(f"{where}: unknown patient {pid!r} (not in clinical.csv)")
        if pid in out:
            raise CohortError(f"{where}: a second series for patient {pid}; name one series per patient")
        if not uid:
            raise CohortError(f"{where}: empty series_instance_uid for patient {pid}")
        out[pid] = uid
    return out


def _check_rois_against_series(rois: pd.DataFrame, series: dict[str, Series]) -> list[Problem]:
    problems = []
    index = {pid: s.slice_index() for pid, s in series.items()}
    slice_idx = []
    for i, row in rois.iterrows():
        pid = row["patient_id"]
        where = f"rois.csv line {row['roi_line']}"
        if pid not in series:
            slice_idx.append(-1)
            continue
        s = series[pid]
        k = index[pid].get(row["sop_instance_uid"])
        if k is None:
            problems.append(Problem("roi", pid, where, f"SOPInstanceUID {row['sop_instance_uid']} is not in the "
                                                       "patient's series"))
        elif row["x1"] > s.cols or row["y1"] > s.rows:
            problems.append(Problem("roi", pid, where, f"rectangle ({row['x0']}, {row['y0']}, {row['x1']}, "
                                                       f"{row['y1']}) extends outside the {s.cols}x{s.rows} image"))
        slice_idx.append(-1 if k is None else k)
    rois["slice_index"] = slice_idx
    return problems


def _apply_exclusions(root, clinical, rois, series, problems) -> Cohort:
    excl = pd.DataFrame([{"level": p.level, "patient_id": p.patient_id, "where": p.where, "reason": p.message}
                         for p in problems], columns=["level", "patient_id", "where", "reason"])
    flow = [("patients in clinical.csv", len(clinical))]
    bad = set(excl.loc[excl["level"] == "patient", "patient_id"])
    if bad:
        flow.append(("excluded: invalid clinical data or DICOM series", -len(bad)))
    dropped = excl.index[excl["level"] == "roi"]
    roi_keys = set(excl.loc[dropped, "where"])
    rois = rois[~rois["roi_line"].map(lambda n: f"rois.csv line {n}").isin(roi_keys)]
    rois = rois[rois["patient_id"].isin(set(clinical["patient_id"]) - bad)]
    clinical = clinical[~clinical["patient_id"].isin(bad)]
    no_roi = sorted(set(clinical["patient_id"]) - set(rois["patient_id"]))
    if no_roi:
        excl = pd.concat([excl, pd.DataFrame([{"level": "patient", "patient_id": p, "where": "rois.csv",
                                               "reason": "no ROI drawn for this patient"} for p in no_roi])],
                         ignore_index=True)
        flow.append(("excluded: no ROI drawn", -len(no_roi)))
        clinical = clinical[~clinical["patient_id"].isin(no_roi)]
    adapted = sorted(p for p, s in series.items() if s.notes and p in set(clinical["patient_id"]))
    if adapted:  # not an exclusion: files the reader skipped or adapted, listed in Cohort.notes
        flow.append(("kept, with files skipped or adapted by the reader (see notes)", len(adapted)))
    flow.append(("patients analysed", len(clinical)))
    keep = set(clinical["patient_id"])
    rois = rois[rois["patient_id"].isin(keep)].astype({"slice_index": int})
    rois = rois.sort_values(["patient_id", "slice_index", "region", "roi_line"]).reset_index(drop=True)
    series = {p: s for p, s in series.items() if p in keep}
    geo = pd.DataFrame([{"patient_id": p, "rows": s.rows, "cols": s.cols, "spacing_row_mm": s.pixel_spacing[0],
                         "spacing_col_mm": s.pixel_spacing[1]} for p, s in series.items()])
    if len(geo):
        rois = rois.merge(geo, on="patient_id", how="left")
    return Cohort(root, clinical.reset_index(drop=True), rois, series, excl, flow)
