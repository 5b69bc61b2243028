"""AJCC 7th edition stage grouping for nasopharyngeal carcinoma (M0 patients)."""
from __future__ import annotations

T_LEVELS = ("T1", "T2", "T3", "T4")
N_LEVELS = ("N0", "N1", "N2", "N3")
STAGE_LEVELS = ("I", "II", "III", "IV")


def overall_stage(t_stage: str, n_stage: str) -> str:
    """Overall stage (I–IV, IVA/IVB collapsed to IV) from T and N, AJCC 7th, M0."""
    if t_stage not in T_LEVELS:
        raise ValueError(f"unknown T stage {t_stage!r}; expected one of {', '.join(T_LEVELS)}")
    if n_stage not in N_LEVELS:
        raise ValueError(f"unknown N stage {n_stage!r}; expected one of {', '.join(N_LEVELS)}")
    t, n = T_LEVELS.index(t_stage) + 1, N_LEVELS.index(n_stage)
    if n == 3 or t == 4:
        return "IV"
    if t == 3 or n == 2:
        return "III"
    if t == 1 and n == 0:
        return "I"
    return "II"


def ordinal(value: str, levels: tuple[str, ...]) -> int:
    """1-based ordinal code of a stage label (T1→1, N0→1, I→1, ...)."""
    return levels.index(value) + 1
