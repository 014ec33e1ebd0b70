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
