"""OpenFLAM through the real `openflam` code, where it is installed (see timbredb/models/openflam.py).

It is not part of the models extra (its pins clash), so these tests skip in CI
and run where `pip install --no-deps openflam==1.0.2 lightning lightning-utilities torchmetrics` was done.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.models import fake_hub
from tests.synth import noise
from timbredb.audio import from_array
from timbredb.errors import VocabularyError
from timbredb.models import registry

pytestmark = pytest.mark.models
# find_spec, not importorskip: importing openflam before timbredb's torchvision shim fails where the shim is needed
if any(importlib.util.find_spec(m) is None for m in ("openflam", "lightning")):
    pytest.skip("openflam is not installed (it is not part of the models extra)", allow_module_level=True)
SR = 48000


@pytest.fixture(scope="module")
def openflam_weights(fake_hub_root: Path, hash_cache: Path) -> Path:
    with fake_hub.pointed_at(fake_hub_root, hash_cache):
        return fake_hub.build_openflam(fake_hub_root)


def test_openflam_embeds_deterministically(openflam_weights: Path) -> None:
    assert registry.availability(registry.specs()["openflam"]).usable
    m = registry.load("openflam", device="cpu")
    clip = from_array(noise(12.0, sr=SR, seed=51), SR, "x")
    v = m.embed_audio([clip])
    assert v.shape == (1, 512) and np.array_equal(v, m.embed_audio([clip]))
    t = m.embed_texts(["a warm sound", "bright"])
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    with pytest.raises(VocabularyError, match="longer than the 77"):
        m.check_text("warm " * 100)
    assert m.provenance()["packages"]["openflam"] != "not installed"
    # a local weights file goes through the same architecture, strictly
    local = registry.load("openflam", device="cpu", weights=openflam_weights)
    np.testing.assert_allclose(local.embed_audio([clip]), v, atol=1e-6)
