"""The package's folders are its layers, and every path in a run folder is named by one object."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from npc_lib.layout import ModelRun, RunLayout, slug, store_folder
from npc_lib.vocabulary import DATASETS, VARIANTS, variant_column

PACKAGE = Path(__file__).resolve().parents[1] / "npc_lib"
# a module may import only from its own layer or the layers to its right: the faces (command line, runner) schedule
# the stages; a stage (one module per question) calls the library below it
ORDER = ["faces", "stages", "show", "analysis", "synth", "learn", "data", "base"]
FACES = {"cli", "cli_parser", "runner", "executors", "notebook", "__main__"}
FOLDERS = {"data", "learn", "analysis", "show", "synth", "stages"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in FOLDERS:
        return parts[1]
    return "faces" if len(parts) > 1 and parts[1] in FACES else "base"


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("npc_lib"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names if node.module in {"npc_lib"})
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("npc_lib"))
    return out


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("npc_lib",) + path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        yield name, path


def test_imports_flow_downward_only():
    # synth writes a cohort: it may use data/ (ROI geometry) but never learn/, analysis/ or show/
    rank = {layer: i for i, layer in enumerate(ORDER)}
    upward = []
    for name, path in _modules():
        mine = _layer(name)
        for target in _imports(path):
            theirs = _layer(target)
            if theirs == "base" or theirs == mine:
                continue
            if mine == "base" or rank[theirs] < rank[mine] or (mine == "synth" and theirs != "data") \
                    or (mine == "data" and theirs != "data"):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


# pairs the order above allows but the design does not: figures and tables never train or generate,
# statistics never generate a cohort
FORBIDDEN = {("show", "learn"), ("show", "synth"), ("analysis", "synth"), ("learn", "analysis"), ("learn", "show")}
ORCHESTRATORS = ("train_grid", "train_heads", "train_finetune", "generate_cohort", "ensure_cohort", "ensure_synthetic")


def test_forbidden_layer_pairs_and_orchestration_placement():
    bad = [f"{name} -> {target}" for name, path in _modules() for target in _imports(path)
           if (_layer(name), _layer(target)) in FORBIDDEN]
    assert not bad, "imports the layers forbid:\n" + "\n".join(bad)
    # orchestration (fitting models, generating a cohort) is called from a face, a stage or Learning, never
    # from Analysis or Show
    calling = []
    for name, path in _modules():
        if _layer(name) in ("analysis", "show"):
            calls = {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
                     for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)}
            calling += [f"{name} calls {c}" for c in ORCHESTRATORS if c in calls]
    assert not calling, calling
    # a package's __init__ exports; it holds no function of its own
    for init in PACKAGE.rglob("__init__.py"):
        defs = [n.name for n in ast.parse(init.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs or init.parent == PACKAGE, f"{init.relative_to(PACKAGE)} defines {defs}"


def test_no_module_over_350_lines():
    long = {name: n for name, path in _modules() if (n := len(path.read_text().splitlines())) > 350}
    assert not long, long


def test_no_private_helper_crosses_modules():
    crossing = []
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("npc_lib"):
                crossing += [f"{name} imports {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossing, crossing


def test_run_layout_names_every_path(tmp_path):
    layout = RunLayout(tmp_path / "runs" / "demo")
    run = layout.model("Max tumour", "intra-peritumour", "resnet50")
    assert run.root == layout.models / "max-tumour__intra-peritumour__resnet50"
    assert run.meta.name == "run.json" and run.predictions.name == "predictions.parquet"
    assert layout.image_store("abc") == store_folder(layout.cache, "abc") == layout.cache / "images-abc"
    assert layout.table("metrics") == layout.evaluation / "metrics.csv"
    assert layout.negative_control.models == layout.root / "negative_control" / "models"
    assert layout.executed_notebook("03_train", slug("NPC", "intratumour", "xception")).parent.name == "train"
    # finished means run.json *and* predictions; the listing sees only folders with a run.json
    run.root.mkdir(parents=True)
    run.meta.write_text("{}")
    assert not run.finished and layout.model_runs() == [ModelRun(run.root)]
    run.predictions.write_bytes(b"")
    assert run.finished
    with pytest.raises(FileNotFoundError, match="cohort.json"):
        layout.read_cohort_ref()


def test_run_paths_are_spelled_only_in_layout():
    spelled = []
    for name, path in _modules():
        if name == "npc_lib.layout":
            continue
        text = "\n".join(line for line in path.read_text().splitlines() if "KERAS_HOME" not in line)  # Keras' own cache
        for literal in ('"run.json"', '"predictions.parquet"', '"history.csv"', '"split.csv"', '"cohort.json"',
                        'f"images-', 'f"features-', '"run_summary.json"', '/ "evaluation"', '/ "models"', '/ "cache"'):
            if literal in text:
                spelled.append(f"{name}: {literal}")
    assert not spelled, spelled


def test_variant_vocabulary():
    assert VARIANTS == ("intratumour", "intra-peritumour") and len(DATASETS) == 4
    from npc_lib.vocabulary import DATASET_TITLES, VARIANT_TITLES, BACKBONES, BACKBONE_TITLES
    assert set(DATASET_TITLES) == set(DATASETS) and set(BACKBONE_TITLES) == set(BACKBONES)
    assert set(VARIANTS) <= set(VARIANT_TITLES)
    from npc_lib.data.rois import VARIANT_REGISTRY
    assert tuple(VARIANT_REGISTRY) == VARIANTS  # the paper's two, registered with their derivations
    assert variant_column("intra-peritumour") == "intra_peritumour"
    with pytest.raises(KeyError, match="peri"):
        variant_column("peri")


def _notebook_calls():
    """(qualified name, object) of every npc_lib function or class a notebook calls."""
    import importlib
    import inspect
    import json
    import re
    calls = {}
    for nb in sorted((PACKAGE.parent / "notebooks").glob("*.ipynb")):
        src = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        for node in ast.walk(ast.parse(src)):
            if not (isinstance(node, ast.ImportFrom) and node.module.startswith("npc_lib")):
                continue
            for a in node.names:
                try:
                    obj = importlib.import_module(f"{node.module}.{a.name}")
                except ImportError:
                    obj = getattr(importlib.import_module(node.module), a.name)
                if inspect.ismodule(obj):
                    for attr in set(re.findall(rf"\b{a.name}\.(\w+)\(", src)):
                        calls[f"{obj.__name__}.{attr}"] = getattr(obj, attr)
                elif re.search(rf"\b{a.name}\(", src):
                    calls[f"{node.module}.{a.name}"] = obj
    return calls


def test_what_notebooks_call_is_documented():
    import inspect
    calls = _notebook_calls()
    assert len(calls) > 30
    missing = []
    for name, obj in calls.items():
        doc = inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            ok = "Parameters" in doc
        else:
            ok = ("Parameters" in doc or not inspect.signature(obj).parameters) and "Returns" in doc
        if not ok:
            missing.append(name)
    assert not missing, "numpydoc Parameters/Returns missing: " + ", ".join(sorted(missing))


def test_stages_live_in_one_folder_one_module_per_question():
    """Every stage module says what it reads, writes and serves, and declares its stages; the plan lists every
    module of the folder; the runner only schedules (it imports no analysis, learning or data module)."""
    from npc_lib.stages import plan
    folder = PACKAGE / "stages"
    helpers = {"__init__", "plan", "context"}
    modules = sorted(p.stem for p in folder.glob("*.py") if p.stem not in helpers)
    assert sorted(m.__name__.rsplit(".", 1)[1] for m in plan.MODULES) == modules
    for m in plan.MODULES:
        doc = m.__doc__ or ""
        assert doc.startswith("Stage") and all(w in doc for w in ("Reads:", "Writes:", "Serves:")), m.__name__
        assert callable(getattr(m, "stages", None)), m.__name__
    runner = {t for t in _imports(PACKAGE / "runner.py")}
    assert not {t for t in runner if _layer(t) in ("analysis", "learn", "data", "show", "synth")}, runner
    assert not (PACKAGE / "null_study.py").exists() and not (PACKAGE / "external_study.py").exists()


def test_stage_modules_spell_no_vocabulary_name():
    """Datasets, variants and backbones are named in the vocabulary, never spelled as literals by a stage or by
    the analyses a chapter reads."""
    names = {*DATASETS, *VARIANTS}
    from npc_lib.vocabulary import BACKBONES
    names |= set(BACKBONES)
    spelled = []
    for path in [*(PACKAGE / "stages").glob("*.py"), PACKAGE / "analysis" / "travel.py"]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                spelled.append(f"{path.name}: {node.value!r}")
    assert not spelled, spelled
