"""Checkpoint pins: the published hub commit and sha256 of each weights file.

A model spec (``ModelSpec.pins``) names, for the weights files public sources
identify, the hub commit `timbredb models fetch` downloads and the file's sha256
(the LFS oid the hub reports). After a fetch and on a model's first load the
cached file is hashed (once; ``hub.sha256`` remembers digests) and compared:

- ``ok``: the digest is the pinned one (the snapshot's commit may differ: the
  same bytes under a later commit are the same weights);
- ``mismatch``: it is not; refused with one line naming the file and both
  digests, unless ``--allow-unpinned`` (then reported and recorded);
- ``unpinned``: no public source gives a digest for the file; nothing to check,
  reported as such (and never refused).

The check runs before the file is unpickled, so a tampered checkpoint never
reaches ``torch.load`` (LAION-CLAP's needs ``weights_only=False``). Imports no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from timbredb.errors import ModelUnavailableError
from timbredb.models import hub
from timbredb.models.base import ModelSpec, Pin

OK, MISMATCH, UNPINNED = "ok", "mismatch", "unpinned"


class ChecksumMismatch(ModelUnavailableError):
    """A cached weights file is not the pinned one (exit status 1)."""


def pin_for(spec: ModelSpec, f: hub.HubFile) -> Pin | None:
    """The pin of the first of ``f``'s alternatives that has one."""
    for name in f.filenames:
        pin = spec.pins.get(f"{f.repo_id}/{name}")
        if pin is not None:
            return pin
    return None


def with_pins(spec: ModelSpec, files: Mapping[str, hub.HubFile]) -> dict[str, hub.HubFile]:
    """The same files, each carrying its pinned revision (for fetching and lookup)."""
    out = {}
    for role, f in files.items():
        pin = pin_for(spec, f)
        out[role] = replace(f, revision=pin.revision) if pin is not None and pin.revision else f
    return out


@dataclass(frozen=True)
class FileCheck:
    """What the cache holds for one file, against its pin.

    Attributes:
        repo_id, filename: the file (the alternative actually cached).
        path: where it is cached.
        purpose: the file's role ("checkpoint", "tokenizer", ...).
        status: "ok", "mismatch" or "unpinned" (see module doc).
        sha256: the cached file's digest (computed for pinned files and checkpoints only).
        expected_sha256: the pinned digest, if any.
        revision: the commit of the snapshot holding the file.
        pinned_revision: the pinned commit, if any.
    """

    repo_id: str
    filename: str
    path: str
    purpose: str
    status: str
    sha256: str | None = None
    expected_sha256: str | None = None
    revision: str | None = None
    pinned_revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id, "filename": self.filename, "path": self.path, "purpose": self.purpose,
            "status": self.status, "sha256": self.sha256, "expected_sha256": self.expected_sha256,
            "revision": self.revision, "pinned_revision": self.pinned_revision,
        }

    def describe(self) -> str:
        """One line: the file, its status, and the revision note."""
        note = ""
        if self.pinned_revision and self.revision and self.revision != self.pinned_revision:
            note = f" (snapshot {self.revision[:12]}, pinned revision {self.pinned_revision[:12]})"
        return f"{self.repo_id}/{self.filename}: {self.status}{note}"


def check_file(spec: ModelSpec, f: hub.HubFile, path: Path) -> FileCheck:
    """Compare one cached file with its pin (hashing it if it is pinned or a checkpoint)."""
    name = path.name if path.name in f.filenames else f.filenames[0]
    pin = spec.pins.get(f"{f.repo_id}/{name}")
    digest = hub.sha256(path) if (pin is not None and pin.sha256) or f.purpose == "checkpoint" else None
    if pin is None or not pin.sha256:
        status = UNPINNED
    else:
        status = OK if digest == pin.sha256 else MISMATCH
    return FileCheck(
        repo_id=f.repo_id, filename=name, path=str(path), purpose=f.purpose, status=status, sha256=digest,
        expected_sha256=pin.sha256 if pin else None, revision=hub.snapshot_revision(path),
        pinned_revision=pin.revision if pin else None,
    )


def check_files(spec: ModelSpec, found: Mapping[hub.HubFile, Path], only_pinned: bool = False) -> list[FileCheck]:
    """Checks of cached files; ``only_pinned`` skips files without a pin that are not checkpoints."""
    out = []
    for f, path in found.items():
        if only_pinned and pin_for(spec, f) is None and f.purpose != "checkpoint":
            continue
        out.append(check_file(spec, f, path))
    return out


def mismatch_message(label: str, check: FileCheck, fix: str) -> str:
    """The one line for a file whose digest is not the pinned one."""
    return (
        f"{label}: {check.repo_id}/{check.filename} ({check.path}) is not the pinned file: "
        f"expected sha256 {check.expected_sha256}, actual {check.sha256}; {fix}, "
        "or pass --allow-unpinned to use it anyway"
    )


def enforce(label: str, checks: Iterable[FileCheck], allow_unpinned: bool, fix: str) -> None:
    """Raise ChecksumMismatch for the first mismatching file, unless allowed.

    Args:
        label: the model name for the message.
        checks: from ``check_files``.
        allow_unpinned: go on with mismatching files (they stay reported as "mismatch").
        fix: what to do, e.g. "delete it and run `timbredb models fetch laion-clap`".
    """
    if allow_unpinned:
        return
    for c in checks:
        if c.status == MISMATCH:
            raise ChecksumMismatch(mismatch_message(label, c, fix))
