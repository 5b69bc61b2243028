import numpy as np
import pandas as pd

from npc_lib.analysis.baselines import tnm_scores
from npc_lib.analysis.evaluation import compare_with_tnm, delong_matrix


def test_tnm_comparison_uses_the_same_patients():
    clinical = pd.DataFrame({"patient_id": [f"P{i}" for i in range(40)], "dm": [i % 2 for i in range(40)],
                             "overall_stage": ["IV" if i % 3 == 0 else "III" for i in range(40)]})
    split = pd.Series(["test"] * 30 + ["train"] * 10, index=clinical.patient_id)
    tnm = tnm_scores(clinical, split)
    assert len(tnm) == 30 and set(tnm.ordinal_stage) <= {3, 4}
    rng = np.random.default_rng(0)
    pred = pd.DataFrame({"patient_id": np.repeat(clinical.patient_id[:20], 2), "label": np.repeat(clinical.dm[:20], 2),
                         "split": "test", "probability": rng.random(40)})
    runs = {("CMLN", "intratumour", "resnet50"): pred, ("NPC", "intratumour", "resnet50"): pred.assign(
        probability=pred.probability[::-1].to_numpy())}
    cmp = compare_with_tnm(runs, tnm)
    assert (cmp["patients"] == 20).all() and cmp["p"].between(0, 1).all()
    # Holm over both comparisons: the smaller p doubled, the larger at least that, never below the raw p
    lo, hi = sorted(cmp["p"])
    assert sorted(cmp["p_holm"]) == [min(1, 2 * lo), min(1, max(2 * lo, hi))]
    mat = delong_matrix(runs)
    assert mat.shape == (2, 2) and mat.iloc[0, 0] == 1 and 0 <= mat.iloc[0, 1] <= 1
