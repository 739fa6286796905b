"""Write the web page's bundled examples (tools/app_examples/), all made from what the repository can generate.

    python -m tools.make_app_examples [--out tools/app_examples]

- real_photo.jpg: scikit-image's astronaut portrait (NASA, public domain; shipped in the scikit-image wheel),
  256 px, JPEG quality 90;
- real_video.mp4: the same portrait panned left and right over 12 frames at 6 frames per second, 192 px, H.264
  (PyAV's bundled FFmpeg);
- demo_fake_crop.png, demo_real_crop.png: a swap-blend fake and a real face crop of data/make_demo.py (64 px).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from common.cli import run  # noqa: E402
from common.errors import UsageError  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "app_examples"
PHOTO_SIDE = 256
VIDEO_SIDE = 192
VIDEO_FRAMES = 12
VIDEO_FPS = 6


def astronaut() -> np.ndarray:
    try:
        from skimage import data
    except ImportError as error:
        raise UsageError("the examples need scikit-image: pip install -r requirements-dev.txt.") from error
    return data.astronaut()  # (512, 512, 3) uint8 RGB


def write_photo(path: Path) -> Path:
    Image.fromarray(astronaut()).resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS).save(path, quality=90)
    return path


def write_video(path: Path) -> Path:
    """A slow pan over the portrait: each frame a 400 px window of it, shifted a little, resized to VIDEO_SIDE."""
    import av

    portrait = Image.fromarray(astronaut())
    shifts = np.round(48 * np.sin(np.linspace(0, 2 * np.pi, VIDEO_FRAMES, endpoint=False))).astype(int)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.width = stream.height = VIDEO_SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "medium"}
        for shift in shifts:
            window = portrait.crop((56 + shift, 0, 456 + shift, 400)).resize((VIDEO_SIDE, VIDEO_SIDE))
            frame = av.VideoFrame.from_ndarray(np.asarray(window), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_demo_crops(out: Path) -> list[Path]:
    from data.make_demo import make_demo

    with tempfile.TemporaryDirectory(prefix="cael-demo-examples-") as folder:
        csv_path = make_demo(Path(folder), seed=0, identities=6, fakes_per_generator=2)
        rows = list(csv.DictReader(open(csv_path, newline="")))
        fake = next(r for r in rows if r["label"] == "1" and r["generator"] == "swap-blend")
        real = next(r for r in rows if r["label"] == "0")
        written = []
        for row, name in ((fake, "demo_fake_crop.png"), (real, "demo_real_crop.png")):
            Image.open(csv_path.parent / row["path"]).save(out / name)
            written.append(out / name)
    return written


def make_examples(out: Path = DEFAULT_OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [write_photo(out / "real_photo.jpg"), write_video(out / "real_video.mp4"), *write_demo_crops(out)]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write the web page's bundled examples.", epilog=__doc__)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder (default tools/app_examples)")
    return parser


def main(argv=None) -> list[Path]:
    args = get_args_parser().parse_args(argv)
    written = make_examples(Path(args.out))
    for path in written:
        print(f"{path} ({path.stat().st_size / 1000:.1f} kB)")
    return written


if __name__ == "__main__":
    sys.exit(run(main))
