"""Adapter training time per epoch (`timbredb finetune --method adapter`), as a ratio to a reference epoch.

Run:  python benchmarks/bench_finetune.py [--rounds 5] [--epochs 5] [--words 40] [--json]

The corpus is synthetic at Audealize scale: 4 sources x WORDS words x 2 effects,
5 strengths per trajectory plus its original (``--words 40``: 320 trajectories,
1,600 variants), 512-d unit audio and text vectors (LAION-CLAP's size), the
adapter's defaults (32 trajectories per step, hidden 128, float64, one thread).

Each round runs, interleaved:

- ``reference``: one epoch of the same batches (built the same way, in the same
  seeded order) with the loss evaluated on the *base* vectors, no head, no
  gradient: what an epoch costs before anything is learnt;
- ``adapter``: ``train_adapter`` for ``--epochs`` epochs (a fresh head every round:
  nothing is cached between rounds), divided by the epochs.

Printed: per-round times (a round silently served from a cache would show as a
collapse), min and median of each, and the adapter's median epoch as a multiple
of the reference's median in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DIM, N_SOURCES, STRENGTHS = 512, 4, (0.2, 0.4, 0.6, 0.8, 1.0)


def corpus(n_words: int, seed: int = 0) -> Any:
    """A synthetic corpus (module doc): trajectories, audio and text vectors."""
    from timbredb.finetune.data import Corpus, Trajectory
    from timbredb.spaces import SpaceRecord

    rng = np.random.default_rng(seed)
    base = SpaceRecord("bench", "bench", "bench", "bench", "bench", None, {}, DIM, 48000, "cosine", ("audio", "text"))
    words = [f"w{i:03d}" for i in range(n_words)]
    text = rng.standard_normal((n_words, DIM)).astype(np.float32)
    clips: list[str] = []
    trajectories = []
    for s in range(N_SOURCES):
        original = f"o{s}"
        clips.append(original)
        for effect in ("eq", "reverb"):
            for w in words:
                hs = tuple(f"{s}-{effect}-{w}-{k}" for k in range(len(STRENGTHS)))
                clips.extend(hs)
                trajectories.append(Trajectory(f"src{s}", effect, w, f"a {w} sound", original, hs, STRENGTHS))
    audio = rng.standard_normal((len(clips), DIM)).astype(np.float32)
    return Corpus(base, trajectories, {h: i for i, h in enumerate(clips)}, audio,
                  {f"a {w} sound": i for i, w in enumerate(words)}, text)


def reference_epoch(c: Any, hp: dict[str, Any], seed: int) -> float:
    """One epoch of batches and the loss on the base vectors, no head and no gradient (seconds)."""
    import torch
    import torch.nn.functional as F

    from timbredb.finetune.train import TrainingIndex, epoch_order, objective, seeded

    dev = torch.device("cpu")
    index = TrainingIndex(c, c.trajectories)
    with seeded(seed, threads=1), torch.no_grad():
        x = F.normalize(torch.tensor(index.audio, dtype=torch.float64), dim=-1)
        t = F.normalize(torch.tensor(index.text, dtype=torch.float64), dim=-1)
        started = time.perf_counter()
        order = epoch_order(seed, len(index), 0)
        size = int(hp["batch_trajectories"])
        for start in range(0, len(order), size):
            batch = index.batch(order[start : start + size].tolist(), dev)
            rows = torch.as_tensor(batch.rows)
            objective(x[rows], t[torch.as_tensor(batch.words)], x[rows], batch, hp)
        return time.perf_counter() - started


def adapter_epoch(c: Any, hp: dict[str, Any], seed: int) -> tuple[float, float]:
    """(seconds per epoch, final loss) of ``train_adapter`` over ``hp['epochs']`` epochs."""
    from timbredb.finetune.train import train_adapter

    trained = train_adapter(c, c.trajectories, hp, seed, "cpu")
    return trained.seconds / int(hp["epochs"]), float(trained.history[-1]["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from timbredb.finetune.options import DEFAULTS

    hp = {**DEFAULTS["adapter"], "epochs": args.epochs, "text_head": False}
    c = corpus(args.words)
    ref: list[float] = []
    ada: list[float] = []
    losses: list[float] = []
    for r in range(args.rounds):
        ref.append(reference_epoch(c, hp, seed=r))
        sec, loss = adapter_epoch(c, hp, seed=r)
        ada.append(sec)
        losses.append(loss)
        if not args.json:
            print(f"round {r + 1}: reference {ref[-1] * 1e3:8.1f} ms/epoch  adapter {ada[-1] * 1e3:8.1f} ms/epoch "
                  f"(final loss {loss:.4f})", flush=True)
    out = {
        "trajectories": len(c.trajectories), "variants": sum(len(t.clips) for t in c.trajectories), "dim": DIM,
        "epochs_per_round": args.epochs, "rounds": args.rounds,
        "reference_s": {"min": min(ref), "median": statistics.median(ref), "rounds": ref},
        "adapter_epoch_s": {"min": min(ada), "median": statistics.median(ada), "rounds": ada},
        "ratio_median": statistics.median(ada) / statistics.median(ref),
        "final_losses": losses,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{out['trajectories']} trajectories, {out['variants']} variants, dim {DIM}")
        print(f"reference epoch: min {min(ref) * 1e3:.1f} ms, median {statistics.median(ref) * 1e3:.1f} ms")
        print(f"adapter epoch:   min {min(ada) * 1e3:.1f} ms, median {statistics.median(ada) * 1e3:.1f} ms "
              f"= {out['ratio_median']:.2f} x the reference (medians)")


if __name__ == "__main__":
    main()
