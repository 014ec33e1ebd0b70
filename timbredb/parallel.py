"""A shared thread pool for per-clip CPU work (decoding, hashing, resampling).

libsndfile, hashlib, libsoxr and NumPy's large-array kernels release the GIL,
so threads give real parallelism here; on a GPU machine this keeps the
accelerator fed instead of waiting for one core to prepare the next batch.
Results keep the input order, so everything stays deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POOL: ThreadPoolExecutor | None = None


def workers() -> int:
    """Threads to use: $TIMBREDB_THREADS, else the CPUs this process may run on (at most 16)."""
    env = os.environ.get("TIMBREDB_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(16, n))


def ordered_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]`` on the shared pool; the first exception is re-raised."""
    global _POOL
    if len(items) < 2 or workers() == 1:
        return [fn(x) for x in items]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="timbredb")
    return list(_POOL.map(fn, items))
