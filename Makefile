# The book's two commands are `make serve` and `make test`; everything else is a step of them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Parallel test workers (pytest-xdist): one per core of the book's 2-core build machine.
JOBS ?= 2
export NO_MKDOCS_2_WARNING := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
# nbval in strict mode; --dist loadscope keeps each notebook's cells on one worker.
NBVAL := $(PYTEST) --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	-n $(JOBS) --dist loadscope

.PHONY: install serve build test lint test-code test-notebooks test-site test-portable \
	notebooks bench checkpoints experiments clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

## Build the book and serve it on http://127.0.0.1:8000 (rebuilds on change).
serve: install
	$(BIN)/mkdocs serve --strict -a 127.0.0.1:8000

## Build the static site into site/ (fails on any warning).
build: install
	$(BIN)/mkdocs build --strict

## Everything: lint, code and notebook-source tests, every notebook under nbval strict mode
## (English with the CPU's native kernels, Chinese with PyTorch's portable ones), the site
## build, checks of the built site, and the browser tests.
test: lint test-code test-notebooks test-site

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check tutorial_code tools

test-code: install
	$(PYTEST) -n $(JOBS) tests/unit tests/docs

## Both languages store identical checked outputs (tests/docs), so running English natively
## and Chinese with ATEN_CPU_CAPABILITY=default checks every output under both kinds of kernel.
test-notebooks: install
	$(NBVAL) docs/en
	ATEN_CPU_CAPABILITY=default $(NBVAL) docs/zh

test-site: build
	$(PYTEST) tests/site

## Every notebook of both languages with the portable kernels, as on CPUs without AVX2.
test-portable: install
	ATEN_CPU_CAPABILITY=default $(NBVAL) docs

## Regenerate and re-execute notebooks from notebooks/*.md (all, or NB="name ...").
notebooks: install
	$(BIN)/python tools/notebooks.py $(NB)

## Re-measure the benchmarks the chapters quote (about 15 min; run on an otherwise idle machine),
## then rebuild the chapters that print them: make notebooks NB="04-kv-cache 05-bpe".
bench: install
	$(BIN)/python benchmarks/bpe.py
	$(BIN)/python benchmarks/kv_cache.py --threads 1
	$(BIN)/python experiments/sampling_speed.py
	$(BIN)/python benchmarks/quant.py --threads 1 --repeats 15

## Rebuild the alignment chapters' base and SFT checkpoints from scratch (tens of minutes on a
## CPU), then their notebooks: make notebooks NB=06i-assistant.
checkpoints: install
	$(BIN)/python experiments/alignment_checkpoints.py

## Re-run the experiments whose stored results the chapters print (experiments/results/*.json),
## then rebuild those chapters with make notebooks.
experiments: install
	$(BIN)/python experiments/isoflop.py
	$(BIN)/python experiments/data_cleaning.py
	$(BIN)/python experiments/moe.py
	$(BIN)/python experiments/lora.py
	$(BIN)/python experiments/quant_gpt.py
	$(BIN)/python experiments/ppo.py
	$(BIN)/python experiments/dpo.py
	$(BIN)/python experiments/grpo.py
	$(BIN)/python experiments/dapo_ablation.py
	$(BIN)/python experiments/comparison.py --jobs 2
	$(BIN)/python experiments/reasoning.py
	$(BIN)/python experiments/reasoning.py --only-reward-model
	$(BIN)/torchrun --nproc_per_node=2 experiments/ddp.py

clean:
	rm -rf site .pytest_cache
