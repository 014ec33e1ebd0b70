"""`python -m timbredb` and the `timbredb` console script.

``main`` imports the CLI inside the guard, so a Ctrl-C that lands while Python is
still importing exits 130 with one line too, like one during a command.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from timbredb.cli import cli

        cli(prog_name="timbredb")
    except KeyboardInterrupt:
        sys.stderr.write("timbredb: interrupted; everything stored before the interrupt is kept\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
