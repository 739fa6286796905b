"""What a checkpoint knows: the record of its training data (data/trained_on.py) in last.pt / best.pt and exported
model folders, the model card's line, and the caveat predict.py and tools/explain.py print for inputs of another kind.

One quick run on the demo data (module fixture); nothing is downloaded (HF_HUB_OFFLINE=1).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from runs import quick_args, quick_demo_run

import predict
from common.checkpoint import read_checkpoint, save_checkpoint
from data.schema import load_table
from data.trained_on import DEMO_CAVEAT, describe_training_data, inputs_caveat, training_summary
from model.export import export_folder


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(demo CSV, run folder) of a quick run on the demo data: one epoch of 3 steps."""
    quick = quick_args(train__epochs=1, train__max_steps_per_epoch=3)
    return quick_demo_run(tmp_path_factory.mktemp("trained-on"), quick)


@pytest.fixture
def photo(tmp_path):
    """A 'real photo': an image file outside the demo data folder, not 64 px."""
    path = tmp_path / "photos" / "astronaut.png"
    path.parent.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (96, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _expected_rows(csv_path):
    table = load_table(csv_path)
    splits = np.asarray(table.column("split"))
    return {
        split: {
            "real": int(np.sum((splits == split) & (table.labels == 0))),
            "fake": int(np.sum((splits == split) & (table.labels == 1))),
        }
        for split in ("train", "val")
    }


def test_every_checkpoint_records_the_demo_data_it_was_trained_on(demo_run):
    csv_path, run_dir = demo_run
    for name in ("last.pt", "best.pt"):
        record = read_checkpoint(run_dir / name)["trained_on"]
        assert record["kind"] == "demo" and record["csv"] == str(csv_path.resolve())
        assert record["root"] == str(csv_path.parent.resolve())
        assert record["rows"] == _expected_rows(csv_path)  # the intra protocol: the CSV's train and val rows
        assert record["source_datasets"] == ["DemoFace-A", "DemoFace-B"] and record["more_source_datasets"] == 0
    assert training_summary(record).startswith(f"trained on synthetic 64 px demo data ({csv_path.resolve()}): train ")


def _predict(checkpoint, inputs, out, capsys):
    result = predict.main(
        ["--checkpoint", str(checkpoint), *map(str, inputs), "--no-detect", "--out", str(out), "--quiet"]
    )
    return result, capsys.readouterr().out


def test_predict_on_a_real_photo_says_the_demo_scores_mean_nothing(demo_run, photo, tmp_path, capsys):
    csv_path, run_dir = demo_run
    result, printed = _predict(run_dir / "best.pt", [photo], tmp_path / "out", capsys)
    assert f"caveat: {DEMO_CAVEAT}" in printed
    assert DEMO_CAVEAT == "trained on synthetic 64 px demo data: scores on real photos mean nothing"
    written = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert written["caveat"] == DEMO_CAVEAT and written["trained_on"]["kind"] == "demo"
    # demo images themselves are what it was trained on: no caveat
    demo_image = csv_path.parent / load_table(csv_path).column("path")[0]
    result, printed = _predict(run_dir / "best.pt", [demo_image], tmp_path / "demo-out", capsys)
    assert "caveat" not in printed and result["caveat"] is None


def test_exported_folder_and_model_card_carry_the_record(demo_run, photo, tmp_path, capsys):
    _, run_dir = demo_run
    folder = export_folder(run_dir / "best.pt", tmp_path / "exported")["folder"]
    config = yaml.safe_load((folder / "config.yaml").read_text())
    recorded = read_checkpoint(run_dir / "best.pt")["trained_on"]
    csv_path = Path(recorded["csv"])  # shared folders name no folder of this machine (model.export.public_path)
    public = {
        **recorded,
        "csv": f".../{csv_path.parent.name}/{csv_path.name}",
        "root": f".../{Path(recorded['root']).parent.name}/{Path(recorded['root']).name}",
    }
    assert config["source"]["trained_on"] == public
    card = (folder / "README.md").read_text()
    assert f"**Caveat: {DEMO_CAVEAT}.**" in card and "- trained on synthetic 64 px demo data" in card
    _, printed = _predict(folder, [photo], tmp_path / "out", capsys)
    assert f"caveat: {DEMO_CAVEAT}" in printed


def test_explain_on_a_real_photo_gives_the_caveat(demo_run, photo, tmp_path, capsys):
    from tools import explain

    _, run_dir = demo_run
    out = tmp_path / "explain"
    result = explain.main(["--checkpoint", str(run_dir / "best.pt"), str(photo), "--no-detect", "--out", str(out)])
    assert result["caveat"] == DEMO_CAVEAT and f"caveat: {DEMO_CAVEAT}" in capsys.readouterr().out


def test_a_checkpoint_without_the_record_loads_and_claims_nothing(demo_run, photo, tmp_path, capsys):
    """Checkpoints written before the record: predict.py scores as before, with no caveat and no invented record;
    the model card says the training data is not recorded."""
    _, run_dir = demo_run
    old = tmp_path / "old.pt"
    checkpoint = read_checkpoint(run_dir / "best.pt")
    del checkpoint["trained_on"]
    save_checkpoint(old, checkpoint)
    result, printed = _predict(old, [photo], tmp_path / "out", capsys)
    assert "caveat" not in printed and result["caveat"] is None and result["trained_on"] is None
    assert result["scored"] == 1
    folder = export_folder(old, tmp_path / "exported")["folder"]
    card = (folder / "README.md").read_text()
    assert "- training data: not recorded in the checkpoint" in card and "Caveat" not in card


def test_a_csv_of_other_sources_is_no_demo_and_gets_no_caveat(tmp_path, photo):
    csv_path = tmp_path / "splits.csv"
    rows = ["path,label,split,source_dataset"] + [
        f"img{i}.png,{i % 2},{'train' if i < 6 else 'val'},{'FF++' if i % 3 else 'DemoFace-A'}" for i in range(8)
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    table = load_table(csv_path)
    record = describe_training_data(table, {"train": np.arange(6), "val": np.arange(6, 8)})
    assert record["kind"] == "csv" and record["source_datasets"] == ["DemoFace-A", "FF++"]
    assert record["rows"] == {"train": {"real": 3, "fake": 3}, "val": {"real": 1, "fake": 1}}
    assert inputs_caveat(record, [photo]) is None
    assert training_summary(record) == (
        f"trained on {csv_path.resolve()}: train 3 real / 3 fake; val 1 real / 1 fake rows; "
        "source datasets: DemoFace-A, FF++"
    )
    assert training_summary(None) is None and inputs_caveat(None, [photo]) is None
