#!/usr/bin/env bash
# The prepared GPU benchmark (README "Performance"): released hyper-parameters, 224 px, model alone, then end to end.
# Usage: bash benchmarks/run_gpu.sh OUT_DIR   (about 6 minutes on one H100/H200, compilation included)
set -euo pipefail
out=${1:-benchmarks}
mkdir -p "$out"
B="python tools/benchmark.py --config cael_released --warmup 10 --steps 30"
$B --mode train --batch 32  --precision fp32                   --out "$out/gpu-train-fp32-b32.json"
$B --mode train --batch 128 --precision bf16 --channels-last   --out "$out/gpu-train-bf16-cl-b128.json"
$B --mode train --batch 256 --precision bf16 --channels-last   --out "$out/gpu-train-bf16-cl-b256.json"
$B --mode train --batch 256 --precision bf16 --channels-last --compile max-autotune-no-cudagraphs --out "$out/gpu-train-bf16-cl-compile-b256.json"
$B --mode infer --batch 256 --precision bf16 --channels-last   --out "$out/gpu-infer-bf16-cl-b256.json"
$B --mode infer --batch 256 --precision bf16 --channels-last --compile reduce-overhead --out "$out/gpu-infer-bf16-cl-compile-b256.json"
# end to end from JPEG face crops through the loader (demo images re-encoded as 224 px JPEGs)
python - <<'PY'
import csv, pathlib
from PIL import Image
src = pathlib.Path("data/demo_data"); dst = pathlib.Path("/tmp/demo-jpeg224")
if not (src / "demo.csv").exists():
    from data.make_demo import make_demo; make_demo(src)
rows = list(csv.DictReader(open(src / "demo.csv")))
for r in rows:
    target = dst / r["path"].replace(".png", ".jpg"); target.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src / r["path"]).resize((224, 224), Image.BICUBIC).save(target, quality=95); r["path"] = str(target.relative_to(dst))
with open(dst / "demo.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
PY
$B --mode train --batch 256 --precision bf16 --channels-last --source /tmp/demo-jpeg224/demo.csv --out "$out/gpu-train-bf16-cl-b256-e2e.json"
