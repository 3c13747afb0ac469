# Two commands set everything up on a fresh machine:
#   make demo   installs into .venv and runs the main job on built-in sample replays
#   make test   installs into .venv and runs the test suite
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/exphil: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[pipeline,cluster,dev]'
	touch $@

.PHONY: demo test lint browser
demo: $(BIN)/exphil
	$(BIN)/exphil demo

test: $(BIN)/exphil
	$(BIN)/python -m pytest

lint: $(BIN)/exphil
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# make browser   installs Debian's headless Chromium + chromedriver for the UI browser test (root)
browser:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver
