"""The main job on a CUDA GPU (skipped without one): every precision trains, compiled and channels-last agree with
eager and contiguous, the released model gives the CPU's logits, exact resume is exact, torchrun goes through DDP.

Run on a GPU machine with ``python -m pytest -m cuda tests/test_cuda.py`` (``benchmarks/run_gpu.sh`` does).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import NO_RANDOM_OPS, gradient_errors
from runs import Crash, crash_after_saves, quick_args

import train
from common.checkpoint import load_checkpoint
from data.make_demo import make_demo
from engine.config import load_config
from model import build_model

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = Path(__file__).resolve().parent.parent
QUICK = quick_args(data__workers=2, train__batch_size=16, train__device="cuda")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("cuda-demo"), identities=12, fakes_per_generator=16)


@pytest.fixture
def cuda_images(images):
    return images.cuda()


def _records(run: Path) -> list[dict]:
    timing = {"epoch_seconds", "val_seconds", "train_images_per_s", "first_step_s", "first_batch_s"}
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_runs_in_every_precision_with_fused_adamw(demo, tmp_path, precision):
    run = tmp_path / precision
    summary = train.main(["--csv", str(demo), "--out", str(run), *QUICK, "--set", f"train.precision={precision}"])
    records = _records(run)
    assert len(records) == 2 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in records)
    assert summary["best_value"] is not None and 0.0 <= summary["best_value"] <= 1.0
    last = load_checkpoint(run / "last.pt")
    assert (last["scaler"] is not None) == (precision == "fp16")  # the grad scaler only where fp16 needs it
    log = (run / "train.log").read_text()
    assert f"precision {precision}" in log and "cuda:0" in log
    assert any(p.is_cuda for p in build_model({**last["config"]["model"], "pretrained": False}).cuda().parameters())


@pytest.fixture
def ieee_fp32():
    """Float32 convolutions and matrix products without TF32 (cuDNN's convolutions use TF32 by default): comparisons
    of float32 results then see float32 rounding, not TF32's 10-bit mantissa."""
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def test_compiled_and_eager_agree_forward_and_backward(tiny_config, cuda_images, ieee_fp32):
    torch.manual_seed(0)
    # every random op off (dropout, token dropout, drop-path): compiled code draws other random numbers than eager
    # (on an H100 the default drop-path 0.2 alone made the outputs differ by 13%); tests/test_model.py checks that
    # this config is deterministic in train mode. TF32 off: with cuDNN's default TF32 convolutions, a gradient that
    # is zero in exact arithmetic (gradient_errors) carried noise large enough that an H200 run failed on
    # blocks.0.0.bn2.bias at 6% of the gradients' scale
    model = build_model(tiny_config(**NO_RANDOM_OPS)).cuda().train()
    compiled = torch.compile(model)
    eager_out = model(cuda_images)
    eager_out.float().sum().backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    compiled_out = compiled(cuda_images)
    compiled_out.float().sum().backward()
    assert _relative_error(compiled_out, eager_out) < 1e-3
    compiled_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    # fused kernels sum in another order: each gradient agrees to 1% of its norm (or of the gradients' scale, where
    # it is zero in exact arithmetic: see gradient_errors)
    errors = gradient_errors(compiled_grads, eager_grads)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-2, (worst, errors[worst])


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float() - expected.float()).norm() / expected.float().norm().clamp_min(1e-12))


def test_channels_last_equals_contiguous(tiny_config, cuda_images):
    model = build_model(tiny_config()).cuda().eval()
    with torch.no_grad():
        expected = model(cuda_images)
        model.to(memory_format=torch.channels_last)
        got = model(cuda_images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_released_model_gives_the_cpu_logits_on_cuda(ieee_fp32):
    config = load_config("cael_released")["model"]
    torch.manual_seed(0)
    model = build_model({**config, "pretrained": False}).eval()
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    with torch.no_grad():
        on_cpu = model(images)
        on_cuda = model.cuda()(images.cuda()).cpu()
    torch.testing.assert_close(on_cuda, on_cpu, rtol=1e-3, atol=1e-3)


def test_exact_resume_on_cuda_with_deterministic_algorithms(demo, tmp_path, monkeypatch):
    args = ["--csv", str(demo), *QUICK, "--set", "train.checkpoint-every-steps=2", "--set", "train.deterministic=true"]
    train.main([*args, "--out", str(tmp_path / "straight")])

    crash_after_saves(monkeypatch, 1)  # in the CUDA test: right after the mid-epoch checkpoint of step 2
    with pytest.raises(Crash):
        train.main([*args, "--out", str(tmp_path / "crashed")])
    monkeypatch.undo()
    train.main(["--resume", str(tmp_path / "crashed")])
    first, second = (
        load_checkpoint(tmp_path / "straight" / "last.pt"),
        load_checkpoint(tmp_path / "crashed" / "last.pt"),
    )
    assert first["step"] == second["step"] == 8
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name
    assert _records(tmp_path / "straight") == _records(tmp_path / "crashed")


def test_torchrun_single_process_goes_through_ddp_and_test_py_reads_its_checkpoint(demo, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=1",
        str(ROOT / "train.py"),
        "--csv",
        str(demo),
        "--out",
        str(run),
        *QUICK,
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(DDP)" in (run / "train.log").read_text()
    evaluated = subprocess.run(
        [
            sys.executable,
            str(ROOT / "test.py"),
            "--checkpoint",
            str(run / "best.pt"),
            "--device",
            "cuda",
            "--bootstrap",
            "100",
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads(next(run.glob("eval-*/metrics.json")).read_text())
    assert metrics


def test_mtcnn_face_detection_on_cuda_matches_the_cpu():
    import numpy as np
    import skimage.data as skimage_data

    from data.faces import build_detector

    portrait = skimage_data.astronaut()
    frames = [np.ascontiguousarray(np.roll(portrait, 4 * i, axis=1)) for i in range(8)]
    on_cpu = build_detector("mtcnn", "cpu").detect(frames, landmarks=True)
    on_cuda = build_detector("mtcnn", "cuda").detect(frames, landmarks=True)
    assert [len(found) for found in on_cuda] == [len(found) for found in on_cpu] == [1] * 8
    for cpu, cuda in zip(on_cpu, on_cuda):
        assert np.allclose(cpu[0].box, cuda[0].box, atol=1.0) and abs(cpu[0].score - cuda[0].score) < 1e-3
        assert np.allclose(cpu[0].landmarks, cuda[0].landmarks, atol=1.0)
