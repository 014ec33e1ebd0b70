"""Threads and cores: a shared thread pool for per-clip CPU work, and the BLAS thread budget.

libsndfile, hashlib, libsoxr and NumPy's large-array kernels release the GIL,
so threads give real parallelism here. Results keep the input order, so
everything stays deterministic. The pipelined ingest's worker *processes*
(timbredb.ingest.pipeline) size their numerical threads with ``limit_threads``.

The baselines' matrix products run on one BLAS thread (``one_blas_thread``):
OpenBLAS splits a product differently for different thread counts, which changes
the last bits of a vector, so a vector would depend on how many cores computed it.
Their products are small; the parallelism is across clips (threads or worker processes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

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


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(cores: int, workers: int) -> int:
    """Numerical threads each of ``workers`` processes may use so that workers x threads <= cores."""
    return max(1, cores // max(1, workers))


def limit_threads(n: int) -> None:
    """Cap every BLAS and OpenMP pool loaded in this process at ``n`` threads (a worker process's budget)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)


_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"depth": 0, "controller": None, "saved": None}


def _is_numpys(filepath: str | None) -> bool:
    """Whether a loaded library is the BLAS numpy ships (numpy.libs/, numpy/.dylibs/, numpy/...)."""
    parts = Path(filepath or "").parts
    return any(p == "numpy" or p.startswith("numpy.") or p.startswith("numpy-") for p in parts)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with NumPy's BLAS on one thread (restored after; threads that overlap share the setting).

    See the module doc: the baselines' vectors then do not depend on the thread count.
    """
    with _BLAS_LOCK:
        if _BLAS_STATE["depth"] == 0:
            if _BLAS_STATE["controller"] is None:
                from threadpoolctl import ThreadpoolController

                # numpy's own BLAS only (torch's and faiss's pools are theirs; they may load later, too)
                _BLAS_STATE["controller"] = [c for c in ThreadpoolController().lib_controllers
                                             if c.user_api == "blas" and _is_numpys(c.filepath)]
            _BLAS_STATE["saved"] = [(c, c.get_num_threads()) for c in _BLAS_STATE["controller"]]
            for c, n in _BLAS_STATE["saved"]:
                if n != 1:
                    c.set_num_threads(1)
        _BLAS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                for c, n in _BLAS_STATE["saved"] or []:
                    if n != 1:
                        c.set_num_threads(n)
