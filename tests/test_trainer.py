"""The training loop with its components injected: an in-memory dataset and a tiny model, no CSV on disk."""

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from common.checkpoint import load_checkpoint
from common.errors import ConfigError
from data.loader import build_loader
from engine.config import load_config
from engine.distributed import DistInfo
from engine.training.data_setup import TrainData
from engine.training.trainer import Trainer
from loss_folder import logits_of
from model import build_model


class InMemoryFaces(Dataset):
    """Rows ``rows`` of uint8 images held in memory, as the sample dicts ``SplitDataset`` yields."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, rows):
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)
        self.labels = labels[self.rows]  # read by build_loader's class-balanced sampler

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        position = key[0] if isinstance(key, tuple) else key  # training keys are (position, sample seed)
        row = self.rows[position]
        return {"image": self.images[row], "label": self.labels[position], "index": row}


def in_memory_data(config) -> TrainData:
    """48 noisy 64 px images, every other one fake with a bright square; rows 0-31 train, 32-47 validate."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 128, (48, 3, 64, 64), generator=generator, dtype=torch.uint8)
    labels = np.arange(48, dtype=np.int64) % 2
    images[torch.from_numpy(labels == 1), :, 16:48, 16:48] = 255
    train_set, val_set = InMemoryFaces(images, labels, range(32)), InMemoryFaces(images, labels, range(32, 48))
    batch_size = config["train"]["batch-size"]
    return TrainData(
        train_loader=build_loader(train_set, batch_size=batch_size, train=True, seed=0, workers=0),
        val_loader=build_loader(val_set, batch_size=config["eval"]["batch-size"], train=False, workers=0),
        labels=labels,
        class_counts=np.bincount(train_set.labels, minlength=2),
    )


def test_the_loop_trains_injected_components_without_a_csv(tmp_path, tiny_config):
    config = load_config(
        None,
        {
            "train.device": "cpu",
            "train.epochs": 2,
            "train.batch-size": 8,
            "train.log-every": 1,
            "eval.batch-size": 16,
            "optim.lr": 1e-3,
            "schedule.warmup-epochs": 0.0,
        },
    )
    config["model"] = tiny_config()
    assert config["data"]["csv"] is None  # nothing to read: building the data from the config would stop
    torch.manual_seed(0)
    model = build_model(config["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seen = []

    def criterion(outputs, batch):
        seen.append(sorted(batch))
        return F.cross_entropy(logits_of(outputs), batch["label"])

    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    run = tmp_path / "run"
    run.mkdir()
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("cael").addHandler(handler)
    logging.getLogger("cael").setLevel(logging.INFO)
    trainer = Trainer(
        config, run, DistInfo(), data=in_memory_data(config), model=model, optimizer=optimizer, criterion=criterion
    )
    assert trainer.model_without_ddp is model and trainer.optimizer is optimizer and trainer.steps_per_epoch == 4
    try:
        summary = trainer.fit()
    finally:
        logging.getLogger("cael").removeHandler(handler)

    assert seen and seen[0] == ["label"]  # the criterion got the batch's targets, on the device
    changed = [name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])]
    assert any(name.endswith("weight") for name in changed)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in records] == [(1, 4), (2, 8)]
    assert all(np.isfinite(r["train_loss"]) and r["val_auc"] is not None for r in records)
    assert records[1]["train_loss"] < records[0]["train_loss"]
    assert summary["best_epoch"] in (1, 2) and (run / "best.pt").is_file()
    last = load_checkpoint(run / "last.pt")
    assert last["kind"] == "last" and last["step"] == 8 and last["class_names"] == {}
    assert last["config"]["data"]["csv"] is None
    # the first step's wait is said once and kept in the first epoch's record (the GPU start-up stall shows there)
    assert 0 <= records[0]["first_batch_s"] <= records[0]["first_step_s"] and "first_step_s" not in records[1]
    assert any(m.startswith("first step after ") and "first batch ready after" in m for m in logged)
    best = load_checkpoint(run / "best.pt")["calibration"]
    assert best["probability"]["method"] == "temperature" and best["uncertain"]["risk"] == 0.05


class ConvDropBn(torch.nn.Module):
    """conv -> dropout -> batch norm -> linear: dropout before the norm shows whether recomputing runs it."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.conv, self.drop = torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout(0.5)
        self.norm, self.head = torch.nn.BatchNorm2d(4, momentum=0.1), torch.nn.Linear(4, 2)

    def features(self, images):
        return self.conv(images.float() / 255)

    def forward(self, images):
        return self.head(self.norm(self.drop(self.features(images))).mean((2, 3)))


def test_precise_bn_recomputes_the_running_statistics_on_the_subset_in_evaluation_mode(tmp_path):
    config = load_config(None, {"train.device": "cpu", "train.batch-size": 8, "train.precise-bn": 16})
    data = in_memory_data(config)
    subset = InMemoryFaces(data.train_loader.dataset.images, data.labels, range(16))
    data.bn_loader = build_loader(subset, batch_size=8, train=False, workers=0)
    torch.manual_seed(0)
    model = ConvDropBn()
    trainer = Trainer(config, tmp_path, DistInfo(), data=data, model=model)
    model.train()
    assert trainer.recompute_bn_statistics(model) == 1
    with torch.no_grad():  # the expected values: per-batch statistics without dropout, averaged over the 2 batches
        batches = [model.features(subset.images[i : i + 8]) for i in (0, 8)]
    expected_mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    expected_var = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(model.norm.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(model.norm.running_var, expected_var, atol=1e-5)
    assert model.norm.num_batches_tracked.item() == 2 and model.norm.momentum == 0.1  # momentum restored
    assert model.training and model.drop.training  # the mode it was in


def test_precise_bn_runs_before_every_validation_and_is_checked(tmp_path):
    from runs import quick_args

    import train
    from data.make_demo import make_demo
    from engine.training.data_setup import build_data

    demo = make_demo(tmp_path / "demo", identities=12, fakes_per_generator=16)
    run = tmp_path / "run"
    train.main(["--csv", str(demo), "--out", str(run), *quick_args(), "--set", "train.precise-bn=20"])
    weights = load_checkpoint(run / "last.pt")["model"]
    tracked = {name: int(value) for name, value in weights.items() if name.endswith("num_batches_tracked")}
    # 20 images in batches of 8: 3 batches counted since the reset before the last validation (not 8 steps)
    assert tracked and set(tracked.values()) == {3}, tracked
    config = load_config(None, {"train.precise-bn": -1})
    with pytest.raises(ConfigError, match="train.precise-bn must be a number of training images >= 0"):
        build_data(config, DistInfo())


def test_channels_last_setting_true_false_or_on_the_cpu_only():
    from engine.device import channels_last_on

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)  # a device object: no GPU is needed to name one
    assert [channels_last_on(True, d) for d in (cpu, cuda)] == [True, True]
    assert [channels_last_on(False, d) for d in (cpu, cuda)] == [False, False]
    assert [channels_last_on("cpu", d) for d in (cpu, cuda)] == [True, False]
    with pytest.raises(ConfigError, match=r"train.channels-last must be true, false or cpu.*'gpu'"):
        channels_last_on("gpu", cpu)
    with pytest.raises(ConfigError, match="train.channels-last must be"):
        load_config("cael_demo", ["train.channels-last=[1]"])
    with pytest.raises(ConfigError, match="train.channels-last must be true, false or cpu"):  # at load, not at training
        load_config("cael_demo", ["train.channels-last=gpu"])


def test_first_step_switches_are_off_by_default_and_the_demo_keeps_its_measured_ones():
    # measured on an H200 (docs/performance.md, "The first step"): autotuning cost the first step 30 s, cuDNN attention
    # 2.5 s at 224 px; the demo ran under 30 s without channels-last on the GPU, with cuDNN attention on
    released, demo = load_config("cael_released", []), load_config("cael_demo", [])
    assert released["train"]["cudnn-benchmark"] is False and released["train"]["cudnn-attention"] is False
    assert released["train"]["channels-last"] is True
    assert demo["train"]["cudnn-benchmark"] is False and demo["train"]["cudnn-attention"] is True
    assert demo["train"]["channels-last"] == "cpu"


def test_the_setup_line_names_the_first_step_switches_on_a_gpu(monkeypatch):
    from engine.training.trainer import describe_setup

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    config = load_config("cael_demo", [])
    one = DistInfo()
    line = describe_setup(torch.device("cuda", 0), "bf16", config, one, 32, 1)
    assert "channels-last off" in line and "cuDNN autotuning off" in line and "cuDNN attention on" in line
    config["train"]["cudnn-benchmark"] = True
    assert "cuDNN autotuning on" in describe_setup(torch.device("cuda", 0), "bf16", config, one, 32, 1)
    config["train"]["deterministic"] = True  # deterministic runs never autotune
    assert "cuDNN autotuning off" in describe_setup(torch.device("cuda", 0), "bf16", config, one, 32, 1)
    cpu_line = describe_setup(torch.device("cpu"), "fp32", load_config("cael_demo", []), one, 32, 1)
    assert "channels-last on" in cpu_line and "cuDNN" not in cpu_line
