"""`timbredb models verify`: are a model's cached files the pinned ones, and does it run?

For each model: every file it needs is looked up in the Hugging Face cache and
compared with its pin (``timbredb.models.pins``); then the model is loaded once
(timed) and embeds a one-second test tone (and, if it has a text encoder, one
prompt), so a broken install, a file that does not fit the architecture or a
device problem shows up here rather than in the middle of an ingest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timbredb.audio import from_array
from timbredb.errors import TimbreDBError, VocabularyError
from timbredb.models import pins
from timbredb.models.fetch import check_cached, files_for
from timbredb.models.registry import SPECS, availability, load, parse_name

#: the test tone: 1 s of a 440 Hz tone with three harmonics, peak 0.5
TONE_S = 1.0
TONE_HZ = 440.0
TEST_PROMPT = "a bright sound"


def test_tone(sample_rate: int, f0_hz: float = TONE_HZ) -> np.ndarray:
    """One second of a harmonic tone (default 440 Hz) at ``sample_rate`` (float32, peak 0.5)."""
    t = np.arange(int(TONE_S * sample_rate)) / sample_rate
    x = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in (1, 2, 3))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


@dataclass
class Verified:
    """The outcome for one model.

    Attributes:
        model: the name checked (``id[@checkpoint][/policy]``).
        status: "ok", "failed" or "skipped" (not usable here and not named explicitly).
        reason: why it failed or was skipped ("" when ok).
        files: one check per cached file (see ``pins.FileCheck``).
        device, dtype: where and in what precision it ran.
        load_s: seconds to load the weights (first use), None if it did not load.
        audio_norm: L2 norm of the test tone's vector (None for pairwise models).
        text_norm: L2 norm of the test prompt's vector (None for audio-only models).
        pair_distance: pairwise models (no vector per clip): the cosine distance between the
            test tone and the same tone a fifth higher (the tone's distance to itself must be 0).
    """

    model: str
    status: str
    reason: str = ""
    files: list[pins.FileCheck] = field(default_factory=list)
    device: str | None = None
    dtype: str | None = None
    load_s: float | None = None
    audio_norm: float | None = None
    text_norm: float | None = None
    pair_distance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "status": self.status, "reason": self.reason, "device": self.device,
            "dtype": self.dtype, "load_s": self.load_s, "audio_norm": self.audio_norm, "text_norm": self.text_norm,
            "pair_distance": self.pair_distance, "files": [f.to_dict() for f in self.files],
        }


def verify(
    names: list[str] | None = None,
    *,
    device: str = "auto",
    dtype: str = "float32",
    data_dir: Path | None = None,
    allow_unpinned: bool = False,
) -> list[Verified]:
    """Check the cache and run each model once on a test tone.

    Args:
        names: models to check; None or empty = every registered model (those not
            usable here are "skipped", named ones that are not usable "failed").
        device, dtype: as for ingest.
        data_dir: the data root (for models built from data files).
        allow_unpinned: load files whose sha256 is not the pinned one (still reported).

    Returns:
        one result per model, in the order given (registry order by default).
    """
    explicit = bool(names)
    return [_verify_one(n, explicit, device, dtype, data_dir, allow_unpinned) for n in (names or [s.id for s in SPECS])]


def _verify_one(name: str, explicit: bool, device: str, dtype: str, data_dir: Path | None,
                allow_unpinned: bool) -> Verified:
    spec, checkpoint = parse_name(name.partition("/")[0])
    out = Verified(model=name, status="ok", dtype=dtype)
    try:
        out.files = check_cached(name, allow_unpinned=True)  # reported here; enforced below
    except TimbreDBError as exc:
        return Verified(model=name, status="failed", reason=str(exc))
    avail = availability(spec, data_dir, checkpoint)
    if not avail.usable:
        out.status, out.reason = ("failed" if explicit else "skipped"), f"unavailable: {avail.reason}"
        return out
    mismatched = [f for f in out.files if f.status == pins.MISMATCH]
    if mismatched and not allow_unpinned:
        out.status = "failed"
        out.reason = pins.mismatch_message(name, mismatched[0], f"re-fetch it (`timbredb models fetch {name}`)")
        return out
    try:
        model = load(name, device=device, dtype=dtype, data_dir=data_dir, allow_unpinned=allow_unpinned)
        t0 = time.perf_counter()
        model.ensure_loaded()
        out.load_s = time.perf_counter() - t0
        out.device = model.device
        if model.pairwise:
            return _verify_pairwise(model, out)
        tone = from_array(test_tone(model.sample_rate), model.sample_rate, f"test-tone:{TONE_HZ:g}Hz")
        vector = model.embed_audio([tone])[0]
        out.audio_norm = float(np.linalg.norm(vector.astype(np.float64)))
        if model.spec.has_text:
            try:
                text = model.embed_texts([TEST_PROMPT])[0]
                out.text_norm = float(np.linalg.norm(text.astype(np.float64)))
            except VocabularyError:
                pass  # a closed vocabulary without the test prompt's word
    except TimbreDBError as exc:
        out.status, out.reason = "failed", str(exc)
        return out
    if not (out.audio_norm and np.isfinite(out.audio_norm)):
        out.status, out.reason = "failed", f"the test tone's vector has norm {out.audio_norm}"
    if not files_for(name) and out.status == "ok":
        out.reason = "no weights (nothing to check in the cache)"
    return out


def _verify_pairwise(model: Any, out: Verified) -> Verified:
    """A pairwise model has no vector per clip: compare the test tone with itself and with a fifth above."""
    sr = model.sample_rate
    tone = model.prepare_pcm(test_tone(sr)[:, None], sr, "test-tone")
    fifth = model.prepare_pcm(test_tone(sr, TONE_HZ * 1.5)[:, None], sr, "test-tone-fifth")
    itself = model.distances(tone, tone)[0]
    out.pair_distance = float(model.distances(tone, fifth)[0])
    if not (np.isfinite(out.pair_distance) and out.pair_distance > 0 and abs(itself) < 1e-6):
        out.status = "failed"
        out.reason = (f"the test tone's distance to itself is {itself:.3g} and to a fifth above "
                      f"{out.pair_distance:.3g} (expected 0 and > 0)")
    else:
        out.reason = "no weights (nothing to check in the cache); pairwise: tone vs a fifth above"
    return out
