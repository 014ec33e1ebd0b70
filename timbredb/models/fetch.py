"""`timbredb models fetch`: put a model's files into the Hugging Face cache.

Downloads go through huggingface_hub into its standard cache, the one the model
packages read, so nothing lands in site-packages (laion_clap's own
``load_ckpt()`` would wget there). Offline (HF_HUB_OFFLINE) or with the hub out
of reach, the answer is one ModelUnavailableError line with the fix, not a
traceback or a retry loop.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from timbredb.errors import ModelUnavailableError, TimbreDBError
from timbredb.models import hub, pins
from timbredb.models._torch import refetch_fix
from timbredb.models.registry import availability, parse_name


def files_for(name: str, with_checkpoint: bool = True) -> list[hub.HubFile]:
    """Every hub file model ``name`` (``id[@checkpoint]``) needs, with its pinned revision;
    [] for models without weights."""
    spec, checkpoint = parse_name(name.partition("/")[0])
    module = importlib.import_module(spec.loader.partition(":")[0])
    needed = getattr(module, "needed_files", None)
    if needed is None:
        return []
    return list(pins.with_pins(spec, needed(checkpoint or spec.checkpoint, with_checkpoint=with_checkpoint)).values())


def check_cached(name: str, allow_unpinned: bool = False) -> list[pins.FileCheck]:
    """Compare every cached file of model ``name`` with its pin.

    Returns:
        one check per cached file (missing files are left out).

    Raises:
        ChecksumMismatch: a pinned file's digest differs (unless ``allow_unpinned``).
    """
    base = name.partition("/")[0]
    spec, _ = parse_name(base)
    found = {f: p for f in files_for(base) if (p := hub.locate(f)) is not None}
    checks = pins.check_files(spec, found)
    pins.enforce(base, checks, allow_unpinned, refetch_fix(base))
    return checks


def fetch(name: str, weights: Path | None = None, allow_unpinned: bool = False) -> Path:
    """Download what model ``name`` needs into the hub cache (cached files are kept).

    Args:
        name: ``id`` or ``id@checkpoint``.
        weights: a local checkpoint to use instead of the published one; the other
            files (tokenizers, text encoders) are still fetched. Pass it again as
            ``--weights`` when embedding.
        allow_unpinned: keep going when a fetched file's sha256 is not the pinned one.

    Returns:
        the checkpoint's path (in the cache, or ``weights``).

    Raises:
        ModelUnavailableError: offline, unreachable hub, missing file; with the fix.
        ChecksumMismatch: a fetched (or already cached) file is not the pinned one.
        TimbreDBError: the model has no weights to fetch.
    """
    base = name.partition("/")[0]
    spec, checkpoint = parse_name(base)
    checkpoint = checkpoint or spec.checkpoint
    if checkpoint not in (spec.checkpoints or (spec.checkpoint,)):
        known = ", ".join(spec.checkpoints or (spec.checkpoint,))
        raise TimbreDBError(f"{spec.id}: unknown checkpoint {checkpoint!r}; choose one of: {known}")
    files = files_for(base, with_checkpoint=weights is None)
    if not files:
        raise TimbreDBError(f"{spec.id} has no weights to fetch; it runs as it is")
    if weights is not None and not Path(weights).is_file():
        raise ModelUnavailableError(f"{base}: --weights {weights} is not a file")
    hub.download(base, files)
    # a model whose config names further repositories (muq-mulan) needs a second round
    files = files_for(base, with_checkpoint=weights is None)
    paths = hub.download(base, files)
    check_cached(base, allow_unpinned)
    if weights is None:
        avail = availability(spec, None, checkpoint)
        if not avail.usable:
            raise ModelUnavailableError(f"{base}: fetched, but still unavailable: {avail.reason}")
    checkpoint_file = next((hub.locate(f) for f in files if f.purpose == "checkpoint"), None)
    return Path(weights) if weights is not None else (checkpoint_file or paths[0])
