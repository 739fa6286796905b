"""The demo's documented numbers (benchmarks/demo-cpu/results.json, quoted in the docs) equal a fresh run.

The demo is deterministic on a CPU for a given number of threads: when the code changes what it gives, this test
fails until ``python benchmarks/demo_results.py`` writes the file again (and the docs quote the new numbers:
tests/test_docs.py checks that part).
"""

import importlib
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "demo-cpu" / "results.json"
AUC_TOLERANCE = 5e-4  # on the 0..1 scale: a dozen of the 24,192 real-fake test pairs ranked the other way


@pytest.mark.slow
def test_the_documented_demo_numbers_equal_a_fresh_run(tmp_path):
    documented = json.loads(RESULTS.read_text())
    demo_results = importlib.import_module("benchmarks.demo_results")
    threads = torch.get_num_threads()
    torch.set_num_threads(documented["torch_threads"])
    try:
        fresh = demo_results.run_demo(tmp_path, onnx=documented["onnx_max_difference"] is not None)
    finally:
        torch.set_num_threads(threads)
    assert fresh["best_epoch"] == documented["best_epoch"]
    assert fresh["val_auc"] == pytest.approx(documented["val_auc"], abs=AUC_TOLERANCE)
    for key in ("test_auc_percent", "test_video_auc_percent"):
        assert fresh[key] == pytest.approx(documented[key], abs=100 * AUC_TOLERANCE), key
    assert fresh["test_auc_ci95_percent"] == pytest.approx(documented["test_auc_ci95_percent"], abs=100 * AUC_TOLERANCE)
    if documented["onnx_max_difference"] is not None:  # float noise: same order, and inside the export's own bound
        assert fresh["onnx_max_difference"] <= 1e-4
        assert fresh["onnx_max_difference"] == pytest.approx(documented["onnx_max_difference"], abs=1e-4)
