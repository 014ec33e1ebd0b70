"""Rated datasets beyond CCMusic: `ingest ratings` in every layout, bad input writes nothing,
`query exp1 --dataset NAME` against scipy, and CCMusic's exp1 output unchanged byte for byte."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.ccmusic_fixture import make_instruments, write_local
from tests.conftest import CLI, db_rows
from tests.synth import harmonic_tone, write
from tests.test_exp1 import assert_matches_reference
from timbredb.analysis.exp1 import analyse_pairs, run_exp1
from timbredb.formatting import render
from timbredb.store import Store

WORDS = ("bright", "dark", "warm")


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    return synth_data_dir


def _stimuli(n: int = 6) -> list[tuple[str, str, float]]:
    """(name, group, rolloff): brighter tones have a smaller rolloff."""
    rolloffs = np.linspace(0.5, 3.0, n)
    return [(f"tone{i}", "low" if i % 2 else "high", float(r)) for i, r in enumerate(rolloffs)]


def _audio(folder: Path, stimuli: list[tuple[str, str, float]]) -> Path:
    for name, _, rolloff in stimuli:
        write(folder / f"{name}.wav", harmonic_tone(220.0, 0.3, rolloff=rolloff))
    return folder


def _ratings(stimuli: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    return {(n, w): round((10 - 3 * r) if w == "bright" else (1 + 3 * r) if w == "dark" else 5 + np.sin(3 * r), 3)
            for n, _, r in stimuli for w in WORDS}


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_wide(path: Path, stimuli, ratings) -> Path:
    return _write(path, ["stimulus", "group", *WORDS], [[n, g, *[ratings[(n, w)] for w in WORDS]] for n, g, _ in stimuli])


def write_long(path: Path, stimuli, ratings) -> Path:
    return _write(path, ["stimulus", "group", "descriptor", "rating"],
                  [[n, g, w, ratings[(n, w)]] for n, g, _ in stimuli for w in WORDS])


def write_listeners(path: Path, stimuli, ratings, n_listeners: int = 5, blank: bool = True) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    raw: dict[tuple[str, str], list[float]] = {}
    rows = []
    for n, g, _ in stimuli:
        for w in WORDS:
            for k in range(n_listeners):
                v = float(np.clip(round(ratings[(n, w)] + rng.normal(0, 1)), 1, 10))
                if blank and (n, w, k) == ("tone1", "warm", 2):
                    rows.append([n, g, w, f"p{k}", ""])  # a missing response
                    continue
                raw.setdefault((n, w), []).append(v)
                rows.append([n, g, w, f"p{k}", v])
    return _write(path, ["stimulus", "group", "descriptor", "listener", "rating"], rows), raw


@pytest.mark.parametrize("layout", ["wide", "long", "listeners", "folder"])
def test_ingest_ratings_in_every_layout(tmp_path: Path, data_dir: Path, layout: str) -> None:
    stimuli = _stimuli()
    ratings = _ratings(stimuli)
    audio = _audio(tmp_path / "set" / "audio", stimuli)
    raw = None
    if layout == "wide":
        target = write_wide(tmp_path / "set" / "mine.csv", stimuli, ratings)
    elif layout == "long":
        target = write_long(tmp_path / "set" / "mine.csv", stimuli, ratings)
    elif layout == "listeners":
        target, raw = write_listeners(tmp_path / "set" / "mine.csv", stimuli, ratings)
    else:
        write_wide(tmp_path / "set" / "ratings.csv", stimuli, ratings)
        _, raw = write_listeners(tmp_path / "set" / "listener_ratings.csv", stimuli, ratings)
        target = tmp_path / "set"
    cli = CLI(tmp_path / "s.duckdb", data_dir)
    args = ["ingest", "ratings", str(target), "--models", "mfcc,socialfx-eq", "--format", "json"]
    if layout != "folder":
        args += ["--audio", str(audio), "--name", "mine"]
    out = json.loads(cli(*args).stdout)
    name = "mine" if layout != "folder" else "set"
    summary = out["datasets"][name]
    assert out["errors"] == [] and summary["stimuli"] == 6 and summary["groups"] == {"high": 3, "low": 3}
    assert summary["descriptors"] == 3
    stored = dict(((s, d), v) for s, d, v in db_rows(cli.db, f"SELECT instrument, descriptor, rating FROM ratings "
                                                           f"WHERE dataset = '{name}'"))
    if raw is None or layout == "folder":
        assert stored == pytest.approx(ratings)  # the means as given
    else:
        assert stored == pytest.approx({k: float(np.mean(v)) for k, v in raw.items()})  # computed from listeners
    if raw is not None:
        n_raw = db_rows(cli.db, f"SELECT count(*) FROM listener_ratings WHERE dataset = '{name}'")[0][0]
        assert n_raw == 6 * 3 * 5 - 1 and summary["missing_listener_ratings"] == 1
    # exp1 on it: groups are the splits; statistics equal scipy over the rated_pairs view
    res = json.loads(cli("query", "exp1", "--dataset", name, "--bootstrap", "50", "--permutations", "50",
                         "--format", "json").stdout)
    assert {r["split"] for r in res["descriptors"]} == {"all", "high", "low"}
    with Store(cli.db, read_only=True) as store:
        result = run_exp1(store, dataset=name, n_bootstrap=50, n_permutations=50)
        pairs = store.frame(f"SELECT * FROM rated_pairs WHERE dataset = '{name}' AND template = '{{}}'")
    pairs = pairs.with_columns(pairs["split"].replace({"high": "chinese", "low": "western"}))
    fixed = {k: v.with_columns(v["split"].replace({"high": "chinese", "low": "western"})) for k, v in result.items()}
    assert_matches_reference(fixed, pairs, list(WORDS))
    bright = next(r for r in res["descriptors"] if r["model"] == "socialfx-eq" and r["descriptor"] == "bright"
                  and r["split"] == "all")
    assert bright["pearson_r"] > 0.5  # low-rolloff (bright) tones are rated bright and sound bright
    if raw is not None:
        assert "ceiling_r" in res["descriptors"][0]
        rows = json.loads(cli("query", "ceiling", "--dataset", name, "--format", "json").stdout)
        assert {r["method"] for r in rows} == {"split-half", "sd"}


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("non-number", "line 3: bright 'very' is not a number"),
        ("duplicate", "line 8: duplicate stimulus 'tone0'"),
        ("empty cell", "line 4: stimulus 'tone2' has no rating in column 'warm'"),
        ("all group", "line 2: group 'all' is reserved"),
        ("two stimuli", "2 stimulus/stimuli; a rated dataset needs at least 3"),
        ("no stimulus column", "no 'stimulus' (or 'instrument') column"),
        ("missing audio", "no audio file for 1 instrument(s): tone5"),
        ("bad name", "--name 'Bad Name!'"),
        ("reserved name", "--name 'audealize' is reserved"),
    ],
)
def test_bad_rating_files_are_one_line_exit_1_and_write_nothing(tmp_path: Path, data_dir: Path, edit: str,
                                                                needle: str) -> None:
    stimuli = _stimuli()
    ratings = _ratings(stimuli)
    audio = _audio(tmp_path / "audio", stimuli)
    path = write_wide(tmp_path / "mine.csv", stimuli, ratings)
    rows = list(csv.reader(path.open(encoding="utf-8")))
    name = "mine"
    if edit == "non-number":
        rows[2][2] = "very"
    elif edit == "duplicate":
        rows.append(list(rows[1]))
    elif edit == "empty cell":
        rows[3][4] = ""
    elif edit == "all group":
        rows[1][1] = "ALL"
    elif edit == "two stimuli":
        rows = rows[:3]
    elif edit == "no stimulus column":
        rows[0][0] = "sound"
    elif edit == "missing audio":
        (audio / "tone5.wav").unlink()
    elif edit == "bad name":
        name = "Bad Name!"
    elif edit == "reserved name":
        name = "audealize"
    _write(path, rows[0], rows[1:])
    cli = CLI(tmp_path / "s.duckdb", data_dir)
    res = cli("ingest", "ratings", str(path), "--audio", str(audio), "--name", name, "--models", "mfcc", ok=False)
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert needle in line and "\n" not in line, line
    assert not cli.db.exists()  # validated before the store is opened: nothing written at all


def test_listener_table_must_match_the_means(tmp_path: Path, data_dir: Path) -> None:
    stimuli = _stimuli()
    ratings = _ratings(stimuli)
    _audio(tmp_path / "set" / "audio", stimuli)
    write_wide(tmp_path / "set" / "ratings.csv", stimuli, {k: v for k, v in ratings.items()})
    lpath, _ = write_listeners(tmp_path / "set" / "listener_ratings.csv", stimuli + [("tone9", "low", 1.0)],
                               {**ratings, **{("tone9", w): 5.0 for w in WORDS}})
    res = CLI(tmp_path / "s.duckdb", data_dir)("ingest", "ratings", str(tmp_path / "set"), "--models", "mfcc", ok=False)
    assert res.exit_code == 1 and f"{lpath}: 3 (stimulus, descriptor) pair(s) have no mean" in res.stderr


def test_options_of_ingest_ratings_belong_to_it(tmp_path: Path, data_dir: Path) -> None:
    res = CLI(tmp_path / "s.duckdb", data_dir)("ingest", "ccmusic", "--name", "x", ok=False)
    assert res.exit_code == 1 and "--audio and --name belong to `timbredb ingest ratings PATH`" in res.stderr
    res = CLI(tmp_path / "s.duckdb", data_dir)("ingest", "ratings", ok=False)
    assert res.exit_code == 1 and "takes one FILE.csv or folder" in res.stderr


def test_ccmusic_exp1_output_is_byte_for_byte_the_old_computation(tmp_path: Path, data_dir: Path) -> None:
    """`query exp1` (= `--dataset ccmusic`) renders exactly what the pre-issue-11 path did:
    the exp1_pairs view's rows through analyse_pairs, the descriptors of exp1_ratings."""
    from timbredb import queries

    write_local(tmp_path / "data", make_instruments(n_chinese=5, n_western=4, seconds=0.3))
    (tmp_path / "data" / "audealize").symlink_to(data_dir / "audealize", target_is_directory=True)
    cli = CLI(tmp_path / "s.duckdb", tmp_path / "data")
    cli("ingest", "ccmusic", "--models", "mfcc,socialfx-eq", "--prompt", "{}", "--prompt", "a {} sound")
    with Store(cli.db, read_only=True) as store:
        for template in ("{}", "a {} sound"):
            old = analyse_pairs(
                queries.run(store, "exp1_pairs", template=template),
                queries.run(store, "exp1_ratings").get_column("descriptor").unique().sort().to_list(),
                n_bootstrap=40, n_permutations=60, seed=2,
            )
            for fmt in ("table", "json", "csv"):
                expected = render(old, fmt, collapse=True)
                plain = cli("query", "exp1", "--prompt", template, "--bootstrap", "40", "--permutations", "60",
                            "--seed", "2", "--format", fmt).stdout
                named = cli("query", "exp1", "--dataset", "ccmusic", "--prompt", template, "--bootstrap", "40",
                            "--permutations", "60", "--seed", "2", "--format", fmt).stdout
                assert plain == named == expected + "\n"
    bad = cli("query", "exp1", "--dataset", "nope", ok=False)
    assert bad.exit_code == 1 and "no rated dataset 'nope'" in bad.stderr


def test_a_dataset_without_groups_has_only_the_pooled_split(tmp_path: Path, data_dir: Path) -> None:
    stimuli = [(n, "", r) for n, _, r in _stimuli()]
    ratings = _ratings(stimuli)
    audio = _audio(tmp_path / "audio", stimuli)
    path = _write(tmp_path / "plain.csv", ["stimulus", "descriptor", "rating"],
                  [[n, w, ratings[(n, w)]] for n, _, _ in stimuli for w in WORDS])
    cli = CLI(tmp_path / "s.duckdb", data_dir)
    cli("ingest", "ratings", str(path), "--audio", str(audio), "--models", "socialfx-eq")
    res = json.loads(cli("query", "exp1", "--dataset", "plain", "--bootstrap", "0", "--permutations", "0",
                         "--format", "json").stdout)
    assert {r["split"] for r in res["descriptors"]} == {"all"} and [s["split"] for s in res["splits"]] == ["all"]
    assert {r["split"] for r in res["instruments"]} == {""}
