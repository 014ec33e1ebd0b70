"""`timbredb finetune`: train on a base space's exp2 variants, store the result as a new space.

Steps (nothing is written before the last one):

1. Open the store read-only; resolve ``--model`` to one base space with audio and
   text vectors; read its trajectories of the ``--train`` effects (``data.py``).
2. Split by word and by source (``data.make_split``); the split, the loss, the
   hyper-parameters, the seed, the base space and the training data's digest make
   the new space's identity: ``space_id`` = sha256 of them (16 hex), label
   ``<base label>+ft-<first 8>``. A space already stored with that identity is
   reported as it is (training again would give the same bits).
3. Train (``train.py``: the adapter on stored vectors; ``lora.py``: LoRA on the
   audio encoder, end to end on re-rendered audio).
4. Re-embed everything the base space holds through the tuned model: the adapter
   is applied to every stored base audio vector (and, with a text head, text
   vector; otherwise the text vectors are the base's); LoRA re-embeds the audio.
5. Open the store writable and store the space, its record (weights included)
   and every vector in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timbredb import __version__
from timbredb.errors import TimbreDBError
from timbredb.finetune import adapter, data, weights
from timbredb.finetune.options import FinetuneOptions, parse_train, split_words
from timbredb.progress import WarnFn, ignore
from timbredb.spaces import TUNED_MARK, SpaceRecord
from timbredb.store import Store
from timbredb.vocabularies import check_template

#: (epoch, epochs, mean loss terms of the epoch) after every epoch
EpochFn = Callable[[int, int, dict[str, float]], None]


def tuned_label(base_label: str, space_id: str) -> str:
    return f"{base_label}{TUNED_MARK}{space_id[:8]}"


def resolve_base(store: Store, model: str) -> SpaceRecord:
    """The one stored space ``--model`` names, with audio vectors and a text side.

    Raises:
        TimbreDBError: no such space, several, a pairwise or audio-only space.
    """
    spaces = store.spaces(model)
    if not spaces:
        known = ", ".join(s.label for s in store.spaces()) or "none"
        raise TimbreDBError(f"--model {model!r}: no such space in {store.path} (stored: {known})")
    if len(spaces) > 1:
        raise TimbreDBError(f"--model {model!r} names {len(spaces)} spaces ({', '.join(s.label for s in spaces)}); "
                            "give one label")
    base = spaces[0]
    if base.pairwise:
        raise TimbreDBError(f"--model {base.label}: a pairwise space has no vectors to fine-tune")
    if not base.has_text:
        raise TimbreDBError(f"--model {base.label}: no text side (audio only); fine-tuning pairs audio with "
                            "descriptor texts, so it needs a text-capable model (e.g. laion-clap, socialfx-eq)")
    return base


def _identity(base: SpaceRecord, config: dict[str, Any], split: dict[str, Any], seed: int, sha: str) -> str:
    key = json.dumps({"base_space_id": base.space_id, "config": config, "split": split, "seed": seed,
                      "train_data_sha256": sha}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _tuned_space(base: SpaceRecord, space_id: str, method: str, config: dict[str, Any]) -> SpaceRecord:
    label = tuned_label(base.label, space_id)
    policy = dict(base.policy)
    policy["finetune"] = {"base_space_id": base.space_id, "base_label": base.label, "method": method,
                          "space_id": space_id}
    return SpaceRecord(
        space_id=space_id, label=label, model_id=base.model_id, family=base.family,
        # the published numbers of the base checkpoint must never be shown beside a tuned space
        checkpoint=f"{base.checkpoint}{TUNED_MARK}{space_id[:8]}", checkpoint_sha256=None, policy=policy,
        dim=base.dim, sample_rate=base.sample_rate, similarity=base.similarity, modalities=base.modalities,
    )


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The JSON object `timbredb finetune --format json` prints, from a stored record."""
    split = record["split"]
    config = record["config"]
    return {
        "space": record["label"],
        "base": record["base_label"],
        "method": record["method"],
        "seed": int(record["seed"]),
        "train": {
            "dataset": config["dataset"], "effects": config["effects"], "template": config["template"],
            "renderer_versions": config["renderer_versions"], "words": split["train_words"],
            "sources": split["train_sources"], "n_trajectories": len(split["train_trajectories"]),
            "n_variants": sum(len(t["clips"]) for t in split["train_trajectories"]),
            "data_sha256": record["train_data_sha256"],
        },
        "held_out": {
            "words": split["hold_out_words"], "sources": split["hold_out_sources"],
            "added_words": split["added_words"], "added_sources": split.get("added_sources", []),
            "excluded_sources": split.get("excluded_sources", []), "n_trajectories": split["n_held_out"],
        },
        "epochs": int(config["hyperparameters"]["epochs"]),
        "seconds": round(float(record["seconds"]), 3),
    }


def run_finetune(
    db: Path,
    options: FinetuneOptions,
    data_dir: Path | None = None,
    warn: WarnFn = ignore,
    progress: EpochFn | None = None,
) -> dict[str, Any]:
    """Fine-tune a base space and store the tuned space (module doc).

    Args:
        db: the store (must exist and hold the base space's exp2 vectors).
        data_dir: the data root (LoRA re-renders exp2 variants from its sources).
        warn: one-line warnings.
        progress: called after every epoch with (epoch, epochs, its mean loss terms).

    Returns:
        ``summary`` of the stored record (the JSON contract of docs/finetune.md).

    Raises:
        TimbreDBError: bad input (see docs/finetune.md); nothing is written then.
    """
    hp = options.hyperparameters()
    spec = parse_train(options.train)
    template = check_template(options.template)
    words = split_words(options.words, "words")
    hold_words = split_words(options.hold_out_words, "words")
    hold_sources = split_words(options.hold_out_sources, "sources")
    overlap = [w for w in hold_words if words and w not in words]
    if overlap:
        raise TimbreDBError(f"--hold-out-words: {', '.join(overlap)} not among --words ({', '.join(words)})")

    with Store(db, read_only=True) as store:
        base = resolve_base(store, options.model)
        if options.method == "lora":
            from timbredb.finetune import lora

            lora.check_base(base)
        corpus = data.load_corpus(store, base, spec.effects, template, options.renderer, words)
        split = data.make_split(corpus, hold_words, hold_sources)
        # warnings only once the input is known to be good: bad input is one line
        if corpus.words_without_text:
            warn(f"finetune: {base.label} has no text vector for {', '.join(corpus.words_without_text)} "
                 f"({template!r}); those words are left out")
        if split.added_words:
            warn(f"finetune: {', '.join(split.added_words)} held out too: their variants are the same audio as a "
                 "held-out word's")
        if split.added_sources:
            warn(f"finetune: {', '.join(split.added_sources)} held out too: a mixture of held-out sources")
        if split.excluded_sources:
            warn(f"finetune: {', '.join(split.excluded_sources)} left out of training and evaluation: a mixture of "
                 "held-out and trained sources")
        cells = split.cells(corpus.trajectories)
        train = cells["train"]
        sha = data.data_sha256(corpus, train)
        config = {
            "method": options.method, "dataset": spec.dataset, "effects": list(spec.effects), "template": template,
            "renderer": options.renderer, "renderer_versions": corpus.renderer_versions,
            "words": list(words), "hyperparameters": hp,
            "loss": "nce + rank_weight * rank + anchor_weight * anchor (docs/finetune.md)",
        }
        split_json = {
            **split.to_json(),
            "train_words": sorted({t.word for t in train}), "train_sources": sorted({t.source for t in train}),
            "train_trajectories": [t.to_json() for t in train],
            "n_held_out": {"word": len(cells["held-out-word"]), "source": len(cells["held-out-source"]),
                           "both": len(cells["held-out-both"])},
        }
        space_id = _identity(base, config, split.to_json(), options.seed, sha)
        existing = store.finetune(space_id)
        if existing is not None:
            warn(f"finetune: {existing['label']} is already stored (same base, split, data, hyper-parameters and "
                 "seed); nothing was trained or written")
            return summary(existing)
        tuned = _tuned_space(base, space_id, options.method, config)
        base_audio = store.audio_matrix(base.space_id)
        base_text = store.text_matrix_all(base.space_id)
        prepared = None
        if options.method == "lora":
            prepared = lora.prepare(store, corpus, train, base_audio[0], data_dir, warn)

    def on_epoch(epoch: int, terms: dict[str, float]) -> None:
        if progress is not None:
            progress(epoch, int(hp["epochs"]), terms)

    device = _device(options.device)
    if options.method == "adapter":
        from timbredb.finetune.train import train_adapter

        trained = train_adapter(corpus, train, hp, options.seed, device, on_epoch)
        audio_keys, audio_vectors = base_audio
        audio = (audio_keys, adapter.apply_audio(trained.weights, audio_vectors) if audio_keys
                 else audio_vectors)
        text_keys, text_vectors = base_text
        text = (text_keys, adapter.apply_text(trained.weights, text_vectors) if text_keys else text_vectors)
        provenance_extra: dict[str, Any] = {}
    else:
        assert prepared is not None
        warn(f"finetune: LoRA re-embeds the {len(prepared.clips)} clips of {base.label} after training")
        trained, audio, provenance_extra = lora.train_and_embed(prepared, corpus, train, hp, options.seed, device,
                                                                on_epoch, warn)
        text = base_text
    blob = weights.pack(trained.weights)
    record = {
        "space_id": space_id, "label": tuned.label, "base_space_id": base.space_id, "base_label": base.label,
        "method": options.method, "seed": int(options.seed), "config": config, "split": split_json,
        "train_data_sha256": sha, "weights": blob, "weights_sha256": weights.sha256(blob),
        "history": trained.history, "seconds": float(trained.seconds),
    }
    provenance = _provenance(record, device, provenance_extra)
    with Store(db) as store:
        if store.finetune(space_id) is None:
            store.add_tuned_space(tuned, record, audio, text, device, "float32", provenance,
                                  command=f"finetune --model {base.label} --method {options.method}")
    return summary(record)


def _device(requested: str) -> str:
    from timbredb.models._torch import resolve_device

    return resolve_device(requested)


def _provenance(record: dict[str, Any], device: str, extra: dict[str, Any]) -> dict[str, Any]:
    import platform

    from timbredb.models.base import package_versions

    return {
        "timbredb": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "packages": package_versions(("numpy", "torch", "peft") if record["method"] == "lora" else ("numpy", "torch")),
        "device": device, "dtype": "float32",
        "finetune": {"method": record["method"], "base_space_id": record["base_space_id"],
                     "base_label": record["base_label"], "seed": record["seed"],
                     "train_data_sha256": record["train_data_sha256"], "weights_sha256": record["weights_sha256"]},
        **extra,
    }

