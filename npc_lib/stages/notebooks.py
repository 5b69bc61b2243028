"""Stages ``notebook:<name>``: the parameterised notebooks executed with papermill, one page of the book each.

Reads: the outputs of the stages each notebook presents (listed in ``NEEDS``); its parameters (the profile, the
run folder, the cohort, and the dataset of a training page).
Writes: ``executed/<notebook>.ipynb`` (``executed/train/<dataset>.ipynb`` for the training pages), written to a
temporary file and renamed; a notebook that fails is kept with its error, for the book.
Serves: the book's executed-notebook pages; notebooks read stage outputs and compute nothing heavy.
A notebook's digest covers its bytes, its parameters and title, and the library code its cells import.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from npc_lib import __version__
from npc_lib.atomic import WRITE_ERRNOS, write_failure, write_text
from npc_lib.config import config_hash
from npc_lib.errors import NpcError
from npc_lib.children import TRIM_VARIABLE
from npc_lib.stage import Stage
from npc_lib.layout import shared_paths_problem
from npc_lib.provenance import notebook_code_digest
from npc_lib.stages.context import RunContext
from npc_lib.vocabulary import dataset_title

log = logging.getLogger(__name__)
NOTEBOOKS = ["01_cohort", "02_roi_datasets", "03_train", "04_evaluate", "05_gradcam", "06_explore", "07_beyond",
             "08_travel"]
# the stages each notebook presents (those of them that this run has)
# (each also needs ``PAGE_NEEDS``: every page opens the run's cohort record and shows the weights banner)
NEEDS = {"01_cohort": (), "02_roi_datasets": (), "03_train": ("models:*",),
         "04_evaluate": ("evaluation",), "05_gradcam": ("gradcam",), "06_explore": ("gradcam", "models:*", "evaluation"),
         "07_beyond": ("resplits", "clock"), "08_travel": ("external", "harmonisation", "evaluation")}
PAGE_NEEDS = ("weights", "store")
# the kernel's own log (start-up warnings, a "KeyboardInterrupt caught" line when it is shut down) is not for
# the console; what a notebook's code raises is recorded in the executed notebook and the run status instead
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


class NotebookFailed(NpcError):
    """A notebook's cell raised: the executed notebook (with the error) is kept for the book."""


def rel(path: Path, root: Path) -> str:
    """Paths handed to notebooks: relative to the project root when inside it (notebooks resolve them
    against the root), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path(root).resolve()))
    except ValueError:
        return str(resolved)


def parameters(ctx: RunContext, dataset: str | None = None) -> dict:
    """A notebook's papermill parameters in this run."""
    root = Path(ctx.book_root).resolve()
    out = {"profile": ctx.profile.source, "runs_dir": rel(ctx.layout.root, root),
           "cohort_dir": rel(ctx.cohort_dir, root) if ctx.cohort_dir is not None else "",
           "overrides": dict(ctx.profile.overrides)}
    return {**out, "dataset": dataset} if dataset is not None else out


def source(ctx: RunContext, notebook: str) -> Path:
    return Path(ctx.book_root).resolve() / "notebooks" / f"{notebook}.ipynb"


def output(ctx: RunContext, notebook: str, dataset: str | None = None) -> Path:
    return ctx.layout.executed_notebook(notebook, dataset.lower().replace(" ", "-") if dataset else None)


def title(dataset: str | None) -> str:
    return f"Train on {dataset_title(dataset)}" if dataset else ""


def notebook_digest(ctx: RunContext, notebook: str, dataset: str | None = None) -> str:
    """The notebook's bytes, parameters, title, the package version, the profile and the library code it reaches."""
    path = source(ctx, notebook)
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(parameters(ctx, dataset), sort_keys=True).encode())
    h.update(f"{title(dataset)}|{__version__}|{config_hash(ctx.profile)}|".encode())
    h.update(notebook_code_digest(path).encode())
    return h.hexdigest()[:20]


def execute(ctx: RunContext, notebook: str, dataset: str | None = None) -> list:
    """Run one notebook with papermill into a temporary file, then rename it into place; a failing cell
    leaves the notebook as far as it ran (with the error) and raises :class:`NotebookFailed`."""
    import papermill as pm
    logging.getLogger("papermill").setLevel(logging.WARNING)
    os.environ.pop(TRIM_VARIABLE, None)  # a kernel started by a Dask worker allocates like a plain process
    src, out = source(ctx, notebook), output(ctx, notebook, dataset)
    problem = shared_paths_problem([src, ctx.book_root, ctx.layout.root])
    if problem:
        raise NpcError(problem)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.ipynb")
    error = ""
    try:
        pm.execute_notebook(str(src), str(tmp), parameters=parameters(ctx, dataset), kernel_name=ctx.kernel,
                            execution_timeout=ctx.cell_timeout, progress_bar=False, log_output=False,
                            cwd=str(Path(ctx.book_root).resolve()), extra_arguments=KERNEL_ARGUMENTS)
    except OSError as exc:  # the runner's own writes: a full disk ends the run with one line
        tmp.unlink(missing_ok=True)
        if exc.errno in WRITE_ERRNOS:
            raise write_failure(out, exc) from None
        raise
    except Exception as exc:  # noqa: BLE001 - papermill raises PapermillExecutionError with the cell's traceback
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        error = (lines[-1] if lines else type(exc).__name__)[:500]
    try:
        if tmp.exists():
            finish_executed(tmp, title(dataset))
            os.replace(tmp, out)
        elif error:  # the kernel never ran: a notebook that says so, for the book
            error_notebook(out, notebook, error)
    except OSError as exc:  # a full disk while the executed notebook is written: one line, nothing half-written
        tmp.unlink(missing_ok=True)
        if exc.errno in WRITE_ERRNOS:
            raise write_failure(out, exc) from None
        raise
    if error:
        raise NotebookFailed(error)
    return [out]


def finish_executed(path: Path, heading: str = "") -> None:
    """Prepare an executed notebook for the book: papermill's injected-parameters cell is plumbing (hidden
    like the parameters cell it overrides), and ``heading`` (if given) replaces the first markdown heading."""
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    if heading:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
                rest = cell.source.lstrip().partition("\n")[2]
                cell.source = f"# {heading}\n{rest}"
                break
    nbformat.write(nb, str(path))


def error_notebook(path: Path, name: str, error: str) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}: failed\n\nThe notebook did not run: `{error}`")]
    write_text(path, nbformat.writes(nb))


def stage_name(notebook: str, dataset: str | None = None) -> str:
    return f"notebook:{notebook}" + (f":{dataset}" if dataset else "")


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    out = []
    for nb in NOTEBOOKS:
        needs = []
        for n in (*PAGE_NEEDS, *NEEDS[nb]):
            needs += sorted(k for k in known if k.startswith(n[:-1])) if n.endswith("*") else [n] if n in known else []
        for d in (ctx.profile.datasets if nb == "03_train" else (None,)):
            out.append(Stage(stage_name(nb, d), execute, (nb, d) if d else (nb,), needs=tuple(needs),
                             extra=notebook_digest, serves=f"the book's page {output(ctx, nb, d).stem}"))
    return out


