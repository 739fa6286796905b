"""What the web page (tools/app.py) shows for one input, computed by predict.py's own functions: the faces, their
scores and verdicts, the frame and video scores (engine.inference), the boxed frames, the per-frame plot and the
Grad-CAM figure of a chosen face (tools/explain.py). No web library is imported here.

Scoring is ``iter_face_crops`` -> ``score_crops`` -> ``iter_summaries`` with the arguments predict.py passes, so an
input's entry on the page is predict.py's entry for the same file and settings (tests/test_app.py checks it).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from common.errors import UsageError, UserError
from data.media import is_video

EXAMPLES_DIR = Path(__file__).resolve().parent / "app_examples"
# (file, label on the page, already a face crop: scored without detection, where it comes from)
EXAMPLES = (
    ("real_photo.jpg", "real photo", False, "scikit-image's astronaut portrait (NASA, public domain), 256 px"),
    ("real_video.mp4", "real video", False, "the same portrait panned over 12 frames (PyAV, H.264)"),
    ("demo_fake_crop.png", "demo fake crop", True, "a swap-blend fake face crop of data/make_demo.py (64 px)"),
    ("demo_real_crop.png", "demo real crop", True, "a real face crop of data/make_demo.py (64 px)"),
)
# longest side of a frame shown on the page, small frames enlarged to at least the second (the scores come from the
# full-resolution frame)
DISPLAY_SIDE, DISPLAY_MIN_SIDE = 800, 480
CAM_TARGET = "fake"  # the class whose evidence the Grad-CAM maps show (tools/explain.py's default)
# matplotlib's pyplot (tools/explain.py draws with it) is not thread-safe: one figure at a time
FIGURE_LOCK = threading.Lock()


class AppInputError(UserError):
    """An upload the page cannot analyse (too large, not an image or a video); the sentence is shown on the page."""


@dataclass
class Worker:
    """One model replica and face detector: each worker thread analyses one request at a time with its own, so a
    slow request holds one worker and Grad-CAM's hooks never see another request's forward pass."""

    model: torch.nn.Module
    detector: Any


@dataclass
class Analysis:
    """One input as the page shows it; ``entry`` is predict.py's entry for it (the input named as uploaded)."""

    name: str
    detect: bool
    entry: dict[str, Any]
    message: str | None  # why nothing was scored (unreadable, no face), one sentence; None when scored
    caveat: str | None
    sampled_frames: int | None = None  # frames a video was sampled at (frames without a face are not scored)
    frame_images: dict[int, bytes] = field(default_factory=dict)  # frame -> JPEG with every face boxed
    plot: bytes | None = None  # PNG of the per-frame scores (videos)
    crops: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)  # (frame, face) -> model input
    explanations: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (frame, face) -> Grad-CAM PNG

    def most_fake_face(self) -> tuple[int, int] | None:
        faces = [
            (f["frame"], r["face_index"], r["score"]) for f in self.entry["frame_results"] for r in f["face_results"]
        ]
        return max(faces, key=lambda face: face[2])[:2] if faces else None

    def to_json(self, job: str) -> dict[str, Any]:
        frames = sorted(self.frame_images)
        return {
            "name": self.name,
            "detect": self.detect,
            "entry": self.entry,
            "message": self.message,
            "caveat": self.caveat,
            "sampled_frames": self.sampled_frames,
            "frame_images": {str(f): f"/api/jobs/{job}/frame/{f}.jpg" for f in frames},
            "plot": f"/api/jobs/{job}/plot.png" if self.plot else None,
            "explained": [
                {"frame": f, "face": i, "image": f"/api/jobs/{job}/explain/{f}/{i}.png"} for f, i in self.explanations
            ],
        }


VERDICT_COLOURS = {"fake": (220, 30, 30), "real": (20, 170, 60), "uncertain": (200, 140, 0)}


def verdict(record: dict[str, Any]) -> str:
    """The verdict of a face, frame or input record: its own ``verdict`` where the record carries one, else fake /
    real at the checkpoint's threshold (predict.py's ``fake`` column)."""
    if record.get("verdict"):
        return str(record["verdict"])
    return "n/a" if record.get("fake") is None else ("fake" if record["fake"] else "real")


class Analyzer:
    """A trained detector loaded once (model.hub.load_detector, as predict.py) and ``workers`` replicas of it."""

    def __init__(
        self,
        checkpoint: str,
        *,
        device: str = "auto",
        precision: str = "auto",
        detector: str | None = None,
        batch_size: int = 64,
        workers: int = 1,
        cam_method: str = "gradcam",
    ):
        from data.trained_on import DEMO_CAVEAT, training_summary
        from engine.device import resolve_precision
        from engine.distributed import DistInfo, device_for
        from engine.inference.inputs import detector_beside, extraction_settings
        from engine.inference.summaries import score_reading
        from model.hub import load_detector

        if batch_size < 1 or workers < 1:
            raise UsageError(f"--batch-size and --workers must be at least 1; got {batch_size} and {workers}.")
        self.checkpoint = str(checkpoint)
        self.pretrained = load_detector(checkpoint)
        try:
            self.device = device_for(DistInfo(), device)
        except RuntimeError as error:
            raise UsageError(
                f"--device {device} cannot be used here: give cpu, or cuda / cuda:N on a machine with CUDA."
            ) from error
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.cam_method = cam_method
        # scores read as predict.py reads them: the calibrated probability and the verdict of the uncertain band
        self.reading, reading_notes = score_reading(self.pretrained.calibration, str(checkpoint))
        self.notes = [self.pretrained.threshold_note, *reading_notes]
        settings, stored = extraction_settings(self.pretrained.face_extraction)
        if detector:
            settings = dataclasses.replace(settings, detector=detector)
        if not stored:
            self.notes.append(
                f"{checkpoint} stores no face-extraction settings: using the defaults ({settings.to_dict()})"
            )
        self.settings = settings
        model = self.pretrained.model.to(self.device).eval()
        self.workers = [
            Worker(model if i == 0 else copy.deepcopy(model), detector_beside(settings, self.device))
            for i in range(workers)
        ]
        self.trained_on = self.pretrained.metadata.get("trained_on")
        self.training_line = training_summary(self.trained_on)  # None: the checkpoint predates the record
        is_demo = isinstance(self.trained_on, dict) and self.trained_on.get("kind") == "demo"
        self.demo_caveat = DEMO_CAVEAT if is_demo else None
        self.explainable = all(
            hasattr(model, name) for name in ("appearance_fine", "appearance_coarse", "edge_stream", "blocks")
        )

    def info(self) -> dict[str, Any]:
        """What the page says about the detector before any input."""
        return {
            "checkpoint": self.checkpoint,
            "model": self.pretrained.config["model"].get("name", "cael"),
            "trained_on": self.training_line,
            "demo_caveat": self.demo_caveat,
            "threshold": self.pretrained.threshold,
            "notes": self.notes,
            "face_extraction": self.settings.to_dict(),
            "image_size": self.pretrained.image_size,
            "device": str(self.device),
            "precision": self.precision,
            "aggregation": "frame: most-fake face; video: mean of frame scores",
            "explainable": self.explainable,
            "cam_method": self.cam_method,
        }

    # ------------------------------------------------------------------------------------------ one input
    def analyze(self, worker: Worker, path: Path, *, name: str, detect: bool = True) -> Analysis:
        """Score one file as predict.py does (``--no-detect`` when ``detect`` is False), keep its face crops, draw
        its frames and per-frame plot, and explain its most-fake face."""
        from data.trained_on import inputs_caveat
        from engine.inference.forward import score_crops
        from engine.inference.inputs import collect_inputs, iter_face_crops
        from engine.inference.summaries import iter_summaries

        items = collect_inputs([path])
        crops: dict[tuple[int, int], torch.Tensor] = {}

        def kept(found):
            for crop in found:  # score_crops lets a crop's pixels go once scored: the page keeps them for Grad-CAM
                crops[(crop.frame, crop.face_index)] = crop.pixels
                yield crop

        found = iter_face_crops(
            items,
            image_size=self.pretrained.image_size,
            detect=detect,
            settings=self.settings if detect else None,
            detector=worker.detector if detect else None,
            progress=False,
        )
        results = score_crops(
            worker.model, kept(found), self.device, precision=self.precision, batch_size=self.batch_size
        )
        (entry,) = iter_summaries(
            items,
            results,
            threshold=self.pretrained.threshold,
            class_names=self.pretrained.class_names,
            **self.reading,
        )
        entry = {**entry, "input": name}
        analysis = Analysis(
            name=name,
            detect=detect,
            entry=entry,
            message=_message(entry["status"], path, name, detect),
            caveat=inputs_caveat(self.trained_on, [path]),
            crops=crops,
        )
        if entry["score"] is None:
            return analysis
        self._draw_frames(analysis, path)
        if entry["kind"] == "video":
            with FIGURE_LOCK:
                analysis.plot = frame_plot(entry, self.pretrained.threshold)
        top = analysis.most_fake_face()
        if top is not None and self.explainable:
            self.explain(worker, analysis, *top)
        return analysis

    def _draw_frames(self, analysis: Analysis, path: Path) -> None:
        from data.faces.video import VideoReadError, read_frames
        from data.images import load_image

        frames = {f["frame"]: f for f in analysis.entry["frame_results"]}
        if analysis.entry["kind"] != "video":
            analysis.frame_images[0] = boxed_frame(load_image(path).permute(1, 2, 0).numpy(), frames[0])
            return
        sampled = 0
        try:
            for index, image in read_frames(path, self.settings):  # the frames predict.py sampled, decoded again
                sampled += image is not None
                if image is not None and index in frames:
                    analysis.frame_images[index] = boxed_frame(image, frames[index])
        except VideoReadError:
            pass  # it was read once to be scored; a second read that fails only leaves the frames undrawn
        analysis.sampled_frames = sampled

    def explain(self, worker: Worker, analysis: Analysis, frame: int, face: int) -> bytes:
        """The Grad-CAM figure of one face as tools/explain.py draws it (its explain_batch and save_explanation)."""
        from tools.explain import explain_batch, save_explanation

        if (frame, face) in analysis.explanations:
            return analysis.explanations[(frame, face)]
        if not self.explainable:
            raise AppInputError("Grad-CAM maps know CAEL's streams only: this checkpoint is not a CAEL model.")
        if (frame, face) not in analysis.crops:
            raise AppInputError(f"{analysis.name} has no face {face} in frame {frame}.")
        pixels = analysis.crops[(frame, face)][None].to(self.device)
        title = analysis.name + (f" frame {frame} face {face}" if analysis.entry["kind"] == "video" or face else "")
        (explanation,) = explain_batch(worker.model, pixels, [title], method=self.cam_method, target=1)
        with FIGURE_LOCK, tempfile.TemporaryDirectory(prefix="cael-app-cam-") as folder:
            png = save_explanation(
                Path(folder) / "face.png", explanation, method=self.cam_method, target_name=CAM_TARGET
            )
            analysis.explanations[(frame, face)] = png.read_bytes()
        return analysis.explanations[(frame, face)]


def _message(status: str, path: Path, name: str, detect: bool) -> str | None:
    """The sentence the page shows for an input that was not scored (predict.py's status, the upload named)."""
    if status == "ok":
        return None
    if status == "no face":
        hint = "tick 'face crop' if the image is a face crop already" if detect else "check the file"
        return f"No face was found in {name}: try a larger, sharper or more frontal face, or {hint}."
    if not detect and is_video(path):
        return f"{name} is a video: untick 'face crop' (a video's faces are detected in its sampled frames)."
    reason = status.removeprefix("error: ").replace(str(path), name).replace(str(path.parent) + "/", "")
    return f"{name} could not be read: {reason}"


# ---------------------------------------------------------------------------------------------------- drawing
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # a Pillow without scalable default fonts
        return ImageFont.load_default()


def boxed_frame(image: np.ndarray, frame: dict[str, Any]) -> bytes:
    """JPEG of a frame (its longest side brought within ``DISPLAY_MIN_SIDE``..``DISPLAY_SIDE``) with each face's box
    and label (face index, score, verdict), red for fake, green for real; a face without a box is the whole image."""
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    scale = min(DISPLAY_SIDE / max(picture.size), max(1.0, DISPLAY_MIN_SIDE / max(picture.size)))
    if scale != 1.0:
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS
        )
    draw = ImageDraw.Draw(picture)
    line = max(2, round(max(picture.size) / 250))
    font = _font(max(11, round(max(picture.size) / 40)))
    for record in frame["face_results"]:
        box = record["box"] or (0, 0, image.shape[1], image.shape[0])
        x0, y0, x1, y1 = (v * scale for v in box)
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(picture.width - 1.0, x1), min(picture.height - 1.0, y1)
        colour = VERDICT_COLOURS.get(verdict(record), (20, 170, 60))
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        shown = record.get("probability", record["score"])  # the calibrated P(fake) where there is one
        label = f"face {record['face_index']}: P(fake) {shown:.4f} {verdict(record)}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        y = y0 - (bottom - top) - 2 * line if y0 - (bottom - top) - 2 * line >= 0 else y0 + line
        draw.rectangle((x0, y, x0 + right - left + 2 * line, y + bottom - top + 2 * line), fill=colour)
        draw.text((x0 + line - left, y + line - top), label, fill=(255, 255, 255), font=font)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def frame_plot(entry: dict[str, Any], threshold: float) -> bytes:
    """PNG of a video's frame scores (each the frame's most-fake face), its score (their mean) and the threshold."""
    from matplotlib.figure import Figure

    frames = entry["frame_results"]
    x = [f["frame"] for f in frames]
    y = [f["score"] for f in frames]
    figure = Figure(figsize=(6.4, 2.6), layout="constrained")
    ax = figure.subplots()
    ax.plot(x, y, marker="o", markersize=4, color="tab:blue", label="frame score (its most-fake face)")
    ax.axhline(
        entry["score"], color="tab:red", label=f"video score (mean of {len(frames)} frames) {entry['score']:.4f}"
    )
    ax.axhline(threshold, color="grey", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("P(fake)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
