"""The wheel carries migrations/ and queries/ so an installed timbredb works away from the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_migrations_and_queries(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("timbredb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for sql in (REPO / "migrations").glob("*.sql"):
        assert f"timbredb/_sql/migrations/{sql.name}" in names
    for sql in (REPO / "queries").glob("*.sql"):
        assert f"timbredb/_sql/queries/{sql.name}" in names
    assert "timbredb/cli.py" in names
    # the page of `timbredb serve` and the server's statements
    for static in (REPO / "timbredb" / "server" / "static").iterdir():
        assert f"timbredb/server/static/{static.name}" in names
    assert "timbredb/statements/serve.sql" in names and "timbredb/server/app.py" in names
