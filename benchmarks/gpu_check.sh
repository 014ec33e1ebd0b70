#!/usr/bin/env bash
# GPU check of the real-model adapters, in one run on the device machine:
#   1. install the carried wheels (.gpu-wheels/, made here by benchmarks/gpu_wheels.sh)
#   2. the GPU-marked tests (tests/models/test_gpu.py: CUDA vs CPU vectors, fp16/bf16
#      autocast, device/dtype provenance through ingest)
#   3. benchmarks/bench_models.py on CUDA in float32 and bfloat16 (the sequential engine)
#   4. benchmarks/bench_pipeline.py on CUDA in bfloat16: the pipelined ingest with cores - 1 worker
#      processes against the bare forward (the GPU ratio), host windows/s per worker for 1 and 2
#      workers, the sequential engine beside it, peak host RSS (main process and largest worker)
# Results go to $OUT (env.txt, gpu_tests.log, bench_*.json, bench.log, bench_pipeline.log). About 6 minutes.
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

# the pipelined ingest (issue 17): the issue's configuration (32 clips of 30 s, batch 16), every core
workers=$(( $(nproc) - 1 ))
timeout 240 python3 benchmarks/bench_pipeline.py --device cuda --dtype bfloat16 --clips 32 --seconds 30 \
  --batch-size 16 --host-clips 48 --host-seconds 30 --rounds 3 --workers "$workers" --cache /tmp/bench-hub \
  --predict-cores "$(nproc)" --json "$OUT/bench_pipeline_cuda_bfloat16.json" 2>&1 | tail -n 80 \
  | tee "$OUT/bench_pipeline.log"
python3 - "$OUT/bench_pipeline_cuda_bfloat16.json" <<'PY' 2>&1 | tee -a "$OUT/bench_pipeline.log"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"GPU ratio (pipelined ingest / bare forward, bfloat16, {r['ingest_workers']} workers): {r['ratio']} "
      f"(median {r['ratio_median']}; sequential engine {r.get('ratio_serial')}; target >= 0.6)")
print(f"host windows/s/worker {r['host_windows_per_s_per_worker']}, predicted ratio here {r['predicted_ratio_here']}, "
      f"peak RSS MiB {r['peak_rss_mb']}")
PY
echo "all done: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
