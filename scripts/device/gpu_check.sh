#!/usr/bin/env bash
# shellcheck disable=SC2317  # the steps' functions run through "$SELF" __step
# The GPU checks on a GPU host (an H200 with CUDA 13 and a CUDA build of torch, but none of gacc's
# Debian packages): configure build-gpu against .device-deps (scripts/device/stage_deps.sh, carried
# with the working tree), build the GPU tests and `gacc`, run the `gpu` tests, compute-sanitizer's
# memcheck and racecheck, and `gacc bench accumulate`.
#
#   bash scripts/device/gpu_check.sh [all|build|test]     (from the repository root)
#
# build: configure and build; test: the rest, in the build that `build` left. A device command may
# run 10 minutes and each invocation stops starting steps at GACC_GPU_DEADLINE_S (those left are
# reported as failed, out of time): `build` then `test` in two calls keeps each within (the test
# steps' own limits add up to 510 s), `all` in one call fits only when the build is quick. Every log goes to $OUT
# (./gpu-out when unset), with summary.txt. Each step prints a header and its exit status; a
# failing step does not stop the others, and the script exits 1 if any failed. Without a GPU (a
# dry run), the steps that need one are reported as skipped.
#
# Environment: OUT, JOBS (16), GACC_TORCH_PYTHON (python3), GACC_GPU_BUILD_DIR (build-gpu),
# GACC_GPU_DEADLINE_S (seconds this invocation may take in all: 540), GACC_GPU_TARGETS (the targets
# to build, space-separated: the GPU tests and gacc), GACC_GPU_CMAKE_ARGS (more configure arguments,
# space-separated).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
SELF=(bash "$ROOT/scripts/device/gpu_check.sh")
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=${GACC_GPU_BUILD_DIR:-build-gpu}
JOBS=${JOBS:-16}
DEPS=$ROOT/.device-deps
DEADLINE_S=${GACC_GPU_DEADLINE_S:-540}
START=$SECONDS
PY=$(command -v "${GACC_TORCH_PYTHON:-python3}" || echo "${GACC_TORCH_PYTHON:-python3}")
TARGETS=(gacc_cuda_tests gacc_nccl_tests gacc_nccl_multi_gpu_tests gacc_tensor_accumulator_gpu_tests
         gacc_torch_gpu_recipes_tests gacc_nccl_backend_gpu_tests gacc)
if [[ -n ${GACC_GPU_TARGETS:-} ]]; then read -r -a TARGETS <<<"$GACC_GPU_TARGETS"; fi
EXTRA_CMAKE_ARGS=()
if [[ -n ${GACC_GPU_CMAKE_ARGS:-} ]]; then read -r -a EXTRA_CMAKE_ARGS <<<"$GACC_GPU_CMAKE_ARGS"; fi

if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
# Whether a GPU is here: without one, the steps that need it are skipped rather than failed.
HAVE_GPU=${GACC_HAVE_GPU:-}
if [[ -z $HAVE_GPU ]]; then
  HAVE_GPU=0
  if nvidia-smi -L 2>/dev/null | grep -q '^GPU ' ||
     "$PY" -c 'import sys, torch; sys.exit(torch.cuda.device_count() == 0)' 2>/dev/null; then
    HAVE_GPU=1
  fi
  export GACC_HAVE_GPU=$HAVE_GPU  # for the steps' children
fi

STEP_NAMES=()
STEP_RESULTS=()
FAILED=0

record() {  # record NAME RESULT
  STEP_NAMES+=("$1")
  STEP_RESULTS+=("$2")
  [[ $2 == FAIL* ]] && FAILED=1
  return 0
}

# step NAME CAP_S NEEDS_GPU COMMAND...: runs COMMAND with its output in $OUT/NAME.log, at most CAP_S
# seconds and never past the deadline. Without a GPU, a NEEDS_GPU step that fails is skipped (and
# so is every test that exits 77).
step() {
  local name=$1 cap=$2 needs_gpu=$3
  shift 3
  local log=$OUT/$name.log left=$((DEADLINE_S - (SECONDS - START)))
  echo
  echo "=== $name ($(date -u +%H:%M:%S), ${left}s left): $*"
  if ((left < 15)); then
    echo "--- $name: not run, out of time (GACC_GPU_DEADLINE_S=$DEADLINE_S)"
    record "$name" "FAIL (not run: out of time)"
    return 0
  fi
  ((cap > left)) && cap=$left
  local t0=$SECONDS rc
  timeout --kill-after=15 "$cap" "$@" >"$log" 2>&1
  rc=$?
  local result
  if ((rc == 0)); then
    result=PASS
  elif ((rc == 124 || rc == 137)); then
    result="FAIL (timed out after ${cap}s)"
  elif ((rc == 77)); then
    result="SKIP (exit 77: no GPU)"
  elif ((needs_gpu && !HAVE_GPU)); then
    result="SKIP (no GPU here; exit $rc)"
  else
    result="FAIL (exit $rc)"
  fi
  local skipped
  skipped=$(grep -c '(Skipped)$' "$log")
  [[ $result == PASS && $skipped != 0 ]] && result="PASS ($skipped tests skipped)"
  if [[ $result == PASS* ]]; then tail -n 25 "$log"; else tail -n 60 "$log"; fi
  echo "--- $name: exit $rc: $result in $((SECONDS - t0))s (log: $log)"
  record "$name" "$result"
}

# NCCL: the toolkit's when it has one (CMake finds it), else a pip package's (nvidia-nccl-*),
# whose library has only a versioned name that find_library does not match.
nccl_args() {
  local cuda_inc
  cuda_inc=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")/include
  [[ -f $cuda_inc/nccl.h || -f /usr/include/nccl.h ]] && return 0
  local site header lib
  for site in $("$PY" -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null); do
    header=$(find "$site/nvidia" -path '*include/nccl.h' 2>/dev/null | head -1)
    [[ -n $header ]] || continue
    lib=$(find "$(dirname "$(dirname "$header")")" -name 'libnccl.so*' 2>/dev/null | sort | head -1)
    [[ -n $lib ]] && echo "-DGACC_NCCL_INCLUDE_DIR=$(dirname "$header") -DGACC_NCCL_LIBRARY=$lib" && return 0
  done
}

configure() {
  [[ -d $DEPS/include ]] || { echo "no $DEPS: run scripts/device/stage_deps.sh and carry .device-deps"; return 1; }
  local torch_prefix
  torch_prefix=$("$PY" -c "import torch.utils; print(torch.utils.cmake_prefix_path)") ||
    { echo "$PY cannot import torch"; return 1; }
  local arch=$DEPS/lib/x86_64-linux-gnu/cmake
  # shellcheck disable=SC2046
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGACC_TORCH_PYTHON="$PY" \
    -DCMAKE_PREFIX_PATH="$DEPS;$torch_prefix" \
    -DCMAKE_INCLUDE_PATH="$DEPS/include" -DCMAKE_LIBRARY_PATH="$DEPS/lib/x86_64-linux-gnu;$DEPS/lib" \
    -DBoost_DIR="$arch/Boost-1.74.0" -Dboost_headers_DIR="$arch/boost_headers-1.74.0" \
    -Drapidcheck_DIR="$arch/rapidcheck" -Dbenchmark_DIR="$arch/benchmark" \
    -DCatch2_DIR="$DEPS/lib/cmake/Catch2" -DCLI11_DIR="$DEPS/share/cmake/CLI11" \
    -Dnlohmann_json_DIR="$DEPS/share/cmake/nlohmann_json" -DGACC_GLOO_INCLUDE_DIR="$DEPS/include" \
    ${CUDACXX:+-DCMAKE_CUDA_COMPILER="$CUDACXX"} $(nccl_args) "${EXTRA_CMAKE_ARGS[@]}" || return 1
  echo
  echo "where the packages came from:"
  grep -E '^(Boost|boost_headers|rapidcheck|benchmark|Catch2|CLI11|nlohmann_json|Torch|CUDAToolkit|GACC_GLOO_INCLUDE|GACC_NCCL|GACC_WITH_CUDA|GACC_CCACHE|CMAKE_CUDA_COMPILER:)[A-Za-z_]*:' \
    "$BUILD/CMakeCache.txt"
  grep -q '^GACC_WITH_CUDA:BOOL=ON' "$BUILD/CMakeCache.txt" || { echo "the CUDA path is not enabled (nvcc?)"; return 1; }
  local n
  n=$(ninja -C "$BUILD" -t commands gacc_cuda_tests 2>/dev/null | grep -c -- "-isystem $DEPS/include")
  echo "compile commands of gacc_cuda_tests with -isystem $DEPS/include: $n"
}

build() {
  local available=() missing=() t
  for t in "${TARGETS[@]}"; do
    if ninja -C "$BUILD" -t query "$t" >/dev/null 2>&1; then available+=("$t"); else missing+=("$t"); fi
  done
  ((${#missing[@]} == 0)) || echo "targets this configuration does not define (NCCL not found?): ${missing[*]}"
  echo "building: ${available[*]}"
  cmake --build "$BUILD" -j "$JOBS" --target "${available[@]}" || return 1
  ((${#missing[@]} == 0))
}

sanitize() {  # sanitize TOOL BINARY [ARGS...]
  local tool=$1 bin=$2
  shift 2
  command -v compute-sanitizer >/dev/null || { echo "compute-sanitizer not found"; return 1; }
  [[ -x $bin ]] || { echo "$bin not built"; return 1; }
  compute-sanitizer --tool "$tool" --error-exitcode 86 "$@" "$bin"
}

environment() {
  echo "HAVE_GPU=$HAVE_GPU  JOBS=$JOBS  python=$PY  OUT=$OUT"
  nvidia-smi || true
  nvcc --version || true
  compute-sanitizer --version || true
  cmake --version | head -1
  ninja --version
  "${CXX:-c++}" --version | head -1
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' || true
  du -sb "$DEPS" 2>/dev/null || echo "no $DEPS"
}

# A step's function runs in a child of this script (`timeout` runs programs, not shell functions).
if [[ ${1:-} == __step ]]; then
  shift
  "$@"
  exit
fi
PHASE=${1:-all}
case $PHASE in all | build | test) ;; *) echo "usage: $0 [all|build|test]" >&2; exit 2 ;; esac

step environment 30 0 "${SELF[@]}" __step environment
if [[ $PHASE == all || $PHASE == build ]]; then
  step configure 150 0 "${SELF[@]}" __step configure
  step build 470 0 "${SELF[@]}" __step build
fi
if [[ $PHASE == all || $PHASE == test ]]; then
  [[ -f $BUILD/CTestTestfile.cmake ]] || echo "no $BUILD/CTestTestfile.cmake: run the build phase first"
  step ctest-gpu 150 1 ctest --test-dir "$BUILD" -L gpu --output-on-failure --no-tests=error --timeout 120
  step memcheck-cuda-tests 120 1 "${SELF[@]}" __step sanitize memcheck "$BUILD/tests/gacc_cuda_tests" --leak-check full
  step racecheck-cuda-tests 120 1 "${SELF[@]}" __step sanitize racecheck "$BUILD/tests/gacc_cuda_tests"
  step memcheck-nccl-tests 60 1 "${SELF[@]}" __step sanitize memcheck "$BUILD/tests/gacc_nccl_tests"
  step bench-accumulate 60 1 "$BUILD/gacc" bench accumulate --json "$OUT/bench_accumulate.json"
fi

echo
echo "=== summary ($((SECONDS - START))s, GPU: $HAVE_GPU, logs in $OUT)"
for i in "${!STEP_NAMES[@]}"; do
  printf '%-22s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}"
done | tee "$OUT/summary.txt"
exit $FAILED
