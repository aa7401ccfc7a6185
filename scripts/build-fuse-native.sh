#!/usr/bin/env bash
# Builds fuse-native from source with bucketfs's patches, in this order (docs/architecture.md):
# - patches/fuse-native-thread-locals.patch: without it, every FUSE thread libfuse starts leaks a
#   libuv handle that the main thread then scans on each wakeup, and a long-running mount slows down;
# - patches/fuse-native-open-flags.patch: lets an open keep the kernel's page cache of the file, or
#   bypass it (keep_cache, direct_io);
# - patches/fuse-native-max-pages.patch: read and write requests of up to 1 MiB (max_read,
#   max_write) where libfuse 2 stops at 128 KiB, by extending libfuse's INIT reply with
#   FUSE_MAX_PAGES and giving its channel a buffer that large;
# - patches/fuse-native-null-path.patch: ops on a file unlinked while open (hard_remove) reach
#   JavaScript with an empty path instead of failing with ENOENT in libfuse.
# Runs as npm's postinstall; safe to run again (does nothing when the patched build is in place).
# Needs a C compiler, make and python3 (scripts/setup.sh installs them), and Node's headers: those
# installed beside node are used, so nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=node_modules/fuse-native
patch_files=("$PWD/patches/fuse-native-thread-locals.patch" "$PWD/patches/fuse-native-open-flags.patch"
  "$PWD/patches/fuse-native-max-pages.patch" "$PWD/patches/fuse-native-null-path.patch")
[[ -d $pkg ]] || exit 0 # installed without dependencies: nothing to build
stamp=$pkg/build/Release/bucketfs-patch.sha256
want=$(cat "${patch_files[@]}" | sha256sum | cut -d' ' -f1)
if [[ -f $pkg/build/Release/fuse.node && -f $stamp && $(<"$stamp") == "$want" ]]; then
  exit 0
fi

fail() {
  echo "build-fuse-native: $1" >&2
  exit 1
}
for tool in cc c++ make python3 patch; do # node-gyp compiles with cc and links with c++
  command -v "$tool" >/dev/null || fail "$tool is missing; install a C toolchain (apt-get install g++ make python3 patch) and run: bash scripts/build-fuse-native.sh"
done

# Always patch the package's own source, kept as fuse-native.c.orig: a build that failed half-way, or
# one made with older versions of the patches, starts over from it.
[[ -f $pkg/fuse-native.c.orig ]] || cp "$pkg/fuse-native.c" "$pkg/fuse-native.c.orig"
cp "$pkg/fuse-native.c.orig" "$pkg/fuse-native.c"
for patch_file in "${patch_files[@]}"; do
  if ! patch -d "$pkg" -p1 --forward --no-backup-if-mismatch -s <"$patch_file"; then
    fail "$(basename "$patch_file") does not apply to fuse-native $(node -p "require('./$pkg/package.json').version") (made for 2.2.6); reinstall it: rm -rf $pkg && npm ci"
  fi
done

# Node's headers from its own installation (nodedir), when they are there; node-gyp downloads them otherwise.
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
nodedir=()
[[ -f $node_prefix/include/node/common.gypi ]] && nodedir=(--nodedir="$node_prefix")
gyp=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
[[ -f $gyp ]] || fail "npm's node-gyp was not found at $gyp"

log=$(mktemp)
if ! (cd "$pkg" && node "$gyp" rebuild "${nodedir[@]}" >"$log" 2>&1); then
  tail -20 "$log" >&2
  rm -f "$log"
  fail "building fuse-native failed (output above)"
fi
rm -f "$log"
echo "$want" >"$stamp"
echo "build-fuse-native: fuse-native built with bucketfs's patch"
