#!/usr/bin/env bash
# Stages into .device-deps/ what a GPU host lacks of gacc's Debian dependencies (Catch2 v2,
# RapidCheck, the Boost headers, CLI11, nlohmann-json, Google Benchmark, Gloo's headers), to be
# carried there with the working tree (scripts/device/gpu_check.sh uses it).
#
#   scripts/device/stage_deps.sh [--boost-closure]
#
# Runs on the Debian machine after a full build of build/ (BUILD_DIR= to use another): the headers
# are those that build's dependency records name (`ninja -t deps`), kept when a package above owns
# them, plus the whole header set of every package but Boost (small, and another compiler may take
# other branches) and all of boost/config/. --boost-closure adds every Boost header that a textual
# #include closure of those reaches (16 MB instead of 5; for a device whose compiler needs more).
# .device-deps mirrors /usr: include/, lib/, lib/x86_64-linux-gnu/, share/cmake/; the packages'
# CMake configs are rewritten to locate everything relative to themselves.
# Gloo is not found with find_package (implementations/distributed: find_path of its headers, and
# LibTorch carries Gloo's code), so only its headers are staged.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
DEST=$ROOT/.device-deps
BOOST_CLOSURE=0
for arg in "$@"; do
  case $arg in
    --boost-closure) BOOST_CLOSURE=1 ;;
    *) echo "usage: $0 [--boost-closure]" >&2; exit 2 ;;
  esac
done

# The Debian packages a GPU host lacks (the headers' owners must be among these).
PACKAGES=(catch2 librapidcheck-dev libboost1.74-dev libcli11-dev nlohmann-json3-dev libbenchmark-dev libgloo-dev)
# Their link-time files and CMake configs (Gloo's are not needed, see above).
LINKED_PACKAGES=(catch2 librapidcheck-dev libboost1.74-dev libcli11-dev nlohmann-json3-dev libbenchmark-dev)
# Packages staged whole (headers): all but Boost.
WHOLE_PACKAGES=(catch2 librapidcheck-dev libcli11-dev nlohmann-json3-dev libbenchmark-dev libgloo-dev)

for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || { echo "stage_deps: package $p is not installed (make setup)" >&2; exit 1; }
done
[[ -f $BUILD_DIR/build.ninja ]] || { echo "stage_deps: no $BUILD_DIR/build.ninja: build first (make build)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. Every /usr/include header the build used, from ninja's dependency log.
ninja -C "$BUILD_DIR" -t deps | sed -n 's#^[[:space:]]\+\(/usr/include/.*\)$#\1#p' | sort -u >"$tmp/used"
[[ -s $tmp/used ]] || { echo "stage_deps: $BUILD_DIR records no /usr/include header: is it built?" >&2; exit 1; }
# Owner of each (dpkg -S: "pkg[:arch]: /path"); keep those of PACKAGES.
xargs -a "$tmp/used" dpkg -S 2>/dev/null | sed 's#^\([^:,]*\)\(:[a-z0-9_]*\)\?: #\1 #' >"$tmp/owners" || true
printf '%s\n' "${PACKAGES[@]}" >"$tmp/wanted"
awk 'NR==FNR { want[$1]=1; next } ($1 in want) { print $2 }' "$tmp/wanted" "$tmp/owners" | sort -u >"$tmp/headers"
used_count=$(wc -l <"$tmp/used"); kept_count=$(wc -l <"$tmp/headers")

# 2. Whole header sets of the small packages, and boost/config/.
for p in "${WHOLE_PACKAGES[@]}"; do
  dpkg -L "$p" | grep '^/usr/include/' | while read -r f; do [[ -f $f ]] && echo "$f"; done
done >>"$tmp/headers"
find /usr/include/boost/config -type f >>"$tmp/headers"
if [[ $BOOST_CLOSURE == 1 ]]; then
  grep '^/usr/include/boost/' "$tmp/headers" | python3 -c '
import os, re, sys
inc = re.compile(r"^\s*#\s*include\s*[<\"](boost/[^>\"]+)[>\"]", re.M)
seen, stack = set(), [l.strip() for l in sys.stdin]
while stack:
    f = stack.pop()
    if f in seen or not os.path.isfile(f):
        continue
    seen.add(f)
    stack += ["/usr/include/" + m for m in inc.findall(open(f, errors="replace").read())]
print("\n".join(sorted(seen)))' >"$tmp/closure"
  cat "$tmp/closure" >>"$tmp/headers"
fi
sort -u -o "$tmp/headers" "$tmp/headers"

# 3. Link-time files and CMake configs of the packages, from their file lists.
for p in "${LINKED_PACKAGES[@]}"; do
  dpkg -L "$p" | grep -E '^/usr/(lib|share)/.*(\.cmake|\.a|\.so(\.[0-9a-z.]+)?)$' | grep -v '/pkgconfig/' |
    while read -r f; do [[ -e $f ]] && echo "$f"; done
done >"$tmp/libs"
# A development symlink (libbenchmark.so -> libbenchmark.so.1debian -> libbenchmark.so.1.7.1) stages
# every name of its chain: the CMake targets name the last.
while read -r f; do
  while [[ -L $f ]]; do
    t=$(readlink "$f"); [[ $t == /* ]] || t=$(dirname "$f")/$t
    f=$(realpath -s "$t"); echo "$f"
  done
done <"$tmp/libs" >>"$tmp/libs.chain"
cat "$tmp/libs.chain" >>"$tmp/libs"
sort -u -o "$tmp/libs" "$tmp/libs"

# 4. Copy, paths relative to /usr, symbolic links dereferenced (a carried tree keeps plain files).
rm -rf "$DEST"
mkdir -p "$DEST"
cat "$tmp/headers" "$tmp/libs" | sed 's#^/usr/##' | tar -C /usr --hard-dereference -chf - -T - | tar -C "$DEST" -xf -

# 5. CMake configs: paths into /usr become paths relative to the file's own directory.
rewritten=0
while read -r f; do
  rel=${f#/usr/}
  reldir=$(dirname "$rel")
  up=$(awk -F/ '{ s=""; for (i = 1; i <= NF; i++) s = s "/.."; print s }' <<<"$reldir")
  prefix="\${CMAKE_CURRENT_LIST_DIR}$up"
  staged=$DEST/$rel
  sed -E -i \
    -e "/^[[:space:]]*#/b" \
    -e "s#\"/usr/$reldir\"#\"\${CMAKE_CURRENT_LIST_DIR}\"#g" \
    -e "s#\"/usr\"#\"$prefix\"#g" \
    -e "s#([\"( ;])/usr/(include|lib|share)#\\1$prefix/\\2#g" \
    "$staged"
  rewritten=$((rewritten + 1))
done < <(grep '\.cmake$' "$tmp/libs")
# What still names /usr outside comments (the Boost config's guarded build-directory check is harmless).
left=$(grep -rn '/usr/\|"/usr"' "$DEST" --include='*.cmake' | grep -v '^[^:]*:[0-9]*:[[:space:]]*#' |
       grep -v '/build/boost' || true)
# Every file an imported target names must be staged (CMake checks them when the config is loaded).
missing=$(grep -rhoE '\$\{_IMPORT_PREFIX\}/[^" );]+' "$DEST" --include='*.cmake' | sort -u |
          sed 's#^${_IMPORT_PREFIX}/##' | while read -r f; do [[ -e $DEST/$f ]] || echo "$f"; done)

{
  echo "# .device-deps: staged by scripts/device/stage_deps.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for p in "${PACKAGES[@]}"; do echo "$p $(dpkg-query -W -f='${Version}' "$p")"; done
} >"$DEST/MANIFEST.txt"

src_bytes=$(cd "$ROOT" && git ls-files -z | xargs -0 stat -L -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
staged_bytes=$(du -sb "$DEST" | cut -f1)
echo "stage_deps: $used_count /usr/include headers in $BUILD_DIR's deps, $kept_count of them from the staged packages"
echo "stage_deps: staged $(wc -l <"$tmp/headers") headers, $(grep -vc '\.cmake$' "$tmp/libs") libraries," \
     "$rewritten CMake files (rewritten) into $DEST"
for d in include lib share; do [[ -d $DEST/$d ]] && echo "  $(du -sb "$DEST/$d" | cut -f1) bytes in $d/"; done
echo "stage_deps: source tree (git ls-files): $src_bytes bytes; staged: $staged_bytes bytes;" \
     "together $(((src_bytes + staged_bytes) / 1048576)) MiB of the 64 MiB a carry allows"
if [[ -n $missing ]]; then
  echo "stage_deps: files the CMake targets name but not staged:" >&2
  echo "$missing" >&2
  exit 1
fi
if [[ -n $left ]]; then
  echo "stage_deps: CMake files still naming /usr:" >&2
  echo "$left" >&2
  exit 1
fi
