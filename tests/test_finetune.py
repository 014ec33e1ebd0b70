"""`timbredb finetune` and `query finetune` with the socialfx-eq baseline (no model weights needed).

What is checked, each against an independent computation:
- the split never lets a held-out (source, word) pair, or a held-out variant's audio, into training;
- the learning check: trained on four synthesized sources, the adapter raises the positive-slope
  rate and mean r of held-out sources on reverb, with p < 0.05 by the exact sign-flip test (the
  test enumerates the 2^n sign patterns itself);
- the same seed gives the same weights and vectors bit for bit; another seed does not;
- bad input is one line, exit 1, and the store file is unchanged;
- the tuned space works in every analysis, in describe, ingest and check;
- the weights are valid safetensors, the NumPy adapter equals the torch head, the loss equals an
  explicit computation, and the optimiser equals torch's AdamW.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CLI, REPO, copy_store, db_rows
from tests.finetune_fixture import REVERB_WORDS, ingest_args, write_finetune_data
from tests.synth import harmonic_tone, write

HELD_OUT = "piano,noise"
#: the learning check's held-out sources: the two files no other source contains (piano is in the mixture,
#: which a piano hold-out therefore leaves out of training too)
LEARN_HELD_OUT = "noise,organ"


@pytest.fixture(scope="module")
def ft_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    return write_finetune_data(tmp_path_factory.mktemp("ft-data"))


@pytest.fixture(scope="module")
def reverb_db(tmp_path_factory: pytest.TempPathFactory, ft_data: tuple[Path, list[Path]]) -> Path:
    """socialfx-eq on the eight reverb words x 3 strengths x 6 sources (150 clips)."""
    data, files = ft_data
    db = tmp_path_factory.mktemp("ft-store") / "reverb.duckdb"
    CLI(db, None)(*ingest_args(data, files, "reverb", tuple(REVERB_WORDS), "0.33,0.67,1.0"), "--models", "socialfx-eq")
    return db


def _copy(src: Path, tmp_path: Path, name: str = "copy.duckdb") -> Path:
    return copy_store(src, tmp_path / name)


def _finetune(db: Path, *args: str, ok: bool = True) -> tuple[int, dict | None, str]:
    res = CLI(db, None)("finetune", "--model", "socialfx-eq", "--device", "cpu", *args, "--format", "json", ok=ok)
    return res.exit_code, (json.loads(res.stdout) if res.exit_code == 0 else None), res.stderr


def _record(db: Path, label: str) -> dict:
    from timbredb.store import Store

    with Store(db, read_only=True) as store:
        rec = store.finetune(label)
    assert rec is not None
    return rec


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the split
def test_split_never_lets_a_held_out_pair_or_its_audio_into_training(reverb_db: Path, tmp_path: Path) -> None:
    db = _copy(reverb_db, tmp_path)
    _, out, _ = _finetune(db, "--train", "audealize:reverb", "--hold-out-words", "dark,crisp",
                          "--hold-out-sources", HELD_OUT, "--epochs", "2")
    assert out is not None
    rec = _record(db, out["space"])
    trained = rec["split"]["train_trajectories"]
    # every (source, word) of the store, read with SQL, not through timbredb's split
    rows = db_rows(db, "SELECT s.label, v.descriptor, v.clip_sha256 FROM variants v JOIN exp2_sources s USING "
                       "(source_sha256) WHERE v.effect = 'reverb'")
    held_words, held_sources = {"dark", "crisp"}, {"piano", "noise"}
    held_pairs = {(s, w) for s, w, _ in rows if w in held_words or s in held_sources}
    held_clips = {h for s, w, h in rows if (s, w) in held_pairs}
    train_pairs = {(t["source"], t["word"]) for t in trained}
    train_clips = {h for t in trained for h in t["clips"]}
    assert train_pairs and not train_pairs & held_pairs
    assert not train_clips & held_clips
    # what was trained is every remaining pair, and the recorded digest is of exactly those rows
    # the mixture is the sum of guitar, piano and drums: with piano held out it is in no cell (not trained on)
    mixture = {(s, w) for s, w, _ in rows if s == "mixture"}
    assert mixture and not train_pairs & mixture
    assert rec["split"]["excluded_sources"] == ["mixture"] and out["held_out"]["excluded_sources"] == ["mixture"]
    assert train_pairs == {(s, w) for s, w, _ in rows} - held_pairs - mixture
    originals = {t["original"] for t in trained}
    held_originals = {h for s, h in db_rows(db, "SELECT s.label, v.clip_sha256 FROM variants v JOIN exp2_sources s "
                                                "USING (source_sha256) WHERE v.effect = 'original'") if s in held_sources}
    assert originals and len(held_originals) == 2 and not originals & held_originals
    # held-out words on the 3 trained sources (guitar, drums, organ: the mixture is in no cell), trained
    # words on the 2 held-out sources, both held out
    assert out["held_out"]["n_trajectories"] == {"word": 2 * 3, "source": 6 * 2, "both": 2 * 2}
    from timbredb.finetune import data
    from timbredb.store import Store

    with Store(db, read_only=True) as store:
        base = store.spaces("socialfx-eq")[0]
        corpus = data.load_corpus(store, base, ["reverb"], "a {} sound")
    recorded = [data.Trajectory(t["source"], "reverb", t["word"], t["prompt"], t["original"], tuple(t["clips"]),
                                tuple(t["strengths"])) for t in trained]
    assert data.data_sha256(corpus, recorded) == rec["train_data_sha256"] == out["train"]["data_sha256"]


def test_words_with_identical_variants_are_held_out_together() -> None:
    from timbredb.finetune import data
    from timbredb.spaces import SpaceRecord

    base = SpaceRecord("s", "m", "m", "f", "c", None, {}, 2, 1, "cosine", ("audio", "text"))

    def traj(source: str, word: str, clips: tuple[str, ...]) -> data.Trajectory:
        return data.Trajectory(source, "reverb", word, f"a {word} sound", f"o-{source}", clips, (0.5, 1.0))

    # hall and church render the same audio (identical parameters), echo does not
    trajs = [traj(s, w, (f"{s}-{'hall' if w == 'church' else w}-1", f"{s}-{'hall' if w == 'church' else w}-2"))
             for s in ("a", "b") for w in ("hall", "church", "echo", "warm")]
    corpus = data.Corpus(base, trajs, {}, np.zeros((0, 2), np.float32), {}, np.zeros((0, 2), np.float32))
    split = data.make_split(corpus, ["church"], [])
    assert split.hold_out_words == ("church", "hall") and split.added_words == ("hall",)
    cells = split.cells(trajs)
    train_clips = {h for t in cells["train"] for h in t.clips}
    assert not train_clips & {h for t in cells["held-out-word"] for h in t.clips}
    assert {t.word for t in cells["train"]} == {"echo", "warm"}


def test_a_mixture_follows_its_parts() -> None:
    from timbredb.finetune import data
    from timbredb.spaces import SpaceRecord

    base = SpaceRecord("s", "m", "m", "f", "c", None, {}, 2, 1, "cosine", ("audio", "text"))
    kinds = {"a": "dataset", "b": "dataset", "mix": "mixture", "u": "user"}
    trajs = [data.Trajectory(src, "reverb", w, f"a {w} sound", f"o-{src}", (f"{src}-{w}",), (1.0,))
             for src in kinds for w in ("x", "y", "z")]
    corpus = data.Corpus(base, trajs, {}, np.zeros((0, 2), np.float32), {}, np.zeros((0, 2), np.float32),
                         source_kinds=kinds)
    # one part held out: the mixture carries it, so it is neither trained on nor evaluated
    split = data.make_split(corpus, [], ["a"])
    assert split.excluded_sources == ("mix",) and split.hold_out_sources == ("a",)
    cells = split.cells(trajs)
    assert {t.source for t in cells["train"]} == {"b", "u"} and {t.source for t in cells["held-out-source"]} == {"a"}
    # every part held out: the mixture is held out with them
    split = data.make_split(corpus, [], ["a", "b"])
    assert split.hold_out_sources == ("a", "b", "mix") and split.added_sources == ("mix",)
    assert {t.source for t in split.cells(trajs)["train"]} == {"u"}
    # a user file is nobody's part: holding it out changes nothing else
    assert data.make_split(corpus, [], ["u"]).excluded_sources == ()
    with pytest.raises(data.TimbreDBError, match="would evaluate on trained audio"):
        data.make_split(corpus, [], ["mix", "a"])


# ---------------------------------------------------------------- the learning check
def _exact_sign_flip_p(d: np.ndarray) -> float:
    """Two-sided paired sign-flip p-value by enumerating every sign pattern (independent of timbredb)."""
    d = d[d != 0] if np.all(np.isfinite(d)) else d
    observed = abs(d.sum())
    total = [abs(np.dot(signs, d)) for signs in itertools.product((-1.0, 1.0), repeat=d.size)]
    return float(np.mean(np.asarray(total) >= observed - 1e-12))


def test_adapter_learns_reverb_words_on_held_out_sources(reverb_db: Path, tmp_path: Path) -> None:
    """socialfx-eq on reverb: trained on guitar, piano, drums and their mixture, better on organ and noise."""
    db = _copy(reverb_db, tmp_path)
    _, out, _ = _finetune(db, "--train", "audealize:reverb", "--hold-out-sources", LEARN_HELD_OUT, "--seed", "0")
    assert out is not None and out["held_out"]["sources"] == LEARN_HELD_OUT.split(",")
    assert out["train"]["sources"] == ["drums", "guitar", "mixture", "piano"] and not out["held_out"]["excluded_sources"]
    cli = CLI(db, None)
    rows = json.loads(cli("query", "finetune", "--space", out["space"], "--format", "json").stdout)
    assert rows and set(rows[0]) == {"space", "base", "eval", "effect", "metric", "base_value", "tuned_value",
                                     "diff", "p_value", "p_adjusted"}
    got = {(r["eval"], r["effect"], r["metric"]): r for r in rows}
    # Holm over the space's rows, by explicit step-down: sorted p times (m - rank), running max, capped at 1
    ps = np.array([r["p_value"] for r in rows], float)
    m, order = ps.size, np.argsort(ps, kind="stable")
    holm = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        holm[i] = running
    np.testing.assert_allclose([r["p_adjusted"] for r in rows], holm, rtol=0, atol=1e-12)
    assert m > 1 and all(r["p_adjusted"] >= r["p_value"] for r in rows)
    # the per-trajectory values, from `query exp2 --detail` of both spaces
    detail = json.loads(cli("query", "exp2", "--detail", "--effect", "reverb", "--format", "json").stdout)
    traj = {(t["model"], t["source"], t["descriptor"]): t for t in detail["trajectories"]}
    keys = sorted((s, w) for (m, s, w) in traj if m == "socialfx-eq" and s in LEARN_HELD_OUT.split(","))
    assert len(keys) == 16
    for metric, value in (("pos_slope_rate", lambda t: float(t["slope"] > 0)),
                          ("mean_pearson_r", lambda t: t["pearson_r"])):
        base = np.array([value(traj[("socialfx-eq", s, w)]) for s, w in keys])
        tuned = np.array([value(traj[(out["space"], s, w)]) for s, w in keys])
        row = got[("exp2-held-out-source", "reverb", metric)]
        assert row["base_value"] == pytest.approx(base.mean()) and row["tuned_value"] == pytest.approx(tuned.mean())
        assert row["diff"] == pytest.approx(tuned.mean() - base.mean())
        assert row["p_value"] == pytest.approx(_exact_sign_flip_p(tuned - base), abs=1e-12)
        # the learning check itself: higher on sources never trained on, and not by chance
        assert row["tuned_value"] > row["base_value"] and row["p_value"] < 0.05, (metric, row)
    # trained words on trained sources improve too; exp2-held-out-word has no rows (none held out)
    assert got[("exp2-train", "reverb", "mean_pearson_r")]["diff"] > 0
    assert not any(k[0] == "exp2-held-out-word" for k in got)


# ---------------------------------------------------------------- determinism
def test_same_seed_gives_the_same_bits_and_another_seed_does_not(reverb_db: Path, tmp_path: Path) -> None:
    args = ("--train", "audealize:reverb", "--hold-out-sources", HELD_OUT, "--epochs", "20")
    out = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        db = _copy(reverb_db, tmp_path, f"{name}.duckdb")
        _, o, _ = _finetune(db, *args, "--seed", seed)
        assert o is not None
        rec = _record(db, o["space"])
        vectors = db_rows(db, f"SELECT clip_sha256, embedding FROM audio_embeddings WHERE space_id = "
                              f"'{rec['space_id']}' ORDER BY 1")
        text = db_rows(db, f"SELECT prompt, embedding FROM text_embeddings WHERE space_id = '{rec['space_id']}' "
                           "ORDER BY 1")
        out.append((o["space"], rec["weights"], vectors, text, rec["history"]))
    (la, wa, va, ta, ha), (lb, wb, vb, tb, hb), (lc, wc, vc, _, _) = out
    assert la == lb and wa == wb and va == vb and ta == tb and ha == hb
    assert len(va) == 150 and len(ta) == 8
    assert lc != la and wc != wa and vc != va
    # a run that is already stored trains nothing and writes nothing
    db = tmp_path / "a.duckdb"
    before = _sha(db)
    _, again, err = _finetune(db, *args, "--seed", "3")
    assert again is not None and again["space"] == la and "already stored" in err
    assert _sha(db) == before


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(("args", "message"), [
    (("--model", "nope"), "no such space"),
    (("--model", "mfcc"), "no text side"),
    (("--hold-out-words", "haunting"), "not in the training data"),
    (("--words", "bright,warm", "--hold-out-words", "warm"), "left to train on"),
    (("--train", "nowhere"), "unknown dataset"),
    (("--train", "audealize:compression"), "not an effect of audealize"),
    (("--hold-out-sources", "guitar,piano,drums,mixture"), "every source"),
    (("--hold-out-sources", "mixture"), "would evaluate on trained audio"),
    (("--method", "lora"), "not a LAION-CLAP space"),
])
def test_bad_input_is_one_line_exit_1_and_writes_nothing(filled_db: Path, tmp_path: Path, args: tuple[str, ...],
                                                          message: str) -> None:
    db = _copy(filled_db, tmp_path)
    before = _sha(db)
    full = ("finetune", *(() if "--model" in args else ("--model", "socialfx-eq")), *args)
    res = CLI(db, None)(*full, ok=False)
    assert res.exit_code == 1, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("timbredb: error: ") and message in lines[0], res.stderr
    assert _sha(db) == before and not Path(str(db) + ".wal").exists()


def test_a_missing_store_is_refused_without_creating_one(tmp_path: Path) -> None:
    db = tmp_path / "none.duckdb"
    res = CLI(db, None)("finetune", "--model", "socialfx-eq", ok=False)
    assert res.exit_code == 1 and "no timbredb store" in res.stderr and not db.exists()


# ---------------------------------------------------------------- the tuned space everywhere
def test_the_tuned_space_works_in_every_analysis_describe_ingest_and_check(
    filled_db: Path, synth_data_dir: Path, tmp_path: Path
) -> None:
    db = _copy(filled_db, tmp_path)
    cli = CLI(db, synth_data_dir)
    out = json.loads(cli("finetune", "--model", "socialfx-eq", "--epochs", "5", "--device", "cpu",
                         "--format", "json").stdout)
    label = out["space"]
    assert label.startswith("socialfx-eq+ft-") and out["train"]["words"] == ["bright", "warm"]
    assert set(out) == {"space", "base", "method", "seed", "train", "held_out", "epochs", "seconds"}
    base_id, tuned_id = (db_rows(db, f"SELECT space_id FROM spaces WHERE label = '{x}'")[0][0]
                         for x in ("socialfx-eq", label))
    n = {x: db_rows(db, f"SELECT (SELECT count(*) FROM audio_embeddings WHERE space_id = '{x}'), "
                        f"(SELECT count(*) FROM text_embeddings WHERE space_id = '{x}')")[0]
         for x in (base_id, tuned_id)}
    assert n[tuned_id] == n[base_id] and n[base_id][0] > 0
    for exp in ("exp1", "exp2", "exp3", "probe", "axes", "prompts"):
        rows = json.loads(cli("query", exp, "--model", label, "--format", "json").stdout)
        assert rows, exp
    comp = json.loads(cli("query", "compare", "--exp", "exp2", "--models", f"{label},socialfx-eq",
                          "--format", "json").stdout)
    assert comp and {r["model_a"] for r in comp} == {label}
    evals = json.loads(cli("query", "finetune", "--format", "json").stdout)
    assert {r["eval"] for r in evals} >= {"exp2-train", "exp1", "exp3"}
    typo = cli("query", "finetune", "--dataset", "ccmusik", ok=False)  # a named dataset must exist: no silent skip
    assert typo.exit_code != 0 and "no rated dataset 'ccmusik'" in typo.stderr
    # describe: a stored clip's words come from its stored tuned vector; a new file is embedded
    # through base model + adapter, and its vector equals the adapter applied to the base vector
    tone = write(tmp_path / "new" / "tone.wav", harmonic_tone(300.0, 1.0, rolloff=0.8))
    before = _sha(db)
    got = json.loads(cli("describe", str(tone), "--model", label, "--format", "json").stdout)
    assert got[0]["model"] == label and got[0]["descriptors"]
    assert _sha(db) == before  # describe without --save writes nothing
    summary = json.loads(cli("ingest", str(tone), "--models", f"socialfx-eq,{label}", "--format", "json").stdout)
    assert summary["embeddings_added"] == 2
    from timbredb.finetune import adapter, weights
    from timbredb.store import Store

    with Store(db, read_only=True) as store:
        sha = store.audio_matrix(base_id)[0]
        new = [h for h in sha if h not in {r[0] for r in db_rows(filled_db, "SELECT clip_sha256 FROM clips")}]
        _, x = store.audio_matrix(base_id, new)
        _, y = store.audio_matrix(tuned_id, new)
        params = weights.unpack(store.finetune(label)["weights"])  # type: ignore[index]
    np.testing.assert_array_equal(adapter.apply_audio(params, x), y)
    check = json.loads(cli("check", "--format", "json").stdout)
    assert all(r["offending_rows"] == 0 for r in check["integrity"])
    # the Ray engine cannot load a tuned space (its weights are in the store the driver writes): one line, nothing written
    before = _sha(db)
    other = write(tmp_path / "new" / "other.wav", harmonic_tone(450.0, 1.0))
    res = cli("ingest", str(other), "--models", label, "--engine", "ray", ok=False)
    assert res.exit_code == 1 and "fine-tuned space" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert _sha(db) == before
    # through the pipeline's worker processes (the base's windows prepared there, the adapter applied here)
    folder = tmp_path / "piped"
    for k, f0 in enumerate((220.0, 330.0, 495.0)):
        write(folder / f"p{k}.wav", harmonic_tone(f0, 1.0, rolloff=0.5 + 0.1 * k))
    piped = json.loads(cli("ingest", str(folder), "--models", f"socialfx-eq,{label}", "--workers", "2",
                           "--batch-size", "1", "--format", "json").stdout)
    assert piped["embeddings_added"] == 6 and piped["errors"] == []
    with Store(db, read_only=True) as store:
        new = [h for h in store.audio_matrix(base_id)[0]
               if h not in set(sha) and h not in {r[0] for r in db_rows(filled_db, "SELECT clip_sha256 FROM clips")}]
        assert len(new) == 3
        _, x = store.audio_matrix(base_id, new)
        _, y = store.audio_matrix(tuned_id, new)
    np.testing.assert_array_equal(adapter.apply_audio(params, x), y)
    report = cli("report", "--out", str(tmp_path / "report")).stdout.strip()
    html = Path(report).read_text(encoding="utf-8")
    assert label in html and "fine-tuned spaces vs their base" in html


def test_query_finetune_imports_no_torch(filled_db: Path, tmp_path: Path) -> None:
    db = _copy(filled_db, tmp_path)
    CLI(db, None)("finetune", "--model", "socialfx-eq", "--epochs", "2", "--device", "cpu", "--anchor-weight", "0.5",
                  "--lr", "0.002", "--batch-size", "3")
    (config,) = db_rows(db, "SELECT config FROM finetunes")[0]
    hp = json.loads(config)["hyperparameters"]
    assert (hp["anchor_weight"], hp["lr"], hp["batch_trajectories"], hp["epochs"]) == (0.5, 0.002, 3, 2)
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom timbredb.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['--db', {str(db)!r}, 'query', 'finetune', '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(cli, ['--db', {str(db)!r}, 'sql', 'SELECT label FROM finetunes'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_the_interchange_carries_a_tuned_space_with_its_base_and_record(reverb_db: Path, tmp_path: Path) -> None:
    db = _copy(reverb_db, tmp_path)
    _, out, _ = _finetune(db, "--train", "audealize:reverb", "--hold-out-sources", HELD_OUT, "--epochs", "3")
    assert out is not None
    label = out["space"]
    dump = tmp_path / "dump"
    # only the tuned space is asked for: its base space travels with it
    CLI(db, None)("export", str(dump), "--model", label)
    target = tmp_path / "target.duckdb"
    CLI(target, None)("import", "embeddings", str(dump))
    cols = "space_id, label, base_space_id, method, seed, config, split, train_data_sha256, weights, weights_sha256, seconds"
    want = db_rows(db, f"SELECT {cols} FROM finetunes")
    assert db_rows(target, f"SELECT {cols} FROM finetunes") == want and len(want) == 1
    assert sorted(r[0] for r in db_rows(target, "SELECT label FROM spaces")) == ["socialfx-eq", label]
    got = json.loads(CLI(target, None)("query", "finetune", "--space", label, "--format", "json").stdout)
    here = json.loads(CLI(db, None)("query", "finetune", "--space", label, "--format", "json").stdout)
    assert got == here
    check = json.loads(CLI(target, None)("check", "--format", "json").stdout)
    assert all(r["offending_rows"] == 0 for r in check["integrity"])
    # a second import adds nothing and skips the record
    again = json.loads(CLI(target, None)("import", "embeddings", str(dump), "--format", "json").stdout)
    assert sum(again["rows_added"].values()) == 0 and again["rows_skipped"]["finetunes"] == 1


# ---------------------------------------------------------------- the parts, checked independently
def test_weights_are_safetensors_and_round_trip() -> None:
    from safetensors.numpy import load

    from timbredb.finetune import weights

    rng = np.random.default_rng(0)
    tensors = {"b.x": rng.standard_normal((3, 5)).astype(np.float32), "a.y": rng.standard_normal(7)}
    blob = weights.pack(tensors)
    assert blob == weights.pack(dict(reversed(list(tensors.items()))))  # order-free bytes
    for name, arr in load(blob).items():
        np.testing.assert_array_equal(arr, tensors[name])
    for name, arr in weights.unpack(blob).items():
        np.testing.assert_array_equal(arr, tensors[name])
    with pytest.raises(Exception, match="unreadable"):
        weights.unpack(b"\x05\x00")


def test_numpy_adapter_equals_the_torch_head_and_starts_as_the_identity() -> None:
    import torch

    from timbredb.finetune import adapter
    from timbredb.finetune.train import Head

    torch.manual_seed(0)
    head = Head(6, 4).double()
    x = np.random.default_rng(1).standard_normal((5, 6))
    # a fresh head is the identity on unit vectors (W2 = 0)
    np.testing.assert_allclose(adapter.apply_audio(head.export("audio"), x), adapter.unit(x), atol=1e-7)
    with torch.no_grad():
        head.w2.weight.normal_()
        head.w2.bias.normal_()
        want = head(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(adapter.apply_audio(head.export("audio"), x), want, atol=1e-5)


def test_objective_equals_an_explicit_computation() -> None:
    import torch

    from timbredb.finetune.data import Corpus, Trajectory
    from timbredb.finetune.train import TrainingIndex, objective
    from timbredb.spaces import SpaceRecord

    rng = np.random.default_rng(2)
    clips = {f"c{i}": i for i in range(7)}
    audio = rng.standard_normal((7, 4)).astype(np.float32)
    text = rng.standard_normal((2, 4)).astype(np.float32)
    trajs = [Trajectory("s1", "eq", "w0", "p0", "c0", ("c1", "c2"), (0.5, 1.0)),
             Trajectory("s1", "eq", "w1", "p1", "c0", ("c3", "c4"), (0.5, 1.0)),
             Trajectory("s2", "eq", "w0", "p0", "c5", ("c6",), (1.0,))]
    base = SpaceRecord("s", "m", "m", "f", "c", None, {}, 4, 1, "cosine", ("audio", "text"))
    corpus = Corpus(base, trajs, clips, audio, {"p0": 0, "p1": 1}, text)
    index = TrainingIndex(corpus, trajs)
    batch = index.batch([0, 1, 2], torch.device("cpu"))
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    z = unit(audio.astype(np.float64) + rng.standard_normal((7, 4)) * 0.3)  # some tuned vectors
    t = unit(text.astype(np.float64))
    u0 = unit(audio.astype(np.float64))
    hp = {"tau": 0.1, "tau_rank": 0.05, "rank_weight": 0.7, "anchor_weight": 0.2}
    loss, terms = objective(torch.from_numpy(z[batch.rows]), torch.from_numpy(t[batch.words]),
                            torch.from_numpy(u0[batch.rows]), batch, hp)
    # by hand: every clip row is used here, words p0, p1
    cos = z @ t.T
    logp = cos / 0.1 - np.log(np.exp(cos / 0.1).sum(axis=1, keepdims=True))
    variants = [(1, 0, 0.5), (2, 0, 1.0), (3, 1, 0.5), (4, 1, 1.0), (6, 0, 1.0)]
    nce = sum(-logp[c, w] * s for c, w, s in variants) / sum(s for _, _, s in variants)
    pairs = [(0, 1, 0), (0, 2, 0), (1, 2, 0), (0, 3, 1), (0, 4, 1), (3, 4, 1), (5, 6, 0)]
    rank = np.mean([np.log1p(np.exp(-(logp[b, w] - logp[a, w]) / 0.05)) for a, b, w in pairs])
    anchor = np.mean(((z - u0) ** 2).sum(axis=1))
    assert terms["nce"] == pytest.approx(nce, rel=1e-9)
    assert terms["rank"] == pytest.approx(rank, rel=1e-9)
    assert terms["anchor"] == pytest.approx(anchor, rel=1e-9)
    assert float(loss) == pytest.approx(nce + 0.7 * rank + 0.2 * anchor, rel=1e-9)


def test_the_optimiser_equals_torch_adamw() -> None:
    import torch

    from timbredb.finetune.train import AdamW

    torch.manual_seed(0)
    a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ours, theirs = AdamW([a], lr=0.01, weight_decay=0.1), torch.optim.AdamW([b], lr=0.01, weight_decay=0.1)
    for _ in range(25):
        x = torch.randn(3, dtype=torch.float64)
        for p, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            ((p @ x) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

