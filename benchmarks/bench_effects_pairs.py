"""Cost of issue 12's additions: variants/s of each new effect and pairs/s of the pairwise spaces.

Effects: one variant = one source clip (guitar.wav, 10.24 s stereo 44.1 kHz) rendered at strength 1 with a
word's median setting from the real data (SAFE-DB "warm" EQ, "punchy" compressor, "crunch" distortion;
SocialFX "loud" compressor), tail included. Reference in the same rounds: the Audealize EQ variant
(timbredb.dsp.render_eq, "bright"), which `ingest audealize` renders 400 times.

Pairwise spaces: every pair of a timbremetrics study (Zacharakis2014_english: 24 stimuli of 1.3 s, 276
pairs; Iverson1993_Onset: 16 of 0.1 s, 120 pairs), through ``PairwiseModel.pair_distances`` (the ingest's
path). Reference in the same rounds: the time-averaged ``mfcc`` space on the same study (embed every
stimulus once + all pair distances), i.e. what a vector space costs; and, on the first 12 pairs, the
published PyTorch path (pad, torch.stft / torchaudio MFCC, flatten, torch.norm / cosine) when torch is
installed.

Rounds are interleaved (every case once per round, in the same order), one thread (BLAS, OpenMP and
timbredb's pool pinned to 1); the renderers' caches (ring-out lengths) are cleared before every round so a
repeated round does not reuse the first one's work; the first round is reported separately (cold) and
min / median over the others.

    python benchmarks/bench_effects_pairs.py [--data-dir ../shared/data] [--rounds 5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TIMBREDB_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from timbredb import dsp, dsp_plugins  # noqa: E402

SR = 44100


def _clear_caches() -> None:
    dsp._eq_tail.cache_clear()
    dsp_plugins._safe_eq_tail.cache_clear()
    dsp_plugins._distortion_tail.cache_clear()


def _rounds(cases: list[tuple[str, Callable[[], object]]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(rounds):
        _clear_caches()
        for name, fn in cases:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def _report(title: str, unit: str, per: dict[str, int], times: dict[str, list[float]], reference: str) -> None:
    ref = statistics.median(times[reference][1:] or times[reference])
    print(f"\n{title}")
    print(f"{'case':<52} {'cold s':>8} {'min s':>8} {'median s':>9} {unit:>10} {'x reference':>12}")
    print("-" * 104)
    for name, ts in times.items():
        warm = ts[1:] or ts
        med = statistics.median(warm)
        print(f"{name:<52} {ts[0]:8.3f} {min(warm):8.3f} {med:9.3f} {per[name] / med:10.1f} {med / ref:12.2f}")


def effects(data_dir: Path, rounds: int) -> None:
    import soundfile as sf

    from timbredb.datasets import safedb, socialfx
    from timbredb.datasets.audealize import load_eq_curves, normalise_curve

    pcm, sr = sf.read(str(data_dir / "audealize" / "audio" / "guitar.wav"), dtype="float32", always_2d=True)
    assert sr == SR
    plans = {p.label: p.contributions for p in safedb.plans(data_dir)}
    sfx = socialfx.read_contributions(data_dir / "socialfx" / socialfx.FILE)
    eq_word = safedb.safe_eq(plans["safe-eq"].median("warm"))
    comp_word = dsp_plugins.SafeCompressor(*plans["safe-compression"].median("punchy"))
    dist_word = dsp_plugins.SafeDistortion(*plans["safe-distortion"].median("crunch"))
    sfx_word = dsp_plugins.SocialFXCompressor(*sfx.median("loud"))
    curve = normalise_curve(load_eq_curves(data_dir)["bright"])
    ref = "eq (Audealize 40 bands, reference)"
    cases = [
        (ref, lambda: dsp.render_eq(pcm, SR, curve, 1.0)),
        ("safe-eq (pedalboard shelves + peaks, ring-out)", lambda: dsp_plugins.render_safe_eq(pcm, SR, eq_word, 1.0)),
        ("safe-compression (numpy, per-sample ballistics)",
         lambda: dsp_plugins.render_safe_compressor(pcm, SR, comp_word, 1.0)),
        ("safe-distortion (scipy, 4x oversampled)", lambda: dsp_plugins.render_safe_distortion(pcm, SR, dist_word, 1.0)),
        ("socialfx-compression (pedalboard Compressor)",
         lambda: dsp_plugins.render_socialfx_compressor(pcm, SR, sfx_word, 1.0)),
    ]
    times = _rounds(cases, rounds)
    _report(f"effects: one variant of guitar.wav ({pcm.shape[0] / SR:.2f} s, {pcm.shape[1]} ch), "
            f"{rounds} interleaved rounds", "variants/s", {n: 1 for n, _ in cases}, times, ref)


def pairs(data_dir: Path, rounds: int) -> None:
    for study in ("Iverson1993_Onset", "Zacharakis2014_english"):
        _pairs_of_study(data_dir, study, rounds)


def _pairs_of_study(data_dir: Path, study: str, rounds: int) -> None:
    import soundfile as sf

    from timbredb.analysis.exp3 import distance_matrix
    from timbredb.audio import from_array
    from timbredb.datasets.timbremetrics import stimulus_files
    from timbredb.models import load

    mfcc, frames, mss_frames = load("mfcc"), load("mfcc-frames"), load("mss-frames")
    files = stimulus_files(data_dir / "timbremetrics" / "sounds" / study)
    raw = [sf.read(str(f), dtype="float32", always_2d=True)[0] for f in files]
    clips = {str(i): np.ascontiguousarray(x.T) for i, x in enumerate(raw)}
    names = list(clips)
    all_pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    audio = [from_array(x, SR, str(i)) for i, x in enumerate(raw)]

    def vector_space() -> object:
        x = mfcc.embed_audio(audio)
        return distance_matrix(x, "cosine"), distance_matrix(x, "l2")

    ref = "mfcc (time-averaged vectors + all distances, reference)"
    cases: list[tuple[str, Callable[[], object]]] = [
        (ref, vector_space),
        ("mfcc-frames (pair_distances)", lambda: frames.pair_distances(clips, all_pairs)),  # type: ignore[attr-defined]
        ("mss-frames (pair_distances)", lambda: mss_frames.pair_distances(clips, all_pairs)),  # type: ignore[attr-defined]
    ]
    per = {ref: len(all_pairs), cases[1][0]: len(all_pairs), cases[2][0]: len(all_pairs)}
    sub = all_pairs[:12]
    try:
        import sys

        import torch

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.test_timbremetrics_features import torch_mfcc, torch_mss, torch_pair

        torch.set_num_threads(1)
        cases.append((f"mfcc-frames, published torch path ({len(sub)} pairs)",
                      lambda: [torch_pair(torch_mfcc, clips[a], clips[b], torch.float32) for a, b in sub]))
        cases.append((f"mss-frames, published torch path ({len(sub)} pairs)",
                      lambda: [torch_pair(torch_mss, clips[a], clips[b], torch.float32) for a, b in sub]))
        per[cases[-2][0]] = per[cases[-1][0]] = len(sub)
    except ImportError:
        pass
    times = _rounds(cases, rounds)
    lengths = [x.shape[0] / SR for x in raw]
    _report(f"pairwise spaces: {study} ({len(files)} stimuli of {min(lengths):.2f}-{max(lengths):.2f} s, "
            f"{len(all_pairs)} pairs), {rounds} interleaved rounds", "pairs/s", per, times, ref)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TIMBREDB_DATA_DIR", default_data)))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", choices=["effects", "pairs"], default=None)
    args = ap.parse_args()
    print(f"threads: {os.environ['TIMBREDB_THREADS']}; data: {args.data_dir}")
    if args.only in (None, "effects"):
        effects(args.data_dir, args.rounds)
    if args.only in (None, "pairs"):
        pairs(args.data_dir, args.rounds)


if __name__ == "__main__":
    main()
