"""Forest plots of the book's long tables, each over the table its chapter prints (whose columns the tooltip
shows): internal against external AUC, the negative control's rows, pretraining across resplits, time to DM."""
from __future__ import annotations

import pandas as pd

from npc_lib.show.views.embed import View
from npc_lib.show.views.forest import Series, forest_view

INTERNAL, EXTERNAL, ESTIMATE = "#1f77b4", "#ff7f0e", "#2c7fb8"


def _labels(table: pd.DataFrame, *columns: str) -> list[str]:
    return [" · ".join(str(v) for v in row) for row in table[list(columns)].itertuples(index=False)]


def travel_forest(summary: pd.DataFrame) -> View:
    """``external_summary.csv``: each model's patient AUC on centre A's test patients and on centre B.

    Parameters
    ----------
    summary : ``evaluation/external_summary.csv``

    Returns
    -------
    :class:`~npc_lib.show.views.View` (glued by the chapter's notebook).
    """
    from npc_lib.show.travel_tables import summary_book_form
    s = summary.reset_index(drop=True)
    return forest_view(s, _labels(s, "dataset", "variant", "what"),
                       [Series("centre A (test patients)", "auc_internal", colour=INTERNAL),
                        Series("centre B", "auc_external", colour=EXTERNAL)],
                       summary_book_form(s), "patient-level AUC", "travel-forest",
                       "AUC on centre A's test patients and on centre B", reference=0.5)


def control_forest(table: pd.DataFrame) -> View:
    """``negative_control.csv``: each model's patient AUC on the null cohort inside its chance bounds (red:
    a row outside any of its bounds).

    Parameters
    ----------
    table : ``evaluation/negative_control.csv``

    Returns
    -------
    :class:`~npc_lib.show.views.View` (glued by the chapter's notebook).
    """
    from npc_lib.show.trust_tables import negative_control_book_form
    t = table.reset_index(drop=True)
    return forest_view(t, _labels(t, "dataset", "variant", "backbone"),
                       [Series("patient AUC (null cohort)", "patient_auc", "patient_auc_low", "patient_auc_high",
                               colour=ESTIMATE)],
                       negative_control_book_form(t), "patient-level AUC on the null cohort", "control-forest",
                       "Negative control: every model against chance", reference=0.5,
                       band=("patient_auc_bound_low", "patient_auc_bound_high"), flagged=~t["inside"].astype(bool))


def pretraining_forest(summary: pd.DataFrame) -> View:
    """The pretraining-across-resplits summary: the median paired AUC difference (ImageNet minus random
    weights) with the middle 95 % of splits.

    Parameters
    ----------
    summary : the pretraining-across-resplits summary (``pretraining_resplit_summary.csv``)

    Returns
    -------
    :class:`~npc_lib.show.views.View` (glued by the chapter's notebook).
    """
    from npc_lib.show.beyond_tables import pretraining_resplit_book_form
    s = summary.reset_index(drop=True)
    return forest_view(s, _labels(s, "dataset", "variant", "level"),
                       [Series("median difference (middle 95 % of splits)", "median_difference", "difference_2_5",
                               "difference_97_5", colour=ESTIMATE)],
                       pretraining_resplit_book_form(s), "AUC, ImageNet minus random weights", "pretraining-forest",
                       "What ImageNet pretraining buys, across resplits", reference=0.0)


def survival_forest(shown: pd.DataFrame) -> View:
    """The time-to-DM rows the chapter shows: Harrell's C on all test patients and among those with DM.

    Parameters
    ----------
    shown : the rows of ``evaluation/survival.csv`` the chapter shows

    Returns
    -------
    :class:`~npc_lib.show.views.View` (glued by the chapter's notebook).
    """
    from npc_lib.show.beyond_tables import survival_book_form
    s = shown.reset_index(drop=True)
    return forest_view(s, _labels(s, "dataset", "variant", "backbone"),
                       [Series("C-index, all test patients", "c_index", "c_low", "c_high", colour=INTERNAL),
                        Series("C-index, DM patients only", "c_index_events", "c_events_low", "c_events_high",
                               colour=EXTERNAL)],
                       survival_book_form(s), "Harrell's C", "survival-forest", "Time to DM: concordance",
                       reference=0.5)
