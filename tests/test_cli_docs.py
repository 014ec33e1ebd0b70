"""Every command has help text and is documented in the README; light start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from timbredb.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
    return out


@pytest.fixture(scope="session")
def data_dir(synth_data_dir: Path) -> Path:
    """Core tests run on synthesized data (no ../shared/data needed)."""
    return synth_data_dir


def test_every_command_has_help_and_is_in_the_readme() -> None:
    commands = _commands(cli)
    assert len(commands) >= 14
    for name, cmd in commands:
        assert cmd.help and cmd.help.strip(), f"`timbredb {name}` has no help text"
        assert f"timbredb {name}" in README, f"`timbredb {name}` is not documented in README.md"
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"`timbredb {name} {param.opts[0]}` has no help text"


def _python(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout


def test_help_models_list_and_sql_do_not_import_torch(tmp_path: Path, data_dir: Path) -> None:
    from tests.synth import harmonic_tone, write
    from timbredb.ingest import Ingestor
    from timbredb.models import load
    from timbredb.store import Store

    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        Ingestor(store, [load("mfcc")]).add_files([write(tmp_path / "t.wav", harmonic_tone(220, 0.3))])
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from timbredb.cli import cli\n"
        "r = CliRunner()\n"
        "outs = [r.invoke(cli, ['--help']), r.invoke(cli, ['--data-dir', sys.argv[1] if len(sys.argv) > 1 else '.', 'models', 'list', '--format', 'json'])]\n"
        "assert all(o.exit_code == 0 for o in outs), [o.output for o in outs]\n"
        "sql = r.invoke(cli, ['--db', sys.argv[2], 'sql', 'SELECT count(*) AS n FROM audio_vectors', '--format', 'json'])\n"
        "assert sql.exit_code == 0 and json.loads(sql.stdout) == [{'n': 1}], sql.output\n"
        "for exp in ('exp1', 'exp2', 'exp3'):\n"
        "    q = r.invoke(cli, ['--db', sys.argv[2], 'query', exp, '--format', 'json'])\n"
        "    # exit 1 with one line when the store holds no data for it; a crash would leave an exception\n"
        "    assert q.exit_code in (0, 1) and (q.exception is None or isinstance(q.exception, SystemExit)), (exp, q.output)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchaudio', 'laion_clap', 'msclap', 'muq', 'transformers'})\n"
        "print(json.dumps({'heavy': heavy, 'models': json.loads(outs[1].stdout)}))\n"
    )
    out = json.loads(_python(code, str(data_dir), str(db)))
    assert out["heavy"] == []
    ids = {m["id"] for m in out["models"]}
    assert {"mfcc", "socialfx-eq"} <= ids
    for m in out["models"]:
        assert set(m) >= {"id", "family", "checkpoint", "dim", "sample_rate", "modalities", "license", "usable", "reason"}
        assert m["usable"] or m["reason"], f"{m['id']} is unusable without a reason"


def test_python_dash_m_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "timbredb", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("timbredb, version")


def _readme_commands() -> dict[str, str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_commands", REPO / ".ci" / "readme_commands.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.commands(README)  # type: ignore[no-any-return]


REPO = Path(__file__).resolve().parent.parent


def test_the_readme_opens_with_the_main_job_and_the_test_command() -> None:
    cmds = _readme_commands()
    for which in ("main", "tests"):
        # a newcomer copies these on a fresh machine: each makes the venv and installs everything
        assert cmds[which].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install 'torch==2.13.0'")
    assert "timbredb ingest" in cmds["main"] and "timbredb report" in cmds["main"]
    assert "HF_HUB_OFFLINE=1" in cmds["tests"] and "python -m pytest" in cmds["tests"]
    # the data dir is given relative to the checkout, as a newcomer has it
    assert "TIMBREDB_DATA_DIR=../shared/data" in cmds["tests"]


def test_ci_runs_the_readme_test_command_character_for_character() -> None:
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    # written out verbatim (a reader of .ci/run sees what runs) and checked against the README at run time
    assert "\n" + _readme_commands()["tests"] + "\n" in run
    assert "readme_command=$(python3 .ci/readme_commands.py tests)" in run
    assert '[ "$tests_command" != "$readme_command" ]' in run
    assert 'bash -euo pipefail -c "$tests_command"' in run
    # and nothing else runs pytest behind the README's back
    assert run.count("pytest") == 1
    assert "ruff check" in run and "mypy timbredb" in run


def test_the_public_api_is_lazy_and_imports_no_torch() -> None:
    code = (
        "import sys, json, timbredb\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] in {'duckdb', 'polars', 'torch'})\n"
        "names = [n for n in timbredb.__all__ if n != '__version__']\n"
        "objs = [getattr(timbredb, n) for n in names]\n"
        "after = sorted(m for m in sys.modules if m.split('.')[0] == 'torch')\n"
        "print(json.dumps({'before': before, 'torch_after': after, 'n': len(objs)}))\n"
    )
    out = json.loads(_python(code))
    assert out["before"] == [] and out["torch_after"] == [] and out["n"] >= 10


def test_a_relative_data_dir_is_made_absolute_once(tmp_path: Path, synth_data_dir: Path, monkeypatch) -> None:
    """`TIMBREDB_DATA_DIR=../shared/data` as the README writes it: resolved against the working
    directory once, without '..', so links and messages made elsewhere still point at it."""
    import os

    from timbredb.config import resolve_data_dir

    work, data = tmp_path / "checkout", tmp_path / "shared" / "data"
    work.mkdir()
    data.mkdir(parents=True)
    (data / "audealize").symlink_to(synth_data_dir / "audealize", target_is_directory=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TIMBREDB_DATA_DIR", "../shared/data")
    assert resolve_data_dir(None) == data and ".." not in str(resolve_data_dir(None))
    assert resolve_data_dir("../shared/data") == data
    # a model built from data files finds them through the relative path, from another process
    env = {**os.environ, "TIMBREDB_DATA_DIR": "../shared/data"}
    out = subprocess.run([sys.executable, "-m", "timbredb", "models", "list", "--format", "json"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    usable = {m["id"]: m["usable"] for m in json.loads(out)}
    assert usable["socialfx-eq"] is True
