"""Face extraction speed: videos/s and frames/s of ``data.extract_faces`` (default: the default detector).

    python benchmarks/extraction_speed.py [--videos 6] [--seconds 10] [--workers 1 2] [--out FILE.json]
    python benchmarks/extraction_speed.py --detector mtcnn --device cuda --batch-size 32 --workers 1 4 --out F.json

The videos are synthetic 640x360, 25 frames/s mp4 files (MPEG-4 part 2, a keyframe every 50 frames) showing
scikit-image's astronaut face (moving a little per frame) on one of its face-free photos; 32 frames are sampled
per video (the default), so each video costs seeks + decodes + 32 detections + crops + PNG writes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.faces import DETECT_BATCH, ExtractionSettings, extract, library_versions  # noqa: E402


def make_video(path: Path, seconds: int, seed: int) -> None:
    import av
    import skimage.data as skimage_data

    rng = np.random.default_rng(seed)
    background = Image.fromarray(skimage_data.coffee()).resize((640, 360))
    face = Image.fromarray(skimage_data.astronaut()).crop((100, 0, 340, 240)).resize((150, 150))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"g": "50"}
        left, top = int(rng.integers(50, 400)), int(rng.integers(20, 180))
        for index in range(seconds * 25):
            frame = background.copy()
            frame.paste(face, (left + index % 40, top))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")))
        container.mux(stream.encode())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--detector", default=ExtractionSettings.detector, help="a registered face detector")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (mtcnn)")
    parser.add_argument("--batch-size", type=int, default=DETECT_BATCH, help="sampled frames per detector call")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "extraction_speed-cpu.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cael-extraction-speed-"))
    (work / "videos").mkdir()
    try:
        for number in range(args.videos):
            make_video(work / "videos" / f"{number:03d}.mp4", args.seconds, number)
        results, settings = {}, ExtractionSettings(detector=args.detector)
        for workers in args.workers:
            out = work / f"faces-{workers}"
            summary = extract(
                work / "videos",
                out,
                settings,
                workers=workers,
                device=args.device,
                batch_size=args.batch_size,
                progress=False,
            )
            results[f"workers={workers}"] = summary
            print(
                f"workers={workers}: {summary['videos/s']} videos/s, {summary['frames/s']} frames/s, "
                f"{summary['faces']} faces in {summary['frames']} frames, {summary['seconds']} s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {
        "command": "python benchmarks/extraction_speed.py " + " ".join(argv or sys.argv[1:]),
        "video": f"{args.videos} videos x {args.seconds} s, 640x360, 25 frames/s, mpeg4",
        "settings": settings.to_dict(),
        "device": args.device,
        "batch_size": args.batch_size,
        "cpu_threads": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "versions": library_versions(),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
