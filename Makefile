# Two commands do everything on a fresh machine, set-up included:
#   make bench   installs what is needed into .venv, then runs `python bench.py --all`
#   make test    installs what is needed into .venv, then runs the whole test suite (what CI runs)
# and, for the inner loop of development, `make test-fast`: the suite less the tests marked `slow`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: bench test test-fast install

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
# YOLOv5's source: the yolov5 package pins old versions of its own dependencies and ultralytics pulls in
# many more, so both come without their dependencies; the few modules their model code imports are in the
# `test` extra above.
	$(PY) -m pip install -q --no-deps yolov5==7.0.14 ultralytics==8.4.190
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(PY) bench.py --all

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"
