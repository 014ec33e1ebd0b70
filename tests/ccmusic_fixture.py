"""A synthetic rated-instrument set in the CCMusic layouts (local folder and hub snapshot).

Each "instrument" is a harmonic tone; its ratings follow what can be measured
in its own signal: words of a bright, edgy sound (bright, clear, sharp,
vigorous, coarse, hoarse) rise with the spectral centroid, words of a dark,
full sound (dim, thick, plump, soft, turbid, pure) fall with it, thin/slim rise
with the fundamental. dry and harmonious follow nothing physical (seeded noise).
Nothing binary is committed: tests write these files into tmp folders.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tests.synth import SR, harmonic_tone, write
from timbredb.datasets.ccmusic import HUB_TO_HISTORICAL
from timbredb.vocabularies import CCMUSIC

HISTORICAL_TO_HUB = {v: k for k, v in HUB_TO_HISTORICAL.items()}
#: hub column order (the dataset card's feature order)
HUB_ORDER = list(HUB_TO_HISTORICAL)
#: descriptor -> +1 (rises with the spectral centroid), -1 (falls with it)
CENTROID_SIGN = {
    "bright": 1, "clear": 1, "sharp": 1, "vigorous": 1, "coarse": 1, "hoarse": 1,
    "dim": -1, "thick": -1, "plump": -1, "soft": -1, "turbid": -1, "pure": -1,
}
PITCH_WORDS = ("thin", "slim")
NOISE_WORDS = ("dry", "harmonious")


@dataclass(frozen=True)
class SynthInstrument:
    name: str
    split: str
    samples: NDArray[np.float32]
    centroid_hz: float
    f0_hz: float
    ratings: dict[str, float]


def spectral_centroid_hz(x: NDArray[np.float32], sr: int = SR) -> float:
    """Power-weighted mean frequency of the whole clip."""
    power = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.shape[0]))) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / sr)
    return float((freqs * power).sum() / power.sum())


def _scale(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """To the 1-10 rating scale."""
    return 1.0 + 9.0 * (v - v.min()) / (v.max() - v.min())


def make_instruments(n_chinese: int = 9, n_western: int = 7, seconds: float = 1.0, seed: int = 0) -> list[SynthInstrument]:
    """Harmonic tones with spread-out brightness and pitch, and physics-following ratings."""
    rng = np.random.default_rng(seed)
    n = n_chinese + n_western
    rolloffs = rng.permutation(np.linspace(0.4, 3.0, n))
    f0s = rng.permutation(np.geomspace(110.0, 660.0, n))
    tones = [harmonic_tone(f0, seconds=seconds, n_harmonics=40, rolloff=ro) for f0, ro in zip(f0s, rolloffs)]
    centroid = np.array([spectral_centroid_hz(t) for t in tones])
    bright = _scale(np.log2(centroid))
    pitch = _scale(np.log2(f0s))
    out = []
    for i, tone in enumerate(tones):
        ratings: dict[str, float] = {}
        for d in CCMUSIC:
            if d in CENTROID_SIGN:
                v = bright[i] if CENTROID_SIGN[d] > 0 else 11.0 - bright[i]
            elif d in PITCH_WORDS:
                v = pitch[i]
            else:
                v = float(rng.uniform(1.0, 10.0))
            ratings[d] = round(float(v), 3)
        split = "chinese" if i < n_chinese else "western"
        name = f"{split[:2]}_{i:02d}"
        out.append(SynthInstrument(name, split, tone, float(centroid[i]), float(f0s[i]), ratings))
    return out


def write_local(
    root: Path,
    instruments: list[SynthInstrument],
    *,
    names: str = "historical",
    audio_ext: str = "wav",
) -> Path:
    """``root/ccmusic/ratings.csv`` + ``root/ccmusic/audio/<instrument>.<ext>``.

    Args:
        names: "historical" or "hub" descriptor column names.
    """
    folder = root / "ccmusic"
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    columns = list(CCMUSIC) if names == "historical" else HUB_ORDER
    to_hist = (lambda c: c) if names == "historical" else HUB_TO_HISTORICAL.__getitem__
    with (folder / "ratings.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["instrument", "split", *columns])
        for inst in instruments:
            w.writerow([inst.name, inst.split, *[inst.ratings[to_hist(c)] for c in columns]])
    for inst in instruments:
        write(folder / "audio" / f"{inst.name}.{audio_ext}", inst.samples)
    return folder


def read_csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def write_csv_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def _wav_bytes(x: NDArray[np.float32]) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV")  # PCM_16, as tests.synth.write stores .wav
    return buf.getvalue()


def write_hub_snapshot(folder: Path, instruments: list[SynthInstrument]) -> Path:
    """A local copy of the hub repository ``ccmusic-database/instrument_timbre``.

    The layout and features of the hub's current revision: README.md whose
    ``configs`` map the splits Chinese and Western to
    ``default/<Split>/data-*.arrow``; columns audio (44.1 kHz WAV bytes), mel
    (image, left empty), instrument (class label over all instruments) and the
    16 descriptors under their current hub names (float32).
    """
    import datasets
    import pyarrow as pa

    names = [inst.name for inst in instruments]
    features = datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SR),
            "mel": datasets.Image(),
            "instrument": datasets.ClassLabel(names=names),
            **{c: datasets.Value("float32") for c in HUB_ORDER},
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".build"
    for split in ("Chinese", "Western"):
        rows = [inst for inst in instruments if inst.split == split.lower()]
        data = {
            "audio": [{"bytes": _wav_bytes(inst.samples), "path": f"{names.index(inst.name)}.wav"} for inst in rows],
            "mel": [None] * len(rows),
            "instrument": [names.index(inst.name) for inst in rows],
            **{c: [inst.ratings[HUB_TO_HISTORICAL[c]] for inst in rows] for c in HUB_ORDER},
        }
        # built from Arrow directly: encoding through `datasets` would need torchcodec
        table = pa.Table.from_pydict(data, schema=features.arrow_schema)
        datasets.Dataset(table, info=datasets.DatasetInfo(features=features)).save_to_disk(str(tmp / split))
        (folder / "default" / split).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / split / "data-00000-of-00001.arrow", folder / "default" / split / "data-00000-of-00001.arrow")
    shutil.rmtree(tmp)
    (folder / "README.md").write_text(
        "---\nlicense: cc-by-nc-nd-4.0\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: Chinese\n    path: default/Chinese/data-*.arrow\n"
        "  - split: Western\n    path: default/Western/data-*.arrow\n---\n\n"
        "# Synthetic stand-in for ccmusic-database/instrument_timbre (tests only)\n",
        encoding="utf-8",
    )
    return folder


def data_root(root: Path, real_data_dir: Path | None) -> Path:
    """A data dir whose audealize/ links to the real one (socialfx-eq reads eqpoints.json there)."""
    root.mkdir(parents=True, exist_ok=True)
    if real_data_dir is not None and not (root / "audealize").exists():
        (root / "audealize").symlink_to(real_data_dir / "audealize", target_is_directory=True)
    return root


# ---------------------------------------------------------------- per-listener files (issue 11)
def listener_ratings(
    instruments: list[SynthInstrument], terms: tuple[str, ...] = ("soft", "thin", "pure"), n_listeners: int = 6,
    noise: float = 1.0, seed: int = 1,
) -> dict[tuple[str, str], list[float | None]]:
    """(instrument, term) -> each listener's integer rating: the mean rating plus listener noise, clipped to 1-10."""
    rng = np.random.default_rng(seed)
    out: dict[tuple[str, str], list[float | None]] = {}
    for inst in instruments:
        for t in terms:
            out[(inst.name, t)] = [float(np.clip(round(inst.ratings[t] + rng.normal(0, noise)), 1, 10))
                                   for _ in range(n_listeners)]
    return out


def write_listener_files(
    folder: Path, instruments: list[SynthInstrument], raw: dict[tuple[str, str], list[float | None]],
    missing: tuple[tuple[str, str, int], ...] = (),
) -> tuple[Path, Path]:
    """CCMusic's two per-listener files, in the layout of ../shared/data/ccmusic (synthetic numbers).

    ``ccmusic_chinese_ratings_<terms>_long.csv`` (term_zh, term_hf, term_hist, listener, instrument_id,
    rating, raw_if_invalid) with an empty rating for each (instrument, term, listener index) in
    ``missing``, and ``ccmusic_chinese_sd_by_term.csv`` (one row per CCMusic term, one column per
    instrument, mean_sd, sd_of_sd, then a term_consistency summary row): the SD (ddof = 1) of the raw
    ratings where there are some, else a synthetic value.
    """
    folder.mkdir(parents=True, exist_ok=True)
    terms = sorted({t for _, t in raw}, key=list(CCMUSIC).index)
    long_path = folder / f"ccmusic_chinese_ratings_{'_'.join(terms)}_long.csv"
    gone = {(i, t, k) for i, t, k in missing}
    with long_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["term_zh", "term_hf", "term_hist", "listener", "instrument_id", "rating", "raw_if_invalid"])
        for t in terms:
            for k in range(len(next(iter(raw.values())))):
                for inst in instruments:
                    v = raw[(inst.name, t)][k]
                    invalid = (inst.name, t, k) in gone
                    w.writerow(["词", HISTORICAL_TO_HUB[t], t, k + 1, inst.name, "" if invalid or v is None else v,
                                "1&7" if invalid else ""])
    sd_path = folder / "ccmusic_chinese_sd_by_term.csv"
    with sd_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["term_zh", "term_hf", "term_hist", *[i.name for i in instruments], "mean_sd", "sd_of_sd"])
        for j, t in enumerate(HUB_ORDER):
            hist = HUB_TO_HISTORICAL[t]
            sds = []
            for i, inst in enumerate(instruments):
                if (inst.name, hist) in raw:
                    vals = [v for k, v in enumerate(raw[(inst.name, hist)]) if v is not None and (inst.name, hist, k) not in gone]
                    sds.append(float(np.std(vals, ddof=1)))
                else:
                    sds.append(0.8 + 0.05 * ((i + j) % 7))
            w.writerow(["词", t, hist, *[f"{v:.6f}" for v in sds], f"{np.mean(sds):.6f}", f"{np.std(sds, ddof=1):.6f}"])
        w.writerow(["术语一致性", "term_consistency(row 18)", "", *["1.0"] * len(instruments), "", ""])
    return long_path, sd_path


# ---------------------------------------------------------------- the study release's exp1 layout (issue 11)
def write_release(
    folder: Path,
    models: dict[str, tuple[dict[str, tuple[float, float]], dict[str, dict[str, tuple[float, float]]]]],
    descriptor_names: dict[str, str] | None = None,
) -> Path:
    """A folder in the study release's ``results/reference/experiment1`` layout (synthetic numbers).

    Args:
        models: file-name model -> (descriptor -> (pearson, spearman), split -> instrument -> (pearson, spearman)).
        descriptor_names: file-name model -> the name descriptors.csv uses (the release writes LAION_CLAP there).
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = descriptor_names or {}
    with (folder / "descriptors.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["model", "descriptor", "pearson", "spearman"])
        descriptors = sorted({d for desc, _ in models.values() for d in desc})
        for d in descriptors:
            for m, (desc, _) in models.items():
                if d in desc:
                    w.writerow([names.get(m, m), d, repr(desc[d][0]), repr(desc[d][1])])
    for m, (_, splits) in models.items():
        for split, rows in splits.items():
            with (folder / f"{m}_{split}.csv").open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["instrument", "pearson", "spearman"])
                for inst, (r, rho) in rows.items():
                    w.writerow([inst, repr(r), repr(rho)])
    return folder


def synthetic_release(instruments: list[SynthInstrument], models: tuple[str, ...], seed: int = 5
                      ) -> dict[str, tuple[dict[str, tuple[float, float]], dict[str, dict[str, tuple[float, float]]]]]:
    """Random correlations in [-0.6, 0.6] for every model, descriptor and instrument (the model's index shifts them)."""
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[dict[str, tuple[float, float]], dict[str, dict[str, tuple[float, float]]]]] = {}
    for k, m in enumerate(models):
        desc = {d: (float(rng.uniform(-0.6, 0.6) + 0.05 * k), float(rng.uniform(-0.6, 0.6))) for d in CCMUSIC}
        splits: dict[str, dict[str, tuple[float, float]]] = {}
        for inst in instruments:
            splits.setdefault(inst.split, {})[inst.name] = (float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.6, 0.6)))
        out[m] = (desc, splits)
    return out
