"""Keeping third-party model packages from changing the process around them.

Three problems are handled here, each only where it actually occurs:

- torchaudio / torchvision wheels built for another torch (the CUDA wheels that
  pip pairs with a CPU torch) fail at import with OSError / RuntimeError from
  their compiled extensions. The model packages use only their pure-PyTorch
  parts (MelSpectrogram, Resize), so when - and only when - the real import
  fails, the compiled-extension modules are replaced by inert stubs and the
  import is retried. Where the wheels import fine nothing is touched.
- Model packages print (laion_clap's ``load_ckpt`` prints hundreds of lines),
  set process-wide warning filters at import (msclap: ``filterwarnings("ignore")``)
  and lower the transformers log level (msclap). ``contained()`` captures
  their stdout and restores warning filters and the transformers verbosity.
- ``offline()`` makes the hub libraries read only the local cache while a
  package loads, so a package that hard-codes ``from_pretrained("roberta-base")``
  never waits on the network; timbredb checks beforehand that every file is
  cached (``hub.require``), and downloading is left to ``timbredb models fetch``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("timbredb.models")

#: set to the names of the modules that were stubbed (empty where the wheels import)
STUBBED: list[str] = []


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _purge(prefix: str) -> None:
    for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
        del sys.modules[key]


def import_torchaudio() -> types.ModuleType:
    """``import torchaudio``, with its compiled extension stubbed out only if it fails to load."""
    try:
        import torchaudio
    except (OSError, RuntimeError, ImportError) as exc:
        log.debug("torchaudio failed to import (%s); using its pure-PyTorch parts only", exc)
        _purge("torchaudio")
        sys.modules["torchaudio._extension"] = _stub(
            "torchaudio._extension",
            _IS_TORCHAUDIO_EXT_AVAILABLE=False,
            _IS_ALIGN_AVAILABLE=False,
            fail_if_no_align=lambda f: f,
            _check_cuda_version=lambda: None,
        )
        STUBBED.append("torchaudio._extension")
        import torchaudio
    return torchaudio


def import_torchvision() -> types.ModuleType:
    """``import torchvision``, with its operator registrations stubbed out only if they fail."""
    try:
        import torchvision
    except (OSError, RuntimeError, ImportError) as exc:
        log.debug("torchvision failed to import (%s); using its pure-PyTorch parts only", exc)
        _purge("torchvision")
        for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
            sys.modules[name] = _stub(name)
            STUBBED.append(name)
        import torchvision
    return torchvision


def ensure_torch_extras() -> None:
    """Make ``import torchaudio`` and ``import torchvision`` work for the model packages."""
    import_torchaudio()
    import_torchvision()


@contextlib.contextmanager
def contained() -> Iterator[io.StringIO]:
    """Run package code without letting it print or change process-wide settings.

    Captures stdout (logged at DEBUG level afterwards), silences warnings and
    transformers' log messages raised inside, and restores ``warnings.filters``
    and the transformers log level (msclap lowers it at import).
    """
    buf = io.StringIO()
    # transformers reports load details ("weights newly initialized" for the text
    # encoders the checkpoints overwrite) on stderr; quiet it here, restore after
    from transformers.utils import logging as tf_logging

    verbosity = tf_logging.get_verbosity()
    tf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        tf_logging.set_verbosity(verbosity)
        if buf.getvalue():
            log.debug("captured package output:\n%s", buf.getvalue())


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Make huggingface_hub and transformers resolve files from the local cache only.

    Both libraries read HF_HUB_OFFLINE once, at import; setting the environment
    variable later has no effect, so the module flags are switched for the
    duration and restored afterwards. huggingface_hub enforces the flag only in
    the HTTP session it builds (one per thread, cached): a session built online
    earlier in the process would still send HEAD requests (with retries) for
    files that are cached, so sessions are rebuilt on the way in and out.
    """
    import huggingface_hub.constants as hf_constants

    saved_hub = hf_constants.HF_HUB_OFFLINE
    tf_hub = sys.modules.get("transformers.utils.hub")
    saved_tf = getattr(tf_hub, "_is_offline_mode", None) if tf_hub is not None else None
    hf_constants.HF_HUB_OFFLINE = True
    if tf_hub is not None and hasattr(tf_hub, "_is_offline_mode"):
        tf_hub._is_offline_mode = True  # type: ignore[attr-defined]
    _reset_hub_sessions()
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = saved_hub
        _reset_hub_sessions()
        tf_hub = sys.modules.get("transformers.utils.hub")
        if tf_hub is not None and hasattr(tf_hub, "_is_offline_mode"):
            # transformers imported inside the block copied the forced value: undo that too
            tf_hub._is_offline_mode = saved_tf if saved_tf is not None else saved_hub  # type: ignore[attr-defined]


def _reset_hub_sessions() -> None:
    # huggingface_hub < 1.0 caches requests sessions built for the offline flag of their time
    from huggingface_hub import utils as hf_utils

    reset = getattr(hf_utils, "reset_sessions", None)
    if reset is not None:
        reset()
