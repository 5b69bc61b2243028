"""What the main job's stages saved for their notebooks, read back (:mod:`npc_lib.results`).

A notebook presents what a stage computed; opened on its own (JupyterLab, on a run whose stage did not save
it) it computes the same object here, with the stage's settings.
"""
from __future__ import annotations

from pathlib import Path

from npc_lib.layout import RunLayout
from npc_lib.results import load_result

EVALUATION_BOOTSTRAP = 2000   # the evaluation stage's patient bootstrap resamples
EVALUATION_FOLDS = 5          # ... and out-of-fold folds
CAM_IMAGES = 8                # the Grad-CAM stage's test images per model


def load_study_evaluation(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None,
                          a_priori_backbone: str | None = None):
    """The study's evaluation as the ``evaluation`` stage saved it.

    Parameters
    ----------
    runs_dir : the runs folder
    cohort_dir : the cohort folder (when it must be computed here)
    a_priori_backbone : the profile's ``model_choice`` (when it must be computed here)

    Returns
    -------
    :class:`npc_lib.analysis.study_evaluation.StudyEvaluation`
    """
    from npc_lib.analysis.study_evaluation import evaluate_study
    layout = RunLayout.of(runs_dir)
    return load_result(layout.result("evaluation"), lambda: evaluate_study(
        layout, cohort_dir, n_boot=EVALUATION_BOOTSTRAP, hybrid_folds=EVALUATION_FOLDS,
        a_priori_backbone=a_priori_backbone))


def load_cam_study(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None) -> dict:
    """The Grad-CAM study as the ``gradcam`` stage saved it.

    Parameters
    ----------
    runs_dir : the runs folder
    cohort_dir : the cohort folder (when it must be computed here)

    Returns
    -------
    dict: :func:`npc_lib.analysis.cam_study.cam_study`'s result.
    """
    from npc_lib.analysis.cam_study import cam_study
    layout = RunLayout.of(runs_dir)
    return load_result(layout.result("gradcam"), lambda: cam_study(layout.root, cohort_dir, n_images=CAM_IMAGES,
                                                                   progress=False))
