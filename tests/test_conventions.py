"""``--conventions``: each group's numbers as DeepfakeBench's and UnivFD's own code computes them.

The oracles below restate the references' functions plainly (slow, per-row Python, as their code runs): DeepfakeBench
``training/metrics/utils.py: get_test_metrics`` and UnivFD ``validate.py: calculate_acc / find_best_threshold``.
They are compared value by value with ``engine.evaluation.conventions`` on FF++-shaped predictions: one video name
under four method folders, tied scores, scores of exactly 0.5, reals not first in the file.
"""

import json
from copy import deepcopy

import numpy as np
import pytest
from csv_rows import write_rows
from sklearn.metrics import accuracy_score, auc, average_precision_score, roc_curve

import test as test_script
from common.cli import run
from data.schema import load_table
from engine.evaluation import conventions
from engine.evaluation.metrics import compute_metrics, equal_error_rate

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")  # the oracles
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


# ---- the oracles: the references' computations, restated literally ----------------------------------------------


def deepfakebench_oracle(y_pred, y_true, img_names):
    """get_test_metrics: sklearn's ROC (collinear points dropped), the vertex EER, Acc with > 0.5, and a video AUC
    over the paths' parent folder names (frames stacked as strings, then summed in order)."""
    fpr, tpr, _ = roc_curve(y_true, y_pred, pos_label=1)
    result = {"auc": auc(fpr, tpr), "eer": fpr[np.nanargmin(np.absolute((1 - tpr) - fpr))]}
    result["ap"] = average_precision_score(y_true, y_pred)
    result["acc"] = ((y_pred > 0.5).astype(int) == np.clip(y_true, 0, 1)).sum().item() / len(y_pred)
    videos = {}
    for item in np.transpose(np.stack((img_names, y_pred, y_true)), (1, 0)):
        parts = item[0].split("\\") if "\\" in item[0] else item[0].split("/")
        videos.setdefault(parts[-2], []).append(item)
    video_pred, video_label = [], []
    for frames in videos.values():
        pred_sum, label_sum, count = 0, 0, 0
        for frame in frames:
            pred_sum += float(frame[1])
            label_sum += int(frame[2])
            count += 1
        video_pred.append(pred_sum / count)
        video_label.append(int(label_sum / count))
    fpr, tpr, _ = roc_curve(video_label, video_pred)
    result["video_auc"] = auc(fpr, tpr)
    fpr[np.nanargmin(np.absolute((1 - tpr) - fpr))]  # the video EER: raises where every video is of one class
    return result


def univfd_best_threshold_oracle(y_true, y_pred):
    """find_best_threshold: assumes the first half real; else the last score whose >= accuracy is highest."""
    n = y_true.shape[0]
    if y_pred[0 : n // 2].max() <= y_pred[n // 2 : n].min():
        return (y_pred[0 : n // 2].max() + y_pred[n // 2 : n].min()) / 2
    best_acc, best_thres = 0, 0
    for thres in y_pred:
        temp = deepcopy(y_pred)
        temp[temp >= thres] = 1
        temp[temp < thres] = 0
        acc = (temp == y_true).sum() / n
        if acc >= best_acc:
            best_thres, best_acc = thres, acc
    return best_thres


def univfd_oracle(y_true, y_pred):
    """validate(find_thres=True) on rows put reals first (each class in file order), as its code expects them."""
    order = np.concatenate([np.flatnonzero(y_true == 0), np.flatnonzero(y_true == 1)])
    y_true, y_pred = y_true[order], y_pred[order]

    def calculate_acc(thres):
        real = accuracy_score(y_true[y_true == 0], y_pred[y_true == 0] > thres)
        fake = accuracy_score(y_true[y_true == 1], y_pred[y_true == 1] > thres)
        return real, fake, accuracy_score(y_true, y_pred > thres)

    real_acc, fake_acc, acc = calculate_acc(0.5)
    best = univfd_best_threshold_oracle(y_true, y_pred)
    return {
        "ap": average_precision_score(y_true, y_pred),
        "acc": acc,
        "real_acc": real_acc,
        "fake_acc": fake_acc,
        "best_threshold": best,
        "best_acc": calculate_acc(best)[2],
    }


# ---- FF++-shaped predictions ---------------------------------------------------------------------------------------


def ffpp_rows(seed: int = 0, videos: int = 6, frames: int = 4) -> list[dict]:
    """Reals (original_sequences/.../000/) and four methods' fakes (.../<method>/.../000_001/), shuffled so reals are
    not first; scores rounded to two decimals (ties) with some exactly 0.5."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(videos):
        for f in range(frames):
            rows.append({"path": f"original_sequences/youtube/c23/frames/{v:03d}/{f:04d}.png", "label": 0})
            for method in METHODS:
                rows.append(
                    {"path": f"manipulated_sequences/{method}/c23/frames/{v:03d}_{v + 1:03d}/{f:04d}.png", "label": 1}
                )
    for row in rows:
        shift = 0.6 if row["label"] else -0.2
        score = min(1.0, max(0.0, rng.normal(0.5 + shift * 0.4, 0.25)))
        row["score"] = 0.5 if rng.random() < 0.1 else round(score, 2)
        row["split"] = "test"
        row["forgery_type"] = "FS" if row["label"] else "real"
        row["generator"] = row["path"].split("/")[1] if row["label"] else "real"
        row["source_dataset"] = "FF++"
        row["video_id"] = row["path"].split("/")[-2]
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def _arrays(rows):
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    return labels, scores, [r["path"] for r in rows]


def _assert_same(ours: dict, theirs: dict) -> None:
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(float(value), rel=1e-12, abs=1e-15), key


@pytest.mark.parametrize("seed", range(8))
def test_both_conventions_equal_the_references_on_ffpp_shaped_groups(seed):
    labels, scores, paths = _arrays(ffpp_rows(seed))
    assert (scores == 0.5).any() and not (np.diff(labels) >= 0).all()  # reals not first
    for method in (None, *METHODS):  # overall, then each method against the reals
        keep = np.array([label == 0 or method is None or f"/{method}/" in p for label, p in zip(labels, paths)])
        group_paths = [p for p, k in zip(paths, keep) if k]
        ours = conventions.deepfakebench_metrics(labels[keep], scores[keep], group_paths)
        _assert_same(ours, deepfakebench_oracle(scores[keep], labels[keep], np.array(group_paths)))
        _assert_same(conventions.univfd_metrics(labels[keep], scores[keep]), univfd_oracle(labels[keep], scores[keep]))


@pytest.mark.parametrize("seed", range(40))
def test_random_small_groups_with_ties_equal_the_references(seed):
    """Few distinct scores (many ties), unbalanced classes, any order, scores outside [0, 1] now and then."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(3, 30))
    labels = rng.integers(0, 2, n)
    labels[:2] = [1, 0]
    scores = rng.choice([0.0, 0.2, 0.5, 0.5, 0.7, 1.0, 1.5 if seed % 5 == 0 else 0.9], n)
    folders = rng.integers(0, 4, n)
    names = [("fake" if label and seed % 2 else "v") + str(folder) for label, folder in zip(labels, folders)]
    paths = np.array([f"d/{name}/{i}.png" for i, name in enumerate(names)])
    _assert_same(conventions.univfd_metrics(labels, scores), univfd_oracle(labels, scores))
    ours = conventions.deepfakebench_metrics(labels, scores, list(paths))
    try:
        theirs = deepfakebench_oracle(scores, labels, paths)
    except ValueError:  # every folder of one class: DeepfakeBench's video EER raises
        assert ours["video_auc"] is None and "raises" in ours["na_reasons"]["video_auc"]
        return
    _assert_same(ours, theirs)


def test_eer_under_ties_is_the_vertex_fpr_not_our_interpolated_point():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    scores = np.array([0.1, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.9, 0.9])
    ours = conventions.deepfakebench_metrics(labels, scores, [f"v/{i}/f.png" for i in range(9)])
    assert ours["eer"] == deepfakebench_oracle(scores, labels, np.array([f"v/{i}/f.png" for i in range(9)]))["eer"]
    # ROC vertices (0, 0), (0, 0.4), (0.75, 1), (1, 1): the nearest to FNR = FPR is (0, 0.4); ours interpolates
    assert ours["eer"] == 0.0 and equal_error_rate(labels, scores) == pytest.approx(1 / 3)


def test_scores_of_exactly_one_half_are_real_for_the_references_and_fake_for_us():
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.5, 0.2, 0.5, 0.9])
    paths = ["r/a/0.png", "r/b/0.png", "f/c/0.png", "f/d/0.png"]
    assert conventions.deepfakebench_metrics(labels, scores, paths)["acc"] == 0.75  # the real at 0.5 is right
    univfd = conventions.univfd_metrics(labels, scores)
    assert (univfd["acc"], univfd["real_acc"], univfd["fake_acc"]) == (0.75, 1.0, 0.5)
    assert compute_metrics(labels, scores)["acc"] == 0.75 and compute_metrics(labels, scores)["fake_acc"] == 1.0
    assert compute_metrics(labels, scores)["real_acc"] == 0.5


def test_univfd_chooses_with_ge_measures_with_gt_and_depends_on_reals_first():
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([0.6, 0.4, 0.4, 0.2, 0.8, 0.6])
    result = conventions.univfd_metrics(labels, scores)
    # reals first: candidates 0.4 0.2 0.6 | 0.6 0.4 0.8; 0.4, 0.6 and 0.8 all give 4/6 with >=: the last one wins
    assert result["best_threshold"] == univfd_oracle(labels, scores)["best_threshold"] == 0.8
    assert result["best_acc"] == 0.5  # chosen at >= 0.8 (4/6 right), measured with > 0.8 (3/6)
    assert univfd_best_threshold_oracle(labels, scores) == 0.6  # in file order a real's 0.6 comes last
    assert compute_metrics(labels, scores)["acc_oracle"] == pytest.approx(4 / 6)


def test_univfd_separability_shortcut_is_by_position_not_by_class():
    labels, scores = np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.9])  # the first half: two reals
    result = conventions.univfd_metrics(labels, scores)
    assert result["best_threshold"] == pytest.approx(0.25) == univfd_oracle(labels, scores)["best_threshold"]


def test_video_auc_merges_the_methods_folders_and_labels_a_mixed_folder_real():
    rows = [r for r in ffpp_rows(3) if "/Deepfakes/" in r["path"] or r["label"] == 0]
    labels, scores, paths = _arrays(rows)
    # a real frame in a fake's folder: the folder is labelled int(mean) = real, as DeepfakeBench does
    paths[int(np.flatnonzero(labels == 0)[0])] = "manipulated_sequences/Deepfakes/c23/frames/000_001/9999.png"
    ours = conventions.deepfakebench_metrics(labels, scores, paths)
    assert ours["video_auc"] == pytest.approx(deepfakebench_oracle(scores, labels, np.array(paths))["video_auc"])
    assert "1 of 12 folders hold real and fake frames" in ours["notes"][0]
    labels_all, scores_all, paths_all = _arrays(ffpp_rows(3))
    merged = conventions.deepfakebench_metrics(labels_all, scores_all, paths_all)
    assert merged["video_auc"] == pytest.approx(
        deepfakebench_oracle(scores_all, labels_all, np.array(paths_all))["video_auc"]
    )


def test_where_deepfakebench_crashes_the_value_is_none_with_the_reason():
    labels, scores = np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.3, 0.7])
    shared = ["real/000/0.png", "fake/000/0.png", "real/001/0.png", "fake/001/0.png"]  # every fake in a real's name
    with pytest.raises(ValueError):
        deepfakebench_oracle(scores, labels, np.array(shared))
    ours = conventions.deepfakebench_metrics(labels, scores, shared)
    assert ours["video_auc"] is None and "all 2 parent folders are labelled real" in ours["na_reasons"]["video_auc"]
    assert ours["auc"] == 1.0
    flat = conventions.deepfakebench_metrics(labels, scores, ["a.png", "b.png", "c.png", "d.png"])
    assert flat["video_auc"] is None and "'a.png' has no parent folder" in flat["na_reasons"]["video_auc"]
    one_class = conventions.deepfakebench_metrics(np.array([1, 1]), np.array([0.4, 0.9]), ["a/b.png", "a/c.png"])
    assert one_class["auc"] is None and one_class["acc"] == 0.5 and "no real images" in one_class["na_reasons"]["eer"]
    univfd = conventions.univfd_metrics(np.array([1]), np.array([0.9]))
    assert univfd["real_acc"] is None and univfd["best_threshold"] is None and univfd["fake_acc"] == 1.0


def test_windows_paths_are_split_on_backslashes_as_deepfakebench_does():
    folders, missing = conventions.parent_folders(["C:\\data\\000_003\\0.png", "a/b\\c/0.png", "x//y.png", "/y.png"])
    assert missing is None and list(folders) == ["000_003", "a/b", "", ""]


def test_unknown_convention_is_one_sentence_with_a_did_you_mean(tmp_path, capsys):
    path = write_rows(tmp_path / "predictions.csv", ffpp_rows())
    argv = ["--predictions", str(path), "--protocol", "intra", "--conventions", "deepfakebnch", "--out", str(tmp_path)]
    assert run(test_script.main, argv) == 2
    error = capsys.readouterr().err
    assert "unknown convention 'deepfakebnch' (did you mean deepfakebench?)" in error and "Traceback" not in error


def test_test_py_predictions_writes_each_groups_conventions_tables_and_card_lines(tmp_path):
    rows = ffpp_rows(5)
    path = write_rows(tmp_path / "predictions.csv", rows)
    out = tmp_path / "out"
    argv = ["--predictions", str(path), "--protocol", "intra", "--bootstrap", "0", "--out", str(out)]
    result = test_script.main([*argv, "--conventions", "deepfakebench,univfd"])
    metrics = json.loads((out / "metrics.json").read_text())
    labels, scores, paths = _arrays(rows)
    for method in METHODS:
        keep = np.array([label == 0 or f"/{method}/" in p for label, p in zip(labels, paths)])
        group = metrics["groups"][f"generator={method}"]["conventions"]
        kept_paths = np.array([p for p, k in zip(paths, keep) if k])
        _assert_same(group["deepfakebench"], deepfakebench_oracle(scores[keep], labels[keep], kept_paths))
        _assert_same(group["univfd"], univfd_oracle(labels[keep], scores[keep]))
    overall = metrics["groups"]["overall"]["conventions"]["deepfakebench"]
    _assert_same(overall, deepfakebench_oracle(scores, labels, np.array(paths)))
    assert metrics["definitions"]["threshold"].startswith("score >= threshold is fake")
    for name in ("deepfakebench", "univfd"):
        assert conventions.CARD_LINES[name] in metrics["card"]
        for suffix in ("md", "csv", "tex"):
            assert (out / f"table-{name}.{suffix}").is_file()
    assert "Acc (> best thr)" in (out / "table-univfd.md").read_text()
    assert "as deepfakebench computes it" in result["console"]
    plain = test_script.main([*argv[:-1], str(tmp_path / "plain")])
    assert "conventions" not in json.loads((tmp_path / "plain" / "metrics.json").read_text())["groups"]["overall"]
    assert not (tmp_path / "plain" / "table-univfd.md").exists() and conventions.OUR_RULES_CARD in plain["console"]


def test_a_misspelt_or_absent_report_column_is_said_in_the_notes_and_on_the_console(tmp_path):
    renamed = {"forgery_type": "forgery-type"}
    rows = [{renamed.get(k, k): v for k, v in r.items() if k != "generator"} for r in ffpp_rows()]
    path = write_rows(tmp_path / "predictions.csv", rows)
    result = test_script.main(["--predictions", str(path), "--protocol", "intra", "--out", str(tmp_path / "o")])
    said = "column 'forgery-type' is not in the schema: did you mean 'forgery_type'? It is ignored, so this table"
    assert said in result["console"] and said in (tmp_path / "o" / "table.md").read_text()
    absent = "has no 'generator' column: the protocol reports per generator, so this table has no generator rows"
    assert absent in result["console"] and absent in (tmp_path / "o" / "table.csv").read_text()
    assert not any(g.startswith("forgery_type=") for g in result["groups"])


def _untrained_run(run_dir, csv_path):
    """A run folder (config.yaml, best.pt) of the demo detector, untrained, whose config predates eval.conventions."""
    import yaml

    from common.checkpoint import save_checkpoint
    from engine.config import load_config
    from model import build_model, without_downloads

    config = load_config("cael_demo", [f"data.csv={csv_path}", "data.workers=0", "eval.batch-size=64"])
    del config["eval"]["conventions"]
    model = build_model(without_downloads(config["model"]))
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    save_checkpoint(run_dir / "best.pt", {"model": model.state_dict(), "config": config, "epoch": 1})
    return run_dir / "best.pt"


def test_test_py_checkpoint_and_runs_write_the_conventions_even_for_an_older_checkpoint(tmp_path):
    from data.make_demo import make_demo

    csv_path = make_demo(tmp_path / "data", identities=4, fakes_per_generator=4)
    best = _untrained_run(tmp_path / "runs" / "demo", csv_path)
    common = ["--bootstrap", "0", "--quiet", "--workers", "0", "--device", "cpu", "--conventions", "univfd"]
    test_script.main(["--checkpoint", str(best), "--out", str(tmp_path / "one"), *common])
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert set(metrics["groups"]["overall"]["conventions"]) == {"univfd"}
    assert (tmp_path / "one" / "table-univfd.md").is_file()
    assert not (tmp_path / "one" / "table-deepfakebench.md").exists()
    result = test_script.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "many"), *common])
    written = sorted(p.relative_to(tmp_path / "many").as_posix() for p in (tmp_path / "many").rglob("table-univfd.md"))
    assert written and result["out_dir"]


def test_every_test_py_command_of_the_comparing_page_parses():
    import shlex
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "comparing.md"
    commands = [line for line in page.read_text().splitlines() if line.startswith("python test.py ")]
    assert len(commands) >= 8
    parser = test_script.get_args_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[2:])
        if args.conventions:
            conventions.parse_conventions(args.conventions)


def _layout_rows(layout: str, seed: int = 0) -> list[dict]:
    """Test rows in the demo's layout (DATASET/<generator>/<identity>-<n>.png: a folder per generator, many videos in
    each) or one folder per video (Celeb-DF-like frames/<video>/<frame>.png)."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(12):
        label = v % 2
        generator = "gan" if label else "real"
        for f in range(4):
            folder = f"DemoFace-A/{generator}" if layout == "demo" else f"frames/{generator}-{v:03d}"
            rows.append(
                {
                    "path": f"{folder}/id{v:02d}-{f}.png",
                    "label": label,
                    "score": round(float(rng.random()), 3),
                    "split": "test",
                    "forgery_type": "EFS" if label else "real",
                    "generator": generator,
                    "source_dataset": "demo",
                    "video_id": f"v{v:03d}",
                }
            )
    return rows


def test_a_parent_folder_that_is_not_a_video_is_said_on_the_card_and_in_the_notes(tmp_path):
    """DeepfakeBench groups frames by parent folder: on the demo's layout a folder is a whole class, its "video AUC"
    reads 100 and means nothing; the card and table-deepfakebench's notes say so. One folder per video: nothing said."""
    argv = ["--protocol", "intra", "--bootstrap", "0", "--conventions", "deepfakebench"]
    demo = write_rows(tmp_path / "demo.csv", _layout_rows("demo"))
    result = test_script.main(["--predictions", str(demo), *argv, "--out", str(tmp_path / "demo")])
    warning = "DeepfakeBench's video AUC groups frames by parent folder, and here the folders are not videos"
    card = json.loads((tmp_path / "demo" / "metrics.json").read_text())["card"]
    assert any(warning in line and "hold frames of several video_id values" in line for line in card)
    assert warning in (tmp_path / "demo" / "table-deepfakebench.md").read_text()
    assert result["groups"]["overall"]["conventions"]["deepfakebench"]["video_auc"] == 1.0  # the meaningless 100
    videos = write_rows(tmp_path / "videos.csv", _layout_rows("videos"))
    test_script.main(["--predictions", str(videos), *argv, "--out", str(tmp_path / "videos")])
    card = json.loads((tmp_path / "videos" / "metrics.json").read_text())["card"]
    assert not any(warning in line for line in card)
    no_ids = write_rows(
        tmp_path / "no-ids.csv", [{k: v for k, v in r.items() if k != "video_id"} for r in _layout_rows("demo") * 10]
    )
    table = load_table(no_ids)
    assert "more than 64 frames" in conventions.folder_grouping_warning(table, np.arange(len(table)), 32)
