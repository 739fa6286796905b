"""Share a trained detector: a model folder with safetensors weights, its config and a model card; hub upload; ONNX.

    python -m model.export checkpoint/RUN/best.pt exported/cael-demo              # the folder
    python -m model.export checkpoint/RUN/best.pt exported/cael-demo --onnx       # + model.onnx, parity-checked
    python -m model.export checkpoint/RUN/best.pt exported/cael-demo --push you/cael-genface   # + upload

The folder (``model.safetensors``, ``config.yaml``, ``README.md``) loads back with ``load_detector(FOLDER)``,
``predict.py --checkpoint FOLDER`` and ``test.py --checkpoint FOLDER``; once uploaded, the same with the hub id.
It also holds the web page (tools/app.py): ``app.py``, its ``requirements.txt``, a ``Dockerfile`` (a hosted Space of
the Docker SDK) and the project code it runs in ``cael_code/``, so that ``python app.py`` serves it anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from common.atomic import atomic_folder
from common.config import REPO_ROOT
from common.errors import UsageError, UserError
from data.trained_on import DEMO_CAVEAT, training_summary

from .hub import CONFIG_FILE, FOLDER_FORMAT, WEIGHTS_FILE, Pretrained, load_detector
from .registry import without_downloads

ONNX_FILE = "model.onnx"
APP_FILE = "app.py"
APP_REQUIREMENTS = "requirements.txt"
APP_CODE = "cael_code"  # the project code the page runs, copied: the folder serves the page without a checkout
APP_PACKAGES = ("common", "data", "engine", "loss_folder", "model")
APP_TOOLS = ("__init__.py", "app.py", "app_core.py", "app_page.html", "explain.py", "app_examples")
APP_CODE_SUFFIXES = {".py", ".yaml", ".yml", ".html"}
APP_PORT = 7860
VALIDATION_SHOWN = (
    ("val_auc", "AUC"),
    ("val_ap", "AP"),
    ("val_eer", "EER"),
    ("val_balanced_acc", "balanced accuracy"),
    ("val_video_auc", "video AUC"),
    ("val_loss", "loss"),
)
ONNX_OPSET = 18
# fp32 logits of the ONNX graph and of PyTorch agree to rounding; anything larger is a real export defect.
ONNX_TOLERANCE = 1e-4


class ExportError(UserError):
    """An export that cannot be done as asked; the message says what to do."""


# ------------------------------------------------------------------------------------------------ local paths
def public_path(path: str | Path) -> str:
    """A path as a shared model folder may show it: relative to the repository when inside it, else its last folder
    and file name after '.../' (an absolute path names a home or temporary folder of the machine it was made on)."""
    text = str(path)
    if not os.path.isabs(text):
        return text
    absolute = Path(os.path.abspath(text))
    if absolute.is_relative_to(REPO_ROOT):
        return absolute.relative_to(REPO_ROOT).as_posix()
    return ".../" + "/".join(absolute.parts[-2:]) if len(absolute.parts) > 2 else absolute.name


def public_command(command: str) -> str:
    """A command line with each absolute path in it (``/x/y``, ``--out=/x/y``) written by ``public_path``."""
    words = []
    for word in command.split(" "):
        option, equals, value = word.partition("=")
        if equals and os.path.isabs(value):
            words.append(f"{option}={public_path(value)}")
        else:
            words.append(public_path(word) if os.path.isabs(word) else word)
    return " ".join(words)


def _public(value: Any) -> Any:
    """``value`` (plain YAML values) with every absolute path in it written by ``public_path``."""
    if isinstance(value, Mapping):
        return {key: _public(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_public(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return public_path(value)
    return value


# ----------------------------------------------------------------------------------------------- the folder
def folder_config(pretrained: Pretrained) -> dict[str, Any]:
    """The content of config.yaml: everything needed to use the weights exactly as they were trained."""
    model_config = without_downloads(pretrained.config["model"])
    metadata = pretrained.metadata
    return {
        "format": FOLDER_FORMAT,
        "model": model_config,
        "preprocessing": {
            "image-size": model_config["image-size"],
            "input": "RGB uint8 (B, 3, H, W), values 0..255; the model scales, normalises and computes its edge map",
            "resize": "bicubic with antialiasing on 8-bit RGB (data/images.py load_image)",
            "input-channel-order": model_config.get("input-channel-order", "rgb"),
        },
        "face-extraction": pretrained.face_extraction,
        "calibration": pretrained.calibration,
        "class-names": pretrained.class_names or {},
        "source": {
            "checkpoint": Path(pretrained.source).name,
            "epoch": metadata.get("epoch"),
            "step": metadata.get("step"),
            "ema": metadata.get("weights") == "ema",
            "code_version": metadata.get("code_version"),
            "validation": _plain(metadata.get("metrics")),
            "trained_on": _public(_plain(metadata.get("trained_on"))),  # data.trained_on record; None: not recorded
        },
        # the run's paths without this machine's folders (the folder is made to be shared)
        "run-config": _public(_plain({k: v for k, v in pretrained.config.items() if k != "model"})),
    }


def _plain(value: Any) -> Any:
    """Tensors, numpy scalars and tuples as plain YAML values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (torch.Tensor, np.generic, np.ndarray)):
        return _plain(value.tolist())
    return value


def _run_files(checkpoint: Path, eval_dir: Path | None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(env.json of the run, [(title, table.md)] of its evaluations) found next to the checkpoint."""
    env_path = checkpoint.parent / "env.json"
    env = json.loads(env_path.read_text()) if env_path.is_file() else {}
    eval_dirs = [eval_dir] if eval_dir else sorted(p.parent for p in checkpoint.parent.glob("eval-*/table.md"))
    tables = []
    for folder in eval_dirs:
        table = folder / "table.md"
        if not table.is_file():
            raise ExportError(
                f"--eval {folder} holds no table.md: give the output folder of test.py for this checkpoint."
            )
        metrics_path = folder / "metrics.json"
        title = (
            json.loads(metrics_path.read_text()).get("title", folder.name) if metrics_path.is_file() else folder.name
        )
        tables.append((title, table.read_text().strip()))
    return env, tables


def _probability_line(calibration: Mapping[str, Any] | None) -> str:
    """The card's line on the calibration map and the uncertain band (model/ reads the stored dicts as they are)."""
    fitted = (calibration or {}).get("probability")
    if not fitted:
        return "no calibration map stored: P(fake) is the model's own softmax probability"
    parameters = ", ".join(
        f"{k} = {v:.4g}" for k, v in fitted.get("parameters", {}).items() if isinstance(v, (int, float))
    )
    rows = (fitted.get("fitted_on") or {}).get("rows")
    text = f"calibrated by {fitted.get('method')}" + (f" ({parameters})" if parameters else "")
    text += f", fitted by NLL on {rows} validation rows" if rows else ""
    band = (calibration or {}).get("uncertain")
    if band:
        text += (
            f"; verdict uncertain for calibrated P(fake) between {band['low']:.4f} and {band['high']:.4f} (the band "
            f"that kept the error of the answered validation rows under {100 * band['risk']:g}%)"
        )
    return text


def model_card(
    pretrained: Pretrained,
    config: Mapping[str, Any],
    env: Mapping[str, Any],
    tables,
    *,
    repo_id: str | None,
    onnx: bool = False,
) -> str:
    """README.md of the folder: what the model is, how it was trained and tested, and how to use it."""
    run = config["run-config"]
    data, train = run.get("data", {}), run.get("train", {})
    source = config["source"]
    code = source.get("code_version") or {}
    name = repo_id or "FOLDER"
    validation = source.get("validation") or {}
    val_lines = [
        f"- validation {label}: {validation[key]:.4f}"
        for key, label in VALIDATION_SHOWN
        if isinstance(validation.get(key), float)
    ]
    calibration = pretrained.calibration
    threshold = (
        (
            f"{calibration['threshold']:.4f} ({calibration.get('method')} on the {calibration.get('split')} rows, "
            f"epoch {calibration.get('epoch')})"
        )
        if calibration
        else "none stored: predict.py uses 0.5 (and says so)"
    )
    extraction = pretrained.face_extraction
    fine = pretrained.class_names or {}
    command_line = sys.argv[0].endswith("export.py") or sys.argv[0] == "-m"
    exported_by = public_command(" ".join(sys.argv[1:])) if command_line else f"{Path(pretrained.source).name} ..."
    lines = [
        "---",
        "library_name: pytorch",
        "tags: [face-forgery-detection, deepfake-detection, cael, genface]",
        "sdk: docker  # uploaded as a Space, the folder serves its web page (Dockerfile, app.py)",
        f"app_port: {APP_PORT}",
        "---",
        f"# CAEL face-forgery detector ({Path(str(data.get('csv') or 'unknown data')).stem}, "
        f"protocol {data.get('protocol')}" + (f", fold {data.get('fold')}" if data.get("fold") else "") + ")",
        "",
        "CAEL (cross appearance-edge learning) from *GenFace* (Zhang et al., IEEE TIFS 2024), trained with the CAEL "
        "reference implementation. Input: RGB face crops; output: logits (real, fake); score = softmax(logits)[1].",
        "",
        *([f"**Caveat: {DEMO_CAVEAT}.**", ""] if (source.get("trained_on") or {}).get("kind") == "demo" else []),
        "## Use",
        "```bash",
        f"python predict.py --checkpoint {name} photo.jpg video.mp4 --out predictions/",
        f"python test.py --checkpoint {name} --csv splits.csv --protocol intra",
        "```",
        "```",
        "The web page (upload an image or a video; faces, scores, Grad-CAM), from this folder:",
        "```bash",
        f"pip install -r {APP_REQUIREMENTS}",
        f"python {APP_FILE}            # http://127.0.0.1:{APP_PORT}",
        "```",
        "```python",
        "from model.hub import load_detector",
        f'model = load_detector("{name}").model   # eval mode; model(uint8 (B, 3, H, W) RGB images) -> logits',
        "```",
        *(_onnx_section(config["preprocessing"]["image-size"], output_names(pretrained.model)) if onnx else []),
        "",
        "## Training",
        f"- data CSV: `{data.get('csv')}` (data root: `{data.get('root') or 'the CSV folder'}`)",
        f"- {training_summary(source.get('trained_on')) or 'training data: not recorded in the checkpoint'}",
        f"- protocol: `{data.get('protocol')}`" + (f", fold `{data.get('fold')}`" if data.get("fold") else ""),
        f"- epochs: {train.get('epochs')}, batch size {train.get('batch-size')}, seed {train.get('seed')}, "
        f"precision {train.get('precision')}",
        f"- weights: epoch {source.get('epoch')}, optimizer step {source.get('step')}"
        + (" (EMA)" if source.get("ema") is True else "")
        + f", chosen on the validation rows by {train.get('select-metric')}",
        *val_lines,
        f"- decision threshold: {threshold}",
        f"- probabilities: {_probability_line(calibration)}",
        f"- face crops: {json.dumps(extraction) if extraction else 'not recorded (the CSV held ready-made crops)'}",
        f"- input: {config['preprocessing']['image-size']} px, {config['preprocessing']['input']}",
    ]
    if fine:
        lines += [f"- {level} classes: {', '.join(names)}" for level, names in sorted(fine.items())]
    lines += ["", "## Test results"]
    if tables:
        for _title, table in tables:
            lines += ["", "From `python test.py` (scores in %; AUC interval: stratified bootstrap 95%):", "", table]
    else:
        lines += ["", "No test.py evaluation was found next to the checkpoint (RUN/eval-*/table.md)."]
    lines += [
        "",
        "## Provenance",
        f"- code: commit `{code.get('commit')}`" + (" (with uncommitted changes)" if code.get("dirty") else ""),
        f"- training command: `{public_command(env['command']) if env.get('command') else 'not recorded'}`",
        f"- libraries: {', '.join(f'{k} {v}' for k, v in (env.get('libraries') or {}).items())}"
        if env.get("libraries")
        else "- libraries: not recorded",
        f"- exported by: `python -m model.export {exported_by}`",
        "",
        "## Citation",
        "```bibtex",
        "@article{zhang2024genface,",
        "  title   = {GenFace: A Large-Scale Fine-Grained Face Forgery Benchmark and Cross Appearance-Edge Learning},",
        "  author  = {Zhang, Yaning and Yu, Zitong and Wang, Tianyi and Huang, Xiaobin and Shen, Linlin and Gao, Zan"
        " and Ren, Jianfeng},",
        "  journal = {IEEE Transactions on Information Forensics and Security},",
        "  year    = {2024}",
        "}",
        "```",
    ]
    return "\n".join(lines) + "\n"


def _onnx_section(size: int, outputs: list[str]) -> list[str]:
    """How to run model.onnx: the card says it, as the message for an ONNX file given to test.py points here."""
    return [
        "",
        f"`{ONNX_FILE}` is the whole detector, preprocessing included (input `images`: uint8 RGB face crops "
        f"(batch, 3, {size}, {size}); outputs {', '.join(f'`{name}`' for name in outputs)}; score = "
        "softmax(logits)[:, 1]). With onnxruntime, on a face crop resized as in training (bicubic):",
        "```python",
        "import numpy as np, onnxruntime",
        "from PIL import Image",
        f'session = onnxruntime.InferenceSession("{ONNX_FILE}", providers=["CPUExecutionProvider"])',
        f'face = Image.open("face.png").convert("RGB").resize(({size}, {size}), Image.Resampling.BICUBIC)',
        'logits = session.run(["logits"], {"images": np.asarray(face).transpose(2, 0, 1)[None]})[0]',
        "score = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)   # probability of fake",
        "```",
        "predict.py finds and crops the faces of whole photos and videos first (with the PyTorch weights).",
    ]


def export_folder(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    eval_dir: str | Path | None = None,
    onnx: bool = False,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the model folder for a training checkpoint; it appears complete or not at all.

    Returns ``{"folder": Path, "onnx_max_difference": float | None}``.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(f"{out_dir} already exists and is not empty: choose another folder or pass --overwrite.")
    if checkpoint.is_dir():
        raise ExportError(f"{checkpoint} is a folder: give a run's checkpoint file (RUN/best.pt).")
    pretrained = load_detector(checkpoint)
    config = folder_config(pretrained)
    env, tables = _run_files(checkpoint, Path(eval_dir) if eval_dir else None)
    with atomic_folder(out_dir) as staging:
        from safetensors.torch import save_file

        state = {name: tensor.detach().contiguous().cpu() for name, tensor in pretrained.model.state_dict().items()}
        save_file(state, staging / WEIGHTS_FILE, metadata={"format": "pt", "cael": FOLDER_FORMAT})
        (staging / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
        (staging / "README.md").write_text(model_card(pretrained, config, env, tables, repo_id=repo_id, onnx=onnx))
        write_app(staging)
        difference = None
        if onnx:
            export_onnx(pretrained.model, staging / ONNX_FILE, image_size=pretrained.image_size)
            difference = check_onnx_parity(pretrained.model, staging / ONNX_FILE, image_size=pretrained.image_size)
    return {"folder": out_dir, "onnx_max_difference": difference}


# ------------------------------------------------------------------------------------------------- web page
APP_SCRIPT = f'''"""The web page of this model folder: tools/app.py of the CAEL reference implementation (copied into
{APP_CODE}/) serving the detector of this folder.

    pip install -r {APP_REQUIREMENTS}
    python {APP_FILE}                      # http://127.0.0.1:{APP_PORT}; python {APP_FILE} --help for the options
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "{APP_CODE}"))

from common.cli import run  # noqa: E402
from tools.app import main  # noqa: E402

if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--checkpoint" not in arguments:
        arguments = ["--checkpoint", str(HERE), *arguments]
    sys.exit(run(main, arguments))
'''

APP_DOCKERFILE = f"""# A hosted Space of the Docker SDK (or any Docker host): this folder's web page on port {APP_PORT}.
FROM python:3.11-slim
WORKDIR /app
COPY {APP_REQUIREMENTS} .
RUN pip install --no-cache-dir -r {APP_REQUIREMENTS}
COPY . .
ENV HF_HUB_OFFLINE=1
EXPOSE {APP_PORT}
CMD ["python", "{APP_FILE}", "--host", "0.0.0.0", "--port", "{APP_PORT}"]
"""


def write_app(folder: Path, root: Path | None = None) -> list[Path]:
    """app.py, requirements.txt (the runtime pins and the web extra's), a Dockerfile and the code the page runs
    (``APP_CODE``/: the project's packages and the page's tools, with its bundled examples) into ``folder``."""
    root = root or Path(__file__).resolve().parent.parent
    code = folder / APP_CODE
    sources = [root / package for package in APP_PACKAGES] + [root / "tools" / name for name in APP_TOOLS]
    for source in sources:
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(root)
            skipped = any(part.startswith(".") or part in ("__pycache__", "demo_data") for part in relative.parts)
            if skipped or (path.suffix not in APP_CODE_SUFFIXES and "app_examples" not in relative.parts):
                continue
            (code / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, code / relative)
    pins = []
    for name in ("requirements.txt", "requirements-app.txt"):
        if not (root / name).is_file():
            raise ExportError(f"{root / name} is missing: export from a checkout of the CAEL code.")
        pins.append(f"# {name} of the CAEL code\n" + (root / name).read_text().strip())
    (folder / APP_REQUIREMENTS).write_text("\n\n".join(pins) + "\n")
    (folder / APP_FILE).write_text(APP_SCRIPT)
    (folder / "Dockerfile").write_text(APP_DOCKERFILE)
    return [folder / APP_FILE, folder / APP_REQUIREMENTS, folder / "Dockerfile", code]


# ------------------------------------------------------------------------------------------------------ hub
def push_folder(folder: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Upload a model folder to the Hugging Face hub (creating the repository); returns its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ExportError(
            f"cannot upload to {repo_id}: HF_HUB_OFFLINE is set; unset it and run the command again "
            "(the folder is written)."
        )
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="Upload CAEL model folder"
        )
    except LocalTokenNotFoundError as error:
        raise ExportError(
            f"cannot upload to {repo_id} without a Hugging Face token: run `hf auth login` (or set HF_TOKEN), "
            "then --push again."
        ) from error
    except (HfHubHTTPError, OSError) as error:
        raise ExportError(
            f"uploading {folder} to {repo_id} failed ({type(error).__name__}: {str(error).splitlines()[0]}): "
            "check the token's write access and the network."
        ) from error
    return str(url)


# ----------------------------------------------------------------------------------------------------- ONNX
class _LogitsOnly(nn.Module):
    """The model with a tuple output (ONNX has no dicts): (logits[, level2_logits, level3_logits])."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        outputs = self.model(images)
        if isinstance(outputs, dict):
            return tuple(outputs[k] for k in ("logits", "level2_logits", "level3_logits") if k in outputs)
        return (outputs,)


def output_names(model: nn.Module) -> list[str]:
    return ["logits", "level2_logits", "level3_logits"] if getattr(model, "fine_grained_heads", False) else ["logits"]


def export_onnx(model: nn.Module, path: str | Path, *, image_size: int) -> Path:
    """ONNX graph of the whole detector, preprocessing included: uint8 (batch, 3, S, S) RGB -> logits, dynamic batch."""
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as error:
        raise ExportError(
            "ONNX export needs the onnx, onnxscript and onnxruntime packages: pip install -r requirements-dev.txt."
        ) from error
    model = model.eval()
    example = torch.randint(0, 256, (2, 3, image_size, image_size), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.onnx.export(
            _LogitsOnly(model).eval(),
            (example,),
            dynamo=True,
            input_names=["images"],
            output_names=output_names(model),
            dynamic_shapes=({0: batch},),
            opset_version=ONNX_OPSET,
            verbose=False,
        )
        program.save(str(path))
    except Exception as error:  # the exporter's failures are many types; the sentence names the model and the way out
        raise ExportError(
            f"this model cannot be exported to ONNX ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
            "share the safetensors folder instead, which every PyTorch user can load."
        ) from error
    return Path(path)


def check_onnx_parity(model: nn.Module, path: str | Path, *, image_size: int, batch: int = 3, seed: int = 0) -> float:
    """Largest |logit difference| between onnxruntime and PyTorch on seeded images; an error above the tolerance."""
    import onnxruntime

    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8, generator=generator)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_outputs = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        torch_outputs = _LogitsOnly(model.eval())(images)
    difference = max(float(np.abs(o - t.numpy()).max()) for o, t in zip(onnx_outputs, torch_outputs))
    if not difference <= ONNX_TOLERANCE:
        raise ExportError(
            f"the ONNX graph {path} differs from PyTorch by {difference:.2e} in the logits "
            f"(tolerance {ONNX_TOLERANCE}): do not deploy it."
        )
    return difference


# ------------------------------------------------------------------------------------------------- command line
def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write a shareable model folder (safetensors, config.yaml, model card) from a checkpoint.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("checkpoint", help="best.pt of a run (train.py)")
    parser.add_argument("out_dir", help="the model folder to write")
    parser.add_argument(
        "--eval", dest="eval_dir", help="test.py output folder for the model card (default: every RUN/eval-*/)"
    )
    parser.add_argument(
        "--onnx", action="store_true", help="also write model.onnx, checked against PyTorch with onnxruntime"
    )
    parser.add_argument(
        "--push", metavar="REPO_ID", help="upload the folder to the Hugging Face hub as this model repository"
    )
    parser.add_argument("--private", action="store_true", help="with --push: create the repository private")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    return parser


def main(argv=None) -> dict[str, Any]:
    args = get_args_parser().parse_args(argv)
    if args.private and not args.push:
        raise UsageError("--private only applies with --push REPO_ID.")
    result = export_folder(
        args.checkpoint,
        args.out_dir,
        eval_dir=args.eval_dir,
        onnx=args.onnx,
        repo_id=args.push,
        overwrite=args.overwrite,
    )
    folder = result["folder"]
    print(f"model folder written to {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
    if result["onnx_max_difference"] is not None:
        print(
            f"ONNX parity with PyTorch (onnxruntime, CPU): max |logit difference| {result['onnx_max_difference']:.2e}"
        )
    if args.push:
        result["url"] = push_folder(folder, args.push, private=args.private)
        print(f"uploaded to {result['url']}")
    return result


if __name__ == "__main__":
    from common.cli import run

    sys.exit(run(main))
