"""describe and the FAISS indexes, on synthesized audio and the real Audealize data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CLI, db_rows
from tests.synth import harmonic_tone, highpassed, lowpassed, noise, write
from timbredb.index import VectorIndex, audio_index, check_indexes, text_index
from timbredb.models import load
from timbredb.store import Store

DARK_FAMILY = {"dark", "warm", "heavy", "deep", "low", "muffled"}


@pytest.fixture
def filtered_noise(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write(tmp_path / "low.wav", lowpassed(noise(2.0, seed=3), 500)),
        write(tmp_path / "high.wav", highpassed(noise(2.0, seed=4), 4000)),
    )


def _scores(result_json: str) -> list[dict[str, float]]:
    return [{d["descriptor"]: d["score"] for d in item["descriptors"]} for item in json.loads(result_json)]


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


def test_describe_low_passed_noise_is_dark_and_high_passed_is_bright(cli: CLI, filtered_noise: tuple[Path, Path]) -> None:
    low, high = filtered_noise
    result = cli("describe", str(low), str(high), "--model", "socialfx-eq", "-k", "60", "--format", "json")
    low_s, high_s = _scores(result.stdout)
    # the files were never ingested, yet they are described
    for scores in (low_s, high_s):
        assert "bright" in scores and "warm" in scores and "dark" in scores
    assert low_s["warm"] > low_s["bright"] and low_s["dark"] > low_s["bright"]
    assert high_s["bright"] > high_s["warm"] and high_s["bright"] > high_s["dark"]
    top3_low = sorted(low_s, key=low_s.get, reverse=True)[:12]
    assert DARK_FAMILY & set(top3_low)
    # best first by the calibrated score; each word also carries its raw cosine
    for item in json.loads(result.stdout):
        s = [d["score"] for d in item["descriptors"]]
        assert s == sorted(s, reverse=True) and s == [d["calibrated"] for d in item["descriptors"]]
        assert all(-1.0001 <= d["cosine"] <= 1.0001 for d in item["descriptors"])
        # two files, no store: calibrated against the synthesized reference set
        assert item["calibration"] == {"kind": "synthetic", "n_clips": 48, "ranked_by": "calibrated"}
    by_cosine = json.loads(cli("describe", str(low), "--model", "socialfx-eq", "-k", "60", "--rank", "cosine",
                               "--format", "json").stdout)[0]["descriptors"]
    cos = [d["cosine"] for d in by_cosine]
    assert cos == sorted(cos, reverse=True) and [d["score"] for d in by_cosine] == cos


def test_describe_table_output_and_k(cli: CLI, filtered_noise: tuple[Path, Path]) -> None:
    low, _ = filtered_noise
    out = cli("describe", str(low), "--model", "socialfx-eq", "-k", "3").stdout
    assert str(low) in out and len([l for l in out.splitlines() if l.strip()[:1].isdigit()]) == 3


def test_describe_bad_file_is_one_line_and_others_still_described(cli: CLI, filtered_noise: tuple[Path, Path], tmp_path: Path) -> None:
    low, _ = filtered_noise
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    result = cli("describe", str(bad), str(low), "--model", "socialfx-eq", "--format", "json", ok=False)
    assert result.exit_code == 1
    assert [item["file"] for item in json.loads(result.stdout)] == [str(low)]
    errors = [l for l in result.stderr.splitlines() if "error" in l]
    assert len(errors) == 1 and "bad.wav" in errors[0]


def test_describe_word_file_vocabulary_and_out_of_vocabulary_words(cli: CLI, filtered_noise: tuple[Path, Path], tmp_path: Path) -> None:
    low, _ = filtered_noise
    vocab = tmp_path / "words.txt"
    vocab.write_text("# my words\nbright\nwarm, dark\nzzzunknown\n")
    result = cli("describe", str(low), "--model", "socialfx-eq", "--vocabulary", str(vocab), "--format", "json")
    words = [d["descriptor"] for d in json.loads(result.stdout)[0]["descriptors"]]
    assert sorted(words) == ["bright", "dark", "warm"]
    assert "outside its vocabulary" in result.stderr and "zzzunknown" in result.stderr


def test_socialfx_vocabulary_error_says_how_to_list_it(data_dir: Path) -> None:
    from timbredb.errors import VocabularyError

    model = load("socialfx-eq", data_dir=data_dir)
    with pytest.raises(VocabularyError, match="timbredb models vocabulary socialfx-eq"):
        model.embed_texts(["a zzzunknown sound"])
    assert model.embed_texts(["an echo-free bright sound"]).shape == (1, 40)  # template words are ignored


def test_models_vocabulary_lists_the_words(cli: CLI) -> None:
    from tests.synthetic_data import EQ_WORDS

    words = cli("models", "vocabulary", "socialfx-eq").stdout.split()
    assert words == sorted(EQ_WORDS)  # the English words of eqpoints.json, not the Spanish one


def test_faiss_search_equals_brute_force(tmp_path: Path, data_dir: Path) -> None:
    from timbredb.ingest import Ingestor

    store = Store(tmp_path / "f.duckdb")
    model = load("socialfx-eq", data_dir=data_dir)
    ing = Ingestor(store, [model])
    files = [write(tmp_path / "a" / f"{i}.wav", lowpassed(noise(0.5, seed=i), 200 + 400 * i)) for i in range(10)]
    ing.add_files(files)
    words = model.vocabulary()
    prompts = ing.add_descriptors(words)
    idx = text_index(store, model.space_id, prompts)
    keys, text = store.text_matrix(model.space_id, prompts)
    hashes, audio = store.audio_matrix(model.space_id)
    tn = text / np.linalg.norm(text, axis=1, keepdims=True)
    an = audio / np.linalg.norm(audio, axis=1, keepdims=True)
    brute = an @ tn.T
    for row, hits in enumerate(idx.search(audio, 7)):
        order = np.argsort(-brute[row], kind="stable")[:7]
        np.testing.assert_allclose([s for _, s in hits], brute[row, order], atol=1e-5)
        assert [keys.index(k) for k, _ in hits][:3] == list(order[:3])
    aidx = audio_index(store, model.space_id)
    for row, hits in enumerate(aidx.search(audio, 3)):
        assert hits[0][0] == hashes[row] and abs(hits[0][1] - 1.0) < 1e-5
    store.close()


def test_indexes_are_rebuilt_when_stale_or_missing(tmp_path: Path, data_dir: Path) -> None:
    from timbredb.ingest import Ingestor

    store = Store(tmp_path / "s.duckdb")
    model = load("mfcc", data_dir=data_dir)
    ing = Ingestor(store, [model])
    ing.add_files([write(tmp_path / "a" / f"{i}.wav", harmonic_tone(100 + 50 * i, 0.3)) for i in range(3)])
    idx = audio_index(store, model.space_id)
    assert len(idx.keys) == 3
    assert [s.state for s in check_indexes(store)] == ["fresh"]
    # new rows make the index stale; check repairs it
    ing.add_files([write(tmp_path / "a" / "new.wav", harmonic_tone(700, 0.3))])
    states = check_indexes(store)
    assert [(s.state, s.n_rows) for s in states] == [("rebuilt", 4)]
    assert len(audio_index(store, model.space_id).keys) == 4
    # a deleted file is rebuilt too
    for f in store.index_dir.glob("*.index"):
        f.unlink()
    assert [s.state for s in check_indexes(store, repair=False)] == ["missing-file"]
    assert [s.state for s in check_indexes(store)] == ["rebuilt"]
    assert [s.state for s in check_indexes(store)] == ["fresh"]
    # files are replaced atomically: no temporary files are left behind
    assert not list(store.index_dir.glob("*.tmp"))
    store.close()


def test_check_cli_reports_and_repairs(cli: CLI, filtered_noise: tuple[Path, Path], db: Path) -> None:
    low, high = filtered_noise
    cli("ingest", str(low.parent), "--models", "mfcc")
    out = json.loads(cli("check", "--format", "json").stdout)
    assert [m["status"] for m in out["migrations"]] == ["applied"] * len(out["migrations"])
    assert all(r["offending_rows"] == 0 for r in out["integrity"])
    assert {i["state"] for i in out["indexes"]} <= {"rebuilt", "fresh"}
    out2 = json.loads(cli("check", "--format", "json").stdout)
    assert {i["state"] for i in out2["indexes"]} == {"fresh"}


def _index_store(tmp_path: Path, data_dir: Path) -> tuple[Store, object, list[str]]:
    from timbredb.ingest import Ingestor

    store = Store(tmp_path / "d.duckdb")
    model = load("socialfx-eq", data_dir=data_dir)
    ing = Ingestor(store, [model])
    ing.add_files([write(tmp_path / "a" / f"{i}.wav", lowpassed(noise(0.5, seed=i), 300 + 700 * i)) for i in range(6)])
    prompts = ing.add_descriptors(model.vocabulary())
    return store, model, prompts


@pytest.mark.parametrize("damage", ["reorder-vectors", "truncate", "random-bytes", "delete", "keys-edited"])
def test_a_damaged_index_file_is_detected_and_rebuilt(tmp_path: Path, data_dir: Path, damage: str) -> None:
    """A parseable file whose vectors were reordered (header intact) must not answer: sha256 catches it."""
    import faiss

    store, model, prompts = _index_store(tmp_path, data_dir)
    _, audio = store.audio_matrix(model.space_id)
    good = text_index(store, model.space_id, prompts)
    expected = good.search(audio, 3)
    path = store.index_dir / f"{good.name}.index"
    if damage == "reorder-vectors":
        idx = faiss.read_index(str(path))
        vectors = faiss.rev_swig_ptr(idx.get_xb(), idx.ntotal * idx.d).reshape(idx.ntotal, idx.d).copy()
        shuffled = faiss.IndexFlatIP(idx.d)
        shuffled.add(vectors[::-1].copy())
        faiss.write_index(shuffled, str(path))
        # the damage is real: the damaged file parses and answers differently
        wrong = [[k for k, _ in hits] for hits in VectorIndex(good.name, good.keys, shuffled).search(audio, 3)]
        assert wrong != [[k for k, _ in hits] for hits in expected]
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    elif damage == "delete":
        path.unlink()
    else:
        keys = store.index_dir / f"{good.name}.keys.json"
        keys.write_text(keys.read_text().replace(prompts[0], prompts[1], 1))
    states = {s.index_name: s.state for s in check_indexes(store, repair=False)}
    assert states[good.name] == ("missing-file" if damage == "delete" else "damaged")
    again = text_index(store, model.space_id, prompts)  # rebuilt transparently
    assert again.search(audio, 3) == expected
    assert {s.index_name: s.state for s in check_indexes(store, repair=False)}[good.name] == "fresh"
    store.close()


def test_describe_writes_nothing_and_never_creates_a_store(cli: CLI, filtered_noise: tuple[Path, Path], tmp_path: Path,
                                                          db: Path) -> None:
    import hashlib

    low, _ = filtered_noise
    assert not db.exists()
    cli("describe", str(low), "--model", "socialfx-eq")
    assert not db.exists() and not db.with_name(db.name + ".faiss").exists()
    cli("ingest", str(low.parent), "--models", "mfcc")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    out = json.loads(cli("describe", str(low), "--model", "socialfx-eq", "--format", "json").stdout)
    assert out[0]["descriptors"]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing
    # --save stores the vocabulary and its text vectors
    cli("describe", str(low), "--model", "socialfx-eq", "--save")
    assert db_rows(db, "SELECT count(*) FROM text_vectors WHERE list_contains(vocabularies, 'study')")[0][0] > 0
