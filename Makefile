# gacc: two commands on a fresh Debian machine (as root):
#   make run    set up what is missing, build, run `gacc run`
#   make test   set up what is missing, build, run every test
# Developer targets: make setup | configure | build | sanitize | fuzz | clean

BUILD_DIR   ?= build
BUILD_TYPE  ?= Release
JOBS        ?= $(shell nproc)
GACC_TORCH_PYTHON ?=
TORCH_PYTHON = $(if $(GACC_TORCH_PYTHON),$(GACC_TORCH_PYTHON),$(CURDIR)/.venv/bin/python)
RUN_ARGS    ?=
CTEST_ARGS  ?=

SANITIZE_DIR ?= build-sanitize
# handle_segv=0: the tests crash a rank on purpose (--inject-fault crash) and expect SIGSEGV's
# death, not AddressSanitizer's report and exit status.
SANITIZE_ASAN_OPTIONS ?= detect_leaks=1:handle_segv=0

.PHONY: run test setup configure build sanitize fuzz clean

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

# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer, in its own build tree
# (docs/hardening.md).
sanitize: setup
	@if [ ! -f $(SANITIZE_DIR)/build.ninja ]; then \
	  cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGACC_SANITIZE=ON \
	    -DGACC_TORCH_PYTHON=$(TORCH_PYTHON); \
	fi
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	cd $(SANITIZE_DIR) && ASAN_OPTIONS=$(SANITIZE_ASAN_OPTIONS) UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Every fuzz target for FUZZ_SECONDS with a fresh random seed (make test runs each for 20 s with a
# fixed seed); a finding prints its input, to be fixed and added to fuzz/corpus/.
FUZZ_SECONDS ?= 600
fuzz: build
	GACC_FUZZ_SEED=0 tests/fuzz/run_fuzzer.sh $(BUILD_DIR)/fuzz-build/fuzz/gacc_fuzz_scenario_json \
	  fuzz/corpus/scenario_json $(FUZZ_SECONDS)
	GACC_FUZZ_SEED=0 tests/fuzz/run_fuzzer.sh $(BUILD_DIR)/fuzz-build/fuzz/gacc_fuzz_case_file \
	  fuzz/corpus/case_file $(FUZZ_SECONDS) -detect_leaks=0
	GACC_FUZZ_SEED=0 tests/fuzz/run_fuzzer.sh $(BUILD_DIR)/fuzz-build/fuzz/gacc_fuzz_result_file \
	  fuzz/corpus/result_file $(FUZZ_SECONDS) -detect_leaks=0
	GACC_FUZZ_SEED=0 tests/fuzz/run_fuzzer.sh $(BUILD_DIR)/fuzz-build/fuzz/gacc_fuzz_differential_files \
	  fuzz/corpus/differential_files $(FUZZ_SECONDS) -detect_leaks=0

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR)
