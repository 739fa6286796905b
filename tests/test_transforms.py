"""data/transforms.py: the uint8 training augmentations and the errors of their config entries."""

import numpy as np
import pytest
import torch

from data.transforms import AUGMENTATIONS, apply_augment, build_augment


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_each_augmentation_returns_uint8_of_the_size(name):
    image = torch.from_numpy((np.arange(3 * 16 * 16).reshape(3, 16, 16) * 5 % 256).astype(np.uint8))
    entry = {"name": name} if name == "random-resized-crop" else {"name": name, "p": 1.0}
    augment = build_augment([entry], 16)
    torch.manual_seed(0)
    out = apply_augment(augment, image)
    assert out.dtype == torch.uint8 and out.shape == (3, 16, 16)
    if name == "hflip":
        assert torch.equal(out, image.flip(-1))
    if name == "grayscale":
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_augment_config_errors_name_the_entry():
    assert build_augment([], 16) is None and build_augment(None, 16) is None
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    assert apply_augment(None, image) is image
    bad = [
        ([{"name": "hflip"}, {"name": "sharpen"}], r"data\.augment\[1\]: unknown augmentation 'sharpen'"),
        ([{"name": "hflip", "probability": 0.5}], r"data\.augment\[0\] \(hflip\): .*probability"),
        (
            [{"name": "hflip"}, {"name": "random-resized-crop", "scale": "big"}],
            r"data\.augment\[1\] \(random-resized-crop\): .*'scale'",
        ),
        ([{"name": "jpeg", "quality": [0, 100]}], r"data\.augment\[0\] \(jpeg\): .*quality"),
        (["hflip"], r"data\.augment\[0\] must be a mapping with a 'name'"),
    ]
    for spec, message in bad:
        with pytest.raises(ValueError, match=message):
            build_augment(spec, 16)
