"""The web page (tools/app.py): the scores it shows are predict.py's, bad inputs are one sentence, the queue has a
stated length, the bundled examples, the exported folder's app.py, and the page in a real headless Chromium.

One small untrained demo-config checkpoint (calibrated threshold 0.3, demo training record, 6 sampled frames a
video) serves every test; the server runs as its own process on a free local port, as a user starts it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import predict
from tools.app import JobQueue, QueueFullError
from tools.app_core import EXAMPLES, EXAMPLES_DIR

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("starlette", reason="the web extra is not installed: pip install -r requirements-app.txt")
pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install -r requirements-app.txt")

THRESHOLD = 0.3
MAX_UPLOAD_MB = 1.0
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1800",
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained demo-config CAEL saved as train.py saves it, with a calibration and a demo training record."""
    import torch

    from common.checkpoint import save_checkpoint
    from data.faces.settings import ExtractionSettings
    from engine.config import load_config
    from model import build_model, without_downloads

    torch.manual_seed(0)
    config = load_config("cael_demo", ["data.workers=0"])
    config["data"]["face-extraction"] = ExtractionSettings(frames=6).to_dict()
    model = build_model(without_downloads(config["model"]))
    root = tmp_path_factory.mktemp("app")
    trained_on = {
        "kind": "demo",
        "csv": str(root / "demo" / "demo.csv"),
        "root": str(root / "demo"),
        "rows": {"train": {"real": 40, "fake": 240}, "val": {"real": 8, "fake": 48}},
        "source_datasets": ["DemoFace-A", "DemoFace-B"],
        "more_source_datasets": 0,
    }
    calibration = {"threshold": THRESHOLD, "method": "youden", "split": "val", "epoch": 1}
    path = root / "best.pt"
    state = {"model": model.state_dict(), "config": config, "epoch": 1}
    save_checkpoint(path, {**state, "trained_on": trained_on, "calibration": calibration})
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(url: str, data: bytes | None = None, method: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Served:
    """A page served by its own process (``command``), stopped by its process id."""

    def __init__(self, command: list[str], cwd: Path, port: int, log: Path):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the page stopped: {log.read_text()}")
            try:
                if call(self.url + "/api/info")[0] == 200:
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError(f"the page did not answer within 180 s: {log.read_text()}")

    def analyse(self, route: str, data: bytes | None = b"", timeout: float = 180) -> dict:
        status, queued = call(self.url + route, data=data, method="POST")
        assert status == 200, queued
        return self.wait(queued["job"], timeout)

    def wait(self, job: str, timeout: float = 180) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body = call(f"{self.url}/api/jobs/{job}")
            assert status == 200, body
            if body["state"] in ("done", "error"):
                return body
            time.sleep(0.2)
        raise AssertionError(f"request {job} not done within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    port = free_port()
    command = [sys.executable, "-m", "tools.app", "--checkpoint", str(checkpoint), "--port", str(port)]
    command += ["--workers", "2", "--queue-size", "4", "--max-upload-mb", str(MAX_UPLOAD_MB), "--device", "cpu"]
    served = Served(command, ROOT, port, tmp_path_factory.mktemp("app-log") / "server.log")
    yield served
    served.stop()


def predicted(checkpoint: Path, path: Path, out: Path, *extra: str) -> dict:
    """predict.py's entry of one input (the same input alone, as the page scores it)."""
    result = predict.main(["--checkpoint", str(checkpoint), str(path), "--out", str(out), "--quiet", *extra])
    (entry,) = json.loads(result["paths"]["json"].read_text())["inputs"]
    return entry


def assert_same_scores(shown: dict, expected: dict) -> None:
    """Every score, box and decision of the page's entry is predict.py's."""
    for key in ("kind", "status", "frames", "faces", "score", "fake", "fake_at_0.5"):
        assert shown[key] == expected[key], key
    assert len(shown["frame_results"]) == len(expected["frame_results"])
    for frame, reference in zip(shown["frame_results"], expected["frame_results"]):
        assert frame == reference


# ---------------------------------------------------------------------------------------------- the page's numbers
def test_the_page_shows_predict_pys_entries_for_uploads_and_examples(server, checkpoint, tmp_path):
    photo, video = EXAMPLES_DIR / "real_photo.jpg", EXAMPLES_DIR / "real_video.mp4"
    uploaded = server.analyse("/api/analyze?name=my%20photo.jpg&crop=0", photo.read_bytes())
    assert uploaded["state"] == "done", uploaded
    result = uploaded["result"]
    assert result["entry"]["input"] == "my photo.jpg" and result["message"] is None
    assert result["caveat"] == "trained on synthetic 64 px demo data: scores on real photos mean nothing"
    expected = predicted(checkpoint, photo, tmp_path / "photo")
    assert expected["faces"] == 1
    assert_same_scores(result["entry"], expected)
    assert result["frame_images"] == {"0": f"/api/jobs/{uploaded['job']}/frame/0.jpg"}
    assert result["explained"] == [{"frame": 0, "face": 0, "image": f"/api/jobs/{uploaded['job']}/explain/0/0.png"}]
    with urllib.request.urlopen(server.url + result["explained"][0]["image"]) as response:
        figure = Image.open(response)
        assert figure.format == "PNG" and figure.width > 1000  # tools/explain.py's figure of the face

    clip = server.analyse("/api/example/real_video.mp4")["result"]
    expected = predicted(checkpoint, video, tmp_path / "video")
    assert expected["frames"] == 6 and clip["sampled_frames"] == 6
    assert_same_scores(clip["entry"], expected)
    assert clip["entry"]["score"] == pytest.approx(np.mean([f["score"] for f in expected["frame_results"]]))
    assert clip["plot"] and sorted(map(int, clip["frame_images"])) == [f["frame"] for f in expected["frame_results"]]

    crop = server.analyse("/api/example/demo_fake_crop.png")["result"]  # a face crop: scored without detection
    assert crop["detect"] is False
    status, queued = call(server.url + "/api/analyze?name=clip.mp4&crop=1", video.read_bytes(), "POST")
    assert server.wait(queued["job"])["result"]["message"].startswith("clip.mp4 is a video: untick 'face crop'")
    expected = predicted(checkpoint, EXAMPLES_DIR / "demo_fake_crop.png", tmp_path / "crop", "--no-detect")
    assert_same_scores(crop["entry"], expected)


def test_the_page_says_what_the_detector_was_trained_on_and_its_limits(server):
    status, info = call(server.url + "/api/info")
    assert status == 200
    assert info["trained_on"].startswith("trained on synthetic 64 px demo data")
    assert info["demo_caveat"] == "trained on synthetic 64 px demo data: scores on real photos mean nothing"
    assert info["threshold"] == THRESHOLD and info["notes"][0].startswith("calibrated threshold 0.3000")
    assert info["limits"]["max_upload_mb"] == MAX_UPLOAD_MB and info["limits"]["queue_size"] == 4
    assert info["limits"]["video_frames"] == "6 evenly spaced frames"
    assert [e["file"] for e in info["examples"]] == [name for name, *_ in EXAMPLES]
    with urllib.request.urlopen(server.url + "/") as response:
        page = response.read().decode()
    assert "__INFO__" not in page and '"queue_size": 4' in page
    assert "http://" not in page.replace(server.url, "") and "https://" not in page  # nothing loaded from elsewhere


def test_bad_inputs_are_one_sentence_on_the_page(server, tmp_path):
    status, body = call(server.url + "/api/analyze?name=notes.txt", b"hello", "POST")
    assert status == 415 and body["error"].startswith("notes.txt is neither an image nor a video the page reads")
    big = b"\0" * int(MAX_UPLOAD_MB * 1_000_000 + 1)
    status, body = call(server.url + "/api/analyze?name=big.mp4", big, "POST")
    assert status == 413 and body["error"] == (
        "big.mp4 is 1,000,001 bytes, over the 1 MB (1,000,000 bytes) the page takes: choose a smaller file, or score "
        "it with predict.py."
    )
    status, body = call(server.url + "/api/analyze?name=empty.png", b"", "POST")
    assert status == 400 and body["error"] == "empty.png is empty: choose another file."

    broken = server.analyse("/api/analyze?name=broken.jpg", b"\xff\xd8 not really a JPEG")["result"]
    assert broken["entry"]["score"] is None and broken["message"].startswith("broken.jpg could not be read: ")
    assert "/" not in broken["message"] and "Traceback" not in json.dumps(broken)  # the upload's name, not its path
    clip = server.analyse("/api/analyze?name=clip.mp4", b"\x00\x00\x00\x18ftypmp42 truncated")["result"]
    assert clip["message"].startswith("clip.mp4 could not be read: video clip.mp4 ")

    buffer = tmp_path / "grey.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(buffer)
    nobody = server.analyse("/api/analyze?name=grey.png", buffer.read_bytes())["result"]
    assert nobody["entry"]["status"] == "no face" and nobody["entry"]["score"] is None
    assert nobody["message"].startswith("No face was found in grey.png: ")
    status, body = call(server.url + "/api/jobs/no-such-job")
    assert status == 404 and body["error"].startswith("This request is no longer kept on the server")


# ------------------------------------------------------------------------------------------------------- the queue
def test_the_queue_has_a_stated_length_and_a_slow_request_holds_one_worker_only():
    release = threading.Event()
    jobs = JobQueue(["worker A", "worker B"], max_waiting=2)

    def slow(worker):
        release.wait(30)
        return f"slow on {worker}"

    first = jobs.submit(slow)
    deadline = time.time() + 10
    while first.state != "running" and time.time() < deadline:
        time.sleep(0.01)
    quick = jobs.submit(lambda worker: "quick")
    while quick.state != "done" and time.time() < deadline:
        time.sleep(0.01)
    assert first.state == "running" and quick.state == "done"  # the other worker took it

    blockers = [jobs.submit(slow) for _ in range(1)]  # holds worker B
    while blockers[0].state != "running" and time.time() < deadline:
        time.sleep(0.01)
    waiting = [jobs.submit(slow), jobs.submit(slow)]
    assert [jobs.position(job) for job in waiting] == [1, 2]
    with pytest.raises(QueueFullError, match=r"The page is busy: 2 requests are waiting already \(the queue holds 2\)"):
        jobs.submit(slow)
    release.set()
    while any(job.state != "done" for job in [first, *blockers, *waiting]) and time.time() < deadline:
        time.sleep(0.01)
    assert all(job.state == "done" for job in [first, *blockers, *waiting])


def test_a_failing_request_is_a_sentence_and_the_worker_goes_on():
    from common.errors import UserError

    jobs = JobQueue(["worker"], max_waiting=4)

    def user_error(worker):
        raise UserError("that file is not a face.")

    def bug(worker):
        raise ZeroDivisionError("division by zero")

    done = [jobs.submit(user_error), jobs.submit(bug), jobs.submit(lambda worker: 42)]
    deadline = time.time() + 10
    while any(job.state in ("queued", "running") for job in done) and time.time() < deadline:
        time.sleep(0.01)
    assert done[0].error == "that file is not a face."
    assert done[1].error.startswith("The analysis failed with an internal error (ZeroDivisionError)")
    assert done[2].state == "done" and done[2].result == 42


# ---------------------------------------------------------------------------------------------------- examples
def test_the_bundled_examples_are_small_and_remade_by_their_script(tmp_path):
    from data.faces.settings import ExtractionSettings
    from data.faces.video import read_frames
    from tools.make_app_examples import VIDEO_FRAMES, make_examples

    for name, *_ in EXAMPLES:
        assert (EXAMPLES_DIR / name).stat().st_size < 50_000, name
    written = make_examples(tmp_path)
    assert sorted(p.name for p in written) == sorted(name for name, *_ in EXAMPLES)
    frames = list(read_frames(tmp_path / "real_video.mp4", ExtractionSettings(frames=100)))
    assert len(frames) == VIDEO_FRAMES and frames[0][1].shape == (192, 192, 3)
    for name in ("real_photo.jpg", "demo_fake_crop.png", "demo_real_crop.png"):  # the same pictures
        made = np.asarray(Image.open(tmp_path / name), dtype=np.int16)
        assert np.abs(made - np.asarray(Image.open(EXAMPLES_DIR / name), dtype=np.int16)).max() <= 2, name


# -------------------------------------------------------------------------------------------- the exported folder
@pytest.mark.slow
def test_the_exported_folder_serves_the_same_page_with_python_app_py(checkpoint, tmp_path):
    from model.export import export_folder

    folder = export_folder(checkpoint, tmp_path / "exported")["folder"]
    for name in ("app.py", "requirements.txt", "Dockerfile", "cael_code/tools/app.py", "cael_code/model/hub.py"):
        assert (folder / name).is_file(), name
    requirements = (folder / "requirements.txt").read_text()
    assert "pillow==13.0.0" in requirements and "starlette==" in requirements and "selenium" not in requirements
    moved = Path(tempfile.mkdtemp(prefix="cael-app-moved-"))  # away from the checkout: it runs its own code
    try:
        shutil.copytree(folder, moved / "cael-demo")
        port = free_port()
        served = Served([sys.executable, "app.py", "--port", str(port)], moved / "cael-demo", port, tmp_path / "log")
        try:
            shown = served.analyse("/api/example/real_photo.jpg")["result"]
        finally:
            served.stop()
        assert str(moved) in (tmp_path / "log").read_text()  # served from the moved folder
    finally:
        shutil.rmtree(moved, ignore_errors=True)
    assert_same_scores(shown["entry"], predicted(folder, EXAMPLES_DIR / "real_photo.jpg", tmp_path / "out"))


# ---------------------------------------------------------------------------------------------- a real browser
@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("no Debian chromium and chromium-driver here: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never downloads a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="cael-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def upload_and_wait(driver, path: Path, timeout: float = 180):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("document.getElementById('result').classList.add('hidden'); current = null;")
    driver.find_element(By.ID, "file").send_keys(str(path))
    driver.find_element(By.ID, "analyze").click()
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "const o = document.getElementById('overlay');"
            "return current !== null && o.complete && o.naturalWidth > 0 && !o.classList.contains('hidden');"
        )
    )
    return driver


def shown_scores(driver) -> dict:
    """What the page shows: the input's score (text and exact value), every face's and frame's score."""
    return driver.execute_script(
        """
        const rows = (selector) => [...document.querySelectorAll(selector)].map((row) => ({
          frame: Number(row.dataset.frame), face: row.dataset.face === undefined ? null : Number(row.dataset.face),
          value: Number(row.dataset.score), text: row.querySelector('td.score').textContent}));
        const score = document.getElementById('input-score');
        return {text: score.textContent, value: Number(score.dataset.value),
                verdict: document.getElementById('input-verdict').textContent,
                faces: rows('tr.face-row'), frames: rows('tr.frame-row'),
                message: document.getElementById('message').textContent,
                overlay: document.getElementById('overlay').naturalWidth,
                plot: document.getElementById('plot').naturalWidth,
                frame_image: document.getElementById('frame-image').naturalWidth};
        """
    )


@pytest.mark.slow
def test_in_headless_chromium_the_page_shows_predict_pys_scores_and_the_overlay(browser, server, checkpoint, tmp_path):
    browser.get(server.url + "/")
    assert "trained on synthetic 64 px demo data" in browser.find_element("id", "about").text
    for name in ("real_photo.jpg", "real_video.mp4"):
        expected = predicted(checkpoint, EXAMPLES_DIR / name, tmp_path / name)
        shown = shown_scores(upload_and_wait(browser, EXAMPLES_DIR / name))
        assert shown["message"] == "" and shown["overlay"] > 1000 and shown["frame_image"] > 0
        assert shown["value"] == expected["score"] and shown["text"] == f"{expected['score']:.4f}"
        assert shown["verdict"] == ("fake" if expected["fake"] else "real")
        faces = [
            {"frame": f["frame"], "face": r["face_index"], "value": r["score"], "text": f"{r['score']:.4f}"}
            for f in expected["frame_results"]
            for r in f["face_results"]
        ]
        assert shown["faces"] == faces
        if name.endswith(".mp4"):
            assert shown["plot"] > 0
            assert shown["frames"] == [
                {"frame": f["frame"], "face": None, "value": f["score"], "text": f"{f['score']:.4f}"}
                for f in expected["frame_results"]
            ]
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert Image.open(tmp_path / "page.png").size[0] >= 1000
