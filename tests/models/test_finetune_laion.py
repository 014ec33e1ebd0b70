"""`timbredb finetune` on the random-weight LAION-CLAP stand-in (the real laion_clap code, offline).

- adapter: the learning check on held-out sources (its random audio features still carry
  spectral information; its random text side carries no meaning, so only held-out *sources*
  are checked), with the p-values recomputed here by enumerating every sign pattern, and the
  same seed giving the same bits;
- lora: peft's adapters on the HTSAT attention, trained end to end through the CLI on audio
  re-rendered from the stored parameters; the same seed gives the same weights and vectors,
  and the tuned model loaded back from the store (base model + stored LoRA weights) embeds a
  clip as the stored tuned vector says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CLI, copy_store, db_rows
from tests.finetune_fixture import REVERB_WORDS, ingest_args, write_finetune_data
from tests.test_finetune import _exact_sign_flip_p

pytestmark = pytest.mark.models
#: the held-out sources of the learning check: the two files no other source contains (holding out a
#: demo clip would leave their mixture out of training too; the mixture itself cannot be held out
#: while its parts are trained on)
HELD_OUT = "noise,organ"


@pytest.fixture(scope="module")
def ft_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    return write_finetune_data(tmp_path_factory.mktemp("ft-laion-data"))


@pytest.fixture(scope="module")
def laion_db(tmp_path_factory: pytest.TempPathFactory, ft_data: tuple[Path, list[Path]], hf_cache: Path) -> Path:
    """laion-clap on the eight reverb words x 3 strengths x 6 sources (150 clips)."""
    data, files = ft_data
    db = tmp_path_factory.mktemp("ft-laion") / "laion.duckdb"
    CLI(db, None)(*ingest_args(data, files, "reverb", tuple(REVERB_WORDS), "0.33,0.67,1.0"), "--models", "laion-clap",
                  "--device", "cpu")
    return db


@pytest.fixture(scope="module")
def hf_cache(fake_hub_root: Path, hash_cache: Path) -> Path:  # module scope: the module fixtures need it
    from tests.models import fake_hub

    with fake_hub.pointed_at(fake_hub_root, hash_cache):
        yield fake_hub_root  # type: ignore[misc]


def _finetune(db: Path, data: Path | None, *args: str) -> dict:
    res = CLI(db, data)("finetune", "--model", "laion-clap", "--device", "cpu", "--train", "audealize:reverb", *args,
                        "--format", "json")
    return json.loads(res.stdout)


def test_adapter_on_laion_clap_beats_the_base_on_held_out_sources(laion_db: Path, tmp_path: Path) -> None:
    db = copy_store(laion_db, tmp_path / "a.duckdb")
    out = _finetune(db, None, "--hold-out-sources", HELD_OUT, "--lr", "3e-3", "--seed", "0")
    label = out["space"]
    assert label.startswith("laion-clap+ft-") and out["held_out"]["n_trajectories"]["source"] == 16
    cli = CLI(db, None)
    rows = json.loads(cli("query", "finetune", "--space", label, "--format", "json").stdout)
    got = {(r["eval"], r["effect"], r["metric"]): r for r in rows}
    detail = json.loads(cli("query", "exp2", "--detail", "--effect", "reverb", "--format", "json").stdout)
    traj = {(t["model"], t["source"], t["descriptor"]): t for t in detail["trajectories"]}
    keys = sorted((s, w) for (m, s, w) in traj if m == "laion-clap" and s in HELD_OUT.split(","))
    assert len(keys) == 16
    for metric, value in (("pos_slope_rate", lambda t: float(t["slope"] > 0)),
                          ("mean_pearson_r", lambda t: t["pearson_r"])):
        base = np.array([value(traj[("laion-clap", s, w)]) for s, w in keys])
        tuned = np.array([value(traj[(label, s, w)]) for s, w in keys])
        row = got[("exp2-held-out-source", "reverb", metric)]
        assert row["base_value"] == pytest.approx(base.mean()) and row["tuned_value"] == pytest.approx(tuned.mean())
        assert row["p_value"] == pytest.approx(_exact_sign_flip_p(tuned - base), abs=1e-12)
        assert row["tuned_value"] > row["base_value"], (metric, row)
        if metric == "mean_pearson_r":
            assert row["p_value"] < 0.05, row
        else:
            # a 0/1 metric whose base is already 11/16: at most 5 trajectories can flip, and with k flips the
            # smallest two-sided p is 2 / 2^k (0.0625 at k = 5). The learning check here: every trajectory
            # that changed changed toward the word, at least 4 of them, so p is at that floor.
            changed = tuned != base
            assert changed.sum() >= 4 and np.all(tuned[changed] > base[changed]), (tuned, base)
            assert row["p_value"] == pytest.approx(2.0 / 2 ** int(changed.sum()), abs=1e-12)
    # the tuned space is an ordinary one: compare and probe read it
    comp = json.loads(cli("query", "compare", "--exp", "exp2", "--models", f"{label},laion-clap",
                          "--format", "json").stdout)
    assert comp and {r["model_a"] for r in comp} == {label}
    assert json.loads(cli("query", "exp2", "--model", label, "--format", "json").stdout)
    # the same seed, in another copy of the store: the same bits
    other = copy_store(laion_db, tmp_path / "b.duckdb")
    again = _finetune(other, None, "--hold-out-sources", HELD_OUT, "--lr", "3e-3", "--seed", "0")
    assert again["space"] == label
    sql = (f"SELECT f.weights, e.clip_sha256, e.embedding FROM finetunes f JOIN audio_embeddings e USING (space_id) "
           f"WHERE f.label = '{label}' ORDER BY 2")
    assert db_rows(db, sql) == db_rows(other, sql)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory, ft_data: tuple[Path, list[Path]], hf_cache: Path) -> Path:
    """laion-clap on two reverb words at one strength on the four dataset sources (12 clips): LoRA on a CPU."""
    data, _ = ft_data
    db = tmp_path_factory.mktemp("ft-lora") / "small.duckdb"
    CLI(db, None)(*ingest_args(data, [], "reverb", ("dark", "bright"), "1.0"), "--models", "laion-clap",
                  "--device", "cpu")
    return db


def test_lora_end_to_end_through_the_cli_same_seed_same_bits(small_db: Path, ft_data: tuple[Path, list[Path]],
                                                               tmp_path: Path) -> None:
    data, _ = ft_data
    runs = []
    for name in ("a", "b"):
        db = copy_store(small_db, tmp_path / f"{name}.duckdb")
        out = _finetune(db, data, "--method", "lora", "--hold-out-sources", "piano", "--epochs", "1", "--seed", "5")
        assert out["method"] == "lora" and out["train"]["n_trajectories"] == 4  # 2 words x guitar, drums (the mixture holds piano)
        rows = db_rows(db, f"SELECT f.weights, e.clip_sha256, e.embedding FROM finetunes f JOIN audio_embeddings e "
                           f"USING (space_id) WHERE f.label = '{out['space']}' ORDER BY 2")
        runs.append((db, out["space"], rows))
    (db, label, rows), (_, label_b, rows_b) = runs
    assert label == label_b and rows == rows_b
    n_base = db_rows(db, "SELECT count(*) FROM audio_embeddings e JOIN spaces s USING (space_id) "
                         "WHERE s.label = 'laion-clap'")[0][0]
    assert len(rows) == n_base == 12  # every clip re-embedded through the tuned encoder
    base = dict(db_rows(db, "SELECT e.clip_sha256, e.embedding FROM audio_embeddings e JOIN spaces s "
                            "USING (space_id) WHERE s.label = 'laion-clap'"))
    moved = [float(np.linalg.norm(np.asarray(v) - np.asarray(base[h]))) for _, h, v in rows]
    assert max(moved) > 1e-4  # training changed the encoder (B starts at zero)
    # LoRA adapts the audio encoder only: the text vectors are the base space's
    text = "SELECT t.prompt, t.embedding FROM text_embeddings t JOIN spaces s USING (space_id) WHERE s.label = '{}' ORDER BY 1"
    assert db_rows(db, text.format(label)) == db_rows(db, text.format("laion-clap"))
    # the tuned model loaded from the store (base + stored LoRA weights) embeds as the stored vector says
    from timbredb.finetune import lora
    from timbredb.models import registry
    from timbredb.store import Store

    clip = rows[0][1]
    with Store(db, read_only=True) as store:
        audio = lora.recovery(store, [clip]).audio(clip)
    model = registry.load(label, store_path=db, device="cpu")
    np.testing.assert_allclose(model.embed_audio([audio])[0], np.asarray(rows[0][2]), atol=1e-5)
    rows_q = json.loads(CLI(db, None)("query", "finetune", "--space", label, "--format", "json").stdout)
    assert {r["eval"] for r in rows_q} >= {"exp2-train", "exp2-held-out-source"}
