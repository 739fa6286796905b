"""Checkpoints of another architecture than the one asked for: the message says what the file holds and what was asked
(model.name first, never a list of CAEL keys for a file that is no CAEL), and a bare state dict that fits the asked
detector loads."""

import pytest
import torch
from conftest import TINY_MODEL

from common.checkpoint import save_checkpoint
from engine.config import load_config
from model import build_model
from model.hub import CheckpointMismatchError, PretrainedError, load_detector

XCEPTION = {"name": "xception", "image-size": 32}


def test_a_cael_checkpoint_asked_for_as_an_xception_says_so_before_any_key(tmp_path):
    cael = build_model(TINY_MODEL)
    path = save_checkpoint(tmp_path / "best.pt", {"model": cael.state_dict(), "config": {"model": dict(TINY_MODEL)}})
    with pytest.raises(CheckpointMismatchError) as error:
        load_detector(path, load_config("xception"))
    message = str(error.value)
    assert message.startswith(f"{path} is a cael (its model.name), you asked for xception (--config)")
    assert "cg-dim" not in message and "drop --config" in message


def test_a_timm_state_dict_with_its_config_loads_and_one_that_does_not_fit_is_named_as_such(tmp_path):
    import timm

    xception = build_model(XCEPTION)
    torch.save(xception.network.state_dict(), tmp_path / "xception.pth")  # timm's own names, our two-way head
    loaded = load_detector(tmp_path / "xception.pth", load_config("xception", ["model.image-size=32"]))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(loaded.model(images), xception.eval()(images))

    imagenet = timm.create_model("legacy_xception", pretrained=False)  # 1,000 classes: a backbone, not a detector
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pth")
    with pytest.raises(PretrainedError) as error:
        load_detector(tmp_path / "imagenet.pth", load_config("xception", ["model.image-size=32"]))
    message = str(error.value)
    assert "does not match the released CAEL" not in message and "pass the config" not in message
    assert f"{tmp_path / 'imagenet.pth'} is a bare state dict (not a checkpoint written by train.py)" in message
    assert "network.fc.weight (1000, 2048) (the xception: (2, 2048))" in message
    assert f"--set model.pretrained-file={tmp_path / 'imagenet.pth'}" in message
