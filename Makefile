# caesweep: make install | make sweep | make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install sweep test test-fast versions lint clean

install: $(STAMP)

# Re-installs only when the project metadata changes, so `make test` stays quick once installed.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The default sweep: space `quick` on the embedded dataset, its whole grid (3 colour spaces x skips or not),
# every trial trained for the same epochs so that the comparison is fair; then its leaderboard and report.
STUDY ?= quick-$(shell date +%Y%m%d-%H%M%S)
sweep: install
	$(PY) -m search run --space quick --sampler grid --scheduler none --study $(STUDY)
	$(PY) -m analysis.report --study $(STUDY)

# Two test processes (TEST_WORKERS=0: one); a file's tests stay together, so its shared fixtures start once.
TEST_WORKERS ?= 2
test: install versions lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The inner loop: every test not marked slow (no real sweeps, clusters or long training); `make test` and CI run all.
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# The versions of the dependencies that can break a study, as resolved here, with their bounds (a warning for one
# outside them; tests/test_versions.py then fails).
versions: install
	@$(PY) -m search.compat

lint: install
	$(PY) -m ruff check caesweep cae spaces search results analysis benchmarks tests
	$(PY) -m mypy caesweep cae spaces search results analysis benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
