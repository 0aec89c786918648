# The two commands of the README:
#   make report   build the virtualenv, get the data if needed, run the notebooks into reports/$(PROFILE)/
#                 (cpu: their outputs are copied into notebooks/ too)
#   make test     build the virtualenv, run the whole test suite (package + notebooks with nbval)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
PYTEST_ARGS ?=
# make test runs the suite in 2 worker processes (pytest-xdist), one test file per worker at a time, so a file's
# shared fixtures (the smoke report, the tiny run) are built once per worker; PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
# Exact versions CI tests (tensorflow, the CPU build of torch) on Linux x86_64 only;
# elsewhere pip resolves the ranges of pyproject.toml for the platform. CONSTRAINTS= turns it off.
CONSTRAINTS ?= $(if $(filter Linux-x86_64,$(shell uname -s)-$(shell uname -m)),constraints/ci-linux-x86_64.txt,)
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)

.PHONY: report test venv data clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PIP_C) -e ".[lite0,lite2,test,jax,hands]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (aslnb)" >/dev/null
	touch $@

# Uses $$ASLNB_DATA when set; otherwise downloads the frames the report used (sha256-checked
# against the shipped manifest) into the user cache (needs internet).
data: venv
	@if [ -n "$$ASLNB_DATA" ]; then echo "data: using ASLNB_DATA=$$ASLNB_DATA"; \
	else $(VENV)/bin/aslnb data fetch; fi

# The cpu report's outputs are also what notebooks/ shows (tools/refresh_notebooks.py).
report: venv data
	$(VENV)/bin/aslnb report --profile $(PROFILE)
	@if [ "$(PROFILE)" = cpu ]; then $(PY) tools/refresh_notebooks.py; fi

test: venv
	$(PY) -m pytest $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile,) $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
