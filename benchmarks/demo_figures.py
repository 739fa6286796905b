"""The docs' figures of a run, drawn by the code that train.py, test.py and tools/explain.py use.

    python train.py                                                  # the demo run: checkpoint/<run>/
    python benchmarks/demo_figures.py checkpoint/<run> --out docs/figures

Writes, as PNG (200 dpi) and PDF each: ``curves`` (the run's training curves, redrawn from metrics.jsonl),
``roc`` and ``confusion_level2`` / ``confusion_level3`` (test.py on the run's best.pt, its own protocol and test
rows), ``tsne_fused`` (tools/explain.py --tsne on those test rows), and ``figures.md``: each figure with its caption.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import test as test_script  # noqa: E402
from common.atomic import write_bytes_atomic, write_text_atomic  # noqa: E402
from common.cli import run  # noqa: E402
from common.errors import UsageError  # noqa: E402
from engine import figures  # noqa: E402
from engine.training.records import read_records, run_title, selected_epoch  # noqa: E402

CAPTIONS = {
    "curves": "Training of the demo run: loss per epoch (left) and the validation metrics (right); the dashed line "
    "marks the epoch best.pt holds (chosen on the validation rows).",
    "roc": "ROC curves of the demo run on its test rows, one panel per level (forgery type, generator): overall in "
    "black in each panel, each forgery type or generator in its run-wide colour with its own dash pattern and "
    "markers, its AUC (%) in the legend.",
    "confusion_level2": "Forgery-type attribution of the fine-grained head on the test fakes (rows: true, columns: "
    "predicted); names in their run-wide colours.",
    "confusion_level3": "Generator attribution of the fine-grained head on the test fakes (rows: true, columns: "
    "predicted); names in their run-wide colours.",
    "tsne_fused": "t-SNE of the fused feature (the three CLS tokens side by side) of the test images, by real / fake, "
    "generator and forgery type; real is the same blue as everywhere, generators keep their ROC colours.",
}


def render(run_dir: Path, out_dir: Path, *, tsne: bool = True) -> list[Path]:
    """Every figure of ``run_dir`` into ``out_dir``; returns the PNGs written (each with its PDF beside it)."""
    best = run_dir / "best.pt"
    if not best.is_file():
        raise UsageError(f"{run_dir} holds no best.pt: give the folder of a finished train.py run.")
    out_dir.mkdir(parents=True, exist_ok=True)
    history = read_records(run_dir / "metrics.jsonl")
    figure = figures.curves_figure(history, run_title(run_dir), selected_epoch(history))
    written = figures.save_figure(figure, out_dir / "curves.png")[:1]
    with tempfile.TemporaryDirectory(dir=out_dir) as temporary:
        written += _evaluation_figures(best, Path(temporary), out_dir, tsne=tsne)
    write_text_atomic(out_dir / "figures.md", captions_markdown([p.stem for p in written]))
    return written


def _evaluation_figures(best: Path, work: Path, out_dir: Path, *, tsne: bool) -> list[Path]:
    """test.py (and tools/explain.py --tsne) on ``best`` into ``work``; their figures copied to ``out_dir``."""
    test_script.main(["--checkpoint", str(best), "--out", str(work / "eval"), "--quiet", "--bootstrap", "0"])
    if tsne:
        from tools import explain

        csv_path = _checkpoint_csv(best)
        explain.main(["--checkpoint", str(best), "--out", str(work / "explain"), "--tsne", csv_path, "--split", "test"])
    written = []
    for name in CAPTIONS:
        for folder in (work / "eval", work / "explain"):
            if (folder / f"{name}.png").is_file():
                for suffix in (".png", ".pdf"):
                    write_bytes_atomic(out_dir / f"{name}{suffix}", (folder / f"{name}{suffix}").read_bytes())
                written.append(out_dir / f"{name}.png")
    return written


def captions_markdown(names: list[str]) -> str:
    """A Markdown block per figure: the PNG linked to its PDF, and its caption."""
    blocks = [f"[![{name}]({name}.png)]({name}.pdf)\n\n*{CAPTIONS[name]}*\n" for name in names]
    return "\n".join(blocks)


def _checkpoint_csv(best: Path) -> str:
    from model.hub import load_pretrained

    csv_path = ((load_pretrained(best).config or {}).get("data") or {}).get("csv")
    if not csv_path:
        raise UsageError(f"{best} names no CSV: its run was not trained from a split CSV; pass --no-tsne.")
    return str(csv_path)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a train.py run folder (best.pt, metrics.jsonl, config.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures and figures.md")
    parser.add_argument("--no-tsne", action="store_true", help="leave out the t-SNE figure (CAEL runs only)")
    return parser


def main(argv=None) -> list[Path]:
    args = get_args_parser().parse_args(argv)
    written = render(args.run_dir, args.out, tsne=not args.no_tsne)
    print(f"{len(written)} figures (PNG and PDF) and figures.md -> {args.out}")
    return written


if __name__ == "__main__":
    sys.exit(run(main))
