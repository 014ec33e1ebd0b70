"""Print one of the README's two opening commands, exactly as the README writes it.

    python3 .ci/readme_commands.py main    # the command that sets up and runs the main job
    python3 .ci/readme_commands.py tests   # the command that sets up and runs the tests

`.ci/run` runs the second one character for character, so CI tests what a
newcomer copies; tests/test_cli_docs.py checks that both commands exist.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def commands(text: str) -> dict[str, str]:
    """The first two ```bash blocks of the README: main job, then tests (one line each)."""
    blocks = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    if len(blocks) < 2 or any("\n" in b.strip() for b in blocks[:2]):
        raise SystemExit("README.md must open with two one-line ```bash blocks: the main job, then the tests")
    return {"main": blocks[0].strip(), "tests": blocks[1].strip()}


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "tests"
    print(commands(README.read_text(encoding="utf-8"))[which])
