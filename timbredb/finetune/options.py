"""The options of `timbredb finetune`, click-free, with the parsing of ``--train``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from timbredb.effects import EFFECTS
from timbredb.errors import TimbreDBError

METHODS = ("adapter", "lora")
#: `--train` names (the ingest targets) -> the descriptor dataset of their variants
TRAIN_DATASETS = {"audealize": "audealize", "socialfx-comp": "socialfx", "socialfx": "socialfx", "safedb": "safedb"}
#: effects trained on when --train names only the dataset
DEFAULT_EFFECTS = {"audealize": ("eq", "reverb"), "socialfx": ("socialfx-compression",),
                   "safedb": ("safe-eq", "safe-compression", "safe-distortion")}
#: the loss and hyper-parameter defaults per method (docs/finetune.md explains each)
DEFAULTS: dict[str, dict[str, Any]] = {
    "adapter": {"epochs": 200, "lr": 1e-3, "batch_trajectories": 32, "hidden": 128, "weight_decay": 1e-4,
                "tau": 0.1, "tau_rank": 0.05, "rank_weight": 1.0, "anchor_weight": 0.1},
    "lora": {"epochs": 2, "lr": 5e-4, "batch_trajectories": 4, "rank": 4, "alpha": 8, "weight_decay": 0.0,
             "tau": 0.1, "tau_rank": 0.05, "rank_weight": 1.0, "anchor_weight": 0.1},
}


@dataclass(frozen=True)
class TrainSpec:
    """What ``--train DATASET[:EFFECT,...]`` names.

    Attributes:
        dataset: the descriptor dataset of the variants (``variants.dataset``).
        effects: the effect labels trained on.
    """

    dataset: str
    effects: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.dataset}:{','.join(self.effects)}"


def parse_train(value: str) -> TrainSpec:
    """``audealize``, ``audealize:eq,reverb``, ``safedb:eq`` (a kind), ``safedb:safe-eq`` (a label) ...

    Raises:
        TimbreDBError: an unknown dataset, or an effect that is not one of the dataset's.
    """
    name, _, effects = value.strip().partition(":")
    name = name.strip().lower()
    if name not in TRAIN_DATASETS:
        raise TimbreDBError(f"--train {value!r}: unknown dataset {name!r}; choose one of audealize, socialfx-comp, "
                            "safedb (optionally :EFFECT,...)")
    dataset = TRAIN_DATASETS[name]
    mine = [e for e in EFFECTS if e.dataset == dataset]
    if not effects.strip():
        return TrainSpec(dataset, DEFAULT_EFFECTS[dataset])
    chosen: list[str] = []
    for item in (v.strip().lower() for v in effects.split(",")):
        if not item:
            continue
        found = [e.label for e in mine if item in (e.label, e.kind)]
        if not found:
            raise TimbreDBError(f"--train {value!r}: {item!r} is not an effect of {name} "
                                f"(its effects: {', '.join(e.label for e in mine)})")
        chosen.extend(f for f in found if f not in chosen)
    if not chosen:
        raise TimbreDBError(f"--train {value!r}: name at least one effect after ':'")
    return TrainSpec(dataset, tuple(chosen))


def split_words(value: str | None, what: str) -> tuple[str, ...]:
    """A comma-separated list (None -> empty), lower-cased for words, order kept, repeats dropped."""
    if value is None:
        return ()
    items = [v.strip() for v in value.split(",") if v.strip()]
    if what == "words":
        items = [v.lower() for v in items]
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class FinetuneOptions:
    """Everything `timbredb finetune` takes (see docs/finetune.md).

    Attributes:
        model: the base space (a --model value naming exactly one stored space).
        method: "adapter" or "lora".
        train: the ``--train`` value.
        words: only these words (comma-separated; None = every word with data).
        hold_out_words, hold_out_sources: comma-separated, never trained on.
        epochs, seed, device: as named; epochs None = the method's default.
        template: prompt template of the target texts.
        renderer: renderer version of the variants (None = the latest each dataset used).
        text_head: (adapter) also train a residual head on the text vectors.
        hyper: overrides of ``DEFAULTS[method]`` (lr, batch_trajectories, hidden, tau, ...).
    """

    model: str
    method: str = "adapter"
    train: str = "audealize"
    words: str | None = None
    hold_out_words: str | None = None
    hold_out_sources: str | None = None
    epochs: int | None = None
    seed: int = 0
    device: str = "auto"
    template: str = "a {} sound"
    renderer: str | None = None
    text_head: bool = False
    hyper: dict[str, Any] = field(default_factory=dict)

    def hyperparameters(self) -> dict[str, Any]:
        """The method's defaults with the overrides and --epochs applied.

        Raises:
            TimbreDBError: unknown method, an unknown or out-of-range hyper-parameter.
        """
        if self.method not in METHODS:
            raise TimbreDBError(f"--method {self.method!r}: choose one of {', '.join(METHODS)}")
        hp = dict(DEFAULTS[self.method])
        unknown = set(self.hyper) - set(hp)
        if unknown:
            raise TimbreDBError(f"{self.method}: unknown hyper-parameter(s) {', '.join(sorted(unknown))}")
        hp.update({k: v for k, v in self.hyper.items() if v is not None})
        if self.epochs is not None:
            hp["epochs"] = self.epochs
        if self.method == "adapter":
            hp["text_head"] = bool(self.text_head)
        elif self.text_head:
            raise TimbreDBError("--text-head belongs to --method adapter (LoRA adapts the audio encoder only)")
        for name in ("epochs", "batch_trajectories", *(["hidden"] if "hidden" in hp else ["rank"])):
            if int(hp[name]) < 1:
                raise TimbreDBError(f"--{name.replace('_', '-')} must be at least 1, got {hp[name]}")
            hp[name] = int(hp[name])
        for name in ("lr", "tau", "tau_rank"):
            if not float(hp[name]) > 0:
                raise TimbreDBError(f"{name} must be > 0, got {hp[name]}")
        for name in ("rank_weight", "anchor_weight", "weight_decay"):
            if float(hp[name]) < 0:
                raise TimbreDBError(f"{name} must be >= 0, got {hp[name]}")
        return hp
