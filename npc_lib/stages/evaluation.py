"""Stage ``evaluation``: every table of the results page.

Reads: every model and its out-of-fold scores, the pixel features, the pretraining and fine-tuning ablations
and the negative control (where the run has them); profile key ``model_choice``.
Writes: ``evaluation/`` (metrics, Table 2 beside the published one, references, TNM, DeLong matrix, model
choice, calibration, hybrid model, ablations, design findings, summary) and ``results/evaluation.pkl`` (what
``04_evaluate`` shows).
Serves: the paper's Table 2 and Figs 3-5 and 8, and the book's results beyond the paper (patient level,
intervals, calibration, decision curves, hybrid model, references).
"""
from __future__ import annotations

from npc_lib.analysis.saved import EVALUATION_BOOTSTRAP, EVALUATION_FOLDS
from npc_lib.analysis.study_evaluation import evaluate_study
from npc_lib.stage import Stage
from npc_lib.results import save_result
from npc_lib.stages.context import RunContext

INPUTS = ("models:", "oof:", "pixel_features", "pretraining", "finetune", "negative_control")
TABLES = ("metrics.csv", "planted_reference.csv", "reference_model.csv", "table2.csv", "table2.html", "tnm.json",
          "tnm_comparison.csv", "delong_matrix.csv", "model_selection.csv", "calibration.csv", "hybrid.csv",
          "hybrid_comparisons.csv", "pretraining_ablation.csv", "pretraining_summary.csv", "design_findings.csv",
          "summary.json")


def evaluate(ctx: RunContext) -> list:
    """Score the study and keep what the results notebook shows."""
    ev = evaluate_study(ctx.layout, ctx.cohort, n_boot=EVALUATION_BOOTSTRAP, hybrid_folds=EVALUATION_FOLDS,
                        a_priori_backbone=ctx.profile.model_choice)
    return [ctx.layout.evaluation / name for name in TABLES if (ctx.layout.evaluation / name).is_file()] + \
        [save_result(ctx.layout.result("evaluation"), ev)]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    needs = sorted(k for k in known if k.startswith(INPUTS[:2]) or k in INPUTS[2:])
    return [Stage("evaluation", evaluate, needs=tuple(needs), reads=("model_choice",),
                  serves="Table 2, Figs 3-5 and 8; patient-level results beyond the paper")]
