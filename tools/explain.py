"""What did the detector look at? Class-activation maps, the edge map and CLS attention per face; t-SNE of a test set.

    python tools/explain.py --checkpoint checkpoint/RUN/best.pt faces/ --no-detect --out explain/
    python tools/explain.py --checkpoint RUN/best.pt photo.jpg --out explain/ --method layercam
    python tools/explain.py --checkpoint RUN/best.pt --out explain/ --tsne splits.csv --split test

Per face, one PNG (``<input>[_f<frame>_<face>].png``) and, for the set, ``grid.png``: the face as the model sees it,
the Sobel edge map of the edge stream, class-activation maps (pytorch-grad-cam) of the fine appearance backbone,
the coarse appearance backbone and the edge CNN for the chosen class, and the attention that the CLS tokens pay to
the other streams' patches in the last block (AECA: edge -> fine, edge -> coarse; cross-attention: fine -> coarse,
coarse -> fine), over one shared 0..1 colour bar. ``--tsne CSV``: t-SNE (scikit-learn) of the fine, coarse and edge
CLS tokens and of the fused feature (the three side by side), coloured by real / fake and by generator and forgery
type, generators absent from the checkpoint's training rows marked as unseen.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from common.cli import run  # noqa: E402
from common.errors import UsageError, UserError  # noqa: E402
from engine import figures  # noqa: E402

CAM_METHODS = ("gradcam", "gradcam++", "layercam", "hirescam", "xgradcam", "eigencam")
STREAMS = ("fine", "coarse", "edge")
ATTENTIONS = (  # (name, panel title, path from the last block to its Attention module, which patch grid)
    ("edge_to_fine", "AECA: edge CLS -> fine", ("aeca", "edge_to_fine"), "fine"),
    ("edge_to_coarse", "AECA: edge CLS -> coarse", ("aeca", "edge_to_coarse"), "coarse"),
    ("fine_to_coarse", "cross-attn: fine CLS -> coarse", ("cross_attention", "fine_to_coarse"), "coarse"),
    ("coarse_to_fine", "cross-attn: coarse CLS -> fine", ("cross_attention", "coarse_to_fine"), "fine"),
)
COLORMAP = "jet"
EXACT_TSNE_MAX = 300


# ---------------------------------------------------------------------------------------------- CAM and attention
class _BinaryLogits(nn.Module):
    """The detector with the binary logits as its only output (what the CAM library differentiates)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs = self.model(images)
        return outputs["logits"] if isinstance(outputs, dict) else outputs


def cam_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The feature maps each stream's tokens are cut from: fine and coarse EfficientNet outputs, the edge CNN."""
    return {
        "fine": model.appearance_fine.backbone.network.bn2,  # conv_head + BN + SiLU: the (B, 1280, S/32, S/32) map
        "coarse": model.appearance_coarse.backbone.blocks,  # the (B, 24, S/4, S/4) map
        "edge": model.edge_stream.cnn,  # the (B, 24, S/4, S/4) map
    }


def _cam_class(method: str):
    import pytorch_grad_cam as cams

    return {
        "gradcam": cams.GradCAM,
        "gradcam++": cams.GradCAMPlusPlus,
        "layercam": cams.LayerCAM,
        "hirescam": cams.HiResCAM,
        "xgradcam": cams.XGradCAM,
        "eigencam": cams.EigenCAM,
    }[method]


def class_activation_maps(
    model: nn.Module, images: torch.Tensor, *, method: str = "gradcam", target: int = 1
) -> dict[str, np.ndarray]:
    """stream -> (B, S, S) maps in 0..1 for class ``target`` (1: fake), in the image's own orientation."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wrapper = _BinaryLogits(model).eval()
    maps = {}
    for stream, layer in cam_layers(model).items():
        with _cam_class(method)(model=wrapper, target_layers=[layer]) as cam:
            result = cam(input_tensor=images.float(), targets=[ClassifierOutputTarget(target)] * len(images))
        if stream != "edge" and model.config.get("transpose-appearance"):
            result = result.transpose(0, 2, 1)  # the released face shows the appearance streams the transposed image
        maps[stream] = np.nan_to_num(result.astype(np.float32))
    return maps


def _get(module: nn.Module, path: tuple[str, ...]) -> nn.Module:
    for name in path:
        module = getattr(module, name)
    return module


@torch.no_grad()
def cls_attention(model: nn.Module, images: torch.Tensor) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(name -> (B, g, g) attention of a CLS token over the other stream's patches, name -> (B,) weight on itself).

    Last block, last used round, mean over heads; the query attends over [itself; patches], so the patch weights
    and the self weight sum to 1. Recomputed from the captured inputs (scaled_dot_product_attention returns none).
    """
    block = model.blocks[-1]
    modules = {}
    for name, _, path, _ in ATTENTIONS:
        owner = _get(block, path[:1])
        round_ = owner.used_rounds[-1] if hasattr(owner, "used_rounds") else owner.rounds[-1]
        modules[name] = getattr(round_, path[1]).attn
    captured: dict[str, torch.Tensor] = {}

    def hook(name):
        def capture(module, args, output):
            query, context = args[0], args[1] if len(args) > 1 else args[0]
            q = module.to_q(query).unflatten(-1, (module.heads, -1)).transpose(1, 2)
            k = module.to_kv(context).chunk(2, dim=-1)[0].unflatten(-1, (module.heads, -1)).transpose(1, 2)
            weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-1)
            captured[name] = weights.mean(dim=1)[:, 0].float().cpu()  # (B, 1 + patches)

        return capture

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    try:
        model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    maps, self_weights = {}, {}
    for name, weights in captured.items():
        patches = weights[:, 1:].numpy()
        side = int(round(math.sqrt(patches.shape[1])))
        grid = patches.reshape(len(patches), side, side)
        if model.config.get("transpose-appearance"):  # every one of these attends over appearance patches
            grid = grid.transpose(0, 2, 1)
        maps[name] = grid
        self_weights[name] = weights[:, 0].numpy()
    return maps, self_weights


@dataclass
class Explanation:
    title: str
    image: np.ndarray  # (S, S, 3) uint8: what the model sees
    edge_map: np.ndarray  # (S, S) float: the Sobel magnitude / 255 of the edge stream
    score: float
    cams: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> (S, S) in 0..1
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (g, g) patch weights
    self_weight: dict[str, float] = field(default_factory=dict)


def explain_batch(
    model: nn.Module, images: torch.Tensor, titles: list[str], *, method: str, target: int
) -> list[Explanation]:
    images = images.float()
    with torch.no_grad():
        outputs = model.eval()(images)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs
        scores = logits.float().softmax(dim=-1)[:, 1].numpy()
        edge_maps = model.preprocess.edge_map(images)[:, 0].numpy()
    cams = class_activation_maps(model, images, method=method, target=target)
    attention, self_weights = cls_attention(model, images)
    explanations = []
    for i, title in enumerate(titles):
        explanations.append(
            Explanation(
                title=title,
                image=images[i].permute(1, 2, 0).round().clamp(0, 255).byte().numpy(),
                edge_map=edge_maps[i],
                score=float(scores[i]),
                cams={k: v[i] for k, v in cams.items()},
                attention={k: v[i] for k, v in attention.items()},
                self_weight={k: float(v[i]) for k, v in self_weights.items()},
            )
        )
    return explanations


# ------------------------------------------------------------------------------------------------------ figures
PANEL_TITLES = {"fine": "CAM fine appearance", "coarse": "CAM coarse appearance", "edge": "CAM edge stream"}


def _panels(explanation: Explanation):
    """[(column header, panel title, draw)]: the header names what a column of ``grid.png`` shows (the same for every
    face); the title adds this face's numbers (its own figure)."""
    """(title, draw function) of every panel of one face, left to right."""
    size = explanation.image.shape[0]
    extent = (0, size, size, 0)

    def face(ax):
        ax.imshow(explanation.image, extent=extent)

    def edges(ax):
        ax.imshow(explanation.edge_map, cmap="gray", extent=extent)

    def overlay(values):
        def draw(ax):
            ax.imshow(explanation.image, extent=extent)
            return ax.imshow(
                values, cmap=COLORMAP, alpha=0.5, vmin=0.0, vmax=1.0, extent=extent, interpolation="bilinear"
            )

        return draw

    def attention(values):
        def draw(ax):
            ax.imshow(explanation.image, extent=extent)
            peak = values.max() if values.size and values.max() > 0 else 1.0
            return ax.imshow(
                values / peak, cmap=COLORMAP, alpha=0.5, vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest"
            )

        return draw

    panels = [
        ("input", f"input, P(fake) {explanation.score:.3f}", face),
        ("Sobel edge map", "Sobel edge map (edge stream input)", edges),
    ]
    panels += [
        (PANEL_TITLES[s], PANEL_TITLES[s], overlay(explanation.cams[s])) for s in STREAMS if s in explanation.cams
    ]
    for name, title, _, _ in ATTENTIONS:
        if name in explanation.attention:
            grid = explanation.attention[name]
            panels.append(
                (
                    title,
                    f"{title}\n({grid.shape[0]}x{grid.shape[1]} patches, self {explanation.self_weight[name]:.2f})",
                    attention(grid),
                )
            )
    return panels


COLORBAR_LABEL = "relative weight (CAM: min-max per map; attention: divided by its peak)"


def save_explanation(path: Path, explanation: Explanation, *, method: str, target_name: str) -> Path:
    panels = _panels(explanation)
    columns = 3
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns + 0.8, 3.2 * rows), squeeze=False)
    mappable = None
    for ax, (_, title, draw) in zip(axes.flat, panels):
        drawn = draw(ax)
        mappable = drawn if drawn is not None else mappable
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    figure.suptitle(f"{explanation.title}  ({method} for class '{target_name}')", fontsize=10)
    if mappable is not None:
        figure.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02, label=COLORBAR_LABEL)
    figures.save_figure(figure, path)
    plt.close(figure)
    return path


GRID_LABEL_WIDTH = 18  # characters a line of a row label: whole file names, wrapped, never cut


def grid_row_label(explanation: Explanation) -> str:
    """The label left of a row of ``grid.png``: the input's whole name, wrapped after its hyphens, underscores and
    dots (never cut), and its P(fake)."""
    import re

    lines = [""]
    for piece in re.findall(r"[^-_.]+[-_.]?|[-_.]", explanation.title):
        while len(piece) > GRID_LABEL_WIDTH:  # a name without separators: hard breaks
            lines += [piece[:GRID_LABEL_WIDTH], ""]
            piece = piece[GRID_LABEL_WIDTH:]
        if lines[-1] and len(lines[-1]) + len(piece) > GRID_LABEL_WIDTH:
            lines.append("")
        lines[-1] += piece
    return "\n".join(line for line in lines if line) + f"\nP(fake) {explanation.score:.3f}"


def save_grid(path: Path, explanations: list[Explanation], *, method: str, target_name: str) -> Path:
    """One row per face (labelled with its name and P(fake)), the panels as columns (headed by what they show),
    one colour bar; laid out by matplotlib's constrained layout, so nothing is cut and no band is left empty."""
    panel_sets = [_panels(e) for e in explanations]
    columns = max(len(p) for p in panel_sets)
    figure, axes = plt.subplots(
        len(explanations),
        columns,
        figsize=(1.6 * columns + 2.2, 1.6 * len(explanations) + 0.7),
        squeeze=False,
        layout="constrained",
    )
    mappable = None
    headers = max(panel_sets, key=len)
    for row, (explanation, panels) in enumerate(zip(explanations, panel_sets)):
        for column, (_, _, draw) in enumerate(panels):
            ax = axes[row, column]
            drawn = draw(ax)
            mappable = drawn if drawn is not None else mappable
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(grid_row_label(explanation), rotation=0, ha="right", va="center", fontsize=7)
        for column in range(len(panels), columns):
            axes[row, column].axis("off")
    for column, (header, _, _) in enumerate(headers):
        axes[0, column].set_title(header, fontsize=7)
    figure.suptitle(f"{method} for class '{target_name}'", fontsize=9)
    if mappable is not None:
        figure.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01, label="relative weight")
    figures.save_figure(figure, path)
    plt.close(figure)
    return path


# ----------------------------------------------------------------------------------------------------------- t-SNE
@torch.no_grad()
def cls_features(model: nn.Module, loader, device: torch.device) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(row indices, name -> (N, D) features): the fine, coarse and edge CLS tokens after the last block, and fused."""
    model.eval()
    indices, parts = [], {s: [] for s in STREAMS}
    for batch in loader:
        if len(batch["label"]) == 0:
            continue
        fine, coarse, edge = model.forward_features(batch["image"].to(device))
        for stream, tokens in zip(STREAMS, (fine, coarse, edge)):
            parts[stream].append(tokens[:, 0].float().cpu())
        indices.append(batch["index"])
    if not indices:
        raise UserError("no image of the t-SNE rows could be read: check the CSV's paths.")
    features = {s: torch.cat(v).numpy() for s, v in parts.items()}
    # Project's choice: the fused feature is the three CLS tokens side by side, what the attribution heads read.
    features["fused"] = np.concatenate([features[s] for s in STREAMS], axis=1)
    return torch.cat(indices).numpy(), features


def tsne_embedding(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 5:
        raise UserError(f"t-SNE needs at least 5 images; the selected rows hold {n}: choose another --split or CSV.")
    perplexity = float(min(30.0, (n - 1) / 3.0))
    # Exact gradients are cheaper than the Barnes-Hut tree for small sets, and the same method for larger ones.
    method = "exact" if n <= EXACT_TSNE_MAX else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", method=method, random_state=seed)
    return tsne.fit_transform(features.astype(np.float64))


def tsne_figure(
    embedding: np.ndarray,
    colourings: list[tuple[str, list[str]]],
    unseen: set[str],
    title: str,
    palettes: dict[str, dict[str, str]] | None = None,
):
    """One panel per colouring (real / fake, then each group column); a name has one colour in every panel (real
    the same as in every other figure of the run: engine.figures' palette), unseen generators drawn as crosses."""
    palettes = palettes or {}
    figure, axes = figures.new_figure(len(colourings), panel_size=(5.0, 4.6), columns=len(colourings))
    for ax, (column, values) in zip(axes, colourings):
        values_array = np.asarray(values, dtype=object)
        palette = palettes.get(column) or figures.group_palette(values)
        for name in sorted(set(values)):
            picked = values_array == name
            is_unseen = column == "generator" and name in unseen
            ax.scatter(
                embedding[picked, 0],
                embedding[picked, 1],
                s=10,
                color=figures.colour_of({column: palette}, column, name),
                marker="x" if is_unseen else "o",
                label=f"{name} (unseen)" if is_unseen else name,
                alpha=0.8,
                linewidths=0.8,
            )
        ax.set_title(f"by {figures.LEVEL_TITLES.get(column, column)}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=1.2, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure


def plot_tsne(
    path: Path,
    embedding: np.ndarray,
    colourings: list[tuple[str, list[str]]],
    unseen: set[str],
    title: str,
    palettes: dict[str, dict[str, str]] | None = None,
    figure_hook=None,
) -> Path:
    figures.save_figure(tsne_figure(embedding, colourings, unseen, title, palettes), path, figure_hook=figure_hook)
    return path


def tsne_title(config: dict[str, Any] | None, feature: str, images: str) -> str:
    """The t-SNE figure's title: the feature, the checkpoint's detector, protocol and fold, the images shown."""
    config = config or {}
    data = config.get("data") or {}
    detector = figures.describe_run((config.get("model") or {}).get("name"), data.get("protocol"), data.get("fold"))
    what = "feature (3 CLS tokens)" if feature == "fused" else "CLS token"
    return f"t-SNE of the {feature} {what}, {detector}: {' '.join(images.split())}"


def tsne_report(
    pretrained,
    csv_path: str,
    *,
    data_root: str | None,
    split: str | None,
    max_rows: int,
    out_dir: Path,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    from common.atomic import write_text_atomic
    from data.csv_dataset import SplitDataset
    from data.loader import build_loader
    from data.protocols import ProtocolError, resolve
    from data.schema import load_table

    table = load_table(csv_path, data_root)
    rows = np.arange(len(table))
    if split:
        if not table.has("split"):
            raise UserError(f"{csv_path} has no split column: drop --split to use every row.")
        rows = rows[np.array(table.values("split", rows)) == split]
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    dataset = SplitDataset(table, rows, size=pretrained.image_size, on_error="skip")
    loader = build_loader(dataset, batch_size=batch_size, train=False, workers=0)
    indices, features = cls_features(pretrained.model.to(device), loader, device)
    labels = ["fake" if table.labels[i] == 1 else "real" for i in indices]
    colourings = [("real / fake", labels)] + [
        (c, list(table.values(c, indices))) for c in ("generator", "forgery_type") if table.has(c)
    ]
    unseen: set[str] = set()
    seen_note = "no generator column"
    if table.has("generator"):
        data = pretrained.config.get("data") or {}
        try:
            trained = resolve(data.get("protocol", "intra"), table, data.get("fold"))
            seen = set(table.values("generator", trained.train[table.labels[trained.train] == 1]))
            unseen = {
                g for g, label in zip(table.values("generator", indices), labels) if label == "fake" and g not in seen
            }
            run_name = ", ".join(str(v) for v in (data.get("protocol"), data.get("fold")) if v)
            seen_note = f"generators seen in training ({run_name}): {', '.join(sorted(seen)) or 'none'}"
        except (ProtocolError, UserError, ValueError, KeyError) as error:
            seen_note = f"seen generators unknown ({error})"
    out_dir.mkdir(parents=True, exist_ok=True)
    palettes = figures.table_palettes(table)
    written, coordinates = [], {}
    for name, values in features.items():
        embedding = tsne_embedding(values, seed=seed)
        coordinates[name] = embedding
        title = tsne_title(pretrained.config, name, f"{len(indices)} {split or ''} images of {Path(csv_path).name}")
        written.append(plot_tsne(out_dir / f"tsne_{name}.png", embedding, colourings, unseen, title, palettes))
    lines = ["path,label," + ",".join(f"{n}_x,{n}_y" for n in coordinates)]
    paths = table.resolved_paths(indices)
    for k, (path, label) in enumerate(zip(paths, labels)):
        lines.append(f"{path},{label}," + ",".join(f"{c[k, 0]:.4f},{c[k, 1]:.4f}" for c in coordinates.values()))
    write_text_atomic(out_dir / "tsne.csv", "\n".join(lines) + "\n")
    return {
        "pngs": written,
        "csv": out_dir / "tsne.csv",
        "n": len(indices),
        "unseen": sorted(unseen),
        "note": seen_note,
    }


# ----------------------------------------------------------------------------------------------------- command line
def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Explain a trained detector: CAM, edge map and CLS attention per face; t-SNE of a set.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="image files, folders (recursive) or videos to explain"
    )
    parser.add_argument("--checkpoint", required=True, help="RUN/best.pt, a model folder or a hub id owner/name")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--no-detect", action="store_true", help="the images are face crops already")
    parser.add_argument(
        "--method", choices=CAM_METHODS, default="gradcam", help="class-activation method (default gradcam)"
    )
    parser.add_argument(
        "--target", choices=["fake", "real"], default="fake", help="class whose evidence the maps show (default fake)"
    )
    parser.add_argument("--max-faces", type=int, default=64, help="at most this many faces explained (default 64)")
    parser.add_argument("--tsne", metavar="CSV", help="split CSV whose rows to embed with t-SNE")
    parser.add_argument("--data-root", help="folder the --tsne CSV's paths are relative to")
    parser.add_argument("--split", default="test", help="rows of this split for t-SNE (default test; '' for every row)")
    parser.add_argument(
        "--tsne-max", type=int, default=2000, help="at most this many rows for t-SNE, a seeded sample (default 2000)"
    )
    parser.add_argument("--device", default="auto", help="cuda, cuda:1, cpu (default: CUDA when present)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120]


def main(argv=None) -> dict[str, Any]:
    args = get_args_parser().parse_args(argv)
    if not args.inputs and not args.tsne:
        raise UsageError("nothing to explain: name images / folders / videos, or --tsne CSV, or both.")
    from data.trained_on import inputs_caveat
    from engine.distributed import DistInfo, device_for
    from engine.inference.inputs import collect_inputs, detector_beside, extraction_settings, iter_face_crops
    from model.hub import load_detector

    pretrained = load_detector(args.checkpoint)
    if not all(
        hasattr(pretrained.model, name) for name in ("appearance_fine", "appearance_coarse", "edge_stream", "blocks")
    ):
        raise UserError(f"{args.checkpoint} is not a CAEL model: explanations know CAEL's streams only.")
    try:
        device = device_for(DistInfo(), args.device)
    except RuntimeError as error:
        raise UsageError(
            f"--device {args.device} cannot be used here: give cpu, or cuda / cuda:N on a machine with CUDA."
        ) from error
    model = pretrained.model.to(device)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"out_dir": out_dir, "pngs": [], "problems": []}
    target = 1 if args.target == "fake" else 0
    if args.inputs:
        items = collect_inputs(args.inputs)
        settings = detector = None
        if not args.no_detect:
            settings, _ = extraction_settings(pretrained.face_extraction)
            detector = detector_beside(settings, device)
        crops = []
        for crop in iter_face_crops(
            items,
            image_size=pretrained.image_size,
            detect=not args.no_detect,
            settings=settings,
            detector=detector,
            progress=False,
        ):
            crops.append(crop)
            if len(crops) == args.max_faces:
                break
        result["problems"] = [f"{item.path}: {item.status}" for item in items if item.status != "ok"]
        explanations = []
        for start in range(0, len(crops), 16):
            chunk = crops[start : start + 16]
            titles = [
                Path(items[c.input_index].path).name
                + (
                    f" frame {c.frame} face {c.face_index}"
                    if items[c.input_index].kind == "video" or c.face_index
                    else ""
                )
                for c in chunk
            ]
            images = torch.stack([c.pixels for c in chunk]).to(device)
            explanations += explain_batch(model, images, titles, method=args.method, target=target)
        for crop, explanation in zip(crops, explanations):
            item = items[crop.input_index]
            stem = _safe_name(item.path.stem) + (
                f"_f{crop.frame}_{crop.face_index}" if item.kind == "video" or crop.face_index else ""
            )
            result["pngs"].append(
                save_explanation(out_dir / f"{stem}.png", explanation, method=args.method, target_name=args.target)
            )
        if explanations:
            result["grid"] = save_grid(out_dir / "grid.png", explanations, method=args.method, target_name=args.target)
        print(f"{len(explanations)} faces explained ({args.method}, class {args.target}) -> {out_dir}")
        for problem in result["problems"]:
            print(f"not explained: {problem}")
    if args.tsne:
        tsne = tsne_report(
            pretrained,
            args.tsne,
            data_root=args.data_root,
            split=args.split or None,
            max_rows=args.tsne_max,
            out_dir=out_dir,
            device=device,
            seed=args.seed,
        )
        result["tsne"] = tsne
        print(f"t-SNE of {tsne['n']} images -> {', '.join(p.name for p in tsne['pngs'])}; {tsne['note']}")
    explained = [str(path) for path in args.inputs or []] + ([args.tsne] if args.tsne else [])
    result["caveat"] = inputs_caveat(pretrained.metadata.get("trained_on"), explained)
    if result["caveat"]:
        print(f"caveat: {result['caveat']}")
    return result


if __name__ == "__main__":
    sys.exit(run(main))
