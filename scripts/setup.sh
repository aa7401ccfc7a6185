#!/usr/bin/env bash
# Installs everything bucketfs and its test suite need on a Debian/Ubuntu machine, as root:
# FUSE 2 (libfuse2 + fusermount), a C toolchain (fuse-native is built from source with bucketfs's
# patch: scripts/build-fuse-native.sh), fio, the test servers (MinIO, rclone, fake-gcs-server),
# the npm dependencies, and a build; then puts `bucketfs` on the PATH. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# systemd: its unit checker and fstab generator, for the deployment tests (nothing is started).
for pkg in libfuse2 fuse g++ make patch python3 fio iproute2 python3-pip unzip openssl systemd; do
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

bash scripts/install-servers.sh

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
# npm ci's postinstall builds it; this catches a node_modules installed before the patch existed.
bash scripts/build-fuse-native.sh
npm run build --silent

if [[ $(id -u) -eq 0 ]]; then
  ln -sf "$PWD/bin/bucketfs" /usr/local/bin/bucketfs
  # The FUSE control file system (systemd mounts it at boot; minimal machines and containers may
  # not): the tests read each mount's kernel settings there. Best effort: nothing else needs it.
  if [[ -d /sys/fs/fuse/connections ]] && ! grep -q ' /sys/fs/fuse/connections fusectl ' /proc/mounts; then
    mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || echo "setup: could not mount fusectl (a kernel-settings test will be skipped)"
  fi
fi
echo "setup: done ($(node bin/bucketfs --version))"
