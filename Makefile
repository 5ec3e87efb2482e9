# Two commands do everything on a fresh machine, set-up included:
#   make bench   installs what is needed into .venv, then runs `python bench.py --all`
#   make test    installs what is needed into .venv, then runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: bench test install

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(PY) bench.py --all

test: $(STAMP)
	$(PY) -m pytest -q
