"""The scale benchmark (benchmarks/scale.py over synthetic.py and measure.py): its synthetic GenFace-shaped data, its
process-tree memory sampling, its table, and one small run of the cheap stages end to end (shape of the JSON, every
stage exit 0; no timings)."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from benchmarks import measure, scale, synthetic

CHEAP_STAGES = ["validate", "build_index", "loader", "predictions"]  # in the order the benchmark runs them


def test_synthetic_columns_are_genface_shaped():
    columns = synthetic.synthetic_columns(5000, frames_per_video=0, seed=0)
    fakes = columns["label"] == "1"
    assert set(columns) == {"path", "label", "split", "forgery_type", "generator", "source_dataset", "identity"}
    assert len(np.unique(columns["generator"][fakes])) == 12
    assert set(columns["forgery_type"][fakes]) == {"EFS", "AM", "FS"}
    assert 0.15 < 1 - fakes.mean() < 0.25
    assert set(columns["split"]) == {"train", "val", "test"}
    sides = {}
    for identity, split in zip(columns["identity"], columns["split"]):
        sides.setdefault(identity, set()).add(split)
    assert all(len(splits) == 1 for splits in sides.values())  # no person on two sides
    expected = [f"{f}/{g}/{i}/{row}.png" for row, (f, g, i) in enumerate(zip(*(columns[c] for c in
                ("forgery_type", "generator", "identity"))))]  # fmt: skip
    assert columns["path"].tolist() == expected


def test_many_generators_for_a_table_of_many_groups():
    assert synthetic.generator_names() is synthetic.GENERATORS  # the default dataset is unchanged
    default_folds = ["efs-gan1", "efs-diff1", "am-gan1", "am-diff1", "fs-gan1", "fs-diff1"]
    assert synthetic.runs_folds(synthetic.GENERATORS) == default_folds
    generators = synthetic.generator_names(40)
    assert [len(names) for names in generators.values()] == [14, 13, 13]
    columns = synthetic.synthetic_columns(20_000, frames_per_video=0, seed=0, generators=generators)
    fakes = columns["label"] == "1"
    assert len(np.unique(columns["generator"][fakes])) == 40
    assert all(
        g.startswith(f.lower() + "-") for f, g in zip(columns["forgery_type"][fakes], columns["generator"][fakes])
    )
    folds = synthetic.runs_folds(generators)
    assert len(set(folds)) == 6 and set(folds) <= set(columns["generator"][fakes])
    with pytest.raises(SystemExit, match="at least 6"):
        synthetic.generator_names(5)


def test_videos_have_one_label_and_about_k_frames():
    columns = synthetic.synthetic_columns(1000, frames_per_video=10, seed=0)
    videos, counts = np.unique(columns["video_id"], return_counts=True)
    assert len(videos) == 100 and set(counts) == {10}
    for column in ("label", "generator", "identity", "split"):
        pairs = set(zip(columns["video_id"], columns[column]))
        assert len(pairs) == len(videos), column


def test_predictions_score_fakes_higher_with_six_decimals():
    columns = synthetic.synthetic_columns(4000, frames_per_video=0, seed=0)
    predicted = synthetic.prediction_columns(columns, seed=0)
    assert list(predicted)[:3] == ["path", "label", "score"]
    assert (predicted["split"] == "test").all() and len(predicted["path"]) == (columns["split"] == "test").sum()
    assert all(len(text.split(".")[1]) == 6 for text in predicted["score"][:50])
    scores = predicted["score"].astype(float)
    assert scores[predicted["label"] == "1"].mean() > scores[predicted["label"] == "0"].mean() + 0.2


def test_memory_of_the_whole_process_tree_is_sampled():
    # a child that starts a grandchild; each holds about 150 MB: the peak counts both
    hold = "import time; block = bytearray(150 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)"
    parent = f"import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', {hold!r}]); {hold}; child.wait()"
    measured = measure.run_command([sys.executable, "-c", parent], timeout=60, environment=None)
    assert measured.record["exit_code"] == 0
    assert measured.record["peak_processes"] == 2
    assert measured.record["peak_rss_mb"] > 280


def test_slow_pss_readings_are_spaced_by_what_they_cost(monkeypatch):
    # smaps_rollup of a large process takes about 0.1 s of CPU: read every 0.25 s, it took a quarter of a core from
    # the command being measured. A reading that takes 0.04 s waits 50 x 0.04 = 2 s before the next one.
    readings = []

    def slow_pss(pid):
        readings.append(pid)
        time.sleep(0.04)
        return 1 << 20

    monkeypatch.setattr(measure, "proportional_bytes", slow_pss)
    measured = measure.run_command([sys.executable, "-c", "import time; time.sleep(1.5)"], timeout=60, environment=None)
    record = measured.record
    assert record["exit_code"] == 0
    assert record["pss_samples"] == 1 and len(readings) == 1  # every 5 RSS samples (the old rule) would be 5 or more
    assert record["memory_samples"] >= 10  # the cheap RSS reading still runs every SAMPLE_SECONDS
    assert 0 < record["sampler_cpu_s"] < record["wall_s"]


def test_a_failing_command_is_recorded_with_its_stderr():
    measured = measure.run_command(
        [sys.executable, "-c", "raise SystemExit('broken here')"], timeout=60, environment=None
    )
    assert measured.record["exit_code"] == 1 and "broken here" in measured.record["stderr_tail"]


def test_table_has_a_column_per_size_and_the_growth_ratio():
    def result(rows, seconds, first_step):
        stage = {"rows": rows, "wall_s": seconds, "peak_rss_mb": 100.0, "exit_code": 0}
        train = stage | {"wall_s": 2 * seconds, "first_step_s": first_step}
        stages = {"validate": stage, "train_start": train}
        return {"rows": rows, "machine": {"cpu": "test cpu"}, "date": "d", "git_commit": "c", "stages": stages}

    table = scale.render_table([result(1_000_000, 130.0, 40.0), result(100_000, 10.0, 20.0)])
    assert table.splitlines()[:5] == [
        "| stage | 100,000 rows | 1,000,000 rows | 1M / 100k time |",
        "|---|---|---|---|",
        "| validate | 10.0 s / 100 MB | 130.0 s / 100 MB | 13.0 (not linear) |",
        "| train_start | 20.0 s / 100 MB | 260.0 s / 100 MB | 13.0 (not linear) |",
        "| train_start: to the first step | 20.0 s | 40.0 s | 2.0 |",
    ]


def test_cheap_stages_run_end_to_end(tmp_path):
    out = tmp_path / "scale.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--rows", "400", "--out", str(out)]
    command += ["--stages", ",".join(CHEAP_STAGES), "--workdir", str(tmp_path / "work"), "--loader-workers", "1"]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["rows"] == 400 and result["image_size"] == 16
    assert {"cpu", "cores", "memory_gb", "python", "torch", "numpy"} <= set(result["machine"])
    assert list(result["stages"]) == CHEAP_STAGES
    for name, stage in result["stages"].items():
        assert stage["exit_code"] == 0, (name, stage.get("stderr_tail"))
        assert stage["wall_s"] > 0 and stage["peak_rss_mb"] > 0 and stage["command"] and stage["rows"] > 0
    assert result["stages"]["build_index"]["indexed_rows"] == 400
    loader = result["stages"]["loader"]
    assert loader["images"] > 0 and loader["images_per_s"] > 0
    assert len(loader["worker_rss_start_mb"]) == len(loader["worker_rss_growth_mb"]) == 1
    assert not (tmp_path / "work").exists()  # removed without --keep


@pytest.mark.parametrize("stages", ["validate,nonsense"])
def test_unknown_stage_is_refused(stages, tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--rows", "10", "--stages", stages]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0 and "unknown stage(s) nonsense" in finished.stderr


def test_a_repeated_stage_keeps_its_median_run_and_every_run(monkeypatch):
    walls = iter([3.0, 1.0, 2.0, 9.0])
    calls = []

    def fake(bench):
        calls.append(1)
        wall = next(walls)
        return measure.Measured({"wall_s": wall, "peak_rss_mb": 10 * wall, "exit_code": 0}), {"rows": 5}

    monkeypatch.setitem(scale.STAGE_FUNCTIONS, "build_index", fake)
    record = scale.run_stage("build_index", bench=None, repeat=3)
    assert len(calls) == 3 and record["wall_s"] == 2.0 and record["peak_rss_mb"] == 20.0 and record["rows"] == 5
    assert record["runs_wall_s"] == [3.0, 1.0, 2.0] and record["runs_peak_rss_mb"] == [30.0, 10.0, 20.0]
    monkeypatch.setitem(scale.STAGE_FUNCTIONS, "train_start", fake)
    assert scale.run_stage("train_start", bench=None, repeat=3)["wall_s"] == 9.0 and len(calls) == 4  # not repeatable


def test_a_failed_run_ends_the_repeats(monkeypatch):
    calls = []

    def failing(bench):
        calls.append(1)
        return measure.Measured({"wall_s": 1.0, "peak_rss_mb": 1.0, "exit_code": 2}), {"rows": 5}

    monkeypatch.setitem(scale.STAGE_FUNCTIONS, "validate", failing)
    assert scale.run_stage("validate", bench=None, repeat=3)["exit_code"] == 2 and len(calls) == 1
    codes = iter([0, 0, 3])

    def failing_third(bench):
        return measure.Measured({"wall_s": 1.0, "peak_rss_mb": 1.0, "exit_code": next(codes)}), {"rows": 5}

    monkeypatch.setitem(scale.STAGE_FUNCTIONS, "validate", failing_third)
    record = scale.run_stage("validate", bench=None, repeat=3)
    assert record["exit_code"] == 3 and record["runs_wall_s"] == [1.0, 1.0, 1.0]


def test_the_table_shows_the_spread_of_repeated_runs():
    stage = {"rows": 10, "wall_s": 2.0, "peak_rss_mb": 50.0, "exit_code": 0, "runs_wall_s": [3.0, 1.0, 2.0]}
    result = {"rows": 10, "machine": {"cpu": "c"}, "date": "d", "git_commit": "c", "stages": {"build_index": stage}}
    assert "| build_index | 2.0 s / 50 MB (median of 3: 1.0-3.0 s) |" in scale.render_table([result])


def test_a_work_folder_that_already_holds_a_dataset_is_refused(tmp_path):
    (tmp_path / "genface").mkdir()
    (tmp_path / "genface" / "old.png").write_bytes(b"x")
    command = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--rows", "10", "--workdir", str(tmp_path)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0 and "already holds a dataset" in finished.stderr
    assert "Traceback" not in finished.stderr and (tmp_path / "genface" / "old.png").is_file()
