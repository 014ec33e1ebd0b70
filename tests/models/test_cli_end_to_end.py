"""The real models through `timbredb models list`, `ingest` and `describe` (CLI, DuckDB)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from tests.conftest import db_rows
from tests.synth import harmonic_tone, noise, write
from timbredb.models import hub

pytestmark = pytest.mark.models
MODELS = "laion-clap,ms-clap,muq-mulan"


def run(db: Path, *args: str) -> Result:
    from timbredb.cli import cli

    result = CliRunner().invoke(cli, ["--db", str(db), "--data-dir", str(db.parent), *args], catch_exceptions=False)
    assert result.exit_code == 0, f"{args}: {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    d = tmp_path / "audio"
    write(d / "tone.wav", harmonic_tone(220, 3.0))
    write(d / "noise.flac", noise(12.0, seed=31))
    write(d / "stereo.wav", np.stack([harmonic_tone(330, 2.0), noise(2.0, seed=32)], axis=1))
    return d



def test_models_list_shows_the_real_models_with_license(tmp_path: Path) -> None:
    table = {r["id"]: r for r in json.loads(run(tmp_path / "s.duckdb", "models", "list", "--format", "json").stdout)}
    for model_id in ("laion-clap", "ms-clap", "muq-mulan"):
        assert table[model_id]["usable"], table[model_id]["reason"]
        assert table[model_id]["license"]
    assert "non-commercial" in table["muq-mulan"]["license"]
    assert table["openflam"]["usable"] or "openflam" in table["openflam"]["reason"]


def test_ingest_and_describe_with_the_real_models(tmp_path: Path, audio_dir: Path) -> None:
    db = tmp_path / "store.duckdb"
    summary = json.loads(run(db, "ingest", str(audio_dir), "--models", MODELS, "--device", "cpu",
                             "--format", "json").stdout)
    assert summary["errors"] == [] and summary["clips_added"] == 3
    assert summary["embeddings_added"] == 9 and summary["text_embeddings_added"] > 0

    dims = dict(db_rows(db, "SELECT s.model_id, min(len(e.embedding)) FROM audio_embeddings e "
                         "JOIN spaces s USING (space_id) GROUP BY 1"))
    assert dims == {"laion-clap": 512, "ms-clap": 1024, "muq-mulan": 512}
    # provenance: checkpoint hash on the space and per batch, package versions, device, dtype
    spaces = dict(db_rows(db, "SELECT model_id, checkpoint_sha256 FROM spaces"))
    from timbredb.models import registry

    for model_id in ("laion-clap", "ms-clap", "muq-mulan"):
        ckpt = next(f for f in registry.load(model_id).hub_files().values() if f.purpose == "checkpoint")
        assert spaces[model_id] == hub.sha256(hub.locate(ckpt))
    batches = db_rows(db, "SELECT s.model_id, b.device, b.dtype, b.provenance FROM embedding_batches b "
                       "JOIN spaces s USING (space_id)")
    assert {m for m, *_ in batches} == {"laion-clap", "ms-clap", "muq-mulan"}
    for model_id, device, dtype, prov in batches:
        p = json.loads(prov)
        assert device == "cpu" and dtype == "float32"
        assert p["checkpoint_sha256"] == spaces[model_id]
        assert p["packages"]["torch"] != "not installed" and p["hub_revisions"]
    packages = {m: json.loads(p)["packages"] for m, _, _, p in batches}
    assert "laion_clap" in packages["laion-clap"] and "msclap" in packages["ms-clap"] and "muq" in packages["muq-mulan"]

    again = json.loads(run(db, "ingest", str(audio_dir), "--models", MODELS, "--format", "json").stdout)
    assert again["embeddings_added"] == 0 and again["text_embeddings_added"] == 0

    paper = json.loads(run(db, "ingest", str(audio_dir / "tone.wav"), "--models", "laion-clap/paper",
                           "--format", "json").stdout)
    assert paper["embeddings_added"] == 1
    labels = {r[0] for r in db_rows(db, "SELECT label FROM spaces")}
    assert {"laion-clap", "laion-clap/paper"} <= labels

    described = json.loads(run(db, "describe", str(audio_dir / "tone.wav"), "--model", "ms-clap", "-k", "3",
                               "--format", "json").stdout)
    assert len(described) == 1 and len(described[0]["descriptors"]) == 3


def test_a_model_that_cannot_load_writes_nothing_and_its_suggested_fix_is_a_real_command(
    tmp_path: Path, audio_dir: Path, hash_cache: Path, fake_hub_root: Path
) -> None:
    """--weights without the tokenizer files: one line, no store created, an existing store unchanged,
    and the command the message suggests exists (it was once `models fetch laion-clap+weights-…`)."""
    import hashlib
    import re
    import shutil

    from tests.models import fake_hub
    from timbredb.cli import cli

    checkpoint = next(fake_hub_root.rglob("630k-audioset-best.pt"))
    weights = shutil.copy(checkpoint, tmp_path / "mine.pt")
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    db = tmp_path / "new.duckdb"
    existing = tmp_path / "old.duckdb"
    run(existing, "ingest", str(audio_dir / "tone.wav"), "--models", "mfcc")
    before = hashlib.sha256(existing.read_bytes()).hexdigest()
    with fake_hub.pointed_at(empty, hash_cache):
        for store in (db, existing):
            result = CliRunner().invoke(cli, ["--db", str(store), "--data-dir", str(tmp_path), "ingest", str(audio_dir),
                                              "--models", "laion-clap", "--weights", str(weights)])
            assert result.exit_code == 1, result.output
            assert result.stderr.startswith("timbredb: error:") and result.stderr.count("\n") == 1, result.stderr
        assert not db.exists() and not db.with_name(db.name + ".wal").exists()
        assert hashlib.sha256(existing.read_bytes()).hexdigest() == before
        suggested = re.findall(r"`(timbredb [^`]+)`", result.stderr)
        assert suggested, result.stderr
        for command in suggested:
            args = command.split()[1:]
            out = CliRunner().invoke(cli, ["--db", str(tmp_path / "probe.duckdb"), *args])
            assert out.exit_code in (0, 1), (command, out.output)  # 2 would be a usage error
            assert "unknown model" not in out.output and "No such command" not in out.output, (command, out.output)
