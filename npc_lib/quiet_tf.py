"""Keep TensorFlow's start-up log lines out of consoles and notebook pages.

TensorFlow (2.16+) prints its native start-up notices (oneDNN, CUDA probing, "All log messages
before absl::InitializeLog()") straight to file descriptor 2 before its log level applies, so
``TF_CPP_MIN_LOG_LEVEL`` cannot hide them and a kernel forwards them into the notebook. The
import hook installed by the package silences descriptor 2 only while ``tensorflow`` itself is
imported and its devices are first listed, and sets TensorFlow's Python logger to errors only
(its warnings are about its internals, e.g. tf.function retracing); Python exceptions propagate
as usual.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
from contextlib import contextmanager


@contextmanager
def silenced_stderr_fd():
    """Send file descriptor 2 to the null device for the duration (no-op where that fails)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        with silenced_stderr_fd():
            self.inner.exec_module(module)
            try:  # the first device listing probes CUDA and prints about it
                module.config.list_physical_devices()
            except Exception:  # noqa: BLE001 - a listing problem surfaces later, where it matters
                pass
        # TensorFlow's Python warnings (e.g. "triggered tf.function retracing" for every small head
        # fitted) are about its internals, not the study; errors still show
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Install the import hook once (nothing to do if TensorFlow is already imported)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
