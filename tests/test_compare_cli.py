"""``test.py --compare``: detectors' predictions.csv files matched by row key, the paired test per group with Holm's
correction, the refusals (other rows, other labels, nothing in common), seeds, and the outputs. No model is run: the
predictions are made up, with a known difference between the detectors."""

import csv
import json

import numpy as np
import pytest

import test as test_script
from common.cli import run
from engine.evaluation.compare import CompareError
from engine.evaluation.paired import paired_delong

GENERATORS = {"gA": "EFS", "gB": "EFS", "gC": "FS"}


def _rows(seed=0, videos=90, frames=4):
    """Rows of a GenFace-like test split: real videos and fake videos of three generators, four frames each."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(videos):
        generator = "real" if v % 3 == 0 else list(GENERATORS)[v % len(GENERATORS)]
        label = 0 if generator == "real" else 1
        effect = rng.normal(0, 0.6)
        for f in range(frames):
            rows.append(
                {
                    "path": f"{generator}/v{v:03d}/{f}.png",
                    "label": label,
                    "split": "test",
                    "forgery_type": "real" if label == 0 else GENERATORS[generator],
                    "generator": generator,
                    "source_dataset": "demo",
                    "video_id": f"v{v:03d}",
                    "_effect": effect,
                }
            )
    return rows


def _write(path, rows, strength, seed, status=None, drop=(), flip=()):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["path", "label", "score", "status", "split", "forgery_type", "generator", "source_dataset", "video_id"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for i, row in enumerate(rows):
            if i in drop:
                continue
            z = strength * row["label"] + row["_effect"] + rng.normal(0, 0.8)
            label = 1 - row["label"] if i in flip else row["label"]
            state = (status or {}).get(i, "scored")
            score = "" if state != "scored" else f"{1 / (1 + np.exp(-z)):.6f}"
            writer.writerow({**row, "label": label, "score": score, "status": state})
    return path


def test_a_real_difference_is_found_and_written_with_its_interval_p_and_holm(tmp_path):
    rows = _rows()
    strong = _write(tmp_path / "cael" / "eval-intra" / "predictions.csv", rows, 2.5, 1)
    weak = _write(tmp_path / "xception" / "eval-intra" / "predictions.csv", rows, 0.6, 2)
    out = tmp_path / "cmp"
    result = test_script.main(
        [
            "--compare",
            str(weak),
            str(strong),
            "--reference",
            "cael",
            "--protocol",
            "intra",
            "--out",
            str(out),
            "--interval",
            "delong",
        ]
    )
    assert result["reference"] == "cael" and set(result["detectors"]) == {"cael", "xception"}
    overall = result["groups"]["overall"]["xception"]["seeds"][0]
    assert overall["difference"] < 0 and overall["p"] < 0.001 and overall["significant"]
    assert overall["method"] == "Obuchowski" and overall["unit"] == "videos"
    # the overall test equals the paired test of the same rows written out by hand
    scores = {}
    for name, path in (("cael", strong), ("xception", weak)):
        scores[name] = {
            r["path"]: (int(r["label"]), float(r["score"]), r["video_id"]) for r in csv.DictReader(open(path))
        }
    keys = sorted(scores["cael"])
    labels = np.array([scores["cael"][k][0] for k in keys])
    expected = paired_delong(
        labels,
        np.array([scores["xception"][k][1] for k in keys]),
        np.array([scores["cael"][k][1] for k in keys]),
        clusters=[scores["cael"][k][2] for k in keys],
    )
    assert overall["difference"] == pytest.approx(expected["difference"]) and overall["p"] == pytest.approx(
        expected["p"]
    )
    tests = [e for g in result["groups"].values() for e in g["xception"]["seeds"]]
    assert result["tests"] == len(tests) == len(result["groups"])  # one test per group: the Holm family
    assert all(e["p_holm"] >= e["p"] for e in tests)
    for name in ("compare.json", "compare.md", "compare.csv", "compare.tex"):
        assert (out / name).is_file(), name
    markdown = (out / "compare.md").read_text()
    assert "Holm" in markdown and " *" in markdown and "what it does not say" in markdown
    stored = json.loads((out / "compare.json").read_text())
    assert stored["rows"]["compared"] == len(rows) and stored["rows"]["fingerprint_compared"]["rows"] == len(rows)


def test_equal_detectors_are_not_declared_different(tmp_path):
    rows = _rows(seed=3)
    a = _write(tmp_path / "a.csv", rows, 1.5, 10)
    b = _write(tmp_path / "b.csv", rows, 1.5, 11)
    result = test_script.main(["--compare", f"A={a}", f"B={b}", "--protocol", "intra", "--out", str(tmp_path / "o")])
    assert not any(e["significant"] for g in result["groups"].values() for e in g["B"]["seeds"])


def test_other_rows_are_refused_unless_intersect_and_then_counted(tmp_path, capsys):
    rows = _rows()
    a = _write(tmp_path / "a.csv", rows, 2.0, 1)
    b = _write(tmp_path / "b.csv", rows, 1.0, 2, drop={0, 1, 2, 3})
    args = ["--compare", f"A={a}", f"B={b}", "--protocol", "intra", "--out", str(tmp_path / "o")]
    assert run(test_script.main, args) == 1
    error = capsys.readouterr().err
    assert "different rows" in error and "--intersect" in error and "Traceback" not in error
    result = test_script.main([*args, "--intersect"])
    assert result["rows"]["common"] == len(rows) - 4
    assert result["rows"]["only_in_one_file"][f"A ({a})"] == 4
    assert "rows not in every file" in (tmp_path / "o" / "compare.md").read_text()


def test_labels_that_disagree_and_nothing_in_common_are_refused(tmp_path):
    rows = _rows()
    a = _write(tmp_path / "a.csv", rows, 2.0, 1)
    flipped = _write(tmp_path / "b.csv", rows, 1.0, 2, flip={5})
    with pytest.raises(CompareError, match="disagree on the label of 'gB/v001/1.png':"):
        test_script.main(["--compare", f"A={a}", f"B={flipped}", "--protocol", "intra", "--out", str(tmp_path / "o")])
    other = _write(tmp_path / "c.csv", [{**r, "path": "x" + r["path"]} for r in rows], 1.0, 2)
    with pytest.raises(CompareError, match="no test row in common"):
        test_script.main(
            ["--compare", f"A={a}", f"C={other}", "--protocol", "intra", "--intersect", "--out", str(tmp_path / "o")]
        )


def test_rows_unscored_by_either_detector_are_left_out_and_counted_by_status(tmp_path):
    rows = _rows()
    a = _write(tmp_path / "a.csv", rows, 2.0, 1, status={0: "missing-file"})
    b = _write(tmp_path / "b.csv", rows, 1.0, 2, status={1: "no-face", 2: "no-face"})
    result = test_script.main(["--compare", f"A={a}", f"B={b}", "--protocol", "intra", "--out", str(tmp_path / "o")])
    assert result["rows"]["compared"] == len(rows) - 3
    assert result["rows"]["unscored_by_status"][f"B ({b})"] == {"no-face": 2}
    assert "unscored by B" in (tmp_path / "o" / "compare.md").read_text()


def test_seeds_are_each_tested_and_summarised(tmp_path):
    rows = _rows()
    ref = [_write(tmp_path / f"r{s}.csv", rows, 2.5, 10 + s) for s in range(3)]
    other = [_write(tmp_path / f"o{s}.csv", rows, 0.8, 20 + s) for s in range(3)]
    result = test_script.main(
        [
            "--compare",
            "ref=" + ",".join(map(str, ref)),
            "other=" + ",".join(map(str, other)),
            "--protocol",
            "intra",
            "--out",
            str(tmp_path / "o"),
            "--interval",
            "delong",
        ]
    )
    overall = result["groups"]["overall"]["other"]
    assert len(overall["seeds"]) == 3 and overall["sd_difference"] > 0 and overall["mean_difference"] < 0
    assert result["tests"] == 3 * len(result["groups"])
    assert "3/3 seeds *" in (tmp_path / "o" / "compare.md").read_text()


def test_the_video_level_compares_video_scores(tmp_path):
    rows = _rows()
    a = _write(tmp_path / "a.csv", rows, 2.5, 1)
    b = _write(tmp_path / "b.csv", rows, 0.5, 2)
    result = test_script.main(
        [
            "--compare",
            f"A={a}",
            f"B={b}",
            "--protocol",
            "intra",
            "--level",
            "video",
            "--out",
            str(tmp_path / "o"),
            "--interval",
            "delong",
        ]
    )
    overall = result["groups"]["overall"]["B"]["seeds"][0]
    assert overall["unit"] == "videos" and overall["method"] == "DeLong"


def test_compare_usage_errors_are_one_sentence(tmp_path, capsys):
    rows = _rows()
    a = _write(tmp_path / "a.csv", rows, 2.0, 1)
    for args, message in (
        (["--compare", str(a), "--protocol", "intra"], "two detectors or more"),
        (["--compare", f"A={a}", f"A={a}", "--protocol", "intra"], "two detectors are named 'A'"),
        (["--compare", f"A={a}", f"B={a}", "--reference", "C", "--protocol", "intra"], "--reference 'C'"),
        (["--compare", str(tmp_path / "nothing.txt"), str(a)], "not a predictions.csv"),
        (["--compare", f"A={a}", f"B={a}"], "pass --protocol"),
        (["--compare", f"A={a}", f"B={a}", "--calibrate", "temperature"], "--compare reads the scores"),
        (["--checkpoint", "x.pt", "--intersect"], "--intersect applies to --compare only"),
    ):
        assert run(test_script.main, args) in (1, 2), args
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error, (args, error)
