"""The "Does it travel?" tables in the book's form: intervals in one cell, dataset and variant in one cell."""
from __future__ import annotations

import pandas as pd

from npc_lib.show.book_tables import ci_text, dataset_variant_cell


def _signed(value, low, high) -> str:
    if pd.isna(value):
        return "n/a"
    return f"{value:+.2f}<br>({low:+.2f} to {high:+.2f})" if pd.notna(low) else f"{value:+.2f}"


def centres_book_form(centres: pd.DataFrame) -> pd.DataFrame:
    """One column per centre: patients, DM rate, spacing, slice thickness, intensity, noise, stage mix.

    Parameters
    ----------
    centres : ``Travel.centres`` (one row per centre)

    Returns
    -------
    DataFrame: one row per property, one column per centre.
    """
    c = centres.set_index("centre")

    def fmt(x, spec):
        return "n/a" if x is None or pd.isna(x) else format(x, spec)
    rows = {"Patients": [fmt(x, ".0f") for x in c["patients"]],
            "DM": [f"{fmt(d, '.0f')} ({fmt(r, '.0%')})" for d, r in zip(c["dm"], c["dm_rate"])],
            "Pixel spacing (mm)": [fmt(x, ".2f") for x in c["pixel_spacing_mm"]],
            "Slice thickness (mm)": [fmt(x, "g") for x in c["slice_mm"]],
            "Matrix": [fmt(x, ".0f") for x in c["matrix"]],
            "Mean stored value": [fmt(x, ".0f") for x in c["mean_stored_intensity"]],
            "Noise SD in air (stored)": [fmt(x, ".1f") for x in c["air_sd_stored"]],
            "Stage I–II / III / IV": [f"{fmt((r['stage_I'] or 0) + (r['stage_II'] or 0), '.0%')} / "
                                      f"{fmt(r['stage_III'], '.0%')} / {fmt(r['stage_IV'], '.0%')}"
                                      for _, r in c.iterrows()]}
    out = pd.DataFrame(rows, index=c.index).T
    out.columns = [f"Centre {x}" for x in out.columns]  # the centres' names (A, B), as the text calls them
    return out.reset_index(names="")


def summary_book_form(summary: pd.DataFrame) -> pd.DataFrame:
    """Per dataset × variant and model group: internal AUC, external AUC, the change with its bootstrap CI and
    the change beyond the planted reference's.

    Parameters
    ----------
    summary : ``evaluation/external_summary.csv``

    Returns
    -------
    DataFrame for :func:`npc_lib.show.report.table`.
    """
    s = summary.copy()
    return pd.DataFrame({
        "Dataset, variant": dataset_variant_cell(s["dataset"], s["variant"]),
        "Model": s["what"],
        "AUC centre A (test)": s["auc_internal"].map(lambda x: f"{x:.2f}"),
        "AUC centre B": s["auc_external"].map(lambda x: f"{x:.2f}"),
        "Change": [_signed(*r) for r in s[["change", "change_low", "change_high"]].itertuples(index=False)],
        "Beyond the planted reference's change": [_signed(*r) for r in
                                                  s[["excess_change", "excess_low", "excess_high"]].itertuples(index=False)],
    })


def calibration_book_form(calibration: pd.DataFrame) -> pd.DataFrame:
    """The chosen models on the external centre: AUC, calibration and the training threshold's sens/spec.

    Parameters
    ----------
    calibration : ``Travel.calibration`` (external.csv rows of the chosen models)

    Returns
    -------
    DataFrame for :func:`npc_lib.show.report.table`.
    """
    c = calibration
    return pd.DataFrame({
        "Dataset, variant": dataset_variant_cell(c["dataset"], c["variant"]),
        "Model": c["backbone"],
        "AUC centre B": [ci_text(a, lo, hi, sep="<br>") for a, lo, hi in
                         c[["auc_external", "auc_external_low", "auc_external_high"]].itertuples(index=False)],
        "Calibration intercept": c["calibration_intercept_external"].map(lambda x: f"{x:+.2f}"),
        "Calibration slope": c["calibration_slope_external"].map(lambda x: f"{x:.2f}"),
        "Brier": c["brier_external"].map(lambda x: f"{x:.3f}"),
        "Sensitivity / specificity at the training threshold":
            [f"{a:.2f} / {b:.2f}" for a, b in zip(c["sensitivity_external"], c["specificity_external"])],
    })


def _gain(r) -> str:
    if pd.isna(r["gain_vs_none"]):
        return ""
    if pd.isna(r.get("gain_low")):
        return f"{r['gain_vs_none']:+.3f}"
    return f"{r['gain_vs_none']:+.3f}<br>({r['gain_low']:+.3f} to {r['gain_high']:+.3f})"


def harmonisation_book_form(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per draw × harmonisation choice: mean external AUC, mean gain against none with its bootstrap
    95 % CI, models improved, calibration, and the choice the external validation used.

    Parameters
    ----------
    summary : :func:`npc_lib.analysis.harmonisation.harmonisation_summary`

    Returns
    -------
    DataFrame, one row per draw × choice.
    """
    h = summary
    return pd.DataFrame({
        "Draw of centre B": h["draw"].map({"tuning": "tuning (the choice)", "evaluation": "evaluation (exploratory)"}),
        "Intensity": h["intensity"], "Spacing": h["resample"].map({True: "resampled", False: "as acquired"}),
        "Mean AUC centre B": h["auc_external"].map(lambda x: f"{x:.3f}"),
        "Mean gain against none (95 % CI)": [_gain(r) for _, r in h.iterrows()],
        "Models improved": [f"{int(w)} of {int(m)}" for w, m in zip(h["wins"], h["models"])],
        "Mean |calibration intercept|": h["abs_intercept"].map(lambda x: f"{x:.2f}"),
        "Used": h["chosen"].map({True: "yes", False: ""}),
    })


def harmonisation_cells_book_form(table: pd.DataFrame, draw: str = "tuning") -> pd.DataFrame:
    """Patient-level external AUC of the ablation's backbone per dataset × variant under each choice, on one draw.

    Parameters
    ----------
    table : ``evaluation/harmonisation.csv``
    draw : ``tuning`` or ``evaluation``

    Returns
    -------
    DataFrame, one row per dataset × variant, one column per choice.
    """
    t = table[(table["level"] == "patient") & (table["draw"] == draw) & (table["dataset"] != "all")].copy()
    t["choice"] = t["intensity"] + t["resample"].map({True: " + resampled", False: ""})
    wide = t.pivot_table(index=["dataset", "variant", "backbone", "auc_internal"], columns="choice",
                         values="auc_external", sort=False).reset_index()
    out = pd.DataFrame({"Dataset, variant": dataset_variant_cell(wide["dataset"], wide["variant"]),
                        "Backbone": wide["backbone"], "AUC centre A (test)": wide["auc_internal"].map(lambda x: f"{x:.2f}")})
    for col in [c for c in wide.columns if c not in ("dataset", "variant", "backbone", "auc_internal")]:
        out[col] = wide[col].map(lambda x: f"{x:.2f}")
    return out
