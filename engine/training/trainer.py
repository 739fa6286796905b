"""The training loop behind ``train.py``: ``Trainer`` runs epochs, validation and checkpoints over the components it
is given (data, model, optimizer, criterion), building those it is not given from the config
(``data_setup.build_data``, ``model.build_model``, ``optim``, ``loss_folder``), as torchvision's references and MAE
wire theirs in ``main``.

Checkpoint selection reads the protocol's validation rows only; the test rows are never opened. Checkpoints are
atomic, and ``--resume`` restores everything (weights, optimizer, schedule, scaler, EMA, RNG states, the position
inside the epoch) so that a resumed run ends where an uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from common.checkpoint import load_checkpoint, save_checkpoint
from common.errors import ConfigError, MissingFileError, UnknownKeyError, UsageError, UserError
from data.schema import SchemaError
from engine.device import autocast, channels_last_on, compile_model, resolve_precision, to_device
from engine.distributed import DistInfo, barrier, device_for, gather_objects
from engine.evaluation.calibration import METHODS as CALIBRATION_METHODS
from engine.evaluation.calibration import fit_calibration, uncertain_band
from engine.evaluation.metrics import calibrate_threshold, compute_metrics, is_better
from engine.evaluation.tables import format_or_na
from engine.inference.forward import Predictions, score_loader
from loss_folder import build_loss
from model import build_model

from .data_setup import TrainData, build_data
from .optim import build_ema, build_optimizer, build_scheduler
from .records import RunRecorder
from .run import code_version

log = logging.getLogger("cael")


CHECKPOINT_FORMAT = 1  # best.pt and last.pt share one schema (Trainer._checkpoint)


class TrainingInterrupted(UserError):
    """Ctrl-C or SIGTERM: the run saved a resumable checkpoint at the current step and stopped (exit status 130)."""

    exit_code = 130


class TooManySkippedError(UserError):
    """More training images were unreadable than ``data.max-skipped`` allows."""


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite; the run stops and its last checkpoint (written before) is kept."""


@dataclass
class TrainState:
    epoch: int = 0  # the epoch in progress (or the next to run)
    step: int = 0  # optimizer steps done
    step_in_epoch: int = 0  # micro-batches of ``epoch`` already done (mid-epoch checkpoints)
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    epoch_skipped: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "gauss": float(numpy_state[4]),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe_setup(
    device: torch.device, precision: str, config: dict[str, Any], dist: DistInfo, batch_size: int, accumulate: int
) -> str:
    """The console line that says where and how a run trains (device, precision, speed switches, batch, lr rule)."""
    train_cfg = config["train"]
    if device.type == "cuda":
        where = f"{device} ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
    else:
        auto = (
            " (no CUDA device found: train.device auto fell back to the CPU)" if train_cfg["device"] == "auto" else ""
        )
        where = f"cpu, {torch.get_num_threads()} threads{auto}"
    processes = f"{dist.world_size} process{'es' if dist.world_size > 1 else ''}" + (" (DDP)" if dist.enabled else "")
    global_batch = batch_size * dist.world_size * accumulate
    switches = [
        f"channels-last {'on' if channels_last_on(train_cfg['channels-last'], device) else 'off'}",
        f"compile {train_cfg['compile'] or 'off'}",
        f"deterministic {'on' if train_cfg['deterministic'] else 'off'}",
    ]
    if device.type == "cuda":  # what the first step pays for (docs/performance.md, "The first step")
        autotuning = train_cfg["cudnn-benchmark"] and not train_cfg["deterministic"]
        switches.append(f"cuDNN autotuning {'on' if autotuning else 'off'}")
        switches.append(f"cuDNN attention {'on' if train_cfg['cudnn-attention'] else 'off'}")
    return (
        f"device {where}, precision {precision}, {', '.join(switches)}; {processes}, global batch {global_batch} "
        f"({batch_size} x {dist.world_size} x {accumulate} accumulated); optim.lr {config['optim']['lr']:g} applies to "
        "that global batch as given (not rescaled with the number of GPUs)"
    )


class Trainer:
    """One run's loop. ``data``, ``model``, ``optimizer`` and ``criterion`` are used as given when passed (the model
    bare: the trainer moves it to the device, wraps it for DDP and compiles it as the config says; an optimizer over
    its parameters); what is not passed is built from ``config``. The schedule, grad scaler and EMA always come from
    the config. ``resume``: a last.pt checkpoint (``load_resume``) to continue from."""

    def __init__(
        self,
        config: dict[str, Any],
        run_dir: Path,
        dist: DistInfo,
        *,
        data: TrainData | None = None,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        criterion: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor] | None = None,
        resume: dict[str, Any] | None = None,
    ):
        self.config, self.run_dir, self.dist = config, Path(run_dir), dist
        train_cfg = config["train"]
        self.device = device_for(dist, train_cfg["device"])
        self.precision = resolve_precision(train_cfg["precision"], self.device)
        self.channels_last = channels_last_on(train_cfg["channels-last"], self.device)
        self.accumulate = int(train_cfg["accumulate"])
        if self.accumulate < 1:
            raise ConfigError("train.accumulate must be at least 1.")
        if train_cfg["calibrate"] not in (*CALIBRATION_METHODS, "none", None):
            raise ConfigError(
                f"train.calibrate must be one of {', '.join(CALIBRATION_METHODS)} or none; "
                f"got {train_cfg['calibrate']!r}."
            )
        if not 0.0 < float(train_cfg["uncertain-risk"]) < 0.5:
            raise ConfigError(f"train.uncertain-risk must be in (0, 0.5); got {train_cfg['uncertain-risk']}.")
        if train_cfg["deterministic"]:
            # cuBLAS is deterministic only with a fixed workspace; read when its first handle is created
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = bool(train_cfg["cudnn-benchmark"])
        torch.backends.cuda.enable_cudnn_sdp(bool(train_cfg["cudnn-attention"]))
        seed_everything(train_cfg["seed"])
        self.data = data if data is not None else build_data(config, dist)
        self.train_loader, self.val_loader = self.data.train_loader, self.data.val_loader
        self.class_names = self.data.class_names
        self.batch_size = int(self.train_loader.batch_size)
        self.steps_per_epoch = self._steps_per_epoch()
        self._place_model(model if model is not None else build_model(config["model"]))
        self.optimizer = (
            optimizer
            if optimizer is not None
            else build_optimizer(self.model_without_ddp, config["optim"], self.device)
        )
        self.scheduler = build_scheduler(
            self.optimizer,
            config["schedule"],
            steps_per_epoch=self.steps_per_epoch,
            epochs=train_cfg["epochs"],
            base_lr=config["optim"]["lr"],
        )
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.ema = build_ema(self.model_without_ddp, train_cfg["ema-decay"]) if train_cfg["ema"] else None
        if criterion is None:
            criterion = build_loss(config["loss"], class_counts=self.data.class_counts)
        self.criterion = criterion.to(self.device) if isinstance(criterion, torch.nn.Module) else criterion
        self.state = TrainState()
        self.recorder = RunRecorder(self.run_dir, enabled=dist.is_main)
        log.info(describe_setup(self.device, self.precision, config, dist, self.batch_size, self.accumulate))
        if train_cfg["precise-bn"] and self.data.bn_loader is None:
            log.warning("train.precise-bn is set but the given data has no bn_loader: running statistics are kept")
        if resume is not None:
            self._load(resume)
        # Each rank draws its own dropout masks; data order and augmentation are seeded separately.
        if resume is None:
            torch.manual_seed(train_cfg["seed"] + dist.rank)

    # ----------------------------------------------------------------- setup
    def _steps_per_epoch(self) -> int:
        micro_batches = len(self.train_loader.sampler) // self.batch_size
        cap = self.config["train"]["max-steps-per-epoch"]
        steps = micro_batches // self.accumulate if cap is None else min(cap, micro_batches // self.accumulate)
        if steps < 1:
            raise SchemaError(
                f"the training subset ({len(self.train_loader.dataset)} rows) gives no full step of train.batch-size "
                f"{self.batch_size} x train.accumulate {self.accumulate} per GPU: lower the batch size."
            )
        return steps

    def _place_model(self, model: torch.nn.Module) -> None:
        """The bare model on the device (channels-last if asked), under DDP when distributed, compiled if asked."""
        config = self.config
        num_classes = getattr(model, "num_classes", 2)
        if num_classes != 2:
            raise ConfigError(
                f"model.num-classes is {num_classes}; the training engine scores real/fake with 2 logits."
            )
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model_without_ddp = model
        if self.dist.enabled:
            if config["train"]["sync-bn"]:
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.model_without_ddp = model
            model = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=bool(getattr(self.model_without_ddp, "has_unused_parameters", False)),
            )
        self.model = model
        compile_mode = config["train"]["compile"]
        if compile_mode:
            self.model = compile_model(model, compile_mode)
        self._on_device_at = time.perf_counter()  # "first step after X s" counts from here
        self.first_step: dict[str, float] | None = None
        self.first_batch_s: float | None = None
        self._first_step_recorded = False

    # ----------------------------------------------------------- checkpoints
    def _checkpoint(
        self,
        kind: str,
        *,
        rng: list[dict[str, Any]] | None = None,
        metrics: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The one checkpoint schema of both files. ``last``: everything a resume needs; ``best``: the selected
        weights (the EMA's where train.ema is on), the same keys with the resumable parts set to None."""
        resumable = kind == "last"
        use_ema = self.ema is not None and not resumable
        state = {k: v for k, v in asdict(self.state).items() if k not in ("epoch", "step")}  # epoch, step: top level
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": kind,
            "model": self.ema.module.state_dict() if use_ema else self.model_without_ddp.state_dict(),
            "weights": "ema" if use_ema else "model",
            "epoch": self.state.epoch,
            "step": self.state.step,
            "optimizer": self.optimizer.state_dict() if resumable else None,
            "scheduler": self.scheduler.state_dict() if resumable else None,
            "scaler": self.scaler.state_dict() if resumable and self.scaler is not None else None,
            "ema": self.ema.state_dict() if resumable and self.ema is not None else None,
            "state": state if resumable else None,
            "rng": rng if resumable else None,  # one entry per rank: each rank resumes its own dropout stream
            "config": self.config,
            "class_names": self.class_names,
            "metrics": metrics if metrics is not None else (self.state.history[-1] if self.state.history else None),
            "calibration": calibration,
            "code_version": code_version(),
            "trained_on": self.data.trained_on,  # what predict.py / the model card say it knows (None: not recorded)
            "data_fingerprint": self.data.fingerprint,  # rows and labels read (data.fingerprint; None: not recorded)
        }

    def _save_last(self) -> None:
        rng = gather_objects(rng_state())
        if self.dist.is_main:
            save_checkpoint(self.run_dir / "last.pt", self._checkpoint("last", rng=rng))
        barrier()

    def _calibration(self, predictions: Predictions) -> dict[str, Any] | None:
        """What the validation rows of the selected epoch say about the scores (read by test.py, predict.py): the
        decision threshold, the map of probabilities (``train.calibrate``) and the uncertain band of calibrated
        probabilities (``train.uncertain-risk``)."""
        labels = self.data.labels[predictions.indices]
        if len(labels) == 0 or labels.min() == labels.max():
            return None
        found = {**calibrate_threshold(labels, predictions.scores), "split": "val", "epoch": self.state.epoch}
        method = self.config["train"]["calibrate"]
        found["probability"] = found["uncertain"] = None
        if method not in (None, "none"):
            fitted = fit_calibration(
                method, labels, predictions.scores, logits=predictions.logits, split="val", epoch=self.state.epoch
            )
            found["probability"] = fitted.to_dict()
            found["uncertain"] = uncertain_band(
                labels, fitted.apply(predictions.scores), risk=float(self.config["train"]["uncertain-risk"])
            )
        return found

    def _save_best(self, metrics: dict[str, Any], calibration: dict[str, Any] | None = None) -> None:
        if self.dist.is_main:
            save_checkpoint(
                self.run_dir / "best.pt", self._checkpoint("best", metrics=metrics, calibration=calibration)
            )

    def _load(self, checkpoint: dict[str, Any]) -> None:
        self.model_without_ddp.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        if self.ema is not None and checkpoint.get("ema"):
            self.ema.load_state_dict(checkpoint["ema"])
        self.state = TrainState(epoch=checkpoint["epoch"], step=checkpoint["step"], **checkpoint["state"])
        planned, epochs = checkpoint["config"]["train"]["epochs"], self.config["train"]["epochs"]
        if planned != epochs:
            self.state.finished = self.state.epoch >= epochs  # an early stop is lifted by asking for more epochs
            self._reschedule(planned, epochs)
        states = checkpoint["rng"]
        if len(states) != self.dist.world_size:
            log.warning(
                f"resuming a {len(states)}-process run with {self.dist.world_size} processes: dropout streams differ "
                "from the original run"
            )
        set_rng_state(states[self.dist.rank % len(states)])
        self.recorder.truncate_after(self.state.epoch)  # records of epochs after the checkpoint are redone
        if self.state.finished or (self.state.epoch >= epochs and not self.state.step_in_epoch):
            log.info(f"the run is complete at step {self.state.step} (epoch {self.state.epoch}): nothing to train")
            return
        where = f"epoch {self.state.epoch + 1}" + (
            f", batch {self.state.step_in_epoch + 1}" if self.state.step_in_epoch else ""
        )
        log.info(f"resumed from step {self.state.step}: continuing at {where}")

    def _reschedule(self, planned: int, epochs: int) -> None:
        """A resume with another train.epochs: the schedule is the one of a run planned for ``epochs`` from the start
        (recomputed for the new length, at the current step), applied from the next step on; the log says how the
        learning rate moves, since a cosine schedule jumps back up from its end."""
        scheduler, step = self.scheduler, self.state.step
        before = [group["lr"] for group in self.optimizer.param_groups]
        after = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        for group, lr in zip(self.optimizer.param_groups, after):
            group["lr"] = lr
        scheduler._last_lr = list(after)  # what get_last_lr() reports until the next step
        name = self.config["schedule"]["name"]
        total = self.steps_per_epoch * epochs
        moves = (
            f"the learning rate stays {after[0]:.2e}"
            if abs(after[0] - before[0]) <= 1e-12 + 1e-6 * abs(before[0])
            else f"the learning rate {'jumps' if after[0] > before[0] else 'drops'} from {before[0]:.2e} to "
            f"{after[0]:.2e} at step {step}"
        )
        log.warning(
            f"train.epochs {planned} -> {epochs}: the {name} schedule is recomputed for {epochs} epochs ({total} "
            f"steps), as if the run had been planned for {epochs} epochs from the start; {moves}"
        )

    # -------------------------------------------------------------- training
    def _batch_to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        moved = {"label": batch["label"].to(self.device, non_blocking=True)}
        for level in self.class_names:
            moved[level] = batch[level].to(self.device, non_blocking=True)
        return moved

    def _check_finite(self, first_bad: torch.Tensor) -> None:
        bad = int(first_bad.item())
        if bad >= 0:
            last = self.run_dir / "last.pt"
            kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"non-finite loss at optimizer step {bad} (epoch {self.state.epoch + 1}): the run stopped and {kept}. "
                "Lower optim.lr, keep train.grad-clip on, or use train.precision bf16/fp32."
            )

    def train_one_epoch(self) -> dict[str, Any]:
        train_cfg = self.config["train"]
        epoch, state = self.state.epoch, self.state
        sampler = self.train_loader.sampler
        sampler.set_epoch(epoch, skip=state.step_in_epoch * self.batch_size)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        log_every = max(1, int(train_cfg["log-every"]))
        checkpoint_every = int(train_cfg["checkpoint-every-steps"] or 0)
        micro_limit = self.steps_per_epoch * self.accumulate
        loss_sum = torch.tensor(state.epoch_loss_sum, device=self.device, dtype=torch.float64)
        first_bad = torch.full((), -1, device=self.device, dtype=torch.int64)
        micro = state.step_in_epoch
        seen_images, started = 0, time.perf_counter()
        interval_sum, interval_start, interval_images = loss_sum.clone(), time.perf_counter(), 0
        bar = self._progress_bar(epoch, micro_limit, micro)
        waited = time.perf_counter()
        for batch in self.train_loader:
            if micro >= micro_limit:
                break
            if self.first_batch_s is None:
                self.first_batch_s = time.perf_counter() - waited
            state.epoch_skipped += int(batch["skipped"])
            count = len(batch["label"])
            last_micro = (micro + 1) % self.accumulate == 0
            if count:
                detached = self._forward_backward(batch, last_micro)
                step_number = torch.full((), state.step + 1, device=self.device, dtype=torch.int64)
                first_bad = torch.where(~torch.isfinite(detached) & (first_bad < 0), step_number, first_bad)
                loss_sum += detached * count
                state.epoch_loss_count += count
                seen_images += count
                interval_images += count
            micro += 1
            bar.update(1)
            if not last_micro:
                continue
            self._optimizer_step()
            if self.first_step is None:
                self._time_first_step()
            if self._stop_requested(state.step % log_every == 0):
                self._save_position(first_bad, micro, loss_sum)
                raise TrainingInterrupted(
                    f"stopped by {self._signal_name} at optimizer step {state.step} (epoch {epoch + 1}): a resumable "
                    "checkpoint "
                    f"is saved; continue with  python train.py --resume {self.run_dir}"
                )
            if state.step % log_every == 0:
                self._check_finite(first_bad)  # the only host syncs of the loop are here
                now = time.perf_counter()
                interval_loss = (loss_sum - interval_sum).item() / max(1, interval_images)
                self._show_progress(bar, micro, interval_loss, interval_images / (now - interval_start))
                interval_sum, interval_start, interval_images = loss_sum.clone(), now, 0
            if checkpoint_every and state.step % checkpoint_every == 0 and micro < micro_limit:
                self._save_position(first_bad, micro, loss_sum)
        bar.close()
        if self._stop_requested(True):  # a signal after the last step: stop before validating (minutes at scale)
            self._save_position(first_bad, micro, loss_sum)
            raise TrainingInterrupted(
                f"stopped by {self._signal_name} after the last step of epoch {epoch + 1}, before its validation: a "
                f"resumable checkpoint is saved; continue with  python train.py --resume {self.run_dir}  (it validates "
                "that epoch first)"
            )
        self._check_finite(first_bad)
        return self._end_epoch(loss_sum, seen_images, time.perf_counter() - started)

    def _time_first_step(self) -> None:
        """Log (and keep for the epoch's record) how long this process took from the model reaching the device to the
        end of its first optimizer step, and how much of it was the first batch's loading: one host sync, once. On a
        GPU the rest is the first step's one-time costs (cuDNN's autotuning of each convolution shape, CUDA modules
        loaded lazily, the allocator's first growth, compilation): docs/performance.md says how each is measured."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        total = time.perf_counter() - self._on_device_at
        batch = self.first_batch_s or 0.0
        self.first_step = {"first_step_s": round(total, 3), "first_batch_s": round(batch, 3)}
        log.info(
            f"first step after {total:.1f} s of the model on {self.device} (first batch ready after {batch:.1f} s, "
            f"the step itself {total - batch:.1f} s)"
        )

    def _progress_bar(self, epoch: int, total: int, initial: int) -> tqdm:
        return tqdm(
            total=total,
            initial=initial,
            unit="batch",
            desc=f"epoch {epoch + 1}/{self.config['train']['epochs']}",
            disable=None if self.dist.is_main else True,
            dynamic_ncols=True,
            leave=False,
        )

    def _forward_backward(self, batch: dict[str, Any], last_micro: bool) -> torch.Tensor:
        """The loss of one micro-batch (detached, float64) with its gradients accumulated; under DDP the gradients
        are synchronised on the last micro-batch of an optimizer step only."""
        images = to_device(batch["image"], self.device, self.channels_last)
        targets = self._batch_to_device(batch)
        sync = (
            self.model.no_sync()
            if self.dist.enabled and not last_micro and hasattr(self.model, "no_sync")
            else contextlib.nullcontext()
        )
        with sync:
            with autocast(self.device, self.precision):
                outputs = self.model(images)
                loss = self.criterion(outputs, targets)
            scaled = loss / self.accumulate
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return loss.detach().double()

    def _optimizer_step(self) -> None:
        """One optimizer step over the accumulated gradients: unscale, clip, step, the schedule, the EMA."""
        clip = self.config["train"]["grad-clip"] or 0.0
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model_without_ddp.parameters(), clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model_without_ddp)
        self.state.step += 1

    def _save_position(self, first_bad: torch.Tensor, micro: int, loss_sum: torch.Tensor) -> None:
        """last.pt at this point of the epoch (a mid-epoch resume continues from the next micro-batch)."""
        self._check_finite(first_bad)
        self.state.step_in_epoch, self.state.epoch_loss_sum = micro, loss_sum.item()
        self._save_last()

    def _show_progress(self, bar: tqdm, micro: int, interval_loss: float, images_per_s: float) -> None:
        lr, rate = self.optimizer.param_groups[0]["lr"], images_per_s * self.dist.world_size
        bar.set_postfix(loss=f"{interval_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
        if bar.disable and self.dist.is_main:  # no progress bar (output to a file): a progress line instead
            log.info(
                f"epoch {self.state.epoch + 1} step {micro // self.accumulate}/{self.steps_per_epoch}: "
                f"loss {interval_loss:.4f}, lr {lr:.2e}, {rate:.0f} img/s"
            )

    def _end_epoch(self, loss_sum: torch.Tensor, seen_images: int, elapsed: float) -> dict[str, Any]:
        """The epoch's training record; the in-epoch position and sums start again at zero."""
        state = self.state
        mean_loss = loss_sum.item() / max(1, state.epoch_loss_count)
        result = {
            "train_loss": mean_loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            # None for an epoch resumed after its last step (nothing trained in this process)
            "train_images_per_s": seen_images * self.dist.world_size / elapsed if elapsed > 0 and seen_images else None,
            "train_skipped": state.epoch_skipped,
            "train_images": state.epoch_loss_count,  # this rank's, like train_skipped
        }
        if self.first_step is not None and not self._first_step_recorded:
            result.update(self.first_step)  # in the record of the epoch this process took its first step in
            self._first_step_recorded = True
        state.step_in_epoch, state.epoch_loss_sum, state.epoch_loss_count, state.epoch_skipped = 0, 0.0, 0, 0
        return result

    _said_no_bn = False

    def recompute_bn_statistics(self, model: torch.nn.Module) -> int:
        """Precise BN (pycls; Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): replace the running mean and
        variance of every batch norm of ``model`` by the averages of their per-batch values over ``data.bn_loader``
        (a fixed subset of training images, evaluation transforms), computed with the rest of the network in
        evaluation mode (no dropout or drop-path). Running statistics trail fast-changing weights by about
        1 / momentum steps; after a short run from random weights they describe an older network and evaluation mode
        scores near chance.
        Returns the number of batch norms recomputed. Training itself never reads them (batch statistics)."""
        norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
        norms = [norm for norm in norms if norm.track_running_stats]
        if not norms or self.data.bn_loader is None:
            return 0
        was_training, momenta = model.training, [norm.momentum for norm in norms]
        model.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches below
            norm.train()
        with torch.no_grad(), autocast(self.device, self.precision):
            for batch in self.data.bn_loader:
                if len(batch["label"]):  # a batch can be empty when data.on-error skips its unreadable images
                    model(to_device(batch["image"], self.device, self.channels_last))
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
        return len(norms)

    def validate(self) -> tuple[dict[str, Any], Predictions]:
        model = self.ema.module if self.ema is not None else self.model
        if self.data.bn_loader is not None:  # on the bare module: no DDP hooks, no recompilation
            bare = self.ema.module if self.ema is not None else self.model_without_ddp
            if not self.recompute_bn_statistics(bare) and not self._said_no_bn:
                log.info("train.precise-bn: the model has no batch norm with running statistics; nothing to recompute")
                self._said_no_bn = True
        predictions = score_loader(
            model, self.val_loader, self.device, precision=self.precision, channels_last=self.channels_last
        )
        labels = self.data.labels[predictions.indices]
        metrics = compute_metrics(
            labels,
            predictions.scores,
            threshold=self.config["eval"]["threshold"],
            videos=self.data.video_keys(predictions.indices),
            frames=self.data.frame_keys(predictions.indices),
            video_aggregation=self.config["eval"]["video-aggregation"],
        )
        result = {f"val_{k}": v for k, v in metrics.items() if not isinstance(v, (list, dict)) and k != "na_reason"}
        result["val_loss"] = predictions.loss
        result["val_skipped"] = predictions.skipped
        return result, predictions

    # ------------------------------------------------------------- signals
    _signal_name: str | None = None
    _signal_time = 0.0
    # A signal repeated within this time is the same request: launchers (torchrun, srun, a terminal's process group)
    # deliver one Ctrl-C or SIGTERM to a worker more than once.
    SAME_REQUEST_S = 1.0

    def _on_signal(self, number, frame) -> None:
        if self._signal_name is not None:
            # A second Ctrl-C stops at once (the last checkpoint stays); a repeated SIGTERM never does: a scheduler
            # that will not wait sends SIGKILL itself, and the resumable checkpoint is what a requeued job needs.
            if number == signal.SIGINT and time.monotonic() - self._signal_time > self.SAME_REQUEST_S:
                raise KeyboardInterrupt
            return
        self._signal_name, self._signal_time = signal.Signals(number).name, time.monotonic()
        log.warning(
            f"{self._signal_name}: saving a resumable checkpoint after the current step (press Ctrl-C again to stop "
            "at once)"
        )

    def _stop_requested(self, may_sync: bool) -> bool:
        """Whether a signal asked this run to stop; under DDP every rank agrees (one all-reduce, on log steps)."""
        if not self.dist.enabled:
            return self._signal_name is not None
        if not may_sync:
            return False
        flag = torch.tensor(1.0 if self._signal_name else 0.0, device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() > 0 and self._signal_name is None:
            self._signal_name = "a signal to another rank"
        return flag.item() > 0

    @contextlib.contextmanager
    def _signals_save_and_stop(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.signal(number, self._on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _check_skipped(self, record: dict[str, Any], epoch: int) -> None:
        skipped, used = record.get("train_skipped") or 0, record.get("train_images") or 0
        limit = float(self.config["data"]["max-skipped"])
        if skipped and (used == 0 or skipped / (skipped + used) > limit):
            table = self.data.table
            check = (
                f"check --data-root and the paths of {table.csv_path} with python -m data.validate"
                if table is not None
                else "check the training dataset"
            )
            raise TooManySkippedError(
                f"{skipped} of {skipped + used} training images of epoch {epoch} were unreadable (more than "
                f"data.max-skipped {limit:g}): {check}."
            )

    def fit(self) -> dict[str, Any]:
        with self._signals_save_and_stop():
            try:
                return self._fit()
            finally:  # also when stopped (a signal, patience, an error): the curves show every recorded epoch
                self.recorder.close()

    def _fit(self) -> dict[str, Any]:
        train_cfg = self.config["train"]
        select = train_cfg["select-metric"]
        key = f"val_{select}"
        patience = int(train_cfg["patience"] or 0)
        state = self.state
        while state.epoch < train_cfg["epochs"] and not state.finished:
            started = time.perf_counter()
            train_metrics = self.train_one_epoch()
            self._check_skipped(train_metrics, state.epoch + 1)
            validating = time.perf_counter()
            val_metrics, val_predictions = self.validate()
            val_seconds = time.perf_counter() - validating
            if key not in val_metrics:
                raise UnknownKeyError(
                    f"train.select-metric {select!r} is not a validation metric: choose one of "
                    f"{', '.join(k[4:] for k in val_metrics)}."
                )
            record = {
                "epoch": state.epoch + 1,
                "step": state.step,
                **train_metrics,
                **val_metrics,
                "epoch_seconds": time.perf_counter() - started,
                "val_seconds": val_seconds,
            }
            value = val_metrics[key]
            improved = is_better(select, value, state.best_value)
            if improved:
                state.best_value, state.best_epoch, state.bad_epochs = value, state.epoch + 1, 0
            else:
                state.bad_epochs += 1
            record["best_" + select] = state.best_value
            state.history.append(record)
            self.recorder.record(record, state.step)
            skipped = (
                f", skipped {record['train_skipped']} unreadable training images" if record["train_skipped"] else ""
            )
            log.info(
                f"epoch {state.epoch + 1}/{train_cfg['epochs']}: train loss {record['train_loss']:.4f}, "
                f"val loss {format_or_na(record['val_loss'])}, val AUC {format_or_na(record.get('val_auc'))}, val acc "
                f"{format_or_na(record.get('val_acc'))}, "
                f"{format_or_na(record['train_images_per_s'], '.0f')} img/s{skipped}" + (" (best)" if improved else "")
            )
            state.epoch += 1
            if improved:
                self._save_best(record, self._calibration(val_predictions))
            if patience and state.bad_epochs >= patience:
                log.info(f"early stopping: no better val {select} for {patience} epoch(s)")
                state.finished = True
            state.finished = state.finished or state.epoch >= train_cfg["epochs"]
            self._save_last()
        return {
            "run_dir": str(self.run_dir),
            "select_metric": select,
            "best_value": state.best_value,
            "best_epoch": state.best_epoch,
            "last": state.history[-1] if state.history else None,
        }


def load_resume(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(checkpoint, run folder) of ``--resume RUN`` (a run folder or its last.pt)."""
    path = Path(path)
    checkpoint_path = path / "last.pt" if path.is_dir() else path
    if not checkpoint_path.is_file():
        raise MissingFileError(f"--resume {path}: no last.pt there; give a run folder written by train.py.")
    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint.get("kind", "last") != "last" or not checkpoint.get("state") or not checkpoint.get("optimizer"):
        raise UsageError(f"--resume {checkpoint_path} is not a training checkpoint (last.pt of a run).")
    return checkpoint, checkpoint_path.parent
