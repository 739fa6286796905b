"""Measuring a command as a user runs it: wall time, exit code and the peak memory of its whole process tree
(loader workers and decoding pools included), sampled from /proc; and what the numbers were measured on. Shared by
the benchmark scripts (scale.py, extraction_scale.py, predict_outputs.py)."""

from __future__ import annotations

import os
import platform
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SECONDS = 0.05  # RSS of the process tree (statm: about 0.3 ms a sample, under 1% of a core)
# PSS (smaps_rollup) walks every page of a process: about 0.1 s of CPU for a 1.7 GB test.py. It is read at most every
# PSS_MIN_SECONDS, and after each read waits PSS_COST_RATIO times what the read took, so that it takes at most 1/50 of
# a core from the command it measures (read every 0.25 s it took a quarter of a core beside a long test.py)
PSS_MIN_SECONDS = 0.25
PSS_COST_RATIO = 50
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024
STOP_GRACE_SECONDS = 20  # after SIGTERM at the first step: then the command's process group is killed
def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (loader workers, decoding pools), from /proc/PID/task/*/children."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending += [int(child) for child in children.read_text().split()]
            except (OSError, ValueError):  # the process or thread ended while being read
                continue
    return found


def resident_bytes(pid: int) -> int:
    """Resident set of one process (statm's second field), 0 once it has ended."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def proportional_bytes(pid: int) -> int:
    """Proportional set (shared pages divided among their sharers: forked workers are not counted twice)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


class TreeMemory(threading.Thread):
    """Samples the summed resident (and proportional) memory of a process tree every SAMPLE_SECONDS; keeps peaks."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stopping = pid, threading.Event()
        self.peak_rss = self.peak_pss = self.samples = self.pss_samples = self.peak_processes = 0
        self.cpu_s = 0.0  # this thread's own CPU time: what measuring took from the machine

    def run(self) -> None:
        cpu_started, next_pss = time.thread_time(), 0.0
        while not self.stopping.is_set():
            tree = descendants(self.pid)
            self.peak_rss = max(self.peak_rss, sum(resident_bytes(pid) for pid in tree))
            if time.perf_counter() >= next_pss:
                reading = time.perf_counter()
                self.peak_pss = max(self.peak_pss, sum(proportional_bytes(pid) for pid in tree))
                self.pss_samples += 1
                cost = time.perf_counter() - reading
                next_pss = time.perf_counter() + max(PSS_MIN_SECONDS, PSS_COST_RATIO * cost)
            self.peak_processes = max(self.peak_processes, len(tree))
            self.samples += 1
            self.cpu_s = time.thread_time() - cpu_started
            self.stopping.wait(SAMPLE_SECONDS)

    def stop(self) -> dict:
        self.stopping.set()
        self.join()
        return {
            "peak_rss_mb": round(self.peak_rss / MB, 1),
            "peak_pss_mb": round(self.peak_pss / MB, 1) if self.peak_pss else None,
            "peak_processes": self.peak_processes,
            "memory_samples": self.samples,
            "pss_samples": self.pss_samples,
            "sampler_cpu_s": round(self.cpu_s, 3),
        }


@dataclass
class Measured:
    """One command's run: its figures and its output lines with the second (since start) each appeared."""

    record: dict
    lines: list[tuple[float, str, str]] = field(default_factory=list)  # (seconds, stream, text)

    def first(self, pattern: re.Pattern) -> float | None:
        return next((seconds for seconds, _, text in self.lines if pattern.search(text)), None)

    def text(self, stream: str) -> str:
        return "".join(text for _, where, text in self.lines if where == stream)


def _read_lines(stream, name: str, started: float, lines: list, stop_at=None, seen=None) -> None:
    for text in iter(stream.readline, ""):
        lines.append((time.perf_counter() - started, name, text))
        if stop_at is not None and stop_at.search(text):
            seen.set()
    stream.close()


def _kill_when(process: subprocess.Popen, condition: Callable[[], bool], started: float, timeout: float):
    """SIGKILL to the process group of ``process`` once ``condition()`` holds; the second it did, or None."""
    while process.poll() is None and time.perf_counter() - started < timeout:
        if condition():
            os.killpg(process.pid, signal.SIGKILL)
            return time.perf_counter() - started
        time.sleep(SAMPLE_SECONDS)
    return None


def run_command(
    command: list[str],
    *,
    timeout: float,
    environment: dict[str, str],
    stop_at: re.Pattern | None = None,
    kill_when: Callable[[], bool] | None = None,
) -> Measured:
    """Run ``command`` in the repository as a user would; wall seconds, exit code and the process tree's peak memory.

    ``stop_at``: once a line of its output matches, the command gets SIGTERM (as from a scheduler or Ctrl-C: train.py
    saves and exits) and ``stopped_at_s`` records when. ``kill_when``: polled every SAMPLE_SECONDS; once it is true,
    the command's whole process group gets SIGKILL (a crash or an out-of-memory kill: nothing can clean up) and
    ``killed_at_s`` records when.
    """
    seen = threading.Event()
    lines: list[tuple[float, str, str]] = []
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends the command and its workers, nothing else
    )
    memory = TreeMemory(process.pid)
    memory.start()
    readers = [
        threading.Thread(target=_read_lines, args=(stream, name, started, lines, stop_at, seen), daemon=True)
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    stopped_at = killed_at = None
    try:
        if kill_when is not None:
            killed_at = _kill_when(process, kill_when, started, timeout)
        if stop_at is not None:
            while process.poll() is None and not seen.wait(0.05):
                if time.perf_counter() - started > timeout:
                    break
            if process.poll() is None and seen.is_set():
                stopped_at = time.perf_counter() - started
                os.kill(process.pid, signal.SIGTERM)  # the command only, as torchrun forwards it: it ends its workers
                try:  # train.py validates the epoch it ended before it stops: not what is measured here
                    process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        exit_code = process.wait(timeout=max(1.0, timeout - (time.perf_counter() - started)))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)
        exit_code = process.wait()
    except BaseException:  # the benchmark itself stopped (Ctrl-C, SIGTERM): leave no command running behind it
        os.killpg(process.pid, signal.SIGKILL)
        raise
    wall = time.perf_counter() - started
    for reader in readers:
        reader.join()
    record = {"command": shlex.join(command), "wall_s": round(wall, 3), "exit_code": exit_code}
    record |= memory.stop()
    if timed_out:
        record["timed_out_after_s"] = timeout
    if stopped_at is not None:
        record["stopped_at_s"] = round(stopped_at, 3)
    if killed_at is not None:
        record["killed_at_s"] = round(killed_at, 3)
    measured = Measured(record, lines)
    if exit_code != 0:
        record["stderr_tail"] = measured.text("stderr")[-3000:] or measured.text("stdout")[-3000:]
    return measured


# ------------------------------------------------------------------------------------------------ the loader stage
def worker_memory_mb(parent: int) -> dict[int, float]:
    """VmRSS of each direct child of ``parent`` (the DataLoader's workers), from /proc/PID/status."""
    sizes = {}
    for pid in descendants(parent)[1:]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if found:
            sizes[pid] = round(int(found.group(1)) / 1024, 1)
    return sizes


# ------------------------------------------------------------------------------------------------ the report
def machine() -> dict:
    """What the numbers were measured on."""
    memory = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    versions = {}
    for package in ("torch", "numpy", "pillow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(int(memory.group(1)) / 1024**2, 1) if memory else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        **versions,
    }


def _cpu_model() -> str | None:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+uncommitted" if dirty.strip() else "")
