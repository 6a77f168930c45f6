# adatok: `make demo` runs the main job on the bundled sample photos, `make test` runs the suite,
# `make fuzz` runs each fuzz target of fuzz/targets.py for FUZZ_SECONDS (docs/reliability.md).
# Both install everything first (Debian packages when missing, then .venv with all extras).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out/demo
export GOMP_SPINCOUNT ?= 1000

.PHONY: install demo test bench fuzz clean

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

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= container crafted image stepper serve_image serve_atk
FUZZ_OUT ?= out/fuzz

# Each target in turn (fuzz/campaign.py): new inputs go to $(FUZZ_OUT)/TARGET (the checked-in seeds
# stay as they are), failing ones to $(FUZZ_OUT)/TARGET-crash-* (or -timeout-, -oom-): a hang is
# over 5 s, running out of memory is over 2 GB. The numbers: $(FUZZ_OUT)/summary.json.
fuzz: install
	$(PY) fuzz/campaign.py --seconds $(FUZZ_SECONDS) --out $(FUZZ_OUT) $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) out .pytest_cache
