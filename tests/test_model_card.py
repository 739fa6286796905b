"""The model folder's card and config.yaml travel to the hub: no absolute path of the machine that wrote them (home
or temporary folders), and a folder with model.onnx says how to run it, as the message for an ONNX file given to
test.py says where to look."""

import pytest
import yaml
from conftest import TINY_MODEL

from engine.config import load_config
from model import build_model
from model.export import folder_config, model_card, public_command, public_path
from model.hub import Pretrained, PretrainedError, load_detector

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _pretrained(tmp_path):
    config = load_config("cael_demo", {"data.csv": str(tmp_path / "data" / "demo.csv")})
    config["model"] = dict(TINY_MODEL)
    config["data"]["root"] = "/home/someone/faces"
    trained_on = {
        "kind": "csv",
        "csv": str(tmp_path / "data" / "demo.csv"),
        "root": "/home/someone/faces",
        "rows": {"train": {"real": 3, "fake": 4}},
        "source_datasets": [],
    }
    return Pretrained(
        model=build_model(TINY_MODEL),
        config=config,
        source=str(tmp_path / "run" / "best.pt"),
        metadata={"epoch": 1, "step": 4, "trained_on": trained_on},
    )


def test_the_card_and_config_name_no_folder_of_this_machine(tmp_path):
    pretrained = _pretrained(tmp_path)
    config = folder_config(pretrained)
    env = {"command": f"/home/someone/cael/train.py --csv {tmp_path}/data/demo.csv --out=/home/someone/runs/a"}
    card = model_card(pretrained, config, env, [], repo_id=None)
    for text in (card, yaml.safe_dump(config)):
        assert str(tmp_path) not in text and "/home/someone" not in text
    assert "data CSV: `.../data/demo.csv` (data root: `.../someone/faces`)" in card
    assert "training command: `.../cael/train.py --csv .../data/demo.csv --out=.../runs/a`" in card
    assert config["run-config"]["data"]["csv"] == ".../data/demo.csv"
    assert config["source"]["trained_on"]["root"] == ".../someone/faces"
    assert public_path(ROOT / "data" / "demo_data" / "demo.csv") == "data/demo_data/demo.csv"  # inside the repo
    assert public_command("train.py --csv rel.csv") == "train.py --csv rel.csv"


def test_a_folder_with_onnx_says_how_to_run_it_and_an_onnx_file_given_to_a_command_says_where_that_is(tmp_path):
    pretrained = _pretrained(tmp_path)
    config = folder_config(pretrained)
    card = model_card(pretrained, config, {}, [], repo_id=None, onnx=True)
    assert 'onnxruntime.InferenceSession("model.onnx"' in card and "(batch, 3, 64, 64)" in card
    assert "onnxruntime" not in model_card(pretrained, config, {}, [], repo_id=None)
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"\x08\x08\x12\x07pytorch")
    with pytest.raises(PretrainedError) as error:
        load_detector(graph)
    message = str(error.value)
    assert "run it with onnxruntime (input 'images'" in message and "docs/using.md, section ONNX" in message
    assert "README" not in message
    assert "onnxruntime.InferenceSession" in (ROOT / "docs" / "using.md").read_text()
