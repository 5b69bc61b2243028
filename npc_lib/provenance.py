"""What produced a run: the library code a notebook runs, the git commit, and the stamp the book carries.

A notebook's job digest covers the source of every ``npc_lib`` module the notebook imports, directly
or through other modules (found by reading the ``import`` statements, not by importing anything), plus
the package's data files (profiles, published tables). A change to one of those files makes the
runner execute the notebook again; a change to a module the notebook never reaches does not.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import npc_lib

PACKAGE = "npc_lib"
PACKAGE_ROOT = Path(npc_lib.__file__).resolve().parent
DATA_SUFFIXES = (".yaml", ".csv")
NOT_GIT = "not a git checkout"


def module_file(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of module ``name`` (``npc_lib.x.y``): ``x/y.py`` or ``x/y/__init__.py``."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, package: str = "") -> set[str]:
    """Every ``npc_lib`` module named by an import in ``source`` (also inside functions); ``package``
    resolves relative imports. ``from npc_lib.a import b`` names ``npc_lib.a`` and ``npc_lib.a.b``
    (the latter counts only if it is a module)."""
    found: set[str] = set()
    for attempt in range(3):
        try:
            tree = ast.parse(source)
            break
        except SyntaxError:
            return found
        except SystemError:  # CPython before 3.11.8 (gh-106905): another thread building an AST at the same time
            if attempt == 2:  # (Dask's config reads literal_eval in its own threads) spoils the recursion count
                raise
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] == PACKAGE:
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def module_closure(modules: set[str], root: Path = PACKAGE_ROOT) -> set[Path]:
    """The files of ``modules``, of every ``npc_lib`` module they import (transitively) and of the
    packages that hold them (their ``__init__`` runs on import)."""
    todo, seen = [m for m in modules], set()
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is None:
            continue
        files.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        stat = path.stat()
        todo += sorted(_file_imports(str(path), stat.st_mtime_ns, stat.st_size, package))
    return files


@lru_cache(maxsize=4096)
def _file_imports(path: str, mtime_ns: int, size: int, package: str) -> frozenset[str]:
    """:func:`imports_in` of a file, parsed once per process while the file is unchanged (every stage's and
    notebook's closure walks the same modules)."""
    return frozenset(imports_in(Path(path).read_text(encoding="utf8"), package))


def notebook_imports(notebook: Path) -> set[str]:
    """The ``npc_lib`` modules a notebook's code cells import (IPython magics are skipped)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf8")).get("cells", [])
    found: set[str] = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", ""))
        src = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!")))
        found |= imports_in(src)
    return found


def data_files(root: Path = PACKAGE_ROOT) -> list[Path]:
    """The package's data files (profiles, published tables): every notebook depends on them."""
    return sorted(p for p in root.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file())


def files_digest(files, root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 over the files' paths (relative to ``root``) and bytes, in path order."""
    h = hashlib.sha256()
    for path in sorted({Path(f) for f in files}):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=64)
def _notebook_code_digest(notebook: str, stamp: tuple) -> str:
    files = module_closure(notebook_imports(Path(notebook))) | set(data_files())
    return files_digest(files)


def notebook_code_digest(notebook: str | Path) -> str:
    """The digest of the library code and data a notebook depends on."""
    files = [*PACKAGE_ROOT.rglob("*.py"), *data_files(), Path(notebook)]
    stamp = tuple(sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    return _notebook_code_digest(str(Path(notebook).resolve()), stamp)


def library_digest(root: Path = PACKAGE_ROOT) -> str:
    """The digest of every source and data file of the package (the whole library as installed)."""
    return files_digest([*root.rglob("*.py"), *data_files(root)], root)


def git_commit(folder: str | Path) -> str:
    """The checkout's commit (short hash, ``+ uncommitted changes`` when the tree differs from it),
    or ``"not a git checkout"``."""
    def git(*args):
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20)
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return NOT_GIT
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return NOT_GIT
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def run_digest(job_digests: dict[str, str]) -> str:
    """One digest for a whole run: every notebook job's name and digest."""
    return hashlib.sha256(json.dumps(sorted(job_digests.items())).encode()).hexdigest()[:16]


def _licence(dist) -> str:
    """A distribution's declared licence: its SPDX expression, a short License field, or its classifiers."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    field = (meta.get("License") or "").strip()
    if field and len(field) <= 60 and "\n" not in field and field.upper() != "UNKNOWN":
        return field
    if classifiers:
        return "; ".join(classifiers)
    for f in dist.files or []:  # no usable metadata: the first line of a shipped licence file
        if f.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
            try:
                text = f.read_text(encoding="utf8")
            except (OSError, UnicodeDecodeError):
                continue
            name = next((n for pattern, n in LICENCE_TEXTS if re.search(pattern, text, flags=re.I)), None)
            if name:
                return f"{name} (its licence file)"
    return "not declared"


# what a licence file's text says, most specific first (for packages whose metadata declares none)
LICENCE_TEXTS = ((r"GNU AFFERO GENERAL PUBLIC LICENSE", "AGPL"), (r"GNU LESSER GENERAL PUBLIC LICENSE", "LGPL"),
                 (r"GNU GENERAL PUBLIC LICENSE", "GPL"), (r"Apache (Software )?License", "Apache-2.0"),
                 (r"Permission is hereby granted, free of charge", "MIT"),
                 (r"Redistribution and use in source and binary forms", "BSD"))


def dependency_licences(root: str = "npc-dm-study") -> list[dict]:
    """Every installed package the project depends on (its requirements, transitively, test extras
    left out), with version and declared licence, sorted by name.

    Parameters
    ----------
    root : the distribution whose requirements are followed

    Returns
    -------
    list of dicts: ``package, version, licence``.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    seen, todo, rows = set(), [root], []
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if key != root:
            rows.append({"package": dist.metadata["Name"], "version": dist.version, "licence": _licence(dist)})
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sorted(rows, key=lambda r: r["package"].lower())


def is_gpl(licence: str) -> bool:
    """True when a licence leaves no choice but the GPL (or AGPL). ``A OR B`` and a list of licence
    classifiers (``A; B``: dual licensing, or per-file licences such as docutils') count as GPL only if every
    alternative is; ``A AND B`` counts if any part is. The LGPL, which permits linking, is not counted."""
    def one(text: str) -> bool:
        t = text.upper().replace("LESSER GENERAL PUBLIC", "LGPL").replace("LIBRARY GENERAL PUBLIC", "LGPL")
        return bool(re.search(r"(?<![L])\bA?GPL|GNU GENERAL PUBLIC|AFFERO", t))
    alternatives = [a for a in re.split(r"\s+OR\s+|;", licence) if a.strip()]
    return bool(alternatives) and all(any(one(p) for p in re.split(r"\s+AND\s+", a)) for a in alternatives)
