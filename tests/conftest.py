"""Test setup: offline (no hub downloads ever), deterministic, tiny CPU configs."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub: tests never download, and never see a user's cache.
os.environ["HF_HUB_OFFLINE"] = "1"
if "HF_HOME" not in os.environ:  # a cache of our own, removed when the session ends (none left behind in /tmp)
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="cael-tests-hf-")
    atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS for the CUDA resume test

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

TINY_MODEL = {
    "name": "cael",
    "image-size": 64,
    "num-classes": 2,
    "depth": 2,
    "fg-dim": 32,
    "fg-patch-size": 1,
    "fg-enc-depth": 1,
    "fg-enc-dim-head": 8,
    "fg-enc-heads": 2,
    "fg-enc-mlp-dim": 64,
    "cg-dim": 48,
    "cg-patch-size": 8,
    "cg-enc-depth": 1,
    "cg-enc-dim-head": 8,
    "cg-enc-heads": 2,
    "cg-enc-mlp-dim": 64,
    "cross-attn-depth": 2,
    "cross-ae-attn-depth": 2,
    "cross-attn-dim-head": 8,
    "cross-attn-heads": 2,
    "cg-channels": 24,
    "fg-channels": 1280,
    "dropout": 0.1,
    "emb-dropout": 0.1,
    "pretrained": False,
}

# Overrides of ``tiny_config`` that switch off every random op of training (for comparing two implementations of one
# training step, e.g. compiled and eager).
NO_RANDOM_OPS = {"dropout": 0.0, "emb_dropout": 0.0, "drop_path_rate": 0.0}


def gradient_errors(got: dict, expected: dict, floor: float = 1e-2) -> dict[str, float]:
    """Each parameter's gradient error, relative to its own norm or, where that is below ``floor`` times the median
    gradient norm, to that: a gradient that is zero in exact arithmetic (a convolution's bias before a train-mode
    batch norm, whose mean it removes) is rounding noise of about 1e-7 in any two computations, and its error
    relative to its own norm says nothing (on an H200, compiled against eager: 3.0 for the edge stream's second
    convolution's bias, while every other gradient agreed)."""
    assert got.keys() == expected.keys()
    norms = {name: float(gradient.float().norm()) for name, gradient in expected.items()}
    scale = floor * sorted(norms.values())[len(norms) // 2]
    return {
        name: float((got[name].float() - expected[name].float()).norm()) / max(norms[name], scale, 1e-12)
        for name in expected
    }


RELEASED_SWITCHES = {
    "appearance-channel-order": "bgr",
    "appearance-normalization": "unit",
    "transpose-appearance": True,
    "aeca-rounds": "last",
    "aeca-residual": "double",
}


@pytest.fixture
def tiny_config():
    """A function returning a tiny CAEL model config (64 px, 4 fine and 4 coarse/edge tokens) with overrides."""

    def make(released: bool = False, **overrides):
        config = dict(TINY_MODEL)
        if released:
            config.update(RELEASED_SWITCHES)
        config.update({key.replace("_", "-"): value for key, value in overrides.items()})
        return config

    return make


@pytest.fixture
def images():
    """A reproducible uint8 RGB batch with structure (gradients and blocks), not only noise."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (3, 3, 64, 64), generator=generator, dtype=torch.uint8)
    ramp = torch.linspace(0, 255, 64).view(1, 1, 1, 64).expand(3, 3, 64, 64)
    batch = (0.5 * noise.float() + 0.5 * ramp).round()
    batch[:, :, 16:40, 8:30] = torch.tensor([200.0, 40.0, 90.0]).view(1, 3, 1, 1)
    return batch.to(torch.uint8)
