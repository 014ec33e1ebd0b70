"""SAFE-DB (Stables et al., ISMIR 2014): words saved with the SAFE plug-ins' settings (`timbredb ingest safedb`).

Layout under the data dir: ``safedb/SAFE{Equaliser,Compressor,Distortion,Reverb}UserData.csv``,
no header row. Column order = the SAFE server's table schema
(semanticaudio/safe-api ``database/migrations/2015_07_06_145816_create_SAFE<Plugin>UserData_table.php``):
``ID, Descriptors, usrIP, numInputs, numOutputs``, the plug-in's parameters in
its ``addParameter`` order, in the plug-in's units (the plug-in saves the scaled
value, ``getScaledValue()``; semanticaudio/SAFE ``SAFEAudioProcessor.cpp``),
then ``Metadata_Genre, _Instrument, _Location, _Experience, _Age, _Language,
FeatureChecksum``. So each row has 5 + P + 7 cells; only ``Descriptors`` and the
parameters are used.

Parameters (semanticaudio/SAFE ``SAFE<Plugin>/Source/PluginProcessor.cpp``):

- Equaliser (13): band 1 gain (dB, -12..12), band 1 frequency (Hz, 22..1000;
  low shelf, Q 0.71), bands 2-4 gain, frequency (82..3900, 180..4700,
  220..10000 Hz) and Q (0.1..10) (peaking), band 5 gain and frequency (580..20000 Hz;
  high shelf, Q 0.71).
- Compressor (6): threshold (dB, -50..0), ratio (1..20), knee (dB, 0..20),
  attack (ms, 0.1..100), release (ms, 10..2000), make-up gain (dB, 0..20).
- Distortion (5): input gain (dB, -50..50), knee (0..1), bias (0..1), tone (0..1),
  output gain (dB, -60..6).
- Reverb (9, all 0..1): MVerb's damping, density, bandwidth, decay, pre-delay,
  size, gain, mix, early mix. **Not rendered**: MVerb is specified only by its
  GPL source, its parameters ramp per host processing block (block size
  unknown) and setting the size clears its delay lines, so the plug-in's output
  cannot be reproduced from the saved settings; pedalboard's Reverb (Freeverb)
  is a different algorithm with no parameter mapping. Its rows are not read.

How settings become variants: ``timbredb.datasets.effect_words`` (words,
median per parameter, selection, bad rows) and ``timbredb.dsp_plugins`` (the
effects and their neutral settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb import dsp_plugins as fx
from timbredb.datasets.effect_words import Contributions, EffectPlan, Param, csv_rows, ingest_effects, parse_values, words_of
from timbredb.ingest import IngestOptions, Ingestor

DATASET = "safedb"
#: a word needs this many rows (contributions) to be rendered by default
DEFAULT_MIN_CONTRIBUTIONS = 5
N_LEADING, N_TRAILING = 5, 7

EQ_PARAMS: tuple[Param, ...] = (
    Param("band1_gain_db", -12, 12), Param("band1_freq_hz", 22, 1000),
    Param("band2_gain_db", -12, 12), Param("band2_freq_hz", 82, 3900), Param("band2_q", 0.1, 10),
    Param("band3_gain_db", -12, 12), Param("band3_freq_hz", 180, 4700), Param("band3_q", 0.1, 10),
    Param("band4_gain_db", -12, 12), Param("band4_freq_hz", 220, 10000), Param("band4_q", 0.1, 10),
    Param("band5_gain_db", -12, 12), Param("band5_freq_hz", 580, 20000),
)
COMPRESSOR_PARAMS: tuple[Param, ...] = (
    Param("threshold_db", -50, 0), Param("ratio", 1, 20), Param("knee_db", 0, 20),
    Param("attack_ms", 0.1, 100), Param("release_ms", 10, 2000), Param("makeup_db", 0, 20),
)
DISTORTION_PARAMS: tuple[Param, ...] = (
    Param("input_gain_db", -50, 50), Param("knee", 0, 1), Param("bias", 0, 1), Param("tone", 0, 1),
    Param("output_gain_db", -60, 6),
)
FILES = {
    "safe-eq": ("SAFEEqualiserUserData.csv", EQ_PARAMS),
    "safe-compression": ("SAFECompressorUserData.csv", COMPRESSOR_PARAMS),
    "safe-distortion": ("SAFEDistortionUserData.csv", DISTORTION_PARAMS),
}


def read_contributions(path: Path, effect: str, params: tuple[Param, ...]) -> Contributions:
    """Every usable row of one SAFE-DB file, by word; bad rows are listed, not raised.

    Raises:
        DatasetError: the file is missing or not CSV.
    """
    out = Contributions(effect, path, params)
    expected = N_LEADING + len(params) + N_TRAILING
    for line, cells in csv_rows(path):
        if len(cells) != expected:
            out.bad.append((line, f"{len(cells)} columns, expected {expected} (5 + {len(params)} parameters + 7)"))
            continue
        try:
            values = parse_values(cells[N_LEADING : N_LEADING + len(params)], params)
        except ValueError as exc:
            out.bad.append((line, str(exc)))
            continue
        if not cells[1].strip():
            out.bad.append((line, "no descriptor"))
            continue
        out.add(words_of(cells[1]), values)
    return out


def safe_eq(v: tuple[float, ...]) -> fx.SafeEQ:
    return fx.SafeEQ(
        gains_db=(v[0], v[2], v[5], v[8], v[11]),
        freqs_hz=(v[1], v[3], v[6], v[9], v[12]),
        qs=(fx.SHELF_Q, v[4], v[7], v[10], fx.SHELF_Q),
    )


def _named(params: tuple[Param, ...], values: tuple[float, ...]) -> dict[str, Any]:
    return {p.name: round(float(v), 6) for p, v in zip(params, values)}


def _eq_setting(v: tuple[float, ...], s: float) -> dict[str, Any]:
    eq = safe_eq(v).at(s)
    return _named(EQ_PARAMS, (eq.gains_db[0], v[1], eq.gains_db[1], v[3], v[4], eq.gains_db[2], v[6], v[7],
                              eq.gains_db[3], v[9], v[10], eq.gains_db[4], v[12]))


def _comp_setting(v: tuple[float, ...], s: float) -> dict[str, Any]:
    c = fx.SafeCompressor(*v).at(s)
    return _named(COMPRESSOR_PARAMS, (c.threshold_db, c.ratio, c.knee_db, c.attack_ms, c.release_ms, c.makeup_db))


def _dist_setting(v: tuple[float, ...], s: float) -> dict[str, Any]:
    d = fx.SafeDistortion(*v).at(s)
    return _named(DISTORTION_PARAMS, (d.input_gain_db, d.knee, d.bias, d.tone, d.output_gain_db))


def _render_eq(v: tuple[float, ...], pcm: NDArray[np.float32], sr: int, s: float) -> tuple[NDArray[np.float32], int]:
    return fx.render_safe_eq(pcm, sr, safe_eq(v), s)


def _render_comp(v: tuple[float, ...], pcm: NDArray[np.float32], sr: int, s: float) -> tuple[NDArray[np.float32], int]:
    return fx.render_safe_compressor(pcm, sr, fx.SafeCompressor(*v), s)


def _render_dist(v: tuple[float, ...], pcm: NDArray[np.float32], sr: int, s: float) -> tuple[NDArray[np.float32], int]:
    return fx.render_safe_distortion(pcm, sr, fx.SafeDistortion(*v), s)


def plans(data_dir: Path) -> list[EffectPlan]:
    """The three renderable SAFE effects with their contributions.

    Raises:
        DatasetError: a file is missing or unreadable.
    """
    folder = Path(data_dir) / DATASET
    render = {"safe-eq": (_render_eq, _eq_setting), "safe-compression": (_render_comp, _comp_setting),
              "safe-distortion": (_render_dist, _dist_setting)}
    out = []
    for effect, (fname, params) in FILES.items():
        contributions = read_contributions(folder / fname, effect, params)
        out.append(EffectPlan(effect, contributions, *render[effect]))
    return out


def ingest(ingestor: Ingestor, data_dir: Path, options: IngestOptions) -> dict[str, Any]:
    """Render the SAFE EQ, compressor and distortion settings of the words on the exp2 sources.

    Options used: words, strengths, sources, length_s, prompts, min_contributions.
    """
    n = DEFAULT_MIN_CONTRIBUTIONS if options.min_contributions is None else options.min_contributions
    return ingest_effects(ingestor, data_dir, options, DATASET, plans(data_dir), n)
