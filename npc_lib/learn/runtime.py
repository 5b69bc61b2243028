"""What every TensorFlow step records or fixes first: versions, peak memory, seeds."""
from __future__ import annotations

import platform
import random
import resource
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd

from npc_lib import __version__


def versions() -> dict:
    import keras
    import tensorflow as tf
    return {"npc_lib": __version__, "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "pandas": pd.__version__}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic`` also ask for deterministic ops.
    Build models under :func:`seeded_build`, which also calls this."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    try:
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        else:
            from tensorflow.python.framework import config as tf_config
            tf_config.disable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass


@contextmanager
def seeded_build(seed: int, deterministic: bool = True) -> Iterator[None]:
    """:func:`seed_everything`, then build the model inside the block.

    Keras draws the seed of every unseeded initializer (and of dropout's generator) from Python's
    ``random`` when a layer is created, and other threads of the process draw from it too (a Dask
    worker's or a LocalCluster scheduler's event loop): the same seed then gave different random
    backbones from run to run. Inside the block Keras draws from a private ``random.Random(seed)``
    instead; afterwards it is given Python's ``random`` back, so ``keras.utils.set_random_seed``
    works as documented elsewhere.
    """
    from keras.src.random import seed_generator
    if not hasattr(seed_generator, "python_random"):  # pragma: no cover - a Keras that moved it
        raise RuntimeError("keras.src.random.seed_generator.python_random is gone: update seeded_build")
    seed_everything(seed, deterministic)
    shared = seed_generator.python_random
    seed_generator.python_random = random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = shared
