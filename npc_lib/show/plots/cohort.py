"""The Table 1 companion figure: age and stage by DM status in the training and test sets."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

def fig_cohort(clinical: pd.DataFrame, split: pd.Series):
    """Table 1 companion: age and overall stage by DM status, in the training and test sets.

    Parameters
    ----------
    clinical : the clinical table
    split : patient_id -> ``train``/``test``

    Returns
    -------
    matplotlib Figure.
    """
    c = clinical.assign(split=clinical["patient_id"].map(split).str.capitalize(),
                        outcome=np.where(clinical["dm"] == 1, "DM", "No DM"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    sns.boxplot(data=c, x="split", y="age", hue="outcome", order=["Train", "Test"], hue_order=["DM", "No DM"],
                palette=["#d95f02", "#7570b3"], ax=axes[0], width=0.6, fliersize=2)
    axes[0].set(xlabel="", ylabel="age (years)", title="Age")
    share = (c.groupby(["split", "outcome"])["overall_stage"].value_counts(normalize=True).rename("share")
             .reset_index())
    share["group"] = share["split"] + ", " + share["outcome"]
    order = [f"{s}, {o}" for s in ("Train", "Test") for o in ("DM", "No DM")]
    sns.barplot(data=share, x="group", y="share", hue="overall_stage", order=order,
                hue_order=["I", "II", "III", "IV"], palette="viridis", ax=axes[1])
    axes[1].set(xlabel="", ylabel="share of patients", title="Overall stage", ylim=(0, share["share"].max() * 1.3))
    axes[1].tick_params(axis="x", labelsize=8)
    axes[1].legend(title="stage", ncol=4, loc="upper center", fontsize=8, title_fontsize=8)
    axes[0].set_ylim(c["age"].min() - 3, c["age"].max() + 14)
    axes[0].legend(title="", ncol=2, loc="upper center")
    fig.tight_layout()
    return fig
