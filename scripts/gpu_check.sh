#!/usr/bin/env bash
# One bounded check (under 10 minutes) of the Qwen3/CUDA path on a machine with a GPU and no network.
#   bash scripts/gpu_check.sh [--wheels DIR] [--cpu] [--no-tests] [--model DIR] [--out FILE]
# --wheels DIR   first pip-install (offline, --no-deps) the wheels in DIR into a private folder put on
#                PYTHONPATH: the packages the GPU machine lacks (scripts/gpu_wheels.sh builds DIR)
# --cpu          dry mode: the same steps on the CPU with a tiny model and a few texts
# --no-tests     skip the test step
# --model DIR    a local Qwen3-Embedding-0.6B folder: check its model card's example scores
# --out FILE     the JSON summary, rewritten after each step (default results/gpu_check.json)
# The Python is $PYTHON, else .venv/bin/python, else python3. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels="${2:?--wheels needs a folder}"; shift 2 ;;
    --cpu|--no-tests) args+=("$1"); shift ;;
    --out|--model) args+=("$1" "${2:?$1 needs a path}"); shift 2 ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py="${PYTHON:-}"
[ -n "$py" ] || { [ -x .venv/bin/python ] && py=.venv/bin/python || py=python3; }
if [ -n "$wheels" ]; then
  site="${TMPDIR:-/tmp}/retrieval-gpu-check-site"
  "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# Several GPUs seen: encode 512 texts on cuda:0,cuda:1 (--devices, docs/distributed.md) against one GPU.
if [ "$("$py" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)" -ge 2 ]; then
  timeout 120 "$py" - <<'PY' || echo "two-device check failed" >&2
import numpy as np
from retrieval.dense.devices import attach
from retrieval.dense.encoders import Encoder, EncoderConfig
texts = [f"statute {i}: " + "whoever causes harm " * (i % 40) for i in range(512)]
enc = Encoder(EncoderConfig(device="cuda:0"))
one = enc.encode_documents(texts, progress=False)
pool = attach(enc, ["cuda:0", "cuda:1"])
two = enc.encode_documents(texts, progress=False)
pool.finish()
print(f"two-device check: max |cuda:0,cuda:1 - cuda:0| = {np.abs(two - one).max():.2e}")
PY
fi
# The script keeps its own time budget (540 s on a GPU) and writes its JSON after every step; this is the backstop.
exec timeout 590 "$py" scripts/gpu_check.py "${args[@]}"
