"""Linear probes of the audio embeddings: is the rating there, even where the zero-shot cosine fails?

Both methods need only audio embeddings, so they work for audio-only models
(mfcc) too. X = the stimuli's audio embeddings, each row L2-normalised.

``ridge`` (per descriptor): ridge regression from X to the mean ratings,
evaluated by **outer** leave-one-stimulus-out. In each outer fold the held-out
stimulus is removed first; on the remaining stimuli X is centred (on their
mean), the ratings centred (an unpenalised intercept), and alpha is chosen
among 10^k, k = -3, -2.5, ..., 3 by efficient leave-one-out on those stimuli
only (the exact LOO residuals e_i / (1 - H_ii) of ridge with an intercept;
scikit-learn ``RidgeCV(alphas, fit_intercept=True)`` semantics: the smallest
mean squared LOO error, the first alpha on ties); the model refit on them with
that alpha predicts the held-out stimulus. ``pearson_r`` and ``r2`` (1 -
SSE/SST, SST about the mean rating) are of those out-of-fold predictions;
``alpha_median`` is the median chosen alpha. ``p_value``: the ratings are
shuffled over the stimuli and the whole nested procedure repeated
``--permutations`` times (seeded); p = (1 + #{r_perm >= r}) / (1 +
permutations), **one-sided**: a probe is evidence of encoding only when it
predicts better than chance, and out-of-fold predictions of noise correlate
negatively with the truth, so a negative r is no evidence of anything.
``--train-group A --test-group B`` fits on group A (alpha by LOO within A)
and evaluates on group B (method ``ridge:A->B``; permutations shuffle the
training ratings). ``zero_shot_r``: the Pearson r of cos(audio, text of the
descriptor) with the ratings over the same evaluated stimuli (NaN for an
audio-only model or a descriptor without a text embedding).

``pca``: the top ``--components`` principal components of X (centred):
``explained_variance_ratio`` (its variance over the total) and the Pearson r
of each component's scores with each descriptor's ratings; a component's sign
is fixed so that its largest-magnitude loading is positive (scikit-learn's
convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from timbredb.analysis import rated, stats
from timbredb.analysis.exp1 import row_pearson
from timbredb.errors import AnalysisError
from timbredb.store import Store
from timbredb.vocabularies import BARE, check_query_template

#: the alpha grid: 10^k, k = -3, -2.5, ..., 3
ALPHAS: NDArray[np.float64] = 10.0 ** np.arange(-3.0, 3.0 + 1e-9, 0.5)
DEFAULT_PERMUTATIONS = 200
DEFAULT_COMPONENTS = 5
RIDGE_SCHEMA = {
    "dataset": pl.String, "model": pl.String, "method": pl.String, "descriptor": pl.String, "n": pl.Int64,
    "alpha_median": pl.Float64, "pearson_r": pl.Float64, "r2": pl.Float64, "p_value": pl.Float64,
    "zero_shot_r": pl.Float64,
}
PCA_SCHEMA = {
    "dataset": pl.String, "model": pl.String, "method": pl.String, "component": pl.Int64,
    "explained_variance_ratio": pl.Float64, "descriptor": pl.String, "pearson_r": pl.Float64,
}


# ---------------------------------------------------------------- ridge with efficient LOO
@dataclass(frozen=True)
class RidgeFit:
    """A training set's decomposition: enough to choose alpha by LOO and predict, for many targets at once."""

    mean_x: NDArray[np.float64]
    u: NDArray[np.float64]      # m x r
    s: NDArray[np.float64]      # r
    vt: NDArray[np.float64]     # r x p

    @classmethod
    def of(cls, x: NDArray[np.float64]) -> RidgeFit:
        mean_x = x.mean(axis=0)
        u, s, vt = np.linalg.svd(x - mean_x, full_matrices=False)
        keep = s > s.max(initial=0.0) * 1e-12
        return cls(mean_x, u[:, keep], s[keep], vt[keep])

    def loo_mse(self, y: NDArray[np.float64], alphas: NDArray[np.float64] = ALPHAS) -> NDArray[np.float64]:
        """(alphas x targets) mean squared exact LOO errors of ridge with an intercept (y: m x targets)."""
        m = self.u.shape[0]
        yc = y - y.mean(axis=0)
        uty = self.u.T @ yc
        s2 = self.s**2
        out = np.empty((alphas.size, y.shape[1]))
        for k, a in enumerate(alphas):
            f = s2 / (s2 + a)
            resid = yc - self.u @ (f[:, None] * uty)
            h = 1.0 / m + (self.u**2) @ f
            out[k] = np.mean((resid / (1.0 - h)[:, None]) ** 2, axis=0)
        return out

    def predict(self, x_new: NDArray[np.float64], y: NDArray[np.float64], alpha: NDArray[np.float64]) -> NDArray[np.float64]:
        """Predictions (new x targets) of ridge fits of each target column with its own alpha."""
        yc = y - y.mean(axis=0)
        uty = self.u.T @ yc                                    # r x t
        coef_s = self.s[:, None] / (self.s[:, None] ** 2 + alpha[None, :])   # r x t
        z = (x_new - self.mean_x) @ self.vt.T                  # new x r
        return np.asarray(y.mean(axis=0) + z @ (coef_s * uty), dtype=np.float64)


def choose_alpha(fit: RidgeFit, y: NDArray[np.float64], alphas: NDArray[np.float64] = ALPHAS) -> NDArray[np.float64]:
    """Per target column, the alpha of smallest LOO error (the first on ties)."""
    return alphas[np.argmin(fit.loo_mse(y, alphas), axis=0)]


def nested_loo(x: NDArray[np.float64], y: NDArray[np.float64], alphas: NDArray[np.float64] = ALPHAS
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Out-of-fold predictions of outer leave-one-out with alpha chosen inside each fold.

    Args:
        x: n x p features; y: n x targets.

    Returns:
        (predictions n x targets, chosen alphas n x targets).
    """
    n = x.shape[0]
    pred = np.empty_like(y)
    chosen = np.empty_like(y)
    for i in range(n):
        train = np.arange(n) != i
        fit = RidgeFit.of(x[train])
        a = choose_alpha(fit, y[train], alphas)
        pred[i] = fit.predict(x[i : i + 1], y[train], a)[0]
        chosen[i] = a
    return pred, chosen


def transfer(x_train: NDArray[np.float64], y_train: NDArray[np.float64], x_test: NDArray[np.float64],
             alphas: NDArray[np.float64] = ALPHAS) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fit on the training stimuli (alpha by LOO among them) and predict the test stimuli."""
    fit = RidgeFit.of(x_train)
    a = choose_alpha(fit, y_train, alphas)
    return fit.predict(x_test, y_train, a), a


def r2_score(y: NDArray[np.float64], pred: NDArray[np.float64]) -> float:
    sst = float(((y - y.mean()) ** 2).sum())
    return float("nan") if sst == 0 else 1.0 - float(((y - pred) ** 2).sum()) / sst


def _permuted(y: NDArray[np.float64], n_perm: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """n x (1 + n_perm): y, then each seeded permutation of it."""
    idx = np.argsort(rng.random((n_perm, y.size)), axis=1)
    return np.column_stack([y, *(y[p] for p in idx)]) if n_perm else y[:, None]


def _p_one_sided(r: float, r_perm: NDArray[np.float64]) -> float:
    if not np.isfinite(r) or r_perm.size == 0:
        return float("nan")
    return (1 + int(np.count_nonzero(r_perm >= r - 1e-12))) / (1 + r_perm.size)


# ---------------------------------------------------------------- the analysis
def _ridge_rows(
    dataset: str, label: str, x: NDArray[np.float64], ratings: NDArray[np.float64], descriptors: Sequence[str],
    zero_shot: dict[str, NDArray[np.float64]], n_perm: int, seed: int,
    split: tuple[str, str, NDArray[np.bool_], NDArray[np.bool_]] | None,
) -> list[dict[str, object]]:
    method = "ridge" if split is None else f"ridge:{split[0]}->{split[1]}"
    # descriptors rated on the same stimuli share one decomposition per fold: their ratings (and
    # permutations) are fitted together as columns of one target matrix
    by_mask: dict[bytes, list[int]] = {}
    for j in range(len(descriptors)):
        by_mask.setdefault(np.isfinite(ratings[:, j]).tobytes(), []).append(j)
    results: dict[int, dict[str, object]] = {}
    width = 1 + n_perm
    for key, cols in by_mask.items():
        ok = np.frombuffer(key, dtype=bool)
        tr, te = (ok, ok) if split is None else (split[2] & ok, split[3] & ok)
        if tr.sum() < rated.MIN_STIMULI or te.sum() < rated.MIN_STIMULI:
            continue
        blocks = []
        for j in cols:
            rng_ = stats.rng(seed, stats.stable_key("\x1f".join([dataset, label, method, descriptors[j]])))
            blocks.append(_permuted(ratings[tr, j], n_perm, rng_))
        ys = np.hstack(blocks)
        if split is None:
            pred, alpha = nested_loo(x[ok], ys)
        else:
            p, a = transfer(x[tr], ys, x[te])
            pred, alpha = p, a[None, :]
        for b, j in enumerate(cols):
            sl = slice(b * width, (b + 1) * width)
            # the null statistic: a permutation's out-of-fold predictions against the ratings it was fitted to
            # (LOO: the permuted ratings; transfer: the test ratings, which are never shuffled)
            truths = ys[:, sl] if split is None else np.repeat(ratings[te, j][:, None], width, axis=1)
            truth = truths[:, 0]
            r_all = row_pearson(truths.T, pred[:, sl].T)
            zs = zero_shot.get(descriptors[j])
            results[j] = {
                "dataset": dataset, "model": label, "method": method, "descriptor": descriptors[j],
                "n": int(te.sum()), "alpha_median": float(np.median(alpha[:, sl.start])),
                "pearson_r": float(r_all[0]), "r2": r2_score(truth, pred[:, sl.start]),
                "p_value": _p_one_sided(float(r_all[0]), r_all[1:]),
                "zero_shot_r": stats.pearson(zs[te], ratings[te, j]) if zs is not None else float("nan"),
            }
    return [results[j] for j in sorted(results)]


def principal_components(x: NDArray[np.float64], k: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(components k x p, explained variance ratios k, scores n x k) of centred x, signs fixed (largest loading > 0)."""
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(k, vt.shape[0])
    comps = vt[:k].copy()
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    var = s**2
    ratio = var[:k] / var.sum() if var.sum() > 0 else np.full(k, np.nan)
    return comps, ratio, xc @ comps.T


def _pca_rows(dataset: str, label: str, x: NDArray[np.float64], ratings: NDArray[np.float64],
              descriptors: Sequence[str], k: int) -> list[dict[str, object]]:
    _, ratio, scores = principal_components(x, k)
    rows: list[dict[str, object]] = []
    for c in range(scores.shape[1]):
        for j, d in enumerate(descriptors):
            rows.append({"dataset": dataset, "model": label, "method": "pca", "component": c + 1,
                         "explained_variance_ratio": float(ratio[c]), "descriptor": d,
                         "pearson_r": stats.pearson(scores[:, c], ratings[:, j])})
    return rows


def run_probe(
    store: Store,
    dataset: str = "ccmusic",
    model: str | None = None,
    method: str = "ridge",
    template: str = BARE,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    n_components: int = DEFAULT_COMPONENTS,
    train_group: str | None = None,
    test_group: str | None = None,
    seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """Ridge or PCA probes of the audio embeddings (`timbredb query probe`).

    Returns:
        {"probe": ridge rows (dataset, model, method, descriptor, n, alpha_median, pearson_r, r2,
        p_value, zero_shot_r) or pca rows (dataset, model, method, component,
        explained_variance_ratio, descriptor, pearson_r)}.

    Raises:
        AnalysisError: unknown dataset, model, method or group; fewer than 3 stimuli.
    """
    if method not in ("ridge", "pca"):
        raise AnalysisError(f"--method {method!r}: choose ridge or pca")
    if n_permutations < 0 or n_components < 1:
        raise AnalysisError("--permutations must be >= 0 and --components >= 1")
    if (train_group is None) != (test_group is None):
        raise AnalysisError("give both --train-group and --test-group, or neither")
    if method == "pca" and train_group is not None:
        raise AnalysisError("--train-group/--test-group apply to --method ridge only")
    check_query_template(template)
    ratings = rated.load_ratings(store, dataset)
    if train_group is not None:
        groups = ratings.group_names()
        for g in (train_group, test_group):
            if g not in groups:
                raise AnalysisError(f"no group {g!r} in {dataset!r} (groups: {', '.join(groups) or 'none'})")
        if train_group == test_group:
            raise AnalysisError("--train-group and --test-group must differ")
    # pairwise (frame-level) spaces hold distances between clips, not vectors to probe
    spaces = [s for s in rated.resolve_spaces(store, model) if s.has_audio and not s.pairwise]
    ids = [s.space_id for s in spaces]
    audio = rated.audio_vectors(store, dataset, ids)
    text = rated.text_vectors(store, template, ids) if method == "ridge" else {}
    idx = ratings.index()
    rows: list[dict[str, object]] = []
    for space in spaces:
        vecs = audio.get(space.space_id, {})
        names = [s for s in ratings.stimuli if s in vecs]
        if len(names) < rated.MIN_STIMULI:
            continue
        raw = np.stack([vecs[s] for s in names])
        x = rated.unit_rows(raw)
        r = ratings.matrix[[idx[s] for s in names]]
        if method == "pca":
            rows.extend(_pca_rows(dataset, space.label, x, r, ratings.descriptors, n_components))
            continue
        tv = text.get(space.space_id, {})
        zero_shot = {d: rated.cosines(raw, v) for d, v in tv.items()}
        split: tuple[str, str, NDArray[np.bool_], NDArray[np.bool_]] | None = None
        if train_group is not None and test_group is not None:
            member = np.asarray(ratings.groups[[idx[s] for s in names]], dtype=str)
            split = (train_group, test_group, np.asarray(member == train_group), np.asarray(member == test_group))
        rows.extend(_ridge_rows(dataset, space.label, x, r, ratings.descriptors, zero_shot, n_permutations, seed, split))
    if not rows:
        raise AnalysisError(
            f"no model has audio embeddings of at least {rated.MIN_STIMULI} of {dataset!r}'s stimuli"
            + (f" (model {model!r})" if model else "") + "; run `timbredb ingest` for it first"
        )
    schema = RIDGE_SCHEMA if method == "ridge" else PCA_SCHEMA
    return {"probe": pl.DataFrame(rows, schema=schema, orient="row")}
