"""The cohort chapter's tables and numbers in one call: patient flow, Table 1 beside the published
one, and the TNM baseline on the test patients.

:func:`cohort_study` computes; the notebook ``01_cohort`` shows each result with one
:mod:`npc_lib.show` call. The patient split is the study's (``split.csv``, written by the
preparation); it is never recomputed here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from npc_lib.analysis.baselines import tnm_baseline
from npc_lib.analysis.published import published_facts, published_table1
from npc_lib.analysis.stats import paper_form, table1
from npc_lib.data.cohort import Cohort

BASELINE_METRICS = ("auc", "accuracy", "sensitivity", "specificity", "f1")


@dataclass
class CohortStudy:
    """What :func:`cohort_study` computed.

    Parameters
    ----------
    cohort : the validated cohort (invalid patients excluded and logged)
    flow : patient flow, one row per step (``step, patients``)
    table1 : Table 1 in the paper's layout, from this cohort and split
    table1_published : the published Table 1 in the same layout
    tnm : the TNM baseline dict (``baselines.tnm_baseline``)
    tnm_table : the two TNM baselines as rows of their metrics
    split : the study's patient split (patient_id -> train/test)
    numbers : every number the cohort chapter cites; ``(value, decimals)`` or a ready value
    """

    cohort: Cohort
    flow: pd.DataFrame
    table1: pd.DataFrame
    table1_published: pd.DataFrame
    tnm: dict
    tnm_table: pd.DataFrame
    split: pd.Series
    numbers: dict = field(default_factory=dict)


def cohort_study(cohort: Cohort, split: pd.Series) -> CohortStudy:
    """Flow, Table 1 (this cohort and the paper's) and the TNM baseline of a validated cohort.

    Parameters
    ----------
    cohort : the loaded cohort (``data.cohort.load_cohort``)
    split : the study's patient split (patient_id -> train/test, from ``split.csv``)

    Returns
    -------
    :class:`CohortStudy`
    """
    clinical = cohort.clinical[cohort.clinical["patient_id"].isin(split.index)]
    summary = cohort.summary()
    flow = pd.DataFrame(cohort.flow, columns=["step", "patients"]).assign(patients=lambda d: d.patients.abs())
    base = tnm_baseline(clinical, split)
    stage = base["stage_iv_vs_i_iii"]
    tnm_table = pd.DataFrame([{"baseline": "stage IV vs I–III", **{k: stage[k] for k in BASELINE_METRICS}},
                              {"baseline": "ordinal stage", "auc": base["ordinal_stage"]["auc"]}])
    paper = published_facts()
    numbers = {key: summary[key] for key in ("patients", "dm", "no_dm", "slices", "excluded_patients")}
    numbers.update(npc_rois=summary["rois"]["npc"], cmln_rois=summary["rois"]["cmln"],
                   n_train=int((split == "train").sum()), n_test=int((split == "test").sum()),
                   tnm_auc=(stage["auc"], 3), tnm_accuracy=(100 * stage["accuracy"], 2),
                   ordinal_auc=(base["ordinal_stage"]["auc"], 3),
                   paper_tnm_auc=(paper["tnm_auc"], 2), paper_tnm_accuracy=(paper["tnm_accuracy"], 2),
                   **{f"paper_{key}": paper[key] for key in ("patients", "dm", "train", "test")})
    return CohortStudy(cohort, flow, paper_form(table1(clinical, split)),
                       paper_form(published_table1(), as_printed=True), base, tnm_table.round(3), split, numbers)
