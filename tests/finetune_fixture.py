"""A data directory for the fine-tuning tests: exp2 words and sources synthesized from physics.

``audealize/`` holds the synthesized EQ curves of ``tests.synthetic_data`` and, unlike
the core data dir, reverb settings for eight words that also have an EQ curve (so
``socialfx-eq`` has a text vector for every reverb word), each with its own
parameters (no two words share their variants), assigned so that the base
socialfx-eq space is often wrong about them (see ``REVERB_WORDS``). Six sources: the three demo clips
(guitar, piano, drums), their mixture, and two more files passed with ``--source``
(``organ``, a bright harmonic tone, and ``noise``, low-passed noise), so a held-out
pair of sources leaves four to train on. Nothing binary is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.synth import harmonic_tone, lowpassed, noise, write
from tests.synthetic_data import write_audealize

#: word -> raw reverberator settings [d, g, m, f, E, wetdry]. The tail's low-pass cutoff f is
#: assigned against the words' meaning (dark words get a bright tail ...), so the base
#: socialfx-eq space, which compares spectra with the words' EQ curves, is often wrong, and a
#: tuned space has the crowd's mapping to learn; no two words share their parameters
REVERB_WORDS: dict[str, list[float]] = {
    "dark": [0.05, 0.85, 0.002, 14000.0, 0.6, 1.0],
    "warm": [0.04, 0.70, 0.004, 9000.0, 0.5, 1.0],
    "mellow": [0.06, 0.80, 0.003, 18000.0, 0.45, 1.0],
    "soft": [0.03, 0.60, 0.001, 1200.0, 0.35, 1.0],
    "heavy": [0.09, 0.90, 0.006, 3000.0, 0.8, 1.0],
    "clear": [0.02, 0.40, 0.000, 900.0, 0.3, 1.0],
    "crisp": [0.015, 0.50, 0.005, 2200.0, 0.5, 1.0],
    "bright": [0.025, 0.65, 0.008, 1500.0, 0.7, 1.0],
}
EXTRA_SOURCES = ("organ", "noise")


def write_finetune_data(root: Path, seconds: float = 1.5) -> tuple[Path, list[Path]]:
    """The data dir and the extra source files.

    Returns:
        (data dir, [extra source files]).
    """
    data = root / "data"
    folder = write_audealize(data)
    reverbs = [{"word": w, "lang": "English", "settings": s, "agreement": 0.5, "num": 2, "x": 0.0, "y": 0.0}
               for w, s in REVERB_WORDS.items()]
    (folder / "reverbdescriptors.json").write_text(json.dumps(reverbs), encoding="utf-8")
    extra = root / "sources"
    organ = harmonic_tone(130.8, seconds, n_harmonics=40, rolloff=0.7)
    hiss = lowpassed(noise(seconds, seed=77), 3000.0) * 2.0
    files = [write(extra / "organ.wav", np.stack([organ, organ], axis=1)),
             write(extra / "noise.wav", np.stack([hiss, 0.8 * hiss], axis=1))]
    return data, files


def ingest_args(data: Path, files: list[Path], effect: str, words: tuple[str, ...], strengths: str) -> list[str]:
    """`timbredb ingest audealize ...` arguments for these words of one effect on every source."""
    args = ["--data-dir", str(data), "ingest", "audealize", "--words", ",".join(f"{effect}:{w}" for w in words),
            "--strengths", strengths, "--length-s", "1.0"]
    for f in files:
        args += ["--source", str(f)]
    return args
