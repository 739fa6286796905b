"""Trained detectors to share and reuse: a model folder (``model.safetensors`` + ``config.yaml``) or a hub id.

``load_pretrained(source)`` accepts one of our checkpoints (``RUN/best.pt``), a folder written by
``python -m model.export``, or a Hugging Face hub id (``owner/name`` or ``owner/name@revision``) of such a folder,
downloaded once into the hub cache. Everything predict.py, tools/explain.py and test.py need travels with it:
the model config, the calibrated threshold, the face-crop settings and the names of the fine-grained classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from common.checkpoint import read_checkpoint
from common.errors import UserError

from .registry import build_model, without_downloads

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
FOLDER_FORMAT = "cael-model-folder/1"
# The threshold used when a checkpoint carries no calibration (written at selection time since issue 10).
DEFAULT_THRESHOLD = 0.5
# owner/name with the hub's characters, optionally @revision; anything else is read as a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9_./-]+)?$")


class PretrainedError(UserError):
    """A model source (file, folder or hub id) that cannot be loaded; the message says what to do."""


@dataclass
class Pretrained:
    """A trained detector and what is needed to use it as it was trained."""

    model: nn.Module
    config: dict[str, Any]  # the run config it was trained with (model, data, train, eval sections)
    source: str
    calibration: dict[str, Any] | None = None  # {"threshold", "method", "split", "epoch"} or None
    class_names: dict[str, list[str]] = field(default_factory=dict)  # level2 / level3 names of the fine heads
    face_extraction: dict[str, Any] | None = None  # ExtractionSettings.to_dict() of the training crops, or None
    metadata: dict[str, Any] = field(default_factory=dict)  # epoch, step, code version, validation metrics, trained_on

    @property
    def threshold(self) -> float:
        return float(self.calibration["threshold"]) if self.calibration else DEFAULT_THRESHOLD

    @property
    def threshold_note(self) -> str:
        if self.calibration:
            c = self.calibration
            where = f"{c.get('method')} on the {c.get('split')} rows, epoch {c.get('epoch')}"
            return f"calibrated threshold {self.threshold:.4f} ({where})"
        return f"no calibrated threshold in {self.source}: using {DEFAULT_THRESHOLD}"

    @property
    def image_size(self) -> int:
        return int(self.config["model"]["image-size"])


def looks_like_hub_id(source: str | Path) -> bool:
    text = str(source)
    return not Path(text).exists() and bool(_HUB_ID.match(text)) and not text.endswith((".pt", ".pth", ".safetensors"))


def is_model_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file() and (Path(path) / WEIGHTS_FILE).is_file()


def download(repo_id: str) -> Path:
    """The local snapshot of a hub model folder (downloaded once, then read from the hub cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    repo, _, revision = repo_id.partition("@")
    try:
        folder = snapshot_download(
            repo, revision=revision or None, allow_patterns=[WEIGHTS_FILE, CONFIG_FILE, "README.md"]
        )
    except LocalEntryNotFoundError as error:
        raise PretrainedError(
            f"model {repo_id} is not in the local hub cache and cannot be downloaded (offline, or HF_HUB_OFFLINE=1): "
            f"connect once to cache it, or pass the path of a model folder written by python -m model.export."
        ) from error
    except RepositoryNotFoundError as error:
        raise PretrainedError(
            f"no model {repo} on the Hugging Face hub (or it is private: log in with `hf auth login`)."
        ) from error
    except (HfHubHTTPError, OSError) as error:
        raise PretrainedError(
            f"could not download model {repo_id} from the Hugging Face hub ({type(error).__name__}): "
            "check the id and the network."
        ) from error
    return Path(folder)


def resolve_source(source: str | Path) -> Path:
    """A local checkpoint file or model folder for ``source`` (downloading a hub id)."""
    path = Path(source)
    if path.is_file() or is_model_folder(path):
        return path
    if path.is_dir():
        found = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
        hint = f" (for a run folder, give {path}/best.pt)" if (path / "best.pt").is_file() else ""
        raise PretrainedError(f"{path} is not a model folder: it lacks {' and '.join(found)}{hint}.")
    if looks_like_hub_id(source):
        return download(str(source))
    raise PretrainedError(
        f"no checkpoint, model folder or hub id {source}: give RUN/best.pt, a folder written by "
        "python -m model.export, or owner/name."
    )


def read_folder_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG_FILE
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise PretrainedError(
            f"{path} is not valid YAML: export the model again with python -m model.export."
        ) from error
    if (
        not isinstance(content, dict)
        or content.get("format") != FOLDER_FORMAT
        or not isinstance(content.get("model"), dict)
    ):
        raise PretrainedError(
            f"{path} is not the config.yaml of a model folder ({FOLDER_FORMAT}): export it with python -m model.export."
        )
    return content


def _build(model_config: dict[str, Any], state_dict: dict[str, Any], source: str) -> nn.Module:
    # Trained weights replace the backbone's: never download ImageNet weights to throw them away.
    model = build_model(without_downloads(model_config))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise PretrainedError(
            f"the weights of {source} do not fit its model config: missing {list(missing)[:4]}, "
            f"unexpected {list(unexpected)[:4]}."
        )
    return model.eval()


def load_folder(folder: str | Path, source: str | None = None) -> Pretrained:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    source = source or str(folder)
    content = read_folder_config(folder)
    try:
        state_dict = load_file(folder / WEIGHTS_FILE)
    except (SafetensorError, OSError) as error:
        raise PretrainedError(
            f"{folder / WEIGHTS_FILE} is truncated or not a safetensors file: download or export it again."
        ) from error
    return Pretrained(
        model=_build(content["model"], state_dict, source),
        config={**(content.get("run-config") or {}), "model": content["model"]},
        source=source,
        calibration=content.get("calibration"),
        class_names=content.get("class-names") or {},
        face_extraction=content.get("face-extraction"),
        metadata=content.get("source") or {},
    )


def load_checkpoint_file(path: str | Path) -> Pretrained:
    """One of our training checkpoints (best.pt / last.pt) as a ``Pretrained``."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        raise PretrainedError(
            f"{path} is not a checkpoint written by train.py (a dict with 'model' and 'config'): for a released CAEL "
            "checkpoint, convert it first with python -m model.convert_released IN.pth OUT.pt."
        )
    config = checkpoint["config"]
    return Pretrained(
        model=_build(config["model"], checkpoint["model"], str(path)),
        config=config,
        source=str(path),
        calibration=checkpoint.get("calibration"),
        class_names=checkpoint.get("class_names") or {},
        face_extraction=(config.get("data") or {}).get("face-extraction"),
        metadata={
            key: checkpoint.get(key) for key in ("epoch", "step", "code_version", "metrics", "weights", "trained_on")
        },
    )


def load_pretrained(source: str | Path) -> Pretrained:
    """A trained detector (in eval mode, on the CPU) from a checkpoint file, a model folder or a hub id."""
    local = resolve_source(source)
    if local.is_dir():
        return load_folder(local, source=str(source))
    return load_checkpoint_file(local)
