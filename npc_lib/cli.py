"""``npc-study`` command line: synth, validate, table1, tnm, datasets, train, evaluate, run, weights check.

The library's layers are imported inside the commands: they pull in pandas, scikit-learn and
TensorFlow, and ``npc-study --help`` should answer at once.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from npc_lib.atomic import WRITE_ERRNOS, write_csv, write_failure
from npc_lib.cli_parser import parser as _parser
from npc_lib.errors import NpcError
from npc_lib.progress import end_open_bars
from npc_lib.run_lock import run_lock
from npc_lib.layout import RunLayout, runs_for

def profile_overrides(a) -> dict | None:
    """The profile keys a command line changes: ``--weights`` and ``--test-fraction``."""
    out = {}
    if getattr(a, "weights", None):
        out["weights"] = a.weights
    if getattr(a, "test_fraction", None) is not None:
        out["split.test_fraction"] = a.test_fraction
    return out or None


def _run(a) -> int:
    from npc_lib.config import load_profile
    from npc_lib.executors import quiet_resource_tracker
    from npc_lib.runner import run_profile
    quiet_resource_tracker()  # before any process or lock that would start multiprocessing's tracker
    profile = load_profile(a.profile, profile_overrides(a))
    runs = a.runs or runs_for(profile.name)
    s = run_profile(profile, runs, a.cohort, n_jobs=a.jobs, scheduler=a.scheduler, book_root=a.book_root,
                    timeout=a.cell_timeout, build=not a.no_book, stop_after=a.stop_after)
    t, stages = s["seconds"], s["stages"]
    ran, reused = sum(x["status"] == "ran" for x in stages), sum(x["status"] == "reused" for x in stages)
    print(f"{len(stages)} stages: {ran} ran, {reused} reused, {len(s['failed'])} failed or not run; "
          f"{s['executed']} notebooks executed, {s['skipped']} reused (total {t['total']:.0f} s)")
    for f in s["failed"]:
        print(f"  FAILED {f['name']}: {f['error']}")
    if s["book"]:
        print(f"book: {s['book']}/index.html")
    if s.get("null_alarm"):
        print(f"NEGATIVE CONTROL ALARM: {len(s['null_alarm'])} check(s) outside their chance bounds on the null "
              f"cohort: {'; '.join(s['null_alarm'][:5])}{' ...' if len(s['null_alarm']) > 5 else ''}. "
              "Test labels may leak; see the results page." + ("" if a.allow_null_alarm else
                                                                " (--allow-null-alarm exits 0 anyway)"))
        if not a.allow_null_alarm and not s["failed"]:
            return 3
    return 1 if s["failed"] else 0


def _evaluate(a) -> int:
    t0 = time.perf_counter()
    a.runs_dir = a.runs_dir or a.run
    if a.runs_dir is None:
        raise NpcError("evaluate needs the run folder", hint="npc-study evaluate runs/demo (or --run runs/demo)")
    if a.external_cohort:
        from npc_lib.stages.external import evaluate_external_cohort
        from npc_lib.stages.harmonisation import run_harmonisation
        chosen = run_harmonisation(a.runs_dir)  # the main job's choice, so the command agrees with it by default
        harmonisation = (a.harmonise or chosen[0], chosen[1] if a.resample_spacing is None else a.resample_spacing)
        result = evaluate_external_cohort(a.runs_dir, a.external_cohort, progress=True, harmonisation=harmonisation,
                                          fit_cohort=a.fit_harmonisation_on)
        print(f"harmonisation: intensity {harmonisation[0]}, crops "
              f"{'resampled to the training spacing' if harmonisation[1] else 'at their own spacing'}")
        table, path = result["table"], result["path"]
        for w in result["warnings"]:
            print(f"warning: external cohort: {w}")
        pat = table[(table["level"] == "patient")]
        for r in pat.itertuples():
            print(f"{r.dataset:10s} {r.variant:16s} {r.backbone:20s} AUC internal {r.auc_internal:.3f}  "
                  f"external {r.auc_external:.3f} ({r.auc_external_low:.3f}–{r.auc_external_high:.3f})")
        print(f"wrote {path} ({len(pat)} models and references; {int(pat['external_patients'].max())} external "
              f"patients) in {time.perf_counter() - t0:.1f} s")
        return 0
    from npc_lib.analysis.study_evaluation import evaluate_study
    summary = evaluate_study(a.runs_dir, a.cohort, n_boot=a.bootstrap, hybrid_dataset=a.hybrid_dataset,
                             hybrid_variant=a.hybrid_variant, hybrid_folds=a.hybrid_folds).summary
    for b in summary["selected_on_training"]:
        print(f"chosen on training {b['dataset']:10s} {b['variant']:16s}: {b['backbone']:20s} "
              f"training AUC {b['train_oof_auc']:.3f} ({b['criterion']})")
    s = summary["tnm"]["stage_iv_vs_i_iii"]
    print(f"TNM stage IV vs I–III: AUC {s['auc']:.3f}, accuracy {100 * s['accuracy']:.2f} %")
    print(f"wrote the tables under {RunLayout(a.runs_dir).evaluation} in {time.perf_counter() - t0:.1f} s "
          "(the figures are drawn by notebooks/04_evaluate.ipynb)")
    return 0


def _prepare(a, check: bool = True):
    from npc_lib.config import load_profile
    from npc_lib.learn.study import prepare
    profile = load_profile(a.profile, profile_overrides(a))
    runs = a.runs or runs_for(profile.name)
    runs.mkdir(parents=True, exist_ok=True)
    return profile, prepare(profile, a.cohort, runs, check=check)


def _datasets(a) -> int:
    from npc_lib.learn.study import dataset_counts
    t0 = time.perf_counter()
    profile, prep = _prepare(a, check=False)  # the counts are the diagnosis: shown even when too small
    counts = dataset_counts(prep.store, prep.split)
    print(counts.to_string(index=False))
    n = prep.store.manifest["count"]
    print(f"image store {prep.store.root}: {n} ROIs x 2 variants at {prep.store.manifest['size']} px "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


def _train(a) -> int:
    from npc_lib.learn.study import grid, train_grid
    profile, prep = _prepare(a)
    for d in a.dataset or []:
        if d not in profile.datasets:
            raise NpcError(f"unknown dataset {d!r}; this profile has {', '.join(profile.datasets)}")
    for b in a.backbone or []:
        if b not in profile.backbones:
            raise NpcError(f"unknown backbone {b!r}; this profile has {', '.join(profile.backbones)}")
    runs = grid(profile, a.dataset, a.variant, a.backbone)
    summary = train_grid(profile, prep, runs)
    from npc_lib.analysis.evaluation import evaluate_runs
    keys = ["dataset", "variant", "backbone"]
    done = evaluate_runs(prep.layout.models, n_boot=0)[keys + ["test_images", "test_patients", "auc", "accuracy",
                                                             "patient_auc"]]
    table = summary[keys + ["status"]].merge(done, on=keys, how="left")
    print(table.round(3).to_string(index=False))
    print(f"models in {prep.layout.models}")
    return 0


def _synth(a) -> int:
    from npc_lib.synth import SynthConfig, generate_cohort
    t0 = time.perf_counter()
    cfg = SynthConfig.for_centre(a.centre, patients=a.patients, matrix=a.matrix, slices=a.slices,
                                 scenario=a.scenario, seed=a.seed)
    report = generate_cohort(a.out, cfg, jobs=a.jobs, overwrite=a.overwrite)
    m = report["measured"]
    print(f"wrote {report['patients']} patients of centre {a.centre} ({report['dm']} DM, prevalence "
          f"{report['prevalence']:.3f}) to {a.out} in {time.perf_counter() - t0:.1f} s")
    print(f"centre {a.centre}: pixel spacing {m['pixel_spacing_mm']} mm, slices {m['slice_mm']} mm, mean stored "
          f"intensity {m['mean_stored_intensity']:.0f}, noise SD in air {m['air_sd_stored']:.1f}")
    print("planted-risk AUCs (all patients, latent features): "
          + ", ".join(f"{k} {v:.3f}" for k, v in report["planted_risk_auc"].items()))
    rim = report["peritumoural_rim"]
    print("planted rim pixels inside the drawn / the 3 mm-grown rectangles: " + ", ".join(
        f"{r} {rim[r]['share_inside_drawn']:.1%} / {rim[r]['share_inside_grown']:.1%}"
        for r in ("npc", "cmln") if rim.get(r, {}).get("pixels")))
    return 0


def _validate(a) -> int:
    from npc_lib.data.cohort import load_cohort
    cohort = load_cohort(a.cohort, exclude_invalid=a.exclude_invalid)
    s = cohort.summary()
    notes = cohort.notes
    if a.json:
        s["exclusions"] = cohort.exclusions.to_dict("records")
        s["notes"] = notes.to_dict("records")
        print(json.dumps(s, indent=2))
        return 0
    print(f"cohort {a.cohort}: OK")
    print(f"  patients {s['patients']} (DM {s['dm']}, no DM {s['no_dm']}), slices {s['slices']}, "
          f"matrix {', '.join(s['matrix'])}, pixel spacing {s['pixel_spacing_mm']} mm, "
          f"slice spacing {s['slice_spacing_mm']} mm")
    print(f"  ROIs: npc {s['rois']['npc']} ({s['patients_with_roi']['npc']} patients), "
          f"cmln {s['rois']['cmln']} ({s['patients_with_roi']['cmln']} patients)")
    print(f"  exclusions: {s['excluded_patients']} patients, {s['dropped_rois']} ROI rows")
    for _, e in cohort.exclusions.iterrows():
        print(f"    - {e['where']} (patient {e['patient_id']}): {e['reason']}")
    if len(notes):
        print(f"  reader notes: {len(notes)} (files skipped or adapted; the analysis goes on)")
        for _, n in notes.iterrows():
            print(f"    - dicom/{n['patient_id']}: {n['note']}")
    print("  flow: " + " → ".join(f"{step}: {abs(n)}" for step, n in cohort.flow))
    return 0


def _clinical_and_split(path: Path, seed: int):
    from npc_lib.data.cohort import load_clinical
    from npc_lib.data.split import patient_split
    clinical = load_clinical(path)
    return clinical, patient_split(clinical, seed=seed)


def _table1(a) -> int:
    from npc_lib.analysis.stats import format_table1, table1
    clinical, split = _clinical_and_split(a.clinical_csv, a.seed)
    table = table1(clinical, split)
    shown = format_table1(table)
    print(shown.to_string(index=False))
    if a.out:
        write_csv(a.out, table, float_format="%.6g")
        print(f"wrote {a.out}")
    return 0


def _tnm(a) -> int:
    from npc_lib.analysis.baselines import tnm_baseline
    clinical, split = _clinical_and_split(a.clinical_csv, a.seed)
    res = tnm_baseline(clinical, split)
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    s = res["stage_iv_vs_i_iii"]
    print(f"TNM baseline on {res['patients']} test patients ({res['dm']} DM)")
    print(f"  stage IV vs I–III: AUC {s['auc']:.2f}, accuracy {100 * s['accuracy']:.2f} %, sensitivity "
          f"{s['sensitivity']:.2f}, specificity {s['specificity']:.2f}, F1 {s['f1']:.2f}")
    print(f"  ordinal stage: AUC {res['ordinal_stage']['auc']:.2f}")
    return 0


def _rois_from_masks(a) -> int:
    from npc_lib.data.mask_import import parse_labels, rois_from_masks
    t0 = time.perf_counter()
    table = rois_from_masks(a.cohort, a.masks, a.format, parse_labels(a.label), a.out)
    counts = table["region"].value_counts().to_dict()
    print(f"wrote {len(table)} rectangles ({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}) "
          f"for {table['patient_id'].nunique()} patients to {a.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _weights(a) -> int:
    from npc_lib.learn.weights_check import as_dict, check_backbone, format_check
    from npc_lib.vocabulary import BACKBONES
    checks = [check_backbone(b, a.weights, tuple(a.image)) for b in a.backbone or BACKBONES]
    print(json.dumps([as_dict(c) for c in checks], indent=2) if a.json else "\n".join(map(format_check, checks)))
    return 0 if all(c.ok for c in checks) else 1


def _runs_folder(a) -> Path | None:
    """The run folder a command writes (None for commands that write none)."""
    if a.command == "evaluate":
        folder = a.runs_dir or a.run
        return Path(folder) if folder is not None and Path(folder).is_dir() else None
    if a.command in ("run", "train", "datasets"):
        from npc_lib.config import load_profile
        return Path(a.runs or runs_for(load_profile(a.profile).name))
    return None


COMMANDS = {"synth": _synth, "validate": _validate, "table1": _table1, "tnm": _tnm, "datasets": _datasets,
            "train": _train, "evaluate": _evaluate, "run": _run, "rois-from-masks": _rois_from_masks,
            "weights": _weights}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    try:
        with run_lock(_runs_folder(args)):  # one command per run folder
            return COMMANDS[args.command](args)
    except NpcError as exc:
        if args.debug:
            raise
        end_open_bars()
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - no input may end in a bare traceback
        if args.debug:
            raise
        end_open_bars()
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:  # a full disk outside an atomic write
            failure = write_failure(exc.filename or "a file", exc)
            print(f"error: {failure}\nhint: {failure.hint}", file=sys.stderr)
            return 2
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: rerun with --debug for the full traceback, and report it if the input looks valid",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
