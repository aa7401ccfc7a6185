#!/usr/bin/env bash
# Installs everything bucketfs and its test suite need on a Debian/Ubuntu machine, as root:
# FUSE 2 (libfuse2 + fusermount), a C toolchain (fuse-native is built from source with bucketfs's
# patch: scripts/build-fuse-native.sh), fio, Node.js 24 when the machine has no supported one
# (scripts/install-node.sh), the test servers (MinIO, rclone, fake-gcs-server), the container tools
# of the image test (podman, runc, mmdebstrap), the npm dependencies, and a build; then puts
# `bucketfs` on the PATH. Safe to run again.
#   BUCKETFS_NODE_MIN=24   treat a Node older than 24 on the PATH as absent (CI: the suite runs on 24)
#   BUCKETFS_BIN_DIR=DIR   where node, npm, npx and bucketfs are linked (default /usr/local/bin)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# systemd: its unit checker and fstab generator, for the deployment tests (nothing is started).
# curl: scripts/demo.sh waits for its MinIO with it.
# podman, runc, mmdebstrap: test/integration/container.test.ts builds and runs the Dockerfile.
for pkg in libfuse2 fuse g++ make patch python3 fio iproute2 python3-pip python3-venv unzip openssl systemd \
  ca-certificates curl podman runc mmdebstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: need root to install: ${need_apt[*]} (run: sudo bash scripts/setup.sh)" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[[ -e /dev/fuse ]] || { echo "setup: /dev/fuse is missing; FUSE cannot work on this machine (load the fuse module or run the container with --device /dev/fuse)" >&2; exit 1; }

bin_dir=${BUCKETFS_BIN_DIR:-/usr/local/bin}
# Node: one on the PATH that bucketfs supports is used as it is. Otherwise (none, or only the old
# one a distribution's apt offers) the pinned Node 24 goes into the tools dir and is linked into
# $bin_dir, which comes before /usr/bin on the default PATH, so `npm test`, mount(8)'s helpers and
# bin/bucketfs's `#!/usr/bin/env node` find it; a system Node in /usr/bin stays as it was for the
# software that uses it by its path.
# A Node that an earlier run linked is relinked, so a new pin takes effect.
node_min=${BUCKETFS_NODE_MIN:-22}
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
node_ours() { [[ $(readlink -f "$(command -v node)") == "${BUCKETFS_TOOLS:-$HOME/.cache/bucketfs/tools}"/node-*/bin/node ]]; }
if (($(node_major) < node_min)) || node_ours; then
  node_bin=$(bash scripts/install-node.sh 24)
  if [[ $(id -u) -eq 0 ]]; then
    for tool in node npm npx; do ln -sf "$node_bin/$tool" "$bin_dir/$tool"; done
  fi
  hash -r
  if [[ $(command -v node) != "$bin_dir/node" ]]; then
    echo "setup: Node 24 is in $node_bin, but \`node\` on your PATH is another one: put $node_bin first" >&2
  fi
  export PATH="$node_bin:$PATH"
fi

bash scripts/install-servers.sh

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  # fuse-native's own install script runs node-gyp before our postinstall: it takes the headers
  # installed beside node (the pinned Node has them) instead of downloading them.
  node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  if [[ -f $node_prefix/include/node/common.gypi ]]; then export npm_config_nodedir=$node_prefix; fi
  npm ci --no-audit --no-fund --no-update-notifier --loglevel=error
fi
# npm ci's postinstall builds it; this catches a node_modules installed before the patch existed.
bash scripts/build-fuse-native.sh
npm run build --silent

if [[ $(id -u) -eq 0 ]]; then
  ln -sf "$PWD/bin/bucketfs" "$bin_dir/bucketfs"
  # The FUSE control file system (systemd mounts it at boot; minimal machines and containers may
  # not): the tests read each mount's kernel settings there. Best effort: nothing else needs it.
  if [[ -d /sys/fs/fuse/connections ]] && ! grep -q ' /sys/fs/fuse/connections fusectl ' /proc/mounts; then
    mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || echo "setup: could not mount fusectl (a kernel-settings test will be skipped)"
  fi
fi
echo "setup: done (bucketfs $(node bin/bucketfs --version), Node $(node --version))"
