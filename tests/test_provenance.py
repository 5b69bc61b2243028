"""Provenance that cannot lie: a notebook's digest sees every library module it reaches, and only those."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from npc_lib import provenance as pv

ROOT = Path(__file__).resolve().parents[1]


def _copy_library(tmp_path: Path) -> Path:
    lib = tmp_path / "npc_lib"
    shutil.copytree(ROOT / "npc_lib", lib, ignore=shutil.ignore_patterns("__pycache__"))
    return lib


def _digest(notebook: Path, lib: Path) -> str:
    return pv.files_digest(pv.module_closure(pv.notebook_imports(notebook), lib) | set(pv.data_files(lib)), lib)


def test_imports_are_followed_through_modules_relative_imports_and_packages(tmp_path):
    lib = tmp_path / "npc_lib"
    (lib / "a").mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "a" / "__init__.py").write_text("from . import b\n")
    (lib / "a" / "b.py").write_text("def f():\n    from npc_lib.c import g\n")  # an import inside a function
    (lib / "c.py").write_text("import npc_lib.d\n")
    (lib / "d.py").write_text("x = 1\n")
    (lib / "e.py").write_text("y = 2\n")  # reached by nothing
    files = {p.relative_to(lib).as_posix() for p in pv.module_closure({"npc_lib.a"}, lib)}
    assert files == {"__init__.py", "a/__init__.py", "a/b.py", "c.py", "d.py"}


def test_a_change_moves_exactly_the_digests_of_the_notebooks_that_reach_it(tmp_path):
    lib = _copy_library(tmp_path)
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    before = {nb.stem: _digest(nb, lib) for nb in notebooks}
    assert before == {nb.stem: _digest(nb, lib) for nb in notebooks}  # stable
    module = lib / "analysis" / "survival.py"
    module.write_text(module.read_text() + "\n# changed\n")
    after = {nb.stem: _digest(nb, lib) for nb in notebooks}
    changed = {k for k in before if before[k] != after[k]}
    reach = {nb.stem for nb in notebooks if module in pv.module_closure(pv.notebook_imports(nb), lib)}
    assert changed == reach == {"07_beyond"}  # the notebook that reaches survival analysis, and no other
    profile = lib / "profiles" / "smoke.yaml"  # data files reach every notebook
    profile.write_text(profile.read_text() + "\n")
    assert all(_digest(nb, lib) != after[nb.stem] for nb in notebooks)


def test_a_notebook_stage_digest_covers_its_parameters_and_the_profile_content(tmp_path):
    from npc_lib.config import load_profile
    from npc_lib.layout import RunLayout
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.notebooks import notebook_digest
    ctx = RunContext(load_profile("smoke"), RunLayout(tmp_path / "runs"), None, ROOT)
    edited = RunContext(load_profile("smoke", {"train.epochs": 3}), RunLayout(tmp_path / "runs"), None, ROOT)
    assert notebook_digest(ctx, "03_train", "NPC") == notebook_digest(ctx, "03_train", "NPC")
    assert notebook_digest(ctx, "03_train", "NPC") != notebook_digest(ctx, "03_train", "CMLN")
    assert notebook_digest(ctx, "01_cohort") != notebook_digest(edited, "01_cohort")


def test_a_stage_digest_moves_only_with_what_the_stage_reaches(tmp_path):
    """A one-line change in a module moves the digests of the stages whose code reaches it and of the stages
    downstream of them, and of no other (checked for a few modules on the demo profile, against a copy)."""
    from npc_lib.config import load_profile
    from npc_lib.graph import plan_digests
    from npc_lib.layout import RunLayout
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.plan import plan
    ctx = RunContext(load_profile("demo"), RunLayout(tmp_path / "runs"), None, ROOT)
    stages = plan(ctx)
    base = plan_digests(stages, ctx)
    assert base == plan_digests(stages, ctx)  # stable
    lib = tmp_path / "lib" / "npc_lib"
    shutil.copytree(ROOT / "npc_lib", lib, ignore=shutil.ignore_patterns("__pycache__"))
    assert plan_digests(stages, ctx, lib) == base  # the copy is the same code

    def changed(module: str) -> set[str]:
        path = lib / module
        original = path.read_text()
        path.write_text(original + "\n# changed\n")
        try:
            new = plan_digests(stages, ctx, lib)
        finally:
            path.write_text(original)
        return {k for k in base if base[k] != new[k]}
    assert changed("stages/external.py") == {"external", "notebook:08_travel", "book"}
    assert changed("analysis/harmonisation.py") == {"harmonisation", "external:store", "external:scores", "external",
                                                     "notebook:08_travel", "book"}
    assert changed("graph.py") == set()  # the machinery that schedules and records stages computes nothing
    heads = changed("learn/stacked_heads.py")
    assert {f"models:{b}" for b in ctx.profile.backbones} <= heads and not any(n.startswith(
        ("features:", "centre:")) or n in ("cohort", "store", "pixel_features") for n in heads)


def test_commit_and_run_digest(tmp_path):
    assert pv.git_commit(tmp_path) == pv.NOT_GIT
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("1")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                   check=True)
    clean = pv.git_commit(tmp_path)
    assert len(clean) == 12 and "uncommitted" not in clean
    (tmp_path / "f").write_text("2")
    assert pv.git_commit(tmp_path) == clean + " + uncommitted changes"
    assert pv.run_digest({"a": "1", "b": "2"}) == pv.run_digest({"b": "2", "a": "1"}) != pv.run_digest({"a": "1"})


def test_the_footer_stamp_says_what_built_the_book_or_that_nothing_did():
    import sys
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        from run_stamp import stamp_html
    finally:
        sys.path.pop(0)
    html = stamp_html({"version": "0.4.0", "commit": "abc", "profile": "smoke", "run_date": "2026-12-03 10:00 UTC",
                       "run_digest": "d1"})
    for text in ("0.4.0", "abc", "smoke", "2026-12-03 10:00 UTC", "d1"):
        assert f"<code>{text}</code>" in html
    assert "No run stamp" in stamp_html({})


def test_licences_are_read_and_gpl_is_recognised():
    rows = pv.dependency_licences()
    names = {r["package"].lower() for r in rows}
    assert {"numpy", "tensorflow", "pydicom", "jupyter-book"} <= names
    assert pv.is_gpl("GPL V3.0") and pv.is_gpl("GNU General Public License v3 (GPLv3)") and pv.is_gpl("AGPL-3.0")
    assert not pv.is_gpl("LGPL-2.1") and not pv.is_gpl("GNU Lesser General Public License v3") and not pv.is_gpl("MIT")
    gpl = [r for r in rows if pv.is_gpl(r["licence"])]
    assert not gpl, f"GPL-licensed dependencies of an MIT project: {gpl}"
    json.dumps(rows)
