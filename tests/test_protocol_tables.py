"""Tables recomputed from predictions files (no model): the protocols' test filters and groups against
closed-form AUCs, adversarial files, namespaced videos, matched reals and fold columns with holes."""

from pathlib import Path

import numpy as np
import pytest
from csv_rows import write_rows
from sklearn.metrics import roc_auc_score

import test as test_script
import train
from common.cli import run
from data.protocols import ProtocolError, resolve
from data.schema import SchemaError, load_table
from engine.evaluation.scoring import NonFiniteScoreError

GENERATORS = {"g1": ("EFS", "A"), "g2": ("FS", "A"), "g3": ("FS", "B")}


def _predictions(seed: int = 0, videos: bool = True) -> list[dict]:
    """Rows of every split; 3 frames per video; scores that differ by generator and dataset."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in ("train", "val", "test"):
        for dataset in ("A", "B"):
            for v in range(6):
                for frame in range(3):
                    rows.append(
                        {
                            "path": f"{dataset}/real/{split}{v}_{frame}.png",
                            "label": 0,
                            "split": split,
                            "forgery_type": "real",
                            "generator": "real",
                            "source_dataset": dataset,
                            "video_id": f"{v:03d}",
                            "frame": frame,
                        }
                    )
        for generator, (forgery, dataset) in GENERATORS.items():
            for v in range(5):
                for frame in range(3):
                    rows.append(
                        {
                            "path": f"{dataset}/{generator}/{split}{v}_{frame}.png",
                            "label": 1,
                            "split": split,
                            "forgery_type": forgery,
                            "generator": generator,
                            "source_dataset": dataset,
                            "video_id": f"{v:03d}_{v + 1:03d}",
                            "frame": frame,
                        }
                    )
    shift = {"real": 0.0, "g1": 1.5, "g2": 0.5, "g3": 0.2}
    for row in rows:
        row["score"] = f"{1 / (1 + np.exp(-(rng.normal(shift[row['generator']], 1.0)))):.6f}"
        if not videos:
            del row["video_id"]
    return rows


def _recompute(path: Path, protocol: str, out: Path, *extra: str) -> dict:
    return test_script.main(["--predictions", str(path), "--protocol", protocol, "--out", str(out), *extra])


def _closed_form(rows: list[dict], keep) -> float:
    chosen = [r for r in rows if r["split"] == "test" and keep(r)]
    return roc_auc_score([int(r["label"]) for r in chosen], [float(r["score"]) for r in chosen])


@pytest.mark.parametrize("protocol", ["intra", "cross-generator", "cross-forgery", "cross-dataset"])
def test_group_aucs_match_closed_form_on_the_protocols_test_rows_only(tmp_path, protocol):
    rows = _predictions()
    path = write_rows(tmp_path / "predictions.csv", rows)
    result = _recompute(path, protocol, tmp_path / "out", "--bootstrap", "20")
    groups = result["groups"]
    test_rows = [r for r in rows if r["split"] == "test"]
    assert groups["overall"]["clean"]["n"] == len(test_rows)  # train and val rows are not scored
    assert groups["overall"]["clean"]["auc"] == pytest.approx(_closed_form(rows, lambda r: True))
    for generator, (forgery, dataset) in GENERATORS.items():
        if f"generator={generator}" in groups:
            expected = _closed_form(
                rows, lambda r: r["generator"] == generator or (r["label"] == 0 and r["source_dataset"] == dataset)
            )
            assert groups[f"generator={generator}"]["clean"]["auc"] == pytest.approx(expected)
    if "forgery_type=FS" in groups:  # FS fakes come from A and B: the reals of both
        assert groups["forgery_type=FS"]["clean"]["auc"] == pytest.approx(
            _closed_form(rows, lambda r: r["forgery_type"] in ("FS", "real"))
        )
        expected = _closed_form(
            rows, lambda r: r["forgery_type"] == "EFS" or (r["label"] == 0 and r["source_dataset"] == "A")
        )
        assert groups["forgery_type=EFS"]["clean"]["auc"] == pytest.approx(expected)
    if "source_dataset=B" in groups:
        assert groups["source_dataset=B"]["clean"]["auc"] == pytest.approx(
            _closed_form(rows, lambda r: r["source_dataset"] == "B")
        )
    overall = groups["overall"]["clean"]
    assert overall["auc_ci95"] is not None and overall["bootstrap_unit"] == "videos"
    assert overall["n_videos"] == 2 * 6 + 3 * 5  # namespaced: g2 and g3 share ids such as 000_001, yet are other videos
    table = (tmp_path / "out" / "table.md").read_text()
    assert (
        "Protocol card:" in table
        and "resamples of videos, stratified by class" in table
        and "outside the protocol's test rows are not scored" in table
    )
    assert "# level: frame" in (tmp_path / "out" / "table.csv").read_text()


def test_the_bootstrap_interval_is_on_by_default_for_predictions(tmp_path):
    path = write_rows(tmp_path / "predictions.csv", _predictions())
    result = _recompute(path, "intra", tmp_path / "out")
    assert result["groups"]["overall"]["clean"]["auc_ci95"] is not None
    assert "AUC 95% CI" in (tmp_path / "out" / "table.md").read_text()


def test_nonfinite_and_missing_scores_stop_with_the_rows_named_or_are_reported_when_allowed(tmp_path, capsys):
    rows = _predictions()
    test_index = next(i for i, r in enumerate(rows) if r["split"] == "test")
    rows[test_index]["score"] = "nan"
    rows[test_index + 1]["score"] = ""
    rows[0]["score"] = "inf"  # a train row: not a test row, so not in any table
    path = write_rows(tmp_path / "predictions.csv", rows)
    with pytest.raises(NonFiniteScoreError, match=f"2 test-row scores .*line {test_index + 2} .*--allow-nonfinite"):
        _recompute(path, "intra", tmp_path / "out")
    assert (
        run(test_script.main, ["--predictions", str(path), "--protocol", "intra", "--out", str(tmp_path / "o2")]) == 1
    )
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: 2 test-row scores") and "\n" not in message
    result = _recompute(path, "intra", tmp_path / "out", "--allow-nonfinite", "--bootstrap", "0")
    assert result["groups"]["overall"]["clean"]["n_unscored"] == 2
    assert "overall: 2 row(s) without a finite score left out" in result["console"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda rows: rows[3].update(score="high"), "line 5: score 'high' is not a number"),
        (lambda rows: rows[3].update(label="0.5"), "label '0.5' is not 0 .real. or 1 .fake."),
        (lambda rows: rows[3].update(label="2"), "label '2' is not 0"),
        (lambda rows: rows[3].update(frame="x"), "frame 'x' is not a whole number"),
    ],
)
def test_bad_predictions_files_fail_with_one_sentence(tmp_path, edit, message):
    rows = _predictions()
    edit(rows)
    path = write_rows(tmp_path / "predictions.csv", rows)
    with pytest.raises(SchemaError, match=message):
        _recompute(path, "intra", tmp_path / "out")


def test_a_file_without_score_or_rows_is_named(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "score"} for r in _predictions()]
    with pytest.raises(SchemaError, match="no 'score' column"):
        _recompute(write_rows(tmp_path / "no-score.csv", rows), "intra", tmp_path / "out")
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label,score\n")
    with pytest.raises(SchemaError, match="no rows"):
        _recompute(empty, "intra", tmp_path / "out")


def test_rows_without_video_id_are_videos_of_their_own_and_fakes_are_never_merged(tmp_path):
    rows = _predictions()
    for row in rows:
        if row["split"] == "test" and row["generator"] in ("g1", "real"):
            row["video_id"] = ""  # used to merge every such fake (and real) into one pseudo-video '' with both labels
    path = write_rows(tmp_path / "predictions.csv", rows)
    result = _recompute(path, "intra", tmp_path / "out", "--bootstrap", "0")
    overall = result["groups"]["overall"]["clean"]
    blank = sum(1 for r in rows if r["split"] == "test" and r["video_id"] == "")
    assert overall["n_videos"] == blank + 2 * 5  # g2 and g3 keep their 5 videos each
    assert overall["video_auc"] is not None


def test_no_split_column_takes_every_row_as_a_test_row_and_says_so(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "split"} for r in _predictions()]
    result = _recompute(write_rows(tmp_path / "p.csv", rows), "intra", tmp_path / "out", "--bootstrap", "0")
    assert result["groups"]["overall"]["clean"]["n"] == len(rows)
    assert any("no split column" in line for line in result["card"])


def test_a_fake_without_generator_is_a_visible_group_not_a_silent_merge(tmp_path):
    rows = _predictions()
    for row in rows:
        if row["split"] == "test" and row["generator"] == "g3":
            row["generator"] = ""
    result = _recompute(write_rows(tmp_path / "p.csv", rows), "cross-generator", tmp_path / "out", "--bootstrap", "0")
    assert "generator=(missing)" in result["groups"]


def test_a_hole_in_the_fold_column_is_one_error_before_any_run_is_written(tmp_path):
    rows = _predictions()
    next(r for r in rows if r["split"] == "train" and r["label"] == 1)["generator"] = ""
    path = write_rows(tmp_path / "splits.csv", rows)
    out = tmp_path / "runs"
    with pytest.raises(ProtocolError, match=r"1 fake training row\(s\) .* have no generator \(e.g. line \d+\)"):
        train.main(
            [
                "--csv",
                str(path),
                "--protocol",
                "cross-generator",
                "--fold",
                "all",
                "--out",
                str(out),
                "--config",
                "cael_demo",
            ]
        )
    assert not out.exists()


def test_cross_generator_training_reals_are_matched_to_the_folds_source_dataset(tmp_path):
    table = load_table(write_rows(tmp_path / "splits.csv", _predictions()))
    sources = np.asarray(table.column("source_dataset"))
    matched = resolve("cross-generator", table, "g3")
    assert set(sources[matched.train][table.labels[matched.train] == 0]) == {"B"}
    assert set(sources[matched.val][table.labels[matched.val] == 0]) == {"B"}
    everything = resolve("cross-generator", table, "g3", reals="all")
    assert set(sources[everything.train][table.labels[everything.train] == 0]) == {"A", "B"}
    assert len(matched.test) == len(everything.test)  # the test side is the same
    with pytest.raises(ProtocolError, match="data.reals"):
        resolve("cross-generator", table, "g3", reals="some")


def test_roc_plot_with_log_fpr_and_many_groups(tmp_path, monkeypatch):
    from engine import figures

    rows = _predictions()
    for i, row in enumerate(rows):
        if row["label"] == 1 and row["split"] == "test":
            row["generator"] = f"gen{i % 14:02d}"  # 14 curves + overall: beyond ten colours
    drawn, save = [], figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda figure, path, **k: (drawn.append(figure), save(figure, path))[1])
    result = _recompute(
        write_rows(tmp_path / "p.csv", rows), "cross-generator", tmp_path / "out", "--bootstrap", "0", "--roc-log-fpr"
    )
    assert (tmp_path / "out" / "roc.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "roc.pdf").read_bytes().startswith(b"%PDF")
    (panel,) = [axis for axis in drawn[0].axes if axis.get_visible()]
    assert panel.get_xscale() == "log" and panel.get_title() == "by generator"
    curves = panel.get_lines()
    assert len(curves) == 15 and len({(c.get_color(), str(c._unscaled_dash_pattern)) for c in curves}) == 15
    assert len(result["groups"]) == 15
