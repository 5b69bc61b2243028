"""Where things are: the project root, the runs under it, and every path inside a run.

Notebooks resolve every relative path against the project root — the folder holding
``_config.yml`` and ``notebooks/`` — whatever the kernel's working directory (JupyterLab starts
kernels in ``notebooks/``, papermill in the project root), so nothing is ever written under
``notebooks/``.
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

RUNS = "runs"
RUN_SUMMARY = "run_summary.json"


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) that holds
    ``_config.yml`` and ``notebooks/``; ``start`` itself when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return here


def resolve(path: str | Path, root: Path) -> Path:
    """``path`` as given when absolute, else under ``root``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def finished_runs(root: Path) -> list[tuple[float, str, Path]]:
    """(finish time, profile, runs folder) of every run under ``root/runs`` whose main job
    finished without failed notebooks, newest first."""
    out = []
    for summary in (root / RUNS).glob(f"*/{RUN_SUMMARY}"):
        try:
            s = json.loads(summary.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not s.get("failed") and s.get("profile"):
            out.append((summary.stat().st_mtime, s["profile"], summary.parent))
    return sorted(out, key=lambda r: r[0], reverse=True)


def default_run(root: Path) -> tuple[str, Path, str]:
    """The profile and runs folder a notebook opens on when its parameters leave them empty:
    the newest finished run, else the smoke profile. Returns ``(profile, runs_dir, message)``."""
    runs = finished_runs(root)
    if runs:
        _, profile, folder = runs[0]
        return profile, folder, f"Opened on the newest finished run: {folder.relative_to(root)} ({profile} profile)."
    return "smoke", root / RUNS / "smoke", ("No finished run found under runs/: using the smoke profile "
                                            "(its synthetic cohort is generated if missing, a few minutes).")





def shared_paths_problem(paths: Iterable[str | Path]) -> str:
    """Empty when this machine sees every path, else a sentence saying which one it does not."""
    for p in paths:
        if p and not Path(p).exists():
            return (f"worker {socket.gethostname()} cannot see {p}: Dask workers need the project folder and the "
                    "runs folder at the same paths as the runner (a shared file system)")
    return ""


def store_folder(cache: Path, fingerprint: str) -> Path:
    """An image store inside a cache folder."""
    return Path(cache) / f"images-{fingerprint}"


def pixel_features_file(cache: Path, fingerprint: str) -> Path:
    """The pixel reference's features of one image store's pixels inside a cache folder."""
    return Path(cache) / f"pixel-features-{fingerprint}.npz"


def features_folder(cache: Path, fingerprint: str) -> Path:
    """The backbone features of one image store inside a cache folder."""
    return Path(cache) / f"features-{fingerprint}"


def runs_for(profile_name: str, runs_root: str | Path = RUNS) -> Path:
    """A profile's default runs folder: ``runs/<profile>``."""
    return Path(runs_root) / profile_name


def slug(dataset: str, variant: str, backbone: str) -> str:
    """The folder name of one trained model: ``npc-cmln__intra-peritumour__resnet50``."""
    return f"{dataset.lower().replace(' ', '-')}__{variant}__{backbone}"


@dataclass(frozen=True)
class ModelRun:
    """The files of one trained model (``runs/<profile>/models/<slug>/``); ``meta`` is written
    last, so its presence marks a finished run."""

    root: Path

    @property
    def meta(self) -> Path:
        return self.root / "run.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.parquet"

    @property
    def head(self) -> Path:
        return self.root / "head.keras"

    @property
    def standardiser(self) -> Path:
        return self.root / "standardiser.npz"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def oof_scores(self) -> Path:
        return self.root / "oof_scores.parquet"

    @property
    def oof_stamp(self) -> Path:
        return self.root / "oof_scores.json"

    @property
    def finished(self) -> bool:
        return self.meta.is_file() and self.predictions.is_file()

    def read_meta(self) -> dict:
        return json.loads(self.meta.read_text())



def model_runs_in(models_dir: str | Path, backbones: Iterable[str] | None = None) -> list[ModelRun]:
    """Every model folder under ``models_dir`` holding a ``run.json``, sorted by name; only those of ``backbones``
    (told by the folder's name: no other run's file is opened) when given."""
    keep = None if backbones is None else set(backbones)
    return [run for run in map(ModelRun, sorted(Path(models_dir).iterdir() if Path(models_dir).is_dir() else []))
            if (keep is None or run.root.name.rsplit("__", 1)[-1] in keep) and run.meta.is_file()]

@dataclass(frozen=True)
class RunLayout:
    """Every path under a runs folder (``runs/<profile>/``), named here once.

    ::

        cohort/              the synthetic cohort (when no cohort folder is given)
        cohort.json          which cohort and image store the run used
        split.csv            patient -> train/test
        cache/images-<fp>/   image store;  cache/features-<fp>/<backbone>-<size>px-<weights>/
        models/<slug>/       one trained model (see ModelRun)
        evaluation/          tables (CSV/JSON) of the evaluation
        figures/             every figure the notebooks draw (PNG + SVG)
        gradcam/             Grad-CAM arrays and table
        ablation/models/     the pretraining ablation (EfficientNet-Lite0, random initialisation)
        finetune/<init>/models/  the fine-tuning ablation (EfficientNet-Lite0, every layer trained; imagenet, random)
        negative_control/    the null-scenario control, itself laid out like this folder
        centres/<name>/      the main job's synthetic second centre (a cohort folder)
        external/<name>/     an external cohort scored: cache/ (its image stores, features), evaluation/
        executed/            executed notebooks (train/ per dataset)
        stages/              one record per stage of the main job (digest, files written); timeline.json
        results/             the objects stages hand to their notebooks (pickles)
        book_build.log       the last book build's output
        run_summary.json     what the main job did
    """

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls, runs: "RunLayout | str | Path") -> "RunLayout":
        """``runs`` itself when it is a layout already, else the layout of that runs folder: the
        library's functions take either, and a caller that holds a layout hands it on."""
        return runs if isinstance(runs, RunLayout) else cls(Path(runs))

    # what the preparation writes
    @property
    def synthetic_cohort(self) -> Path:
        return self.root / "cohort"

    @property
    def cohort_ref(self) -> Path:
        return self.root / "cohort.json"

    weights_record = property(lambda self: self.root / "weights.json")  # each backbone's weights (stage weights)

    @property
    def split(self) -> Path:
        return self.root / "split.csv"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def image_store(self, fingerprint: str) -> Path:
        return store_folder(self.cache, fingerprint)

    def features(self, fingerprint: str) -> Path:
        return features_folder(self.cache, fingerprint)

    def read_cohort_ref(self) -> dict:
        """``cohort.json``: ``{"cohort": folder, "store": fingerprint, ...}``."""
        if not self.cohort_ref.is_file():
            raise FileNotFoundError(f"{self.cohort_ref} missing: prepare the study first (or pass the cohort folder)")
        return json.loads(self.cohort_ref.read_text())

    def read_split(self):
        """``split.csv`` as a Series patient_id -> ``train``/``test``."""
        import pandas as pd
        return pd.read_csv(self.split).set_index("patient_id")["split"]

    # models
    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, dataset: str, variant: str, backbone: str) -> ModelRun:
        return ModelRun(self.models / slug(dataset, variant, backbone))

    def model_runs(self) -> list[ModelRun]:
        """Every model folder holding a ``run.json``, sorted by name."""
        return model_runs_in(self.models)

    # results
    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    def table(self, name: str, suffix: str = ".csv") -> Path:
        """An evaluation table, e.g. ``table("metrics")`` -> ``evaluation/metrics.csv``."""
        return self.evaluation / f"{name}{suffix}"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def gradcam(self) -> Path:
        return self.root / "gradcam"

    @property
    def gradcam_examples(self) -> Path:
        """The Grad-CAM maps and images the explorer widget shows."""
        return self.gradcam / "cams.npz"

    @property
    def gradcam_table(self) -> Path:
        return self.root / "gradcam_table.csv"

    def finetune(self, init: str) -> "RunLayout":
        """The fine-tuning ablation's runs of one initialisation (``imagenet`` or ``random``): its ``models/``."""
        return RunLayout(self.root / "finetune" / init)

    @property
    def ablation(self) -> "RunLayout":
        """The pretraining ablation (EfficientNet-Lite0 from random initialisation): its ``models/``."""
        return RunLayout(self.root / "ablation")

    external_scores = property(lambda self: self.root / "external_scores.parquet")  # an external run: every score
    external_store_record = property(lambda self: self.root / "external_store.json")  # ... its store as models see it

    def external_run(self, name: str) -> "RunLayout":
        """Where an external cohort ``name`` is scored: its image stores, features and tables."""
        return RunLayout(self.root / "external" / name)

    def centre_cohort(self, centre: str) -> Path:
        """The main job's synthetic second centre ``centre`` (its cohort folder): the evaluation draw."""
        return self.root / "centres" / centre

    def tuning_cohort(self, centre: str) -> Path:
        """Another draw of the centre (other patients): what its harmonisation is chosen on."""
        return self.root / "centres" / f"{centre}-tuning"

    @property
    def negative_control(self) -> "RunLayout":
        return RunLayout(self.root / "negative_control")

    # the main job
    @property
    def executed(self) -> Path:
        return self.root / "executed"

    @property
    def pictures(self) -> Path:
        """The interactive views' picture files (``npc_lib.show.views.pictures``), copied into the book."""
        return self.root / "pictures"

    def executed_notebook(self, notebook: str, model: str | None = None) -> Path:
        """An executed notebook: ``executed/<notebook>.ipynb``, or ``executed/train/<model slug>.ipynb``
        for one model's training notebook."""
        return self.executed / "train" / f"{model}.ipynb" if model else self.executed / f"{notebook}.ipynb"

    @property
    def book_log(self) -> Path:
        return self.root / "book_build.log"

    @property
    def job_state(self) -> Path:
        return self.executed / ".state"

    @property
    def summary(self) -> Path:
        return self.root / RUN_SUMMARY

    @property
    def lock(self) -> Path:
        """Held by the one command writing this folder (``npc_lib.run_lock``)."""
        return self.root / "run.lock"

    screens = property(lambda self: self.root / "screens")

    # the stage graph
    @property
    def stages(self) -> Path:
        """One record per stage (its digest and the files it wrote): what a rerun may reuse."""
        return self.root / "stages"

    def stage_record(self, name: str) -> Path:
        return self.stages / f"{name.replace(':', '__').replace('/', '_').replace(' ', '-')}.json"

    @property
    def stage_timeline(self) -> Path:
        """This run's stages as they ran (name, status, start, seconds, CPU seconds): the status page's Gantt chart."""
        return self.stages / "timeline.json"

    def resplit_part(self, backbone: str, arm: str = "main") -> Path:
        """One backbone's share of the resplits (``arm``: main, or random for the pretraining ablation)."""
        return self.root / "results" / f"resplits-{arm}-{backbone}.parquet"

    def result(self, name: str) -> Path:
        """What a stage hands its notebook (a pickled result object): ``results/<name>.pkl``."""
        return self.root / "results" / f"{name}.pkl"
