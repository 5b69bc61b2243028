"""pyproject.toml and environment.yml must list the same packages with the same lower bounds."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = dict(_norm(s) for s in py["dependencies"] + py["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    got = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for spec in items:
            if spec.startswith("-e "):  # the package itself
                continue
            name, bound = _norm(spec)
            if name in ("python", "pip"):
                continue
            got[name] = bound
    assert got == want


def test_every_dependency_has_a_lower_bound():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in py["dependencies"] + py["optional-dependencies"]["test"]:
        assert ">=" in spec, f"{spec} has no pinned lower bound"


def test_the_readme_quirk_table_names_real_tests():
    """Every row of the README's quirk table names a test (or a mutation case) that exists; 50 at least."""
    import ast
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| .+ \| `(test_\w+)::(\w+)` \|$", text, flags=re.M)
    assert len(rows) >= 50, len(rows)
    for module, name in rows:
        tree = ast.parse((ROOT / "tests" / f"{module}.py").read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in names, f"{module}::{name}"
