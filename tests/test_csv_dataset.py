"""data/csv_dataset.py: samples of a split CSV's rows, extra targets, unreadable images (error or skip), seeded
augmentation, and native-resolution perturbations and crops."""

import re

import numpy as np
import pytest
import torch
from data_files import COLUMNS, write_csv, write_image

from data.csv_dataset import CorruptImageError, SplitDataset, collate
from data.images import load_image
from data.loader import build_loader
from data.schema import load_table


@pytest.fixture
def image_table(tmp_path):
    """12 PNGs (10x10, 6 real then 6 fake) and their CSV."""
    rows = []
    for i in range(12):
        write_image(tmp_path / "img" / f"{i:02d}.png", value=20 * i, size=(10, 10))
        rows.append({"path": f"img/{i:02d}.png", "label": int(i >= 6), "split": "train"})
    return load_table(write_csv(tmp_path / "s.csv", rows, ["path", "label", "split"]))


def test_dataset_samples(image_table):
    dataset = SplitDataset(image_table, [2, 5, 7, 11], size=8)
    assert len(dataset) == 4
    sample = dataset[2]
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 8, 8)
    assert int(sample["label"]) == 1 and int(sample["index"]) == 7
    assert torch.equal(sample["image"], load_image(image_table.resolve(7), 8))
    assert int(dataset[0]["label"]) == 0 and int(dataset[0]["index"]) == 2
    with pytest.raises(ValueError, match="on-error"):
        SplitDataset(image_table, [0], size=8, on_error="ignore")


def test_dataset_extra_targets(image_table):
    level2 = np.arange(12) - 1  # -1 for row 0
    dataset = SplitDataset(image_table, [0, 3], size=8, targets={"level2": level2})
    assert int(dataset[0]["level2"]) == -1 and int(dataset[1]["level2"]) == 2


def test_corrupt_image_error_or_skip(image_table):
    corrupt = image_table.resolve(4)
    corrupt.write_bytes(b"garbage")
    failing = SplitDataset(image_table, range(12), size=8, on_error="error")
    with pytest.raises(CorruptImageError, match=re.escape(str(corrupt))):
        failing[4]

    skipping = SplitDataset(image_table, range(12), size=8, on_error="skip")
    samples = [skipping[i] for i in range(3, 7)]
    assert samples[1] is None
    batch = collate(samples)
    assert batch["skipped"] == 1
    assert batch["image"].shape == (3, 3, 8, 8) and batch["image"].dtype == torch.uint8
    assert batch["index"].tolist() == [3, 5, 6] and batch["label"].tolist() == [0, 0, 1]
    empty = collate([None, None])
    assert empty["skipped"] == 2 and empty["image"].shape[0] == 0 and empty["label"].shape == (0,)

    loader = build_loader(skipping, batch_size=5, train=False, workers=0)
    batches = list(loader)
    assert [len(b["index"]) for b in batches] == [4, 5, 2]
    assert sum(b["skipped"] for b in batches) == 1
    assert sorted(torch.cat([b["index"] for b in batches]).tolist()) == [i for i in range(12) if i != 4]


def test_augmentation_is_a_pure_function_of_the_sample_seed(image_table):
    spec = [{"name": "random-resized-crop", "scale": [0.3, 1.0]}, {"name": "color-jitter", "p": 1.0}, {"name": "hflip"}]
    dataset = SplitDataset(image_table, range(12), size=8, augment=spec)
    state = torch.get_rng_state()
    first = dataset[(3, 1234)]["image"]
    assert torch.equal(torch.get_rng_state(), state)  # __getitem__ leaves the global RNG alone
    torch.rand(1000)  # draws in between change nothing
    second = dataset[(3, 1234)]["image"]
    assert torch.equal(first, second)
    assert first.dtype == torch.uint8 and first.shape == (3, 8, 8)
    others = [dataset[(3, seed)]["image"] for seed in (1, 2, 3, 4)]
    assert any(not torch.equal(first, other) for other in others)


def test_perturbations_and_jpeg_blur_augmentation_run_at_native_resolution(tmp_path):
    import torch
    from PIL import Image

    from data.csv_dataset import SplitDataset
    from data.images import fit_to_size, load_image
    from data.perturb import parse_perturbations

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    table = load_table(write_csv(tmp_path / "t.csv", [("a.png", 1, "test", "FS", "g", "A")], COLUMNS[:-1]))
    native = load_image(tmp_path / "a.png")
    blur = parse_perturbations("blur:2.0")[0]
    perturbed = SplitDataset(table, [0], size=32, perturb=blur)[0]["image"]
    assert torch.equal(perturbed, fit_to_size(blur(native, 0), 32))  # blurred at 128x96, then resized
    assert not torch.equal(perturbed, blur(load_image(tmp_path / "a.png", 32), 0))  # not the old resized-then-blurred
    resized = parse_perturbations("resize:0.5")[0](native, 0)
    assert resized.shape == native.shape  # non-square images keep their shape
    augmented = SplitDataset(
        table, [0], size=32, augment=[{"name": "jpeg", "p": 1.0, "quality": [40, 40]}, {"name": "hflip", "p": 0.0}]
    )
    assert augmented.native_augment is not None and augmented.native
    assert augmented[(0, 5)]["image"].shape == (3, 32, 32)
    centred = SplitDataset(table, [0], size=32, crop="center-crop")[0]["image"]
    assert torch.equal(centred, native[:, 32:64, 48:80])
    assert not SplitDataset(table, [0], size=32).native  # nothing to do at native size: the fast resized decode
