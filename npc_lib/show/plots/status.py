"""The run-status page's figure: where the main job's time went, one bar per stage."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

STATUS_COLOURS = {"ran": "#1f78b4", "reused": "#b2df8a", "failed": "#e31a1c", "skipped": "#bdbdbd"}


def fig_stage_gantt(stages: pd.DataFrame, critical: list[str]):
    """A Gantt chart of the stages: one row per stage (in start order), a bar from its start to its end,
    coloured by status (ran, reused, failed, skipped); the critical path's bars outlined in black.

    Parameters
    ----------
    stages : ``name, status, started`` (seconds since the epoch), ``seconds``
    critical : the names on the critical path

    Returns
    -------
    matplotlib Figure.
    """
    s = stages.sort_values(["started", "name"], kind="stable").reset_index(drop=True)
    t0 = float(s["started"].min()) if len(s) else 0.0
    fig, ax = plt.subplots(figsize=(9.5, max(2.5, 0.2 * len(s) + 1.0)))
    for i, r in s.iterrows():
        on_path = r["name"] in critical
        ax.barh(i, max(float(r["seconds"]), 0.5), left=float(r["started"]) - t0, height=0.7,
                color=STATUS_COLOURS.get(r["status"], "#999999"), edgecolor="black" if on_path else "none",
                linewidth=1.2 if on_path else 0)
    ax.set_yticks(range(len(s)), s["name"], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATUS_COLOURS.values()]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black"))
    ax.legend(handles, [*STATUS_COLOURS, "critical path"], loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(
        len(s), 4) - 0.06), ncol=5, fontsize=7, frameon=False)
    ax.set_title("Stages of the main job")
    fig.tight_layout()
    return fig
