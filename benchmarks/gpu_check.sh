#!/usr/bin/env bash
# GPU check of the real-model adapters, in one run on the device machine:
#   1. install the carried wheels (.gpu-wheels/, made here by benchmarks/gpu_wheels.sh)
#   2. the GPU-marked tests (tests/models/test_gpu.py: CUDA vs CPU vectors, fp16/bf16
#      autocast, device/dtype provenance through ingest)
#   3. benchmarks/bench_models.py on CUDA in float32 and bfloat16
# Results go to $OUT (env.txt, gpu_tests.log, bench_*.json, bench.log). About 4 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/timbredb-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .gpu-wheels/*.whl || { echo "wheel install failed"; exit 1; }
extra=""
if ! python3 -c "import polars" 2>/dev/null; then
  # polars (54 MB) does not travel; the store imports it but ingest never calls it
  mkdir -p /tmp/stubs/polars
  printf 'class DataFrame:\n    def __init__(self, *a, **k):\n        raise ImportError("polars is not installed on this machine")\n' \
    > /tmp/stubs/polars/__init__.py
  extra=":/tmp/stubs"
fi
export PYTHONPATH="/tmp/site${extra}:$PWD"

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 - <<'PY'
import importlib.metadata as md, sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())
for n in ("transformers", "tokenizers", "huggingface_hub", "numpy", "laion_clap", "msclap", "muq", "duckdb"):
    print(n, md.version(n))
PY
  echo "install+env: $(( $(date +%s) - start )) s"
} 2>&1 | tee "$OUT/env.txt"

timeout 240 python3 -m pytest tests/models -m gpu -q -p no:cacheprovider -rA 2>&1 | tail -n 60 | tee "$OUT/gpu_tests.log"
echo "tests done: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"

for dtype in float32 bfloat16; do
  timeout 150 python3 benchmarks/bench_models.py --device cuda --dtype "$dtype" --clips 32 --seconds 30 \
    --batch-size 16 --rounds 3 --cache /tmp/bench-hub --json "$OUT/bench_cuda_$dtype.json" 2>&1 | tail -n 45
done 2>&1 | tee "$OUT/bench.log"
echo "all done: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
