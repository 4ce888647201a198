# The two set-up commands: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint types unit tools faults soak mutate bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The example workspace is this repository: nerve.yaml is a copy of nerve.yaml.example (refreshed
# when the example changes), data/ and logs/ stay out of git.
nerve.yaml: nerve.yaml.example
	cp nerve.yaml.example nerve.yaml

run: $(STAMP) nerve.yaml
	$(BIN)/nerve --root . validate
	$(BIN)/nerve --root . dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

# Real tools the tests drive, installed when missing (a fresh machine has only python3).
tools:
	@command -v strace >/dev/null || (apt-get update -qq && apt-get install -y -qq strace >/dev/null)
	@command -v faketime >/dev/null || (apt-get update -qq && apt-get install -y -qq faketime >/dev/null)
	@command -v sqlite3 >/dev/null || (apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null)
	@ldconfig -p | grep -q 'libfuse\.so\.2 ' || (apt-get update -qq && apt-get install -y -qq libfuse2 >/dev/null)

# Four workers on two cores: most tests wait on processes (sleeps, workers, the daemon), so the
# suite takes about a third as long as one worker.
unit: $(STAMP) tools
	$(BIN)/pytest -n 4

test: lint types unit

# The fault-injection suite at full counts (thousands of fuzzed lines, 1,000 acknowledged runs
# through daemon kills, 50 worker kills, 250 power cuts (~25 min), ...), with the soak at its full
# load for a minute (its hours are `make soak`'s). `make test` runs each of them short, with the
# same assertions.
faults: $(STAMP) tools
	NERVE_FULL=1 NERVE_SOAK_SECONDS=60 $(BIN)/pytest -n 2 tests/reliability

# The soak for 6 hours (NERVE_SOAK_SECONDS=7200 make soak: two hours), a line every 10 minutes.
soak: $(STAMP)
	NERVE_FULL=1 $(BIN)/pytest -s tests/reliability/test_soak.py

# Break each promise of tests/mutation/catalogue.py in turn and see whether its tests notice
# (in place: the files it mutates must be committed). Prints the table; fails if one survives.
mutate: $(STAMP) tools
	$(BIN)/python tests/mutation/run.py

# Benchmarks, each against its baseline in the same run; the table goes to BENCHMARKS.md and the
# figures to bench/results/<timestamp>.json. `make bench` takes under 10 minutes, bench-quick 2.
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP) bench/peers/requirements.txt
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	rm -rf $(VENV)/peers
	$(BIN)/python -m pip install --quiet --target $(VENV)/peers -r bench/peers/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
