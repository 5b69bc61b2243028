"""Book forms of the tables behind the book's trust pages: the planted design, the findings built into
the generator beside what this run found, the weights each backbone ran with and the software licences."""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.provenance import is_gpl
from npc_lib.show.book_tables import dataset_variant_cell
from npc_lib.vocabulary import backbone_title


def _ci(value, low, high, signed: bool = True) -> str:
    if pd.isna(value):
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f.format(value) + (f" ({f.format(low)} to {f.format(high)})" if pd.notna(low) else "")


def design_book_form(design: pd.DataFrame) -> pd.DataFrame:
    """The planted risk model with the book's headers.

    Parameters
    ----------
    design : :func:`npc_lib.analysis.design.planted_design`

    Returns
    -------
    DataFrame with display columns, one row per component.
    """
    if not len(design):
        return pd.DataFrame({"": ["Not a synthetic cohort: nothing is planted."]})
    return design.rename(columns={"component": "Component", "weight": "Weight on the DM log-odds",
                                  "feature": "Feature drawn from", "region": "Region", "shown": "Where the images show it"})


def findings_book_form(findings: pd.DataFrame) -> pd.DataFrame:
    """Built into the generator vs found by this run: one row per finding and contrast; AUC differences
    (patient level) with 95 % bootstrap intervals, or the Table 1 gap with its χ² p.

    Parameters
    ----------
    findings : :func:`npc_lib.analysis.design.design_findings`

    Returns
    -------
    DataFrame with display columns.
    """
    rows = []
    for r in findings.itertuples():
        if pd.notna(r.p_value):  # the Table 1 row: a gap in percentage points and a goodness-of-fit p
            found, lite0, planted = f"{r.paper_backbones:.1f} points (χ² p {r.p_value:.2f})", "", ""
        else:
            found, lite0 = _ci(r.paper_backbones, r.paper_low, r.paper_high), _ci(r.lite0, r.lite0_low, r.lite0_high)
            planted = _ci(r.planted_reference, r.planted_low, r.planted_high)
        rows.append({"Paper's finding": r.finding, "Contrast": r.contrast,
                     "Built into the generator?": r.built_into_generator, "Planted reference": planted,
                     "This run: paper's four backbones": found, "EfficientNet-Lite0 (added)": lite0,
                     "Test patients (DM)": f"{int(r.patients)} ({int(r.dm_patients)})"})
    return pd.DataFrame(rows)


def weights_book_form(runs_meta: list[dict]) -> pd.DataFrame:
    """Per backbone, the weights its runs used and where they came from (``run.json``'s ``weights``).

    Parameters
    ----------
    runs_meta : the runs' ``run.json`` contents

    Returns
    -------
    DataFrame with display columns, one row per backbone.
    """
    rows, seen = [], set()
    for meta in runs_meta:
        b, w = meta["config"]["backbone"], meta.get("weights", {})
        if b in seen:
            continue
        seen.add(b)
        source = w.get("source") or ("Keras' ImageNet file" if w.get("used") == "imagenet" else "")
        rows.append({"Backbone": backbone_title(b), "Weights used": w.get("used", "n/a"), "Requested": w.get("requested", ""),
                     "Source": source, "Package": " ".join(x for x in (w.get("package"), w.get("version")) if x),
                     "File SHA-256 (start)": (w.get("sha256") or "")[:16]})
    return pd.DataFrame(rows)


def licences_book_form(licences: list[dict]) -> pd.DataFrame:
    """The dependencies' declared licences, GPL marked.

    Parameters
    ----------
    licences : :func:`npc_lib.provenance.dependency_licences`

    Returns
    -------
    DataFrame with display columns, one row per package.
    """
    return pd.DataFrame([{"Package": r["package"], "Version": r["version"], "Licence": r["licence"],
                          "GPL": "yes" if is_gpl(r["licence"]) else ""} for r in licences])


def licence_summary(licences: list[dict]) -> str:
    """One sentence: how many packages, and which (if any) declare only a GPL licence.

    Parameters
    ----------
    licences : :func:`npc_lib.provenance.dependency_licences`

    Returns
    -------
    str
    """
    gpl = [r["package"] for r in licences if is_gpl(r["licence"])]
    return (f"{len(licences)} packages; none declares a GPL licence." if not gpl else
            f"{len(licences)} packages; GPL-licensed: {', '.join(gpl)}.")


def _bounds(low, high, fmt: str = "{:.2f}") -> str:
    return "n/a" if pd.isna(low) or pd.isna(high) else f"{fmt.format(low)}–{fmt.format(high)}"


def _stat(value, low, high, fmt: str = "{:.2f}") -> str:
    """A value over its bounds on a second line of the cell (keeps the wide control table in the column)."""
    return "n/a" if pd.isna(value) else f"{fmt.format(value)}<br>[{_bounds(low, high, fmt)}]"


def negative_control_book_form(table: pd.DataFrame) -> pd.DataFrame:
    """The negative control per model for the book: each checked statistic with its chance bounds in
    brackets (image and patient AUC, accuracy and sensitivity + specificity at the threshold in use,
    calibration in the large on test minus on training), and which (if any) lie outside.

    Parameters
    ----------
    table : ``evaluation/negative_control.csv``

    Returns
    -------
    DataFrame with display columns, one row per dataset × variant × model.
    """
    def col(name):
        return table[name] if name in table else pd.Series(np.nan, index=table.index)

    out = pd.DataFrame({
        "Dataset, variant": dataset_variant_cell(table["dataset"], table["variant"]),
        "Model": [backbone_title(b) + (" (chosen)" if s is True else "") for b, s in zip(table["backbone"],
                                                                                     col("selected"))],
        "Image AUC [bounds]": [_stat(*v) for v in zip(table["auc"], col("auc_bound_low"), col("auc_bound_high"))],
        "Patient AUC [bounds]": [_stat(*v) for v in zip(table["patient_auc"], col("patient_auc_bound_low"),
                                                        col("patient_auc_bound_high"))],
        "Accuracy [bounds]": [_stat(*v) for v in zip(col("accuracy"), col("accuracy_bound_low"),
                                                     col("accuracy_bound_high"))],
        "Sens + spec [bounds]": [_stat(*v) for v in zip(col("sens_spec"), col("sens_spec_bound_low"),
                                                        col("sens_spec_bound_high"))],
        "Calibration test − train [bounds]": [_stat(*v) for v in zip(col("citl_difference"), col("citl_bound_low"),
                                                                      col("citl_bound_high"))]})
    out["Outside"] = [("NO: " + str(o)) if ok is False or (isinstance(ok, (bool, np.bool_)) and not ok) else ""
                      for ok, o in zip(table["inside"].astype(bool), col("outside").fillna(""))]
    return out


def negative_family_book_form(family: pd.DataFrame | None) -> pd.DataFrame:
    """The negative control's family checks for the book: statistic, bounds and verdict.

    Parameters
    ----------
    family : ``evaluation/negative_control_family.csv`` (:func:`npc_lib.analysis.null_checks.check_null`), or None

    Returns
    -------
    DataFrame with display columns, one row per check.
    """
    if family is None or not len(family):
        return pd.DataFrame({"": ["No family checks (the control did not run)."]})
    return pd.DataFrame({"Check": family["check"], "Statistic": [f"{v:.3g}" for v in family["statistic"]],
                         "Chance bounds": [_bounds(lo, hi, "{:.3g}") for lo, hi in zip(family["bound_low"],
                                                                                       family["bound_high"])],
                         "Inside": ["yes" if v else "NO" for v in family["inside"].astype(bool)]})
