"""The `paper` policies reproduce the study's calls (lindseydeng/timbre-semantics-release @ ca2ae10c).

Each test puts timbredb's `paper` vectors beside what the package itself returns for
the study's call on the same input: MuQ-MuLan's one call per text list, MS-CLAP's and
LAION-CLAP's file APIs (on files short enough that the packages do not crop at random),
and MuQ-MuLan's forward on ``librosa.load(sr=24000, mono=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.synth import harmonic_tone, noise, write
from timbredb.audio import decode
from timbredb.errors import TimbreDBError
from timbredb.ingest import Ingestor
from timbredb.models import registry
from timbredb.store import Store
from timbredb.vocabularies import AUDEALIZE_EQ, AUDEALIZE_REVERB, BARE, CCMUSIC, STUDY_TEXT_CALLS

pytestmark = pytest.mark.models


def sharing(name: str, loaded_model: Any, *attrs: str) -> Any:
    """``name`` (another policy) on the weights ``loaded_model`` has loaded already."""
    other = registry.load(name, device="cpu")
    for a in ("_files", "_revisions", "_pin_checks", "_sha", "_device", *attrs):
        setattr(other, a, getattr(loaded_model, a))
    other._loaded = True
    return other


@pytest.fixture
def stereo_files(tmp_path: Path) -> dict[str, Path]:
    """Stereo files of unlike channels, short enough that no package crops at random."""
    out = {}
    for sr, seconds, subtype in ((44100, 3.0, "FLOAT"), (48000, 2.0, "PCM_16")):
        left, right = harmonic_tone(220, seconds, sr=sr), noise(seconds, sr=sr, seed=sr, level=0.3)
        out[f"{sr}"] = write(tmp_path / f"stereo-{sr}.wav", np.stack([left, right], axis=1), sr=sr, subtype=subtype)
    return out


# ---------------------------------------------------------------- MuQ-MuLan texts
def test_muq_paper_texts_are_the_studys_one_call_vectors(loaded: Callable[..., Any], tmp_path: Path) -> None:
    import torch

    default = loaded("muq-mulan")
    paper = sharing("muq-mulan/paper", default, "_module", "_tokenizer", "max_tokens")
    assert paper.label == "muq-mulan/paper" and paper.space_id != default.space_id
    with Store(tmp_path / "s.duckdb") as store:
        ingestor = Ingestor(store, [paper, default], batch_size=4)
        # as the datasets register them: CCMusic's 16 words in alphabetical order, Audealize's
        # 35 prompts word by word; batches of 32 cut through both lists
        ingestor.add_descriptors(list(CCMUSIC), [BARE], vocabulary="ccmusic")
        ingestor.add_descriptors(list(dict.fromkeys(AUDEALIZE_EQ + AUDEALIZE_REVERB)), ["a {} sound"])
        ingestor.add_descriptors(["warm", "a very bright and warm piano sound"], [BARE])
        for texts in STUDY_TEXT_CALLS.values():
            with torch.inference_mode():
                one_call = default._module(texts=list(texts)).numpy()  # the study's call
                alone = np.concatenate([default._module(texts=[t]).numpy() for t in texts])
            keys, ours = store.text_matrix(paper.space_id, list(texts))
            assert keys == list(texts)
            np.testing.assert_array_equal(ours, one_call)
            _, batch_invariant = store.text_matrix(default.space_id, list(texts))
            np.testing.assert_allclose(batch_invariant, alone, rtol=0, atol=1e-6)
            # the one call pads the shorter texts to the longest and averages the padding in
            differs = ~np.isclose(one_call, alone, rtol=0, atol=1e-4).all(axis=1)
            assert 0 < differs.sum() < len(texts)
        # a text of no study list has no study vector: the batch-invariant one
        outside = ["warm", "a very bright and warm piano sound"]
        np.testing.assert_allclose(store.text_matrix(paper.space_id, outside)[1],
                                   store.text_matrix(default.space_id, outside)[1], rtol=0, atol=1e-6)
    assert paper.policy_dict()["study_text_calls_sha256"] and "study_text_calls_sha256" not in default.policy_dict()


def test_the_study_text_lists_are_the_releases() -> None:
    exp1, exp2 = STUDY_TEXT_CALLS["exp1"], STUDY_TEXT_CALLS["exp2"]
    from timbredb.datasets.ccmusic import HUB_TO_HISTORICAL

    assert exp1 == tuple(HUB_TO_HISTORICAL.values()) and sorted(exp1) == sorted(CCMUSIC)
    # design.py::text_prompt, and the set sorted as Python sorts it: "an echo sound" last
    words = set(AUDEALIZE_EQ) | set(AUDEALIZE_REVERB)
    assert len(words) == 35 and exp2 == tuple(sorted(f"{'an' if w == 'echo' else 'a'} {w} sound" for w in words))
    assert exp2[0] == "a bass sound" and exp2[-2:] == ("a warm sound", "an echo sound")


# ---------------------------------------------------------------- MS-CLAP audio
@pytest.fixture
def file_api_decoder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """msclap's file API decodes with torchaudio.load, which needs torchcodec; where that is not
    installed, the same (channels, frames) float32 tensor is read with libsndfile."""
    import soundfile as sf
    import torch

    from timbredb.models._compat import import_torchaudio

    torchaudio = import_torchaudio()
    probe = write(tmp_path / "probe.wav", harmonic_tone(220, 0.1))
    try:
        torchaudio.load(str(probe))
    except ImportError:
        def load(path: str, *_: Any, **__: Any) -> tuple[Any, int]:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
            return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)

        monkeypatch.setattr(torchaudio, "load", load)


def test_ms_clap_paper_on_stereo_files_is_the_file_api(
    loaded: Callable[..., Any], stereo_files: dict[str, Path], file_api_decoder: None, tmp_path: Path
) -> None:
    default = loaded("ms-clap")
    paper = sharing("ms-clap/paper", default, "_wrapper")
    assert paper.needs_channels and "joined end to end" in paper.policy_dict()["mono"]
    theirs = {}
    for rate, path in stereo_files.items():  # 48 kHz: torchaudio's resampler, as the file API's
        theirs[rate] = default._wrapper.get_audio_embeddings([str(path)]).numpy()  # the study's call
        np.testing.assert_allclose(paper.embed_audio([decode(path, keep_channels=True)]), theirs[rate],
                                   rtol=0, atol=1e-5)
    down_mixed = default.embed_audio([decode(stereo_files["44100"])])
    assert not np.allclose(down_mixed, theirs["44100"] / np.linalg.norm(theirs["44100"]), atol=1e-3)
    # through ingest: the ingestor decodes with the channels because the policy needs them
    with Store(tmp_path / "s.duckdb") as store:
        stored = Ingestor(store, [paper]).add_files([stereo_files["44100"]])
        _, vectors = store.audio_matrix(paper.space_id, [stored[0].clip_sha256])
    np.testing.assert_allclose(vectors, theirs["44100"], rtol=0, atol=1e-5)
    with pytest.raises(TimbreDBError, match="without its channels"):
        paper.embed_audio([decode(stereo_files["44100"])])


def test_ms_clap_default_policy_still_down_mixes(loaded: Callable[..., Any], stereo_files: dict[str, Path]) -> None:
    m = loaded("ms-clap")
    assert not m.needs_channels
    with_channels = m.embed_audio([decode(stereo_files["44100"], keep_channels=True)])
    np.testing.assert_array_equal(with_channels, m.embed_audio([decode(stereo_files["44100"])]))


# ---------------------------------------------------------------- LAION-CLAP and MuQ-MuLan audio
def test_laion_paper_on_a_short_file_is_the_file_api(
    loaded: Callable[..., Any], stereo_files: dict[str, Path]
) -> None:
    default = loaded("laion-clap")
    paper = sharing("laion-clap/paper", default, "_module", "_tokenizer")
    path = stereo_files["44100"]  # resampled to 48 kHz by librosa.load in the file API
    theirs = default._module.get_audio_embedding_from_filelist(x=[str(path)], use_tensor=False)
    np.testing.assert_allclose(paper.embed_audio([decode(path)]), theirs, rtol=0, atol=1e-5)


def test_muq_paper_audio_is_the_forward_on_librosa_load(
    loaded: Callable[..., Any], stereo_files: dict[str, Path]
) -> None:
    import librosa
    import torch

    default = loaded("muq-mulan")
    paper = sharing("muq-mulan/paper", default, "_module", "_tokenizer", "max_tokens")
    path = stereo_files["44100"]
    wav, _ = librosa.load(str(path), sr=24000, mono=True)  # the study's loader
    with torch.inference_mode():
        theirs = default._module(wavs=torch.from_numpy(wav)[None]).numpy()
    np.testing.assert_allclose(paper.embed_audio([decode(path)]), theirs, rtol=0, atol=1e-6)
