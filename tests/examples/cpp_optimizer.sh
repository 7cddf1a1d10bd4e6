#!/usr/bin/env bash
# cpp_optimizer.sh BUILD_DIR PYTHON CMAKE: examples/cpp-optimizer, built and run for real against
# the INSTALLED gacc package, as a user's project builds it: `cmake --install` into a temporary
# prefix, the prefix moved elsewhere (the package must be relocatable), then the example configured
# with find_package(gacc) and find_package(Catch2), built, and its Catch2 test run — the correct
# Lion passes, the Lion that works inside backward is caught (the test asserts both).
set -eu
build_dir=$1
python=$2
cmake=${3:-cmake}
example=$(cd "$(dirname "$0")/../../examples/cpp-optimizer" && pwd)
[ -x "$python" ] || { echo "FAIL: no Python at '$python' (configure with GACC_TORCH_PYTHON)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$cmake" --install "$build_dir" --prefix "$work/staged" > "$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
[ -f "$work/staged/lib/cmake/gacc/gaccConfig.cmake" ] || fail "no gaccConfig.cmake in the installed package"
[ -f "$work/staged/include/gacc/check_optimizer.h" ] || fail "no public header in the installed package"
# Relocatable: nothing may point back into the staging prefix or the build tree.
mv "$work/staged" "$work/prefix"
if grep -rqs -e "$work/staged" -e "$build_dir" "$work/prefix/lib/cmake/gacc"; then
  fail "the package's CMake files name the staging prefix or the build tree"
fi
# Users need the public headers only: gacc's private headers are not installed.
[ ! -e "$work/prefix/include/core" ] && [ ! -e "$work/prefix/include/properties" ] || fail "private headers installed"

torch_prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
launcher=()
if command -v ccache > /dev/null; then
  # The temporary prefix differs per run: paths under it are rewritten relative, so ccache hits.
  export CCACHE_BASEDIR=$work
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
"$cmake" -S "$example" -B "$work/build" "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix;$torch_prefix" > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; fail "configuring the example against the installed package"; }
"$cmake" --build "$work/build" -j 2 > "$work/build.log" 2>&1 || { tail -50 "$work/build.log"; fail "building the example"; }
OMP_NUM_THREADS=1 "$work/build/lion_test" --success > "$work/test.log" 2>&1 ||
  { tail -80 "$work/test.log"; fail "the example's test"; }
grep -q "All tests passed" "$work/test.log" || { tail -20 "$work/test.log"; fail "the example's test did not report success"; }
# Every check is a counted Catch2 assertion (3 for Lion, 7 about the broken one): none swallowed by
# a CHECK macro that is not Catch2's (LibTorch defines one).
assertions=$(sed -n 's/^All tests passed (\([0-9]*\) assertions.*/\1/p' "$work/test.log")
[ "${assertions:-0}" -ge 10 ] || fail "only ${assertions:-0} Catch2 assertions counted, expected at least 10"
# The broken Lion's failure was asserted by the test; its table is in the log.
grep -Eq "^ +step +fail " "$work/test.log" || { tail -40 "$work/test.log"; fail "no failing step row for the broken Lion"; }
echo "examples/cpp-optimizer: built against the relocated package; Lion passes, Lion-in-backward is caught"
