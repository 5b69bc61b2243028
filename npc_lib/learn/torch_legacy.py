"""Read a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format without PyTorch.

The format is five pickles in a row — magic number, protocol version, system info, the object
(tensors pickled *by reference* to storages), the list of storage keys — followed by each storage's
raw bytes (an int64 element count, then the data). The object pickle only names a few PyTorch
callables (``_rebuild_tensor_v2``, ``FloatStorage`` …); a restricted unpickler stands in for them,
so nothing else in the file can run.
"""
from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np

from npc_lib.errors import NpcError

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _StorageRef:
    def __init__(self, key: str, dtype):
        self.key, self.dtype = key, dtype


class _TensorRef:
    """A tensor as the pickle describes it: storage, offset, shape and strides (in elements)."""

    def __init__(self, storage: _StorageRef, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    return _TensorRef(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, path: Path):
        super().__init__(fh, encoding="utf-8")
        self.path = path
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise NpcError(f"{self.path}: unexpected object {module}.{name} in a PyTorch state dict "
                       "(only tensors in an OrderedDict are read)")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _size = pid[:5]
        if kind != "storage":
            raise NpcError(f"{self.path}: unknown persistent object {kind!r}")
        if key not in self.storages:
            self.storages[key] = _StorageRef(key, STORAGE_DTYPES[storage_type])
        return self.storages[key]


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format ``.pth`` file as NumPy arrays, in file order.

    Parameters
    ----------
    path : a ``torch.save`` file written by PyTorch < 1.6 (or with ``_use_new_zipfile_serialization=False``)

    Returns
    -------
    dict name -> array (copies; shapes as in PyTorch, e.g. conv kernels ``(out, in, kh, kw)``).

    Raises
    ------
    NpcError
        naming the file, when it is missing, in the zip format, truncated or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise NpcError(f"PyTorch weights file not found: {path}")
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"PK":
                raise NpcError(f"{path}: a zip-format PyTorch file; only the legacy format is read without PyTorch")
            fh.seek(0)
            if pickle.load(fh) != MAGIC or pickle.load(fh) != PROTOCOL:
                raise NpcError(f"{path}: not a legacy PyTorch file (magic number or protocol differ)")
            pickle.load(fh)  # system info
            up = _Unpickler(fh, path)
            state = up.load()
            keys = pickle.load(fh)
            raw = {}
            for key in keys:
                (count,) = struct.unpack("<q", fh.read(8))
                dtype = np.dtype(up.storages[key].dtype)
                data = fh.read(count * dtype.itemsize)
                if len(data) != count * dtype.itemsize:
                    raise NpcError(f"{path}: truncated (storage {key} needs {count * dtype.itemsize} bytes, "
                                   f"{len(data)} left)")
                raw[key] = np.frombuffer(data, dtype=dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, KeyError, TypeError) as exc:
        raise NpcError(f"{path}: not a readable PyTorch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise NpcError(f"{path}: holds a {type(state).__name__}, not a state dict")
    out = {}
    for name, t in state.items():
        if not isinstance(t, _TensorRef):
            raise NpcError(f"{path}: entry {name!r} is not a tensor")
        buf = raw[t.storage.key]
        item = buf.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(buf[t.offset:], shape=t.size,
                                              strides=tuple(s * item for s in t.stride)) if t.size else \
            buf[t.offset:t.offset + 1].reshape(())
        out[name] = np.array(arr, copy=True)
    return out
