# Two commands do everything on a fresh machine:
#   make test    create .venv, install, run the tests
#   make bench   create .venv, install, run the main job on AILAStatutes (offline with
#                AILA2019_DIR=<AILA 2019 release folder>): tune fusion by cross-validation, then
#                dense vs BM25 vs hybrid vs tuned through MTEB, with parity checks against MTEB
# FAISS picks the extra: cpu (faiss-cpu, default), gpu (faiss-gpu, CUDA 12) or gpu-cu13 (faiss-gpu-cuvs, CUDA 13).
# MILVUS: milvus-lite (default on CPU: client + embedded engine) or milvus (client only, the default with a GPU FAISS).
# TORCH pins torch; torch==2.13.0 is a CPU build here. On a CUDA machine see docs/gpu.md, e.g.
#   make test TORCH=torch==2.10.0 FAISS=gpu        (CUDA 12: Ampere, Ada, Hopper; Blackwell through PTX)
#   make test TORCH=torch==2.15.0 FAISS=gpu-cu13   (CUDA 13.2)
PYTHON ?= python3
VENV ?= .venv
FAISS ?= cpu
TORCH ?= torch==2.13.0
# Milvus: the client always; the embedded engine (Milvus Lite, which brings faiss-cpu) on CPU installs only
MILVUS ?= $(if $(filter cpu,$(FAISS)),milvus-lite,milvus)
EXTRAS ?= $(FAISS),bench,web,dev,ray,$(MILVUS)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(FAISS)
BENCH_OUT ?= results/aila-minilm
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@case ",$(EXTRAS)," in *,milvus-lite,*) [ "$(FAISS)" = cpu ] || { echo "error: FAISS=$(FAISS) with Milvus Lite: milvus-lite depends on faiss-cpu, which would replace faiss-gpu's faiss module; use MILVUS=milvus (client only) with a GPU install"; exit 2; };; esac
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip uninstall -y -q faiss-cpu faiss-gpu faiss-gpu-cu12 faiss-gpu-cuvs 2>/dev/null || true
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

test: $(STAMP)
	$(BIN)/ruff check retrieval tests scripts
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m retrieval tune --out $(BENCH_OUT)/tune
	$(BIN)/python -m retrieval bench --parity --fusion-config $(BENCH_OUT)/tune/fusion.json --out $(BENCH_OUT)

clean:
	rm -rf $(VENV) results
