"""Render throughput of the Experiment 2 effects, in x real time per CPU core.

Measures, on the same stereo 44.1 kHz clip and in the same run:
  eq (timbredb)        timbredb.dsp.render_eq: 40-band Audealize EQ incl. normalisation and ring-out
  eq (pedalboard)      pedalboard's own chain of 40 PeakFilters, built and run directly (no tail)
  reverb (timbredb)    timbredb.dsp.render_reverb: Rafii & Pardo reverberator incl. its tail
  reverb, no tail      timbredb.dsp.apply_reverb over the input length only

x real time per core = seconds of input audio / CPU seconds the process spent
(median of --repeats runs after a warm-up); one thread (BLAS/OpenMP pinned to 1).

    python benchmarks/bench_render.py [--data-dir ../shared/data] [--repeats 7]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from timbredb import dsp  # noqa: E402
from timbredb.datasets.audealize import load_eq_curves, load_reverb_settings, normalise_curve  # noqa: E402
from timbredb.dsp import EQ_CENTRES_HZ, EQ_Q  # noqa: E402
from timbredb.errors import DatasetError  # noqa: E402

SR = 44100


def _clip(data_dir: Path) -> tuple[np.ndarray, str]:
    path = data_dir / "audealize" / "audio" / "guitar.wav"
    if path.is_file():
        import soundfile as sf

        pcm, sr = sf.read(str(path), dtype="float32", always_2d=True)
        if sr == SR:
            return pcm, f"{path.name} ({pcm.shape[0] / SR:.2f} s, {pcm.shape[1]} ch)"
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((10 * SR, 2))).astype(np.float32), "white noise (10.00 s, 2 ch)"


def _cpu_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (imports, cached tails)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TIMBREDB_DATA_DIR", default_data)))
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    import pedalboard

    pcm, what = _clip(args.data_dir)
    seconds = pcm.shape[0] / SR
    try:
        curve = normalise_curve(load_eq_curves(args.data_dir)["bright"])
        d, g, m, f, e = load_reverb_settings(args.data_dir)["hall"][:5]
        rv = dsp.ReverbParams(d, g, m, f, e)
    except (DatasetError, KeyError):  # no data dir: fixed Audealize-like parameters
        curve = np.linspace(-1, 1, len(EQ_CENTRES_HZ))
        rv = dsp.ReverbParams(0.0721, 0.898, 0.0012, 1752.0, 0.19)
    gains = dsp.eq_gains_db(curve, 1.0)
    tail_s = dsp.reverb_tail_samples(rv, SR, 1.0) / SR

    def pedalboard_chain() -> object:
        board = pedalboard.Pedalboard([
            pedalboard.PeakFilter(cutoff_frequency_hz=float(fc), gain_db=float(gd), q=EQ_Q)
            for fc, gd in zip(EQ_CENTRES_HZ, gains)
        ])
        return board(pcm.T, float(SR))

    cases: list[tuple[str, Callable[[], object]]] = [
        ("eq (timbredb, 40 bands + ring-out)", lambda: dsp.render_eq(pcm, SR, curve, 1.0)),
        ("eq (pedalboard 40 x PeakFilter)", pedalboard_chain),
        (f"reverb (timbredb, + {tail_s:.2f} s tail)", lambda: dsp.render_reverb(pcm, SR, rv, 1.0)),
        ("reverb, no tail (apply_reverb)", lambda: dsp.apply_reverb(pcm, SR, rv, 1.0)),
    ]
    print(f"input: {what}; pedalboard {pedalboard.__version__}; median of {args.repeats} runs, 1 thread")
    print(f"{'renderer':<40} {'cpu s':>8} {'x real time / core':>20}")
    print("-" * 70)
    for name, fn in cases:
        cpu = _cpu_seconds(fn, args.repeats)
        print(f"{name:<40} {cpu:8.4f} {seconds / cpu:20.1f}")


if __name__ == "__main__":
    main()
