"""Specs, availability, weights management, the import shim and precision/device choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from timbredb.errors import ModelUnavailableError, TimbreDBError
from timbredb.models import hub, registry
from timbredb.models.base import WindowPolicy

pytestmark = pytest.mark.models

REAL = ("laion-clap", "ms-clap", "muq-mulan", "openflam")
REPO = Path(__file__).resolve().parents[2]


def test_real_models_are_registered_with_license_and_checkpoints() -> None:
    specs = registry.specs()
    for model_id in REAL:
        assert model_id in specs
    assert specs["laion-clap"].checkpoint == "630k-audioset-best"
    assert "music_audioset_epoch_15_esc_90.14" in specs["laion-clap"].checkpoints
    assert specs["ms-clap"].checkpoints == ("2023", "2022")
    assert "CC-BY-NC-4.0" in specs["muq-mulan"].license
    assert (specs["laion-clap"].dim, specs["ms-clap"].dim, specs["muq-mulan"].dim) == (512, 1024, 512)
    assert (specs["laion-clap"].sample_rate, specs["ms-clap"].sample_rate, specs["muq-mulan"].sample_rate) == (
        48000, 44100, 24000)


def test_models_with_cached_weights_are_usable(hf_cache: Path) -> None:
    for model_id in ("laion-clap", "ms-clap", "muq-mulan"):
        avail = registry.availability(registry.specs()[model_id])
        assert avail.usable, avail.reason


def test_openflam_unavailability_explains_the_separate_install() -> None:
    avail = registry.availability(registry.specs()["openflam"])
    if avail.usable:  # pragma: no cover - only where openflam was installed
        pytest.skip("openflam is installed here")
    assert "--no-deps openflam" in avail.reason or "openflam" in avail.reason
    assert "pip install --no-deps openflam==" in avail.reason


def test_missing_weights_give_the_exact_fix(tmp_path: Path, hash_cache: Path) -> None:
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    from tests.models import fake_hub

    with fake_hub.pointed_at(empty, hash_cache):
        avail = registry.availability(registry.specs()["laion-clap"])
        assert not avail.usable
        assert "lukewys/laion_clap/630k-audioset-best.pt" in avail.reason
        assert "timbredb models fetch laion-clap" in avail.reason
        assert str(empty) in avail.reason
        assert "HF_HUB_OFFLINE" in avail.reason
        with pytest.raises(ModelUnavailableError, match="timbredb models fetch ms-clap"):
            registry.load("ms-clap")


def test_uncached_checkpoint_is_unavailable_but_others_are_fine() -> None:
    with pytest.raises(ModelUnavailableError, match=r"630k-best\.pt.*fetch laion-clap@630k-best"):
        registry.load("laion-clap@630k-best")
    with pytest.raises(TimbreDBError, match="unknown checkpoint"):
        registry.load("laion-clap@nope", check=False)


def test_fetch_offline_fails_fast_with_the_fix(tmp_path: Path, hash_cache: Path) -> None:
    from tests.models import fake_hub
    from timbredb.models.fetch import fetch

    empty = tmp_path / "hub"
    empty.mkdir()
    with fake_hub.pointed_at(empty, hash_cache):
        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError) as err:
            fetch("laion-clap")
        assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "\n" not in msg
    assert "HF_HUB_OFFLINE" in msg and "timbredb models fetch laion-clap" in msg and "--weights" in msg


def test_fetch_with_an_unreachable_hub_fails_fast(
    tmp_path: Path, hash_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hf_constants

    from tests.models import fake_hub
    from timbredb.models.fetch import fetch

    empty = tmp_path / "hub"
    empty.mkdir()
    with fake_hub.pointed_at(empty, hash_cache):
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        # a closed local port: connection refused at once, no traffic leaves the machine
        monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")
        import huggingface_hub.file_download as hf_download

        template = "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(hf_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError, match="fetch ms-clap") as err:
            fetch("ms-clap")
        # one probe, no retry loop (huggingface_hub alone retries for ~23 s here)
        assert time.monotonic() - t0 < 5
        assert "not reachable" in str(err.value)
    assert "\n" not in str(err.value)


def test_fetch_of_cached_files_needs_no_network_and_returns_the_checkpoint(hf_cache: Path) -> None:
    from timbredb.models.fetch import fetch, files_for

    path = fetch("laion-clap")
    assert path.name == "630k-audioset-best.pt" and path.is_file()
    assert str(hf_cache) in str(path)
    assert fetch("muq-mulan").name == "pytorch_model.bin"
    labels = {f.label for f in files_for("muq-mulan")}
    assert "OpenMuQ/MuQ-large-msd-iter/config.json" in labels  # found through the cached config
    with pytest.raises(TimbreDBError, match="no weights"):
        fetch("mfcc")


def test_checkpoint_sha256_is_cached_by_path_size_and_mtime(tmp_path: Path, hash_cache: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 1000)
    first = hub.sha256(f)
    import hashlib

    assert first == hashlib.sha256(b"x" * 1000).hexdigest()
    entries = json.loads((hash_cache / "sha256.json").read_text())
    assert entries[os.path.realpath(f)]["sha256"] == first
    hub._MEMO.clear()
    # a stale entry would be reused if the key ignored size/mtime: rewrite the file
    f.write_bytes(b"y" * 1001)
    assert hub.sha256(f) == hashlib.sha256(b"y" * 1001).hexdigest()
    hub._MEMO.clear()
    entries = json.loads((hash_cache / "sha256.json").read_text())
    entries[os.path.realpath(f)]["sha256"] = "from-the-cache"
    (hash_cache / "sha256.json").write_text(json.dumps(entries))
    assert hub.sha256(f) == "from-the-cache"  # not re-hashed


def test_listing_models_imports_no_torch(hf_cache: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from timbredb.models import registry
        out = {s.id: registry.availability(s).usable for s in registry.SPECS}
        heavy = [m for m in ("torch", "laion_clap", "msclap", "muq", "transformers") if m in sys.modules]
        print(out, heavy)
        assert not heavy, heavy
        assert out["laion-clap"] and out["ms-clap"] and out["muq-mulan"]
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_help_and_models_list_import_no_torch(hf_cache: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from timbredb.cli import cli
        for args in (["--help"], ["models", "--help"], ["models", "list"], ["models", "list", "--format", "json"],
                     ["ingest", "--help"], ["models", "fetch", "--help"], ["models", "verify", "--help"]):
            try:
                cli.main(args=args, standalone_mode=False)
            except SystemExit:
                pass
        heavy = [m for m in ("torch", "laion_clap", "msclap", "muq", "openflam", "transformers", "torchaudio")
                 if m in sys.modules]
        assert not heavy, heavy
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "laion-clap" in res.stdout and "CC-BY-NC-4.0" in res.stdout


@pytest.mark.parametrize(
    ("name", "suffix"), [("laion-clap", ".pt"), ("ms-clap", ".pth"), ("muq-mulan", ".safetensors")]
)
def test_an_unreadable_weights_file_is_one_typed_line(name: str, suffix: str, tmp_path: Path) -> None:
    bad = tmp_path / f"random{suffix}"
    bad.write_bytes(bytes(range(256)) * 20)
    model = registry.load(name, device="cpu", weights=bad)
    unreadable = r"not a readable checkpoint|is not an ms-clap 2023 checkpoint"
    with pytest.raises(ModelUnavailableError, match=unreadable) as err:
        model.ensure_loaded()
    assert "\n" not in str(err.value)


def test_a_missing_package_with_local_weights_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "w.pt"
    local.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "laion_clap", None)  # as if not installed
    model = registry.load("laion-clap", device="cpu", weights=local)  # --weights skips the availability check
    with pytest.raises(ModelUnavailableError, match=r"laion_clap.*pip install 'torch==2\.13\.0' 'timbredb\[models\]'"):
        model.ensure_loaded()


def _shim_probe(tmp_path: Path, fails: bool) -> subprocess.CompletedProcess[str]:
    pkg = tmp_path / "site" / "torchaudio"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE\nREAL = True\n")
    body = "raise OSError('cannot load _torchaudio.so')\n" if fails else "_IS_TORCHAUDIO_EXT_AVAILABLE = True\n"
    (pkg / "_extension.py").write_text(body)
    code = textwrap.dedent(
        """
        from timbredb.models import _compat
        ta = _compat.import_torchaudio()
        print(ta.REAL, _compat.STUBBED)
        """
    )
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{REPO}")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_torchaudio_shim_is_installed_only_when_the_import_fails(tmp_path: Path) -> None:
    ok = _shim_probe(tmp_path / "ok", fails=False)
    assert ok.returncode == 0 and ok.stdout.strip() == "True []", ok.stderr
    broken = _shim_probe(tmp_path / "broken", fails=True)
    assert broken.returncode == 0 and broken.stdout.strip() == "True ['torchaudio._extension']", broken.stderr


def test_precision_and_device_choices_are_checked_before_loading() -> None:
    with pytest.raises(TimbreDBError, match="needs a GPU"):
        registry.load("laion-clap", device="cpu", dtype="float16")
    with pytest.raises(TimbreDBError, match="NaN in float16"):
        registry.load("muq-mulan", device="cuda", dtype="float16")
    with pytest.raises(TimbreDBError, match="unknown device"):
        registry.load("laion-clap", device="tpu")


def test_requesting_a_missing_gpu_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        pytest.skip("a CUDA device is present")
    model = registry.load("muq-mulan", device="cuda")
    with pytest.raises(ModelUnavailableError, match="no CUDA device"):
        model.ensure_loaded()


def test_named_policies_make_separate_spaces() -> None:
    default = registry.load("laion-clap")
    paper = registry.load("laion-clap/paper")
    assert paper.label == "laion-clap/paper" and default.label == "laion-clap"
    assert paper.space_id != default.space_id
    assert paper.policy_dict()["int16_quantise"] is True
    assert default.policy_dict()["int16_quantise"] is False
    assert registry.load("ms-clap@2022", check=False).policy.window_s == 5.0
    with pytest.raises(TimbreDBError, match="unknown policy"):
        registry.load("laion-clap/nope")
    with pytest.raises(TimbreDBError, match="10 s windows"):
        registry.load("laion-clap", policy=WindowPolicy(kind="whole"))
    # the space id is computable without loading any weights
    assert not default._loaded and len(default.space_id) == 16


def test_repeatpad_repeats_whole_copies_then_pads_with_silence() -> None:
    import numpy as np

    p = WindowPolicy(kind="consecutive", window_s=1.0, pad="repeatpad")
    x = np.arange(1, 4, dtype=np.float32)
    (w,) = p.windows(x, 10)
    assert w.tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 3, 0]


def test_a_bare_string_is_not_embedded_letter_by_letter() -> None:
    with pytest.raises(TimbreDBError, match="list of texts"):
        registry.load("ms-clap").embed_texts("warm")  # type: ignore[arg-type]
