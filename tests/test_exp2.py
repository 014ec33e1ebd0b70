"""Experiment 2: trajectory statistics, rendering ingest end to end, and imported results."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from timbredb import queries
from timbredb.analysis.exp2 import SUMMARY_COLUMNS, summarize, trajectories
from timbredb.datasets.audealize_render import parse_strengths, plan_words
from timbredb.errors import TimbreDBError, VocabularyError
from timbredb.store import Store

STUDY_HEADER = [
    "effect_type", "source_type", "filename", "descriptor", "target_text", "scale",
    "orig_target_sim", "manip_target_sim", "delta_target_sim",
]


def _points(rows: list[tuple[str, str, str, list[float], list[float]]]) -> pl.DataFrame:
    out = []
    for effect, source, word, strengths, deltas in rows:
        for s, d in zip(strengths, deltas):
            out.append({
                "model": "m", "effect": effect, "source": source, "descriptor": word, "template": "a {} sound",
                "prompt": f"a {word} sound", "strength": s, "original_cosine": 0.1, "variant_cosine": 0.1 + d,
                "delta": d, "origin": "local", "renderer_version": "r",
            })
    return pl.DataFrame(out)


# ---------------------------------------------------------------- statistics
def test_trajectory_statistics_follow_the_study_definitions() -> None:
    s = [0.2, 0.6, 1.0]
    pts = _points([
        ("eq", "a", "w", s, [0.1, 0.2, 0.3]),       # rising
        ("eq", "b", "w", s, [0.1, 0.1, 0.1]),       # constant: slope 0, r and rho NaN
        ("eq", "a", "x", s[::-1], [0.3, 0.1, 0.2]),  # unordered input, mixed
        ("eq", "b", "x", s, [0.05, 0.1, 0.4]),
        ("reverb", "a", "v", s, [-0.1, -0.2, -0.3]),  # falling
    ])
    traj = trajectories(pts)
    rising = traj.filter((pl.col("source") == "a") & (pl.col("descriptor") == "w")).row(0, named=True)
    assert rising["slope"] == pytest.approx(0.25)
    assert rising["final_delta"] == pytest.approx(0.3)
    assert rising["pearson_r"] == pytest.approx(1.0) and rising["spearman_rho"] == pytest.approx(1.0)
    assert rising["strictly_increasing"] and not rising["strictly_decreasing"]
    flat = traj.filter((pl.col("source") == "b") & (pl.col("descriptor") == "w")).row(0, named=True)
    assert flat["slope"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(flat["pearson_r"]) and math.isnan(flat["spearman_rho"])
    mixed = traj.filter((pl.col("source") == "a") & (pl.col("descriptor") == "x")).row(0, named=True)
    assert mixed["strengths"] == s and mixed["deltas"] == [0.2, 0.1, 0.3]  # sorted by strength
    assert mixed["final_delta"] == pytest.approx(0.3)

    summary = summarize(traj)
    assert summary.columns == SUMMARY_COLUMNS
    eq = summary.filter(pl.col("effect") == "eq").row(0, named=True)
    assert eq["n_trajectories"] == 4
    assert eq["pos_slope_rate"] == pytest.approx(3 / 4)  # rising, mixed (slope 0.025), b/x
    assert eq["pos_final_delta_rate"] == 1.0
    assert eq["all_source_consistency"] == pytest.approx(1 / 2)  # x: both rise; w: b is flat
    r_values = [r for r in traj.filter(pl.col("effect") == "eq")["pearson_r"].to_list() if not math.isnan(r)]
    assert eq["mean_pearson_r"] == pytest.approx(np.mean(r_values))  # the NaN is left out
    assert eq["strict_increasing"] == 2 and eq["strict_decreasing"] == 0
    rev = summary.filter(pl.col("effect") == "reverb").row(0, named=True)
    assert rev["pos_slope_rate"] == 0.0 and rev["strict_decreasing"] == 1
    both = summary.filter(pl.col("effect") == "all").row(0, named=True)
    assert both["n_trajectories"] == 5
    assert both["all_source_consistency"] == pytest.approx(1 / 3)  # (eq,w) no, (eq,x) yes, (reverb,v) no
    assert both["mean_slope"] == pytest.approx(np.mean(traj["slope"].to_numpy()))


def test_option_parsing() -> None:
    assert parse_strengths(None) == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert parse_strengths("1.0, 0.5,0.5") == [0.5, 1.0]
    for bad in ("0", "1.5", "x", ""):
        with pytest.raises(TimbreDBError):
            parse_strengths(bad)
    eq, rv = {"bright": 1, "warm": 1}, {"warm": 1, "hall": 1}
    assert plan_words("bright,warm,hall", eq, rv) == (
        [("eq", "bright"), ("eq", "warm"), ("reverb", "warm"), ("reverb", "hall")], [])
    assert plan_words("eq:warm,reverb:bright,zzz", eq, rv) == ([("eq", "warm")], ["reverb:bright", "zzz"])
    with pytest.raises(VocabularyError):
        plan_words("chorus:warm", eq, rv)
    with pytest.raises(VocabularyError):
        plan_words("zzz", eq, rv)


# ---------------------------------------------------------------- end to end
def _json(result) -> object:  # type: ignore[no-untyped-def]
    return json.loads(result.stdout)


def test_ingest_renders_and_the_text_baseline_follows_eq_words(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    args = ["ingest", "audealize", "--models", "socialfx-eq", "--words", "eq:bright,eq:warm,eq:tinny",
            "--strengths", "0.5,1.0", "--length-s", "2", "--format", "json"]
    first = _json(cli(*args))
    info = first["datasets"]["audealize"]
    assert info["sources"] == ["guitar", "piano", "drums", "mixture"]
    assert info["variants"] == 4 * (1 + 3 * 2) and info["rendered"] == info["variants"]
    assert info["renderer_version"].endswith("/2s")

    summary = _json(cli("query", "exp2", "--model", "socialfx-eq", "--format", "json"))
    eq = next(r for r in summary if r["effect"] == "eq")
    assert set(eq) == set(SUMMARY_COLUMNS)
    assert eq["n_trajectories"] == 12
    assert eq["pos_slope_rate"] == 1.0 and eq["mean_slope"] > 0
    detail = _json(cli("query", "exp2", "--detail", "--format", "json"))
    assert {t["descriptor"] for t in detail["trajectories"]} == {"bright", "warm", "tinny"}
    assert all(t["slope"] > 0 for t in detail["trajectories"])
    unknown = cli("query", "exp2", "--renderer", "nope", ok=False)
    assert unknown.exit_code == 1 and info["renderer_version"] in unknown.stderr

    # re-run: nothing new is rendered
    again = _json(cli(*args))
    assert again["datasets"]["audealize"]["rendered"] == 0 and again["clips_added"] == 0
    # a model added later gets only what it lacks, and the re-renders are bit-identical (same hashes)
    later_run = cli(*args[:3], "mfcc,socialfx-eq", *args[4:])
    later = _json(later_run)
    assert later["datasets"]["audealize"]["rendered"] == info["variants"]
    assert later["clips_added"] == 0 and later["embeddings_added"] == info["variants"]
    # the "re-rendered variant(s) differ from the stored ones" warning goes to stderr
    assert "differ" not in later_run.stderr and later["errors"] == []

    # timbredb's own export imports back and gives the same numbers under a new name
    export = db.parent / "export.csv"
    cli("sql", "SELECT * FROM exp2_trajectories WHERE model = 'socialfx-eq'", "--format", "csv", "--output", export)
    imported = _json(cli("import", "exp2", export, "--model", "sfx-copy", "--format", "json"))
    assert imported["layout"] == "timbredb" and imported["rows"] == 24
    copy = _json(cli("query", "exp2", "--model", "sfx-copy", "--format", "json"))
    for a, b in zip(summary, copy):
        a.pop("model"), b.pop("model")
        # the original is flagged as circular (socialfx-eq's text side made the EQ); the copy's origin is unknown
        assert a.pop("note") in ("circular", "circular (eq)", None) and b.pop("note") is None
        assert a == pytest.approx(b)
    clash = cli("import", "exp2", export, "--model", "socialfx-eq", ok=False)
    assert clash.exit_code == 1 and "another name" in clash.stderr


def test_identical_reverb_parameters_are_reported(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    out = _json(cli("ingest", "audealize", "--models", "mfcc", "--words",
                    "reverb:echo,reverb:distant,reverb:warm,reverb:tinny", "--strengths", "1.0",
                    "--length-s", "0.5", "--format", "json"))
    info = out["datasets"]["audealize"]
    assert info["shared_parameters"] == {"reverb": [["distant", "echo"], ["tinny", "warm"]]}
    assert info["identical_parameter_reuses"] == 4 * 2  # the second word of each pair, per source
    with Store(db, read_only=True) as store:
        groups = queries.run(store, "exp2_shared_parameters")
    assert sorted(groups["descriptors"].to_list()) == [["distant", "echo"], ["tinny", "warm"]]


# ---------------------------------------------------------------- import
def _study_csv(path: Path, seed: int = 0, mutate=None) -> Path:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    rows = []
    for effect, words in (("eq", ["bright", "warm"]), ("reverb", ["echo", "hall"])):
        for source in ("guitar", "piano", "mixture"):
            for word in words:
                orig = float(rng.normal(0, 0.05))
                trend = rng.normal(0.05, 0.05)
                for scale in (0.2, 0.4, 0.6, 0.8, 1.0):
                    manip = orig + trend * scale + float(rng.normal(0, 0.01))
                    rows.append([effect, source, f"{source}_{effect}_{word}_{scale}.wav", word,
                                 f"{'an' if word == 'echo' else 'a'} {word} sound", f"{scale:.1f}",
                                 repr(orig), repr(manip), repr(manip - orig)])
    if mutate:
        mutate(rows)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STUDY_HEADER)
        w.writerows(rows)
    return path


def _reference_rates(path: Path) -> dict[str, float]:
    """Independent recomputation of the study's positive-slope rate and mean final delta."""
    by: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            by.setdefault((r["effect_type"], r["source_type"], r["descriptor"]), []).append(
                (float(r["scale"]), float(r["delta_target_sim"])))
    slopes = [np.polyfit(*zip(*sorted(v)), 1)[0] for v in by.values()]
    finals = [sorted(v)[-1][1] for v in by.values()]
    return {"pos_slope_rate": float(np.mean(np.array(slopes) > 0)), "mean_final_delta": float(np.mean(finals))}


def test_import_study_csv_gives_the_study_tables(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    path = _study_csv(db.parent / "laion-clap.csv")
    out = _json(cli("import", "exp2", path, "--model", "LAION-CLAP", "--format", "json"))
    assert out["layout"] == "study" and out["rows"] == 60 and out["trajectories"] == 12
    assert out["effects"] == ["eq", "reverb"] and out["sources"] == ["guitar", "mixture", "piano"]
    summary = _json(cli("query", "exp2", "--format", "json"))
    both = next(r for r in summary if r["model"] == "LAION-CLAP" and r["effect"] == "all")
    ref = _reference_rates(path)
    assert both["n_trajectories"] == 12
    assert both["pos_slope_rate"] == pytest.approx(ref["pos_slope_rate"])
    assert both["mean_final_delta"] == pytest.approx(ref["mean_final_delta"])
    tables = _json(cli("query", "exp2", "--study-tables", "--format", "json"))
    assert list(tables["table1"][0]) == [
        "Model", "Pos. slope rate ↑", "Pos. final-Δ rate ↑", "All-source consistency ↑",
        "Mean Pearson r ↑", "Mean Spearman ρ ↑"]
    assert [r["effect_type"] for r in tables["table2"]] == ["eq", "reverb"]
    assert tables["table2"][0]["positive_slope_rate"] == pytest.approx(
        100 * next(r for r in summary if r["effect"] == "eq")["pos_slope_rate"])
    # re-import replaces
    assert _json(cli("import", "exp2", path, "--model", "LAION-CLAP", "--format", "json"))["replaced"] == 60


def _set(row: int, col: str, value: str):  # type: ignore[no-untyped-def]
    def mutate(rows: list[list[str]]) -> None:
        rows[row][STUDY_HEADER.index(col)] = value
    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set(1, "delta_target_sim", "0.5"), "line 3: inconsistent delta"),
        (_set(2, "effect_type", "chorus"), "line 4: unknown effect 'chorus'"),
        (_set(5, "scale", "1.5"), "line 7: scale 1.5 is outside (0, 1]"),
        (_set(3, "scale", "0.2"), "line 5: duplicate condition"),
        (_set(0, "orig_target_sim", "0.9"), "line 2: inconsistent delta"),
        (_set(4, "manip_target_sim", "nan"), "line 6: manip_target_sim is nan"),
    ],
)
def test_import_validation_errors_name_file_and_line(cli, db: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _study_csv(db.parent / "bad.csv", mutate=mutate)
    result = cli("import", "exp2", path, "--model", "x", ok=False)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], result.stderr


def test_import_rejects_a_changing_baseline_and_foreign_files(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    def shift_baseline(rows: list[list[str]]) -> None:
        orig, manip = float(rows[2][6]) + 0.01, float(rows[2][7]) + 0.01
        rows[2][6], rows[2][7] = repr(orig), repr(manip)

    result = cli("import", "exp2", _study_csv(db.parent / "b.csv", mutate=shift_baseline), "--model", "x", ok=False)
    assert "line 4: baseline changes with strength" in result.stderr
    other = db.parent / "other.csv"
    other.write_text("a,b\n1,2\n")
    result = cli("import", "exp2", other, "--model", "x", ok=False)
    assert result.exit_code == 1 and "missing column(s)" in result.stderr


def test_user_sources_with_the_same_name_stay_separate_across_runs(cli, db: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.synth import harmonic_tone, noise, write

    first = write(tmp_path / "a" / "take.wav", harmonic_tone(220, 1.0))
    second = write(tmp_path / "b" / "take.wav", noise(1.0, seed=5))
    base = ["ingest", "audealize", "--models", "socialfx-eq", "--words", "eq:bright", "--strengths", "0.5,1.0",
            "--length-s", "1", "--format", "json"]
    _json(cli(*base, "--source", first))
    _json(cli(*base, "--source", second))
    _json(cli(*base, "--source", first))  # the same file again keeps its label
    with Store(db, read_only=True) as store:
        labels = dict(store.con.execute("SELECT origin, label FROM exp2_sources WHERE kind = 'user'").fetchall())
        assert len(labels) == 2 and len(set(labels.values())) == 2
        points = queries.run(store, "exp2_trajectories", models=["socialfx-eq"])
    per_source = points.filter(pl.col("source").is_in(list(labels.values()))).group_by("source").len()
    assert sorted(per_source["len"].to_list()) == [2, 2]  # one point per strength, never merged
