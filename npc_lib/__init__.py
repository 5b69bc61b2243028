"""npc_lib — data, model and metric code for the npc-dm-study companion.

Reproduces Hua et al., Comb. Chem. High Throughput Screen. 2023,
DOI 10.2174/1386207325666220919091210, on synthetic or user-supplied DICOM cohorts.
"""

__version__ = "0.1.0"
PAPER_DOI = "10.2174/1386207325666220919091210"

import os as _os

# TensorFlow's C++ start-up lines (oneDNN notices, "could not find cuda drivers", ...) are
# not for readers: keep them out of notebook pages and the main job's console (a user who
# wants them sets the variable before importing npc_lib).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
