"""Pairwise spaces: frame-level features compared pair by pair (`mfcc-frames`, `mss-frames`).

timbremetrics' strongest weight-free rows (github.com/tiianhk/timbremetrics
@212c267e, ``examples/evaluate_mfcc.py`` and ``evaluate_mss.py`` with
``time_average=False`` and ``TimbreMetric(pad_to_the_longer_length=True)``)
keep every frame. Frame-level features of clips of different lengths cannot
be compared, so ``metrics.py`` (``_extract_dataset_paired_embeddings``) does,
for each pair of stimuli:

1. zero-pad the shorter **audio** at its end to the longer one's length
   (``utils.to_target_length``; equal lengths are left alone);
2. featurise both padded clips without time averaging (so the reflect padding
   of the STFT and MFCC's top-db cut-off see the appended zeros);
3. flatten each feature (channels x coefficients x frames) and compare:
   L2 = ``torch.norm(a - b)``, cosine distance = ``1 - F.cosine_similarity(a, b)``.

A clip's feature therefore depends on its partner, and there is no vector
per clip: such a space stores one row per pair of clips
(``pair_distances``, keyed by both clips' hashes; see migration 0007) and the
analyses read distances from there. Audio is used with its channels as
loaded (timbremetrics' loader keeps them), at 44.1 kHz (resampled with
libsoxr VHQ only if a file has another rate; the reference does not resample,
and every timbremetrics file read so far is 44.1 kHz).

The distances are accumulated block by block (one block per FFT size, or the
MFCC matrix) in float64, so no flattened feature is ever held whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.audio import RESAMPLER, resample
from timbredb.errors import AudioError, TimbreDBError
from timbredb.models.base import EmbeddingModel
from timbredb.models.mfcc import mfcc_frames_multichannel
from timbredb.models.mss import FFT_SIZES, mss_blocks
from timbredb.parallel import ordered_map

#: torch.nn.functional.cosine_similarity's default eps (the norms' product is clamped to it)
COSINE_EPS = 1e-8
PAD_POLICY = "shorter clip zero-padded at its end to the longer one's length (timbremetrics pad_to_the_longer_length)"


def pad_to(x: NDArray[np.floating], n: int) -> NDArray[np.float64]:
    """(channels, samples) zero-padded at the end to ``n`` samples (timbremetrics ``to_target_length``)."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape[-1] >= n:
        return a[..., :n]
    return np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, n - a.shape[-1])])


class PairwiseModel(EmbeddingModel):
    """A space whose clips are compared pair by pair; it has no per-clip vectors.

    Subclasses yield the blocks of a clip's frame-level feature (``_blocks``);
    ``distances`` pads a pair, featurises both and returns (cosine distance, L2).
    """

    pairwise = True

    def _blocks(self, x: NDArray[np.float64]) -> Iterator[NDArray[np.float64]]:
        raise NotImplementedError

    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        raise TimbreDBError(f"{self.spec.id} compares clips pair by pair; it has no vector per clip")

    def policy_dict(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "resampler": RESAMPLER,
            "channels": "as loaded (no down-mix)",
            "pairs": PAD_POLICY,
            "distances": ["cosine", "l2"],
            **self.extra_policy(),
        }

    def prepare_pcm(self, pcm: NDArray[np.float32], sample_rate: int, source: str) -> NDArray[np.float32]:
        """(frames, channels) PCM as decoded -> (channels, samples) at the model's rate."""
        x = np.ascontiguousarray(np.asarray(pcm, dtype=np.float32).T)
        if sample_rate != self.sample_rate:
            x = np.stack([resample(c, sample_rate, self.sample_rate) for c in x])
        if x.shape[-1] == 0:
            raise AudioError(source, "is empty (0 samples)")
        return x

    def _check_pair(self, a: NDArray[np.floating], b: NDArray[np.floating]) -> int:
        """The pair's padded length; AudioError if the two cannot be compared."""
        if a.shape[0] != b.shape[0]:
            raise AudioError("pair", f"has {a.shape[0]} and {b.shape[0]} channels; {self.spec.id} compares "
                                     "features of clips with the same channel count only")
        n = max(a.shape[-1], b.shape[-1])
        if n < self.min_samples:
            raise AudioError("pair", f"too short for {self.spec.id}: {n} samples, needs at least {self.min_samples}")
        return n

    def _compare(self, fa: list[NDArray[np.float64]], b: NDArray[np.floating], n: int) -> tuple[float, float, int]:
        """Distances between a feature given as flat blocks and clip ``b`` padded to ``n`` samples."""
        dot = na = nb = sq = 0.0
        for xa, blk in zip(fa, self._blocks(pad_to(b, n))):
            xb = blk.ravel()
            dot += float(xa @ xb)
            na += float(xa @ xa)
            nb += float(xb @ xb)
            d = xa - xb
            sq += float(d @ d)
        cos = 1.0 - dot / max(math.sqrt(na * nb), COSINE_EPS)
        return cos, math.sqrt(sq), n

    def _flat_blocks(self, x: NDArray[np.floating], n: int) -> list[NDArray[np.float64]]:
        return [np.ascontiguousarray(blk).ravel() for blk in self._blocks(pad_to(x, n))]

    def distances(self, a: NDArray[np.floating], b: NDArray[np.floating]) -> tuple[float, float, int]:
        """(cosine distance, L2 distance, padded length) of two (channels, samples) clips at the model's rate.

        Raises:
            AudioError: the clips have different channel counts (their features cannot be compared)
                or the padded pair is too short for the feature.
        """
        n = self._check_pair(a, b)
        return self._compare(self._flat_blocks(a, n), b, n)

    def pair_distances(
        self, clips: Mapping[str, NDArray[np.floating]], pairs: Sequence[tuple[str, str]]
    ) -> list[tuple[float, float, int] | AudioError]:
        """``distances`` of many pairs of named clips, in the order given (a problem is returned, not raised).

        The longer clip of a pair is never padded, so pairs are grouped by it and its
        feature is computed once per group; groups run on the shared thread pool.
        """
        groups: dict[str, list[int]] = {}
        for k, (a, b) in enumerate(pairs):
            anchor = a if clips[a].shape[-1] >= clips[b].shape[-1] else b
            groups.setdefault(anchor, []).append(k)

        def run(anchor: str) -> list[tuple[int, tuple[float, float, int] | AudioError]]:
            x = clips[anchor]
            own: list[NDArray[np.float64]] | None = None
            out: list[tuple[int, tuple[float, float, int] | AudioError]] = []
            for k in groups[anchor]:
                a, b = pairs[k]
                other = clips[b if a == anchor else a]
                try:
                    n = self._check_pair(x, other)
                    if own is None:
                        own = self._flat_blocks(x, n)  # n is x's own length
                    out.append((k, self._compare(own, other, n)))
                except AudioError as exc:
                    out.append((k, exc))
            return out

        results: list[tuple[float, float, int] | AudioError | None] = [None] * len(pairs)
        for part in ordered_map(run, list(groups)):
            for k, r in part:
                results[k] = r
        return [r for r in results if r is not None]


class MFCCFramesModel(PairwiseModel):
    """Frame-level MFCC (torchaudio defaults, 40 x frames per channel), compared pair by pair."""

    min_samples = 2048 // 2 + 1

    def _blocks(self, x: NDArray[np.float64]) -> Iterator[NDArray[np.float64]]:
        yield mfcc_frames_multichannel(x, self.sample_rate)

    def extra_policy(self) -> dict[str, Any]:
        return {"feature": "torchaudio MFCC(n_mfcc=40, n_fft=2048, hop 512, 128 HTK mels, top_db 80), every frame"}


class MSSFramesModel(PairwiseModel):
    """Frame-level multi-scale spectrogram (6 FFT sizes, magnitude and log), compared pair by pair."""

    min_samples = FFT_SIZES[0] // 2 + 1

    def _blocks(self, x: NDArray[np.float64]) -> Iterator[NDArray[np.float64]]:
        yield from mss_blocks(x, time_average=False)

    def extra_policy(self) -> dict[str, Any]:
        return {"feature": "torch.stft magnitudes, rectangular window, n_fft 4096..128, hop n_fft/4, lin + log, every frame"}
