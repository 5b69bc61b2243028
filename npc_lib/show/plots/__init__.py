"""Every figure of the project as a function that returns a matplotlib figure (``save`` writes PNG + SVG).

A notebook cell draws a figure with one call here on what :mod:`npc_lib.analysis` returned, and
the book glues that cell's output: Fig. 3 ``fig3_roc``, Fig. 4 ``fig4_tnm_roc``, Figs 5 and 8
``fig_curves``, Figs 6 and 7 ``fig_gradcam_grid``, plus the cohort, ROI, calibration, decision-curve,
hybrid, DeLong, pretraining-ablation (one split and across resplits), resplit and Kaplan–Meier figures.
"""
from npc_lib.show.plots.base import (BACKBONE_COLOURS, DATASET_ORDER, REFERENCE_STYLES, THEME, VARIANT_ORDER,
                                     roc_frame, roc_of_run, save, use_theme)
from npc_lib.show.plots.beyond import fig_km, fig_pretraining_resplits, fig_resplits
from npc_lib.show.plots.cohort import fig_cohort
from npc_lib.show.plots.images import fig_gradcam_grid, fig_roi_examples, overlay
from npc_lib.show.plots.travel import fig_centres, fig_internal_external
from npc_lib.show.plots.results import (fig3_roc, fig4_tnm_roc, fig_calibration, fig_curves, fig_dataset_histories,
                                        fig_decision_curve, fig_delong_matrix, fig_history, fig_hybrid_roc, fig_pretraining)

__all__ = ["BACKBONE_COLOURS", "DATASET_ORDER", "REFERENCE_STYLES", "THEME", "VARIANT_ORDER", "fig3_roc",
           "fig4_tnm_roc", "fig_calibration", "fig_centres", "fig_internal_external", "fig_cohort", "fig_curves", "fig_dataset_histories", "fig_decision_curve", "fig_delong_matrix",
           "fig_gradcam_grid", "fig_history", "fig_hybrid_roc", "fig_km", "fig_pretraining", "fig_pretraining_resplits", "fig_resplits", "fig_roi_examples", "overlay", "roc_frame",
           "roc_of_run", "save", "use_theme"]
