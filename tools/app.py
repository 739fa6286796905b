"""A local web page for a trained detector: upload an image or a short video (or pick a bundled example), see every
face boxed with its score and verdict, the per-frame scores of a video and its score, and the Grad-CAM maps of a
chosen face.

    python -m tools.app --checkpoint checkpoint/RUN/best.pt                  # http://127.0.0.1:7860
    python -m tools.app --checkpoint exported/cael-demo --port 8080 --workers 2 --queue-size 8
    python -m tools.app --checkpoint owner/cael-genface --host 0.0.0.0     # a model folder on the hub, on the network

The scores are predict.py's (the same functions, the checkpoint's face-extraction settings and threshold): a
frame's score is its most-fake face, a video's the mean of its frames. Requests wait in a queue of --queue-size and
--workers of them run at once, each on its own copy of the model, so one slow video does not hold the others; a full
queue, a file over --max-upload-mb, an unreadable file or no face found is a sentence on the page. Needs the web
extra: pip install -r requirements-app.txt. Nothing is sent anywhere but to the browser that asks (no analytics, no
external scripts or fonts). The manual: docs/app.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import logging
import queue
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.cli import add_scoring_arguments, run  # noqa: E402
from common.errors import UsageError, UserError  # noqa: E402
from data.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES  # noqa: E402

log = logging.getLogger("cael.app")
PAGE = Path(__file__).resolve().parent / "app_page.html"
RESULTS_KEPT = 32  # finished requests whose results (frames, crops, Grad-CAM figures) the server keeps
POLL_SECONDS = 0.5  # how often the page asks about a request in the queue
CAM_METHODS = ("gradcam", "gradcam++", "layercam", "hirescam", "xgradcam", "eigencam")  # tools/explain.py's


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve a local web page that scores uploaded images and videos with a trained detector.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="RUN/best.pt, a model folder (python -m model.export) or a hub id owner/name",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--workers", type=int, default=2, help="requests analysed at once, each with its own model copy (default 2)"
    )
    parser.add_argument(
        "--queue-size", type=int, default=8, help="requests that may wait for a worker; more are refused (default 8)"
    )
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest file accepted, in MB (default 50)")
    add_scoring_arguments(parser, "autocast precision of the scores (default: bf16 on CUDA), as predict.py's")
    parser.add_argument("--cam-method", choices=CAM_METHODS, default="gradcam", help="class-activation method")
    return parser


# ------------------------------------------------------------------------------------------------------- queue
class QueueFullError(UserError):
    """Every worker is busy and the queue is full."""


@dataclass
class Job:
    id: str
    work: Callable[[Any], Any]  # called with a Worker
    state: str = "queued"  # queued | running | done | error
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    cleanup: Callable[[], None] | None = None


class JobQueue:
    """Requests wait here (at most ``max_waiting``) until one of the workers' threads takes them, oldest first."""

    def __init__(self, workers: list, max_waiting: int):
        if max_waiting < 1:
            raise UsageError(f"--queue-size must be at least 1; got {max_waiting}.")
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._waiting: collections.deque[Job] = collections.deque()
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._ready = queue.Queue()
        self._ids = itertools.count(1)
        self._threads = [
            threading.Thread(target=self._serve, args=(worker,), name=f"app-worker-{i}", daemon=True)
            for i, worker in enumerate(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[Any], Any], cleanup: Callable[[], None] | None = None) -> Job:
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(
                    f"The page is busy: {len(self._waiting)} requests are waiting already (the queue holds "
                    f"{self.max_waiting}); try again in a minute."
                )
            job = Job(f"{next(self._ids)}-{secrets.token_hex(6)}", work, cleanup=cleanup)
            self._waiting.append(job)
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.state in ("done", "error")]
            for old in finished[: max(0, len(finished) - RESULTS_KEPT)]:
                del self._jobs[old.id]
        self._ready.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """1 for the next request to run; 0 once it runs."""
        with self._lock:
            return next((i + 1 for i, waiting in enumerate(self._waiting) if waiting is job), 0)

    def _serve(self, worker) -> None:
        while True:
            job = self._ready.get()
            with self._lock:
                self._waiting.remove(job)
                job.state = "running"
            try:
                job.result = job.work(worker)
                job.state = "done"
            except UserError as error:
                job.error, job.state = str(error), "error"
            except Exception as error:  # a bug: the page gets a sentence, the server's log the traceback
                log.exception("request %s failed", job.id)
                job.error = (
                    f"The analysis failed with an internal error ({type(error).__name__}); the server's log has the "
                    "details. Please report it with the file if you can."
                )
                job.state = "error"
            finally:
                if job.cleanup is not None:
                    job.cleanup()


# --------------------------------------------------------------------------------------------------- the server
def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name or "upload"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-120:] or "upload"


DRAIN_LIMIT = 4_000_000_000  # bytes of a refused upload read and dropped so that its sender gets the answer


async def _drain(request) -> None:
    """Read the rest of a refused upload (up to DRAIN_LIMIT) and drop it: a server that answers while the client is
    still sending closes the connection under it, and the browser shows a reset instead of the sentence."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > DRAIN_LIMIT:
            break


def build_app(analyzer, *, queue_size: int = 8, max_upload_mb: float = 50.0):
    """The Starlette application of the page (``analyzer``: a tools.app_core.Analyzer)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from tools.app_core import EXAMPLES, EXAMPLES_DIR

    jobs = JobQueue(analyzer.workers, queue_size)
    limit = int(max_upload_mb * 1_000_000)
    uploads = Path(tempfile.mkdtemp(prefix="cael-app-uploads-"))
    suffixes = sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    examples = [
        {"file": f, "label": label, "crop": crop, "source": source}
        for f, label, crop, source in EXAMPLES
        if (EXAMPLES_DIR / f).is_file()
    ]
    info = {
        **analyzer.info(),
        "limits": {
            "max_upload_mb": max_upload_mb,
            "workers": len(analyzer.workers),
            "queue_size": queue_size,
            "suffixes": suffixes,
            "video_frames": (
                f"{analyzer.settings.frames} evenly spaced frames"
                if analyzer.settings.frames
                else f"every frame of {analyzer.settings.stride}"
            ),
        },
        "examples": examples,
        "poll_seconds": POLL_SECONDS,
    }

    def too_large(name: str, size: int | None) -> str:
        return (
            f"{name} is {f'{size:,} bytes' if size else 'larger than that'}, over the {max_upload_mb:g} MB "
            f"({limit:,} bytes) the page takes: choose a smaller file, or score it with predict.py."
        )

    def error(status: int, sentence: str) -> JSONResponse:
        return JSONResponse({"error": sentence}, status_code=status)

    def queued(work, cleanup=None) -> JSONResponse:
        try:
            job = jobs.submit(work, cleanup)
        except QueueFullError as full:
            if cleanup is not None:
                cleanup()
            return error(503, str(full))
        return JSONResponse({"job": job.id, "position": jobs.position(job)})

    def analyse(path: Path, name: str, detect: bool):
        return lambda worker: analyzer.analyze(worker, path, name=name, detect=detect)

    async def page(request: Request) -> HTMLResponse:
        import json

        html = PAGE.read_text(encoding="utf-8").replace("__INFO__", json.dumps(info).replace("</", "<\\/"))
        return HTMLResponse(html)

    async def get_info(request: Request) -> JSONResponse:
        return JSONResponse(info)

    async def upload(request: Request) -> Response:
        name = _safe_name(request.query_params.get("name", "upload"))
        detect = request.query_params.get("crop", "0") not in ("1", "true", "on")
        shown = request.query_params.get("name", name)[-200:]
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            return error(415, f"{shown} is neither an image nor a video the page reads ({', '.join(suffixes)}).")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await _drain(request)  # answered before the client has sent it all, the upload ends in a reset
            return error(413, too_large(shown, int(declared)))
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=uploads))
        path, size = folder / name, 0
        with open(path, "wb") as stream:
            async for chunk in request.stream():  # past the limit: read on and drop (see _drain), not written
                size += len(chunk)
                if size <= limit:
                    stream.write(chunk)
                elif size > DRAIN_LIMIT:
                    break
        if size > limit:
            shutil.rmtree(folder, ignore_errors=True)
            return error(413, too_large(shown, None))
        if size == 0:
            shutil.rmtree(folder, ignore_errors=True)
            return error(400, f"{shown} is empty: choose another file.")
        return queued(analyse(path, shown, detect), cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))

    async def example(request: Request) -> Response:
        chosen = next((e for e in examples if e["file"] == request.path_params["file"]), None)
        if chosen is None:
            return error(404, f"no bundled example {request.path_params['file']}.")
        return queued(analyse(EXAMPLES_DIR / chosen["file"], chosen["file"], not chosen["crop"]))

    def finished(job_id: str):
        job = jobs.get(job_id)
        return job if job is not None and job.state == "done" else None

    async def status(request: Request) -> JSONResponse:
        job = jobs.get(request.path_params["job"])
        if job is None:
            return error(404, "This request is no longer kept on the server: analyse the file again.")
        body: dict[str, Any] = {"job": job.id, "state": job.state, "position": jobs.position(job)}
        if job.state == "error":
            body["error"] = job.error
        elif job.state == "done":
            body["result"] = job.result.to_json(job.id) if hasattr(job.result, "to_json") else job.result
        return JSONResponse(body)

    async def frame_image(request: Request) -> Response:
        job = finished(request.path_params["job"])
        picture = job.result.frame_images.get(request.path_params["frame"]) if job else None
        return Response(picture, media_type="image/jpeg") if picture else error(404, "no such frame")

    async def plot(request: Request) -> Response:
        job = finished(request.path_params["job"])
        return Response(job.result.plot, media_type="image/png") if job and job.result.plot else error(404, "no plot")

    async def explanation(request: Request) -> Response:
        job = finished(request.path_params["job"])
        key = (request.path_params["frame"], request.path_params["face"])
        picture = job.result.explanations.get(key) if job and hasattr(job.result, "explanations") else None
        return Response(picture, media_type="image/png") if picture else error(404, "not explained yet")

    async def explain(request: Request) -> Response:
        job = finished(request.path_params["job"])
        if job is None or not hasattr(job.result, "explanations"):
            return error(404, "This request is no longer kept on the server: analyse the file again.")
        frame, face, analysis = request.path_params["frame"], request.path_params["face"], job.result

        def work(worker):
            analyzer.explain(worker, analysis, frame, face)
            return {"image": f"/api/jobs/{job.id}/explain/{frame}/{face}.png", "frame": frame, "face": face}

        return queued(work)

    routes = [
        Route("/", page),
        Route("/api/info", get_info),
        Route("/api/analyze", upload, methods=["POST"]),
        Route("/api/example/{file}", example, methods=["POST"]),
        Route("/api/jobs/{job}", status),
        Route("/api/jobs/{job}/frame/{frame:int}.jpg", frame_image),
        Route("/api/jobs/{job}/plot.png", plot),
        Route("/api/jobs/{job}/explain/{frame:int}/{face:int}.png", explanation),
        Route("/api/jobs/{job}/explain/{frame:int}/{face:int}", explain, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        shutil.rmtree(uploads, ignore_errors=True)  # uploads still queued when the server stops

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.jobs = jobs
    return app


def main(argv=None) -> None:
    args = get_args_parser().parse_args(argv)
    if args.workers < 1 or args.queue_size < 1 or args.max_upload_mb <= 0:
        raise UsageError("--workers and --queue-size must be at least 1, and --max-upload-mb above 0.")
    try:
        import starlette  # noqa: F401  (the page needs it: is the web extra installed?)
        import uvicorn
    except ImportError as missing:
        raise UsageError(
            f"the web page needs the web extra ({missing.name} is not installed): pip install -r requirements-app.txt."
        ) from None
    from tools.app_core import Analyzer

    analyzer = Analyzer(
        args.checkpoint,
        device=args.device,
        precision=args.precision,
        detector=args.detector,
        batch_size=args.batch_size,
        workers=args.workers,
        cam_method=args.cam_method,
    )
    app = build_app(analyzer, queue_size=args.queue_size, max_upload_mb=args.max_upload_mb)
    for note in analyzer.notes:
        print(note)
    if analyzer.demo_caveat:
        print(f"caveat: {analyzer.demo_caveat}")
    print(
        f"serving {args.checkpoint} on http://{args.host}:{args.port} ({analyzer.device}, {args.workers} workers, "
        f"queue of {args.queue_size}, files up to {args.max_upload_mb:g} MB); Ctrl-C stops it",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    sys.exit(run(main))
