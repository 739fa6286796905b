"""The one loader of a trained detector: ``load_detector(source)``, used by test.py, predict.py, tools/explain.py,
model.export and the engine.

``source`` is one of our checkpoints (``RUN/best.pt``), a checkpoint saved by the released CAEL code, a model folder
written by ``python -m model.export`` (``model.safetensors`` + ``config.yaml``), or a Hugging Face hub id
(``owner/name`` or ``owner/name@revision``) of such a folder, downloaded once into the hub cache. Everything the
commands need travels with it: the model config, the calibrated threshold, the face-crop settings and the names of
the fine-grained classes. (``model.registry.build_model`` builds an untrained detector from a config.)
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


# Model keys that do not change what a trained model computes at test time.
TRAINING_ONLY_MODEL_KEYS = {"pretrained", "pretrained-file", "drop-path-rate", "dropout", "emb-dropout", "bn-momentum"}


class PretrainedError(UserError):
    """A model source (file, folder or hub id) that cannot be loaded; the message says what to do."""


class MissingSourceError(PretrainedError, FileNotFoundError):
    """A model source that is neither an existing file or folder nor a hub id."""


class CheckpointMismatchError(PretrainedError, ValueError):
    """A checkpoint that does not fit the requested model config."""


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
    released: bool = False  # a checkpoint of the released CAEL code, converted on loading

    @property
    def info(self) -> dict[str, Any]:
        """What the protocol card and the calibrated accuracy need: epoch, metrics, code version, calibration."""
        return {
            **{key: self.metadata.get(key) for key in ("epoch", "metrics", "code_version")},
            "calibration": self.calibration,
            **({"released": True} if self.released else {}),
        }

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
    raise MissingSourceError(
        f"no checkpoint at {source} (nor a model folder or hub id): give RUN/best.pt written by train.py, a folder "
        "written by python -m model.export, owner/name on the Hugging Face hub, or a released CAEL checkpoint."
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


def load_checkpoint_file(path: str | Path, requested_config: dict[str, Any] | None = None) -> Pretrained:
    """One of our training checkpoints (best.pt / last.pt), or a released CAEL one, as a ``Pretrained``.

    A released checkpoint (a bare state dict) is converted into our released-mode model built from
    ``requested_config`` (default ``model/configs/cael_released.yaml``).
    """
    refuse_other_formats(path)
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        return _load_released(checkpoint, requested_config, path)
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


def _load_released(checkpoint: Any, requested_config: dict[str, Any] | None, path: str | Path) -> Pretrained:
    from .convert_released import load_released_checkpoint

    if not isinstance(checkpoint, dict):
        raise PretrainedError(
            f"{path} is not a checkpoint written by train.py (a dict with 'model' and 'config') nor a released CAEL "
            "state dict: give RUN/best.pt."
        )
    requested_model = (requested_config or {}).get("model", requested_config) or {}
    if requested_model.get("name", "cael") != "cael":  # the released code's checkpoints are CAELs only
        return _load_bare_state_dict(checkpoint, requested_config, path)
    model, config, _, _ = load_released_checkpoint(checkpoint, requested_config)
    return Pretrained(model=model.eval(), config=config, source=str(path), released=True)


def _load_bare_state_dict(checkpoint: dict, requested_config: dict[str, Any], path: str | Path) -> Pretrained:
    """A bare state dict given with the config of another detector than CAEL (``--config xception``): the detector
    of that config holding it when its weights fit exactly (a timm network's own names are tried under the
    detector's ``network.``), else one error saying what the file holds and what takes it."""
    from .convert_released import ReleasedCheckpointError, unwrap_state_dict

    config = dict(requested_config) if "model" in requested_config else {"model": dict(requested_config)}
    name = config["model"].get("name")
    try:
        state_dict = unwrap_state_dict(checkpoint, str(path))
    except ReleasedCheckpointError as error:
        raise PretrainedError(f"{error} give RUN/best.pt written by train.py.") from None
    model = build_model(without_downloads(config["model"]))
    expected = model.state_dict()
    for prefix in ("", "network."):
        candidate = {prefix + key: value for key, value in state_dict.items()}
        if candidate.keys() == expected.keys() and all(candidate[k].shape == expected[k].shape for k in expected):
            model.load_state_dict(candidate)
            return Pretrained(model=model.eval(), config=config, source=str(path))
    prefix = "network." if hasattr(model, "network") else ""
    candidate = {prefix + key: value for key, value in state_dict.items()}
    missing, unexpected = sorted(expected.keys() - candidate.keys()), sorted(candidate.keys() - expected.keys())
    shapes = [
        f"{k} {tuple(candidate[k].shape)} (the {name}: {tuple(expected[k].shape)})"
        for k in sorted(expected.keys() & candidate.keys())
        if candidate[k].shape != expected[k].shape
    ]
    found = "; ".join(
        part
        for part in (
            f"{len(missing)} weight(s) missing, e.g. {', '.join(missing[:3])}" if missing else "",
            f"{len(unexpected)} unexpected, e.g. {', '.join(unexpected[:3])}" if unexpected else "",
            f"{len(shapes)} of another shape: {', '.join(shapes[:2])}" if shapes else "",
        )
        if part
    )
    backbone = (
        f"; weights of the {name} network with another classifier (a backbone's ImageNet weights, say) start a "
        f"training with --set model.pretrained-file={path}"
        if not missing and not unexpected
        else ""
    )
    raise PretrainedError(
        f"{path} is a bare state dict (not a checkpoint written by train.py) that does not fit the {name} of --config "
        f"({found}){backbone}: give RUN/best.pt written by train.py, or a model folder written by python -m "
        "model.export."
    )


def refuse_other_formats(path: str | Path) -> None:
    """A one-sentence error for a model file in a format that this loader does not read (ONNX, bare safetensors,
    TorchScript), saying what the file is and what takes it; nothing for anything else."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(64)
    except OSError:
        return  # the checkpoint reader names a file it cannot open
    folder = path.parent
    beside = f" or give the model folder {folder}" if is_model_folder(folder) else ""
    if path.suffix.lower() == ".onnx" or _looks_like_onnx(head):
        raise PretrainedError(
            f"{path} is an ONNX graph (python -m model.export --onnx writes one), which this command does not run: run "
            "it with onnxruntime (input 'images': uint8 RGB face crops (batch, 3, S, S); output 'logits'; score = "
            f"softmax(logits)[:, 1]; docs/using.md, section ONNX, has the code){beside}, or give RUN/best.pt."
        )
    if path.suffix.lower() == ".safetensors" or _looks_like_safetensors(head):
        raise PretrainedError(
            f"{path} holds bare safetensors weights without their config: give the model folder that holds it with "
            f"its config.yaml{beside or ' (written by python -m model.export)'}."
        )
    if head.startswith(b"PK") and _is_torchscript(path):
        raise PretrainedError(
            f"{path} is a TorchScript program: load it with torch.jit.load; this command takes RUN/best.pt written "
            "by train.py, a model folder written by python -m model.export, or a hub id."
        )


def _looks_like_onnx(head: bytes) -> bool:
    # a serialised ModelProto starts with ir_version (field 1, varint) and names its producer early on
    return head[:1] == b"\x08" and any(name in head for name in (b"pytorch", b"onnx", b"ONNX"))


def _looks_like_safetensors(head: bytes) -> bool:
    # an 8-byte little-endian header length, then the JSON header itself
    return len(head) > 9 and head[8:10] in (b'{"', b"{ ") and int.from_bytes(head[:8], "little") < 100_000_000


def _is_torchscript(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def check_requested_config(checkpoint_model: dict[str, Any], requested: dict[str, Any], source: str) -> None:
    """An error unless a checkpoint's model config computes what ``requested`` asks for (training-only keys aside)."""
    from .registry import model_defaults

    have, want = checkpoint_model.get("name", "cael"), requested.get("name", "cael")
    if have != want:  # another architecture: its keys differ in everything, and the names say why
        raise CheckpointMismatchError(
            f"{source} is a {have} (its model.name), you asked for {want} (--config): drop --config to use the {have} "
            f"it holds, or give a checkpoint of a {want}."
        )
    # a checkpoint written before a model key existed holds that key's default
    defaults = model_defaults(have)
    checkpoint_model = {**{k: v for k, v in defaults.items() if v is not None}, **checkpoint_model}
    differing = sorted(
        key
        for key in set(checkpoint_model) | set(requested)
        if key not in TRAINING_ONLY_MODEL_KEYS and checkpoint_model.get(key) != requested.get(key)
    )
    if differing:
        detail = ", ".join(
            f"{k}: checkpoint {checkpoint_model.get(k)!r} vs requested {requested.get(k)!r}" for k in differing[:6]
        )
        raise CheckpointMismatchError(
            f"{source} was trained with a different model config ({detail}): drop --config to use the checkpoint's "
            "own, or pass the config it was trained with."
        )


def load_detector(source: str | Path, requested_config: dict[str, Any] | None = None) -> Pretrained:
    """A trained detector (in eval mode, on the CPU) from a checkpoint file, a model folder, a hub id or a released
    CAEL checkpoint, with what using it needs (``.model``, ``.config``, ``.class_names``, ``.info``, ...).

    ``requested_config`` (a run config): the detector must have been trained with this model config (an error
    naming the differing keys otherwise); for a released checkpoint, the config to build it with.
    """
    local = resolve_source(source)
    if local.is_dir():
        pretrained = load_folder(local, source=str(source))
    else:
        pretrained = load_checkpoint_file(local, requested_config)
    if requested_config is not None and not pretrained.released:
        check_requested_config(pretrained.config["model"], requested_config["model"], str(source))
    return pretrained


# The earlier name of ``load_detector``, for code written against it.
load_pretrained = load_detector
