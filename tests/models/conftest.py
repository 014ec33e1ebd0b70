"""Fixtures for the real-model tests: one fake Hugging Face cache per session.

The cache (``fake_hub.build``: random-weight stand-ins of LAION-CLAP, MS-CLAP
2023 and MuQ-MuLan, ~340 MB) is built once in a temporary directory; every test
in this folder runs with huggingface_hub and transformers pointed at it, offline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.models import fake_hub  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.models)
    gpu_items = [i for i in items if i.get_closest_marker("gpu")]
    if gpu_items:
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="needs a CUDA device")
            for item in gpu_items:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def hash_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("timbredb-cache")


@pytest.fixture(scope="session")
def fake_hub_root(tmp_path_factory: pytest.TempPathFactory, hash_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("hf-hub")
    with fake_hub.pointed_at(root, hash_cache):
        fake_hub.build(root)
    return root


@pytest.fixture(autouse=True)
def hf_cache(fake_hub_root: Path, hash_cache: Path) -> Iterator[Path]:
    """Every test here sees the fake cache, offline."""
    with fake_hub.pointed_at(fake_hub_root, hash_cache):
        yield fake_hub_root


@pytest.fixture(scope="session")
def loaded(fake_hub_root: Path, hash_cache: Path) -> Callable[..., Any]:
    """Models loaded once per session and shared (weights load lazily on first use)."""
    from timbredb.models import registry

    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            with fake_hub.pointed_at(fake_hub_root, hash_cache):
                model = registry.load(name, device="cpu")
                model.ensure_loaded()
            cache[name] = model
        return cache[name]

    return get


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def purge_modules(prefix: str) -> None:
    """Forget a package so its next import runs its module code again."""
    for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
        del sys.modules[key]
