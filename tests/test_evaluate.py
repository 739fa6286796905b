"""test.py end to end: reports, recomputation from predictions, fold matrices, perturbations and clear errors."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from csv_rows import read_rows, write_rows
from runs import quick_args

import test as test_script
import train
from data.make_demo import make_demo
from data.perturb import parse_perturbations
from data.protocols import ProtocolError
from data.schema import SchemaError
from engine.evaluation.folds import evaluate_runs
from model.hub import CheckpointMismatchError

# the shared quick run (tests/runs.py), one epoch of 3 steps with the demo config's own augmentation
QUICK = quick_args(train__epochs=1, train__max_steps_per_epoch=3, data__augment="[{name: hflip, p: 0.5}]")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(demo CSV, best.pt) of a quick fine-grained run: enough to exercise every report."""
    root = tmp_path_factory.mktemp("evaluate")
    csv_path = make_demo(root / "data", identities=8, fakes_per_generator=12)
    run = root / "run"
    train.main(
        [
            "--csv",
            str(csv_path),
            "--out",
            str(run),
            *QUICK,
            "--set",
            "model.fine-grained-heads=true",
            "--set",
            "model.level3-num-classes=6",
            "--set",
            "loss.name=multitask",
        ]
    )
    return csv_path, run / "best.pt"


def _test_rows(csv_path: Path) -> list[dict]:
    return [r for r in csv.DictReader(open(csv_path)) if r["split"] == "test"]


def test_report_files_and_predictions(trained, tmp_path):
    csv_path, checkpoint = trained
    out = tmp_path / "eval"
    result = test_script.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--perturb",
            "jpeg:70,resize:0.5",
            "--bootstrap",
            "50",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    for name in (
        "metrics.json",
        "table.md",
        "table.csv",
        "table.tex",
        "roc.png",
        "roc.pdf",
        "predictions.csv",
        "confusion_level2.png",
        "confusion_level2.pdf",
        "confusion_level3.png",
        "calibration.md",
        "calibration.csv",
        "calibration.tex",
        "reliability.png",
        "reliability.pdf",
        "risk_coverage.png",
        "risk_coverage.pdf",
    ):
        assert (out / name).is_file(), name
    predictions = list(csv.DictReader(open(out / "predictions.csv")))
    test_rows = _test_rows(csv_path)
    assert sorted(p["path"] for p in predictions) == sorted(r["path"] for r in test_rows)  # every test row once
    assert {
        "score",
        "score_jpeg70",
        "score_resize0.5",
        "generator",
        "forgery_type",
        "source_dataset",
        "video_id",
        "pred_level2",
        "status",
        "calibrated",
    } <= set(predictions[0])
    assert {p["status"] for p in predictions} == {"scored"}
    metrics = json.loads((out / "metrics.json").read_text())
    overall = metrics["groups"]["overall"]["clean"]
    assert overall["n"] == len(test_rows) and 0.0 <= overall["auc"] <= 1.0 and len(overall["auc_ci95"]) == 2
    assert "auc" in metrics["groups"]["overall"]["jpeg70"]
    assert set(metrics["attribution"]) == {"level2", "level3"}
    assert np.asarray(metrics["attribution"]["level2"]["confusion"]).sum() == metrics["attribution"]["level2"]["n"]
    assert "generator=swap-blend" in metrics["groups"] and "forgery_type=FS" in metrics["groups"]
    header = next(csv.reader(open(out / "table.csv")))
    assert header[:4] == ["Group", "real", "fake", "AUC"] and "AUC jpeg70" in header
    tex = (out / "table.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "swap-blend" in tex
    assert "_" not in tex.replace("\\_", "")  # every underscore escaped
    assert "overall" in result["console"]
    # the threshold calibrated on the validation rows at selection time travels in best.pt and is used
    import torch

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert set(saved["calibration"]) == {"threshold", "method", "split", "epoch", "probability", "uncertain"}
    assert saved["calibration"]["split"] == "val" and saved["calibration"]["epoch"] == saved["epoch"]
    # the temperature fitted on the same validation rows, and the uncertain band of its probabilities
    assert saved["calibration"]["probability"]["method"] == "temperature"
    assert saved["calibration"]["probability"]["fitted_on"]["rows"] == 32
    assert {"low", "high", "risk", "coverage"} <= set(saved["calibration"]["uncertain"])
    assert metrics["probability_map"] == saved["calibration"]["probability"]
    assert set(overall["calibration"]) == {"ece", "ece_top_label", "brier", "nll", "aurc"}
    assert overall["calibration_calibrated"]["nll"] is not None
    assert metrics["coverage"]["rows"] == metrics["coverage"]["scored"] == len(test_rows)
    receipts = metrics["receipts"]
    assert len(receipts["checkpoint_sha256"]) == 64 and receipts["test_rows"]["rows"] == len(test_rows)
    assert (
        overall["calibrated_threshold"] == saved["calibration"]["threshold"] and overall["acc_calibrated"] is not None
    )
    assert {"Acc@0.5", "Acc@val-thr", "Acc oracle"} <= set(header)
    card = (out / "table.md").read_text().split("Protocol card:")[1]
    for needed in (
        "level: frame",
        "frames per video",
        "reals:",
        "selection: best.pt",
        "epoch",
        "seed 0",
        "code version",
        "bootstrap, 50 resamples of videos",
        "DeepfakeBench",
        "coverage: 32 of 32 test rows",
        "calibrated (temperature T =",
    ):
        assert needed in card, needed
    assert "protocol card:" in result["console"] and "code version" in (out / "table.tex").read_text()


def test_tables_can_be_recomputed_from_predictions_without_the_model(trained, tmp_path):
    _, checkpoint = trained
    out = tmp_path / "eval"
    test_script.main(
        ["--checkpoint", str(checkpoint), "--out", str(out), "--bootstrap", "0", "--quiet", "--workers", "0"]
    )
    again = test_script.main(
        ["--predictions", str(out / "predictions.csv"), "--protocol", "intra", "--out", str(tmp_path / "again")]
    )
    original = json.loads((out / "metrics.json").read_text())["groups"]
    for group, entry in again["groups"].items():
        for key in ("auc", "ap", "eer", "acc", "n"):
            assert entry["clean"][key] == pytest.approx(original[group]["clean"][key]), (group, key)


def test_a_group_with_one_class_reports_na_with_the_reason(trained, tmp_path):
    csv_path, checkpoint = trained
    rows = list(csv.DictReader(open(csv_path)))
    for row in rows:  # swap-warp's test fakes from a dataset without test reals
        if row["split"] == "test" and row["generator"] == "swap-warp":
            row["source_dataset"] = "DemoFace-C"
    edited = write_rows(tmp_path / "no-reals-c.csv", rows)
    out = tmp_path / "eval"
    test_script.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--csv",
            str(edited),
            "--data-root",
            str(csv_path.parent),
            "--out",
            str(out),
            "--bootstrap",
            "0",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    groups = json.loads((out / "metrics.json").read_text())["groups"]
    assert groups["generator=swap-warp"]["clean"]["auc"] is None  # DemoFace-C fakes, no DemoFace-C reals
    assert groups["generator=swap-warp"]["clean"]["na_reason"] == "no real images in this group"
    assert groups["generator=swap-blend"]["clean"]["auc"] is not None
    assert "n/a: swap-warp: no real images in this group" in (out / "table.md").read_text()


def test_fold_runs_assemble_the_train_by_test_matrix(trained, tmp_path, capsys):
    csv_path, _ = trained
    runs = tmp_path / "xforgery"
    train.main(
        [
            "--csv",
            str(csv_path),
            "--protocol",
            "cross-forgery",
            "--fold",
            "all",
            "--out",
            str(runs),
            *QUICK,
            "--set",
            "train.max-steps-per-epoch=1",
        ]
    )
    assert sorted(p.name for p in runs.iterdir()) == ["AM", "EFS", "FS"]
    unfinished = runs / "unfinished"  # a run killed before its first best.pt: left out, and said once
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((runs / "AM" / "config.yaml").read_text())
    capsys.readouterr()
    result = test_script.main(
        ["--runs", str(runs), "--protocol", "cross-forgery", "--bootstrap", "0", "--quiet", "--workers", "0"]
    )
    printed = "".join(capsys.readouterr())
    assert printed.count("no best.pt (unfinished run?), left out") == 1, printed
    shutil.rmtree(unfinished)
    out = Path(result["out_dir"])
    assert result["header"] == ["Train \\ Test", "AM", "EFS", "FS", "In-domain", "Avg unseen"]
    assert [row[0] for row in result["rows"]] == ["AM", "EFS", "FS"]
    for index, row in enumerate(result["rows"]):  # the diagonal in its own column, the average over unseen columns only
        cells = [float(c) for c in row[1:4]]
        assert float(row[4]) == cells[index]
        assert float(row[5]) == pytest.approx(np.mean([c for i, c in enumerate(cells) if i != index]), abs=0.006)
    assert "Avg unseen: mean over the other columns only" in (out / "matrix.md").read_text()
    # a second seed of one fold: mean +- std over seeds (the same weights here, so std 0);
    # anything else differing is an error
    import yaml

    seeds = tmp_path / "seeds"
    for name, seed in (("EFS-s0", 0), ("EFS-s1", 1)):
        shutil.copytree(runs / "EFS", seeds / name)
        config = yaml.safe_load((seeds / name / "config.yaml").read_text())
        config["train"]["seed"] = seed
        (seeds / name / "config.yaml").write_text(yaml.safe_dump(config))
    video = test_script.main(
        [
            "--runs",
            str(seeds),
            "--protocol",
            "cross-forgery",
            "--bootstrap",
            "0",
            "--quiet",
            "--workers",
            "0",
            "--level",
            "video",
        ]
    )
    assert len(video["rows"]) == 1 and video["rows"][0][0] == "EFS" and " ± 0.00" in video["rows"][0][1]
    assert "runs per fold: 2 (mean ± sample std over seeds)" in video["console"] and "level: video" in video["console"]
    efs = video["folds"]["EFS"][0]["groups"]["forgery_type=AM"]["clean"]["video_auc"]
    assert video["rows"][0][1] == f"{100 * efs:.2f} ± 0.00"
    config = yaml.safe_load((seeds / "EFS-s1" / "config.yaml").read_text())
    config["optim"]["lr"] = 0.5
    (seeds / "EFS-s1" / "config.yaml").write_text(yaml.safe_dump(config))
    # test.py --runs makes such a folder a comparison (one row per run); the matrix itself refuses to average them
    from engine.evaluation.comparison_table import find_runs, is_comparison

    assert is_comparison(find_runs(seeds))
    with pytest.raises(ValueError, match="differ in more than the seed .*optim.lr"):
        evaluate_runs(
            seeds,
            "cross-forgery",
            config_overrides={},
            out_dir=tmp_path / "refused",
            perturbations=[],
            device=torch.device("cpu"),
            workers=0,
            progress=False,
        )
    for name in ("matrix.md", "matrix.csv", "matrix.tex", "metrics.json"):
        assert (out / name).is_file()
    assert (out / "EFS" / "predictions.csv").is_file()
    # the video-level matrix is written beside the frame-level one, never over it
    frame_matrix = (out / "matrix.md").read_text()
    test_script.main(
        [
            "--runs",
            str(runs),
            "--protocol",
            "cross-forgery",
            "--bootstrap",
            "0",
            "--quiet",
            "--workers",
            "0",
            "--level",
            "video",
        ]
    )
    assert (out / "matrix.md").read_text() == frame_matrix
    assert "video-level AUC" in (out / "matrix-video.md").read_text() and (out / "metrics-video.json").is_file()


def test_results_of_other_settings_are_written_beside_the_earlier_ones_or_said(trained, tmp_path):
    """--perturb and another --csv get folders of their own; a report into a folder holding one of other settings says
    so on the card and the console."""
    csv_path, checkpoint = trained
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "best.pt")
    common = ["--checkpoint", str(run / "best.pt"), "--quiet", "--workers", "0", "--bootstrap", "0"]
    plain = test_script.main(common)
    assert Path(plain["out_dir"]) == run / "eval-intra"
    first = (run / "eval-intra" / "table.md").read_text()
    perturbed = test_script.main([*common, "--perturb", "jpeg:70"])
    assert Path(perturbed["out_dir"]) == run / "eval-intra-perturb-jpeg70"
    shutil.copy(csv_path, tmp_path / "other.csv")
    elsewhere = test_script.main([*common, "--csv", str(tmp_path / "other.csv"), "--data-root", str(csv_path.parent)])
    assert Path(elsewhere["out_dir"]) == run / "eval-intra-on-other"
    assert (run / "eval-intra" / "table.md").read_text() == first  # the first report is untouched
    again = test_script.main([*common[:-2], "--bootstrap", "20", "--interval", "delong"])
    card = (run / "eval-intra" / "table.md").read_text()
    assert "replaces the earlier report in this folder, of other settings (interval: 'auto' -> 'delong'" in card
    assert again["settings"]["interval"] == "delong"


def test_clear_errors(trained, tmp_path):
    csv_path, checkpoint = trained
    with pytest.raises(CheckpointMismatchError, match="cg-dim: checkpoint 96 vs requested 384"):
        test_script.main(["--checkpoint", str(checkpoint), "--config", "cael", "--quiet"])
    rows = [{k: v for k, v in r.items() if k != "generator"} for r in read_rows(csv_path)]
    no_generator = write_rows(tmp_path / "no-generator.csv", rows)
    with pytest.raises(ProtocolError, match="generator"):
        test_script.main(
            [
                "--checkpoint",
                str(checkpoint),
                "--csv",
                str(no_generator),
                "--data-root",
                str(csv_path.parent),
                "--protocol",
                "cross-generator",
                "--fold",
                "swap-blend",
                "--quiet",
            ]
        )
    with pytest.raises(ValueError, match="KIND:AMOUNT"):
        parse_perturbations("jpeg70")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        test_script.main(["--checkpoint", str(tmp_path / "missing.pt")])


def test_a_data_root_without_the_images_is_named_before_scoring(trained, tmp_path):
    csv_path, checkpoint = trained
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError) as error:
        test_script.main(["--checkpoint", str(checkpoint), "--data-root", str(tmp_path / "empty"), "--quiet"])
    assert f"of {csv_path} is under the data root {tmp_path / 'empty'} (none of " in str(error.value)
    assert "on-error" not in str(error.value)


def test_perturbations_are_deterministic_and_change_the_image():
    import torch

    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    for perturbation in parse_perturbations("jpeg:50,blur:1.5,resize:0.5,noise:8"):
        first, second = perturbation(image, 7), perturbation(image, 7)
        assert first.dtype == torch.uint8 and first.shape == image.shape
        assert torch.equal(first, second) and not torch.equal(first, image), perturbation.name


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_tables_compile(trained, tmp_path):
    import subprocess

    _, checkpoint = trained
    out = tmp_path / "eval"
    test_script.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--bootstrap",
            "20",
            "--quiet",
            "--workers",
            "0",
            "--perturb",
            "blur:1.0",
        ]
    )
    document = tmp_path / "doc.tex"
    document.write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\\begin{document}\\input{"
        + str(out / "table.tex")
        + "}\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-1500:]


def test_a_nonfinite_model_score_stops_evaluation_naming_the_rows(trained, tmp_path):
    import torch

    from data.protocols import resolve
    from data.schema import load_table
    from engine.config import load_config
    from engine.evaluation.scoring import NonFiniteScoreError, score_table

    class Overflowing(torch.nn.Module):  # an fp16 overflow: NaN logits for the first image of each batch
        def forward(self, images):
            logits = torch.zeros(len(images), 2)
            logits[0] = float("nan")
            return logits

    csv_path, _ = trained
    table = load_table(csv_path)
    rows = resolve("intra", table).test
    config = load_config("cael_demo", ["data.workers=0", "eval.batch-size=16"])
    with pytest.raises(NonFiniteScoreError, match=r"model scores of .* are NaN, infinite or missing \(line \d+ \("):
        score_table(Overflowing(), table, rows, config, torch.device("cpu"), [], workers=0, progress=False)
    config["eval"]["allow-nonfinite"] = True
    scores, _, status = score_table(
        Overflowing(), table, rows, config, torch.device("cpu"), [], workers=0, progress=False
    )
    assert np.isnan(scores["clean"][rows]).sum() == -(-len(rows) // 16)
    assert (status[rows] == "non-finite").sum() == -(-len(rows) // 16)  # each row's status says why
    assert set(status[rows]) == {"scored", "non-finite"}


def test_scores_are_reused_for_the_same_checkpoint_rows_and_settings(trained, tmp_path, monkeypatch):
    """A second evaluation into the same folder rereads OUT/scores.npz (the same tables, digit for digit) instead of
    running the model; another checkpoint, CSV or scoring setting, or --rescore, runs the model again."""
    import engine.evaluation.evaluate as evaluate_module

    csv_path, checkpoint = trained
    out = tmp_path / "eval"
    common = ["--checkpoint", str(checkpoint), "--csv", str(csv_path), "--out", str(out), "--quiet", "--workers", "0"]
    common += ["--bootstrap", "0"]
    first = test_script.main([*common[:-1], "50"])
    assert (out / "scores.npz").is_file() and not first["scores_reused"]
    real_score_table, calls = evaluate_module.score_table, []

    def counting_score_table(*args, **kwargs):
        calls.append(1)
        return real_score_table(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "score_table", counting_score_table)
    again = test_script.main([*common[:-1], "50", "--interval", "delong"])  # reporting only: reused
    assert calls == [] and again["scores_reused"]
    assert "scores reused from scores.npz" in (out / "table.md").read_text()
    for group, entry in first["groups"].items():
        assert again["groups"][group]["clean"]["auc"] == entry["clean"]["auc"]
    test_script.main([*common, "--rescore"])
    assert calls == [1]
    test_script.main([*common, "--perturb", "jpeg:70"])  # a score-changing setting
    assert calls == [1, 1]
    copied = tmp_path / "copy.pt"
    torch.save({**torch.load(checkpoint, weights_only=False), "note": "other bytes"}, copied)
    test_script.main([*common[:1], str(copied), *common[2:]])
    assert calls == [1, 1, 1]
    (out / "scores.npz").write_bytes(b"not a zip")  # unreadable: scored again, with a warning, never an error
    test_script.main(common)
    assert calls == [1, 1, 1, 1]


def test_every_test_row_is_accounted_for_with_its_status(trained, tmp_path, capsys):
    """A CSV with a missing image, an undecodable one and a video in which no face was found (its placeholder row,
    as the builders write it): each row's status in predictions.csv, the coverage on the card, --missing and
    --min-coverage."""
    from common.cli import run

    csv_path, checkpoint = trained
    rows = list(csv.DictReader(open(csv_path)))
    test = [i for i, r in enumerate(rows) if r["split"] == "test"]
    broken = tmp_path / "data"
    broken.mkdir()
    for row in rows:  # absolute paths: the copy reads the demo's images where they are
        row["path"] = str(csv_path.parent / row["path"])
        row["extraction_status"] = "ok"
    rows[test[0]]["path"] = str(broken / "gone.png")
    (broken / "corrupt.png").write_bytes(b"not an image at all")
    rows[test[1]]["path"] = str(broken / "corrupt.png")
    fake = next(r for i, r in enumerate(rows) if i in test and r["label"] == "1")
    rows.append({**fake, "path": "videos/clip.mp4", "video_id": "no-face-clip", "extraction_status": "no-face"})
    edited = tmp_path / "edited.csv"
    with open(edited, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    common = ["--checkpoint", str(checkpoint), "--csv", str(edited), "--quiet", "--workers", "0", "--bootstrap", "0"]
    result = test_script.main([*common, "--out", str(tmp_path / "eval")])
    statuses = {p["path"]: p["status"] for p in csv.DictReader(open(tmp_path / "eval" / "predictions.csv"))}
    assert statuses[str(broken / "gone.png")] == "missing-file"
    assert statuses[str(broken / "corrupt.png")] == "unreadable"
    assert statuses["videos/clip.mp4"] == "no-face"
    assert list(statuses.values()).count("scored") == len(test) - 2
    coverage = result["coverage"]
    assert coverage["rows"] == len(test) + 1 and coverage["scored"] == len(test) - 2
    assert coverage["statuses"] == {"scored": len(test) - 2, "missing-file": 1, "unreadable": 1, "no-face": 1}
    assert coverage["videos"] == coverage["scored_videos"] + 1  # the face-less video; the others keep a frame
    card = (tmp_path / "eval" / "table.md").read_text()
    assert f"coverage: {len(test) - 2} of {len(test) + 1} test rows" in card
    assert "unscored: 1 missing-file, 1 no-face, 1 unreadable, left out of every metric (--missing exclude)" in card
    assert result["groups"]["overall"]["clean"]["n"] == len(test) - 2
    assert "Scored" in (tmp_path / "eval" / "table.csv").read_text().splitlines()[0]
    # counted as fakes: every test row enters the metrics, the face-less fake with score 1
    as_fake = test_script.main([*common, "--out", str(tmp_path / "as-fake"), "--missing", "as-fake"])
    assert as_fake["groups"]["overall"]["clean"]["n"] == len(test) + 1
    assert "counted as fakes with score 1 (--missing as-fake)" in (tmp_path / "as-fake" / "table.md").read_text()
    # too few scored: the report is written, then one sentence and exit status 1
    assert run(test_script.main, [*common, "--out", str(tmp_path / "strict"), "--min-coverage", "0.99"]) == 1
    error = capsys.readouterr().err
    assert f"only {len(test) - 2} of {len(test) + 1} test rows were scored" in error and "Traceback" not in error
    assert (tmp_path / "strict" / "table.md").is_file()
    # the recomputed tables read the statuses back: the same coverage, no error for the empty scores
    recomputed = test_script.main(
        [
            "--predictions",
            str(tmp_path / "eval" / "predictions.csv"),
            "--protocol",
            "intra",
            "--bootstrap",
            "0",
            "--out",
            str(tmp_path / "again"),
        ]
    )
    assert recomputed["coverage"]["statuses"] == coverage["statuses"]
    assert recomputed["groups"]["overall"]["clean"]["auc"] == pytest.approx(
        result["groups"]["overall"]["clean"]["auc"], abs=1e-5
    )


def test_a_map_fitted_by_test_py_is_reported_beside_the_raw_numbers(trained, tmp_path):
    """--calibrate on the protocol's validation rows (the model scores them), and on a predictions.csv of held-out
    rows without the model; calibration.json is written for predict.py --calibration."""
    csv_path, checkpoint = trained
    common = ["--checkpoint", str(checkpoint), "--quiet", "--workers", "0", "--bootstrap", "0"]
    result = test_script.main([*common, "--out", str(tmp_path / "eval"), "--calibrate", "platt"])
    stored = json.loads((tmp_path / "eval" / "calibration.json").read_text())
    assert stored["method"] == "platt" and stored["fitted_on"]["rows"] == 32
    assert "validation rows of demo.csv" in stored["fitted_on"]["source"]
    assert result["probability_map"] == stored
    assert "calibrated (Platt scaling" in (tmp_path / "eval" / "table.md").read_text()
    calibration_table = (tmp_path / "eval" / "calibration.md").read_text()
    assert "ECE cal." in calibration_table and "Platt scaling" in calibration_table
    recomputed = test_script.main(
        [
            "--predictions",
            str(tmp_path / "eval" / "predictions.csv"),
            "--protocol",
            "intra",
            "--bootstrap",
            "0",
            "--calibrate",
            "isotonic",
            "--calibration-csv",
            str(tmp_path / "eval" / "predictions.csv"),
            "--out",
            str(tmp_path / "recomputed"),
        ]
    )
    assert recomputed["probability_map"]["method"] == "isotonic"
    on_itself = recomputed["groups"]["overall"]["clean"]["calibration_calibrated"]["brier"]
    assert on_itself <= recomputed["groups"]["overall"]["clean"]["calibration"]["brier"]  # fitted on these rows


def test_a_checkpoint_without_a_calibration_map_loads_and_says_so(trained, tmp_path, capsys):
    """A best.pt written before maps were fitted (only the threshold): test.py and predict.py take it, and say that
    the probabilities are the model's own."""
    import predict
    from common.checkpoint import read_checkpoint, save_checkpoint

    csv_path, checkpoint = trained
    old = read_checkpoint(checkpoint)
    old["calibration"] = {k: old["calibration"][k] for k in ("threshold", "method", "split", "epoch")}
    save_checkpoint(tmp_path / "old.pt", old)
    result = test_script.main(
        [
            "--checkpoint",
            str(tmp_path / "old.pt"),
            "--quiet",
            "--workers",
            "0",
            "--bootstrap",
            "0",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert result["probability_map"] is None and "calibration_calibrated" not in result["groups"]["overall"]["clean"]
    assert "probabilities: the model's own (no calibration map stored or fitted)" in result["console"]
    image = next(r["path"] for r in read_rows(csv_path) if r["split"] == "test")
    predicted = predict.main(
        [
            "--checkpoint",
            str(tmp_path / "old.pt"),
            str(csv_path.parent / image),
            "--no-detect",
            "--quiet",
            "--out",
            str(tmp_path / "predicted"),
        ]
    )
    assert "stores no calibration map" in capsys.readouterr().out
    (entry,) = predicted["head"]
    assert entry["probability"] == entry["score"] and entry["verdict"] in ("real", "fake")
