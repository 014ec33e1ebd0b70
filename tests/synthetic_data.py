"""A data directory synthesized from physics, so core tests need nothing on disk.

``audealize/`` holds an ``eqpoints.json`` whose curves are shaped like what the
words mean (bright and tinny words rise with frequency, dark and warm words
fall, loud boosts the middle), a ``reverbdescriptors.json`` of a few reverb
settings, and three short stereo "demo clips"; ``timbremetrics/`` holds two
small studies whose human matrix is the log-frequency distance of their tones.
Nothing binary is committed: the files are written into a temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.synth import SR, harmonic_tone, noise, write
from timbredb.dsp import EQ_CENTRES_HZ

#: word -> (tilt per octave in [-1, 1], bump centre in Hz or None, bump width in octaves)
_EQ_SHAPES: dict[str, tuple[float, float | None, float]] = {
    "bright": (1.0, None, 1.0), "crisp": (0.8, 6000.0, 1.5), "clear": (0.6, 3000.0, 2.0),
    "sharp": (0.7, 4000.0, 1.0), "tinny": (0.5, 3000.0, 0.8), "harsh": (0.4, 2500.0, 1.0),
    "cold": (0.6, 12000.0, 0.7), "hard": (0.5, 2000.0, 1.5), "cool": (0.3, 8000.0, 2.0),
    "dark": (-1.0, None, 1.0), "warm": (-0.6, 250.0, 1.5), "mellow": (-0.8, 400.0, 2.0),
    "soft": (-0.7, 150.0, 0.6), "heavy": (-0.5, 80.0, 1.0), "smooth": (-0.4, 600.0, 3.0),
    "calm": (-0.6, 300.0, 2.5), "soothing": (-0.5, 500.0, 2.0), "peaceful": (-0.55, 350.0, 3.0),
    "gentle": (-0.45, 700.0, 2.0), "loud": (0.0, 1000.0, 2.0),
}
#: word -> raw reverberator settings [d, g, m, f, E, wetdry]
_REVERBS: dict[str, list[float]] = {
    "hall": [0.0721, 0.898, 0.0012, 1752.0, 0.19, 1.0],
    "church": [0.0721, 0.898, 0.0012, 1752.0, 0.19, 1.0],  # shares hall's parameters, as in Audealize
    "echo": [0.09, 0.6, 0.0, 9000.0, 0.8, 1.0],
    "warm": [0.04, 0.5, 0.004, 1200.0, 0.5, 1.0],
    "distant": [0.08, 0.85, 0.006, 900.0, 0.2, 1.0],
}


#: the English words of the synthesized eqpoints.json
EQ_WORDS = tuple(_EQ_SHAPES)


def eq_curve(word: str) -> list[float]:
    tilt, centre, width = _EQ_SHAPES[word]
    octaves = np.log2(np.asarray(EQ_CENTRES_HZ, dtype=np.float64) / 1000.0)
    curve = tilt * octaves / np.abs(octaves).max()
    if centre is not None:
        curve = curve + np.exp(-0.5 * ((octaves - np.log2(centre / 1000.0)) / width) ** 2)
    return [round(float(v), 6) for v in curve]


def write_audealize(root: Path) -> Path:
    folder = root / "audealize"
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    records = [
        {"word": w, "lang": "English", "settings": eq_curve(w), "agreement": 0.5, "num": 3, "x": 0.0, "y": 0.0}
        for w in _EQ_SHAPES
    ]
    records.append({"word": "brillante", "lang": "Spanish", "settings": eq_curve("bright"), "agreement": 0.5,
                    "num": 1, "x": 0.0, "y": 0.0})
    (folder / "eqpoints.json").write_text(json.dumps(records), encoding="utf-8")
    reverbs = [{"word": w, "lang": "English", "settings": s, "agreement": 0.5, "num": 2, "x": 0.0, "y": 0.0}
               for w, s in _REVERBS.items()]
    (folder / "reverbdescriptors.json").write_text(json.dumps(reverbs), encoding="utf-8")
    seconds = 1.5
    guitar = harmonic_tone(196.0, seconds, n_harmonics=30, rolloff=1.2)
    piano = harmonic_tone(261.6, seconds, n_harmonics=30, rolloff=1.8)
    hits = np.zeros(int(seconds * SR), dtype=np.float32)
    for start in range(0, hits.shape[0] - 2000, SR // 4):
        hits[start : start + 2000] += noise(2000 / SR, seed=start) * np.linspace(1, 0, 2000, dtype=np.float32)
    for name, x in (("guitar", guitar), ("piano", piano), ("drums", hits)):
        write(folder / "audio" / f"{name}.wav", np.stack([x, 0.9 * x], axis=1))
    return folder


def write_timbremetrics(root: Path) -> Path:
    folder = root / "timbremetrics"
    for k, (name, f0s) in enumerate((("SynthA2020", (110.0, 180.0, 300.0, 520.0, 880.0)),
                                     ("SynthB2021", (150.0, 240.0, 410.0, 700.0)))):
        sounds = folder / "sounds" / name
        for i, f0 in enumerate(f0s):
            write(sounds / f"{i:02d}_tone.aiff", harmonic_tone(f0, 0.4, rolloff=1.0 + 0.4 * k), subtype="PCM_16")
        logf = np.log2(np.asarray(f0s))
        human = np.triu(np.abs(logf[:, None] - logf[None, :]), k=1)
        matrix = folder / "true_dissim" / f"{name}_dissimilarity_matrix.txt"
        matrix.parent.mkdir(parents=True, exist_ok=True)
        matrix.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in human) + "\n", encoding="utf-8")
    return folder


def write_data_dir(root: Path) -> Path:
    """A complete synthesized data dir (audealize/ and timbremetrics/) under ``root``."""
    write_audealize(root)
    write_timbremetrics(root)
    return root
