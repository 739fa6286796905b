"""data/images.py: decoding any image mode to uint8 RGB, resizing, crop policies, JPEG quality, decode errors."""

import numpy as np
import pytest
import torch
from data_files import write_image, write_text
from PIL import Image

from data.decoding import ImageDecodeError, estimate_jpeg_quality, image_format
from data.images import load_image


def test_load_image_grey_rgba_palette(tmp_path):
    grey = np.array([[0, 10, 200], [50, 255, 7]], dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    out = load_image(tmp_path / "grey.png")
    assert out.dtype == torch.uint8 and out.shape == (3, 2, 3)
    for channel in out:
        assert channel.tolist() == grey.tolist()

    Image.new("RGBA", (3, 2), (10, 20, 30, 40)).save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    assert out.shape == (3, 2, 3) and out[:, 1, 2].tolist() == [10, 20, 30]

    palette = Image.new("P", (4, 3), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * (3 * 254))
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "palette.png")
    out = load_image(tmp_path / "palette.png")
    assert out.shape == (3, 3, 4)
    assert out[:, 2, 3].tolist() == [200, 100, 50] and out[:, 0, 0].tolist() == [0, 0, 0]


def test_load_image_16_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    image.save(tmp_path / "deep.png")
    out = load_image(tmp_path / "deep.png")
    assert out.dtype == torch.uint8 and out.shape == (3, 2, 2)
    assert out[0].tolist() == [[0, 128], [255, 4]]  # round(v * 255 / 65535)
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])


def test_load_image_cmyk_jpeg_webp_and_resize(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    out = load_image(tmp_path / "cmyk.jpg")
    assert out.dtype == torch.uint8 and out.shape == (3, 6, 8)
    assert (out[:, 3, 4].int() - torch.tensor([255, 0, 0])).abs().max() <= 8

    Image.new("RGB", (10, 6), (10, 20, 30)).save(tmp_path / "image.webp", lossless=True)
    out = load_image(tmp_path / "image.webp")
    assert out.shape == (3, 6, 10) and out[:, 0, 0].tolist() == [10, 20, 30]
    resized = load_image(tmp_path / "image.webp", size=4)
    assert resized.dtype == torch.uint8 and resized.shape == (3, 4, 4)
    assert resized[:, 2, 2].tolist() == [10, 20, 30]  # a flat image stays flat

    Image.fromarray(np.full((5, 7), 99, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert load_image(tmp_path / "deep.png", size=3).shape == (3, 3, 3)


def test_load_image_errors_name_the_file(tmp_path):
    jpeg = write_image(tmp_path / "full.jpg", size=(32, 32), quality=90)
    data = jpeg.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    text = write_text(tmp_path / "notes.png", "not an image")
    missing = tmp_path / "missing.png"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path, reason in (
        (truncated, "could not be decoded"),
        (text, "could not be decoded"),
        (missing, "does not exist"),
        (empty, "is empty (0 bytes): copy or extract it again"),
    ):
        with pytest.raises(ImageDecodeError) as info:
            load_image(path)
        assert str(path) in str(info.value) and reason in str(info.value)


@pytest.mark.parametrize("quality", [50, 75, 90])
def test_jpeg_quality_estimate(tmp_path, quality):
    path = write_image(tmp_path / "q.jpg", size=(16, 16), quality=quality)
    assert image_format(path) == ("JPEG", quality)
    with Image.open(path) as image:
        assert estimate_jpeg_quality(image) == quality


def test_image_format_of_png(tmp_path):
    assert image_format(write_image(tmp_path / "a.png")) == ("PNG", None)


def test_crop_policies_resize_pad_and_centre_crop():
    import torch

    from data.images import fit_to_size

    image = torch.arange(3 * 40 * 80, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(3, 40, 80)
    assert fit_to_size(image, 32, "resize").shape == (3, 32, 32)
    padded = fit_to_size(image, 32, "pad")  # 80x40 -> 32x16, centred on black
    assert (
        padded.shape == (3, 32, 32)
        and padded[:, :8].max() == 0
        and padded[:, 24:].max() == 0
        and padded[:, 8:24].max() > 0
    )
    cropped = fit_to_size(image, 32, "center-crop")  # no resampling: the central window itself
    assert torch.equal(cropped, image[:, 4:36, 24:56])
    small = fit_to_size(image[:, :10, :10], 32, "center-crop")
    assert torch.equal(small[:, 11:21, 11:21], image[:, :10, :10]) and small[:, :11].max() == 0
    with pytest.raises(ValueError, match="data.crop"):
        fit_to_size(image, 32, "squash")


def test_decode_rgb_gives_load_images_pixels_without_importing_torch(tmp_path):
    """The decoder of the --check-images processes: the same pixels and errors as load_image, and no torch import."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from data.decoding import decode_rgb

    jpeg = write_image(tmp_path / "a.jpg", size=(40, 24), quality=90)
    for size in (None, 16):
        pixels = decode_rgb(jpeg, size)
        assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
        assert np.array_equal(load_image(jpeg, size).permute(1, 2, 0).numpy(), pixels)
    cache = tmp_path / "images_4.u8"
    np.arange(2 * 4 * 4 * 3, dtype=np.uint8).tofile(cache)
    write_text(tmp_path / "images_4.u8.json", json.dumps({"count": 2, "size": 4}))
    assert np.array_equal(decode_rgb(f"{cache}#1"), load_image(f"{cache}#1").permute(1, 2, 0).numpy())
    with pytest.raises(ImageDecodeError, match=r"holds 2 images; index 2 is out of range"):
        decode_rgb(f"{cache}#2")
    with pytest.raises(ImageDecodeError, match=r"notes\.png could not be decoded"):
        decode_rgb(write_text(tmp_path / "notes.png", "not an image"))
    probe = "import sys, data.decoding; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # a spawned worker imports it: torch would cost seconds in each
