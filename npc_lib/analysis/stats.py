"""Table 1: clinical characteristics by DM status in train and test, with the paper's tests.

Continuous (age): Kolmogorov–Smirnov (Lilliefors) normality, mean ± SD, Student t-test.
Binary (sex, treatment): Pearson χ² without continuity correction.
Ordinal (overall stage, T, N): Mann–Whitney U. The paper's methods name χ² for all
frequency data, but its published ordinal p-values are those of the rank-sum test
(Hua et al. 2023, DOI 10.2174/1386207325666220919091210).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.diagnostic import lilliefors

from npc_lib.data.staging import N_LEVELS, STAGE_LEVELS, T_LEVELS

GROUPS = ("train_dm", "train_no_dm", "test_dm", "test_no_dm")
P_COLUMNS = ("p_train_dm_vs_no", "p_test_dm_vs_no", "p_train_vs_test")
CATEGORICAL = [
    ("sex", "sex", [("male", "M"), ("female", "F")], "chi2"),
    ("stage", "overall_stage", [(s, s) for s in STAGE_LEVELS], "mannwhitney"),
    ("t_stage", "t_stage", [(t, t) for t in T_LEVELS], "mannwhitney"),
    ("n_stage", "n_stage", [(n, n) for n in N_LEVELS], "mannwhitney"),
    ("treatment", "treatment", [("CCR", "CCR"), ("IC+CCR", "IC+CCR")], "chi2"),
]
TEST_NAMES = {"ttest": "Student t-test", "chi2": "Pearson chi-square (no continuity correction)",
              "mannwhitney": "Mann-Whitney U"}


def _p(test: str, a: pd.Series, b: pd.Series, levels: list[str]) -> float:
    """p-value comparing two groups' values with the named test (NaN if undefined)."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if test == "ttest":
        return float(stats.ttest_ind(a.astype(float), b.astype(float)).pvalue)
    if test == "mannwhitney":
        ra = a.map({lv: i for i, lv in enumerate(levels)})
        rb = b.map({lv: i for i, lv in enumerate(levels)})
        if pd.concat([ra, rb]).nunique() < 2:
            return 1.0
        return float(stats.mannwhitneyu(ra, rb, alternative="two-sided").pvalue)
    table = np.array([[int((a == lv).sum()) for lv in levels], [int((b == lv).sum()) for lv in levels]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return float("nan")
    return float(stats.chi2_contingency(table, correction=False)[1])


def normality(values: pd.Series) -> float:
    """Lilliefors-corrected Kolmogorov–Smirnov p-value for normality (NaN if n < 5)."""
    v = values.astype(float).dropna()
    return float(lilliefors(v, dist="norm")[1]) if len(v) >= 5 else float("nan")


def table1(clinical: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """Table 1 rows as in the published table, plus the test used and the group sizes.

    ``split`` maps patient_id → "train"/"test". P-values sit on the first row of each variable.

    Parameters
    ----------
    clinical : the clinical table (``patient_id, age, sex, t_stage, n_stage, overall_stage, dm``)
    split : patient_id -> ``train``/``test``

    Returns
    -------
    DataFrame, one row per variable × level: counts (or mean and SD) per split × DM group, the
    test used and its p-value.
    """
    c = clinical.assign(split=clinical["patient_id"].map(split))
    if c["split"].isna().any():
        raise ValueError(f"patient {c.loc[c['split'].isna(), 'patient_id'].iloc[0]} has no split")
    groups = {
        "train_dm": c[(c.split == "train") & (c.dm == 1)], "train_no_dm": c[(c.split == "train") & (c.dm == 0)],
        "test_dm": c[(c.split == "test") & (c.dm == 1)], "test_no_dm": c[(c.split == "test") & (c.dm == 0)],
    }
    train, test = c[c.split == "train"], c[c.split == "test"]

    def pvals(col, test_name, levels=None):
        return {
            "p_train_dm_vs_no": _p(test_name, groups["train_dm"][col], groups["train_no_dm"][col], levels),
            "p_test_dm_vs_no": _p(test_name, groups["test_dm"][col], groups["test_no_dm"][col], levels),
            "p_train_vs_test": _p(test_name, train[col], test[col], levels),
        }

    rows = [{"variable": "patients", "level": "all", **{g: len(d) for g, d in groups.items()}}]
    rows.append({"variable": "age", "level": "mean", **{g: d["age"].astype(float).mean() for g, d in groups.items()},
                 **pvals("age", "ttest"), "test": TEST_NAMES["ttest"],
                 "normality_p": min(normality(d["age"]) for d in groups.values())})
    rows.append({"variable": "age", "level": "sd",
                 **{g: d["age"].astype(float).std(ddof=1) for g, d in groups.items()}})
    for name, col, levels, test_name in CATEGORICAL:
        values = [v for _, v in levels]
        p = pvals(col, test_name, values)
        for i, (label, value) in enumerate(levels):
            row = {"variable": name, "level": label, **{g: int((d[col] == value).sum()) for g, d in groups.items()}}
            if i == 0:
                row.update(p, test=TEST_NAMES[test_name])
            rows.append(row)
    out = pd.DataFrame(rows, columns=["variable", "level", *GROUPS, *P_COLUMNS, "test", "normality_p"])
    return out


def format_table1(table: pd.DataFrame) -> pd.DataFrame:
    """Rounded copy for display: means/SD to 2 decimals, p to 2 decimals as the paper prints
    (below 0.005 shown as ``<0.01`` rather than the paper's ``0.00``)."""
    t = table.copy()
    for g in GROUPS:
        t[g] = [f"{v:.2f}" if var == "age" else (f"{int(v)}" if pd.notna(v) else "")
                for var, v in zip(t["variable"], t[g])]
    for p in (*P_COLUMNS, "normality_p"):
        t[p] = [("<0.01" if v < 0.005 else f"{v:.2f}") if pd.notna(v) else "" for v in t[p]]
    return t.fillna("")


LABELS = {"sex": "Sex", "stage": "Overall stage (AJCC 7th)", "t_stage": "T stage", "n_stage": "N stage",
          "treatment": "Treatment"}
LEVEL_LABELS = {"male": "Male", "female": "Female"}


def _p_text(v, as_printed: bool = False) -> str:
    if v is None or pd.isna(v) or v == "":
        return ""
    v = float(v)
    return f"{v:.2f}" if as_printed or v >= 0.005 else "<0.01"


def paper_form(table: pd.DataFrame, as_printed: bool = False) -> pd.DataFrame:
    """Table 1 as the paper lays it out: n (%) and mean ± SD, grouped train / test columns.

    Parameters
    ----------
    table : the long form of :func:`table1` (or the published Table 1, which has the same
        columns): rows ``variable, level``, counts or age mean/SD per group, p-values on the first
        row of each variable.
    as_printed : show p-values with two decimals as the paper prints them (``0.00``) instead of
        ``<0.01`` for p < 0.005.

    Returns
    -------
    DataFrame with a ``Characteristic`` column and two-level columns: (``Training set`` |
    ``Test set``) × (DM, no DM, p) and (``Train vs test``, p).
    """
    t = table.set_index(["variable", "level"])
    n = {g: float(t.loc[("patients", "all"), g]) for g in GROUPS}
    heads = {"train_dm": ("Training set", f"DM (n={int(n['train_dm'])})"),
             "train_no_dm": ("Training set", f"No DM (n={int(n['train_no_dm'])})"),
             "p_train_dm_vs_no": ("Training set", "p"),
             "test_dm": ("Test set", f"DM (n={int(n['test_dm'])})"),
             "test_no_dm": ("Test set", f"No DM (n={int(n['test_no_dm'])})"),
             "p_test_dm_vs_no": ("Test set", "p"), "p_train_vs_test": ("Train vs test", "p")}
    rows = []

    def add(label, values):
        rows.append({("", "Characteristic"): label, **{heads[k]: v for k, v in values.items()}})

    age_m, age_sd = t.loc[("age", "mean")], t.loc[("age", "sd")]
    add("Age, years (mean ± SD)", {**{g: f"{float(age_m[g]):.2f} ± {float(age_sd[g]):.2f}" for g in GROUPS},
                                   **{p: _p_text(age_m.get(p), as_printed) for p in P_COLUMNS}})
    for name, _, levels, _ in CATEGORICAL:
        first = t.loc[(name, levels[0][0])]
        add(f"{LABELS[name]}, n (%)", {p: _p_text(first.get(p), as_printed) for p in P_COLUMNS})
        for label, _ in levels:
            r = t.loc[(name, label)]
            add(f"\u00a0\u00a0\u00a0{LEVEL_LABELS.get(label, label)}",
                {g: f"{int(float(r[g]))} ({100 * float(r[g]) / n[g]:.1f})" if n[g] else "0" for g in GROUPS})
    out = pd.DataFrame(rows)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    order = [("", "Characteristic")] + [heads[k] for k in ("train_dm", "train_no_dm", "p_train_dm_vs_no", "test_dm",
                                                           "test_no_dm", "p_test_dm_vs_no", "p_train_vs_test")]
    return out[order].fillna("")
