"""How `describe`'s calibrated ranking changes the top words on a folder of real notes.

    python benchmarks/describe_calibration.py FOLDER [--model socialfx-eq] [--vocabulary study]

Ingests the folder into a temporary store (so the store's clips are the
calibration reference), describes every file ranked by the calibrated score and
by the raw cosine, and prints: the share of files each top-1 word wins (raw vs
calibrated), and the Spearman correlation of the bright-dark axis (bright minus
dark, raw cosines and calibrated scores) with each file's log spectral centroid.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from scipy import stats

from timbredb.audio import decode, find_audio_files
from timbredb.cli import cli


def centroid_hz(x: np.ndarray, sr: int) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.shape[0]))) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / sr)
    return float((freqs * power).sum() / power.sum())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", default="socialfx-eq")
    ap.add_argument("--vocabulary", default="study")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    files = find_audio_files(args.folder)
    with tempfile.TemporaryDirectory() as tmp:
        base = ["--db", str(Path(tmp) / "s.duckdb")] + (["--data-dir", args.data_dir] if args.data_dir else [])
        runner = CliRunner()
        runner.invoke(cli, [*base, "ingest", str(args.folder), "--models", args.model], catch_exceptions=False)
        out = {}
        for rank in ("calibrated", "cosine"):
            res = runner.invoke(cli, [*base, "describe", str(args.folder), "--model", args.model, "--vocabulary",
                                      args.vocabulary, "-k", "300", "--rank", rank, "--format", "json"])
            out[rank] = json.loads(res.stdout)
    n = len(out["calibrated"])
    print(f"{n} files from {args.folder} ({len(files)} found), model {args.model}, vocabulary {args.vocabulary}")
    print(f"calibration reference: {out['calibrated'][0]['calibration']}")
    for rank in ("cosine", "calibrated"):
        top = Counter(d["descriptors"][0]["descriptor"] for d in out[rank])
        shown = ", ".join(f"{w} {c / n:.0%}" for w, c in top.most_common(6))
        print(f"top-1 by {rank:10s}: {len(top)} distinct words; most frequent: {shown}")
    logc, raw, cal = [], [], []
    for d in out["calibrated"]:
        audio = decode(d["file"])
        by = {w["descriptor"]: w for w in d["descriptors"]}
        if "bright" not in by or "dark" not in by:
            continue
        logc.append(np.log(centroid_hz(audio.samples, audio.sample_rate)))
        raw.append(by["bright"]["cosine"] - by["dark"]["cosine"])
        cal.append(by["bright"]["calibrated"] - by["dark"]["calibrated"])
    print(f"bright-dark axis vs log spectral centroid: Spearman raw {stats.spearmanr(raw, logc).statistic:.3f}, "
          f"calibrated {stats.spearmanr(cal, logc).statistic:.3f} (n = {len(logc)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
