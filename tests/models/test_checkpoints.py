"""Checkpoints with the published files' structure, pins, `models fetch` checks and `models verify`.

The stand-ins (tests/models/fake_hub.py) carry what the real files carry: LAION-CLAP's
training wrapper with an optimizer state that needs ``weights_only=False`` and the
``position_ids`` buffer; MS-CLAP's derived buffers and GPT-2 ``attn.bias``/``masked_bias``
extras; an old MuQ-MuLan cache holding ``pytorch_model.bin`` beside a safetensors file with
``weight_g``/``weight_v`` names. Derived caches hold the other layouts.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from tests.conftest import db_rows
from tests.models import fake_hub
from tests.synth import harmonic_tone, noise, write
from timbredb.audio import decode, from_array
from timbredb.errors import ModelUnavailableError
from timbredb.models import hub, pins, registry

pytestmark = pytest.mark.models


def cli(db: Path, *args: str, expect: int = 0) -> Result:
    from timbredb.cli import cli as main

    result = CliRunner().invoke(main, ["--db", str(db), "--data-dir", str(db.parent), *args], catch_exceptions=False)
    assert result.exit_code == expect, f"{args}: {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    d = tmp_path / "audio"
    write(d / "tone.wav", harmonic_tone(220, 2.0))
    write(d / "stereo.wav", np.stack([harmonic_tone(330, 1.5), noise(1.5, seed=41)], axis=1))
    return d


def provenance(db: Path) -> dict[str, dict[str, Any]]:
    rows = db_rows(db, "SELECT s.model_id, b.provenance FROM embedding_batches b JOIN spaces s USING (space_id) "
                      "WHERE b.modality = 'audio'")
    return {m: json.loads(p) for m, p in rows}


def checkpoint_path(root: Path, repo: str, name: str) -> Path:
    return root / ("models--" + repo.replace("/", "--")) / "snapshots" / fake_hub.commit_for(repo) / name


def test_the_published_structures_load_through_ingest_strict(hf_cache: Path, audio: Path, tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open

    laion = checkpoint_path(hf_cache, "lukewys/laion_clap", "630k-audioset-best.pt")
    with pytest.raises(pickle.UnpicklingError):  # the optimizer's numpy learning rate
        torch.load(laion, map_location="cpu", weights_only=True)
    wrapper = torch.load(laion, map_location="cpu", weights_only=False)
    assert {"epoch", "name", "state_dict", "optimizer", "scaler"} <= set(wrapper)
    assert "module.text_branch.embeddings.position_ids" in wrapper["state_dict"]
    msclap = torch.load(checkpoint_path(hf_cache, "microsoft/msclap", "CLAP_weights_2023.pth"), weights_only=True)
    keys = set(msclap["model"])
    assert {"caption_encoder.base.h.0.attn.bias", "caption_encoder.base.h.0.attn.masked_bias"} <= keys
    assert sum(k.endswith("relative_position_index") for k in keys) == 12
    muq_snap = checkpoint_path(hf_cache, "OpenMuQ/MuQ-MuLan-large", "config.json").parent
    with safe_open(str(muq_snap / "model.safetensors"), framework="pt") as f:
        legacy = [k for k in f.keys() if k.endswith(("weight_g", "weight_v"))]
    assert len(legacy) == 2 and (muq_snap / "pytorch_model.bin").is_file()

    db = tmp_path / "store.duckdb"
    summary = json.loads(cli(db, "ingest", str(audio), "--models", "laion-clap,ms-clap,muq-mulan", "--device", "cpu",
                             "--strict", "--format", "json").stdout)
    assert summary["errors"] == [] and summary["embeddings_added"] == 6
    prov = provenance(db)
    assert prov["laion-clap"]["checkpoint_weights_only"] is False
    assert prov["muq-mulan"]["checkpoint_file"] == "pytorch_model.bin"
    assert prov["muq-mulan"]["checkpoint_files_ignored"] == ["model.safetensors"]
    assert prov["muq-mulan"]["checkpoint_keys_renamed"] == []
    assert prov["laion-clap"]["pins"]["lukewys/laion_clap/630k-audioset-best.pt"]["status"] == "ok"
    assert prov["ms-clap"]["pins"]["microsoft/msclap/CLAP_weights_2023.pth"]["status"] == "ok"
    assert prov["muq-mulan"]["pins"]["OpenMuQ/MuQ-MuLan-large/pytorch_model.bin"]["status"] == "unpinned"


@pytest.fixture(scope="module")
def no_derived_buffers(fake_hub_root: Path, hash_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("hub-msclap-no-derived") / "hub"
    with fake_hub.pointed_at(fake_hub_root, hash_cache):
        fake_hub.msclap_without_derived_buffers(fake_hub_root, dest)
    return dest


def test_ms_clap_without_the_derived_buffers_is_the_same_model(
    no_derived_buffers: Path, hash_cache: Path, loaded: Callable[..., Any], audio: Path, tmp_path: Path
) -> None:
    import torch

    with fake_hub.pointed_at(no_derived_buffers, hash_cache):
        ckpt = hub.locate(hub.HubFile("microsoft/msclap", ("CLAP_weights_2023.pth",)))
        assert ckpt is not None
        keys = set(torch.load(ckpt, map_location="cpu", weights_only=True)["model"])
        assert not any(k.endswith(("relative_position_index", "attn_mask")) for k in keys)
        db = tmp_path / "s.duckdb"
        summary = json.loads(cli(db, "ingest", str(audio), "--models", "ms-clap", "--device", "cpu", "--strict",
                                 "--format", "json").stdout)
    assert summary["errors"] == [] and summary["embeddings_added"] == 2
    ((stored,),) = db_rows(db, "SELECT e.embedding FROM audio_embeddings e JOIN clip_files f USING (clip_sha256) "
                               "WHERE f.path LIKE '%tone.wav'")
    # the buffers msclap recomputed are the ones the full checkpoint stores: the same vectors
    # (up to float32 batching: ingest embedded both files in one forward pass)
    expected = loaded("ms-clap").embed_audio([decode(audio / "tone.wav")])[0]
    np.testing.assert_allclose(np.asarray(stored, dtype=np.float32), expected, rtol=0, atol=1e-6)


def test_a_checkpoint_with_weights_the_model_lacks_is_refused(loaded: Callable[..., Any], tmp_path: Path) -> None:
    import torch

    state = torch.load(loaded("ms-clap")._files["checkpoint"], map_location="cpu", weights_only=True)["model"]
    state["audio_encoder.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ModelUnavailableError, match=r"has 1 weight\(s\) the 2023 model does not.*extra_head"):
        registry.load("ms-clap", device="cpu", weights=path).ensure_loaded()


@pytest.fixture(scope="module")
def muq_bin_only(fake_hub_root: Path, hash_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("hub-muq-bin") / "hub"
    with fake_hub.pointed_at(fake_hub_root, hash_cache):
        fake_hub.muq_variant(fake_hub_root, dest, ("pytorch_model.bin",))
    return dest


def test_muq_mulan_with_the_bin_only_loads_through_ingest_strict(
    muq_bin_only: Path, hash_cache: Path, audio: Path, tmp_path: Path
) -> None:
    with fake_hub.pointed_at(muq_bin_only, hash_cache):
        db = tmp_path / "s.duckdb"
        summary = json.loads(cli(db, "ingest", str(audio), "--models", "muq-mulan", "--device", "cpu", "--strict",
                                 "--format", "json").stdout)
    assert summary["errors"] == [] and summary["embeddings_added"] == 2
    prov = provenance(db)["muq-mulan"]
    assert prov["checkpoint_file"] == "pytorch_model.bin" and prov["checkpoint_files_ignored"] == []


def test_muq_mulan_old_safetensors_alone_loads_with_its_names_mapped(
    fake_hub_root: Path, hash_cache: Path, loaded: Callable[..., Any], tmp_path: Path
) -> None:
    reference = loaded("muq-mulan")
    clip = from_array(noise(3.0, sr=24000, seed=43), 24000, "x")
    expected = reference.embed_audio([clip])
    dest = tmp_path / "hub"
    fake_hub.muq_variant(fake_hub_root, dest, ("model.safetensors",))
    with fake_hub.pointed_at(dest, hash_cache):
        m = registry.load("muq-mulan", device="cpu")
        np.testing.assert_array_equal(m.embed_audio([clip]), expected)  # every weight, none random
        prov = m.provenance()
    assert prov["checkpoint_file"] == "model.safetensors"
    assert sorted(k.rsplit(".", 1)[1] for k in prov["checkpoint_keys_renamed"]) == ["weight_g", "weight_v"]


def test_the_old_safetensors_names_are_the_bin_weights(fake_hub_root: Path, hf_cache: Path) -> None:
    """For the record: the package's from_pretrained on the old cache loads model.safetensors, and
    torch's weight_norm load hook renames weight_g/weight_v, so the weights equal the .bin's; the
    refusal the issue reports came from a key check that compared names only."""
    import torch
    from muq import MuQMuLan

    from timbredb.models import _compat

    with _compat.contained(), _compat.offline():
        model = MuQMuLan.from_pretrained("OpenMuQ/MuQ-MuLan-large")
    bin_state = torch.load(checkpoint_path(hf_cache, "OpenMuQ/MuQ-MuLan-large", "pytorch_model.bin"),
                           map_location="cpu", weights_only=True)
    state = model.state_dict()
    assert set(state) == set(bin_state) and all(torch.equal(v, bin_state[k]) for k, v in state.items())


def test_muq_mulan_is_not_built_by_from_pretrained(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from muq import MuQMuLan

    def forbidden(*_: Any, **__: Any) -> None:
        raise AssertionError("from_pretrained prefers model.safetensors and loads non-strictly")

    monkeypatch.setattr(MuQMuLan, "from_pretrained", forbidden)
    registry.load("muq-mulan", device="cpu").ensure_loaded()


# ---------------------------------------------------------------- pins
@pytest.fixture(scope="module")
def tampered(no_derived_buffers: Path, fake_hub_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache whose MS-CLAP checkpoint is another file (a loadable one) under the published pin."""
    dest = tmp_path_factory.mktemp("hub-tampered") / "hub"
    other = hub_file(no_derived_buffers, "microsoft/msclap", "CLAP_weights_2023.pth")
    fake_hub.variant(fake_hub_root, dest, "microsoft/msclap", {"CLAP_weights_2023.pth": other})
    manifest = json.loads((fake_hub_root / fake_hub.PINS_FILE).read_text())
    (dest / fake_hub.PINS_FILE).write_text(json.dumps(manifest))  # the original file's pin
    return dest


def hub_file(root: Path, repo: str, name: str) -> Path:
    snaps = list((root / ("models--" + repo.replace("/", "--")) / "snapshots").iterdir())
    return next(s / name for s in snaps if (s / name).exists())


def test_a_tampered_weights_file_is_refused_with_both_digests(
    tampered: Path, fake_hub_root: Path, hash_cache: Path, tmp_path: Path, audio: Path
) -> None:
    expected = hub.sha256(hub_file(fake_hub_root, "microsoft/msclap", "CLAP_weights_2023.pth"))
    actual = hub.sha256(hub_file(tampered, "microsoft/msclap", "CLAP_weights_2023.pth"))
    assert expected != actual
    with fake_hub.pointed_at(tampered, hash_cache):
        with pytest.raises(pins.ChecksumMismatch) as err:
            registry.load("ms-clap", device="cpu").ensure_loaded()
        message = str(err.value)
        assert "\n" not in message and "CLAP_weights_2023.pth" in message
        assert f"expected sha256 {expected}, actual {actual}" in message and "--allow-unpinned" in message

        from timbredb.models.fetch import fetch

        with pytest.raises(pins.ChecksumMismatch, match=actual):
            fetch("ms-clap")  # cached: no download, but the check runs
        assert fetch("ms-clap", allow_unpinned=True).name == "CLAP_weights_2023.pth"

        db = tmp_path / "s.duckdb"
        failed = cli(db, "ingest", str(audio / "tone.wav"), "--models", "ms-clap", "--device", "cpu", expect=1)
        assert f"expected sha256 {expected}, actual {actual}" in failed.stderr
        cli(db, "ingest", str(audio / "tone.wav"), "--models", "ms-clap", "--device", "cpu", "--allow-unpinned",
            "--strict")
        prov = provenance(db)["ms-clap"]["pins"]["microsoft/msclap/CLAP_weights_2023.pth"]
        assert prov == {"status": "mismatch", "expected_sha256": expected,
                        "pinned_revision": fake_hub.commit_for("microsoft/msclap")}
        # not the published weights: a space of their own, never mixed with the pinned file's vectors
        labels = db_rows(db, "SELECT DISTINCT s.label FROM audio_embeddings e JOIN spaces s USING (space_id)")
        assert labels == [(f"ms-clap+weights-{actual[:8]}",)]
        assert registry.load("ms-clap", allow_unpinned=True).space_id != registry.load("ms-clap").space_id

        out = cli(db, "models", "verify", "ms-clap", "--device", "cpu", expect=1)
        assert "mismatch" in out.stdout and expected in out.stdout and actual in out.stdout


def test_models_verify_checks_the_cache_and_runs_each_model(hf_cache: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    results = {r["model"]: r for r in json.loads(cli(db, "models", "verify", "--device", "cpu",
                                                     "--format", "json").stdout)}
    assert list(results) == [s.id for s in registry.SPECS]  # every model, registry order
    for model_id in ("laion-clap", "ms-clap", "muq-mulan", "mfcc"):
        r = results[model_id]
        assert r["status"] == "ok", r
        assert r["device"] == "cpu" and r["dtype"] == "float32" and r["load_s"] >= 0
        assert r["audio_norm"] > 0 and np.isfinite(r["audio_norm"])
    # the default policies L2-normalise the pooled audio vector; LAION-CLAP and MuQ-MuLan text
    # vectors are unit length, MS-CLAP's are the projection's raw output
    for model_id in ("laion-clap", "ms-clap", "muq-mulan"):
        assert abs(results[model_id]["audio_norm"] - 1) < 1e-4
    assert abs(results["laion-clap"]["text_norm"] - 1) < 1e-4 and abs(results["muq-mulan"]["text_norm"] - 1) < 1e-4
    assert results["ms-clap"]["text_norm"] > 0 and results["mfcc"]["text_norm"] is None
    statuses = {(f["repo_id"], f["filename"]): f["status"] for r in results.values() for f in r["files"]}
    assert statuses[("lukewys/laion_clap", "630k-audioset-best.pt")] == "ok"
    assert statuses[("microsoft/msclap", "CLAP_weights_2023.pth")] == "ok"
    assert statuses[("OpenMuQ/MuQ-MuLan-large", "pytorch_model.bin")] == "unpinned"
    assert statuses[("gpt2", "vocab.json")] == "unpinned"
    laion = next(f for f in results["laion-clap"]["files"] if f["filename"] == "630k-audioset-best.pt")
    assert laion["sha256"] == laion["expected_sha256"] == hub.sha256(laion["path"])
    assert results["openflam"]["status"] in ("skipped", "ok")
    assert results["socialfx-eq"]["status"] == "skipped"  # no audealize data in this data dir
    for model_id in ("mfcc-frames", "mss-frames"):  # pairwise: no vector per clip, a distance instead
        r = results[model_id]
        assert r["status"] == "ok" and r["audio_norm"] is None and 0 < r["pair_distance"] <= 2, r

    table = cli(db, "models", "verify", "mfcc", "muq-mulan", "--device", "cpu").stdout
    assert "load_s" in table and "audio_norm" in table and "OpenMuQ/MuQ-MuLan-large/pytorch_model.bin: unpinned" in table
    missing = cli(db, "models", "verify", "socialfx-eq", expect=1)
    assert "unavailable" in missing.stdout and "verification failed for socialfx-eq" in missing.stderr
