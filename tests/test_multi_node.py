"""Beyond one machine: torchrun across nodes (two "nodes" on localhost, gloo on the CPU), the SLURM example script
with its requeue, and the signals a launcher delivers more than once."""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train
from common.checkpoint import load_checkpoint
from data.make_demo import make_demo
from engine.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SBATCH = ROOT / "tools" / "slurm" / "train.sbatch"
SLURM_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "cael",
    "SLURM_JOB_NODELIST": "gpu[01-02]",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_SUBMIT_DIR": str(ROOT),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("nodes"), identities=4, fakes_per_generator=12)


# ------------------------------------------------------------------------------------------------ signals


def test_a_repeated_sigterm_never_skips_the_checkpoint_and_a_second_ctrl_c_still_stops(monkeypatch):
    """torchrun and srun forward the SIGTERM a worker already got: the copy must not stop the run before it saves."""
    clock = {"now": 100.0}
    monkeypatch.setattr(time, "monotonic", lambda: clock["now"])
    trainer = Trainer.__new__(Trainer)  # only its signal handler is exercised
    trainer._on_signal(signal.SIGTERM, None)
    clock["now"] += 60
    trainer._on_signal(signal.SIGTERM, None)  # forwarded again, even much later: still saving
    assert trainer._signal_name == "SIGTERM"
    with pytest.raises(KeyboardInterrupt):
        trainer._on_signal(signal.SIGINT, None)  # Ctrl-C pressed while it saves: stop at once

    trainer = Trainer.__new__(Trainer)
    trainer._on_signal(signal.SIGINT, None)
    clock["now"] += 0.01
    trainer._on_signal(signal.SIGINT, None)  # the terminal's Ctrl-C and torchrun's forward of it
    assert trainer._signal_name == "SIGINT"
    clock["now"] += 5
    with pytest.raises(KeyboardInterrupt):
        trainer._on_signal(signal.SIGINT, None)  # Ctrl-C pressed again: stop at once


# ------------------------------------------------------------------------------------------------ SLURM


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def _slurm_stubs(tmp_path: Path, torchrun_body: str) -> tuple[Path, dict]:
    """srun, scontrol and torchrun stand-ins on PATH that record how the script calls them."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    _stub(bin_dir, "srun", 'echo "srun $*" >> "$CALLS"\nexec "${@:2}"\n')  # drop --kill-on-bad-exit, run the rest
    _stub(
        bin_dir,
        "scontrol",
        'echo "scontrol $*" >> "$CALLS"\nif [ "$1 $2" = "show hostnames" ]; then printf "gpu01\\ngpu02\\n"; fi\n',
    )
    _stub(bin_dir, "torchrun", 'printf "%q " "$@" > "$ARGS"\n' + torchrun_body)
    env = {**os.environ, **SLURM_ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(log)}
    return log, {**env, "ARGS": str(tmp_path / "torchrun.args")}


def test_the_slurm_script_is_valid_bash_and_its_command_lines_parse(tmp_path):
    assert subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True).returncode == 0
    log, env = _slurm_stubs(tmp_path, "exit 0\n")
    extra = ["--csv", "/data/genface/splits.csv", "--protocol", "cross-generator", "--fold", "StyleGAN2"]
    done = subprocess.run(["bash", str(SBATCH), *extra], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = shlex.split(Path(env["ARGS"]).read_text())
    split = argv.index("train.py")
    from torch.distributed.run import get_args_parser as torchrun_parser

    launcher = torchrun_parser().parse_args([*argv[:split], "train.py"])
    assert (launcher.nnodes, launcher.nproc_per_node, launcher.rdzv_backend) == ("2", "8", "c10d")
    assert launcher.rdzv_endpoint == "gpu01:29500" and launcher.rdzv_id == "4242"
    args = train.get_args_parser().parse_args(argv[split + 1 :])
    assert args.resume == "auto" and args.out == "checkpoint/cael-4242" and args.fold == "StyleGAN2"
    assert args.csv == "/data/genface/splits.csv" and args.config == "cael"


def test_the_slurm_script_requeues_itself_after_train_py_saved_near_the_time_limit(tmp_path):
    # torchrun's stand-in: running until SIGTERM, which it answers as train.py does (save, exit status 130).
    body = 'trap \'echo "torchrun got SIGTERM" >> "$CALLS"; exit 130\' TERM\nwhile true; do sleep 0.1; done\n'
    log, env = _slurm_stubs(tmp_path, body)
    script = subprocess.Popen(["bash", str(SBATCH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not Path(env["ARGS"]).exists() and time.time() < deadline:
        time.sleep(0.05)
    script.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 sends 5 minutes before the limit
    out, err = script.communicate(timeout=60)
    assert script.returncode == 0, err
    calls = log.read_text().splitlines()
    assert calls[-2:] == ["torchrun got SIGTERM", "scontrol requeue 4242"]  # saved first, then back to the queue
    assert "time limit near" in out


# ------------------------------------------------------------------------------------------------ torchrun


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_args(demo: Path, out: Path) -> list[str]:
    settings = ["data.workers=0", "train.batch-size=4", "train.epochs=1", "train.max-steps-per-epoch=3"]
    return [
        str(ROOT / "train.py"),
        *("--config", "cael_demo", "--csv", str(demo), "--out", str(out)),
        *(token for setting in settings for token in ("--set", setting)),
    ]


@pytest.mark.slow
def test_two_nodes_end_with_the_weights_of_one_node_with_two_processes(demo, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run"]
    one_node = [*launcher, "--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    command = [*one_node, *_train_args(demo, tmp_path / "one")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [
        subprocess.Popen(
            [
                *launcher,
                *("--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank)),
                *("--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes"),
                *_train_args(demo, tmp_path / "two"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(output[-3000:] for output in outputs)
    assert "2 processes (DDP)" in outputs[0] + outputs[1]

    one, two = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert one["step"] == two["step"] == 3
    for name, tensor in one["model"].items():
        assert torch.equal(tensor, two["model"][name]), name
