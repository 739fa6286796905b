"""Using a trained detector: model folders and hub ids, ONNX parity, predict.py, explanations and t-SNE.

One quick fine-grained demo run (module fixture) serves every test; nothing is downloaded (HF_HUB_OFFLINE=1).
"""

import csv
import json
import sys
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from runs import quick_args

import predict
import test as test_script
import train
from common.checkpoint import read_checkpoint, save_checkpoint
from common.cli import run
from data.images import load_image, resize_array
from data.make_demo import make_demo
from engine.inference import inputs as inference_inputs
from model import build_model
from model.export import ExportError, export_folder, push_folder
from model.hub import PretrainedError, load_detector
from model.registry import NotAConfigError

# the shared quick run (tests/runs.py), one epoch of 3 steps with the demo config's own augmentation
QUICK = quick_args(
    train__epochs=1,
    train__max_steps_per_epoch=3,
    data__augment="[{name: hflip, p: 0.5}]",
    model__fine_grained_heads="true",
    model__level3_num_classes=6,
    loss__name="multitask",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(demo CSV, best.pt with a calibration and a test.py evaluation beside it) of a quick fine-grained run."""
    root = tmp_path_factory.mktemp("deploy")
    csv_path = make_demo(root / "data", identities=8, fakes_per_generator=12)
    run_dir = root / "run"
    train.main(["--csv", str(csv_path), "--out", str(run_dir), *QUICK])
    best = run_dir / "best.pt"
    checkpoint = read_checkpoint(best)
    # What issue 10's selection writes into every best.pt; a threshold far from 0.5 shows which one is applied.
    checkpoint["calibration"] = {"threshold": 0.3, "method": "youden", "split": "val", "epoch": 1}
    save_checkpoint(best, checkpoint)
    test_script.main(["--checkpoint", str(best), "--bootstrap", "20", "--quiet", "--workers", "0"])
    return csv_path, best


@pytest.fixture(scope="module")
def reference(trained):
    """The trained model loaded from its checkpoint: the reference every other path must reproduce."""
    return load_detector(trained[1]).model


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    _, best = trained
    return export_folder(best, tmp_path_factory.mktemp("export") / "cael-demo", repo_id="someone/cael-demo")["folder"]


def _logits(model, images):
    with torch.no_grad():
        outputs = model.eval()(images)
    return {k: v for k, v in outputs.items()} if isinstance(outputs, dict) else {"logits": outputs}


def _inputs(result) -> list[dict]:
    """Every input's entry, as predict.py wrote them to predictions.json (its return value keeps only the first)."""
    entries = json.loads(result["paths"]["json"].read_text())["inputs"]
    assert result["head"] == entries[: len(result["head"])] and result["inputs"] == len(entries)
    return entries


def _demo_images(csv_path: Path, count: int = 4) -> list[Path]:
    rows = [r for r in csv.DictReader(open(csv_path)) if r["split"] == "test"]
    fakes = [r for r in rows if r["label"] == "1"][: count // 2]
    reals = [r for r in rows if r["label"] == "0"][: count - len(fakes)]
    return [csv_path.parent / r["path"] for r in fakes + reals]


# ------------------------------------------------------------------------------------------------ model folders
def test_exported_folder_holds_weights_config_and_model_card_and_loads_back_identically(trained, exported, reference):
    csv_path, best = trained
    assert sorted(p.name for p in exported.iterdir()) == [
        "Dockerfile",
        "README.md",
        "app.py",
        "cael_code",  # the web page's code (tests/test_app.py runs the folder's app.py)
        "config.yaml",
        "model.safetensors",
        "requirements.txt",
    ]
    config = yaml.safe_load((exported / "config.yaml").read_text())
    assert config["calibration"]["threshold"] == 0.3
    assert config["model"]["fine-grained-heads"] is True and config["model"]["pretrained"] is False
    assert config["preprocessing"]["image-size"] == 64
    assert config["class-names"]["level2"] == ["AM", "EFS", "FS"]
    assert config["run-config"]["data"]["protocol"] == "intra"
    card = (exported / "README.md").read_text()
    assert (
        "protocol: `intra`" in card and f"`.../data/{csv_path.name}`" in card and "decision threshold: 0.3000" in card
    )
    assert str(csv_path.parent) not in card and str(csv_path.parent) not in (exported / "config.yaml").read_text()
    assert "AUC 95% CI" in card and "| overall |" in card  # test.py's table with bootstrap intervals
    assert "commit `" in card and "training command:" in card and "someone/cael-demo" in card

    images = torch.stack([load_image(p, 64) for p in _demo_images(csv_path)])
    original = reference
    for name, tensor in _logits(load_detector(exported).model, images).items():
        assert torch.equal(tensor, _logits(original, images)[name]), name


def test_export_refuses_a_non_empty_folder(trained, exported):
    _, best = trained
    with pytest.raises(ExportError, match="already exists and is not empty: .*--overwrite"):
        export_folder(best, exported)


def test_a_folder_that_is_not_a_model_folder_is_one_clear_error(tmp_path):
    (tmp_path / "config.yaml").write_text("format: something-else\nmodel: {}\n")
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PretrainedError, match="is not the config.yaml of a model folder"):
        load_detector(tmp_path)
    with pytest.raises(PretrainedError, match="no checkpoint at .*best.pt .nor a model folder or hub id"):
        load_detector(tmp_path / "missing" / "best.pt")


def test_hub_id_downloads_once_through_the_hub_cache(exported, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision))
        assert "model.safetensors" in allow_patterns and "config.yaml" in allow_patterns
        return str(exported)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    from_hub = load_detector("someone/cael-demo@v1")
    assert calls == [("someone/cael-demo", "v1")]
    assert from_hub.threshold == 0.3 and from_hub.class_names["level2"] == ["AM", "EFS", "FS"]
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(
        _logits(load_detector("someone/cael-demo").model, images)["logits"],
        _logits(load_detector(exported).model, images)["logits"],
    )


def test_hub_id_offline_is_one_clear_error(capsys):
    with pytest.raises(
        PretrainedError,
        match=r"model someone/not-cached is not in the local hub cache .*HF_HUB_OFFLINE=1.*connect once",
    ):
        load_detector("someone/not-cached")
    assert run(predict.main, ["--checkpoint", "someone/not-cached", "x.png", "--no-detect"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model someone/not-cached is not in the local hub cache")


def test_push_offline_is_one_clear_error(exported):
    with pytest.raises(ExportError, match="HF_HUB_OFFLINE is set"):
        push_folder(exported, "someone/cael-demo")


def test_test_py_evaluates_a_model_folder(trained, exported, tmp_path):
    csv_path, best = trained
    from_folder = test_script.main(
        [
            "--checkpoint",
            str(exported),
            "--csv",
            str(csv_path),
            "--out",
            str(tmp_path / "eval"),
            "--bootstrap",
            "0",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    from_file = json.loads((best.parent / "eval-intra" / "metrics.json").read_text())
    assert from_folder["groups"]["overall"]["clean"]["auc"] == pytest.approx(
        from_file["groups"]["overall"]["clean"]["auc"]
    )


@pytest.mark.slow
def test_onnx_export_matches_pytorch(trained, reference, tmp_path, monkeypatch):
    """torch.onnx (dynamo) export of the whole detector, preprocessing included; onnxruntime vs PyTorch logits; the
    folder's README runs it as it says."""
    pytest.importorskip("onnxruntime")
    _, best = trained
    result = export_folder(best, tmp_path / "with-onnx", onnx=True)
    assert (result["folder"] / "model.onnx").is_file()
    assert result["onnx_max_difference"] < 1e-4
    import onnxruntime

    session = onnxruntime.InferenceSession(str(result["folder"] / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "level2_logits", "level3_logits"]
    images = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)  # another batch size than the export example
    logits = session.run(["logits"], {"images": images.numpy()})[0]
    expected = _logits(reference, images)["logits"].numpy()
    assert np.abs(logits - expected).max() < 1e-4

    card = (result["folder"] / "README.md").read_text()
    blocks = [block.split("```")[0] for block in card.split("```python\n")[1:]]
    snippet = next(block for block in blocks if "onnxruntime" in block)
    monkeypatch.chdir(result["folder"])
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 72, 3), dtype=np.uint8)).save("face.png")
    namespace: dict = {}
    exec(snippet, namespace)  # the card's code, as a reader copies it
    face = torch.from_numpy(np.asarray(namespace["face"])).permute(2, 0, 1)[None]
    expected = torch.softmax(_logits(reference, face)["logits"], dim=1)[:, 1].numpy()
    assert np.abs(namespace["score"] - expected).max() < 1e-4


def test_an_onnx_file_given_as_a_checkpoint_is_named_with_what_takes_it(trained, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    folder = export_folder(trained[1], tmp_path / "with-onnx", onnx=True)["folder"]
    assert run(test_script.main, ["--checkpoint", str(folder / "model.onnx"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is an ONNX graph" in err[0] and "onnxruntime" in err[0] and str(folder) in err[0]
    renamed = tmp_path / "detector.bin"  # known by its bytes, whatever its name
    renamed.write_bytes((folder / "model.onnx").read_bytes())
    with pytest.raises(PretrainedError, match="is an ONNX graph"):
        load_detector(renamed)


def test_weights_in_other_formats_and_build_model_of_a_trained_detector_are_one_clear_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, tmp_path / "weights.bin")
    with pytest.raises(PretrainedError, match="bare safetensors weights without their config"):
        load_detector(tmp_path / "weights.bin")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 1)), tmp_path / "scripted.pt")
    with pytest.raises(PretrainedError, match="is a TorchScript program: load it with torch.jit.load"):
        load_detector(tmp_path / "scripted.pt")
    for source in (tmp_path / "best.pt", "someone/cael-demo", tmp_path):
        with pytest.raises(NotAConfigError, match=r"load_detector\(source\)"):
            build_model(source)
    assert build_model("cael_demo").config["image-size"] == 64  # a bundled config name still builds


# ------------------------------------------------------------------------------------------------------ predict.py
def _real_photos(folder: Path) -> list[Path]:
    """Real face photos that scikit-image ships: the astronaut portrait and LFW faces (25x25, grey)."""
    skimage_data = pytest.importorskip("skimage.data")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "astronaut.png"]
    Image.fromarray(skimage_data.astronaut()).save(paths[0])
    faces = skimage_data.lfw_subset()[:2]
    for i, face in enumerate(faces):
        paths.append(folder / f"lfw_{i}.png")
        Image.fromarray((face * 255).round().astype(np.uint8)).resize((100, 100)).save(paths[-1])
    return paths


def test_predict_scores_crops_and_photos_with_the_calibrated_threshold(trained, exported, reference, tmp_path):
    csv_path, best = trained
    crops = tmp_path / "inputs"
    crops.mkdir()
    demo = _demo_images(csv_path)
    for path in demo:
        (crops / path.name).write_bytes(path.read_bytes())
    photos = _real_photos(crops / "photos")
    (crops / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = predict.main(
        [
            "--checkpoint",
            str(exported),
            str(crops),
            str(tmp_path / "missing.jpg"),
            "--no-detect",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    summary = {Path(e["input"]).name: e for e in _inputs(result)}
    assert len(summary) == len(demo) + len(photos) + 2
    assert summary["broken.png"]["status"].startswith("error: image file") and summary["broken.png"]["score"] is None
    assert summary["missing.jpg"]["status"].endswith("does not exist")
    model = reference
    for path in demo + photos:
        entry = summary[path.name]
        expected = _logits(model, load_image(path, 64)[None])["logits"].softmax(-1)[0, 1].item()
        assert entry["score"] == pytest.approx(expected, abs=1e-5), path.name
        assert entry["fake"] == int(entry["score"] >= 0.3) and entry["fake_at_0.5"] == int(entry["score"] >= 0.5)
        assert entry["level2"] in ("AM", "EFS", "FS") and entry["frames"] == entry["faces"] == 1
    assert result["threshold"] == 0.3 and result["scored"] == len(demo) + len(photos) and result["unscored"] == 2
    rows = {Path(r["input"]).name: r for r in csv.DictReader(open(out / "inputs.csv"))}
    assert rows["astronaut.png"]["status"] == "ok" and float(rows["astronaut.png"]["score"]) == pytest.approx(
        summary["astronaut.png"]["score"], abs=1e-6
    )
    assert rows["broken.png"]["score"] == ""
    assert len(list(csv.DictReader(open(out / "faces.csv")))) == len(demo) + len(photos)
    assert json.loads((out / "predictions.json").read_text())["calibration"]["threshold"] == 0.3


def test_predict_without_calibration_falls_back_to_one_half_and_says_so(trained, tmp_path, capsys):
    csv_path, best = trained
    checkpoint = read_checkpoint(best)
    del checkpoint["calibration"]
    save_checkpoint(tmp_path / "old.pt", checkpoint)
    result = predict.main(
        [
            "--checkpoint",
            str(tmp_path / "old.pt"),
            str(_demo_images(csv_path)[0]),
            "--no-detect",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert result["threshold"] == 0.5
    assert "no calibrated threshold in" in capsys.readouterr().out


def test_predict_stopped_half_way_continues_where_it_stopped(trained, tmp_path, monkeypatch, capsys):
    """Ctrl-C (or SIGTERM) half-way: no outputs, a journal of the inputs written so far; the same command again scores
    only the rest, and its outputs are those of one uninterrupted run. Another checkpoint starts over."""
    csv_path, best = trained
    crops = tmp_path / "crops"
    crops.mkdir()
    for path in _demo_images(csv_path, count=8):
        (crops / path.name).write_bytes(path.read_bytes())
    (crops / "broken.png").write_bytes(b"not an image")
    args = ["--checkpoint", str(best), str(crops), "--no-detect", "--batch-size", "2", "--quiet", "--out"]
    whole = predict.main([*args, str(tmp_path / "whole")])

    calls, load = [], inference_inputs.load_image

    def stopped_at_the_sixth_image(*a, **k):
        calls.append(a[0])
        if len(calls) == 6:
            raise KeyboardInterrupt
        return load(*a, **k)

    monkeypatch.setattr(inference_inputs, "load_image", stopped_at_the_sixth_image)
    out = tmp_path / "out"
    assert run(predict.main, [*args, str(out)]) == 130
    assert "the same command continues" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".predict-progress.jsonl"]  # outputs appear whole or not at all
    monkeypatch.setattr(inference_inputs, "load_image", load)
    calls.clear()
    resumed = predict.main([*args, str(out)])
    assert 0 < resumed["resumed"] < 9 and "resuming: " in capsys.readouterr().out
    # the same rows as one uninterrupted run; scores equal up to float32 noise (the batches were made up differently)
    for name, count in (("inputs.csv", 9), ("frames.csv", 8), ("faces.csv", 8)):
        rows, expected = (list(csv.DictReader(open(folder / name))) for folder in (out, tmp_path / "whole"))
        assert len(rows) == len(expected) == count
        for row, reference in zip(rows, expected):
            numbers = ("score", "probability")
            assert {k: v for k, v in row.items() if k not in numbers} == {
                k: v for k, v in reference.items() if k not in numbers
            }
            for key in numbers:
                if reference[key]:
                    assert float(row[key]) == pytest.approx(float(reference[key]), abs=1e-5)
    payload = json.loads((out / "predictions.json").read_text())
    assert [e["input"] for e in payload["inputs"]] == [e["input"] for e in whole["head"]]
    assert not (out / ".predict-progress.jsonl").exists() and whole["resumed"] == 0

    # a stopped run of another checkpoint is not reused
    monkeypatch.setattr(inference_inputs, "load_image", stopped_at_the_sixth_image)
    assert run(predict.main, [*args, str(out)]) == 130
    monkeypatch.setattr(inference_inputs, "load_image", load)
    checkpoint = read_checkpoint(best)
    save_checkpoint(tmp_path / "other.pt", checkpoint)
    other = predict.main([*args[:1], str(tmp_path / "other.pt"), *args[2:], str(out)])
    assert other["resumed"] == 0 and "holds the progress of another run" in capsys.readouterr().out


def test_predict_with_nothing_readable_is_one_clear_error(exported, tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    status = run(
        predict.main,
        [
            "--checkpoint",
            str(exported),
            str(tmp_path / "broken.jpg"),
            "--no-detect",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
    )
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: none of the 1 inputs could be scored ({tmp_path / 'broken.jpg'}: ")  # why, itself
    assert err.endswith(f"nothing was written to {tmp_path / 'out'}.")
    assert not (tmp_path / "out").exists()  # no folder of empty outputs
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "predictions.json").write_text("{}")
    args = [
        "--checkpoint",
        str(exported),
        str(tmp_path / "broken.jpg"),
        "--no-detect",
        "--out",
        str(tmp_path / "earlier"),
    ]
    assert run(predict.main, [*args, "--quiet"]) == 1
    assert [p.name for p in (tmp_path / "earlier").iterdir()] == ["predictions.json"]  # kept as it was


def test_predict_detection_without_the_detectors_package_is_one_clear_error(exported, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # import fails as if the package were absent
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    args = ["--checkpoint", str(exported), str(image), "--out", str(tmp_path / "out"), "--quiet", "--detector", "mtcnn"]
    assert run(predict.main, args) == 1
    assert "needs the package facenet-pytorch" in capsys.readouterr().err


# A stand-in for data.faces with the API predict uses: fixed boxes, and "videos" that are folders of frames.
@dataclass(frozen=True)
class _Settings:
    detector: str = "stub"
    frames: int | None = 32
    stride: int | None = None
    margin: float = 1.3
    size: int = 48
    max_faces: int | None = None
    align: bool = False
    min_score: float = 0.5

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        return cls(**values)


@dataclass
class _Face:
    frame: int
    face_index: int
    box: tuple
    score: float
    crop: np.ndarray


def _stub_extraction(frames_of_video):
    def faces_in_image(image, detector, settings, frame=0):
        halves = (image[:, : image.shape[1] // 2], image[:, image.shape[1] // 2 :])  # two "faces": left and right half
        return [_Face(frame, i, (0.0, 0.0, 1.0, 1.0), 0.9, np.ascontiguousarray(h)) for i, h in enumerate(halves)]

    def faces_in_video(path, detector, settings):
        frames = frames_of_video.get(Path(path).name)
        if frames is None:
            from common.errors import UserError

            raise UserError(f"video {path} could not be read")
        for index, frame in enumerate(frames):
            yield from faces_in_image(frame, detector, settings, frame=index)

    module = types.ModuleType("data.faces")
    module.ExtractionSettings, module.Face = _Settings, _Face
    module.build_detector = lambda name, device="cpu": object()
    module.detector_device = lambda name, device: "cpu"
    module.faces_in_image, module.faces_in_video = faces_in_image, faces_in_video
    return module


def test_predict_detects_faces_and_aggregates_frames_and_videos(trained, reference, tmp_path, monkeypatch):
    """Frame score = its most-fake face, video score = mean of its frames; decisions at the checkpoint's threshold."""
    csv_path, best = trained
    demo = [np.asarray(Image.open(p).convert("RGB")) for p in _demo_images(csv_path)]
    pairs = [np.concatenate((demo[i], demo[i + 1]), axis=1) for i in (0, 2)]  # two faces side by side per frame
    frames_of_video = {"clip.mp4": pairs}
    monkeypatch.setattr(inference_inputs, "face_extraction", _stub_extraction(frames_of_video))
    (tmp_path / "clip.mp4").write_bytes(b"stub")
    (tmp_path / "unreadable.mp4").write_bytes(b"stub")
    Image.fromarray(pairs[0]).save(tmp_path / "pair.png")
    result = predict.main(["--checkpoint", str(best), str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"])
    summary = {Path(e["input"]).name: e for e in _inputs(result)}
    model = reference

    def score(face: np.ndarray) -> float:
        return _logits(model, resize_array(face, 64)[None])["logits"].softmax(-1)[0, 1].item()

    frame_scores = [max(score(f[:, :64]), score(f[:, 64:])) for f in pairs]
    clip = summary["clip.mp4"]
    assert clip["frames"] == 2 and clip["faces"] == 4
    assert [f["score"] for f in clip["frame_results"]] == pytest.approx(frame_scores, abs=1e-5)
    assert clip["score"] == pytest.approx(np.mean(frame_scores), abs=1e-5)
    assert clip["fake"] == int(clip["score"] >= 0.3)
    assert summary["pair.png"]["score"] == pytest.approx(frame_scores[0], abs=1e-5)
    assert summary["unreadable.mp4"]["status"] == f"error: video {tmp_path / 'unreadable.mp4'} could not be read"
    assert result["face_extraction"]["detector"] == "stub"  # the checkpoint stores none: the defaults, said so
    frames = list(csv.DictReader(open(tmp_path / "out" / "frames.csv")))
    assert [r["input"].endswith("clip.mp4") for r in frames].count(True) == 2
    faces = list(csv.DictReader(open(tmp_path / "out" / "faces.csv")))
    assert len(faces) == 6 and {r["box_x1"] for r in faces} == {"1.000000"}


def test_predict_and_explain_a_real_video_with_the_checkpoints_face_extraction(trained, tmp_path):
    """The full path with data.faces: a photo and a short video made from it, cropped exactly as stored."""
    extract_faces = pytest.importorskip("data.faces")
    cv2 = pytest.importorskip("cv2")
    from common.errors import UserError
    from tools import explain

    stored = extract_faces.ExtractionSettings(frames=4, size=128, max_faces=1).to_dict()
    try:
        extract_faces.build_detector(stored["detector"])
    except UserError as error:
        pytest.skip(f"the default face detector is not available here: {error}")
    _, best = trained
    checkpoint = read_checkpoint(best)
    checkpoint["config"]["data"]["face-extraction"] = stored  # as train.py stores it from <csv stem>.extraction.json
    save_checkpoint(tmp_path / "with-extraction.pt", checkpoint)
    photo = _real_photos(tmp_path / "photos")[0]
    astronaut = np.asarray(Image.open(photo))
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (512, 512))
    for shift in range(10):
        writer.write(cv2.cvtColor(np.roll(astronaut, shift * 4, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    args = ["--checkpoint", str(tmp_path / "with-extraction.pt"), str(photo), str(tmp_path / "clip.mp4")]
    result = predict.main([*args, "--out", str(tmp_path / "out"), "--quiet"])
    summary = {Path(e["input"]).name: e for e in _inputs(result)}
    assert result["face_extraction"] == stored
    assert summary["astronaut.png"]["faces"] == 1  # max_faces 1
    assert summary["clip.mp4"]["frames"] == 4 and summary["clip.mp4"]["faces"] == 4  # frames 4: evenly spaced
    assert summary["clip.mp4"]["score"] == pytest.approx(
        np.mean([f["score"] for f in summary["clip.mp4"]["frame_results"]])
    )
    explained = explain.main([*args, "--out", str(tmp_path / "explain"), "--max-faces", "2"])
    assert sorted(p.name for p in explained["pngs"]) == ["astronaut.png", "clip_f0_0.png"]
    assert explained["grid"].is_file()


# ------------------------------------------------------------------------------------------------------ explain
def test_explain_writes_maps_grid_and_tsne(trained, exported, tmp_path):
    from tools import explain

    csv_path, _ = trained
    crops = _demo_images(csv_path, count=2)
    out = tmp_path / "explain"
    result = explain.main(
        [
            "--checkpoint",
            str(exported),
            *map(str, crops),
            "--no-detect",
            "--out",
            str(out),
            "--tsne",
            str(csv_path),
            "--split",
            "test",
        ]
    )
    assert sorted(p.name for p in result["pngs"]) == sorted(p.stem + ".png" for p in crops)
    for png in [*result["pngs"], result["grid"], *result["tsne"]["pngs"]]:
        picture = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
        assert picture.shape[0] > 300 and picture.std() > 10, png.name  # a drawn figure, not a blank canvas
    assert sorted(p.name for p in result["tsne"]["pngs"]) == [
        "tsne_coarse.png",
        "tsne_edge.png",
        "tsne_fine.png",
        "tsne_fused.png",
    ]
    for pdf in ("grid.pdf", "tsne_fused.pdf", crops[0].stem + ".pdf"):
        assert (out / pdf).read_bytes().startswith(b"%PDF"), pdf  # a vector copy beside every figure
    coordinates = list(csv.DictReader(open(out / "tsne.csv")))
    assert (
        len(coordinates)
        == result["tsne"]["n"]
        == sum(1 for r in csv.DictReader(open(csv_path)) if r["split"] == "test")
    )
    assert result["tsne"]["unseen"] == []  # intra: every test generator was trained on


def test_cam_and_attention_maps_have_the_image_geometry(trained, reference):
    from tools import explain

    csv_path, best = trained
    model = reference
    images = torch.stack([load_image(p, 64) for p in _demo_images(csv_path, count=2)])
    cams = explain.class_activation_maps(model, images, method="gradcam")
    assert set(cams) == {"fine", "coarse", "edge"}
    for values in cams.values():
        assert values.shape == (2, 64, 64) and values.min() >= 0.0 and values.max() <= 1.0 + 1e-6
    assert cams["coarse"].max() > 0  # the map has content
    attention, self_weight = explain.cls_attention(model, images)
    for name, grid in attention.items():
        assert grid.shape == (2, 2, 2)  # demo: the 2x2 fine map, the 16x16 maps cut into 8x8 patches
        assert np.allclose(grid.sum(axis=(1, 2)) + self_weight[name], 1.0, atol=1e-5)  # softmax over [self; patches]


def test_tsne_marks_generators_the_checkpoint_never_saw(trained, tmp_path):
    """Seen generators come from the checkpoint's own protocol and fold, resolved on the t-SNE CSV."""
    from tools import explain

    csv_path, best = trained
    pretrained = load_detector(best)
    pretrained.config["data"].update(
        protocol="cross-generator", fold="swap-blend"
    )  # as a cross-generator run stores it
    report = explain.tsne_report(
        pretrained,
        str(csv_path),
        data_root=None,
        split="test",
        max_rows=20,
        out_dir=tmp_path / "tsne",
        device=torch.device("cpu"),
    )
    assert report["n"] == 20 and report["unseen"] and "swap-blend" not in report["unseen"]
    assert "generators seen in training (cross-generator, swap-blend): swap-blend" in report["note"]
