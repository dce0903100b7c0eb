# Two commands do everything on a fresh machine:
#   make test    create .venv, install, run the tests
#   make bench   create .venv, install, run the main job (AILAStatutes benchmark)
# FAISS picks the extra: cpu (faiss-cpu, default), gpu (faiss-gpu, CUDA 12) or gpu-cu13 (faiss-gpu-cuvs).
# TORCH pins torch; torch==2.13.0 is a CPU build here. On a CUDA machine use e.g. TORCH=torch.
PYTHON ?= python3
VENV ?= .venv
FAISS ?= cpu
TORCH ?= torch==2.13.0
EXTRAS ?= $(FAISS),bench,web,dev
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(FAISS)
BENCH_OUT ?= results/aila-minilm
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	@if [ -z "$$AILA2019_DIR" ]; then \
	  echo "make bench: set AILA2019_DIR to the AILA 2019 release folder (Object_statutes/, Query_doc.txt," \
	       "relevance_judgments_statutes.txt); without it the data would come from the Hugging Face Hub, which needs network" >&2; \
	  exit 2; fi
	$(BIN)/python -m retrieval build "$$AILA2019_DIR/Object_statutes" --out index/aila-minilm
	$(BIN)/python -m retrieval query index/aila-minilm "The accused poured kerosene on his wife and set her on fire after repeated demands for dowry"

clean:
	rm -rf $(VENV) results
