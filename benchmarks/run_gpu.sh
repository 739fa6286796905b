#!/usr/bin/env bash
# The prepared GPU run (issue "CUDA: prove the main job on a GPU"): acceptance tests, the demo end to end, throughput.
# Usage: bash benchmarks/run_gpu.sh OUT_DIR [--dry]   (about 8 minutes on one H100/H200; --dry: tiny, on the CPU)
# Every step writes into OUT_DIR as it goes, so a run cut short still leaves what it measured.
set -uo pipefail
out=${1:?usage: bash benchmarks/run_gpu.sh OUT_DIR [--dry]}
dry=${2:-}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8 HF_HUB_OFFLINE=1
py=${PYTHON:-python3}
{ nvidia-smi 2>&1 | head -15; "$py" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"; } > "$out/env.txt" 2>&1
cat "$out/env.txt"
status=0
# 1. acceptance: the CUDA-marked tests (skipped without a GPU)
timeout 300 "$py" -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider -o addopts="-ra" --durations=10 2>&1 | tee "$out/cuda-tests.log" || status=1
# 2. throughput: released hyper-parameters, 224 px, model alone and end to end
timeout 330 "$py" benchmarks/gpu_suite.py "$out" $dry 2>&1 | grep -v "it/s\]" | tee "$out/throughput.log" || status=1
# 3. the demo end to end, with its wall time
start=$(date +%s)
if [ -z "$dry" ]; then
  timeout 150 "$py" train.py --out /tmp/demo-run 2>&1 | tail -n 8 | tee "$out/demo.log" || status=1
else
  timeout 300 "$py" train.py --out /tmp/demo-run-dry --set train.epochs=1 --set train.max-steps-per-epoch=2 2>&1 | tail -n 8 | tee "$out/demo.log" || status=1
fi
mid=$(date +%s)
run=$(ls -d /tmp/demo-run${dry:+-dry} 2>/dev/null)
timeout 120 "$py" test.py --checkpoint "$run/best.pt" --quiet 2>&1 | tail -n 25 | tee -a "$out/demo.log" || status=1
end=$(date +%s)
echo "demo wall time: train $((mid - start)) s, test $((end - mid)) s" | tee -a "$out/demo.log"
exit $status
