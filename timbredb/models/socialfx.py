"""`socialfx-eq`: a text-capable acoustic baseline grounded in human data.

Text side: for a descriptor word, the EQ curve that Audealize/SocialFX
contributors drew for it (``audealize/eqpoints.json``, 40 bands), min-max
normalised to [-1, 1] as Audealize does, minus its mean.

Audio side: the clip's 40-band spectral profile at the same centre frequencies,
in dB relative to pink noise (equal power per octave), minus its mean. Each
band's power is the clip's average power spectrum (Hann frames of 16384
samples at 44.1 kHz, hop 8192) weighted by a Gaussian on log-frequency centred
on the band with the bandwidth of Audealize's Q = 4.31 peaking filters (-3 dB at
+/- 1/6 octave). The reference is the same weighting applied to an ideal 1/f
spectrum on the same frequency grid, so pink noise has a flat (all-zero) profile.

Both sides are mean-removed, so their cosine is the Pearson correlation between
"how this clip's spectrum departs from pink" and "how people EQ a sound to make
it <word>": a sound that looks EQ'd toward a word scores near 1. Overall level
does not matter. The vocabulary is closed: the English words of eqpoints.json
(`timbredb models vocabulary socialfx-eq`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from timbredb.audio import StreamedAudio
from timbredb.config import resolve_data_dir
from timbredb.datasets.audealize import eqpoints_path, load_eq_curves, normalise_curve
from timbredb.eq_bands import EQ_CENTRES_HZ
from timbredb.errors import VocabularyError
from timbredb.models._frames import frames_of
from timbredb.models.base import Availability, EmbeddingModel, ModelSpec, sha256_file
from timbredb.parallel import one_blas_thread

N_FFT = 16384
HOP = 8192
# -3 dB at +/- 1/6 octave, the bandwidth of a Q = 4.31 peaking filter
SIGMA_OCT = (1.0 / 6.0) / np.sqrt(2.0 * np.log(2.0))
FLOOR_DB = -100.0
# words of prompt templates, never descriptors ("a {} sound")
_TEMPLATE_WORDS = frozenset({"a", "an", "the", "sound", "sounds", "sounding", "of", "with", "and", "very", "is", "this"})


def availability(spec: ModelSpec, data_dir: Path | None, checkpoint: str) -> Availability:
    path = eqpoints_path(resolve_data_dir(data_dir))
    if not path.is_file():
        return Availability(
            False, f"needs {path} (Audealize EQ descriptors): pass --data-dir or set TIMBREDB_DATA_DIR"
        )
    return Availability(True, "")


def band_weights(sample_rate: int, n_fft: int = N_FFT) -> NDArray[np.float64]:
    """(40, n_fft//2+1) Gaussian-on-log-frequency band weights (zero at DC)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    w = np.zeros((len(EQ_CENTRES_HZ), freqs.shape[0]))
    pos = freqs > 0
    octaves = np.log2(freqs[pos][None, :] / np.asarray(EQ_CENTRES_HZ, dtype=np.float64)[:, None])
    w[:, pos] = np.exp(-0.5 * (octaves / SIGMA_OCT) ** 2)
    return w


def average_power_spectrum(x: NDArray[np.float32], n_fft: int = N_FFT, hop: int = HOP) -> NDArray[np.float64]:
    """Mean periodogram over Hann frames; a clip shorter than a frame is zero-padded."""
    x64 = x.astype(np.float64)
    if x64.shape[0] < n_fft:
        x64 = np.pad(x64, (0, n_fft - x64.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(x64, n_fft)[::hop]
    window = np.hanning(n_fft)
    spec = np.fft.rfft(frames * window, axis=1)
    return (spec.real**2 + spec.imag**2).mean(axis=0)


class SocialFXEQModel(EmbeddingModel):
    """Spectral profile vs crowd-sourced EQ curves (see module doc)."""

    # NumPy only and cheap to build: ingest workers compute its vectors (timbredb.ingest.pipeline)
    worker_embeds = True

    min_samples = 1024

    def _load(self) -> None:
        data_dir = resolve_data_dir(self.data_dir)
        self._path = eqpoints_path(data_dir)
        self._curves = load_eq_curves(data_dir)
        self._sha = sha256_file(self._path)
        self._weights = band_weights(self.sample_rate)
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / self.sample_rate)
        pink = np.zeros_like(freqs)
        pink[1:] = 1.0 / freqs[1:]
        self._ref_db = 10.0 * np.log10(self._weights @ pink)

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha if self._loaded else None

    def extra_provenance(self) -> dict[str, object]:
        return {"eqpoints": str(self._path)}

    def vocabulary(self) -> list[str]:
        """The words this baseline can embed."""
        self.ensure_loaded()
        return sorted(self._curves)

    def word_for(self, text: str) -> str:
        """The vocabulary word a prompt is about ("a warm sound" -> "warm")."""
        self.ensure_loaded()
        t = text.strip().lower()
        if t in self._curves:
            return t
        tokens = [w for w in re.findall(r"[a-z][a-z'\-]*", t) if w not in _TEMPLATE_WORDS]
        hits = [w for w in dict.fromkeys(tokens) if w in self._curves]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise VocabularyError(
                f"socialfx-eq: {text!r} is not in its vocabulary of {len(self._curves)} Audealize EQ words "
                "(list them with `timbredb models vocabulary socialfx-eq`)"
            )
        raise VocabularyError(f"socialfx-eq: {text!r} names several vocabulary words ({', '.join(hits)}); use one")

    def check_text(self, text: str) -> None:
        self.word_for(text)

    def _embed_texts(self, texts: list[str]) -> NDArray[np.float32]:
        out = []
        for t in texts:
            c = normalise_curve(self._curves[self.word_for(t)])
            out.append(c - c.mean())
        return np.asarray(out, dtype=np.float32)

    def profile_db(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        """40-band level in dB relative to pink noise (not mean-removed)."""
        bands = self._weights @ average_power_spectrum(x)
        level = 10.0 * np.log10(np.maximum(bands, 1e-300)) - self._ref_db
        return np.maximum(level, level.max() + FLOOR_DB)

    def _embed_windows(self, windows: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        out = []
        with one_blas_thread():  # the same bits on any number of cores (timbredb.parallel)
            for w in windows:
                p = self.profile_db(w)
                out.append(p - p.mean())
        return np.asarray(out, dtype=np.float32)

    def _embed_whole_stream(self, blocks: Iterable[NDArray[np.float32]], audio: StreamedAudio) -> NDArray[np.float64]:
        # the mean periodogram is a running sum over the same Hann frames average_power_spectrum cuts
        window = np.hanning(N_FFT)
        total = np.zeros(N_FFT // 2 + 1)
        count = 0
        for frames in frames_of(blocks, N_FFT, HOP, center=False):
            spec = np.fft.rfft(frames * window, axis=1)
            total += (spec.real**2 + spec.imag**2).sum(axis=0)
            count += frames.shape[0]
        with one_blas_thread():
            bands = self._weights @ (total / count)
        level = 10.0 * np.log10(np.maximum(bands, 1e-300)) - self._ref_db
        p = np.maximum(level, level.max() + FLOOR_DB)
        return p - p.mean()
