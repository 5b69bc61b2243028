"""Papermill batch runner: the profile's notebooks over its grid, resumable, then the book.

Stages: cohort (the synthetic one is generated if no ``--cohort`` is given) → validated split
and image store → (head mode) backbone features and head fits → notebooks with papermill →
Jupyter Book.
Every notebook execution is a :class:`Job`; its manifest hash covers the notebook's bytes, its
parameters, the package version and the input fingerprint. A job whose state file holds the
same hash and ``ok`` is skipped, so a killed runner restarts where it stopped. A failing job is
recorded (its executed notebook keeps the error) and the others go on; the command exits
non-zero at the end with a summary.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from npc_lib.config import Profile, config_hash
from npc_lib import __version__
from npc_lib.atomic import WRITE_ERRNOS, write_failure, write_json, write_text
from npc_lib.external_study import run_external_validation
from npc_lib.null_study import run_negative_control
from npc_lib.data.cache import sha256_file
from npc_lib.errors import NpcError, WriteFailed
from npc_lib.book_build import build_book
from npc_lib.executors import TRIM_VARIABLE, Executor
from npc_lib.layout import RunLayout, shared_paths_problem, slug
from npc_lib.learn.models import preflight_weights
from npc_lib.learn.study import features_on_workers, prepare, train_ablation, train_finetune_ablation, train_grid
from npc_lib.learn.study import grid as study_grid
from npc_lib.progress import progress_bar
from npc_lib.provenance import git_commit, notebook_code_digest, run_digest
from npc_lib.synth import ensure_cohort
from npc_lib.vocabulary import backbone_title

log = logging.getLogger(__name__)
NOTEBOOKS = ["01_cohort", "02_roi_datasets", "03_train", "04_evaluate", "05_gradcam", "06_explore", "07_beyond", "08_travel"]
# A notebook starts only after every notebook of a lower phase has ended: 04/05 read the trained runs, 06
# reads the Grad-CAM maps 05 writes, 07 the out-of-fold scores and 08 the model choice that 04 writes.
PHASES = {"01_cohort": 0, "02_roi_datasets": 0, "03_train": 0, "04_evaluate": 1, "05_gradcam": 1,
          "06_explore": 2, "07_beyond": 2, "08_travel": 2}


@dataclass
class Job:
    name: str
    notebook: str
    output: str
    parameters: dict
    phase: int = 0  # see PHASES
    title: str = ""  # replaces the executed notebook's first heading (one page per grid cell)
    cwd: str = ""    # the kernel's working directory (the project root); empty: the runner's
    profile_hash: str = ""  # the profile's content (a .yaml profile may change under the same name)

    def digest(self, fingerprint: str) -> str:
        """Notebook bytes, parameters, title, package version, profile content, input fingerprint and
        the source of every library module the notebook reaches (:mod:`npc_lib.provenance`)."""
        h = hashlib.sha256(Path(self.notebook).read_bytes())
        h.update(json.dumps(self.parameters, sort_keys=True).encode())
        h.update(f"{self.title}|{__version__}|{fingerprint}|{self.profile_hash}|".encode())
        h.update(notebook_code_digest(self.notebook).encode())
        return h.hexdigest()[:20]


@dataclass
class Outcome:
    name: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    error: str = ""
    output: str = ""
    extra: dict = field(default_factory=dict)


def sha256_of(path: str | Path) -> str | None:
    """The SHA-256 of an executed notebook (None when missing): a reused notebook must be the one written."""
    return sha256_file(Path(path)) if Path(path).is_file() else None


def _rel(path: Path, root: Path) -> str:
    """Paths handed to notebooks: relative to the project root when inside it (notebooks resolve
    them against the root), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path(root).resolve()))
    except ValueError:
        return str(resolved)


def plan(profile: Profile, runs: RunLayout | Path, cohort_dir: Path, notebooks_dir: Path, grid=None) -> list[Job]:
    """One job per notebook, and one ``03_train`` job per (dataset, variant, backbone)."""
    layout = RunLayout(RunLayout.of(runs).root.resolve())  # absolute: Dask workers may start elsewhere
    root = Path(notebooks_dir).resolve().parent
    base = {"profile": profile.source, "runs_dir": _rel(layout.root, root), "cohort_dir": _rel(cohort_dir, root),
            "overrides": dict(profile.overrides)}
    same = {"cwd": str(root), "profile_hash": config_hash(profile)}
    jobs = []
    for nb in NOTEBOOKS:
        src = Path(notebooks_dir).resolve() / f"{nb}.ipynb"
        if nb == "03_train":
            for d, v, b in grid or study_grid(profile):
                jobs.append(Job(f"03_train__{slug(d, v, b)}", str(src), str(layout.executed_notebook(nb, slug(d, v, b))),
                                {**base, "dataset": d, "variant": v, "backbone": b},
                                title=f"Train {d}, {v}, {backbone_title(b)}", **same))
        else:
            jobs.append(Job(nb, str(src), str(layout.executed_notebook(nb)), dict(base), phase=PHASES[nb], **same))
    return jobs


# the kernel's own log (start-up warnings such as "running over TCP without encryption", a
# "KeyboardInterrupt caught" line when a kernel is shut down) is not for the console; what a
# notebook's code raises is recorded in the executed notebook and the run status instead
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


def execute_job(job: Job, timeout: int, kernel: str | None = None) -> Outcome:
    """Run one notebook with papermill (output written to a temp file, then renamed)."""
    import papermill as pm
    logging.getLogger("papermill").setLevel(logging.WARNING)
    out = Path(job.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.ipynb")
    t0 = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(job.notebook, str(tmp), parameters=job.parameters, kernel_name=kernel,
                            execution_timeout=timeout, progress_bar=False, log_output=False, cwd=job.cwd or os.getcwd(),
                            extra_arguments=KERNEL_ARGUMENTS)
        if tmp.exists():
            _finish_executed(tmp, job.title)
            os.replace(tmp, out)
    except OSError as exc:  # the runner's own writes (the executed notebook): a full disk ends the run
        tmp.unlink(missing_ok=True)
        if exc.errno not in WRITE_ERRNOS:
            raise
        return Outcome(job.name, "failed", round(time.perf_counter() - t0, 2), str(write_failure(out, exc)), str(out),
                       extra={"write_failed": True})
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        error = (lines[-1] if lines else type(exc).__name__)[:500]
        if tmp.exists():  # the notebook as far as it ran, with the error, for the book
            _finish_executed(tmp, job.title)
            os.replace(tmp, out)
    if error and not out.exists():  # the kernel never ran: leave a notebook that says so, for the book
        _error_notebook(out, job, error)
    return Outcome(job.name, "failed" if error else "ok", round(time.perf_counter() - t0, 2), error, str(out))


def _finish_executed(path: Path, title: str = "") -> None:
    """Prepare an executed notebook for the book: papermill's injected-parameters cell is plumbing
    (hidden like the parameters cell it overrides), and ``title`` (if given) replaces the first
    markdown heading, which becomes the page title."""
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    if title:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
                rest = cell.source.lstrip().partition("\n")[2]
                cell.source = f"# {title}\n{rest}"
                break
    nbformat.write(nb, str(path))


def _error_notebook(path: Path, job: Job, error: str) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {job.name}: failed\n\nThe notebook did not run: `{error}`")]
    write_text(path, nbformat.writes(nb))


@contextmanager
def _terminate_as_interrupt():
    """While notebooks run, SIGTERM unwinds like Ctrl-C: papermill shuts its kernel down and the
    executor closes its workers (whose kernels exit when their parent goes), so no kernel outlives
    the runner. Only possible in the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_job_on_worker(job: Job, timeout: int, kernel: str | None = None) -> Outcome:
    """:func:`execute_job` after checking that this machine sees the job's files (Dask workers)."""
    os.environ.pop(TRIM_VARIABLE, None)  # the kernel this worker starts allocates like a plain process
    problem = shared_paths_problem([job.notebook, job.cwd, Path(job.output).parent.parent])
    if problem:
        return Outcome(job.name, "failed", 0.0, problem, job.output)
    return execute_job(job, timeout, kernel)


def run_jobs(jobs: list[Job], fingerprint: str, state_dir: Path, n_jobs: int = 1, timeout: int = 3600,
             progress: bool = True, kernel: str | None = None, scheduler: str | None = None,
             executor_info: dict | None = None, executor=None) -> list[Outcome]:
    """Execute the jobs not already finished with the same hash; phase by phase, in this process,
    on a LocalCluster of ``n_jobs`` workers, or on the Dask cluster at ``scheduler`` (or on an
    already open ``executor``); ``executor_info``, if given, receives what ran them."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    bar = progress_bar(total=len(jobs), desc="notebooks", unit="nb", enabled=progress)
    with _terminate_as_interrupt(), (nullcontext(executor) if executor else Executor(n_jobs, scheduler)) as ex:
        if executor_info is not None:
            executor_info.update(ex.info.as_dict())
        _run_phases(jobs, fingerprint, state_dir, timeout, kernel, ex, bar, outcomes)
    bar.close()
    order = {j.name: i for i, j in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: order[o.name])


def _run_phases(jobs, fingerprint, state_dir, timeout, kernel, ex, bar, outcomes) -> None:
    for phase in sorted({j.phase for j in jobs}):
        todo = []
        for j in (j for j in jobs if j.phase == phase):
            digest = j.digest(fingerprint)
            state = state_dir / f"{j.name}.json"
            if state.is_file() and Path(j.output).is_file():
                s = json.loads(state.read_text())
                if s.get("hash") == digest and s.get("status") == "ok":
                    if s.get("output_sha256") == sha256_of(j.output):
                        outcomes.append(Outcome(j.name, "skipped", s.get("seconds", 0.0), output=j.output))
                        bar.update(1)
                        continue
                    log.warning("%s: the executed notebook %s was changed or damaged since it ran; running it "
                                "again", j.name, j.output)
            todo.append((j, digest))

        def record(job, digest, o):
            done = o.status == "ok" and Path(job.output).is_file()
            write_json(state_dir / f"{job.name}.json", {**asdict(o), "hash": digest, "job": asdict(job),
                                                        "output_sha256": sha256_of(job.output) if done else None})
            outcomes.append(o)
            bar.update(1)
            if o.status == "failed":
                log.error("%s failed: %s", job.name, o.error)

        digests = {j.name: d for j, d in todo}
        for j, outcome, error in ex.run(run_job_on_worker, [j for j, _ in todo], timeout, kernel):
            record(j, digests[j.name], outcome or Outcome(j.name, "failed", 0.0, error, j.output))
        full = [o for o in outcomes if o.extra.get("write_failed")]
        if full:  # later phases would fail the same way: stop with the one line
            raise WriteFailed(full[0].error, hint="free some space and rerun the same command: the finished "
                                                  "notebooks are kept and the run resumes")


def prepare_study(profile: Profile, layout: RunLayout, cohort_dir: str | Path | None, progress: bool = True,
                  executor=None):
    """Cohort → split and image store → (head mode) cached features and the head grid.

    In head mode each backbone's features are computed once (on an external Dask cluster's workers,
    one job per backbone; else here, where TensorFlow already uses every core) and cached; the heads are then fitted here, in one
    process sharing those features (minutes); each training notebook presents its finished run
    instead of paying a kernel's TensorFlow start-up to fit it. In finetune mode the training
    notebooks train."""
    cohort = ensure_cohort(profile, cohort_dir, layout, progress=progress)
    prep = prepare(profile, cohort, layout, progress=progress)
    if profile.train.mode == "head":  # cheap in-process: the training notebooks then reuse the runs
        t0 = time.perf_counter()
        cells = study_grid(profile)
        if executor is not None and executor.info.kind == "dask":  # a real cluster of workers
            features_on_workers(executor, profile, prep)  # locally, TensorFlow already uses every core
        train_grid(profile, prep, cells, progress=progress)
        log.info("%d-model head grid ready in %.1f s", len(cells), time.perf_counter() - t0)
    train_ablation(profile, prep, progress=progress)  # what ImageNet pretraining buys: Lite0 from random weights
    train_finetune_ablation(profile, prep, progress=progress)  # what fine-tuning buys: the paper's recipe on Lite0
    if cohort_dir is None and profile.negative_control_backbones:
        # the synthetic cohort's leakage alarm: the same pipeline on the null scenario (see npc_lib.null_study)
        run_negative_control(profile, layout, prep, progress=progress)
    if cohort_dir is None and profile.external is not None:
        # does it travel? the models scored, unchanged, on a second synthetic centre (see npc_lib.external_study)
        run_external_validation(profile, layout, progress=progress)
    return cohort, prep


def run_stamp(profile: Profile, book_root: Path, job_digests: dict[str, str]) -> dict:
    """What the book's footer says produced it: package version, commit, profile, date and run digest."""
    return {"version": __version__, "commit": git_commit(book_root), "profile": profile.name,
            "profile_source": profile.source, "run_date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "run_digest": run_digest(job_digests)}


def run_profile(profile: Profile, runs_dir: Path, cohort_dir: str | Path | None = None, n_jobs: int = 1,
                book_root: Path = Path("."), timeout: int = 3600, build: bool = True,
                progress: bool = True, scheduler: str | None = None) -> dict:
    """The main job: prepare, execute every notebook of the grid, build the book."""
    t0 = time.perf_counter()
    book_root = Path(book_root)
    notebooks = book_root / "notebooks"
    if not (book_root / "_config.yml").is_file() or not notebooks.is_dir():
        raise NpcError(f"{book_root.resolve()} is not the project folder (no _config.yml or notebooks/)",
                       hint="run from the repository root or pass --book-root")
    layout = RunLayout.of(runs_dir)  # made once here and handed on
    layout.root.mkdir(parents=True, exist_ok=True)
    # papermill's kernel must be this interpreter (its "python3" kernel runs `python` from PATH)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    preflight_weights(profile)  # an offline machine that refuses random weights stops here, in seconds
    executor: dict = {}
    with _terminate_as_interrupt(), Executor(n_jobs, scheduler) as ex:
        cohort, prep = prepare_study(profile, layout, cohort_dir, progress, executor=ex)
        t_prep = time.perf_counter() - t0
        jobs = plan(profile, layout, cohort, notebooks)
        outcomes = run_jobs(jobs, prep.store.fingerprint, layout.job_state, n_jobs, timeout,
                            progress, executor_info=executor, executor=ex)
    t_nb = time.perf_counter() - t0 - t_prep
    stamp = run_stamp(profile, book_root, {j.name: j.digest(prep.store.fingerprint) for j in jobs})
    html = build_book(book_root, layout, outcomes, profile.name, stamp) if build else None
    summary = {"profile": profile.name, "runs_dir": str(layout.root), "book": str(html) if html else None,
               "stamp": stamp,
               "executed": sum(o.status == "ok" for o in outcomes),
               "skipped": sum(o.status == "skipped" for o in outcomes),
               "failed": [{"name": o.name, "error": o.error} for o in outcomes if o.status == "failed"],
               "executor": executor,
               "seconds": {"prepare": round(t_prep, 1), "notebooks": round(t_nb, 1),
                           "total": round(time.perf_counter() - t0, 1)}}
    summary["null_alarm"] = negative_control_alarms(layout)
    write_json(layout.summary, summary)
    return summary


def negative_control_alarms(layout: RunLayout) -> list[str]:
    """What the run's negative control found outside its chance bounds (empty: clean, or not run)."""
    import pandas as pd

    from npc_lib.analysis.negative_control import null_alarms
    table_path, family_path = layout.table("negative_control"), layout.table("negative_control_family")
    if not table_path.is_file():
        return []
    family = pd.read_csv(family_path) if family_path.is_file() else None
    table = pd.read_csv(table_path)
    table["outside"] = table["outside"].astype(object).where(table["outside"].notna(), "")  # empty: read as NaN
    return null_alarms(table, family)
