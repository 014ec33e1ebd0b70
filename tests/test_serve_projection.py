"""The map's projection (timbredb.server.projection) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from timbredb.server.projection import fit_projection


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _top2(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top two eigenvectors of a covariance (eigh, not SVD), signed so the largest loading is positive."""
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    top = vectors[:, order[:2]].T.copy()
    for i in range(2):
        if top[i, np.argmax(np.abs(top[i]))] < 0:
            top[i] = -top[i]
    return top, values[order]


def test_joint_map_equals_the_eigenvectors_of_the_half_and_half_covariance() -> None:
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((40, 12)) + 3.0 * rng.standard_normal(12)
    text = rng.standard_normal((15, 12)) * np.linspace(0.2, 2.0, 12)
    proj = fit_projection(audio, text)
    a, t = _unit(audio), _unit(text)
    cov = 0.5 * np.cov(a.T, bias=True) + 0.5 * np.cov(t.T, bias=True)
    top, values = _top2(cov)
    assert np.allclose(proj.components, top, atol=1e-8)
    assert np.allclose(proj.audio(audio), (a - a.mean(0)) @ top.T, atol=1e-10)
    assert np.allclose(proj.text(text), (t - t.mean(0)) @ top.T, atol=1e-10)
    assert np.allclose(proj.explained_variance_ratio, values[:2] / values.sum(), atol=1e-12)
    # each modality weighs half however many clips there are: 10x the clips, same axes
    many = fit_projection(np.repeat(audio, 10, axis=0), text)
    assert np.allclose(many.components, proj.components, atol=1e-8)


def test_the_modality_gap_does_not_become_the_first_axis() -> None:
    rng = np.random.default_rng(1)
    gap = np.zeros(16)
    gap[0] = 1.0
    spread = rng.standard_normal((60, 16)) * 0.15
    audio = spread[:30] + 4.0 * gap + np.eye(16)[1]
    text = spread[30:] - 4.0 * gap + np.eye(16)[1]
    ours = fit_projection(audio, text).components[0]
    # a naive PCA of both modalities pooled spends its first axis on the gap
    pooled = np.vstack([_unit(audio), _unit(text)])
    naive, _ = _top2(np.cov(pooled.T, bias=True))
    assert abs(naive[0] @ gap) > 0.95
    assert abs(ours @ gap) < 0.5


def test_audio_only_map_equals_scikit_learn_pca() -> None:
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(2)
    audio = rng.standard_normal((25, 6)) @ rng.standard_normal((6, 6))
    proj = fit_projection(audio, None)
    ref = decomposition.PCA(n_components=2, svd_solver="full").fit(_unit(audio))
    xy = proj.audio(audio)
    ref_xy = ref.transform(_unit(audio))
    # the same axes up to sign
    for i in range(2):
        assert np.allclose(np.abs(xy[:, i]), np.abs(ref_xy[:, i]), atol=1e-9)
    assert np.allclose(proj.explained_variance_ratio, ref.explained_variance_ratio_, atol=1e-9)


def test_degenerate_maps_have_no_nan() -> None:
    one = fit_projection(np.ones((1, 5)), None)
    assert np.array_equal(one.audio(np.ones((1, 5))), np.zeros((1, 2)))
    assert one.explained_variance_ratio == [0.0, 0.0]
    line = fit_projection(np.array([[1.0, 0, 0], [0, 1.0, 0]]), None)
    assert np.isfinite(line.audio(np.eye(3))).all() and line.explained_variance_ratio[1] == pytest.approx(0.0, abs=1e-12)
    assert not np.any(line.components[1])  # a second axis of no variance is all zero
    with pytest.raises(ValueError):
        fit_projection(None, np.zeros((0, 3)))
