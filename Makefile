# unlearn-bench: `make demo` sets up and runs the default suite; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUITE ?= fmnist-quick
# one pytest worker per core; a test file stays on one worker (its module fixtures are built once)
PYTEST_ARGS ?= -n auto --dist loadfile

.PHONY: demo test setup setup-test data browser sandbox clean-results lint

demo: setup data sandbox  ## set up, run the default suite, render the leaderboard
	$(BIN)/unlearn-bench run --suite $(SUITE) --jobs auto
	$(BIN)/unlearn-bench leaderboard --suite $(SUITE)

test: setup-test data browser sandbox  ## set up and run the whole test suite (slow end-to-end tests included)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(BIN)/.installed
setup-test: $(BIN)/.installed-test

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $@

data:  ## Fashion-MNIST from Debian's dataset-fashion-mnist package, when it is missing and we can install it
	@sh scripts/ensure_apt.sh /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz dataset-fashion-mnist \
	  || echo "Fashion-MNIST missing: install the Debian package dataset-fashion-mnist, or set UNLEARN_BENCH_DATA to a folder with its IDX files"

sandbox:  ## bubblewrap, the filesystem and network sandbox of method workers (docs/reliability.md)
	@sh scripts/ensure_apt.sh /usr/bin/bwrap bubblewrap \
	  || echo "bubblewrap missing: method runs are NOT sandboxed (rows say sandbox=none); install the bubblewrap package"

browser:  ## headless chromium + chromedriver for the HTML leaderboard test
	@sh scripts/ensure_apt.sh /usr/bin/chromedriver chromium-driver || echo "chromium-driver missing: the browser test will be skipped"

lint:
	$(BIN)/ruff check harness baselines methods leaderboard tests bench examples

clean-results:
	rm -rf results site
