"""Orchestration of one profile on one cohort: split → image store → features → 32 runs."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from npc_lib.atomic import write_json
from npc_lib.data.cache import ImageStore, build_image_store
from npc_lib.data.cohort import Cohort, load_cohort
from npc_lib.config import config_hash
from npc_lib.progress import progress_bar
from npc_lib.data.rois import DATASETS, VARIANTS, Geometry, dataset_mask
from npc_lib.data.split import patient_split

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    cohort: Cohort | None
    split: pd.Series
    store: ImageStore
    runs_dir: Path


def runs_dir_for(profile: dict, runs_root: str | Path = "runs") -> Path:
    return Path(runs_root) / profile["name"]


def prepare(profile: dict, cohort_dir: str | Path, runs_dir: str | Path, progress: bool = True) -> Prepared:
    """Validate the cohort, fix the patient split and build (or reuse) the image store."""
    runs_dir = Path(runs_dir)
    cohort = load_cohort(cohort_dir, progress=progress)
    split = patient_split(cohort.clinical, seed=int(profile["split"]["seed"]),
                          test_fraction=float(profile["split"]["test_fraction"]))
    store = build_image_store(cohort, Geometry.from_profile(profile), runs_dir / "cache", progress=progress)
    split.rename_axis("patient_id").reset_index().to_csv(runs_dir / "split.csv", index=False)
    write_json(runs_dir / "cohort.json", {"cohort": str(Path(cohort_dir).resolve()), "store": store.fingerprint,
                                         "profile": profile["name"], "config_hash": config_hash(profile)})
    return Prepared(None, split, store, runs_dir)


def dataset_counts(store: ImageStore, split: pd.Series) -> pd.DataFrame:
    """Images and patients per dataset and split (the same for both variants)."""
    rows = []
    for name in DATASETS:
        view = store.index.loc[dataset_mask(store.index, name)].assign(split=lambda d: d.patient_id.map(split))
        for part in ("train", "test"):
            v = view[view.split == part]
            rows.append({"dataset": name, "split": part, "images": len(v), "patients": v.patient_id.nunique(),
                         "dm_patients": int(v.groupby("patient_id")["label"].first().sum()) if len(v) else 0})
    return pd.DataFrame(rows)


def grid(profile: dict, datasets=None, variants=None, backbones=None) -> list[tuple[str, str, str]]:
    """(dataset, variant, backbone) triples of a profile, optionally filtered."""
    out = []
    for b in backbones or profile["backbones"]:
        for v in variants or profile["variants"]:
            for d in datasets or profile["datasets"]:
                out.append((d, v, b))
    return out


def train_grid(profile: dict, prep: Prepared, runs: list[tuple[str, str, str]], progress: bool = True) -> pd.DataFrame:
    """Train every run (skipping finished ones with the same config hash); returns a summary."""
    from npc_lib.learn.train import extract_features, is_finished, run_config, slug, train_finetune, train_head
    models_dir = prep.runs_dir / "models"
    rows = []
    by_backbone: dict[str, list] = {}
    for d, v, b in runs:
        by_backbone.setdefault(b, []).append((d, v))
    bar = progress_bar(total=len(runs), desc="models", unit="model", enabled=progress)
    for b, items in by_backbone.items():
        pending = [(d, v) for d, v in items if not is_finished(
            models_dir / slug(d, v, b), config_hash(run_config(profile, d, v, b)), prep.store.fingerprint)]
        bar.update(len(items) - len(pending))
        rows += [{"dataset": d, "variant": v, "backbone": b, "status": "reused"}
                 for d, v in items if (d, v) not in pending]
        if not pending:
            continue
        feats = None
        if profile["train"]["mode"] == "head":
            t0 = time.perf_counter()
            feats = extract_features(prep.store, b, profile, prep.runs_dir / "cache", progress=False)
            log.info("%s features in %.1f s", b, time.perf_counter() - t0)
        for d, v in pending:
            out = models_dir / slug(d, v, b)
            if feats is not None:
                meta = train_head(prep.store, feats[v], d, v, profile, prep.split, out)
            else:
                meta = train_finetune(prep.store, d, v, b, profile, prep.split, out, progress=progress)
            rows.append({"dataset": d, "variant": v, "backbone": b, "status": "trained", "wall_s": meta["wall_s"]})
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def summarise_runs(models_dir: str | Path) -> pd.DataFrame:
    """Test AUC and accuracy (threshold 0.5) per finished run, at image and patient level.

    Patient level: the mean of a patient's image probabilities. The full evaluation (CIs,
    DeLong, calibration) lives in the evaluation module; this is the quick look after training.
    """
    import json

    from sklearn.metrics import accuracy_score, roc_auc_score
    rows = []
    for d in sorted(Path(models_dir).iterdir()):
        if not (d / "run.json").is_file():
            continue
        meta = json.loads((d / "run.json").read_text())
        pred = pd.read_parquet(d / "predictions.parquet")
        test = pred[pred["split"] == "test"]
        pat = test.groupby("patient_id").agg(label=("label", "first"), probability=("probability", "mean"))
        row = {"dataset": meta["config"]["dataset"], "variant": meta["config"]["variant"],
               "backbone": meta["config"]["backbone"], "test_images": len(test), "test_patients": len(pat)}
        ok = test["label"].nunique() == 2
        row["auc_image"] = roc_auc_score(test["label"], test["probability"]) if ok else float("nan")
        row["acc_image"] = accuracy_score(test["label"], test["probability"] >= 0.5)
        row["auc_patient"] = roc_auc_score(pat["label"], pat["probability"]) if pat["label"].nunique() == 2 \
            else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def ensure_cohort(profile: dict, cohort_dir: str | Path | None, runs_dir: str | Path,
                  progress: bool = True, jobs: int = 2) -> Path:
    """The cohort to use: ``cohort_dir`` if given (a user's own cohort), else the profile's
    synthetic cohort under ``runs_dir/cohort`` (generated once, reused while its report matches)."""
    import json
    if cohort_dir:
        path = Path(cohort_dir)
        if not path.is_dir():
            from npc_lib.errors import CohortError
            raise CohortError(f"cohort folder {path} does not exist")
        return path
    from npc_lib.synth import SynthConfig, generate_cohort
    path = Path(runs_dir) / "cohort"
    c = profile["cohort"]
    cfg = SynthConfig(patients=c["patients"], matrix=c["matrix"], slices=c["slices"],
                      scenario=c.get("scenario", "paper"), seed=c["seed"])
    report = path / "generation_report.json"
    if report.is_file():
        r = json.loads(report.read_text())
        if all(r.get("config", {}).get(k) == v for k, v in
               {"patients": cfg.patients, "matrix": cfg.matrix, "slices": cfg.slices, "scenario": cfg.scenario,
                "seed": cfg.seed}.items()):
            return path
    generate_cohort(path, cfg, jobs=jobs, overwrite=True, progress=progress)
    return path


def open_prepared(profile: dict, runs_dir: str | Path) -> Prepared:
    """Reopen what :func:`prepare` wrote (split, image store) without rebuilding or re-reading
    the DICOM headers (``cohort`` is left ``None``)."""
    import json

    from npc_lib.data.cache import open_image_store
    runs_dir = Path(runs_dir)
    ref = json.loads((runs_dir / "cohort.json").read_text())
    split = pd.read_csv(runs_dir / "split.csv").set_index("patient_id")["split"]
    store = open_image_store(runs_dir / "cache" / f"images-{ref['store']}", verify=False)
    return Prepared(None, split, store, runs_dir)


def train_one(profile: dict, runs_dir: str | Path, dataset: str, variant: str, backbone_name: str) -> dict:
    """Train (or reuse) one run of a prepared study; returns its run.json."""
    import json
    prep = open_prepared(profile, runs_dir)
    from npc_lib.learn.train import slug
    train_grid(profile, prep, [(dataset, variant, backbone_name)], progress=False)
    return json.loads((prep.runs_dir / "models" / slug(dataset, variant, backbone_name) / "run.json").read_text())


def features_job(name: str, store_root: str, profile: dict, cache_dir: str) -> str:
    """One backbone's cached features, computed on a worker (the runner then reads the cache)."""
    from npc_lib.data.cache import open_image_store
    from npc_lib.errors import NpcError
    from npc_lib.executors import shared_paths_problem
    from npc_lib.learn.train import extract_features
    problem = shared_paths_problem([store_root, cache_dir])
    if problem:
        raise NpcError(problem)
    extract_features(open_image_store(store_root, verify=False), name, profile, Path(cache_dir), progress=False)
    return name


def features_on_workers(executor, profile: dict, prep: Prepared) -> None:
    """Compute every backbone's features as parallel jobs on the executor's workers; a job that
    fails there is simply recomputed in this process afterwards (the feature cache decides)."""
    t0 = time.perf_counter()
    store_root = str(Path(prep.store.root).resolve())
    cache = str((Path(prep.runs_dir) / "cache").resolve())
    for name, _, error in executor.run(features_job, list(profile["backbones"]), store_root, profile, cache):
        if error:
            log.warning("%s features on the cluster failed (%s); computing them here", name, error)
    log.info("backbone features on %d worker(s) in %.1f s", executor.info.workers, time.perf_counter() - t0)
