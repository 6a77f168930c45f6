# adatok: `make demo` runs the main job on the bundled sample photos, `make test` runs the suite.
# Both install everything first (Debian packages when missing, then .venv with all extras).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out/demo
export GOMP_SPINCOUNT ?= 1000

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system.sh Makefile
	bash scripts/install-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[eval,neural,serve,scale,dev]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/adatok demo --out $(OUT)
	@echo "The web page (slider over the tokens, regions, generation): $(VENV)/bin/adatok serve, then open http://127.0.0.1:8000/"

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/wavelet_speed.py

clean:
	rm -rf $(VENV) out .pytest_cache
