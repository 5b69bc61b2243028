"""The paper's published Table 1 and Table 2 (Hua et al. 2023, DOI 10.2174/1386207325666220919091210)."""
from __future__ import annotations

from importlib import resources

import pandas as pd


def published_table1() -> pd.DataFrame:
    """Published Table 1: counts, age mean/SD and p-values by split and DM status."""
    with resources.files("npc_lib.data").joinpath("table1_published.csv").open() as f:
        return pd.read_csv(f)


def published_table2() -> pd.DataFrame:
    """Published Table 2: AUC and accuracy per dataset × backbone, intratumour and intra-peritumour."""
    with resources.files("npc_lib.data").joinpath("table2_published.csv").open() as f:
        return pd.read_csv(f)
