"""What every TensorFlow step records or fixes first: versions, peak memory, seeds."""
from __future__ import annotations

import platform
import resource

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
    """Seed Python, NumPy and TensorFlow; with ``deterministic`` also ask for deterministic ops."""
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
