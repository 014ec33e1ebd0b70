"""Issue 17, start-up: the small commands import only what they run, and print the same bytes.

`timbredb sql` prints plain DuckDB rows (``formatting.Rows``) where they print as a polars
frame would, so a small statement imports no polars, pyarrow or NumPy; `query` imports no
scipy.stats (timbredb.analysis.stats holds NumPy versions, tests/test_stats_numpy.py) and no
pandas. These tests hold both halves: what a command imports (a regression fails here, not
only in benchmarks/bench_startup.py) and that the outputs are those of the polars path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from timbredb.formatting import Rows, render
from timbredb.sql import run_readonly

#: modules a command may not import, by top-level package
HEAVY = {"torch", "torchaudio", "laion_clap", "msclap", "muq", "transformers", "scipy", "pandas", "sklearn",
         "faiss", "pedalboard", "soundfile", "librosa", "matplotlib", "numba", "ray"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, synth_data_dir: Path) -> Path:
    """A tiny store: three tones embedded by both baselines."""
    from tests.synth import harmonic_tone, write
    from timbredb.ingest import Ingestor
    from timbredb.models import load
    from timbredb.store import Store

    root = tmp_path_factory.mktemp("startup")
    db = root / "s.duckdb"
    files = [write(root / f"t{i}.wav", harmonic_tone(200 + 100 * i, 0.3)) for i in range(3)]
    with Store(db) as s:
        Ingestor(s, [load("mfcc"), load("socialfx-eq", data_dir=synth_data_dir)]).add_files(files)
    return db


def _imports(*args: str) -> dict[str, object]:
    """Run ``timbredb ARGS`` in a fresh interpreter (as the console script does) and list what it imported."""
    code = (
        "import sys, json, io, contextlib\n"
        "from timbredb.cli import cli\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        cli.main(sys.argv[1:], prog_name='timbredb')\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        "    else:\n"
        "        code = 0\n"
        "print(json.dumps({'code': code, 'stdout': out.getvalue(),\n"
        "                  'modules': sorted({m.split('.')[0] for m in sys.modules})}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_help_imports_no_database_nor_numerics() -> None:
    out = _imports("--help")
    assert out["code"] == 0 and "Usage" in str(out["stdout"])
    mods = set(out["modules"])  # type: ignore[call-overload]
    assert not mods & (HEAVY | {"duckdb", "numpy", "polars", "pyarrow", "platformdirs"}), sorted(mods & HEAVY)


def test_sql_imports_duckdb_only(store: Path) -> None:
    out = _imports("--db", str(store), "sql", "select 1 AS one")
    assert out["code"] == 0 and out["stdout"] == "one\n---\n  1\n"
    mods = set(out["modules"])  # type: ignore[call-overload]
    assert "duckdb" in mods  # the check looks at the right process
    assert not mods & (HEAVY | {"numpy", "polars", "pyarrow"}), sorted(mods & (HEAVY | {"numpy", "polars", "pyarrow"}))
    # a store query in each text format, too
    for fmt in ("table", "csv", "json"):
        out = _imports("--db", str(store), "sql", "SELECT model, count(*) AS n FROM audio_vectors GROUP BY model",
                       "--format", fmt)
        assert out["code"] == 0 and "mfcc" in str(out["stdout"])
        assert "polars" not in out["modules"] and "numpy" not in out["modules"], fmt  # type: ignore[operator]


@pytest.mark.parametrize("exp", ["exp1", "exp2", "exp3"])
def test_query_imports_no_scipy_pandas_or_torch(store: Path, exp: str) -> None:
    out = _imports("--db", str(store), "query", exp, "--format", "json")
    # this tiny store has no data for some experiments: exit 1 with one line is fine, the imports are the point
    assert out["code"] in (0, 1)
    mods = set(out["modules"])  # type: ignore[call-overload]
    assert "polars" in mods
    assert not mods & HEAVY, sorted(mods & HEAVY)


def test_query_on_a_filled_store_imports_no_scipy(filled_db: Path) -> None:
    for exp in ("exp1", "exp2", "exp3"):
        out = _imports("--db", str(filled_db), "query", exp, "--format", "json")
        assert out["code"] == 0, (exp, out)
        assert json.loads(str(out["stdout"])), exp
        assert not set(out["modules"]) & HEAVY, (exp, sorted(set(out["modules"]) & HEAVY))  # type: ignore[call-overload]


# ---------------------------------------------------------------- sql: plain rows print as the polars frame did
_FLOATS = [0.0, -0.0, 1.0, -1.5, 0.1, 1 / 3, 1e-4, 1.5e-4, 1e-5, 1.2345e-5, 9.99e-6, 1e-6, 1e-7, 2.5e-300, 5e-324,
           1e15, 1e16, 1.5e16, 123456789012345678.0, 1e21, 1e22, 1.7976931348623157e308, -3.25e-7, 12345.678]


def _statements() -> list[str]:
    floats = ", ".join(f"({v!r}::DOUBLE)" for v in _FLOATS)
    return [
        "select 1",
        "SELECT 1 AS a, 'x' AS b, true AS c, NULL AS d, 2.5::DOUBLE AS e",
        f"SELECT * FROM (VALUES {floats}) t(v)",
        "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, '-inf'::DOUBLE AS m",
        "SELECT * FROM (VALUES (1, 'a,b'), (NULL, 'say \"hi\"'), (3, ''), (4, NULL), (5, 'line\nbreak'), "
        "(6, 'ünïcödé … long long long long long long long long long long long text')) t(n, s)",
        "SELECT 127::TINYINT AS a, 32767::SMALLINT AS b, 2147483647 AS c, 9223372036854775807 AS d, "
        "255::UTINYINT AS e, 65535::USMALLINT AS f, 4294967295::UINTEGER AS g, 18446744073709551615::UBIGINT AS h",
        "SELECT DATE '2020-01-01' AS d, TIMESTAMP '2020-01-01 12:34:56.789012' AS ts, "
        "TIMESTAMP_S '2020-01-01 12:34:56' AS ts_s, TIMESTAMP_MS '2020-01-01 12:34:56.789' AS ts_ms",
        "SELECT TIMESTAMP '1969-12-31 23:59:59.5' AS before_epoch, TIMESTAMP_NS '2020-01-01 00:00:00.123456789' AS ns",
        "SELECT 1.5::FLOAT AS f, 0.1::FLOAT AS g, 'nan'::FLOAT AS h",
        "SELECT [1.5, 2.0] AS l, [1, 2]::INT[2] AS a, {'a': 1, 'b': [1, 2]} AS s, [NULL, 1] AS ln, []::INT[] AS e",
        "SELECT [[1, 2], [3]] AS ll, {'x': 'a,b', 'y': NULL} AS s, ['a\"b'] AS q",
        "SELECT '{\"a\": 1}'::JSON AS j, 'x'::ENUM('x', 'y') AS e",
        "SELECT 1 AS a, 2 AS a", "SELECT 1 AS a, 2 AS A",
        "SELECT 1 AS \"a,b\", 2 AS \" \", 3 AS \"q\"\"\"",
        "SELECT 3.14::DECIMAL(10,2) AS dec, INTERVAL 3 DAY AS iv, '7d31f1e0-6b7e-4e3c-9a6e-2f8c1d5a9b01'::UUID AS u",
        "SELECT 170141183460469231731687303715884105727::HUGEINT AS h, '\\xAA'::BLOB AS b, TIME '12:00:00' AS t",
        "SELECT * FROM range(0) t(n)", "SELECT * FROM range(500) t(n)",
        "SELECT range AS n, range / 7 AS q, (range % 3 = 0) AS b, repeat('x', range::INT % 60) AS s FROM range(200)",
        "SELECT model, count(*) AS n FROM audio_vectors GROUP BY model ORDER BY model",
        "SELECT clip_sha256, model, embedding FROM audio_vectors ORDER BY clip_sha256, model",
        "SELECT * FROM clips ORDER BY clip_sha256", "SELECT * FROM runs ORDER BY run_id",
        "SELECT * FROM similarities ORDER BY ALL LIMIT 50",
        "SUMMARIZE clips", "DESCRIBE clips", "SHOW TABLES", "EXPLAIN SELECT * FROM clips",
        "SELECT finished_at - started_at AS took FROM runs",
    ]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_plain_rows_print_the_bytes_of_the_polars_frame(store: Path, fmt: str) -> None:
    n_rows = 0
    for statement in _statements():
        old = run_readonly(store, statement).frame  # the frame every text format printed before
        new = run_readonly(store, statement, fmt=fmt).frame
        assert old is not None and new is not None
        assert render(new, fmt) == render(old, fmt), (fmt, statement)
        n_rows += isinstance(new, Rows)
    # most statements take the polars-free path (the test would pass vacuously otherwise)
    assert n_rows >= 20, n_rows


def test_sql_command_output_is_the_polars_paths(store: Path) -> None:
    """The whole command, through the console entry point, against the frame rendering."""
    from tests.conftest import CLI

    cli = CLI(store, None)
    statement = "SELECT clip_sha256, model, embedding, 0.1 AS f, NULL AS z FROM audio_vectors ORDER BY 1, 2"
    for fmt in ("table", "csv", "json"):
        frame = run_readonly(store, statement).frame
        assert frame is not None
        assert cli("sql", statement, "--format", fmt).stdout == render(frame, fmt) + "\n"


# ---------------------------------------------------------------- the analyses' faster paths, same bits
def test_permuted_pearson_is_row_pearson_bit_for_bit() -> None:
    from timbredb.analysis.exp1 import permuted_pearson, row_pearson

    rng = np.random.default_rng(5)
    for n in (2, 3, 10, 61, 200):
        for x, y in ((rng.standard_normal(n), rng.standard_normal(n)),
                     (np.round(rng.standard_normal(n)), rng.integers(0, 3, n).astype(np.float64)),
                     (np.ones(n), rng.standard_normal(n)), (rng.standard_normal(n), np.full(n, 2.0)),
                     (rng.standard_normal(n) * 1e8 + 3e9, rng.standard_normal(n) * 1e-9)):
            idx = np.argsort(rng.random((64, n)), axis=1)
            with np.errstate(all="ignore"):
                expected = row_pearson(np.broadcast_to(x, (64, n)), y[idx])
            got = permuted_pearson(x, y, idx)
            assert got.tobytes() == expected.tobytes(), n


def test_resampled_pearson_is_row_pearson_bit_for_bit() -> None:
    from timbredb.analysis.exp1 import resampled_pearson, row_pearson

    rng = np.random.default_rng(6)
    for n in (2, 3, 5, 16, 61, 200):
        for x, y in ((rng.standard_normal(n), rng.standard_normal(n)),
                     (np.round(rng.standard_normal(n), 1) * 1e-7, rng.integers(0, 3, n).astype(np.float64)),
                     (np.full(n, 0.1), rng.standard_normal(n)), (rng.standard_normal(n) + 1e9, np.full(n, 3.0))):
            idx = rng.integers(0, n, size=(256, n))
            idx[0] = 0  # a resample of one pair repeated: a constant row
            with np.errstate(all="ignore"):
                expected = row_pearson(x[idx], y[idx])
            got = resampled_pearson(x, y, idx)
            assert got.tobytes() == expected.tobytes(), n
            assert np.isnan(got[0])


def test_vector_matrices_are_the_arrow_paths(store: Path) -> None:
    from timbredb.store import Store, _arrow_to_matrix

    with Store(store, read_only=True) as s:
        for space in s.spaces():
            keys, mat = s.audio_matrix(space.space_id)
            tbl = s._arrow("audio_vectors_all", space_id=space.space_id)
            assert keys == tbl.column("k").to_pylist() and len(keys) == 3
            ref = _arrow_to_matrix(tbl.column("embedding"), len(keys))
            assert mat.dtype == np.float32 and mat.tobytes() == ref.tobytes()
            # and the zero-copy Arrow branch against pyarrow's own flatten
            flat = tbl.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            assert ref.tobytes() == flat.astype(np.float32).reshape(len(keys), -1).tobytes()


def test_query_outputs_are_those_of_scipy_and_the_plain_kernels(filled_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """exp1, exp2, exp3 on a filled store print the same bytes with SciPy's statistics and the
    plain row_pearson kernels in place of the NumPy statistics and the in-place kernels."""
    import warnings

    from scipy import stats as sps

    from timbredb.analysis import exp1, exp3, registry
    from timbredb.analysis import stats as tstats
    from timbredb.store import Store

    def run_all() -> dict[str, str]:
        out = {}
        with Store(filled_db, read_only=True) as store:
            for exp in ("exp1", "exp2", "exp3"):
                out[exp] = render(registry.run(exp, store, n_bootstrap=200) if exp != "exp2"
                                  else registry.run(exp, store), "json")
        return out

    new = run_all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(tstats, "pearsonr_statistic", lambda x, y: sps.pearsonr(x, y).statistic)
        monkeypatch.setattr(tstats, "spearmanr_statistic", lambda x, y: sps.spearmanr(x, y).statistic)
        monkeypatch.setattr(tstats, "kendalltau_b_statistic", lambda x, y: sps.kendalltau(x, y, variant="b").statistic)
        monkeypatch.setattr(tstats, "false_discovery_control_bh", lambda p: sps.false_discovery_control(p, method="bh"))
        monkeypatch.setattr(exp3, "spearmanr_statistic", lambda x, y: sps.spearmanr(x, y).statistic)
        monkeypatch.setattr(exp3, "kendalltau_b_statistic", lambda x, y: sps.kendalltau(x, y, variant="b").statistic)
        monkeypatch.setattr(exp1, "resampled_pearson", lambda x, y, idx: exp1.row_pearson(x[idx], y[idx]))
        monkeypatch.setattr(exp1, "permuted_pearson",
                            lambda x, y, idx: exp1.row_pearson(np.broadcast_to(x, idx.shape), y[idx]))
        old = run_all()
    for exp in new:
        assert len(json.loads(new[exp])) > 0, exp
        assert new[exp] == old[exp], exp


def test_permutation_p_is_two_sided_against_enumeration() -> None:
    """exp1's permutation p (through the in-place kernel) against the exact two-sided p of
    Pearson r over all 8! orderings, enumerated: #{|r_perm| >= |r|} / 8!. A one-sided p
    would be about half of it, or near 1 against the sign of r."""
    from itertools import permutations

    from scipy import stats as sps

    from timbredb.analysis.exp1 import permutation_p

    rng = np.random.default_rng(0)
    for sign in (1.0, -1.0):
        x = rng.standard_normal(8)
        y = sign * 0.8 * x + rng.standard_normal(8)
        r = float(sps.pearsonr(x, y).statistic)
        perms = np.array(list(permutations(range(8))))
        xc, yc = x - x.mean(), y[perms] - y.mean()
        r_all = (yc @ xc) / (np.linalg.norm(xc) * np.linalg.norm(yc, axis=1))
        exact = float(np.mean(np.abs(r_all) >= abs(r) - 1e-12))
        one_sided = float(np.mean(sign * r_all >= sign * r - 1e-12))
        assert 0.02 < exact < 0.06 and one_sided < 0.7 * exact, (exact, one_sided)
        p = permutation_p(x, y, r, 20_000, np.random.default_rng(8))
        # Monte Carlo SD of p at 20,000 permutations: below 0.0017 here; the one-sided p is far outside
        assert abs(p - exact) < 0.006, (sign, p, exact)
