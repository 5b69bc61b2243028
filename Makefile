# Two entry points for a fresh machine (Python 3.11, pip, gcc): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo smoke test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## main job: synthetic 441-patient cohort -> 8 ROI datasets -> 32 models -> notebooks -> book in _build/html
demo: $(STAMP)
	$(BIN)/npc-study run --profile demo

## the same on the CI profile (a few minutes)
smoke: $(STAMP)
	$(BIN)/npc-study run --profile smoke

## the test suite (CI runs exactly this)
test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py

clean:
	rm -rf runs _build book/executed
