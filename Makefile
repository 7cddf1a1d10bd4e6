# gacc: two commands on a fresh Debian machine (as root):
#   make run    set up what is missing, build, run `gacc run`
#   make test   set up what is missing, build, run every test
# Developer targets: make setup | configure | build | clean

BUILD_DIR   ?= build
BUILD_TYPE  ?= Release
JOBS        ?= $(shell nproc)
GACC_TORCH_PYTHON ?=
TORCH_PYTHON = $(if $(GACC_TORCH_PYTHON),$(GACC_TORCH_PYTHON),$(CURDIR)/.venv/bin/python)
RUN_ARGS    ?=
CTEST_ARGS  ?=

.PHONY: run test setup configure build clean

run: build
	$(BUILD_DIR)/gacc run $(RUN_ARGS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

setup:
	GACC_TORCH_PYTHON=$(GACC_TORCH_PYTHON) scripts/setup.sh

configure: setup
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	    -DGACC_TORCH_PYTHON=$(TORCH_PYTHON); \
	fi

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

clean:
	rm -rf $(BUILD_DIR)
