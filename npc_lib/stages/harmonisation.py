"""Stage ``harmonisation``: which intensity map and spacing the external validation uses, chosen on the tuning draw.

Every choice (none, zscore, histogram: one monotone map per centre × region × variant, fitted on the tuning
draw's pixels) × (crops as acquired, resampled to the training spacing) is scored with the best backbone per
dataset (highest mean out-of-fold training AUC among ``external.ablation_backbones``) on the tuning draw; the
profile's ``auto`` takes the highest mean patient-level AUC there. On the evaluation draw, no harmonisation and the
choice made are scored too, as an exploratory check: those patients never enter the choice.
Reads: the models and their out-of-fold scores, the image store, both draws of the second centre; the profile's
``external`` block.
Writes: ``evaluation/harmonisation.csv`` (a ``draw`` column, each setting's gain over none with a paired bootstrap
95 % CI) and ``evaluation/harmonisation.json`` (the choice and how it was made); the stores and the ablation
backbones' features under ``external/<name>/cache``.
Serves: the "Does it travel?" chapter's harmonisation ablation.
"""
from __future__ import annotations

import time
from pathlib import Path

from npc_lib.analysis.evaluation import load_runs
from npc_lib.analysis.harmonisation import NONE, ablation_backbones, choose_harmonisation, harmonisation_table
from npc_lib.analysis.hybrid import training_oof
from npc_lib.atomic import write_csv, write_json
from npc_lib.data.cohort import load_cohort
from npc_lib.data.harmonise import INTENSITY_CHOICES, cut_external_store, fit_reference, harmonised_store
from npc_lib.data.prepared import open_prepared
from npc_lib.layout import RunLayout
from npc_lib.learn.external_scores import finished_runs, score_stores
from npc_lib.stage import Stage
from npc_lib.stages.context import RunContext

GAIN_BOOTSTRAP = 1000


def profile_choice(ext) -> tuple[str | None, bool | None]:
    """The profile's fixed (intensity, resample), None where it says ``auto``."""
    return (None if ext.harmonisation == "auto" else ext.harmonisation,
            None if ext.resample == "auto" else bool(ext.resample))


def ablate(ctx: RunContext) -> list:
    """Score every harmonisation choice on both draws; choose on the tuning draw."""
    t0 = time.perf_counter()
    ext, layout = ctx.profile.external, ctx.layout
    out = layout.external_run(ext.centre)
    candidates = candidate_backbones(ctx)
    runs = [(m, r) for m, r in finished_runs(layout, candidates) if m["config"]["backbone"] in candidates]
    oof, _ = training_oof(layout.root, [m for m, _ in runs])
    best = ablation_backbones([m for m, _ in runs], oof, candidates)
    keep = [(m, r) for m, r in runs if best.get(m["config"]["dataset"]) == m["config"]["backbone"]]
    prep = open_prepared(layout)
    reference = fit_reference(prep.store, prep.split.index[prep.split.eq("train")])  # training patients only
    draws = {"tuning": layout.tuning_cohort(ext.centre), "evaluation": layout.centre_cohort(ext.centre)}
    draws = {d: folder for d, folder in draws.items() if folder.is_dir()}
    cohorts = {d: load_cohort(folder, progress=False) for d, folder in draws.items()}
    fit_draw = "tuning" if "tuning" in draws else "evaluation"
    internal = _internal(layout, keep)
    fixed = profile_choice(ext)
    stores, cuts = {}, {}
    for resample in (False, True):
        cut = {d: cut_external_store(c, prep.store, prep.split, out.cache, resample) for d, c in cohorts.items()}
        centre = fit_reference(cut[fit_draw])  # the centre's map is fitted on the tuning draw's pixels
        cuts[resample] = (cut, centre)
        for intensity in INTENSITY_CHOICES:
            stores[(fit_draw, intensity, resample)] = harmonised_store(cut[fit_draw], intensity, centre, reference,
                                                                       out.cache)
    # every choice on the tuning draw (each ablation backbone built once for all of its stores), the choice ...
    scored = {fit_draw: {(i, r): p for (_, i, r), p in score_stores(keep, stores, out.cache).items()}}
    tuning = harmonisation_table(internal, scored, ("?", None), n_boot=GAIN_BOOTSTRAP)
    auto = choose_harmonisation(tuning, fit_draw)
    chosen = (fixed[0] if fixed[0] is not None else auto[0], fixed[1] if fixed[1] is not None else auto[1])
    if fit_draw == "tuning" and "evaluation" in draws:
        # ... then, on the evaluation draw, no harmonisation and the choice made: an exploratory check of the
        # choice on the patients the external validation reports on (they took no part in making it)
        shown = list(dict.fromkeys([NONE, chosen]))  # in this order (a set's order changes between processes)
        more = {("evaluation", i, r): harmonised_store(cuts[r][0]["evaluation"], i, cuts[r][1], reference, out.cache)
                for i, r in shown}
        stores.update(more)
        scored["evaluation"] = {(i, r): p for (_, i, r), p in score_stores(keep, more, out.cache).items()}
    table = harmonisation_table(internal, scored, chosen, n_boot=GAIN_BOOTSTRAP)
    how = ("the profile's setting" if None not in fixed else
           f"the highest mean patient-level AUC on the {fit_draw} draw ({len(cohorts[fit_draw].clinical)} patients)"
           if fixed == (None, None) else f"partly the profile's, partly the {fit_draw} draw's highest mean AUC")
    write_csv(layout.table("harmonisation"), table, float_format="%.6g")
    write_json(layout.table("harmonisation", ".json"), {
        "chosen": {"intensity": chosen[0], "resample": chosen[1]}, "how": how, "favoured_on_tuning": {
            "intensity": auto[0], "resample": auto[1]}, "draw_chosen_on": fit_draw,
        "ablation_backbones": best, "profile": {"harmonisation": ext.harmonisation, "resample": ext.resample},
        "stores": {f"{d}:{i}{'+resample' if r else ''}": s.fingerprint for (d, i, r), s in stores.items()},
        "seconds": round(time.perf_counter() - t0, 1)})
    return [layout.table("harmonisation"), layout.table("harmonisation", ".json")]


def candidate_backbones(ctx: RunContext) -> tuple[str, ...]:
    """The backbones the ablation may use (``external.ablation_backbones``, default every backbone)."""
    ext = ctx.profile.external
    return tuple(b for b in ctx.profile.backbones if b in (ext.ablation_backbones or ctx.profile.backbones))


def _internal(layout, keep) -> dict:
    names = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]) for m, _ in keep}
    return {k: p for m, p in load_runs(layout.models, {b for _, _, b in names})
            if (k := (m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"])) in names}


def run_harmonisation(runs_dir: RunLayout | str | Path) -> tuple[str, bool]:
    """The (intensity, resample) a run's main job chose for its external validation (``harmonisation.json``),
    or no harmonisation where it made no choice."""
    import json
    path = RunLayout.of(runs_dir).table("harmonisation", ".json")
    if not path.is_file():
        return "none", False
    chosen = json.loads(path.read_text())["chosen"]
    return chosen["intensity"], bool(chosen["resample"])


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    ext = ctx.profile.external
    if not ctx.synthetic or ext is None:
        return []
    mine = {f"{kind}:{b}" for b in candidate_backbones(ctx) for kind in ("models", "oof")}
    needs = ("store", *sorted(k for k in known if k.startswith(f"centre:{ext.centre}")),
             *sorted(k for k in known if k in mine))
    return [Stage("harmonisation", ablate, needs=needs, reads=("external", "backbones"), heavy=True,
                  serves="Does it travel? the harmonisation, chosen on the tuning draw")]
