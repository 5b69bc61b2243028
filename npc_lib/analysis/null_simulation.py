"""Simulated null studies at a given size, for the negative control's own calibration: how often a clean run
alarms, and how often each kind of leak is caught.

A simulated study has the demo's shape: patients split into training and test (stratified), ``cells`` datasets ×
variants, ``backbones`` models per cell and a few images per patient. DM is independent of every score (the null).
The models of one cell share part of their score (they read the same images), and the two variants of a dataset
share part of theirs: the correlation the control's family checks must keep. Each model's threshold is chosen on
its training patients (Youden) and its training calibration in the large is measured there, as the pipeline does
with out-of-fold scores; the model chosen per cell is a random one (chosen without the test set). A ``leak``
plants one way test labels reach the result: ``test patients in training`` (scores that saw the test labels), ``threshold
chosen on test``, ``model chosen on test`` or ``calibration fitted on test``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.analysis.null_checks import NullRow, check_null, citl

LEAKS = ("test patients in training", "threshold chosen on test", "model chosen on test", "calibration fitted on test")


def _youden(pts: pd.DataFrame) -> float:
    from sklearn.metrics import roc_curve
    fpr, tpr, cuts = roc_curve(pts["label"], pts["score"])
    return float(cuts[np.argmax(tpr - fpr)])


def _patients(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("patient_id").agg(label=("label", "first"), score=("probability", "mean"))


def simulated_rows(seed: int, leak: str | None = None, patients: int = 441, dm: int = 114, test_fraction: float = 0.2,
                   datasets: int = 4, variants: int = 2, backbones: int = 5, images: int = 3,
                   shared: float = 0.5) -> list[NullRow]:
    """The rows of one simulated null study (:class:`~npc_lib.analysis.null_checks.NullRow` per model).

    Parameters
    ----------
    seed : the study's seed
    leak : None (clean) or one of ``LEAKS``
    patients, dm, test_fraction : the cohort (the demo's: 441, 114, 0.2 give 89 test patients, 23 with DM)
    datasets, variants, backbones, images : the grid and images per patient
    shared : the share of a model's score variance common to the models of its cell

    Returns
    -------
    list of :class:`NullRow`.
    """
    if leak is not None and leak not in LEAKS:
        raise ValueError(f"unknown leak {leak!r}; known: {', '.join(LEAKS)}")
    rng = np.random.default_rng(seed)
    pid = np.array([f"P{i:04d}" for i in range(patients)])
    y = np.zeros(patients, int)
    y[rng.permutation(patients)[:dm]] = 1
    test = np.zeros(patients, bool)
    for c in (0, 1):  # stratified, as the study's split
        members = np.flatnonzero(y == c)
        test[rng.choice(members, int(round(test_fraction * len(members))), replace=False)] = True
    rows = []
    for d in range(datasets):
        first = rng.normal(size=patients)
        for v in range(variants):
            common = first if v == 0 else 0.8 * first + 0.6 * rng.normal(size=patients)  # variants of a dataset
            aucs = {}
            for b in range(backbones):
                own = np.sqrt(shared) * common + np.sqrt(1 - shared) * rng.normal(size=patients)
                logit = np.log(0.45 / 0.55) + 0.6 * own
                if leak == "test patients in training":
                    logit = logit + 0.9 * (y - y.mean()) * test
                rep = np.repeat(np.arange(patients), images)
                frame = pd.DataFrame({"patient_id": pid[rep], "label": y[rep], "probability":
                                      1 / (1 + np.exp(-(logit[rep] + 0.3 * rng.normal(size=len(rep)))))})
                in_test = np.isin(frame["patient_id"], pid[test])
                tr, te = _patients(frame[~in_test]), frame[in_test]
                threshold = _youden(_patients(te)) if leak == "threshold chosen on test" else _youden(tr)
                if leak == "calibration fitted on test":
                    te = _recalibrated_on_test(te)
                c, se = citl(tr["label"], tr["score"])
                rows.append(NullRow((f"D{d}", f"V{v}", f"B{b}"), te, threshold, c, se))
                pts = _patients(te)
                aucs[b] = _auc(pts["label"].to_numpy(), pts["score"].to_numpy())
            chosen = max(aucs, key=aucs.get) if leak == "model chosen on test" else int(rng.integers(backbones))
            for r in rows[-backbones:]:
                r.selected = r.key[2] == f"B{chosen}"
    return rows


def _recalibrated_on_test(te: pd.DataFrame) -> pd.DataFrame:
    from sklearn.linear_model import LogisticRegression
    pts = _patients(te)
    lp = np.log(pts["score"] / (1 - pts["score"])).to_numpy()[:, None]
    fit = LogisticRegression(C=1e6).fit(lp, pts["label"])
    x = np.log(te["probability"] / (1 - te["probability"])).to_numpy()[:, None]
    return te.assign(probability=fit.predict_proba(x)[:, 1])


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import rankdata
    n1 = y.sum()
    return float((rankdata(s)[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1)))


def alarmed(rows: list[NullRow], n_perm: int = 1000, seed: int = 0, check=check_null) -> tuple[bool, set[str]]:
    """Does the control alarm on these rows, and through which checks (row statistics and family checks);
    ``check``: another version of :func:`~npc_lib.analysis.null_checks.check_null` to score them with."""
    table, family = check(rows, n_perm=n_perm, seed=seed)
    parts = {p for text in table.loc[~table["inside"], "outside"] for p in text.split(", ") if p}
    parts |= set(family.loc[~family["inside"], "check"])
    return bool(parts), parts


ALARM_RATE_FILE = "null_alarm_rate.csv"  # in npc_lib/resources: written by benchmarks/bench_null_control.py --write


def checks_digest() -> str:
    """What the measured false-alarm rate depends on: the code of the checks and of this simulation (not the
    module that computes this digest, which this function imports)."""
    from npc_lib import provenance
    files = provenance.module_closure({"npc_lib.analysis.null_checks", "npc_lib.analysis.null_simulation"})
    own = Path(provenance.__file__).resolve()
    return provenance.files_digest({f for f in files if f.resolve() != own})[:16]


def measured_alarm_rate() -> dict | None:
    """The false-alarm rate measured by simulation for the checks as they are now (``rate``, ``ci_low``,
    ``ci_high``, ``clean_draws``, ...), or None where it was measured for other code or not at all."""
    from importlib import resources
    path = resources.files("npc_lib.resources") / ALARM_RATE_FILE
    if not path.is_file():
        return None
    row = pd.read_csv(str(path)).iloc[0].to_dict()
    return row if str(row.get("checks_digest")) == checks_digest() else None

