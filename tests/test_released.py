"""The released face of CAEL: released checkpoints load fully, and logits match an independent re-statement."""

from pathlib import Path

import numpy as np
import pytest
import torch
from released_reference import random_released_state_dict, released_forward

from common.checkpoint import load_checkpoint
from model import build_model, load_released
from model.convert_released import ReleasedCheckpointError, convert_released_state_dict, main, released_key_to_ours
from model.summary import main as summary_main

DATA = Path(__file__).parent / "data"
RELEASED_KEYS = DATA / "released_cael_state_dict.tsv"
UNUSED = set((DATA / "released_cael_unused_params.txt").read_text().split())
# Modules of the released model whose weights get no gradient; their BN buffers are unused as well.
UNUSED_MODULES = {key.rsplit(".", 1)[0] for key in UNUSED}


def _unused(key: str) -> bool:
    return key.rsplit(".", 1)[0] in UNUSED_MODULES


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def released_state_dict():
    return random_released_state_dict(RELEASED_KEYS, seed=0)


@pytest.fixture(scope="module")
def released_model(released_state_dict):
    return load_released(released_state_dict).eval()


@pytest.fixture(scope="module")
def face_batch():
    """Three 224x224 RGB images with smooth structure and noise (so transposing and channel order matter)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:224, 0:224] / 224.0
    batch = []
    for i in range(3):
        base = np.stack([np.sin(6 * x + i) * y, np.cos(4 * y - i) * x, x * y], axis=-1)
        batch.append(127.5 + 100 * base + rng.normal(0, 20, (224, 224, 3)))
    return np.clip(np.round(np.stack(batch)), 0, 255).astype(np.uint8)  # (B, H, W, 3) RGB


def test_every_released_key_maps_or_is_a_known_unused_weight(released_state_dict):
    model = build_model({**_released_config(), "pretrained": False})
    converted, dropped = convert_released_state_dict(released_state_dict, model.state_dict())
    assert set(converted) == set(model.state_dict())  # every weight of ours comes from the checkpoint
    assert all(_unused(key) for key in dropped)  # only weights the released forward never reads are dropped
    used = {key for key in released_state_dict if not _unused(key)}
    assert all(released_key_to_ours(key) is not None for key in used)  # every key it uses is consumed
    assert len(converted) + len(dropped) == len(released_state_dict)


def test_released_mode_logits_equal_the_released_forward(released_model, released_state_dict, face_batch):
    images = torch.from_numpy(face_batch).permute(0, 3, 1, 2).contiguous()  # our contract: RGB (B, 3, H, W)
    with torch.no_grad():
        ours = released_model(images)
    reference = released_forward(released_state_dict, face_batch[..., ::-1].astype(np.float32))  # cv2-style BGR
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)
    assert (reference[0] - reference[1]).abs().max() > 1e-2  # the logits depend on the image


def test_the_comparison_would_catch_a_missing_quirk(released_model, released_state_dict, face_batch):
    reference = released_forward(released_state_dict, face_batch[..., ::-1].astype(np.float32))
    images = torch.from_numpy(face_batch).permute(0, 3, 1, 2).contiguous()
    released_model.preprocess.transpose_appearance = False
    try:
        with torch.no_grad():
            untransposed = released_model(images)
    finally:
        released_model.preprocess.transpose_appearance = True
    assert (untransposed - reference).abs().max() > 1e-3


def test_load_released_accepts_wrapped_and_ddp_state_dicts(released_state_dict, released_model):
    wrapped = {"state_dict": {f"module.{k}": v for k, v in released_state_dict.items()}, "epoch": 3}
    model = load_released(wrapped)
    for (name, ours), theirs in zip(model.state_dict().items(), released_model.state_dict().values()):
        assert torch.equal(ours, theirs), name


def test_bad_released_state_dicts_get_clear_errors(released_state_dict):
    missing = dict(released_state_dict)
    del missing["fg_mlp_head.1.weight"]
    with pytest.raises(ReleasedCheckpointError, match="missing.*head_fine.fc.weight"):
        load_released(missing)
    extra = {**released_state_dict, "some_adapter.weight": torch.zeros(3)}
    with pytest.raises(ReleasedCheckpointError, match="not released CAEL keys.*some_adapter.weight"):
        load_released(extra)
    wrong = {**released_state_dict, "cg_mlp_head.1.weight": torch.zeros(3, 384)}
    with pytest.raises(ReleasedCheckpointError, match=r"wrong shape: cg_mlp_head.1.weight \(3, 384\)"):
        load_released(wrong)


def test_convert_released_cli_writes_our_checkpoint(tmp_path, released_state_dict, released_model, face_batch):
    source = tmp_path / "released.pth"
    torch.save({"state_dict": released_state_dict}, source)
    assert main([str(source), str(tmp_path / "ours.pt")]) == 0
    checkpoint = load_checkpoint(tmp_path / "ours.pt")
    assert checkpoint["config"]["model"]["aeca-rounds"] == "last"
    model = build_model(checkpoint["config"]["model"]).eval()
    model.load_state_dict(checkpoint["model"])
    images = torch.from_numpy(face_batch).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        torch.testing.assert_close(model(images), released_model(images), rtol=0, atol=0)


def test_full_released_config_builds_and_reports_its_parameter_count(capsys):
    summary = summary_main(["cael_released"])
    # The released 169,379,094 less the weights its forward never reads (2 classifiers, the coarse stream's
    # EfficientNet beyond block 2) and the positional-embedding rows beyond the real token count.
    unused_classifiers = 2 * (1000 * 1280 + 1000)
    unused_coarse_backbone = 3_988_458
    unused_position_rows = (1025 - 2) * 192 + 2 * (17 - 2) * 384
    assert summary["parameters"] == 169_379_094 - unused_classifiers - unused_coarse_backbone - unused_position_rows
    # Those that receive a gradient: the released 157,511,004 less the position rows.
    assert summary["parameters_with_gradient"] == 157_511_004 - unused_position_rows
    assert 4.9 < summary["gflops_per_image"] < 5.1
    assert "162,620,700" in capsys.readouterr().out


def _released_config():
    from engine.config import load_config

    return load_config("cael_released")["model"]


def test_test_script_evaluates_a_released_checkpoint_directly(
    tmp_path, released_state_dict, released_model, face_batch
):
    import csv

    from PIL import Image

    import test as test_script

    source = tmp_path / "released.pth"
    torch.save({"state_dict": released_state_dict}, source)
    with open(tmp_path / "faces.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for i, face in enumerate(face_batch):
            Image.fromarray(face).save(tmp_path / f"face{i}.png")
            writer.writerow([f"face{i}.png", i % 2, "test"])
    with pytest.raises(ValueError, match="pass --csv"):
        test_script.main(["--checkpoint", str(source), "--quiet"])
    result = test_script.main(
        [
            "--checkpoint",
            str(source),
            "--csv",
            str(tmp_path / "faces.csv"),
            "--out",
            str(tmp_path / "eval"),
            "--bootstrap",
            "0",
            "--quiet",
            "--workers",
            "0",
            "--precision",
            "fp32",
        ]
    )
    scores = [float(r["score"]) for r in csv.DictReader(open(tmp_path / "eval" / "predictions.csv"))]
    images = torch.from_numpy(face_batch).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        expected = released_model(images).softmax(dim=-1)[:, 1]
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert result["groups"]["overall"]["clean"]["n"] == 3
