"""`describe` ranks by a calibrated score: hub words stop topping every sound, the bright–dark axis stays."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.ccmusic_fixture import spectral_centroid_hz
from tests.conftest import CLI
from tests.synth import harmonic_tone, write


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """48 harmonic 'notes' across 8 pitches and 6 spectral tilts, and each one's spectral centroid."""
    folder = tmp_path_factory.mktemp("notes")
    centroid = {}
    for f0 in np.geomspace(80.0, 1500.0, 8):
        for rolloff in np.linspace(0.4, 3.0, 6):
            x = harmonic_tone(float(f0), 1.0, n_harmonics=40, rolloff=float(rolloff))
            path = write(folder / f"note-{f0:.0f}-{rolloff:.2f}.wav", x)
            centroid[str(path)] = spectral_centroid_hz(x)
    return folder, centroid


def _describe(cli: CLI, folder: Path, *extra: str) -> list[dict]:
    out = cli("describe", str(folder), "--model", "socialfx-eq", "--vocabulary", "study", "-k", "60",
              "--format", "json", *extra)
    return json.loads(out.stdout)


def test_calibrated_top_word_is_not_one_hub_word_and_the_bright_dark_axis_holds(
    cli: CLI, notes: tuple[Path, dict[str, float]]
) -> None:
    folder, centroid = notes
    cli("ingest", str(folder), "--models", "socialfx-eq")  # 48 stored clips: the store is the reference
    described = _describe(cli, folder)
    assert len(described) == 48
    assert all(d["calibration"] == {"kind": "store", "n_clips": 48, "ranked_by": "calibrated"} for d in described)
    top = Counter(d["descriptors"][0]["descriptor"] for d in described)
    raw = Counter(d["descriptors"][0]["descriptor"] for d in _describe(cli, folder, "--rank", "cosine"))
    # calibrated, no word wins over a quarter of the notes, and many words win some
    assert max(top.values()) <= 48 // 4, (top, raw)
    assert len(top) >= 6, top
    # the bright-dark axis follows the notes' spectral centroid, raw and calibrated
    log_centroid, raw_axis, z_axis = [], [], []
    for d in described:
        by = {w["descriptor"]: w for w in d["descriptors"]}
        log_centroid.append(np.log(centroid[d["file"]]))
        raw_axis.append(by["bright"]["cosine"] - by["dark"]["cosine"])
        z_axis.append(by["bright"]["calibrated"] - by["dark"]["calibrated"])
    assert stats.spearmanr(raw_axis, log_centroid).statistic >= 0.6
    assert stats.spearmanr(z_axis, log_centroid).statistic >= 0.6


def test_calibrated_scores_equal_an_independent_standardisation(cli: CLI, notes: tuple[Path, dict[str, float]],
                                                               db: Path) -> None:
    from timbredb.models import load
    from timbredb.store import Store
    from timbredb.vocabularies import BUILTIN

    folder, _ = notes
    cli("ingest", str(folder), "--models", "socialfx-eq")
    described = _describe(cli, folder)
    model = load("socialfx-eq", data_dir=cli.data_dir)
    words = [w for w in BUILTIN["study"] if w in set(model.vocabulary())]
    text = model.embed_texts(words)
    with Store(db, read_only=True) as store:
        hashes, audio = store.audio_matrix(model.space_id)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    cos = unit(audio) @ unit(text).T  # reference: every stored clip
    z = stats.zscore(cos, axis=0, ddof=0)
    from timbredb.audio import decode

    for first in described[:5]:
        i = hashes.index(decode(first["file"]).sha256)
        mine = {w: z[i, j] for j, w in enumerate(words)}
        for d in first["descriptors"]:
            assert d["calibrated"] == pytest.approx(mine[d["descriptor"]], abs=1e-4)
            assert d["cosine"] == pytest.approx(cos[i, words.index(d["descriptor"])], abs=1e-5)


def test_a_hub_word_near_every_sound_tops_raw_cosine_but_not_the_calibrated_rank() -> None:
    """The mechanism on a constructed space: word 0 is the mean direction of the sounds (a hub)."""
    from timbredb.describe import Calibration

    rng = np.random.default_rng(0)
    sounds = rng.normal(size=(200, 16)) + 3.0  # every sound shares a common direction
    words = rng.normal(size=(10, 16))
    words[0] = sounds.mean(axis=0)  # the hub
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    cos = unit(sounds) @ unit(words).T
    assert (cos.argmax(axis=1) == 0).mean() > 0.9  # raw: the hub wins nearly everything
    calib = Calibration(cos.mean(axis=0), cos.std(axis=0), "store", 200)
    z = np.stack([calib.z(row) for row in cos])
    np.testing.assert_allclose(z, stats.zscore(cos, axis=0), atol=1e-12)
    assert (z.argmax(axis=1) == 0).mean() < 0.25
    # a word whose cosine never varies scores 0, not inf/NaN
    flat = Calibration(np.array([0.5]), np.array([0.0]), "synthetic", 3)
    assert flat.z(np.array([0.7])).tolist() == [0.0]
