"""MS-CLAP through the real `msclap` code against the fake hub cache."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.models import fake_hub
from tests.models.conftest import purge_modules
from tests.synth import harmonic_tone, noise, write
from timbredb.audio import decode, from_array
from timbredb.errors import ModelUnavailableError, VocabularyError
from timbredb.models import registry

pytestmark = pytest.mark.models
SR = 44100


def test_deterministic_windows_and_batch_equals_single(loaded: Callable[..., Any]) -> None:
    m = loaded("ms-clap")
    long = from_array(noise(9.0, sr=SR, seed=11), SR, "long")  # 2 windows of 7 s
    short = from_array(harmonic_tone(440, 2.0, sr=48000), 48000, "short")  # resampled, tiled
    first = m.embed_audio([long])
    assert np.array_equal(first, m.embed_audio([long]))
    together = m.embed_audio([long, short], batch_size=3)
    alone = np.concatenate([m.embed_audio([c], batch_size=1) for c in (long, short)])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together.shape == (2, 1024)


def test_the_file_api_is_never_used(loaded: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from msclap.CLAPWrapper import CLAPWrapper

    def forbidden(*_: Any, **__: Any) -> None:
        raise AssertionError("torchaudio file API used")

    monkeypatch.setattr(CLAPWrapper, "read_audio", forbidden)
    monkeypatch.setattr(CLAPWrapper, "load_audio_into_tensor", forbidden)
    loaded("ms-clap").embed_audio([from_array(noise(1.0, sr=SR), SR, "x")])


def test_stereo_is_down_mixed_where_the_package_concatenates(loaded: Callable[..., Any], tmp_path: Path) -> None:
    m = loaded("ms-clap")
    left, right = harmonic_tone(220, 3.0), noise(3.0, seed=12)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    ours = m.embed_audio([decode(path)])
    mono = from_array((left.astype(np.float64) + right) / 2, SR, "mono")
    np.testing.assert_array_equal(ours, m.embed_audio([mono]))
    concatenated = from_array(np.concatenate([left, right]), SR, "what msclap's loader builds")
    assert not np.allclose(ours, m.embed_audio([concatenated]), atol=1e-3)


def test_texts_without_bang_match_the_package(loaded: Callable[..., Any]) -> None:
    m = loaded("ms-clap")
    texts = ["a warm sound", "bright", "an echo sound"]
    ours = m.embed_texts(texts)
    theirs = m._wrapper.get_text_embeddings(texts).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    alone = np.concatenate([m.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(ours, alone, atol=1e-5)


def test_bang_in_a_text_reads_the_end_of_text_token(loaded: Callable[..., Any]) -> None:
    import torch

    m = loaded("ms-clap")
    text = "bright!"
    ours = m.embed_texts([text])
    # reference: the unpadded sequence through the same GPT-2, state at its last token
    ids = m._wrapper.tokenizer(text + " <|endoftext|>", return_tensors="pt")["input_ids"]
    assert 0 in ids[0].tolist()  # "!" is token 0, the package's pad token
    encoder = m._wrapper.clap.caption_encoder
    with torch.inference_mode():
        hidden = encoder.base(input_ids=ids)[0][:, -1]
        reference = encoder.projection(hidden).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    theirs = m._wrapper.get_text_embeddings([text]).numpy()
    assert not np.allclose(theirs, reference, atol=1e-3)  # the package's trap, for the record


def test_an_overlong_text_is_refused_alone(loaded: Callable[..., Any]) -> None:
    m = loaded("ms-clap")
    long = "warm " * 90
    with pytest.raises(VocabularyError, match="longer than the 77"):
        m.check_text(long)
    m.check_text("a warm sound")


def test_a_checkpoint_that_does_not_cover_the_model_is_refused(loaded: Callable[..., Any], tmp_path: Path) -> None:
    import torch

    m = loaded("ms-clap")
    state = torch.load(m._files["checkpoint"], map_location="cpu", weights_only=True)["model"]
    partial = {k: v for k, v in state.items() if not k.startswith("audio_encoder.projection")}
    path = tmp_path / "partial.pth"
    torch.save({"model": partial}, path)
    with pytest.raises(ModelUnavailableError, match="lacks 4 of the model's"):
        registry.load("ms-clap", device="cpu", weights=path).ensure_loaded()


def test_import_leaves_warning_filters_and_log_level_alone(hf_cache: Path) -> None:
    import torch  # noqa: F401 - its own import-time filters are not msclap's doing
    from transformers.utils import logging as tf_logging

    purge_modules("msclap")  # so that its import-time code runs again
    tf_logging.set_verbosity_warning()
    before = list(warnings.filters)
    m = registry.load("ms-clap", device="cpu")
    m.ensure_loaded()
    assert warnings.filters == before
    assert tf_logging.get_verbosity() == tf_logging.WARNING


@pytest.fixture(scope="module")
def msclap_2022(fake_hub_root: Path, hash_cache: Path) -> None:
    """CNN14 + BERT stand-ins, built only when these tests run (~330 MB)."""
    with fake_hub.pointed_at(fake_hub_root, hash_cache):
        fake_hub.build_bert_model(fake_hub_root)
        fake_hub.build_msclap(fake_hub_root, "2022")


def test_version_2022_cnn14_and_bert(msclap_2022: None) -> None:
    m = registry.load("ms-clap@2022", device="cpu")
    assert m.label == "ms-clap@2022" and m.policy.window_s == 5.0
    clip = from_array(noise(6.0, sr=SR, seed=13), SR, "x")
    v = m.embed_audio([clip])
    assert v.shape == (1, 1024) and np.array_equal(v, m.embed_audio([clip]))
    texts = ["a warm sound", "bright!"]
    t = m.embed_texts(texts)
    np.testing.assert_allclose(t, m._wrapper.get_text_embeddings(texts).numpy(), atol=1e-5)  # BERT: no "!" trap
    with pytest.raises(VocabularyError, match="longer than the 100"):
        m.check_text("warm " * 120)
