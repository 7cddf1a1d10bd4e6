#!/usr/bin/env bash
# Installs what gacc needs, idempotently: Debian packages, then LibTorch from the PyPI `torch`
# wheel in a project-local virtual environment (.venv). Quick when everything is present.
#
#   scripts/setup.sh            install what is missing
#   GACC_TORCH_PYTHON=python3   use that interpreter's torch instead of .venv (a GPU host)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
torch_pin="2.11.0"

packages=(
  build-essential cmake ninja-build ccache python3 python3-venv
  catch2 librapidcheck-dev libboost-dev libcli11-dev nlohmann-json3-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  libgloo-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 4
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A GPU host brings its own torch: use it as it is.
if [ -n "${GACC_TORCH_PYTHON:-}" ]; then
  "$GACC_TORCH_PYTHON" -c 'import torch' || { echo "setup: $GACC_TORCH_PYTHON has no torch" >&2; exit 4; }
  exit 0
fi

torch_version() { "$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null; }

# The Python package (python/: the stack's side of gacc) into .venv, editable, with its pytest
# plugin registered: once per checkout. Then the stacks its adapters drive, at the tested versions.
install_package() {
  "$venv/bin/python" - "$root/python" <<'PY' 2>/dev/null ||
import os, sys
from importlib import metadata
import gacc
here = os.path.realpath(gacc.__file__).startswith(os.path.realpath(sys.argv[1]) + os.sep)
plugin = any(e.value == "gacc.pytest_plugin" for e in metadata.entry_points(group="pytest11"))
sys.exit(0 if here and plugin else 1)
PY
  {
    echo "setup: installing the Python package gacc (python/, editable) into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$root/python" ||
      echo "setup: WARNING: the package gacc could not be installed; the examples use python/ from the checkout" >&2
  }
  "$venv/bin/python" - "$root/python/requirements-stacks.txt" <<'PY' 2>/dev/null && return 0
import sys
from importlib import metadata
pins = [line.split("#")[0].strip() for line in open(sys.argv[1])]
for name, version in (pin.split("==") for pin in pins if pin):
    if metadata.version(name) != version:
        sys.exit(1)
PY
  echo "setup: installing the stacks the adapters drive (python/requirements-stacks.txt) into $venv"
  # torch stays the version LibTorch was taken from
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/python/requirements-stacks.txt" "torch==$(torch_version)" ||
    echo "setup: WARNING: the pinned stacks could not be installed; the adapters' tests will be skipped" >&2
}

have=$(torch_version || true)
if [ -n "$have" ]; then
  install_package
  exit 0
fi
if dpkg-query -W -f='${Status}' libtorch-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "setup: WARNING: using Debian's libtorch-dev (the fallback), not torch==$torch_pin" >&2
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating the virtual environment $venv"
  /usr/bin/python3 -m venv "$venv"
fi
echo "setup: installing torch==$torch_pin into $venv (LibTorch for C++, and the Python examples)"
if ! "$venv/bin/pip" install -q --disable-pip-version-check "torch==$torch_pin" numpy; then
  echo "setup: torch==$torch_pin is not installable here; trying the newest torch 2.x" >&2
  if ! "$venv/bin/pip" install -q --disable-pip-version-check "torch>=2,<3" numpy; then
    echo "setup: WARNING: no torch 2.x wheel could be installed from PyPI." >&2
    echo "setup: WARNING: falling back to Debian's libtorch-dev 1.13 (CPU only); see docs/developing.md, 'Dependencies'." >&2
    if [ "$(id -u)" -ne 0 ]; then echo "setup: installing libtorch-dev needs root" >&2; exit 4; fi
    apt-get install -y -qq --no-install-recommends libtorch-dev
    exit 0
  fi
  echo "setup: WARNING: using torch $(torch_version), not the pinned $torch_pin" >&2
fi
echo "setup: torch $(torch_version) ready"
install_package
