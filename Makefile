# Two commands set everything up on a fresh machine:
#   make quickstart   installs into .venv and runs the whole pipeline on the synthetic default
#   make test         installs into .venv (plus a Mosquitto broker) and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install quickstart test lint mosquitto clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# The MQTT tests start a real broker; install it from Debian when it is missing.
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || ls /usr/sbin/mosquitto >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq mosquitto; }

quickstart: install
	$(VENV)/bin/caltech-edge quickstart $(ARGS)

test: install mosquitto
	$(PY) -m pytest -q $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	# The device runtime and the core modules it imports stay Python 3.8-compatible.
	cd src/caltech_edge && ../../$(VENV)/bin/vermin --target=3.8- --no-tips --violations \
	  runtime card.py errors.py _registry.py _io.py data/transforms.py deploy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
