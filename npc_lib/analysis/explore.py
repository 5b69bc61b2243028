"""What the book's explorer views open on, and what their sentences quote (the planted effects they show)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def test_patient_menu(index: pd.DataFrame, split: pd.Series) -> tuple[list[str], dict]:
    """The test patients for the slices view, the first one a DM patient with lymph-node ROIs (what the view
    opens on), and each one's menu label (``P0012 · DM``).

    Parameters
    ----------
    index : the image store's index (patients, labels, regions)
    split : patient -> "train" / "test"

    Returns
    -------
    (patients, labels): the test patients in menu order; patient -> menu label.
    """
    labels = index.groupby("patient_id")["label"].first()
    test = [p for p in sorted(split[split == "test"].index) if p in labels.index]
    with_nodes = set(index.loc[index["region"] == "cmln", "patient_id"])
    first = next((p for p in test if labels[p] == 1 and p in with_nodes), test[0] if test else None)
    ordered = ([first] if first else []) + [p for p in test if p != first]
    return ordered, {p: f"{p} · {'DM' if labels[p] else 'no DM'}" for p in ordered}


def explorer_numbers(cohort_dir: str | Path, patients: list[str]) -> dict:
    """The planted effects the views let a reader see, on ``patients`` (a synthetic cohort's ``truth.csv``; every
    value "n/a" on a cohort without one): the mean necrotic fraction of the nodes in patients with and without
    DM (patients with nodes) and the generator's log-odds weights of the nodal and primary features (its
    ``generation_report.json``).

    Parameters
    ----------
    cohort_dir : the cohort folder
    patients : the patients to describe (the test patients)

    Returns
    -------
    dict: name -> text, for the book's explorer pages.
    """
    import json
    features = ("npc_heterogeneity", "npc_infiltration", "node_necrosis", "node_ene")
    keys = ("explore_necrosis_dm", "explore_necrosis_no_dm", "explore_nodes_patients",
            *(f"explore_weight_{k}" for k in features))
    out = {k: "n/a" for k in keys}
    truth_path, report_path = Path(cohort_dir) / "truth.csv", Path(cohort_dir) / "generation_report.json"
    if not (truth_path.is_file() and report_path.is_file()):
        return out
    weights = json.loads(report_path.read_text()).get("risk_model", {}).get("feature_weights", {})
    out.update({f"explore_weight_{k}": f"{weights[k]:g}" for k in features if k in weights})
    truth = pd.read_csv(truth_path).set_index("patient_id")
    t = truth.loc[truth.index.intersection(patients)]
    t = t[t["n_stage"].astype(str) != "N0"]
    dm = t["dm"] == 1
    if dm.any() and (~dm).any():
        out.update(explore_necrosis_dm=f"{t.loc[dm, 'node_necrosis'].mean():.2f}",
                   explore_necrosis_no_dm=f"{t.loc[~dm, 'node_necrosis'].mean():.2f}",
                   explore_nodes_patients=str(len(t)))
    return out
