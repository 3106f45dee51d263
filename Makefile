# imagewright: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
# Both install what they need (as root, on Debian or Ubuntu) and leave the package in .venv/.

VENV        := .venv
BIN         := $(VENV)/bin
PYTHON      ?= python3
# What imagewright itself needs; the tests and benchmarks also judge its output with other tools.
APT_PACKAGES := mmdebstrap bubblewrap util-linux libseccomp2 python3-venv ca-certificates zstd git \
                slirp4netns
TOOL_PACKAGES := skopeo umoci podman runc docker-registry apache2-utils docker.io redis-server \
                 chromium
test bench: APT_PACKAGES += $(TOOL_PACKAGES)
export DEBIAN_FRONTEND := noninteractive

.PHONY: setup system-packages demo test unit lint format bench clean

setup: system-packages $(BIN)/.installed
	@# bytecode up front: containers import our runtime read-only and cannot write it
	@$(BIN)/python -m compileall -q src > /dev/null

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/imagewright build examples/quickstart.py
	$(BIN)/imagewright shell examples/quickstart.py --cmd \
	  'python --version && python -m pip list && echo "GREETING=$$GREETING" && git --version'
	$(BIN)/imagewright run examples/functions.py
	$(BIN)/imagewright run examples/functions.py::square --x 3

lint: setup
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy

# unit: pure tests, as any user, no network, in seconds; test: lint, then unit and integration
# tests (real images, real sandboxes: root)
unit: setup
	$(BIN)/pytest -q tests/unit

test: lint
	$(BIN)/pytest -q tests/unit tests/integration

format: setup
	$(BIN)/ruff format src tests examples benchmarks
	$(BIN)/ruff check --fix src tests examples benchmarks

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
