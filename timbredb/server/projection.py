"""The 2-D map of a space: a PCA of its clips and its descriptor words, one modality gap removed.

Definition. Every vector is L2-normalised (describe ranks by cosine). Joint
audio-text models keep the two modalities apart (the "modality gap"): a plain
PCA of clips and words together spends its first axis on that gap. So each
modality is centred on its own mean (audio vectors on the mean of the stored
clips, word vectors on the mean of the words). Centring the words does not
change how words rank for a sound: for a fixed sound vector a, a·(t - μ) =
a·t - a·μ moves every word's score by the same amount. The two axes are the top
two eigenvectors of C = ½·C_audio + ½·C_text (the biased covariances of the
centred groups; each modality weighs half however many clips there are; with
one modality only, its covariance); an axis without variance stays zero. An
axis's sign is chosen so that its largest loading is positive (the rule
scikit-learn's svd_flip uses), which makes the map deterministic. An upload is
projected with the audio mean, so a file whose content is stored lands exactly
on that clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Projection:
    """A fitted map: per-modality means, two axes, and the share of C's variance they hold."""

    audio_mean: NDArray[np.float64]
    text_mean: NDArray[np.float64]
    components: NDArray[np.float64]  # (2, dim)
    explained_variance_ratio: list[float]

    def audio(self, vectors: NDArray[np.floating]) -> NDArray[np.float64]:
        """(n, 2) map coordinates of audio vectors."""
        return (_unit(vectors) - self.audio_mean) @ self.components.T

    def text(self, vectors: NDArray[np.floating]) -> NDArray[np.float64]:
        """(n, 2) map coordinates of text vectors."""
        return (_unit(vectors) - self.text_mean) @ self.components.T


def _unit(x: NDArray[np.floating]) -> NDArray[np.float64]:
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def fit_projection(audio: NDArray[np.floating] | None, text: NDArray[np.floating] | None) -> Projection:
    """Fit the map (see the module doc) on a space's clip vectors and word vectors.

    Args:
        audio: (n_clips, dim) or None/empty.
        text: (n_words, dim) or None/empty.

    Raises:
        ValueError: neither group has a vector.
    """
    groups = [g for g in (audio, text) if g is not None and np.asarray(g).size]
    if not groups:
        raise ValueError("a map needs at least one vector")
    dim = np.asarray(groups[0]).shape[1]
    zero = np.zeros(dim)
    a = _unit(audio) if audio is not None and np.asarray(audio).size else None
    t = _unit(text) if text is not None and np.asarray(text).size else None
    a_mean = a.mean(axis=0) if a is not None else zero
    t_mean = t.mean(axis=0) if t is not None else zero
    centred = [(g - m) for g, m in ((a, a_mean), (t, t_mean)) if g is not None]
    weight = 1.0 / len(centred)
    # rows scaled so that X.T @ X = sum of weight * (biased covariance of each group)
    x = np.vstack([g * np.sqrt(weight / g.shape[0]) for g in centred])
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = np.zeros((2, dim))
    # an axis without variance (fewer distinct points than axes) is left at zero, not an arbitrary direction
    tol = max(float(s[0]) if s.size else 0.0, 1.0) * 1e-9
    n = int(min(2, np.sum(s > tol)))
    comps[:n] = vt[:n]
    for i in range(2):
        j = int(np.argmax(np.abs(comps[i])))
        if comps[i, j] < 0:
            comps[i] = -comps[i]
    var = s**2
    total = float(var.sum())
    ratios = [float(var[i] / total) if total > 0 and i < var.shape[0] else 0.0 for i in range(2)]
    return Projection(a_mean, t_mean, comps, ratios)
