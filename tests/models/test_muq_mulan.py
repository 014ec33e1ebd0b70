"""MuQ-MuLan through the real `muq` code against the fake hub cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.synth import harmonic_tone, noise
from timbredb.audio import from_array
from timbredb.errors import AudioError, ModelUnavailableError, TimbreDBError
from timbredb.models import registry

pytestmark = pytest.mark.models
SR = 24000


def test_deterministic_and_batch_equals_single(loaded: Callable[..., Any]) -> None:
    m = loaded("muq-mulan")
    long = from_array(noise(25.0, sr=SR, seed=21), SR, "long")
    short = from_array(harmonic_tone(220, 2.0, sr=44100), 44100, "short")
    first = m.embed_audio([long])
    assert np.array_equal(first, m.embed_audio([long]))
    together = m.embed_audio([long, short], batch_size=4)
    alone = np.concatenate([m.embed_audio([c], batch_size=1) for c in (long, short)])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)  # re-normalised mean


def test_paper_policy_is_the_package_forward_whose_mean_is_not_renormalised(loaded: Callable[..., Any]) -> None:
    import torch

    m = loaded("muq-mulan")
    paper = registry.load("muq-mulan/paper", device="cpu")
    paper._module, paper._loaded = m._module, True
    # three unlike clips: near silence, a tone, loud noise
    x = np.concatenate([noise(10.0, sr=SR, seed=22, level=0.001), harmonic_tone(110, 10.0, sr=SR, level=0.9),
                        noise(5.0, sr=SR, seed=23, level=1.0)])
    v = paper.embed_audio([from_array(x, SR, "long")])
    with torch.inference_mode():
        theirs = m._module(wavs=torch.from_numpy(x)[None]).numpy()
    np.testing.assert_allclose(v, theirs, atol=1e-6)
    assert np.linalg.norm(v) < 0.95  # mean of three unit vectors, as the package returns it


def test_a_text_does_not_depend_on_its_batch(loaded: Callable[..., Any]) -> None:
    import torch

    m = loaded("muq-mulan")
    texts = ["warm", "a very bright and warm piano sound", "dark", "an echo sound"]
    together = m.embed_texts(texts)
    alone = np.concatenate([m.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    with torch.inference_mode():
        padded = m._module(texts=texts).numpy()  # the package pads "warm" and averages the padding in
    assert not np.allclose(padded[0], alone[0], atol=1e-3)


def test_train_mode_is_undone_and_checked(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from muq import MuQMuLan

    m = registry.load("muq-mulan", device="cpu")
    m.ensure_loaded()
    assert not any(mod.training for mod in m._module.modules())
    clip = from_array(noise(3.0, sr=SR, seed=23), SR, "x")
    assert np.array_equal(m.embed_audio([clip]), m.embed_audio([clip]))  # dropout is off
    assert np.array_equal(m.embed_texts(["warm"]), m.embed_texts(["warm"]))
    # the model is built in train mode (dropout on); were eval() to leave a module training, loading stops
    monkeypatch.setattr(MuQMuLan, "eval", lambda self: self)
    with pytest.raises(TimbreDBError, match="still in train mode"):
        registry.load("muq-mulan", device="cpu").ensure_loaded()


def test_too_short_audio_is_an_audio_error(loaded: Callable[..., Any]) -> None:
    import torch

    m = loaded("muq-mulan")
    with pytest.raises(AudioError, match="too short for muq-mulan"):
        m.embed_audio([from_array(noise(512 / SR, sr=SR), SR, "tiny")])
    paper = registry.load("muq-mulan/paper", device="cpu")
    paper._module, paper._loaded = m._module, True
    assert paper.embed_audio([from_array(noise(513 / SR, sr=SR, seed=2), SR, "ok")]).shape == (1, 512)
    with pytest.raises(RuntimeError), torch.inference_mode():
        m._module(wavs=torch.zeros(1, 512))  # what the guard prevents
    with pytest.raises(TypeError):
        m._module(wavs=np.zeros((1, SR), dtype=np.float32))  # numpy is rejected by the package


def test_transformers_5_is_reported_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda n: "5.1.0" if n == "transformers" else real(n))
    avail = registry.availability(registry.specs()["muq-mulan"])
    assert not avail.usable and "transformers 4.x" in avail.reason and "transformers>=4.40,<5" in avail.reason
    with pytest.raises(ModelUnavailableError):
        registry.load("muq-mulan")
    # --weights skips the availability check; loading still refuses
    local = tmp_path / "w.bin"
    local.write_bytes(b"not read")
    with pytest.raises(ModelUnavailableError, match="transformers 4.x"):
        registry.load("muq-mulan", device="cpu", weights=local).ensure_loaded()


def test_loading_sends_no_request_even_with_an_online_hub_session(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hf_constants
    import requests
    import transformers.utils.hub as tf_hub
    from huggingface_hub.utils import get_session, reset_sessions

    sent: list[str] = []

    def no_network(self: Any, request: Any, *_: Any, **__: Any) -> None:
        sent.append(str(request.url))
        raise requests.ConnectionError("tests never reach the network")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", no_network)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tf_hub, "_is_offline_mode", False)
    reset_sessions()
    get_session()  # built online, as after `models fetch` in the same process
    try:
        m = registry.load("muq-mulan", device="cpu")
        m.ensure_loaded()
        m.embed_texts(["warm"])  # the text tower loads its tokenizer lazily
    finally:
        reset_sessions()
    assert sent == []


def test_local_weights_must_cover_the_model(loaded: Callable[..., Any], tmp_path: Path) -> None:
    import torch

    m = loaded("muq-mulan")
    state = torch.load(m._files["checkpoint"], map_location="cpu", weights_only=True)
    good = tmp_path / "muq.bin"
    torch.save(state, good)
    local = registry.load("muq-mulan", device="cpu", weights=good)
    clip = from_array(noise(3.0, sr=SR, seed=24), SR, "x")
    np.testing.assert_allclose(local.embed_audio([clip]), m.embed_audio([clip]), atol=1e-6)
    del state["mulan.audio_to_latents.weight"]
    bad = tmp_path / "bad.bin"
    torch.save(state, bad)
    with pytest.raises(ModelUnavailableError, match="lacks 1 of"):
        registry.load("muq-mulan", device="cpu", weights=bad).ensure_loaded()


def test_float16_is_refused_before_loading() -> None:
    with pytest.raises(TimbreDBError, match="bfloat16"):
        registry.load("muq-mulan", device="cuda", dtype="float16")
