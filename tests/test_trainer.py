"""The training loop with its components injected: an in-memory dataset and a tiny model, no CSV on disk."""

import json

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from data.loader import build_loader
from engine.checkpoint import load_checkpoint
from engine.config import load_config
from engine.distributed import DistInfo
from engine.trainer import TrainData, Trainer
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
    trainer = Trainer(
        config, run, DistInfo(), data=in_memory_data(config), model=model, optimizer=optimizer, criterion=criterion
    )
    assert trainer.model_without_ddp is model and trainer.optimizer is optimizer and trainer.steps_per_epoch == 4
    summary = trainer.fit()

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
