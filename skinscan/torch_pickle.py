"""Read a legacy (non-zip) ``torch.save`` file of a state_dict with numpy only.

The legacy format is five concatenated pickles plus raw storages:
magic number, protocol version, system info, the state_dict (tensors refer to
storages through persistent ids), the list of storage keys; then, per key, an
8-byte little-endian element count followed by the raw little-endian data.
"""
from __future__ import annotations

import collections
import pickle
import struct

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    key, dtype = storage
    return ("tensor", key, dtype, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a torch state_dict")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        _, storage_type, key = pid[0], pid[1], pid[2]
        return (key, storage_type.dtype)


def load_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """Return the state_dict in ``path`` as an ordered dict of numpy arrays."""
    with open(path, "rb") as f:
        if pickle.load(f) != _MAGIC:
            raise ValueError(f"{path}: not a legacy torch.save file")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info
        refs = _Unpickler(f).load()
        keys = pickle.load(f)
        storages = {}
        for key in keys:
            ref = next(r for r in refs.values() if r[1] == key)
            dtype = ref[2]
            (numel,) = struct.unpack("<q", f.read(8))
            storages[key] = np.frombuffer(f.read(numel * dtype.itemsize), dtype=dtype.newbyteorder("<"))
    out = collections.OrderedDict()
    for name, (_, key, dtype, offset, size, stride) in refs.items():
        flat = storages[key]
        arr = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * dtype.itemsize for s in stride]
        )
        out[name] = np.array(arr, dtype=dtype.newbyteorder("="))
    return out
