# Two entry points for a fresh machine (Python 3.11, pip, gcc): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
RUNS   ?= runs/demo

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## main job: synthetic 441-patient cohort -> validation -> Table 1 -> TNM -> 8 datasets -> 32 models
demo: $(STAMP)
	test -f $(RUNS)/cohort/generation_report.json || \
	  $(BIN)/npc-study synth $(RUNS)/cohort --patients 441 --matrix 256 --slices 16 --seed 42 --overwrite
	$(BIN)/npc-study validate $(RUNS)/cohort
	$(BIN)/npc-study table1 $(RUNS)/cohort/clinical.csv --out $(RUNS)/table1.csv
	$(BIN)/npc-study tnm $(RUNS)/cohort/clinical.csv --json > $(RUNS)/tnm.json
	$(BIN)/npc-study datasets $(RUNS)/cohort --profile demo --runs $(RUNS)
	$(BIN)/npc-study train $(RUNS)/cohort --profile demo --runs $(RUNS)
	@echo "results in $(RUNS)/: table1.csv, tnm.json, cohort/generation_report.json, models/*/"

## the test suite (CI runs exactly this)
test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py

clean:
	rm -rf runs _build
