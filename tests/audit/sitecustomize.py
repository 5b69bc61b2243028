"""Test support, imported at start-up by every Python process that has this folder on its path (the runs of the
shared fixtures put it there): with ``NPC_AUDIT_READS`` naming a folder, each file opened for reading under
``NPC_AUDIT_ROOT`` while the process works for a stage (``NPC_STAGE``: Dask workers, pool children, notebook
kernels) is written to ``<folder>/<pid>.tsv`` as ``stage<TAB>path``. Nothing happens without the variable."""
import os
import sys

_FOLDER = os.environ.get("NPC_AUDIT_READS")
_ROOT = os.environ.get("NPC_AUDIT_ROOT", "")


def _install() -> None:
    state = {"busy": False, "pid": None, "out": None, "seen": set()}

    def reading(mode, flags) -> bool:
        if isinstance(mode, str):
            return "r" in mode or "+" in mode
        return isinstance(flags, int) and (flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR)

    def hook(event, args):
        if event != "open" or state["busy"]:
            return
        stage = os.environ.get("NPC_STAGE")
        path = args[0] if args else None
        if not stage or not isinstance(path, (str, bytes, os.PathLike)) or not reading(*args[1:3]):
            return
        state["busy"] = True
        try:
            full = os.path.abspath(os.fsdecode(path))
            if full.startswith(_ROOT + os.sep) and (stage, full) not in state["seen"]:
                state["seen"].add((stage, full))
                if state["pid"] != os.getpid():  # a forked child writes a file of its own
                    state["pid"], state["out"] = os.getpid(), open(os.path.join(_FOLDER, f"{os.getpid()}.tsv"), "a")
                state["out"].write(f"{stage}\t{full}\n")
                state["out"].flush()
        except Exception:  # noqa: BLE001 - the audit never breaks the process it watches
            pass
        finally:
            state["busy"] = False

    sys.addaudithook(hook)


if _FOLDER and _ROOT:
    _install()
