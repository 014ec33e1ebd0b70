"""What the PyTorch models share: device and precision choice, inference mode,
weights lookup and provenance. Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import pickle
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from timbredb.errors import ModelUnavailableError, TimbreDBError, first_line
from timbredb.models import hub, pins
from timbredb.models.base import Availability, EmbeddingModel, ModelSpec, WindowPolicy

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "float16", "bfloat16")

log = logging.getLogger("timbredb.models")


def resolve_device(requested: str) -> str:
    """"auto" -> cuda, else mps, else cpu; an explicit device must exist.

    Raises:
        ModelUnavailableError: the requested accelerator is not visible to torch.
    """
    import torch

    if requested not in DEVICES:
        raise TimbreDBError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if has_mps else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailableError(
            f"--device cuda: torch {torch.__version__} sees no CUDA device here (use --device cpu or auto)"
        )
    if requested == "mps" and not has_mps:
        raise ModelUnavailableError("--device mps: no Apple-silicon GPU is available here (use --device cpu or auto)")
    return requested


def transformers_below_5() -> Availability:
    """msclap needs transformers 4.x and muq breaks on 5: report it before anything is imported."""
    try:
        version = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return Availability(False, "missing package transformers: pip install 'torch==2.13.0' 'timbredb[models]'")
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) >= 5:
        return Availability(False, f"needs transformers 4.x, found {version}: pip install 'transformers>=4.40,<5'")
    return Availability(True, "")


#: what torch.load raises for a file that is not a torch checkpoint (random bytes, truncated, another format)
UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError)


def torch_load(path: Path, weights_only: bool = True) -> Any:
    """``torch.load`` onto the CPU, memory-mapped where the file format allows."""
    import torch

    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=weights_only)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        # files in the legacy (pre-zip) format cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=weights_only)


def unreadable(label: str, path: Path, exc: BaseException) -> ModelUnavailableError:
    """The one-line error for a checkpoint file that cannot be read at all."""
    return ModelUnavailableError(f"{label}: {path} is not a readable checkpoint ({first_line(exc)[:200]})")


def weights_availability(model_name: str, files: Sequence[hub.HubFile]) -> Availability:
    """Usable if every file is in the hub cache; else the exact fix. Imports no torch."""
    absent = hub.missing(files)
    if absent:
        return Availability(False, hub.fix_for(model_name, absent))
    return Availability(True, "")


def checkpoint_availability(
    spec: ModelSpec, checkpoint: str, needed_files: Callable[[str], Mapping[str, hub.HubFile]]
) -> Availability:
    """transformers 4.x is installed and every file of the checkpoint is cached. Imports no torch.

    Args:
        spec: the model; a checkpoint other than its default is named ``id@checkpoint`` in the fix.
        checkpoint: the checkpoint to check.
        needed_files: the model module's checkpoint -> hub files function.

    Returns:
        Usable, or the reason with the exact fix.
    """
    tf = transformers_below_5()
    if not tf.usable:
        return tf
    name = spec.id if checkpoint == spec.checkpoint else f"{spec.id}@{checkpoint}"
    return weights_availability(name, list(pins.with_pins(spec, needed_files(checkpoint)).values()))


def refetch_fix(name: str) -> str:
    """What to do about a cached file that is not the pinned one."""
    return f"remove it from the cache and run `timbredb models fetch {name}`"


class TorchEmbeddingModel(EmbeddingModel):
    """An EmbeddingModel backed by a PyTorch module from a third-party package.

    Subclasses implement ``hub_files()`` (what must be cached), ``_load_module()``
    and the two embedding hooks; they run the package's forward passes inside
    ``self.inference()``.
    """

    provenance_packages: tuple[str, ...] = ("numpy", "soxr", "torch", "transformers", "huggingface_hub")
    #: precisions refused for this model (with the reason)
    refused_dtypes: dict[str, str] = {}
    #: the command that installs the model's packages
    install_hint: str = "pip install 'torch==2.13.0' 'timbredb[models]'"

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        if self.requested_device not in DEVICES:
            raise TimbreDBError(f"unknown device {self.requested_device!r}; choose one of {', '.join(DEVICES)}")
        if self.dtype not in DTYPES:
            raise TimbreDBError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.dtype in self.refused_dtypes:
            raise TimbreDBError(f"{spec.id}: --dtype {self.dtype} is not supported: {self.refused_dtypes[self.dtype]}")
        if self.dtype != "float32" and self.requested_device == "cpu":
            raise TimbreDBError(f"--dtype {self.dtype} needs a GPU (--device cuda or mps); use float32 on the CPU")
        self.check_policy(self.policy)
        self._device: str | None = None
        self._sha: str | None = None
        self._files: dict[str, Path] = {}
        self._revisions: dict[str, str | None] = {}
        self._pin_checks: list[pins.FileCheck] = []

    # ------------------------------------------------------------ hooks for subclasses
    def hub_files(self) -> dict[str, hub.HubFile]:
        """Files to find in the hub cache, by role; "checkpoint" is the one hashed."""
        return {}

    def _load_module(self) -> None:
        """Import the package and build the module (on ``self.torch_device``)."""

    def check_policy(self, policy: WindowPolicy) -> None:
        """Raise TimbreDBError for a window policy the model cannot run."""

    def identity(self) -> dict[str, Any]:
        out = super().identity()
        if self.weights is not None:
            # other weights under the same checkpoint name: their vectors must not join the
            # published checkpoint's space (ingest would skip clips it already holds there)
            if not self.weights.is_file():
                raise ModelUnavailableError(f"{self.spec.id}: --weights {self.weights} is not a file")
            out["weights_sha256"] = hub.sha256(self.weights)
        elif self.allow_unpinned and (digest := self._unpinned_checkpoint()):
            # a cached checkpoint that is not the pinned file, used under --allow-unpinned: as
            # with --weights, its vectors get a space of their own
            out["weights_sha256"] = digest
        return out

    def _unpinned_checkpoint(self) -> str | None:
        """The sha256 of the cached checkpoint if it is not its pinned file, else None (memoised)."""
        if not hasattr(self, "_mismatch_sha"):
            self._mismatch_sha: str | None = None
            f = pins.with_pins(self.spec, self.hub_files()).get("checkpoint")
            path = hub.locate(f) if f is not None else None
            if f is not None and path is not None:
                check = pins.check_file(self.spec, f, path)
                if check.status == pins.MISMATCH:
                    self._mismatch_sha = check.sha256
        return self._mismatch_sha

    @property
    def label(self) -> str:
        label = super().label
        digest = self.identity().get("weights_sha256")
        if digest:
            # other weights are a space of their own; the label says which file, so queries
            # never show two rows named like the published checkpoint
            label += f"+weights-{digest[:8]}"
        return label

    # ------------------------------------------------------------ loading
    @property
    def device(self) -> str:
        return self._device or self.requested_device

    @property
    def checkpoint_sha256(self) -> str | None:
        return self._sha

    def _load(self) -> None:
        files = pins.with_pins(self.spec, self.hub_files())
        if self.weights is not None and not self.weights.is_file():
            raise ModelUnavailableError(f"{self.spec.id}: --weights {self.weights} is not a file")
        # registry.load skips the availability check for --weights; the packages still need transformers 4.x
        tf = transformers_below_5()
        if not tf.usable:
            raise ModelUnavailableError(f"{self.label}: {tf.reason}")
        # the name `timbredb models fetch` takes: id[@checkpoint], never a --weights or /policy label
        name = self.spec.id if self.checkpoint == self.spec.checkpoint else f"{self.spec.id}@{self.checkpoint}"
        found = hub.require(name, list(files.values()))
        # the digests are checked before any file is unpickled (a tampered pickle runs code)
        self._pin_checks = pins.check_files(self.spec, found, only_pinned=True)
        pins.enforce(self.label, self._pin_checks, self.allow_unpinned, refetch_fix(name))
        self._files = {role: found[f] for role, f in files.items()}
        self._revisions = {f.repo_id: hub.snapshot_revision(found[f]) for f in files.values()}
        if self.weights is not None:
            self._files["checkpoint"] = self.weights
        device = resolve_device(self.requested_device)
        if self.dtype != "float32" and device == "cpu":
            raise TimbreDBError(f"--dtype {self.dtype} needs a GPU, but --device auto chose the CPU; use float32")
        self._device = device
        try:
            self._load_module()
        except ImportError as exc:
            # reached with --weights, which skips the availability check, or with a broken install
            raise ModelUnavailableError(f"{self.label}: {first_line(exc)}; {self.install_hint}") from exc
        ckpt = self._files.get("checkpoint")
        if ckpt is not None:
            self._sha = hub.sha256(ckpt) if ckpt.is_file() else None

    @property
    def torch_module(self) -> Any:
        """The loaded torch.nn.Module (after the first embed); None before."""
        return None

    @property
    def torch_device(self) -> Any:
        import torch

        return torch.device(self.device)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """No autograd, no package warnings; on a GPU with --dtype float16/bfloat16, autocast to it.

        Autocast (rather than casting the weights) keeps the spectrogram front
        ends, softmax and normalisations in float32, which half precision breaks.
        """
        import torch

        # the packages' deprecation noise (e.g. torchaudio's on every fusion window) is theirs, not the user's
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.dtype == "float32":
                yield
            else:
                with torch.autocast(device_type=self.device, dtype=getattr(torch, self.dtype)):
                    yield

    @staticmethod
    def to_numpy(t: Any) -> NDArray[np.float32]:
        return t.detach().float().cpu().numpy()

    def stack(self, windows: list[NDArray[np.float32]]) -> Any:
        """Equal-length windows as one (n, samples) float32 tensor on the model's device.

        On CUDA the windows are stacked straight into page-locked (pinned) host memory and
        copied without blocking: the copy runs on the GPU's copy engine, ordered before the
        forward pass on the same stream, while this thread goes on (torch's caching host
        allocator keeps the buffer until the copy is done). The values are the same bits.
        """
        import torch

        if self.device == "cuda" and windows:
            host = torch.empty((len(windows), *windows[0].shape), dtype=torch.float32, pin_memory=True)
            np.stack(windows, out=host.numpy())
            return host.to(self.torch_device, non_blocking=True)
        return torch.from_numpy(np.stack(windows).astype(np.float32, copy=False)).to(self.torch_device)

    # ------------------------------------------------------------ provenance
    def extra_provenance(self) -> dict[str, Any]:
        import torch

        out: dict[str, Any] = {
            "torch_cuda": torch.version.cuda,
            "precision": "float32" if self.dtype == "float32" else f"autocast {self.dtype}",
            # the commit of every hub repository the weights came from
            "hub_revisions": dict(sorted(self._revisions.items())),
        }
        ckpt = self._files.get("checkpoint")
        if ckpt is not None:
            out["checkpoint_file"] = str(ckpt) if self.weights is not None else ckpt.name
        if self.weights is None:
            # the pin each pinned (or checkpoint) file was checked against, and the outcome
            out["pins"] = {f"{c.repo_id}/{c.filename}": {"status": c.status, "expected_sha256": c.expected_sha256,
                                                          "pinned_revision": c.pinned_revision}
                           for c in self._pin_checks}
        if self.device == "cuda":
            out["device_name"] = torch.cuda.get_device_name(0)
        return out
