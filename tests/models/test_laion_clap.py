"""LAION-CLAP through the real `laion_clap` code against the fake hub cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.synth import harmonic_tone, noise, write
from timbredb.audio import decode, from_array
from timbredb.errors import ModelUnavailableError, VocabularyError
from timbredb.models import hub, registry

pytestmark = pytest.mark.models
SR = 48000


def test_long_audio_twice_gives_bit_identical_vectors(loaded: Callable[..., Any]) -> None:
    m = loaded("laion-clap")
    clip = from_array(noise(13.0, sr=SR, seed=3), SR, "long")  # 2 windows, the last aligned to the end
    first = m.embed_audio([clip])
    second = m.embed_audio([clip])
    assert first.dtype == np.float32 and first.shape == (1, 512)
    assert np.array_equal(first, second)
    assert abs(np.linalg.norm(first) - 1.0) < 1e-5


def test_the_package_never_crops_at_random(loaded: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import laion_clap.training.data as data

    def no_random(*_: Any, **__: Any) -> None:
        raise AssertionError("the package's random crop ran")

    monkeypatch.setattr(data.np.random, "randint", no_random)
    monkeypatch.setattr(data.np.random, "choice", no_random)
    m = loaded("laion-clap")
    m.embed_audio([from_array(noise(11.0, sr=SR, seed=4), SR, "long")])


def test_batch_equals_single(loaded: Callable[..., Any]) -> None:
    m = loaded("laion-clap")
    clips = [
        from_array(noise(12.0, sr=SR, seed=5), SR, "a"),
        from_array(harmonic_tone(220, 3.0, sr=44100), 44100, "b"),  # resampled, padded
    ]
    together = m.embed_audio(clips, batch_size=3)
    alone = np.concatenate([m.embed_audio([c], batch_size=1) for c in clips])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_stereo_is_down_mixed_not_concatenated(loaded: Callable[..., Any], tmp_path: Path) -> None:
    m = loaded("laion-clap")
    left, right = harmonic_tone(220, 4.0, sr=SR), noise(4.0, sr=SR, seed=7)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), sr=SR, subtype="FLOAT")
    stereo = decode(path)
    assert stereo.channels == 2
    mono = from_array((left.astype(np.float64) + right) / 2, SR, "mono")
    np.testing.assert_array_equal(m.embed_audio([stereo]), m.embed_audio([mono]))


def test_short_clips_repeat_then_pad_as_laion_trained(loaded: Callable[..., Any]) -> None:
    m = loaded("laion-clap")
    x = harmonic_tone(330, 3.0, sr=SR)
    manual = np.zeros(10 * SR, dtype=np.float32)
    manual[: 9 * SR] = np.tile(x, 3)
    short, padded = from_array(x, SR, "short"), from_array(manual, SR, "m")
    np.testing.assert_array_equal(m.embed_audio([short]), m.embed_audio([padded]))


def test_loud_input_is_not_clipped_by_default_but_is_in_the_paper_policy(loaded: Callable[..., Any]) -> None:
    x = 3.0 * harmonic_tone(110, 10.0, sr=SR, level=1.0)  # peaks at 3x full scale
    loud, clipped = from_array(x, SR, "loud"), from_array(np.clip(x, -1, 1), SR, "clipped")
    m = loaded("laion-clap")
    assert not np.allclose(m.embed_audio([loud]), m.embed_audio([clipped]), atol=1e-4)
    paper = registry.load("laion-clap/paper", device="cpu")
    paper._module, paper._loaded, paper._files = m._module, True, m._files  # same weights, other policy
    np.testing.assert_array_equal(paper.embed_audio([loud]), paper.embed_audio([clipped]))
    # paper policy = the first 10 s, like the package's call but without the random offset
    long = noise(12.0, sr=SR, seed=8)
    np.testing.assert_array_equal(
        paper.embed_audio([from_array(long, SR, "l")]), paper.embed_audio([from_array(long[: 10 * SR], SR, "f")])
    )


def test_forward_passes_run_without_autograd(loaded: Callable[..., Any]) -> None:
    import torch

    m = loaded("laion-clap")
    seen: list[bool] = []
    hooks = [
        m._module.model.audio_branch.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled())),
        m._module.model.text_branch.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled())),
    ]
    try:
        m.embed_audio([from_array(noise(2.0, sr=SR), SR, "x")])
        m.embed_texts(["a warm sound"])
    finally:
        for h in hooks:
            h.remove()
    assert seen == [True, True]


def test_texts_embed_batch_invariantly_and_long_texts_are_refused(loaded: Callable[..., Any]) -> None:
    m = loaded("laion-clap")
    texts = ["warm", "a bright sound", "an echo sound"]
    together = m.embed_texts(texts)
    alone = np.concatenate([m.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    with pytest.raises(VocabularyError, match="longer than the 77"):
        m.embed_texts(["warm " * 100])


def test_fresh_load_is_silent_offline_strict_and_on_the_requested_device(
    loaded: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import torch
    import wget
    from laion_clap import CLAP_Module

    def forbidden(*_: Any, **__: Any) -> None:
        raise AssertionError("must not be called")

    loaded("laion-clap")  # package imported already; capture only this load
    capfd.readouterr()
    monkeypatch.setattr(wget, "download", forbidden)
    monkeypatch.setattr(CLAP_Module, "load_ckpt", forbidden)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the package would pick cuda:0
    m = registry.load("laion-clap", device="cpu")
    m.ensure_loaded()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert {p.device.type for p in m._module.parameters()} == {"cpu"}
    assert not m._module.training
    prov = m.provenance()
    assert prov["device"] == "cpu" and prov["checkpoint_sha256"] == hub.sha256(m._files["checkpoint"])
    assert prov["packages"]["laion_clap"] != "not installed"
    assert prov["checkpoint_file"] == "630k-audioset-best.pt"


def test_checkpoints_without_position_ids_load_and_broken_ones_are_refused(
    loaded: Callable[..., Any], tmp_path: Path
) -> None:
    import torch

    reference = loaded("laion-clap")
    obj = torch.load(reference._files["checkpoint"], map_location="cpu", weights_only=False)  # the training wrapper (test-built)
    state = obj["state_dict"]
    del state["module.text_branch.embeddings.position_ids"]  # the package's load_ckpt raises KeyError here
    plain = tmp_path / "no-position-ids.pt"
    torch.save({"state_dict": state}, plain)
    m = registry.load("laion-clap", device="cpu", weights=plain)
    clip = from_array(noise(3.0, sr=SR, seed=9), SR, "x")
    np.testing.assert_array_equal(m.embed_audio([clip]), reference.embed_audio([clip]))
    assert m.checkpoint_sha256 == hub.sha256(plain) != reference.checkpoint_sha256
    # other weights, other space: ingest must not count the published checkpoint's vectors as these
    assert m.space_id != reference.space_id
    assert m.label == f"laion-clap+weights-{hub.sha256(plain)[:8]}" and reference.label == "laion-clap"

    del state["module.audio_projection.0.weight"]
    broken = tmp_path / "broken.pt"
    torch.save({"state_dict": state}, broken)
    with pytest.raises(ModelUnavailableError, match="missing 1"):
        registry.load("laion-clap", device="cpu", weights=broken).ensure_loaded()


def test_a_missing_tokenizer_is_reported_before_the_package_reaches_for_the_hub(
    hf_cache: Path, hash_cache: Path, tmp_path: Path
) -> None:
    from tests.models import fake_hub

    partial = tmp_path / "hub"
    partial.mkdir()
    for repo in hf_cache.iterdir():
        if repo.name != "models--bert-base-uncased":
            (partial / repo.name).symlink_to(repo)
    with fake_hub.pointed_at(partial, hash_cache):
        model = registry.load("laion-clap", device="cpu", check=False)
        with pytest.raises(ModelUnavailableError, match=r"bert-base-uncased/vocab\.txt.*fetch laion-clap"):
            model.ensure_loaded()


@pytest.fixture(scope="module")
def other_checkpoints(fake_hub_root: Path, hash_cache: Path) -> None:
    """A feature-fusion and an HTSAT-base (music) checkpoint, built only for these tests (~480 MB)."""
    from tests.models import fake_hub

    with fake_hub.pointed_at(fake_hub_root, hash_cache):
        fake_hub.build_laion(fake_hub_root, names=("630k-audioset-fusion-best", "music_audioset_epoch_15_esc_90.14"))


@pytest.mark.parametrize("checkpoint", ["630k-audioset-fusion-best", "music_audioset_epoch_15_esc_90.14"])
def test_fusion_and_htsat_base_checkpoints(checkpoint: str, other_checkpoints: None) -> None:
    m = registry.load(f"laion-clap@{checkpoint}", device="cpu")
    assert m.extra_policy()["audio_encoder"] == ("HTSAT-base" if checkpoint.startswith("music") else "HTSAT-tiny")
    clips = [from_array(noise(13.0, sr=SR, seed=10), SR, "long"), from_array(noise(3.0, sr=SR, seed=11), SR, "short")]
    together = m.embed_audio(clips, batch_size=3)
    assert np.array_equal(together, m.embed_audio(clips, batch_size=3))
    np.testing.assert_allclose(together, np.concatenate([m.embed_audio([c], batch_size=1) for c in clips]), atol=1e-5)
    assert m.embed_texts(["a warm sound"]).shape == (1, 512)
    assert m.space_id != registry.load("laion-clap").space_id


def test_sample_rates_are_converted_and_empty_audio_never_reaches_the_model(loaded: Callable[..., Any]) -> None:
    from timbredb.errors import AudioError

    m = loaded("laion-clap")
    at_44k = from_array(harmonic_tone(220, 4.0, sr=44100), 44100, "44.1k")
    at_48k = from_array(harmonic_tone(220, 4.0, sr=SR), SR, "48k")
    # what a package that does not check rates would see: 44.1 kHz samples read as 48 kHz
    misread = from_array(harmonic_tone(220, 4.0, sr=44100), SR, "misread")
    v44, v48, bad = (m.embed_audio([c])[0] for c in (at_44k, at_48k, misread))
    assert float(v44 @ v48) > 1 - 1e-4
    assert float(v44 @ v48) - float(bad @ v48) > 1e-4  # the rate matters, and is honoured
    with pytest.raises(AudioError, match="empty"):
        from_array(np.zeros(0, dtype=np.float32), SR, "empty")
