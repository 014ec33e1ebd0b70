"""The adapter: a small residual head on frozen embeddings, applied with NumPy.

    u = x / ||x||                       (the base space is compared by cosine)
    h = gelu(W1 u + b1)                  W1: (hidden, dim)
    y = u + W2 h + b2                    W2: (dim, hidden), initialised to 0
    f(x) = y / ||y||

With W2 = 0 and b2 = 0 the head is the identity (the tuned space starts as the
base space). The audio head always; a text head of the same form with
``--text-head``. Training (torch) is in ``timbredb.finetune.train``; applying a
trained head to stored or new vectors needs only NumPy (and SciPy's erf for the
exact GELU torch uses), so `describe` and `ingest` in a tuned space load no
extra package.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

#: parameter names of a head ("audio." or "text." prefix in the stored weights)
PARAMS = ("w1", "b1", "w2", "b2")


def unit(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """Rows scaled to length 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def gelu(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The exact GELU, x * Phi(x) (torch.nn.functional.gelu's default)."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def apply_head(params: Mapping[str, NDArray[np.floating]], prefix: str, x: NDArray[np.floating]) -> NDArray[np.float32]:
    """One head (``prefix`` "audio" or "text") on rows ``x``, in float64; float32 unit rows out."""
    w1, b1, w2, b2 = (np.asarray(params[f"{prefix}.{p}"], dtype=np.float64) for p in PARAMS)
    u = unit(x)
    y = u + gelu(u @ w1.T + b1) @ w2.T + b2
    return unit(y).astype(np.float32)


def has_head(params: Mapping[str, NDArray[np.floating]], prefix: str) -> bool:
    return all(f"{prefix}.{p}" in params for p in PARAMS)


def apply_audio(params: Mapping[str, NDArray[np.floating]], x: NDArray[np.floating]) -> NDArray[np.float32]:
    return apply_head(params, "audio", x)


def apply_text(params: Mapping[str, NDArray[np.floating]], x: NDArray[np.floating]) -> NDArray[np.float32]:
    """The text head when there is one; else the base text vectors, unchanged."""
    if has_head(params, "text"):
        return apply_head(params, "text", x)
    return np.asarray(x, dtype=np.float32)
