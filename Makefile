# Two commands set everything up on a fresh machine:
#   make quickstart   installs into .venv and runs the whole pipeline on the synthetic default
#   make test         installs into .venv (plus a Mosquitto broker) and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install quickstart test lint mosquitto toolchains clean

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

quickstart: install toolchains
	$(VENV)/bin/caltech-edge quickstart $(ARGS)

# The isolated toolchains the suite uses (MXNet 1.9.1 needs numpy < 1.24, so it cannot live
# in .venv): built once per user cache with uv, reused afterwards. Tests never build them.
toolchains: install
	$(VENV)/bin/caltech-edge toolchain install mxnet

test: install mosquitto toolchains
	CALTECH_EDGE_TOOLCHAIN_AUTO_INSTALL=0 $(PY) -m pytest -q $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	# The device runtime, the core modules it imports and the CLI modules bundles ship stay
	# Python 3.8-compatible.
	cd src/caltech_edge && ../../$(VENV)/bin/vermin --target=3.8- --no-tips --violations \
	  runtime card.py errors.py _registry.py _io.py data/transforms.py data/imageio.py data/imageheader.py \
	  deploy cli/__init__.py cli/_common.py cli/runtime.py cli/_serve.py cli/deploy.py
	# Typed public API: the axes (frameworks, models, toolchains), config, card, registries.
	MYPYPATH=src $(VENV)/bin/mypy --ignore-missing-imports --follow-imports=silent \
	  -p caltech_edge.toolchains -p caltech_edge.frameworks -p caltech_edge.models \
	  -p caltech_edge.config -m caltech_edge -m caltech_edge.train -m caltech_edge.train.common \
	  -m caltech_edge.card -m caltech_edge.errors -m caltech_edge._registry -m caltech_edge.rundir \
	  -m caltech_edge.export.formats -m caltech_edge.export.pipeline -m caltech_edge.runtime.backends \
	  -p caltech_edge.deploy -p caltech_edge.cloud

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
