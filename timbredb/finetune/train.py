"""Training: the objective, the seeded loop, and the adapter heads (torch).

Imported only when a run trains (``timbredb.finetune.run``), so `timbredb --help`,
`models list`, `sql` and `query` import no torch.

The objective over a batch of training trajectories (docs/finetune.md):

    L = L_nce + rank_weight * L_rank + anchor_weight * L_anchor

- L_nce: InfoNCE over the batch's words. For every variant v (strength s > 0) of
  word w, logits cos(z_v, t_j) / tau over the distinct words j of the batch,
  cross-entropy with target w, weighted by s (a variant at strength 0.2 is nearly
  its original and carries little of the word).
- L_rank: the exp2 property, that similarity to the word rises with strength. For
  every pair of points a < b of a trajectory (its original at s = 0 included),
  softplus(-(q_b - q_a) / tau_rank) (RankNet's logistic loss), where q is the
  word's log-probability log softmax_j(cos(z, t_j) / tau)[w] among the batch's
  words: the variant must come nearer its word *than the other words* as the
  effect grows. (Ranking raw cosines instead fits the training trajectories
  perfectly and transfers nothing to held-out sources: docs/finetune.md.) A batch
  with a single word ranks the raw cosine.
- L_anchor: mean ||z - u||^2 between the tuned and the base unit vectors of the
  batch's clips, so the space keeps the geometry the other analyses (exp1, exp3)
  read.

Order and initialisation are seeded (``timbredb.analysis.stats.rng`` for the
batch order; ``torch.manual_seed`` inside a forked RNG for the weights) and the
CPU kernels are deterministic for a fixed thread count, so the same seed and
data give the same weights bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from timbredb.analysis.stats import rng, stable_key
from timbredb.finetune.data import Corpus, Trajectory

EpochFn = Callable[[int, dict[str, float]], None]


@contextlib.contextmanager
def seeded(seed: int, threads: int | None = None) -> Iterator[None]:
    """torch's RNG seeded (forked: the caller's stream is untouched) and, with ``threads``, that many
    intra-op threads, both restored afterwards.

    The CPU kernels used here are deterministic for a given thread count, so the same
    seed and data give the same bits (a test checks it). ``use_deterministic_algorithms``
    is not set: it changes nothing on the CPU and imports torch's compiler (seconds).
    """
    was = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(was)


# ---------------------------------------------------------------- batches
@dataclass(frozen=True)
class Batch:
    """Index tensors of one batch of trajectories.

    Attributes:
        rows: the clips it reads (rows of the index's clip list), unique.
        words: the distinct word prompts (rows of the index's prompt list).
        p_pos, p_word, p_weight: per variant: its clip (position in rows), its word (position
            in words), its strength.
        a_pos, b_pos, q_word: per ranked pair a < b: both clips' positions and the word.
    """

    rows: NDArray[np.int64]
    words: NDArray[np.int64]
    p_pos: Any
    p_word: Any
    p_weight: Any
    a_pos: Any
    b_pos: Any
    q_word: Any


class TrainingIndex:
    """The training trajectories as rows of a clip list and a prompt list."""

    def __init__(self, corpus: Corpus, trajectories: Sequence[Trajectory]) -> None:
        self.trajectories = list(trajectories)
        self.clips = sorted({h for t in self.trajectories for h in (t.original, *t.clips)})
        self.prompts = sorted({t.prompt for t in self.trajectories})
        clip_row = {h: i for i, h in enumerate(self.clips)}
        prompt_row = {p: i for i, p in enumerate(self.prompts)}
        self.audio = np.stack([corpus.audio_matrix[corpus.audio[h]] for h in self.clips]).astype(np.float64)
        self.text = np.stack([corpus.text_matrix[corpus.text[p]] for p in self.prompts]).astype(np.float64)
        self._points = [
            (np.array([clip_row[t.original], *(clip_row[h] for h in t.clips)], dtype=np.int64),
             np.array([0.0, *t.strengths], dtype=np.float64), prompt_row[t.prompt])
            for t in self.trajectories
        ]

    def __len__(self) -> int:
        return len(self.trajectories)

    def batch(self, which: Sequence[int], device: torch.device) -> Batch:
        rows = np.unique(np.concatenate([self._points[j][0] for j in which]))
        words = np.unique(np.array([self._points[j][2] for j in which], dtype=np.int64))
        pos = {int(r): i for i, r in enumerate(rows)}
        wpos = {int(w): i for i, w in enumerate(words)}
        p_pos, p_word, p_weight, a_pos, b_pos, q_word = [], [], [], [], [], []
        for j in which:
            clip_rows, strengths, word = self._points[j]
            order = np.argsort(strengths, kind="stable")
            local = [pos[int(clip_rows[k])] for k in order]
            s = strengths[order]
            for k in range(1, len(local)):
                p_pos.append(local[k])
                p_word.append(wpos[word])
                p_weight.append(float(s[k]))
            for a in range(len(local)):
                for b in range(a + 1, len(local)):
                    if s[b] > s[a]:
                        a_pos.append(local[a])
                        b_pos.append(local[b])
                        q_word.append(wpos[word])

        def long(v: list[int]) -> Any:
            return torch.tensor(v, dtype=torch.long, device=device)

        return Batch(rows, words, long(p_pos), long(p_word), torch.tensor(p_weight, dtype=torch.float64, device=device),
                     long(a_pos), long(b_pos), long(q_word))


def objective(z: Any, t: Any, u0: Any, batch: Batch, hp: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """The loss of one batch (module doc) and its terms.

    Args:
        z: (rows, dim) tuned unit audio vectors of ``batch.rows``.
        t: (words, dim) unit text vectors of ``batch.words``.
        u0: (rows, dim) the base unit vectors of the same clips.
    """
    dtype = z.dtype
    t = t.to(dtype)
    zero = torch.zeros((), dtype=dtype, device=z.device)
    nce = zero
    if t.shape[0] >= 2 and batch.p_pos.numel():
        logits = z[batch.p_pos] @ t.T / float(hp["tau"])
        w = batch.p_weight.to(dtype)
        nce = (F.cross_entropy(logits, batch.p_word, reduction="none") * w).sum() / w.sum()
    rank = zero
    if batch.a_pos.numel():
        if t.shape[0] >= 2:
            # the word's log-probability among the batch's words: "nearer this word than the others"
            logp_a = F.log_softmax(z[batch.a_pos] @ t.T / float(hp["tau"]), dim=-1)
            logp_b = F.log_softmax(z[batch.b_pos] @ t.T / float(hp["tau"]), dim=-1)
            ca = logp_a.gather(1, batch.q_word[:, None])[:, 0]
            cb = logp_b.gather(1, batch.q_word[:, None])[:, 0]
        else:  # one word in the batch: nothing to contrast with, its cosine itself
            ca = (z[batch.a_pos] * t[batch.q_word]).sum(-1)
            cb = (z[batch.b_pos] * t[batch.q_word]).sum(-1)
        rank = F.softplus(-(cb - ca) / float(hp["tau_rank"])).mean()
    anchor = ((z - u0.to(dtype)) ** 2).sum(-1).mean()
    loss = nce + float(hp["rank_weight"]) * rank + float(hp["anchor_weight"]) * anchor
    return loss, {"loss": float(loss.detach()), "nce": float(nce.detach()), "rank": float(rank.detach()),
                  "anchor": float(anchor.detach())}


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW`` with its defaults
    (betas 0.9, 0.999; eps 1e-8; no amsgrad).

    Written out because importing ``torch.optim`` imports torch's compiler (``torch._dynamo``),
    several seconds at first use: longer than an adapter's whole training.
    """

    def __init__(self, params: list[Any], lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad
            p.mul_(1.0 - self.lr * self.weight_decay)
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-self.lr / c1)


def epoch_order(seed: int, n: int, epoch: int) -> NDArray[np.int64]:
    """The seeded order of the trajectories in one epoch."""
    return rng(seed, stable_key("finetune-order"), epoch).permutation(n).astype(np.int64)


def fit(
    index: TrainingIndex,
    embed: Callable[[Batch], Any],
    text: Callable[[Batch], Any],
    parameters: list[Any],
    hp: dict[str, Any],
    seed: int,
    device: torch.device,
    on_epoch: EpochFn | None = None,
) -> tuple[list[dict[str, float]], float]:
    """The seeded training loop shared by both methods (call inside ``seeded(seed)``).

    Args:
        embed: batch -> (rows, dim) tuned unit audio vectors (with gradients).
        text: batch -> (words, dim) unit text vectors.
        parameters: what AdamW trains.

    Returns:
        (per-epoch mean loss terms, seconds).
    """
    opt = AdamW(parameters, lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))
    base = F.normalize(torch.tensor(index.audio, dtype=torch.float64, device=device), dim=-1)
    history = []
    started = time.perf_counter()
    size = int(hp["batch_trajectories"])
    for epoch in range(int(hp["epochs"])):
        order = epoch_order(seed, len(index), epoch)
        sums: dict[str, float] = {}
        steps = 0
        for start in range(0, len(order), size):
            batch = index.batch(order[start : start + size].tolist(), device)
            z = embed(batch)
            loss, terms = objective(z, text(batch), base[torch.as_tensor(batch.rows, device=device)], batch, hp)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        row = {"epoch": float(epoch + 1), **{k: v / max(steps, 1) for k, v in sums.items()}}
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
    return history, time.perf_counter() - started


# ---------------------------------------------------------------- the adapter
class Head(nn.Module):
    """u + W2 gelu(W1 u + b1) + b2, unit length out; W2 and b2 start at 0 (the identity)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.w2.weight)
        nn.init.zeros_(self.w2.bias)

    def forward(self, x: Any) -> Any:
        u = F.normalize(x, dim=-1)
        return F.normalize(u + self.w2(F.gelu(self.w1(u))), dim=-1)

    def export(self, prefix: str) -> dict[str, NDArray[np.float32]]:
        out = {"w1": self.w1.weight, "b1": self.w1.bias, "w2": self.w2.weight, "b2": self.w2.bias}
        return {f"{prefix}.{k}": v.detach().cpu().numpy().astype(np.float32) for k, v in out.items()}


@dataclass
class Trained:
    """What training produced: the weights to store, the per-epoch history, the seconds it took."""

    weights: dict[str, NDArray[np.float32]]
    history: list[dict[str, float]]
    seconds: float


def train_adapter(
    corpus: Corpus, trajectories: Sequence[Trajectory], hp: dict[str, Any], seed: int, device: str = "cpu",
    on_epoch: EpochFn | None = None,
) -> Trained:
    """Train the residual head(s) on the stored base vectors of ``trajectories`` (float64)."""
    dev = torch.device(device)
    index = TrainingIndex(corpus, trajectories)
    dim = index.audio.shape[1]
    # one thread: the heads are tiny, and more threads only wait on each other (7x slower on 2 busy cores)
    with seeded(seed, threads=1):
        audio_head = Head(dim, int(hp["hidden"])).double().to(dev)
        text_head = Head(dim, int(hp["hidden"])).double().to(dev) if hp.get("text_head") else None
        x = torch.tensor(index.audio, dtype=torch.float64, device=dev)
        t = torch.tensor(index.text, dtype=torch.float64, device=dev)

        def embed(batch: Batch) -> Any:
            return audio_head(x[torch.as_tensor(batch.rows, device=dev)])

        def text(batch: Batch) -> Any:
            rows = t[torch.as_tensor(batch.words, device=dev)]
            return text_head(rows) if text_head is not None else F.normalize(rows, dim=-1)

        params = list(audio_head.parameters()) + (list(text_head.parameters()) if text_head is not None else [])
        history, seconds = fit(index, embed, text, params, hp, seed, dev, on_epoch)
    weights = audio_head.export("audio")
    if text_head is not None:
        weights.update(text_head.export("text"))
    return Trained(weights, history, seconds)
