"""Trained parameters as bytes: the safetensors layout, written and read with NumPy.

A fine-tuned space's weights live in the store (``finetunes.weights``). The
layout is safetensors' (8-byte little-endian header length, a JSON header of
``{name: {"dtype", "shape", "data_offsets"}}``, then the raw little-endian
tensors), so a ``.safetensors`` reader opens the bytes too; it is written here
with NumPy only, names sorted and no metadata that varies (time, host), so the
same parameters always give the same bytes and the same sha256.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import TimbreDBError

_DTYPES: dict[str, np.dtype[np.floating]] = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_CODES = {v: k for k, v in _DTYPES.items()}


def pack(tensors: Mapping[str, NDArray[np.floating]]) -> bytes:
    """The tensors (float32 or float64 arrays) in the safetensors layout, names sorted."""
    header: dict[str, dict[str, object]] = {}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        dtype = arr.dtype.newbyteorder("<")
        if dtype not in _CODES:
            raise TimbreDBError(f"weights: {name} has dtype {arr.dtype}; only float32 and float64 are stored")
        data = np.ascontiguousarray(arr, dtype=dtype).tobytes()
        header[name] = {"dtype": _CODES[dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # safetensors aligns the data to 8 bytes
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def unpack(blob: bytes) -> dict[str, NDArray[np.floating]]:
    """The tensors of ``pack``'s bytes (copies, writable).

    Raises:
        TimbreDBError: the bytes are not in the layout.
    """
    try:
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8 : 8 + n].decode("utf-8"))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            dtype: np.dtype[np.floating] = _DTYPES[info["dtype"]]
            arr = np.frombuffer(blob[base + start : base + end], dtype=dtype)
            out[name] = arr.reshape(info["shape"]).copy()
        return out
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise TimbreDBError(f"stored fine-tuned weights are unreadable ({exc})") from exc


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()
