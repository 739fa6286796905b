"""The data layer: CSV schema, image decoding, augmentations, dataset and samplers, protocols, validator,
indexer and demo data. Everything is written into tmp_path; images are a few pixels wide."""

import csv
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from common.cli import run
from data import build_index as bi
from data.dataset import CorruptImageError, SplitDataset, collate
from data.images import ImageDecodeError, estimate_jpeg_quality, image_format, load_image
from data.loader import EvalSampler, TrainSampler, build_loader
from data.make_demo import GENERATORS, make_demo
from data.protocols import Protocol, ProtocolError, load_protocol, require, resolve
from data.schema import SchemaError, load_table, read_table
from data.transforms import AUGMENTATIONS, apply_augment, build_augment
from data.validate import validate

COLUMNS = ["path", "label", "split", "forgery_type", "generator", "source_dataset", "video_id"]


def write_text(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_csv(path, rows, columns=COLUMNS):
    """Rows are dicts (missing keys written empty) or sequences in column order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns] if isinstance(row, dict) else row)
    return path


def write_image(path, value=0, size=(8, 8), fmt=None, **save_options):
    """An RGB image with a little structure (a ramp plus ``value``), so resizing and augmenting change it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    ramp = (np.arange(w * h * 3).reshape(h, w, 3) * 7 + value) % 256
    Image.fromarray(ramp.astype(np.uint8)).save(path, format=fmt, **save_options)
    return path


# --------------------------------------------------------------------------------------------------- schema


def test_read_table_columns_lines_and_extra_columns(tmp_path):
    text = 'path,label,split,camera\na.png,0,train,x\n"b,1.png",1,test,y\nc.png,1,val,"two\nlines"\nd.png,0,val,z\n'
    csv_path = write_text(tmp_path / "s.csv", text)
    table, problems = read_table(csv_path)
    assert problems == []
    assert len(table) == 4
    assert table.column_names == ["path", "label", "split", "camera"]
    assert table.column("camera") == ["x", "y", "two\nlines", "z"]  # extra columns are kept
    assert table.labels.tolist() == [0, 1, 1, 0]
    assert table.line(3) == 6  # after a quoted value spanning lines 4 and 5
    assert table.root == tmp_path.resolve()
    assert table.resolve(1) == tmp_path.resolve() / "b,1.png"
    assert [table.line(0), table.line(1)] == [2, 3]
    with pytest.raises(SchemaError, match="no column 'generator'"):
        table.column("generator")


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("path,split\na.png,train\n", "lacks the required column\\(s\\) label"),
        ("path,label,path\na.png,0,b.png\n", "repeats the column\\(s\\) path"),
        ("path,label,split\na.png,0,train\nb.png,1\n", "line 3 has 2 fields but the header has 3"),
    ],
    ids=["missing", "empty", "no-label", "duplicate-column", "field-count"],
)
def test_read_table_unusable_files(tmp_path, text, message):
    csv_path = tmp_path / "s.csv"
    if text is not None:
        write_text(csv_path, text)
    with pytest.raises(SchemaError, match=message) as info:
        read_table(csv_path)
    assert str(csv_path) in str(info.value)


def test_read_table_row_problems_name_their_lines(tmp_path):
    csv_path = write_text(
        tmp_path / "s.csv",
        "path,label,split\n"  # line 1
        "a.png,0,train\n"  # line 2: fine
        "b.png,2,train\n"  # line 3: bad label
        "c.png,fake,val\n"  # line 4: bad label
        "d.png,1,validation\n"  # line 5: unknown split, with a hint
        ",1,test\n"  # line 6: empty path
        "\n"  # line 7: blank, skipped
        "e.png,3,test\n",  # line 8: bad label after a blank line
    )
    table, problems = read_table(csv_path)
    found = sorted((p.line, p.kind) for p in problems)
    assert found == [(3, "bad label"), (4, "bad label"), (5, "unknown split"), (6, "empty path"), (8, "bad label")]
    assert all(p.severity == "error" for p in problems)
    assert table.labels.tolist() == [0, -1, -1, 1, 1, -1]
    assert table.line(5) == 8
    split_problem = next(p for p in problems if p.kind == "unknown split")
    assert "(write val)" in split_problem.message
    assert str(split_problem).startswith("error: line 5: split 'validation'")
    assert "'fake' is not 0 (real) or 1 (fake)" in str(problems[1])

    with pytest.raises(SchemaError) as info:
        load_table(csv_path)
    message = str(info.value)
    assert "has 5 bad row(s)" in message
    for line in (3, 4, 5, 6, 8):
        assert f"line {line}:" in message


def test_load_table_accepts_a_clean_csv(tmp_path):
    csv_path = write_text(tmp_path / "s.csv", "\ufeffpath , label\na.png,1\n")  # BOM and padded names
    table = load_table(csv_path, root=tmp_path)
    assert table.column("path") == ["a.png"] and table.labels.tolist() == [1]
    with pytest.raises(SchemaError, match="is not a folder"):
        load_table(csv_path, root=tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------------- images


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
    for path, reason in (
        (truncated, "could not be decoded"),
        (text, "could not be decoded"),
        (missing, "does not exist"),
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


# ------------------------------------------------------------------------------------------------ augmentation


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


# ------------------------------------------------------------------------------------------- dataset + loader


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


def test_train_sampler_is_a_function_of_seed_and_epoch():
    sampler = TrainSampler(10, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert sorted(p for p, _ in first) == list(range(10))  # a permutation
    assert len({s for _, s in first}) == 10
    again = TrainSampler(10, seed=3)
    again.set_epoch(1)
    assert list(again) == first
    again.set_epoch(2)
    assert list(again) != first
    other_seed = TrainSampler(10, seed=4)
    other_seed.set_epoch(1)
    assert list(other_seed) != first

    sampler.set_epoch(1, skip=4)
    assert len(sampler) == 6
    assert list(sampler) == first[4:]


def test_train_sampler_ranks_cover_the_padded_epoch():
    whole = TrainSampler(11, seed=0)
    whole.set_epoch(5)
    full = list(whole)
    padded = full + full[:1]  # 11 rows -> 12, wrapped as DistributedSampler does
    ranks = [TrainSampler(11, seed=0, rank=r, world_size=2) for r in (0, 1)]
    shares = []
    for sampler in ranks:
        sampler.set_epoch(5)
        assert len(sampler) == 6
        shares.append(list(sampler))
    assert shares[0] == padded[0::2] and shares[1] == padded[1::2]
    ranks[1].set_epoch(5, skip=2)
    assert list(ranks[1]) == shares[1][2:]


def test_balanced_sampler_draws_classes_equally():
    labels = np.array([0] * 1800 + [1] * 200)
    balanced = TrainSampler(2000, seed=0, labels=labels)
    drawn = np.array([p for p, _ in balanced])
    assert len(drawn) == 2000
    fake_share = labels[drawn].mean()
    assert abs(fake_share - 0.5) < 0.05
    plain = np.array([p for p, _ in TrainSampler(2000, seed=0)])
    assert labels[plain].mean() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="empty"):
        TrainSampler(0, seed=0)


def test_eval_sampler_covers_every_row_once():
    shares = [list(EvalSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(sum(shares, [])) == list(range(10))
    assert [len(EvalSampler(10, rank=r, world_size=3)) for r in range(3)] == [4, 3, 3]


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


# ------------------------------------------------------------------------------------------------- protocols

# (path, label, split, forgery_type, generator, source_dataset); row i is line i + 2.
PROTOCOL_ROWS = [
    ("A/r0.png", 0, "train", "real", "real", "A"),  # 0
    ("A/r1.png", 0, "train", "real", "real", "A"),  # 1
    ("A/g1a.png", 1, "train", "EFS", "g1", "A"),  # 2
    ("A/g2a.png", 1, "train", "AM", "g2", "A"),  # 3
    ("A/r2.png", 0, "val", "real", "real", "A"),  # 4
    ("A/g1b.png", 1, "val", "EFS", "g1", "A"),  # 5
    ("A/g2b.png", 1, "val", "AM", "g2", "A"),  # 6
    ("A/r3.png", 0, "test", "real", "real", "A"),  # 7
    ("A/g1c.png", 1, "test", "EFS", "g1", "A"),  # 8
    ("A/g2c.png", 1, "test", "AM", "g2", "A"),  # 9
    ("B/r0.png", 0, "train", "real", "real", "B"),  # 10
    ("B/g3a.png", 1, "train", "FS", "g3", "B"),  # 11
    ("B/g4a.png", 1, "train", "FS", "g4", "B"),  # 12
    ("B/r1.png", 0, "val", "real", "real", "B"),  # 13
    ("B/g3b.png", 1, "val", "FS", "g3", "B"),  # 14
    ("B/g4b.png", 1, "val", "FS", "g4", "B"),  # 15
    ("B/r2.png", 0, "test", "real", "real", "B"),  # 16
    ("B/r3.png", 0, "test", "real", "real", "B"),  # 17
    ("B/g3c.png", 1, "test", "FS", "g3", "B"),  # 18
    ("B/g4c.png", 1, "test", "FS", "g4", "B"),  # 19
    ("B/g5c.png", 1, "test", "FS", "g5", "B"),  # 20: a generator seen only in test (no fold)
]
ALL_TEST = [7, 8, 9, 16, 17, 18, 19, 20]


@pytest.fixture
def protocol_table(tmp_path):
    return load_table(write_csv(tmp_path / "p.csv", PROTOCOL_ROWS, COLUMNS[:-1]))


def rows_of(array):
    return sorted(np.asarray(array).tolist())


def groups_of(resolved):
    return {name: rows_of(rows) for name, rows in resolved.groups.items()}


def test_intra_protocol(protocol_table):
    resolved = resolve("intra", protocol_table)
    assert resolved.fold is None
    assert rows_of(resolved.train) == [0, 1, 2, 3, 10, 11, 12]
    assert rows_of(resolved.val) == [4, 5, 6, 13, 14, 15]
    assert rows_of(resolved.test) == ALL_TEST
    assert groups_of(resolved) == {
        "overall": ALL_TEST,
        "forgery_type=AM": [7, 9],
        "forgery_type=EFS": [7, 8],
        "forgery_type=FS": [16, 17, 18, 19, 20],
        "generator=g1": [7, 8],  # its test fakes + source A's real test rows only
        "generator=g2": [7, 9],
        "generator=g3": [16, 17, 18],
        "generator=g4": [16, 17, 19],
        "generator=g5": [16, 17, 20],
        "source_dataset=A": [7, 8, 9],
        "source_dataset=B": [16, 17, 18, 19, 20],
    }
    with pytest.raises(ProtocolError, match="has no folds; drop --fold g1"):
        resolve("intra", protocol_table, fold="g1")


def test_cross_generator_protocol(protocol_table):
    resolved = resolve("cross-generator", protocol_table, fold="g1")
    assert resolved.fold == "g1"
    assert rows_of(resolved.train) == [0, 1, 2]  # g1's train fakes + the real train rows of its source dataset A
    assert rows_of(resolved.val) == [4, 5]
    every_real = resolve("cross-generator", protocol_table, fold="g1", reals="all")
    assert rows_of(every_real.train) == [0, 1, 2, 10] and rows_of(every_real.val) == [4, 5, 13]
    assert rows_of(resolved.test) == ALL_TEST
    assert groups_of(resolved) == {
        "overall": ALL_TEST,
        "generator=g1": [7, 8],
        "generator=g2": [7, 9],
        "generator=g3": [16, 17, 18],
        "generator=g4": [16, 17, 19],
        "generator=g5": [16, 17, 20],
    }


def test_cross_forgery_protocol(protocol_table):
    resolved = resolve("cross-forgery", protocol_table, fold="FS")
    assert rows_of(resolved.train) == [10, 11, 12]  # FS fakes come from B only: B's reals (data.reals: matched)
    assert rows_of(resolved.val) == [13, 14, 15]
    assert rows_of(resolve("cross-forgery", protocol_table, fold="FS", reals="all").train) == [0, 1, 10, 11, 12]
    assert rows_of(resolved.test) == ALL_TEST
    assert set(resolved.groups) == {"overall", "forgery_type=AM", "forgery_type=EFS", "forgery_type=FS"}
    assert rows_of(resolved.groups["forgery_type=EFS"]) == [7, 8]


def test_cross_dataset_protocol(protocol_table):
    resolved = resolve("cross-dataset", protocol_table, fold="B")
    assert rows_of(resolved.train) == [10, 11, 12]
    assert rows_of(resolved.val) == [13, 14, 15]
    assert rows_of(resolved.test) == ALL_TEST
    assert groups_of(resolved) == {
        "overall": ALL_TEST,
        "source_dataset=A": [7, 8, 9],
        "source_dataset=B": [16, 17, 18, 19, 20],
    }


def test_protocol_fold_errors(protocol_table):
    with pytest.raises(
        ProtocolError, match=r"cross-generator needs --fold: one of g1, g2, g3, g4 \(values of 'generator'\)"
    ):
        resolve("cross-generator", protocol_table)
    with pytest.raises(ProtocolError, match=r"has no fold 'g9'.*choose one of g1, g2, g3, g4"):
        resolve("cross-generator", protocol_table, fold="g9")
    with pytest.raises(ProtocolError, match="choose one of AM, EFS, FS"):
        resolve("cross-forgery", protocol_table, fold="real")  # reals are no fold
    with pytest.raises(ProtocolError, match="unknown protocol 'nope'"):
        resolve("nope", protocol_table)


def test_protocol_on_missing_columns(tmp_path, protocol_table):
    no_generator = load_table(write_csv(tmp_path / "q.csv", [r[:4] for r in PROTOCOL_ROWS], COLUMNS[:4]))
    with pytest.raises(ProtocolError, match="folds by column 'generator'"):
        resolve("cross-generator", no_generator, fold="g1")
    custom = Protocol(
        "custom",
        {"train": {"split": "train", "real": {"camera": "x"}}, "val": {"split": "val"}, "test": {"split": "test"}},
    )
    with pytest.raises(ProtocolError, match=r"protocol custom \(train\) filters on column 'camera'"):
        resolve(custom, protocol_table)
    leaky = Protocol("leaky", {"train": {}, "val": {"split": "val"}, "test": {"split": "test"}})
    with pytest.raises(ProtocolError, match=r"8 test row\(s\) are also training/validation rows \(e\.g\. line 9 "):
        resolve(leaky, protocol_table)


def test_protocol_from_a_yaml_file(tmp_path, protocol_table):
    path = write_text(
        tmp_path / "only-a.yaml",
        "train: {split: train, source_dataset: A}\n"
        "val: {split: val}\n"
        "test: {split: test, fake: {generator: [g1, g3]}}\n"
        "report: [generator]\n",
    )
    resolved = resolve(load_protocol(path), protocol_table)
    assert resolved.protocol == "only-a"
    assert rows_of(resolved.train) == [0, 1, 2, 3]
    assert rows_of(resolved.test) == [7, 8, 16, 17, 18]
    assert groups_of(resolved) == {"overall": [7, 8, 16, 17, 18], "generator=g1": [7, 8], "generator=g3": [16, 17, 18]}
    write_text(tmp_path / "bad.yaml", "train: {}\nval: {}\ntest: {}\nfolds: 3\n")
    with pytest.raises(ProtocolError, match="unknown key"):
        load_protocol(tmp_path / "bad.yaml")
    write_text(tmp_path / "short.yaml", "train: {}\nval: {}\n")
    with pytest.raises(ProtocolError, match="lacks the 'test' filter"):
        load_protocol(tmp_path / "short.yaml")


def test_require_empty_and_one_class_subsets(tmp_path):
    rows = [("a.png", 0, "train"), ("b.png", 1, "train"), ("c.png", 0, "test"), ("d.png", 0, "test")]
    table = load_table(write_csv(tmp_path / "r.csv", rows, COLUMNS[:3]))
    resolved = resolve("intra", table)
    assert rows_of(require(resolved, "train", table)) == [0, 1]
    with pytest.raises(SchemaError, match="protocol intra: the val subset of .* is empty"):
        require(resolved, "val", table)
    with pytest.raises(SchemaError, match="the test subset of .* holds only real images; it needs both classes"):
        require(resolved, "test", table)
    assert rows_of(require(resolved, "test", table, both_classes=False)) == [2, 3]


# -------------------------------------------------------------------------------------------------- validate


def clean_rows(root, fake_format="PNG", real_options=None, fake_options=None):
    """Two real and two fake images per split, each its own video; real PNGs, fakes in ``fake_format``."""
    rows = []
    for split in ("train", "val", "test"):
        for label in (0, 1):
            for k in range(2):
                fmt, options = ("PNG", real_options or {}) if label == 0 else (fake_format, fake_options or {})
                name = f"{split}_{label}_{k}.{fmt.lower().replace('jpeg', 'jpg')}"
                write_image(root / name, value=40 * k + label, size=(16, 16), fmt=fmt, **options)
                rows.append(
                    {"path": name, "label": label, "split": split, "source_dataset": "A", "video_id": f"v-{name}"}
                )
    return rows


def run_validate(csv_path, **options):
    out = io.StringIO()
    status = validate(csv_path, out=out, **options)
    return status, out.getvalue()


def test_validate_clean_csv(tmp_path):
    csv_path = write_csv(tmp_path / "s.csv", clean_rows(tmp_path))
    status, text = run_validate(csv_path, check_images=True)
    assert status == 0
    assert "s.csv: 12 rows" in text
    assert "total: 6 real, 6 fake" in text
    assert re.search(r"^train\s+A\s+2\s+2$", text, re.M)
    assert "real files (6 of 6 checked): PNG 100%" in text
    assert "0 error(s), 0 warning(s): ok for training" in text


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ({"path": "missing.png", "label": 1, "split": "test"}, "error: line 14: missing.png does not exist"),
        (
            {"path": "../x.png", "label": 1, "split": "test"},
            "error: line 14: path '../x.png' points outside the data root",
        ),
        (
            {"path": "train_0_0.png", "label": 0, "split": "test"},
            "error: line 14: train_0_0.png repeats line 2 (in split train there, test here",
        ),
        (
            {"path": "new.png", "label": 1, "split": "val", "video_id": "v-test_0_0.png"},
            "error: line 14: video 'v-test_0_0.png' is in split test (line 10) and val",
        ),
        (
            {"path": "new.png", "label": "fake", "split": "test"},
            "error: line 14: label 'fake' is not 0 (real) or 1 (fake)",
        ),
    ],
    ids=["missing-file", "escaping-path", "duplicate-across-splits", "video-in-two-splits", "bad-label"],
)
def test_validate_errors_name_the_line(tmp_path, bad_row, message):
    rows = clean_rows(tmp_path)  # lines 2..13; the bad row is line 14
    write_image(tmp_path / "new.png")
    status, text = run_validate(write_csv(tmp_path / "s.csv", [*rows, bad_row]))
    assert status == 1, text
    assert message in text
    assert "training cannot proceed" in text


def test_validate_missing_csv_and_duplicate_within_split(tmp_path):
    status, text = run_validate(tmp_path / "none.csv")
    assert status == 1 and "does not exist" in text
    rows = clean_rows(tmp_path)
    status, text = run_validate(write_csv(tmp_path / "s.csv", [*rows, dict(rows[0])]))
    assert status == 0  # the same file twice in one split: a warning, not a leak
    assert "warning: line 14: train_0_0.png repeats line 2" in text


def test_validate_check_images_finds_a_corrupt_file(tmp_path):
    rows = clean_rows(tmp_path)
    (tmp_path / rows[3]["path"]).write_bytes(b"\xff\xd8 not really a jpeg")
    csv_path = write_csv(tmp_path / "s.csv", rows)
    assert run_validate(csv_path)[0] == 0  # the headers alone are not decoded
    status, text = run_validate(csv_path, check_images=True)
    assert status == 1
    assert re.search(r"error: line 5: image file .*train_1_1\.png could not be decoded", text)


def test_validate_warns_about_format_shortcuts(tmp_path):
    csv_path = write_csv(
        tmp_path / "a" / "s.csv", clean_rows(tmp_path / "a", fake_format="JPEG", fake_options={"quality": 90})
    )
    status, text = run_validate(csv_path)
    assert status == 0
    assert "warning: real and fake images differ in file format (real: PNG 100%; fake: JPEG 100%)" in text
    assert "fake files (6 of 6 checked): JPEG 100%; JPEG quality median 90 (min 90, max 90)" in text

    rows = []
    for row in clean_rows(tmp_path / "b", fake_format="JPEG", fake_options={"quality": 60}):
        if row["label"] == 0:  # reals as JPEG too, but at quality 95
            jpg = row["path"].replace(".png", ".jpg")
            write_image(tmp_path / "b" / jpg, size=(16, 16), quality=95)
            row = {**row, "path": jpg}
        rows.append(row)
    status, text = run_validate(write_csv(tmp_path / "b" / "s.csv", rows))
    assert status == 0
    assert "file format" not in text
    assert "warning: real and fake JPEGs differ in quality (median 95 vs 60)" in text


# ----------------------------------------------------------------------------------------------- build_index

FULL_PATTERN = "{source_dataset}/{split}/{forgery_type}/{generator}/{video_id}/*"


def touch(root, *relatives):
    for relative in relatives:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")


def test_build_index_from_a_full_pattern(tmp_path):
    touch(
        tmp_path,
        "DS/train/real/real/vid1/a.png",
        "DS/train/real/real/vid1/b.JPG",
        "DS/test/FS/swapper/vid2/b.png",
        "DS/validation/AM/editor/vid3/c.webp",
        "DS/test/FS/swapper/vid2/notes.txt",
        "DS/test/FS/too-shallow.png",
    )
    rows, columns, skipped = bi.build_index(tmp_path, FULL_PATTERN)
    assert columns == COLUMNS
    assert rows == [
        {
            "path": "DS/test/FS/swapper/vid2/b.png",
            "label": 1,
            "split": "test",
            "forgery_type": "FS",
            "generator": "swapper",
            "source_dataset": "DS",
            "video_id": "vid2",
        },
        {
            "path": "DS/train/real/real/vid1/a.png",
            "label": 0,
            "split": "train",
            "forgery_type": "real",
            "generator": "real",
            "source_dataset": "DS",
            "video_id": "vid1",
        },
        {
            "path": "DS/train/real/real/vid1/b.JPG",
            "label": 0,
            "split": "train",
            "forgery_type": "real",
            "generator": "real",
            "source_dataset": "DS",
            "video_id": "vid1",
        },
        {
            "path": "DS/validation/AM/editor/vid3/c.webp",
            "label": 1,
            "split": "val",
            "forgery_type": "AM",
            "generator": "editor",
            "source_dataset": "DS",
            "video_id": "vid3",
        },
    ]
    assert skipped == {"not an image": 1, "does not match the pattern": 1}


def test_build_index_label_folder_and_real_value(tmp_path):
    touch(tmp_path, "0/x/a.png", "1/y/b.png", "fake/z/c.png", "maybe/w/d.png")
    rows, columns, skipped = bi.build_index(
        tmp_path, "{label}/{video_id}/*", split_ratios=(1, 0, 0), group_by="video_id"
    )
    assert [(r["path"], r["label"], r["split"]) for r in rows] == [
        ("0/x/a.png", 0, "train"),
        ("1/y/b.png", 1, "train"),
        ("fake/z/c.png", 1, "train"),
    ]
    assert columns == ["path", "label", "split", "video_id"] and skipped == {"label not real/fake/0/1": 1}
    touch(tmp_path / "g", "pristine/a.png", "gan/b.png")
    rows, _, _ = bi.build_index(tmp_path / "g", "{generator}/*", real_value="pristine", split_ratios=(1, 1, 1))
    assert [(r["generator"], r["label"]) for r in rows] == [("gan", 1), ("pristine", 0)]


def grouped_tree(root):
    for generator in ("real", "g1", "g2"):
        for video in range(10):
            touch(root, *(f"{generator}/{generator}-v{video}/{frame}.png" for frame in range(3)))


def test_build_index_seeded_grouped_splits(tmp_path):
    grouped_tree(tmp_path)
    rows, columns, _ = bi.build_index(
        tmp_path, "{generator}/{video_id}/*", split_ratios=(0.6, 0.2, 0.2), group_by="video_id", seed=7
    )
    assert len(rows) == 90 and columns == ["path", "label", "split", "generator", "video_id"]
    video_split = {}
    for row in rows:
        assert video_split.setdefault(row["video_id"], row["split"]) == row["split"]  # one split per video
    for generator in ("real", "g1", "g2"):  # stratified: 6/2/2 of each generator's 10 videos
        splits = [s for v, s in video_split.items() if v.startswith(f"{generator}-")]
        assert (splits.count("train"), splits.count("val"), splits.count("test")) == (6, 2, 2)
    again, _, _ = bi.build_index(
        tmp_path, "{generator}/{video_id}/*", split_ratios=(0.6, 0.2, 0.2), group_by="video_id", seed=7
    )
    assert again == rows
    other, _, _ = bi.build_index(
        tmp_path, "{generator}/{video_id}/*", split_ratios=(0.6, 0.2, 0.2), group_by="video_id", seed=8
    )
    assert [r["split"] for r in other] != [r["split"] for r in rows]


def test_build_index_errors(tmp_path):
    touch(tmp_path, "g1/v1/a.png")
    with pytest.raises(bi.IndexError_, match=r"must capture \{label\}, \{forgery_type\} or \{generator\}"):
        bi.build_index(tmp_path, "{source_dataset}/{video_id}/*", split_ratios=(1, 1, 1))
    with pytest.raises(bi.IndexError_, match=r"no \{split\}: pass --split-ratios"):
        bi.build_index(tmp_path, "{generator}/{video_id}/*")
    with pytest.raises(bi.IndexError_, match="--group-by identity"):
        bi.build_index(tmp_path, "{generator}/{video_id}/*", split_ratios=(1, 1, 1), group_by="identity")
    with pytest.raises(bi.IndexError_, match="captures {generator} twice"):
        bi.build_index(tmp_path, "{generator}/{generator}/*", split_ratios=(1, 1, 1))
    with pytest.raises(bi.IndexError_, match="no image under"):
        bi.build_index(tmp_path, "{generator}/*", split_ratios=(1, 1, 1))
    with pytest.raises(bi.IndexError_, match="is not a folder"):
        bi.build_index(tmp_path / "nowhere", "{generator}/*", split_ratios=(1, 1, 1))


def test_build_index_cli(tmp_path, capsys):
    tree = tmp_path / "tree"
    touch(tree, "DS/train/real/real/vid1/a.png", "DS/test/FS/swapper/vid2/b.png")
    out = tmp_path / "out" / "splits.csv"
    assert bi.main([str(tree), "--pattern", FULL_PATTERN, "--out", str(out)]) == 0
    assert "wrote 2 rows (1 real, 1 fake)" in capsys.readouterr().out
    table = load_table(out, root=tree)
    assert table.column_names == COLUMNS
    assert table.labels.tolist() == [1, 0] and table.column("split") == ["test", "train"]

    grouped_tree(tree / "g")
    grouped = tmp_path / "grouped.csv"
    grouped_args = ["--pattern", "{generator}/{video_id}/*", "--split-ratios", "0.6,0.2,0.2", "--group-by", "video_id"]
    assert bi.main([str(tree / "g"), *grouped_args, "--out", str(grouped)]) == 0
    assert len(load_table(grouped, root=tree / "g")) == 90

    assert run(bi.main, [str(tree), "--pattern", "{source_dataset}/*", "--out", str(tmp_path / "x.csv")]) == 2
    assert "error: the pattern must capture" in capsys.readouterr().err
    assert (
        run(
            bi.main,
            [
                str(tree / "g"),
                "--pattern",
                "{generator}/{video_id}/*",
                "--split-ratios",
                "0.8,0.2",
                "--out",
                str(tmp_path / "x.csv"),
            ],
        )
        == 2
    )
    assert "--split-ratios must be three non-negative numbers" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


# -------------------------------------------------------------------------------------------------- make_demo


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """The demo set written twice with seed 0 and once with seed 1 (6 identities, 8 fakes per generator)."""
    root = tmp_path_factory.mktemp("demo")
    return {
        name: make_demo(root / name, seed=seed, identities=6, fakes_per_generator=8)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    }


def test_make_demo_contents(demos):
    table = load_table(demos["a"])
    assert len(table) == 2 * 6 * 4 + 6 * 2 * 4  # 4-frame videos: 6 real per dataset, 2 fake per generator
    assert set(table.column("generator")) == {"real", *GENERATORS}
    assert set(table.column("forgery_type")) == {"real", "EFS", "AM", "FS"}
    assert set(table.column("source_dataset")) == {"DemoFace-A", "DemoFace-B"}
    for generator, forgery, label in zip(table.column("generator"), table.column("forgery_type"), table.labels):
        assert label == (generator != "real") and (forgery == "real") == (generator == "real")
        if generator != "real":
            assert forgery == GENERATORS[generator]
    assert int((table.labels == 0).sum()) == 48 and int((table.labels == 1).sum()) == 48
    splits_of_video = {}
    for video, split in zip(table.column("video_id"), table.column("split")):
        splits_of_video.setdefault(video, set()).add(split)
    assert len(splits_of_video) == 24 and all(len(s) == 1 for s in splits_of_video.values())
    # every generator applied to both source datasets; identities (targets and donors) never cross splits
    made_from = {
        (g, d) for g, d, y in zip(table.column("generator"), table.column("source_dataset"), table.labels) if y
    }
    assert made_from == {(g, d) for g in GENERATORS for d in ("DemoFace-A", "DemoFace-B")}
    splits_of_person = {}
    for people, split in zip(table.column("identity"), table.column("split")):
        for person in people.split(";"):
            splits_of_person.setdefault(person, set()).add(split)
    assert all(len(s) == 1 for s in splits_of_person.values())
    assert any(";" in people for people in table.column("identity"))  # face swaps name both people

    # the frames of a video are one moving face: far closer to each other than to another video of the same class
    def pixels(row):
        return np.asarray(Image.open(table.resolve(row)), dtype=np.float64)

    same_video = np.abs(pixels(0) - pixels(1)).mean()
    other_video = np.abs(pixels(0) - pixels(4)).mean()
    assert table.column("video_id")[0] == table.column("video_id")[1] != table.column("video_id")[4]
    assert same_video < 0.5 * other_video
    for path in table.resolved_paths():
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (64, 64), "RGB")
    assert validate(demos["a"], out=io.StringIO()) == 0


def test_make_demo_is_seeded(demos):
    same, other = demos["b"], demos["c"]
    assert demos["a"].read_bytes() == same.read_bytes()
    paths = load_table(demos["a"]).column("path")
    for relative in (paths[0], paths[len(paths) // 2], paths[-1]):
        original = (demos["a"].parent / relative).read_bytes()
        assert original == (same.parent / relative).read_bytes()
        assert original != (other.parent / relative).read_bytes()
    assert demos["a"].read_bytes() != other.read_bytes()


# ------------------------------------------------ issue 10: native-resolution perturbations and crop policies
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


def test_perturbations_and_jpeg_blur_augmentation_run_at_native_resolution(tmp_path):
    import torch
    from PIL import Image

    from data.dataset import SplitDataset
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
