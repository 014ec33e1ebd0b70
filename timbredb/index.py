"""FAISS indexes: derived caches of the DuckDB vectors, rebuilt when stale.

Each index records the sha256 of its two files as written and is verified
against them on every load, so a damaged but parseable file is rebuilt, not
used. Each index is an exact inner-product index (``IndexFlatIP``) over L2-normalised
copies of a space's vectors, so its scores are cosines and its results equal a
brute-force search. Files live in ``<store>.faiss/``: ``<name>.index`` plus
``<name>.keys.json`` (row -> clip hash or prompt). Both are written to a
temporary name and renamed into place; the ``faiss_indexes`` table then records
the row count and a fingerprint of the rows the index was built from. An index
whose record, file or fingerprint disagrees with the store is rebuilt; on a
store opened read-only it is rebuilt in memory and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb import ann
from timbredb.errors import StoreError, first_line
from timbredb.store import Store


@dataclass
class VectorIndex:
    """A loaded index and the keys of its rows."""

    name: str
    keys: list[str]
    index: Any  # faiss.Index

    def search(self, queries: NDArray[np.float32], k: int) -> list[list[tuple[str, float]]]:
        """Top-k (key, cosine) per query row, best first."""
        if not self.keys:
            return [[] for _ in range(queries.shape[0])]
        q = normalise(queries)
        scores, ids = self.index.search(q, min(k, len(self.keys)))
        return [
            [(self.keys[i], float(s)) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(scores, ids)
        ]


def normalise(x: NDArray[np.floating]) -> NDArray[np.float32]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def _fingerprint(rows: list[tuple[str, int]]) -> str:
    h = hashlib.sha256()
    for key, batch in rows:
        h.update(f"{key}\x00{batch}\n".encode())
    return f"{len(rows)}:{h.hexdigest()[:32]}"


def _text_rows(store: Store, space_id: str, prompts: list[str]) -> list[tuple[str, int]]:
    return store.index_text_rows(space_id, prompts)


def _audio_rows(store: Store, space_id: str) -> list[tuple[str, int]]:
    return store.index_audio_rows(space_id)


def text_index_name(space_id: str, prompts: list[str]) -> str:
    digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:12]
    return f"text-{space_id}-{digest}"


def audio_index_name(space_id: str) -> str:
    return f"audio-{space_id}"


def _write_atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def memory_index(name: str, keys: list[str], matrix: NDArray[np.floating], dim: int) -> VectorIndex:
    """An index held only in memory (read-only stores, vectors computed on the fly)."""
    import faiss

    index = faiss.IndexFlatIP(dim)
    if keys:
        index.add(normalise(matrix))
    return VectorIndex(name, list(keys), index)


def _build(
    store: Store,
    name: str,
    space_id: str,
    kind: str,
    rows: list[tuple[str, int]],
    matrix: NDArray[np.float32],
    requested: list[str] | None = None,
) -> VectorIndex:
    keys = [k for k, _ in rows]
    dim = matrix.shape[1] if matrix.size else next(s.dim for s in store.spaces(space_id))
    built = memory_index(name, keys, matrix, dim)
    if store.read_only:
        # read paths never write: a stale or missing index is built in memory only
        return built
    _persist(store, name, space_id, kind, rows, built.index, requested)
    return built


def _persist(store: Store, name: str, space_id: str, kind: str, rows: list[tuple[str, int]], index: Any,
             requested: list[str] | None) -> None:
    """Write an index and its keys (temporary names, renamed into place) and record them with their sha256."""
    import faiss

    folder = store.index_dir
    keys_json = json.dumps({"requested": requested, "keys": [k for k, _ in rows]})
    index_path, keys_path = folder / f"{name}.index", folder / f"{name}.keys.json"
    try:
        _write_atomic(keys_path, lambda tmp: Path(tmp).write_text(keys_json))
        _write_atomic(index_path, lambda tmp: faiss.write_index(index, tmp))
    except (OSError, RuntimeError) as exc:  # faiss reports a failed write as RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise StoreError(f"{index_path}: cannot write the FAISS index ({reason}); the store itself is unchanged") from exc
    store.record_index(name, space_id, kind, index_path.name, len(rows), _fingerprint(rows),
                       file_sha256=_file_sha256(index_path), keys_sha256=_file_sha256(keys_path))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _files_state(store: Store, name: str, rec: tuple[str, int, str, str | None, str | None]) -> str:
    """"ok", "missing-file", or "damaged" (the files differ from what was written: no or wrong sha256)."""
    path = store.index_dir / rec[0]
    keys_path = store.index_dir / f"{name}.keys.json"
    if not path.is_file() or not keys_path.is_file():
        return "missing-file"
    if rec[3] is None or rec[4] is None:
        return "damaged"  # recorded before checksums existed: rebuild once
    try:
        if _file_sha256(path) != rec[3] or _file_sha256(keys_path) != rec[4]:
            return "damaged"
    except OSError:
        return "missing-file"
    return "ok"


def _load_if_fresh(store: Store, name: str, rows: list[tuple[str, int]]) -> VectorIndex | None:
    import faiss

    rec = store.index_record(name)
    if rec is None or rec[2] != _fingerprint(rows):
        return None
    path = store.index_dir / rec[0]
    keys_path = store.index_dir / f"{name}.keys.json"
    # a damaged but parseable file (vectors reordered, header intact) would answer wrongly: verify it
    if _files_state(store, name, rec) != "ok":
        return None
    try:
        index = faiss.read_index(str(path))
        keys = json.loads(keys_path.read_text())["keys"]
    except (RuntimeError, ValueError, OSError, KeyError, TypeError):
        return None
    if index.ntotal != rec[1] or keys != [k for k, _ in rows]:
        return None
    return VectorIndex(name, keys, index)


def text_index(store: Store, space_id: str, prompts: list[str]) -> VectorIndex:
    """The index over the stored text vectors of these prompts (built or rebuilt if stale)."""
    rows = _text_rows(store, space_id, prompts)
    name = text_index_name(space_id, prompts)
    fresh = _load_if_fresh(store, name, rows)
    if fresh is not None:
        return fresh
    _, matrix = store.text_matrix(space_id, [k for k, _ in rows])
    return _build(store, name, space_id, "text", rows, matrix, requested=list(prompts))


def audio_index(store: Store, space_id: str) -> VectorIndex:
    """The index over all audio vectors of a space (built or rebuilt if stale).

    Exact (Flat) below ``ann.ivf_min_rows()`` vectors, IVF with a tuned nprobe above (timbredb/ann.py).
    """
    rows = _audio_rows(store, space_id)
    name = audio_index_name(space_id)
    fresh = _load_if_fresh(store, name, rows)
    if fresh is not None:
        return fresh
    if ann.use_ivf(len(rows)):
        return _build_ivf(store, name, space_id, rows)
    _, matrix = store.audio_matrix(space_id, [k for k, _ in rows])
    built = _build(store, name, space_id, "audio", rows, matrix)
    if not store.read_only:
        store.record_index_params(name, "flat")
    return built


# ---------------------------------------------------------------- IVF audio indexes (timbredb.ann)
def _build_ivf(store: Store, name: str, space_id: str, rows: list[tuple[str, int]]) -> VectorIndex:
    """An IVF index streamed from the store, nprobe tuned to the target recall, recorded with its recall."""
    keys = [k for k, _ in rows]
    dim = next(s.dim for s in store.spaces(space_id))
    built = ann.ivf_from_store(store, space_id, keys, dim)
    if not store.read_only:
        _persist(store, name, space_id, "audio", rows, built.index, None)
        store.record_index_params(name, "ivf", built.nlist, built.nprobe, built.recall_at_10, built.recall_queries)
    return VectorIndex(name, keys, built.index)


@dataclass(frozen=True)
class IndexState:
    index_name: str
    space_id: str
    kind: str
    n_rows: int
    state: str  # fresh | stale | missing-file | damaged | rebuilt


def check_indexes(store: Store, repair: bool = True) -> list[IndexState]:
    """Compare every recorded index (and every space's audio index) with the store.

    Args:
        repair: rebuild stale or missing indexes (text indexes whose prompts are
            no longer known are dropped from the record).
    """
    if repair and store.read_only:
        raise StoreError(f"{store.path}: cannot repair indexes of a store opened read-only")
    out: list[IndexState] = []
    records = store.index_records()
    seen = set()
    for name, space_id, kind, _path in records:
        seen.add(name)
        prompts: list[str] | None = []
        if kind == "audio":
            rows = _audio_rows(store, space_id)
        else:
            keys_path = store.index_dir / f"{name}.keys.json"
            try:
                prompts = json.loads(keys_path.read_text())["requested"]
            except (OSError, ValueError, KeyError, TypeError):
                prompts = None
            if prompts is None:
                out.append(IndexState(name, space_id, kind, 0, "missing-file"))
                if repair:
                    store.forget_index(name)
                continue
            rows = _text_rows(store, space_id, prompts)
        fresh = _load_if_fresh(store, name, rows)
        if fresh is not None:
            out.append(IndexState(name, space_id, kind, len(rows), "fresh"))
            continue
        rec = store.index_record(name)
        files = _files_state(store, name, rec) if rec is not None else "missing-file"
        state = "stale" if files == "ok" else files
        if repair:
            if kind == "audio":
                audio_index(store, space_id)
            else:
                text_index(store, space_id, prompts or [])
            state = "rebuilt"
        out.append(IndexState(name, space_id, kind, len(rows), state))
    for space_id in sorted(s.space_id for s in store.spaces()):
        name = audio_index_name(space_id)
        if name in seen or not store.count_audio(space_id):
            continue
        if repair:
            idx = audio_index(store, space_id)
            out.append(IndexState(name, space_id, "audio", len(idx.keys), "rebuilt"))
        else:
            out.append(IndexState(name, space_id, "audio", 0, "missing-file"))
    return out
