#!/usr/bin/env bash
# Build the wheel folder that `scripts/gpu_check.sh --wheels DIR` installs on a GPU machine with no network:
# the project and the packages the GPU image lacks (faiss-cpu, bm25s, PyStemmer, rank-bm25), at the versions
# installed here, for CPython $PYVER (default 3.12, the GPU image's) on x86-64 Linux. Needs PyPI.
#   bash scripts/gpu_wheels.sh [DIR]     (default .whl; keep DIR out of git, e.g. in .git/info/exclude)
# torch, transformers, sentence-transformers and tokenizers are taken from the GPU image; jieba (Chinese
# BM25 only) and the bundled MiniLM are left out to stay within a 64 MiB transfer.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.whl}"
pyver="${PYVER:-3.12}"
py="${PYTHON:-}"
[ -n "$py" ] || { [ -x .venv/bin/python ] && py=.venv/bin/python || py=python3; }
mkdir -p "$dir"
pins=$("$py" -c 'import importlib.metadata as m
print(" ".join(f"{p}=={m.version(p)}" for p in ("faiss-cpu", "bm25s", "PyStemmer", "rank-bm25")))')
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
# shellcheck disable=SC2086
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  "${platforms[@]}" -d "$dir" $pins
"$py" -m pip wheel -q --no-deps -w "$dir" .
ls -s "$dir"
du -sh "$dir"
