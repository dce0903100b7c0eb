#!/usr/bin/env bash
# One bounded check (under 5 minutes) of the Qwen3/CUDA path on a machine with a GPU and no network.
#   bash scripts/gpu_check.sh [--wheels DIR] [--cpu] [--no-tests] [--out FILE]
# --wheels DIR   first pip-install (offline, --no-deps) the wheels in DIR into a private folder put on
#                PYTHONPATH: the packages the GPU machine lacks (scripts/gpu_wheels.sh builds DIR)
# --cpu          dry mode: the same steps on the CPU with a tiny model and a few texts (well under a minute)
# --no-tests     skip running the tiny-Qwen3 tests (step 1)
# --out FILE     also write the JSON summary there
# The Python is $PYTHON, else .venv/bin/python, else python3. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels="${2:?--wheels needs a folder}"; shift 2 ;;
    --cpu|--no-tests) args+=("$1"); shift ;;
    --out) args+=("$1" "${2:?--out needs a file}"); shift 2 ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py="${PYTHON:-}"
[ -n "$py" ] || { [ -x .venv/bin/python ] && py=.venv/bin/python || py=python3; }
if [ -n "$wheels" ]; then
  site="${TMPDIR:-/tmp}/retrieval-gpu-check-site"
  "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --find-links "$wheels" --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec timeout 290 "$py" scripts/gpu_check.py "${args[@]}"
