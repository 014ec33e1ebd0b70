"""Run times of the analyses beyond the study at study scale, as ratios to `query exp1` measured in the same run.

Run:  python benchmarks/bench_analyses.py [--rounds 3] [--permutations 200] [--json]

A synthetic store at the study's scale: 61 stimuli (37 + 24 in two groups) x 16
descriptors x 4 text-capable spaces (512-d audio and text vectors; LAION-CLAP's
size), 8 prompt templates per space, 14 listeners rating 3 descriptors (raw, as
CCMusic's soft/thin/pure) and SDs for all 16, and the study release's exp1 layout
for 4 imported models. Each round runs every analysis once, interleaved, in a fresh
read-only Store (no result is cached between calls: the analyses keep no state, and
the reference runs again in every round); the figures are the minimum and median
over rounds, and each analysis's median as a multiple of exp1's median in the same
run. A repeated round that were silently cached would show as a collapse of its
time, so the per-round times are printed too.

The reference `exp1` is the study's Experiment 1 with its defaults (1000 bootstrap
resamples, 1000 permutations) over the 4 spaces.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_CHINESE, N_WESTERN, N_DESCRIPTORS, N_SPACES, DIM, N_LISTENERS = 37, 24, 16, 4, 512, 14


def build(db: Path, seed: int = 0) -> None:
    """The synthetic study-scale store (see the module doc)."""
    from timbredb.importers.exp1 import import_results
    from timbredb.spaces import SpaceRecord
    from timbredb.store import Store
    from timbredb.vocabularies import CCMUSIC, PROMPT_SETS, render_prompt

    rng = np.random.default_rng(seed)
    n = N_CHINESE + N_WESTERN
    stimuli = [f"inst{i:02d}" for i in range(n)]
    groups = ["chinese" if i < N_CHINESE else "western" for i in range(n)]
    hashes = [f"{i + 1:064x}" for i in range(n)]
    words = list(CCMUSIC)[:N_DESCRIPTORS]
    templates = list(PROMPT_SETS["default"])
    ratings = rng.uniform(1, 10, (n, N_DESCRIPTORS)).round(3)
    with Store(db) as store:
        store.con.executemany(
            "INSERT INTO clips (clip_sha256, source_path, duration_s, channels, sample_rate, n_frames) "
            "VALUES (?, ?, 5, 1, 44100, 220500)", [[h, f"bench://{s}"] for h, s in zip(hashes, stimuli)])
        for k in range(N_SPACES):
            sid = f"bench{k:011d}"
            label = f"model-{k}"
            store.ensure_space(SpaceRecord(sid, label, label, "bench", "none", None, {}, DIM, 48000, "cosine",
                                           ("audio", "text")))
            batch = store.add_batch(sid, "audio", n, "cpu", "float32", {}, None)
            store.insert_audio_embeddings(sid, hashes, rng.standard_normal((n, DIM)).astype(np.float32), batch)
            for t in templates:
                prompts = [render_prompt(t, w) for w in words]
                store.add_prompts([(w, t, p) for w, p in zip(words, prompts)])
                store.insert_text_embeddings(sid, prompts, rng.standard_normal((len(words), DIM)).astype(np.float32),
                                             batch)
        raw = [(stimuli[i], w, f"L{li}", float(np.clip(round(ratings[i, j] + rng.normal(0, 1.5)), 1, 10)), "bench")
               for j, w in enumerate(words[:3]) for i in range(N_CHINESE) for li in range(N_LISTENERS)]
        sds = [(stimuli[i], w, float(rng.uniform(0.5, 2.5)), N_LISTENERS, "bench")
               for w in words for i in range(N_CHINESE)]
        store.replace_rated_with_listeners(
            "ccmusic", [(s, g, h, "bench") for s, g, h in zip(stimuli, groups, hashes)],
            [(s, w, w, float(ratings[i, j])) for i, s in enumerate(stimuli) for j, w in enumerate(words)],
            raw, sds, None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        import csv

        with (folder / "descriptors.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["model", "descriptor", "pearson", "spearman"])
            for m in ("LAION_CLAP", "MSCLAP", "MuQ_MuLan", "OpenFLAM"):
                for d in words:
                    w.writerow([m, d, rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)])
        for m in ("laion-clap", "msclap", "muq-mulan", "openflam"):
            for g in ("chinese", "western"):
                with (folder / f"{m}_{g}.csv").open("w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["instrument", "pearson", "spearman"])
                    for s, gg in zip(stimuli, groups):
                        if gg == g:
                            w.writerow([s, rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)])
        with Store(db) as store:
            import_results(store, folder)


def analyses(permutations: int) -> dict[str, Callable[[Any], Any]]:
    from timbredb.analysis.axes import run_axes
    from timbredb.analysis.ceiling import run_ceiling
    from timbredb.analysis.compare import run_compare
    from timbredb.analysis.exp1 import run_exp1
    from timbredb.analysis.probe import run_probe
    from timbredb.analysis.prompts import run_prompts

    return {
        "exp1 (reference)": lambda s: run_exp1(s),
        "exp1 --prompt ensemble": lambda s: run_exp1(s, template="ensemble"),
        "compare exp1 (4 local spaces)": lambda s: run_compare(s, models="model-0,model-1,model-2,model-3"),
        "compare exp1 (4 imported)": lambda s: run_compare(s, models="laion-clap,msclap,muq-mulan,openflam"),
        "ceiling (split-half + sd)": lambda s: run_ceiling(s),
        "axes (6 pairs)": lambda s: run_axes(s),
        f"probe ridge ({permutations} permutations)": lambda s: run_probe(s, n_permutations=permutations),
        "probe ridge chinese->western": lambda s: run_probe(s, n_permutations=permutations, train_group="chinese",
                                                            test_group="western"),
        "probe pca": lambda s: run_probe(s, method="pca"),
        "prompts exp1 (8 templates + ensemble)": lambda s: run_prompts(s),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--permutations", type=int, default=200, help="probe permutations (the query's default)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    from timbredb.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        t0 = time.perf_counter()
        build(db)
        build_s = time.perf_counter() - t0
        fns = analyses(args.permutations)
        times: dict[str, list[float]] = {name: [] for name in fns}
        shapes: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, fn in fns.items():  # interleaved: every analysis once per round
                with Store(db, read_only=True) as store:
                    t = time.perf_counter()
                    out = fn(store)
                    times[name].append(time.perf_counter() - t)
                shapes[name] = sum(df.height for df in out.values())
    ref = statistics.median(times["exp1 (reference)"])
    rows = [
        {"analysis": name, "rows": shapes[name], "min_s": min(ts), "median_s": statistics.median(ts),
         "x_exp1": statistics.median(ts) / ref, "rounds_s": [round(t, 3) for t in ts]}
        for name, ts in times.items()
    ]
    if args.json:
        print(json.dumps({"build_s": build_s, "scale": {"stimuli": N_CHINESE + N_WESTERN, "descriptors": N_DESCRIPTORS,
                                                         "spaces": N_SPACES, "dim": DIM}, "analyses": rows}, indent=2))
        return
    print(f"study scale: {N_CHINESE + N_WESTERN} stimuli x {N_DESCRIPTORS} descriptors x {N_SPACES} spaces "
          f"({DIM}-d, 8 templates), {N_LISTENERS} listeners; store built in {build_s:.1f} s; {args.rounds} rounds")
    print(f"{'analysis':42s} {'rows':>6s} {'min s':>8s} {'median s':>9s} {'x exp1':>7s}  rounds")
    for r in rows:
        print(f"{r['analysis']:42s} {r['rows']:6d} {r['min_s']:8.3f} {r['median_s']:9.3f} {r['x_exp1']:7.2f}  "
              f"{r['rounds_s']}")


if __name__ == "__main__":
    main()
