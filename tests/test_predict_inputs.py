"""predict.py's inputs and console at scale: folders listed in path order without hidden files, and a console that
lists the first inputs and counts the rest (every input is in inputs.csv)."""

import csv
import json
from pathlib import Path

import pytest
import torch

from engine.inference.forward import FaceResult
from engine.inference.inputs import FaceCrop, InputItem, collect_inputs
from engine.inference.outputs import PredictionWriter, console_summary
from engine.inference.summaries import iter_summaries


def test_a_folder_is_listed_in_path_order_without_hidden_or_non_media_files(tmp_path):
    names = [
        "a.png",
        "a/b.png",
        "a/c/d.mp4",
        "a-b.jpg",
        "B.webp",
        ".hidden.png",
        ".cache/x.png",
        "a/.thumbs/y.png",
        "notes.txt",
        "z/clip.MOV",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    items = collect_inputs([tmp_path, tmp_path / "missing.png"])
    # Path order, component by component ("a/..." before "a-b.jpg" and "a.png"), as sorted(Path) gives it
    expected = ["B.webp", "a/b.png", "a/c/d.mp4", "a-b.jpg", "a.png", "z/clip.MOV"]
    assert expected == [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path / name for name in expected)]
    assert [item.path for item in items[:-1]] == [tmp_path / name for name in expected]
    assert [item.kind for item in items[:-1]] == ["image", "image", "video", "image", "image", "video"]
    assert items[-1].status == f"error: {tmp_path / 'missing.png'} does not exist"
    (tmp_path / "empty").mkdir()
    (folder,) = collect_inputs([tmp_path / "empty"])
    assert folder.kind == "folder" and folder.status.startswith("error: no image or video files under")


def _entry(i, score):
    status = "ok" if score is not None else "error: could not be decoded"
    fake = None if score is None else int(score >= 0.3)
    half = None if score is None else int(score >= 0.5)
    return {"input": f"in{i}.png", "kind": "image", "status": status, "frames": 1, "faces": 1, "score": score} | {
        "fake": fake,
        "fake_at_0.5": half,
    }


def test_the_console_lists_the_first_inputs_and_counts_all_of_them():
    scores = [0.9, None, 0.4, 0.1, None, 0.6, None]
    summary = [_entry(i, s) for i, s in enumerate(scores)]
    text = console_summary(summary, 0.3, most=2)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["in0.png", "in1.png"] and "in2.png" not in lines[4]
    assert (
        lines[4]
        == "... 5 more inputs in inputs.csv. Of all 7: 4 scored, 3 of them fake at 0.3 and 2 at 0.5; 3 unscored"
    )
    assert lines[5:] == [
        "in1.png: error: could not be decoded",
        "in4.png: error: could not be decoded",
        "... and 1 more unscored inputs: their status is in inputs.csv",
    ]
    everything = console_summary(summary, 0.3)  # below the cap: every input and every reason, no counts line
    assert "more inputs" not in everything and len(everything.splitlines()) == 2 + 7 + 3


# ------------------------------------------------------------------------------ streaming summaries and outputs
def _results(faces_per_input):
    """FaceResults as score_crops yields them: input by input, frame by frame; a log of what was consumed."""
    consumed = []

    def generate():
        for index, faces in faces_per_input.items():
            for frame, face, score in faces:
                consumed.append(index)
                yield FaceResult(FaceCrop(index, frame, face, None, None, torch.zeros(0)), score, {})

    return generate(), consumed


def test_each_input_is_summarised_as_soon_as_the_next_inputs_first_face_arrives():
    items = [InputItem(Path(f"in{i}.png"), "image") for i in range(6)]
    items[1].status, items[5].status = "no face", "error: could not be decoded"
    # input 3: a video of two frames, two faces in frame 0; inputs 1 and 5 have no face, 4 comes after 3
    faces = {0: [(0, 0, 0.9)], 2: [(0, 0, 0.2)], 3: [(0, 0, 0.1), (0, 1, 0.7), (4, 0, 0.5)], 4: [(0, 0, 0.4)]}
    results, consumed = _results(faces)
    seen = []
    for entry in iter_summaries(items, results, threshold=0.3, class_names={}):
        seen.append((entry["input"], len(consumed)))
    # in0 is out once in2's face has arrived (2 consumed); in1 (no face) right before in2; in5 after the last face
    assert seen == [("in0.png", 2), ("in1.png", 3), ("in2.png", 3), ("in3.png", 6), ("in4.png", 6), ("in5.png", 6)]
    entries = list(iter_summaries(items, _results(faces)[0], threshold=0.3, class_names={}))
    video = entries[3]
    assert [f["score"] for f in video["frame_results"]] == [0.7, 0.5] and video["faces"] == 3
    assert video["score"] == pytest.approx(0.6) and video["fake"] == 1
    assert [e["status"] for e in entries] == ["ok", "no face", "ok", "ok", "ok", "error: could not be decoded"]
    assert entries[1]["score"] is None and entries[1]["frame_results"] == []


def test_outputs_are_written_input_by_input_and_appear_whole(tmp_path):
    entries = list(
        iter_summaries(
            [InputItem(Path(f"in{i}.png"), "image") for i in range(3)],
            _results({0: [(0, 0, 0.9)], 2: [(0, 0, 0.2)]})[0],
            threshold=0.5,
            class_names={},
        )
    )
    with PredictionWriter(tmp_path / "out", most=2) as writer:
        for entry in entries:
            writer.add(entry)
        assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == []
        paths = writer.finish({"checkpoint": "best.pt", "scored": 2})
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary file left
    text = paths["json"].read_text()
    payload = json.loads(text)
    assert list(payload) == ["checkpoint", "scored", "inputs"] and payload["inputs"] == entries
    assert text.splitlines()[4:7] == [f"    {json.dumps(entry)}," for entry in entries[:2]] + [
        f"    {json.dumps(entries[2])}"
    ]
    rows = list(csv.DictReader(open(paths["inputs"])))
    assert [r["input"] for r in rows] == ["in0.png", "in1.png", "in2.png"] and rows[1]["score"] == ""
    assert len(list(csv.DictReader(open(paths["frames"])))) == len(list(csv.DictReader(open(paths["faces"])))) == 2
    assert writer.tally.inputs == 3 and writer.tally.scored == 2 and len(writer.tally.head) == 2

    with PredictionWriter(tmp_path / "empty") as writer:
        paths = writer.finish({})
    assert json.loads(paths["json"].read_text()) == {"inputs": []}


def test_an_error_while_predicting_keeps_the_previous_outputs(tmp_path):
    with PredictionWriter(tmp_path) as writer:
        writer.add(next(iter_summaries([InputItem(Path("a.png"), "image")], [], threshold=0.5, class_names={})))
        writer.finish({"run": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(KeyboardInterrupt), PredictionWriter(tmp_path) as writer:
        writer.add(next(iter_summaries([InputItem(Path("b.png"), "image")], [], threshold=0.5, class_names={})))
        raise KeyboardInterrupt
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(RuntimeError, match="closed without finish"), PredictionWriter(tmp_path) as writer:
        writer.add(next(iter_summaries([InputItem(Path("c.png"), "image")], [], threshold=0.5, class_names={})))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no CSV without its predictions.json


def test_the_outputs_benchmark_runs_on_a_small_folder(tmp_path):
    from benchmarks import predict_outputs

    out = tmp_path / "bench.json"
    assert (
        predict_outputs.main(["--inputs", "45", "--frames", "2", "--workdir", str(tmp_path / "w"), "--out", str(out)])
        == 0
    )
    record = json.loads(out.read_text())
    assert record["inputs"] == 45 and record["frames_per_input"] == 2 and record["machine"]["cores"]
    assert record["summarise_and_write"]["files_mb"].keys() == {"inputs", "frames", "faces", "json", "progress_journal"}
    assert record["console"]["lines"] == 2 + 30 + 1  # header, rule, the first 30 inputs, the counts
    assert record["peak_rss_mb"] >= record["baseline_rss_mb"] > 0
    assert not (tmp_path / "w").exists()


def test_face_results_out_of_input_order_are_an_error():
    items = [InputItem(Path(f"in{i}.png"), "image") for i in range(3)]
    results, _ = _results({2: [(0, 0, 0.5)], 1: [(0, 0, 0.5)]})
    with pytest.raises(ValueError, match="out of input order: input 1 after input 2"):
        list(iter_summaries(items, results, threshold=0.5, class_names={}))


# ------------------------------------------------------------------------------------------------ resuming
def test_the_progress_journal_reuses_whole_lines_of_its_own_key_only(tmp_path):
    from engine.inference.outputs import ProgressJournal

    key = {"checkpoint": {"path": "best.pt", "files": [["best.pt", 10, 1]]}, "detect": False}
    entries = [{"input": f"in{i}.png", "score": i / 10} for i in range(3)] + [{"input": "in1.png", "score": 0.9}]
    with ProgressJournal(tmp_path, key) as journal:
        for entry in entries:
            journal.append(entry)
    with open(journal.path, "a") as stream:
        stream.write('{"input": "in3.png", "sco')  # the line the stop cut short
    again = ProgressJournal(tmp_path, key)
    offsets = again.load()
    assert sorted(offsets) == ["in0.png", "in1.png", "in2.png"] and not again.note
    with again:
        assert again.entry_at(offsets["in1.png"]) == {"input": "in1.png", "score": 0.9}  # the last one counts
        again.append({"input": "in3.png", "score": 0.3})
    assert ProgressJournal(tmp_path, key).load().keys() == {"in0.png", "in1.png", "in2.png", "in3.png"}

    other = ProgressJournal(tmp_path, key | {"detect": True})
    assert other.load() == {} and "another run" in other.note and not other.path.exists()
    assert ProgressJournal(tmp_path / "none", key).load() == {}


def test_scores_are_read_through_the_stored_calibration_and_band():
    """The calibrated probability and the verdict of the uncertain band (from best.pt's calibration), beside the
    decisions on the raw score; without a stored map the probability is the raw score and says so."""
    from engine.evaluation.calibration import Calibration
    from engine.inference.summaries import Decision, score_reading

    stored = {
        "threshold": 0.4,
        "probability": Calibration("temperature", {"temperature": 2.0}).to_dict(),
        "uncertain": {"risk": 0.05, "low": 0.3, "high": 0.8, "coverage": 0.7, "rows": 100, "error": 0.04},
    }
    reading, notes = score_reading(stored, "best.pt")
    decide = Decision(0.4, **reading)
    sure_fake, unsure, sure_real = decide(0.99), decide(0.6), decide(0.05)
    assert sure_fake["probability"] == pytest.approx(1 / (1 + (0.01 / 0.99) ** 0.5))  # sigmoid(logit / 2)
    assert (sure_fake["verdict"], unsure["verdict"], sure_real["verdict"]) == ("fake", "uncertain", "real")
    assert unsure["fake"] == 1 and unsure["fake_at_0.5"] == 1  # the raw decisions are kept beside
    assert "temperature T = 2" in notes[0] and "uncertain between" in notes[1]
    bare, bare_notes = score_reading({"threshold": 0.4}, "old.pt")
    plain = Decision(0.4, **bare)(0.45)
    assert plain["probability"] == 0.45 and plain["verdict"] == "fake"
    assert "stores no calibration map" in bare_notes[0] and "no uncertain band" in bare_notes[1]
    items = [InputItem(Path("a.png"), "image")]
    crop = FaceCrop(0, 0, 0, (0.0, 0.0, 1.0, 1.0), 0.9, torch.zeros(0))
    (entry,) = iter_summaries(items, [FaceResult(crop, 0.6)], threshold=0.4, class_names={}, **reading)
    assert entry["verdict"] == "uncertain" and entry["frame_results"][0]["face_results"][0]["verdict"] == "uncertain"
