"""npc_lib — data, model and metric code for the npc-dm-study companion.

Reproduces Hua et al., Comb. Chem. High Throughput Screen. 2023,
DOI 10.2174/1386207325666220919091210, on synthetic or user-supplied DICOM cohorts.
"""

__version__ = "0.4.0"
PAPER_DOI = "10.2174/1386207325666220919091210"

from npc_lib import quiet_tf as _quiet_tf

# TensorFlow's native start-up lines (oneDNN notices, CUDA probing) are not for readers: keep
# them out of notebook pages and the main job's console.
_quiet_tf.install()
