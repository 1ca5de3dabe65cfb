# serverless-mlops: every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
SAM_VENV    := .venv-sam
CHECKOV_VENV:= .venv-checkov
PY          := $(VENV)/bin/python
SAM         := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM_VENV)/bin/sam
CONFIG_ENV  ?= dev
FN          ?= scrape
EVENT       ?= events/scheduled.json
PYTEST_ARGS ?=

export AWS_EC2_METADATA_DISABLED := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup lint format validate checkov build deploy invoke test test-unit test-e2e demo up bench clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements/dev.txt pyproject.toml
	@PY312=$$(tools/find-python312.sh) || exit 1; \
	 echo "Creating $(VENV) with $$PY312"; \
	 [ -x $(PY) ] || $$PY312 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

$(SAM_VENV)/.installed: requirements/sam.txt
	@PY312=$$(tools/find-python312.sh) || exit 1; [ -x $(SAM_VENV)/bin/python ] || $$PY312 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements/sam.txt
	@touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	@PY312=$$(tools/find-python312.sh) || exit 1; [ -x $(CHECKOV_VENV)/bin/python ] || $$PY312 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements/checkov.txt
	@touch $@

setup: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed ## Create the dev, SAM and checkov venvs

lint: $(VENV)/.installed ## ruff lint and format check; workflows checked against GitHub's schema
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

format: $(VENV)/.installed ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

validate: $(SAM_VENV)/.installed ## sam validate and sam validate --lint (each catches what the other misses)
	$(SAM) validate
	$(SAM) validate --lint

checkov: $(CHECKOV_VENV)/.installed ## Static security checks of template.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

build: $(SAM_VENV)/.installed ## sam build (no container)
	PATH="$$(dirname $$(tools/find-python312.sh)):$$PATH" $(SAM) build

deploy: build $(VENV)/.installed ## Deploy: guided the first time, then `sam deploy --config-env $(CONFIG_ENV)`
	@if grep -q "^\[$(CONFIG_ENV).deploy.parameters\]" samconfig.toml && [ -f .aws-sam/.deployed-$(CONFIG_ENV) ]; then \
	  $(SAM) deploy --config-env $(CONFIG_ENV); \
	else \
	  $(SAM) deploy --guided --config-env $(CONFIG_ENV) && touch .aws-sam/.deployed-$(CONFIG_ENV); \
	fi
	$(PY) -m localcloud publish-code --stack-name serverless-mlops-$(CONFIG_ENV)

invoke: $(VENV)/.installed ## Run a handler on a sample event locally: make invoke FN=scrape EVENT=events/scheduled.json
	$(PY) -m localcloud invoke $(FN) $(EVENT) $(if $(filter scrape ScrapeFunction,$(FN)),--demo-site 200)

test: lint validate checkov $(VENV)/.installed ## Lint, template checks, then every test
	@tools/ensure-chromium.sh
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.installed ## Unit tests only (fast)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

test-e2e: $(VENV)/.installed ## End-to-end tests on the local cloud
	$(VENV)/bin/pytest tests/e2e $(PYTEST_ARGS)

demo: $(VENV)/.installed ## Run the whole pipeline on the local cloud, ending in a served prediction
	$(VENV)/bin/mlops local run

up: $(VENV)/.installed ## Start the local cloud, demo site and web app until Ctrl-C
	$(VENV)/bin/mlops local up

bench: $(VENV)/.installed ## Benchmarks (figures against baselines; not tests): BENCH=validation|scrape|prepare|web|strictness; opt-in: validation_scale (100 MB-2 GB objects, minutes)
	@for b in $${BENCH:-scrape validation prepare web strictness}; do echo "== benchmarks/$${b}_bench.py"; \
	  PYTHONPATH=.:layers/shared:training $(PY) benchmarks/$${b}_bench.py || exit 1; done

clean: ## Remove venvs and build output
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .ruff_cache
