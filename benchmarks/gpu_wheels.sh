#!/usr/bin/env bash
# Prepare .gpu-wheels/ for benchmarks/gpu_check.sh. Run HERE (the development
# machine, which reaches PyPI); the GPU machine has no network, so the wheels
# travel with the working tree (`carry: [".gpu-wheels"]`, ~45 MB of the 64 MB).
#
# The GPU image brings python3.12 with torch/torchaudio/torchvision for CUDA,
# numpy 2, scipy, pandas, h5py, timm, pyarrow, pytest; but transformers 5 and
# huggingface_hub 1.x, which msclap and muq cannot use, and none of the model
# packages or timbredb's own dependencies. polars (54 MB) does not fit: the
# check stubs it (the ingest path does not use it).
set -euo pipefail
cd "$(dirname "$0")/.."
W=.gpu-wheels
PY=${PYTHON:-/work/venv/bin/python}
rm -rf "$W" && mkdir -p "$W"
grep -qxF '/.gpu-wheels/' .git/info/exclude 2>/dev/null || echo '/.gpu-wheels/' >> .git/info/exclude
PLAT=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: "${PLAT[@]}" -d "$W" \
  transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 \
  laion_clap==1.1.7 msclap==1.3.4 torchlibrosa==0.1.0 x-clip==0.14.4 beartype==0.23.1 \
  ftfy==6.3.1 wcwidth==0.9.4 braceexpand==0.1.7 webdataset==1.0.2 \
  librosa==0.10.2.post1 audioread==3.1.0 pooch==1.9.0 decorator==5.3.1 \
  soundfile==0.13.1 soxr==1.1.0 duckdb==2.0.1 platformdirs==4.14.8 threadpoolctl==3.8.0
# sdist-only packages: pure Python, built into wheels here
"$PY" -m pip wheel -q --no-deps -w "$W" muq==0.1.0 wget==3.2 easydict==1.14
ls "$W" | wc -l
du -sh "$W"
