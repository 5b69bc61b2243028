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


def test_the_runner_job_digest_covers_code_and_profile_content(tmp_path):
    from npc_lib.runner import Job
    nb = ROOT / "notebooks" / "01_cohort.ipynb"
    job = Job("01_cohort", str(nb), str(tmp_path / "out.ipynb"), {"profile": "p.yaml"}, profile_hash="aaa")
    same = Job("01_cohort", str(nb), str(tmp_path / "out.ipynb"), {"profile": "p.yaml"}, profile_hash="aaa")
    edited = Job("01_cohort", str(nb), str(tmp_path / "out.ipynb"), {"profile": "p.yaml"}, profile_hash="bbb")
    assert job.digest("fp") == same.digest("fp") != edited.digest("fp")


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
