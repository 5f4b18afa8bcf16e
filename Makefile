# Zero to GPT. The two commands a newcomer needs:
#   make book   set up, then build the website into _build/html/
#   make test   set up, then run the unit tests and execute every chapter
# Both create .venv when it is missing and are safe to run again.

PYTHON ?= python3
# The torch release the book is tested with. Override for another build, e.g.
#   make test TORCH=torch  (the newest release from PyPI)
TORCH ?= torch==2.13.0

VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.installed
MATHJAX := book/_vendor/mathjax/tex-mml-chtml.js
# Which torch the venv was set up with: a change of TORCH sets it up again.
TORCH_STAMP := $(VENV)/.torch-request
# What the execution cache cannot see: the library's code and the profile.
# Hashed with Python's hashlib, since macOS has no sha256sum.
LIB_STATE = $$($(BIN)/python -c 'import hashlib, pathlib; print(hashlib.sha256(b"".join(p.read_bytes() for p in sorted(pathlib.Path("lib/zero2gpt").glob("*.py")))).hexdigest()[:16])')-$${ZERO2GPT_PROFILE:-default}

.PHONY: book test tangle check-tangle serve clean setup browser bench FORCE

setup: $(READY)

# Rewritten only when TORCH differs from the last set-up, so that make sees a change.
$(TORCH_STAMP): FORCE
	@mkdir -p $(VENV)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(TORCH)" ]; then echo "$(TORCH)" > $@; fi

$(READY): pyproject.toml $(TORCH_STAMP)
	@test -x $(BIN)/python || { \
	  $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "zero2gpt needs Python 3.10 or newer, and $(PYTHON) is " + sys.version.split()[0] + ": run make with PYTHON=python3.11 (or another 3.10+)")' && \
	  { $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "$(PYTHON) cannot make a virtual environment (no venv/ensurepip): on Debian or Ubuntu, apt-get install python3-venv"; exit 1; }; } && \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	touch $@

$(MATHJAX): package.json
	@command -v npm >/dev/null || { echo "make book needs Node.js and npm, to serve MathJax from the site itself"; exit 1; }
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	rm -rf book/_vendor/mathjax
	mkdir -p book/_vendor/mathjax
	cp -r node_modules/mathjax/es5/. book/_vendor/mathjax/
	touch $@

tangle: $(READY)
	$(BIN)/python book/tangle.py

check-tangle: $(READY)
	$(BIN)/python book/tangle.py --check

test: check-tangle
	$(BIN)/python -m pytest

# Speed and memory targets, as ratios measured in one run: the gradient engines (benchmarks/gradients.py says
# which), then the GPT's training, writing and memory (zero2gpt bench, on every core).
bench: check-tangle
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python benchmarks/gradients.py
	$(BIN)/python -m zero2gpt bench

book: check-tangle $(MATHJAX)
	@state="$(LIB_STATE)"; \
	if [ "$$state" != "$$(cat _build/.lib-state 2>/dev/null)" ]; then \
	  echo "lib/ or the profile changed since the last build: clearing the execution cache"; \
	  rm -rf _build; \
	fi; \
	$(BIN)/jupyter-book build . --all -W --keep-going && \
	echo "$$state" > _build/.lib-state
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The site tests (tests/test_site.py) need a Chromium-like browser; they skip without one.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then \
	  echo "A Chromium-like browser is installed."; \
	else \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; \
	fi

serve:
	@test -f _build/html/index.html || { echo "No site yet: run 'make book' first."; exit 1; }
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

clean:
	rm -rf _build book/_vendor
