"""Dataset builders on fixture trees that use each dataset's real file names, and the identity checks they feed."""

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest
from csv_rows import read_rows, write_rows
from PIL import Image

from common.atomic import DiskFullError
from common.cli import run
from common.errors import UserError
from data import datasets
from data.build_index import build_index
from data.validate import validate

SPLITS_DIR = Path(datasets.__file__).resolve().parent / "splits" / "ffpp"
# sha256 of the lists as fetched from ondyari/FaceForensics (dataset/splits, commit b952e41): they must never drift.
FFPP_SHA256 = {
    "train": "e59386911255e6fb0a79a7808ec2210536b8c0474268342694c4bca766d1b347",
    "val": "b48cc511f66938e05356aaa9c67e150b1e3638c355db3d745225b0022884b36e",
    "test": "886f5a0da623c25820692e0d8dc33d197ddb1db527a7f1cfcb9bcbca60fe4f40",
}


@pytest.fixture(scope="module")
def png_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("png") / "x.png"
    Image.new("RGB", (8, 8), (100, 50, 20)).save(path)
    return path.read_bytes()


def crops(root: Path, folder: str, png: bytes, frames=(0, 10)) -> None:
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        (target / f"f{frame:06d}_0.png").write_bytes(png)


# ----------------------------------------------------------------------------------------------- FF++
def official_pairs() -> dict[str, list[list[str]]]:
    return {split: json.loads((SPLITS_DIR / f"{split}.json").read_text()) for split in ("train", "val", "test")}


def test_shipped_ffpp_lists_are_the_official_ones():
    pairs = official_pairs()
    assert [len(pairs[s]) for s in ("train", "val", "test")] == [360, 70, 70]
    ids = [i for split in pairs.values() for pair in split for i in pair]
    assert len(ids) == len(set(ids)) == 1000 and set(ids) == {f"{i:03d}" for i in range(1000)}
    # First pairs of each official list (ondyari/FaceForensics dataset/splits/*.json).
    assert (
        pairs["train"][0] == ["071", "054"] and pairs["val"][0] == ["720", "672"] and pairs["test"][0] == ["953", "974"]
    )
    assert (SPLITS_DIR / "README.md").is_file()
    for split, digest in FFPP_SHA256.items():
        assert hashlib.sha256((SPLITS_DIR / f"{split}.json").read_bytes()).hexdigest() == digest, split


@pytest.fixture(scope="module")
def ffpp_root(tmp_path_factory, png_bytes) -> Path:
    root = tmp_path_factory.mktemp("ffpp")
    for split in official_pairs().values():
        for first, second in split:
            for video in (first, second):
                crops(root, f"original_sequences/youtube/c23/videos/{video}", png_bytes, frames=(0,))
            for method in ("Deepfakes", "Face2Face"):
                for target, source in ((first, second), (second, first)):
                    crops(root, f"manipulated_sequences/{method}/c23/videos/{target}_{source}", png_bytes, frames=(0,))
    crops(root, "original_sequences/actors/c23/videos/01__walking_outside", png_bytes, frames=(0,))
    crops(
        root,
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking_outside__YVGY8LOK",
        png_bytes,
        frames=(0,),
    )
    return root


def test_ffpp_rows_follow_the_official_lists_row_for_row(ffpp_root, tmp_path, capsys):
    out = tmp_path / "ffpp.csv"
    assert run(datasets.main, ["ffpp", str(ffpp_root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "video counts match the published counts" in printed
    rows = read_rows(out)
    by_video = {r["video_id"]: r for r in rows}
    for split, pairs in official_pairs().items():
        for first, second in pairs:
            for video in (first, second):
                row = by_video[f"original_sequences/youtube/c23/videos/{video}"]
                assert (row["split"], row["label"], row["generator"], row["identity"]) == (split, "0", "real", video)
            for target, source in ((first, second), (second, first)):
                row = by_video[f"manipulated_sequences/Deepfakes/c23/videos/{target}_{source}"]
                assert (row["split"], row["label"], row["forgery_type"], row["identity"]) == (
                    split,
                    "1",
                    "FS",
                    f"{target};{source}",
                )
                assert by_video[f"manipulated_sequences/Face2Face/c23/videos/{target}_{source}"]["forgery_type"] == "FR"
    counts = {}
    for row in rows:
        if row["source_dataset"] == "FF++" and row["generator"] in ("real", "Deepfakes"):
            counts[(row["generator"], row["split"])] = counts.get((row["generator"], row["split"]), 0) + 1
    assert counts == {
        (g, s): n for g in ("real", "Deepfakes") for s, n in (("train", 720), ("val", 140), ("test", 140))
    }
    dfd = [r for r in rows if "actors" in r["path"] or "DeepFakeDetection" in r["path"]]
    assert {(r["split"], r["label"]) for r in dfd} == {("test", "0"), ("test", "1")}
    assert rows[0]["frame"] == "0" and rows[0]["face_index"] == "0"
    # The official split keeps every person on one side: the validator finds no identity leak.
    report = tmp_path / "report.txt"
    with open(report, "w") as handle:
        validate(out, ffpp_root, out=handle, format_sample=10)
    assert "identity '" not in report.read_text() and "0 error(s)" in report.read_text()


def test_ffpp_wrong_compression_is_one_sentence(ffpp_root, capsys):
    assert run(datasets.main, ["ffpp", str(ffpp_root), "--compression", "c40", "--out", str(ffpp_root / "x.csv")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "original_sequences/youtube/c40/videos" in error and error.count("\n") == 1


def test_ffpp_missing_video_is_an_error_unless_allowed(tmp_path, png_bytes, capsys):
    root = tmp_path / "partial"
    for first, _ in official_pairs()["train"][:3]:
        crops(root, f"original_sequences/youtube/c23/videos/{first}", png_bytes)
    assert run(datasets.main, ["ffpp", str(root)]) == 1
    assert "have no crop folder" in capsys.readouterr().err
    assert run(datasets.main, ["ffpp", str(root), "--allow-missing"]) == 0
    printed = capsys.readouterr().out
    assert (
        "skipped 997 listed video(s)" in printed
        and "count differs from the published one: real train: 3 videos" in printed
    )


# ----------------------------------------------------------------------------------------------- Celeb-DF-v2
@pytest.fixture
def celebdf_root(tmp_path, png_bytes) -> Path:
    root = tmp_path / "celebdf"
    for folder in (
        "Celeb-real/id0_0000",
        "Celeb-real/id1_0000",
        "Celeb-real/id2_0001",
        "Celeb-real/id4_0002",
        "YouTube-real/00000",
        "YouTube-real/00001",
        "YouTube-real/00002",
        "Celeb-synthesis/id0_id1_0000",
        "Celeb-synthesis/id2_id3_0000",
        "Celeb-synthesis/id4_id5_0001",
        "Celeb-synthesis/id6_id7_0003",
    ):
        crops(root, folder, png_bytes)
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00000.mp4\n1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"
    )
    return root


def test_celebdf_label_one_means_real_and_test_people_stay_out_of_training(celebdf_root, capsys):
    assert run(datasets.main, ["celebdf", str(celebdf_root)]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(celebdf_root / "celebdf.csv")
    videos = {r["video_id"]: r for r in rows}
    assert videos["YouTube-real/00000"]["label"] == "0" and videos["YouTube-real/00000"]["split"] == "test"
    assert videos["Celeb-real/id0_0000"]["label"] == "0" and videos["Celeb-synthesis/id0_id1_0000"]["label"] == "1"
    assert {v for v, r in videos.items() if r["split"] == "test"} == {
        "YouTube-real/00000",
        "Celeb-real/id0_0000",
        "Celeb-synthesis/id0_id1_0000",
    }
    assert "Celeb-real/id1_0000" not in videos  # id1 appears in a test video: left out of train/val by default
    assert "left out 1 non-test video" in printed and "count differs from the published one: test: " not in printed
    assert "test real: 2 videos, published 178" in printed
    assert (
        videos["Celeb-synthesis/id2_id3_0000"]["identity"] == "id2;id3"
        and videos["YouTube-real/00001"]["identity"] == ""
    )
    trainval = {r["split"] for r in rows if r["split"] != "test"}
    assert trainval <= {"train", "val"} and "train" in trainval
    # People joined through a swap land on one side: id2 (real) with id2_id3 (fake).
    assert videos["Celeb-real/id2_0001"]["split"] == videos["Celeb-synthesis/id2_id3_0000"]["split"]
    assert videos["Celeb-real/id4_0002"]["split"] == videos["Celeb-synthesis/id4_id5_0001"]["split"]
    assert (
        run(
            datasets.main,
            ["celebdf", str(celebdf_root), "--keep-test-identities", "--out", str(celebdf_root / "keep.csv")],
        )
        == 0
    )
    assert "Celeb-real/id1_0000" in {r["video_id"] for r in read_rows(celebdf_root / "keep.csv")}


def test_celebdf_in_deepfakebench_layout(tmp_path, png_bytes):
    # DeepfakeBench's crops live in Celeb-real/frames/<video>: the builder reads that layout too.
    root = tmp_path / "dfb-layout"
    for folder in (
        "Celeb-real/frames/id0_0000",
        "YouTube-real/frames/00000",
        "Celeb-synthesis/frames/id1_id2_0000",
        "Celeb-synthesis/frames/id3_id4_0000",
    ):
        crops(root, folder, png_bytes)
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id1_id2_0000.mp4\n")
    rows, _ = datasets.build("celebdf", root)
    split_of = {r["video_id"]: r["split"] for r in rows}
    assert split_of["YouTube-real/frames/00000"] == split_of["Celeb-synthesis/frames/id1_id2_0000"] == "test"
    assert split_of["Celeb-real/frames/id0_0000"] in ("train", "val")


def test_celebdf_list_errors(celebdf_root, capsys):
    (celebdf_root / "List_of_testing_videos.txt").write_text("1 Celeb-synthesis/id0_id1_0000.mp4\n")
    assert run(datasets.main, ["celebdf", str(celebdf_root)]) == 1
    assert "labels Celeb-synthesis/id0_id1_0000 real but it lies in Celeb-synthesis" in capsys.readouterr().err
    (celebdf_root / "List_of_testing_videos.txt").write_text("real Celeb-real/id0_0000.mp4\n")
    assert run(datasets.main, ["celebdf", str(celebdf_root)]) == 1
    assert "line 1" in capsys.readouterr().err
    (celebdf_root / "List_of_testing_videos.txt").unlink()
    assert run(datasets.main, ["celebdf", str(celebdf_root)]) == 1
    assert "List_of_testing_videos.txt does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ DFDC, DFDCP, DeeperForensics
def test_dfdc_training_parts_and_test_labels(tmp_path, png_bytes):
    root = tmp_path / "dfdc"
    metadata = {
        "aaa.mp4": {"label": "REAL", "split": "train"},
        "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
        "ccc.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
        "ddd.mp4": {"label": "REAL", "split": "train"},
    }
    for name in metadata:
        crops(root, f"dfdc_train_part_0/{Path(name).stem}", png_bytes)
    (root / "dfdc_train_part_0" / "metadata.json").write_text(json.dumps(metadata))
    for name in ("tst1", "tst2"):
        crops(root, f"test/videos/{name}", png_bytes)
    (root / "test").mkdir(exist_ok=True)
    (root / "test" / "labels.csv").write_text("filename,label\ntst1.mp4,1\ntst2.mp4,0\n")
    rows, notes = datasets.build("dfdc", root, val_fraction=0.5)
    videos = {r["video_id"]: r for r in rows}
    assert (videos["test/videos/tst1"]["label"], videos["test/videos/tst1"]["split"]) == (1, "test")
    assert videos["test/videos/tst2"]["label"] == 0
    # A fake and its original are one group: same side of the train/val split.
    assert (
        videos["dfdc_train_part_0/aaa"]["split"]
        == videos["dfdc_train_part_0/bbb"]["split"]
        == videos["dfdc_train_part_0/ccc"]["split"]
    )
    assert "test: 2 videos, published 5000" in " ".join(notes)
    (root / "test" / "labels.csv").write_text("filename,label\ntst1.mp4,MAYBE\n")
    with pytest.raises(datasets.DatasetError, match="labels.csv line 2 has the label 'MAYBE'"):
        datasets.build("dfdc", root)


def test_dfdcp_and_deeperforensics(tmp_path, png_bytes):
    root = tmp_path / "dfdcp"
    entries = {
        "method_A/643049/643049_A/1080p/x1.mp4": {
            "label": "fake",
            "set": "train",
            "target_id": "643049",
            "source_id": "701",
        },
        "original_videos/643049/y1.mp4": {"label": "real", "set": "test"},
    }
    for name in entries:
        crops(root, str(Path(name).with_suffix("")), png_bytes)
    (root / "dataset.json").write_text(json.dumps(entries))
    rows, _ = datasets.build("dfdcp", root)
    videos = {r["video_id"]: r for r in rows}
    fake = videos["method_A/643049/643049_A/1080p/x1"]
    assert (fake["label"], fake["generator"], fake["identity"]) == (1, "method_A", "643049;701")
    assert videos["original_videos/643049/y1"]["split"] == "test"
    deeper = tmp_path / "deeper"
    for name, split in (("000_M101", "train"), ("001_W102", "val"), ("002_M103", "test")):
        crops(deeper, f"manipulated_videos/end_to_end/{name}", png_bytes)
        (deeper / "lists" / "splits").mkdir(parents=True, exist_ok=True)
        (deeper / "lists" / "splits" / f"{split}.txt").write_text(f"{name}.mp4\n")
    rows, _ = datasets.build("deeperforensics", deeper)
    assert {(r["video_id"].split("/")[-1], r["split"], r["identity"]) for r in rows} == {
        ("000_M101", "train", "000;M101"),
        ("001_W102", "val", "001;W102"),
        ("002_M103", "test", "002;M103"),
    }
    with pytest.raises(datasets.DatasetError, match="manipulated_videos/reenact"):
        datasets.build("deeperforensics", deeper, variant="reenact")


def test_deepfakebench_json_import(tmp_path, capsys):
    root = tmp_path / "dfb"
    data = {
        "FaceForensics++": {
            "FF-real": {
                "train": {
                    "c23": {
                        "000": {"label": "FF-real", "frames": ["ff/original/000/000.png", "ff/original/000/010.png"]}
                    }
                },
                "test": {"c23": {"953": {"label": "FF-real", "frames": ["ff/original/953/000.png"]}}},
            },
            "FF-DF": {"train": {"c23": {"000_003": {"label": "FF-DF", "frames": ["ff/df/000_003/000.png"]}}}},
        }
    }
    root.mkdir()
    (root / "FaceForensics++.json").write_text(json.dumps(data))
    out = root / "dfb.csv"
    assert (
        run(
            datasets.main, ["deepfakebench", str(root), "--json", str(root / "FaceForensics++.json"), "--out", str(out)]
        )
        == 0
    )
    rows = read_rows(out)
    assert [(r["path"], r["label"], r["split"], r["generator"]) for r in rows] == [
        ("ff/original/000/000.png", "0", "train", "real"),
        ("ff/original/000/010.png", "0", "train", "real"),
        ("ff/original/953/000.png", "0", "test", "real"),
        ("ff/df/000_003/000.png", "1", "train", "FF-DF"),
    ]
    assert run(datasets.main, ["deepfakebench", str(root)]) == 2
    assert "--json" in capsys.readouterr().err


def test_deepfakebench_json_repeats_test_as_val_once(tmp_path):
    # DeepfakeBench's Celeb-DF JSON lists the test videos again as val: each frame is kept once, in test,
    # and val is drawn again from the train videos.
    def frames(video):
        return {"label": "CelebDFv2_fake", "frames": [f"Celeb-DF-v2\\Celeb-synthesis\\frames\\{video}\\0.png"]}

    data = {
        "Celeb-DF-v2": {
            "CelebDFv2_fake": {
                "train": {f"id{i}_id{i + 1}_0000": frames(f"id{i}_id{i + 1}_0000") for i in range(0, 40, 2)},
                "val": {"id50_id51_0000": frames("id50_id51_0000")},
                "test": {"id50_id51_0000": frames("id50_id51_0000")},
            },
        }
    }
    (tmp_path / "Celeb-DF-v2.json").write_text(json.dumps(data))
    rows, notes = datasets.build("deepfakebench", tmp_path, json_path=tmp_path / "Celeb-DF-v2.json", val_fraction=0.2)
    assert len(rows) == 21 and len({r["path"] for r in rows}) == 21
    test_row = next(r for r in rows if "id50_id51" in r["path"])
    assert test_row["split"] == "test" and test_row["path"] == "Celeb-DF-v2/Celeb-synthesis/frames/id50_id51_0000/0.png"
    assert sum(r["split"] == "val" for r in rows) == 4 and sum(r["split"] == "train" for r in rows) == 16
    assert any("in two splits" in note for note in notes) and any("became val" in note for note in notes)


def test_builder_copies_extraction_settings_next_to_the_csv(celebdf_root):
    (celebdf_root / "extraction.json").write_text(json.dumps({"settings": {"frames": 32}}))
    assert run(datasets.main, ["celebdf", str(celebdf_root), "--out", str(celebdf_root / "cdf.csv")]) == 0
    assert json.loads((celebdf_root / "cdf.extraction.json").read_text())["settings"]["frames"] == 32


# ----------------------------------------------------------------------------------------------- identity checks
def test_validate_reports_identities_on_two_sides(tmp_path, png_bytes):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (tmp_path / name).write_bytes(png_bytes)
    rows = [
        {"path": "a.png", "label": 0, "split": "train", "identity": "071"},
        {"path": "b.png", "label": 1, "split": "test", "identity": "071;054"},
        {"path": "c.png", "label": 0, "split": "val", "identity": "054"},
        {"path": "d.png", "label": 1, "split": "train", "identity": "999;054"},
    ]
    csv_path = write_rows(tmp_path / "leak.csv", rows)
    report = tmp_path / "report.txt"
    with open(report, "w") as handle:
        status = validate(csv_path, None, out=handle, format_sample=10)
    text = report.read_text()
    assert status == 1
    assert "error: line 3: identity '071' is in split train (line 2) and test" in text
    assert "identity '054' is in split val (line 4) and test" in text
    assert "warning: line 4: identity '054' is in split train (line 5) and val" in text


def test_build_index_group_by_identity_keeps_swapped_people_together(tmp_path, png_bytes):
    for identity in ("071", "054", "071;054", "100", "101", "100;101", "200", "300", "400", "500"):
        for label in ("real", "fake"):
            folder = tmp_path / label / identity
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "0.png").write_bytes(png_bytes)
    rows, _, _ = build_index(
        tmp_path, "{generator}/{identity}/*", split_ratios=(0.5, 0.25, 0.25), group_by="identity", seed=3
    )
    split_of = {}
    for row in rows:
        for person in row["identity"].split(";"):
            assert split_of.setdefault(person, row["split"]) == row["split"], person
    assert len(set(split_of.values())) > 1


def test_train_config_records_the_extraction_settings_of_the_csv(celebdf_root):
    import train
    from data.faces import ExtractionSettings, extraction_settings_for

    settings = ExtractionSettings(frames=16, margin=1.25)
    csv_path = celebdf_root / "cdf.csv"
    csv_path.write_text("path,label\n")
    assert extraction_settings_for(csv_path) is None
    (celebdf_root / "extraction.json").write_text(json.dumps({"settings": settings.to_dict(), "versions": {}}))
    assert extraction_settings_for(csv_path) == settings.to_dict()
    (celebdf_root / "cdf.extraction.json").write_text(json.dumps({"settings": {**settings.to_dict(), "frames": 8}}))
    assert extraction_settings_for(csv_path)["frames"] == 8  # the builder's copy beside the CSV comes first
    config, *_ = train._resolve(train.get_args_parser().parse_args(["--csv", str(csv_path)]))
    assert ExtractionSettings.from_dict(config["data"]["face-extraction"]).frames == 8
    (celebdf_root / "cdf.extraction.json").write_text("{}")
    with pytest.raises(UserError, match="cdf.extraction.json is not an extraction record"):
        extraction_settings_for(csv_path)


# ----------------------------------------------------------------------------------------------- the registry
def test_a_registered_builder_is_a_dataset_of_the_command_line(tmp_path, png_bytes, request, capsys):
    """A new dataset is one function under one decorator: the command line lists it, runs it and writes its CSV."""
    request.addfinalizer(lambda: datasets.BUILDERS.pop("toy", None))  # the registry as it was after the test

    @datasets.register_builder("toy")
    def build_toy(root, options):
        videos = [
            datasets.Video("clips/a", 0, "train", "real", "real", "p1"),
            datasets.Video("clips/b", 1, "test", "toygan", "EFS", "p2"),
            datasets.Video("clips/c", 1, "test", "toygan", "EFS", "p3"),
        ]
        return datasets.rows_of_videos(root, videos, {}, f"Toy-{options.seed}", options)

    root = tmp_path / "toy"
    crops(root, "clips/a", png_bytes)
    crops(root, "clips/b", png_bytes, frames=(3,))
    assert "dfdc,dfdcp,ffpp,toy,wilddeepfake}" in datasets.get_args_parser().format_help()
    assert run(datasets.main, ["toy", str(root), "--seed", "7"]) == 1
    assert "1 of 3 listed videos have no crop folder" in capsys.readouterr().err
    assert run(datasets.main, ["toy", str(root), "--seed", "7", "--allow-missing"]) == 0
    assert "skipped 1 listed video(s) without a crop folder (--allow-missing): clips/c" in capsys.readouterr().out
    rows = read_rows(root / "toy.csv")
    assert [(r["path"], r["label"], r["split"], r["frame"], r["source_dataset"]) for r in rows] == [
        ("clips/a/f000000_0.png", "0", "train", "0", "Toy-7"),
        ("clips/a/f000010_0.png", "0", "train", "10", "Toy-7"),
        ("clips/b/f000003_0.png", "1", "test", "3", "Toy-7"),
    ]
    with pytest.raises(ValueError, match="already registered"):
        datasets.register_builder("toy")(build_toy)
    with pytest.raises(SystemExit):  # argparse's choices come from the registry
        datasets.main(["nosuch", str(root)])
    assert "invalid choice: 'nosuch' (choose from" in capsys.readouterr().err


def test_each_dataset_is_one_module_of_data_builders_and_data_datasets_reexports_them():
    """data/builders/: the shared machinery in base.py, one module per dataset holding its reader and its builder."""
    from data import builders
    from data.builders import base

    modules = {name: builder.__module__ for name, builder in builders.BUILDERS.items() if name != "toy"}
    assert modules == {
        "ffpp": "data.builders.ffpp",
        "celebdf": "data.builders.celebdf",
        "dfdc": "data.builders.dfdc",
        "dfdcp": "data.builders.dfdc",
        "deeperforensics": "data.builders.deeperforensics",
        "deepfakebench": "data.builders.deepfakebench",
        "df40": "data.builders.df40",
        "wilddeepfake": "data.builders.wilddeepfake",
        "celebdfpp": "data.builders.celebdfpp",
    }
    # the command line's module keeps the names that tests, tools and users import from it: the same objects
    for name in ("BUILDERS", "register_builder", "Video", "DatasetError", "BuildOptions", "build", "rows_of_videos"):
        assert getattr(datasets, name) is getattr(base, name)
    assert datasets.video_rows is base.video_rows and datasets.write_csv is base.write_csv
    folder = Path(builders.__file__).parent
    assert [path.name for path in folder.glob("*.py") if len(path.read_text().splitlines()) >= 250] == []


def test_a_full_disk_while_writing_the_csv_keeps_the_previous_one(tmp_path, monkeypatch):
    out = tmp_path / "ffpp.csv"
    row = {"path": "a/f000000_0.png", "label": 0, "split": "train", "video_id": "a"}
    datasets.write_csv(out, [row])
    before = out.read_bytes()

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(DiskFullError, match="the disk is full writing .*ffpp.csv: the previous ffpp.csv is kept"):
        datasets.write_csv(out, [row, {**row, "path": "b/f000000_0.png"}])
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["ffpp.csv"]
