"""The builders of the sets 2025-2026 papers report on (DF40, WildDeepfake, Celeb-DF++), on made-up trees and split
files laid out as each dataset publishes them."""

import json
from pathlib import Path

import pytest
from csv_rows import read_rows
from PIL import Image

from common.cli import run
from data import datasets
from data.protocols import folds, load_protocol, resolve
from data.schema import load_table


@pytest.fixture(scope="module")
def png_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("png") / "x.png"
    Image.new("RGB", (8, 8), (100, 50, 20)).save(path)
    return path.read_bytes()


def images(folder: Path, png: bytes, names=("0.png", "1.png")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(png)


# ------------------------------------------------------------------------------------------------- WildDeepfake
@pytest.fixture
def wdf_root(tmp_path, png_bytes) -> Path:
    """deepfake_in_the_wild/ with its archives unpacked: <split folder>/<N>/<real|fake>/<sequence>/<frame>.png."""
    root = tmp_path / "deepfake_in_the_wild"
    for folder, archives in (
        ("real_train", range(1, 11)),
        ("fake_train", range(1, 11)),
        ("real_test", (30, 31)),
        ("fake_test", (30,)),
    ):
        for archive in archives:
            for sequence in (0, 1):
                images(root / folder / str(archive) / folder.split("_")[0] / str(sequence), png_bytes)
        (root / folder / f"{archives[0]}.tar.gz").write_bytes(b"")  # the archives themselves may stay beside
    return root


def test_wilddeepfake_keeps_its_train_and_test_folders_and_draws_val_by_archive(wdf_root, capsys):
    assert run(datasets.main, ["wilddeepfake", str(wdf_root), "--val-fraction", "0.2"]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(wdf_root / "wilddeepfake.csv")
    videos = {r["video_id"]: r for r in rows}
    assert len(rows) == 2 * len(videos) == 2 * (2 * 10 + 2 * 10 + 2 * 2 + 2)
    test = {v for v, r in videos.items() if r["split"] == "test"}
    assert test == {f"real_test/{a}/real/{s}" for a in (30, 31) for s in (0, 1)} | {
        "fake_test/30/fake/0",
        "fake_test/30/fake/1",
    }
    for video, row in videos.items():
        assert row["label"] == ("0" if video.startswith("real_") else "1")
        assert row["source_dataset"] == "WildDeepfake" and row["generator"] == (
            "real" if row["label"] == "0" else "WildDeepfake"
        )
    # val: 20% of the training archives of each class, an archive's sequences together
    split_of_archive = {}
    for video, row in videos.items():
        if not video.split("/")[0].endswith("_test"):
            split_of_archive.setdefault(video.rsplit("/", 2)[0], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of_archive.values())
    assert sum(splits == {"val"} for splits in split_of_archive.values()) == 4
    assert "real 24 sequences, published 3805" in printed and "no validation split" in printed


def test_wilddeepfake_errors_name_the_folder(wdf_root, tmp_path, capsys):
    images(wdf_root / "fake_train" / "99" / "real" / "0", b"x")
    assert run(datasets.main, ["wilddeepfake", str(wdf_root)]) == 1
    assert "fake_train/99/real is not where WildDeepfake keeps its fake_train sequences" in capsys.readouterr().err
    packed = tmp_path / "packed"
    for folder in ("real_train", "real_test", "fake_train", "fake_test"):
        (packed / folder).mkdir(parents=True)
        (packed / folder / "1.tar.gz").write_bytes(b"")
    assert run(datasets.main, ["wilddeepfake", str(packed)]) == 1
    assert "unpack its 1 archives into it first" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------- Celeb-DF++
@pytest.fixture
def cdfpp_root(tmp_path, png_bytes) -> Path:
    root = tmp_path / "Celeb-DF++"
    folders = [
        "Celeb-real/id0_0000",
        "Celeb-real/id1_0001",
        "YouTube-real/00003",
        "Celeb-synthesis/FaceSwap/Celeb-DF/id0_id1_0000",
        "Celeb-synthesis/FaceSwap/BlendFace/id0_id2_0000",
        "Celeb-synthesis/FaceReenact/LivePortrait/id1_id0_0001",
        "Celeb-synthesis/TalkingFace/SadTalker/id1_0001",
        "Celeb-synthesis/TalkingFace/SadTalker/id9_0004",  # not in the test list
    ]
    for folder in folders:
        images(root / folder, png_bytes, names=("f000000_0.png", "f000010_0.png"))
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00003.mp4\n"
        "1 Celeb-real/id0_0000.mp4\n"
        "0 Celeb-synthesis/FaceSwap/Celeb-DF/id0_id1_0000.mp4\n"
        "0 Celeb-synthesis/FaceSwap/BlendFace/id0_id2_0000.mp4\n"
        "0 Celeb-synthesis/FaceReenact/LivePortrait/id1_id0_0001.mp4\n"
        "0 Celeb-synthesis/TalkingFace/SadTalker/id1_0001.mp4\n"
    )
    return root


def test_celebdfpp_is_its_test_list_with_method_and_scenario(cdfpp_root, capsys):
    assert run(datasets.main, ["celebdfpp", str(cdfpp_root)]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(cdfpp_root / "celebdfpp.csv")
    videos = {r["video_id"]: r for r in rows}
    assert {r["split"] for r in rows} == {"test"} and len(videos) == 6 and len(rows) == 12
    assert [videos[v]["label"] for v in ("YouTube-real/00003", "Celeb-real/id0_0000")] == ["0", "0"]
    expected = {
        "Celeb-synthesis/FaceSwap/Celeb-DF/id0_id1_0000": ("Celeb-DF", "FS", "id0;id1"),
        "Celeb-synthesis/FaceSwap/BlendFace/id0_id2_0000": ("BlendFace", "FS", "id0;id2"),
        "Celeb-synthesis/FaceReenact/LivePortrait/id1_id0_0001": ("LivePortrait", "FR", "id1;id0"),
        "Celeb-synthesis/TalkingFace/SadTalker/id1_0001": ("SadTalker", "TF", "id1"),
    }
    for video, (generator, forgery_type, identity) in expected.items():
        row = videos[video]
        assert (row["label"], row["generator"], row["forgery_type"], row["identity"]) == (
            "1",
            generator,
            forgery_type,
            identity,
        )
    assert {r["source_dataset"] for r in rows} == {"Celeb-DF++"} and rows[0]["frame"] == "0"
    assert "test real: 2 videos, published 178" in printed and "test SadTalker (TF): 1 videos, published 300" in printed
    assert "2 video folder(s) outside the test list have no rows" in printed  # id1_0001, id9_0004


def test_celebdfpp_list_errors_are_one_sentence(cdfpp_root, capsys):
    listing = cdfpp_root / "List_of_testing_videos.txt"
    listing.write_text("0 Celeb-real/id0_0000.mp4\n")  # the other label convention would land here
    assert run(datasets.main, ["celebdfpp", str(cdfpp_root)]) == 1
    assert "labels Celeb-real/id0_0000 fake but it lies in Celeb-real" in capsys.readouterr().err
    listing.write_text("0 Celeb-synthesis/Morphing/X/id0_0000.mp4\n")
    assert run(datasets.main, ["celebdfpp", str(cdfpp_root)]) == 1
    assert "line 1 names Celeb-synthesis/Morphing/X/id0_0000.mp4" in capsys.readouterr().err
    listing.write_text("0 Celeb-synthesis/FaceSwap/GHOST/id5_id6_0000.mp4\n")
    assert run(datasets.main, ["celebdfpp", str(cdfpp_root)]) == 1
    assert "have no crop folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------- DF40
def _video(label: str, frames: list[str]) -> dict:
    return {"label": label, "frames": frames}


def _method_json(name: str, label: str, splits: dict[str, list[str]]) -> dict:
    """DF40's per-method JSON: {name: {label: {split: {video: {label, frames}}}}}, frames under DF40/<method>/..."""
    method = name.rsplit("_", 1)[0] if name.endswith(("_ff", "_cdf")) else name
    domain = name.rsplit("_", 1)[1] if name != method else "fake"
    return {
        name: {
            label: {
                split: {video: _video(label, [f"DF40/{method}/{domain}/frames/{video}/000.png"]) for video in videos}
                for split, videos in splits.items()
            }
        }
    }


@pytest.fixture
def df40_json(tmp_path) -> Path:
    """DF40's dataset_json folder: per-method files of the two domains and of a method of its own domain, the union
    files DF40 also ships, and DeepfakeBench's real-video JSONs of FF++ (compression levels) and Celeb-DF-v2."""
    folder = tmp_path / "dataset_json"
    folder.mkdir()
    train_ff = [f"{i:03d}_{i + 1:03d}" for i in range(0, 20, 2)]
    files = {
        "simswap_ff": _method_json("simswap_ff", "simswap_Fake", {"train": train_ff, "test": ["953_974"]}),
        "simswap_cdf": _method_json(
            "simswap_cdf", "simswap_Fake", {"train": ["id0_id1_0000"], "test": ["id2_id3_0000"]}
        ),
        "fomm_ff": _method_json("fomm_ff", "fomm_Fake", {"train": train_ff, "test": ["953_974"]}),
        "fomm_cdf": _method_json("fomm_cdf", "fomm_Fake", {"test": ["id2_id3_0000"]}),
        "StyleGAN2_ff": _method_json("StyleGAN2_ff", "StyleGAN2_Fake", {"train": train_ff, "test": ["953"]}),
        "FSAll_ff": _method_json("FSAll_ff", "FSAll_Fake", {"test": ["953_974"]}),
    }
    heygen = _method_json("heygen", "heygen_Fake", {"train": ["v0"], "test": ["v1"]})
    heygen["heygen"]["heygen_Real"] = {"test": {"r1": _video("heygen_Real", ["DF40/heygen/real/frames/r1/000.png"])}}
    files["heygen"] = heygen
    ff_real = {
        split: {
            compression: {
                video: _video(
                    "FF-real", [f"FaceForensics++/original_sequences/youtube/{compression}/frames/{video}/000.png"]
                )
                for video in videos
            }
            for compression in ("c23", "c40")
        }
        for split, videos in (("train", ["000", "001"]), ("val", ["720"]), ("test", ["953"]))
    }
    files["FaceForensics++"] = {"FaceForensics++": {"FF-real": ff_real, "FF-DF": {"train": {"c23": {}}}}}
    files["Celeb-DF-v2"] = {
        "Celeb-DF-v2": {
            "CelebDFv2_real": {
                "train": {"id0_0000": _video("CelebDFv2_real", ["Celeb-DF-v2/Celeb-real/frames/id0_0000/0.png"])},
                "test": {"id2_0000": _video("CelebDFv2_real", ["Celeb-DF-v2/Celeb-real/frames/id2_0000/0.png"])},
            },
            "CelebDFv2_fake": {"test": {"id2_id3_0000": _video("CelebDFv2_fake", ["Celeb-DF-v2/x/0.png"])}},
        }
    }
    for name, content in files.items():
        (folder / f"{name}.json").write_text(json.dumps(content))
    return folder


def test_df40_rows_name_its_test_sets_types_and_domains(df40_json, tmp_path, capsys):
    out = tmp_path / "df40.csv"
    assert (
        run(
            datasets.main,
            ["df40", str(tmp_path), "--metadata-root", str(df40_json), "--out", str(out), "--val-fraction", "0.2"],
        )
        == 0
    )
    printed = capsys.readouterr().out
    rows = read_rows(out)
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows)
    simswap = by_path["DF40/simswap/ff/frames/953_974/000.png"]
    assert (simswap["generator"], simswap["forgery_type"], simswap["source_dataset"], simswap["df40_set"]) == (
        "simswap_ff",
        "FS",
        "FF++",
        "FS_ff",
    )
    cdf = by_path["DF40/simswap/cdf/frames/id2_id3_0000/000.png"]
    assert (cdf["generator"], cdf["source_dataset"], cdf["df40_set"], cdf["split"]) == (
        "simswap_cdf",
        "Celeb-DF-v2",
        "FS_cdf",
        "test",
    )
    assert by_path["DF40/StyleGAN2/ff/frames/953/000.png"]["forgery_type"] == "EFS"
    heygen = by_path["DF40/heygen/fake/frames/v1/000.png"]
    assert (heygen["generator"], heygen["forgery_type"], heygen["source_dataset"], heygen["df40_set"]) == (
        "heygen",
        "FR",
        "DF40-heygen",
        "unknown",
    )
    assert by_path["DF40/heygen/real/frames/r1/000.png"]["label"] == "0"
    # DF40 trains in the FF++ domain only; FF++'s reals at the chosen compression, with FF++'s own val split
    assert {r["split"] for r in rows if r["source_dataset"] != "FF++"} == {"test"}
    assert (
        not any("/c40/" in path for path in by_path)
        and by_path["FaceForensics++/original_sequences/youtube/c23/frames/720/000.png"]["split"] == "val"
    )
    assert not any("Celeb-DF-v2/x/" in path for path in by_path)  # only the reals of Celeb-DF-v2's JSON
    assert not any("FSAll" in r["generator"] for r in rows)
    for generator in ("simswap_ff", "fomm_ff", "StyleGAN2_ff"):  # each method gets validation videos
        assert {r["split"] for r in rows if r["generator"] == generator} == {"train", "val", "test"}
    assert "left out 1 JSON file(s) that are not one DF40 method: FSAll_ff.json" in printed
    assert "DF40 trains in the FF++ domain only: left out 3 train/val frame(s)" in printed

    # the protocols: DF40's one-vs-all is cross-generator over the FF++-domain methods; protocols 1 to 3 are df40.yaml
    table = load_table(out)
    assert folds(load_protocol("cross-generator"), table) == ["StyleGAN2_ff", "fomm_ff", "simswap_ff"]
    resolved = resolve("cross-generator", table, "simswap_ff")
    assert {table.column("generator")[i] for i in resolved.train} == {"simswap_ff", "real"}
    assert {table.column("source_dataset")[i] for i in resolved.train} == {"FF++"}
    assert "generator=heygen" in resolved.groups and "generator=simswap_cdf" in resolved.groups
    df40 = load_protocol("df40")
    assert folds(df40, table) == ["EFS", "FR", "FS"]
    groups = resolve(df40, table, "FS").groups
    assert {"df40_set=FS_ff", "df40_set=FS_cdf", "df40_set=FR_cdf", "df40_set=unknown", "generator=heygen"} <= set(
        groups
    )
    cdf_group = groups["df40_set=FS_cdf"]
    assert {table.column("source_dataset")[i] for i in cdf_group} == {"Celeb-DF-v2"}  # scored against Celeb-DF's reals


def test_df40_needs_its_json_folder(tmp_path, capsys):
    (tmp_path / "other.json").write_text("{}")
    assert run(datasets.main, ["df40", str(tmp_path)]) == 1
    assert "holds no DF40 JSON" in capsys.readouterr().err
    assert run(datasets.main, ["df40", str(tmp_path), "--json", str(tmp_path / "other.json")]) == 2
    assert "drop --json" in capsys.readouterr().err


def test_df40_knows_its_forty_methods():
    from data.builders.df40 import DF40_METHODS, df40_set

    assert len(DF40_METHODS) == 40
    own = [m for m, (_, domain) in DF40_METHODS.items() if domain == "own"]
    assert len(own) == 9 and sum(t == "FE" for t, _ in DF40_METHODS.values()) == 5
    assert df40_set("simswap_ff") == ("simswap", "ff") and df40_set("pixart_cdf") == ("PixArt", "cdf")
    assert df40_set("whichfaceisreal") == ("whichisreal", None) and df40_set("MidJourney_ff") is None
    assert df40_set("FSAll_ff") is None and df40_set("simswap") is None
