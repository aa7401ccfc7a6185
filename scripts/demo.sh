#!/usr/bin/env bash
# Starts a local MinIO (the demo store, on 127.0.0.1:9000), seeds a "demo" bucket with sample
# data, and mounts it at ${DEMO_MOUNT:-/mnt/bucketfs-demo}. Run scripts/setup.sh first.
# Stop it with: fusermount -u /mnt/bucketfs-demo; pkill -f 'minio server.*bucketfs/demo'
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${BUCKETFS_TOOLS:-$HOME/.cache/bucketfs/tools}/bin"
data="${HOME}/.cache/bucketfs/demo"
mnt="${DEMO_MOUNT:-/mnt/bucketfs-demo}"
port="${DEMO_PORT:-9000}"
export AWS_ACCESS_KEY_ID=bucketfs-demo AWS_SECRET_ACCESS_KEY=bucketfs-demo-secret
unset AWS_CA_BUNDLE

if ! curl -fsS "http://127.0.0.1:${port}/minio/health/live" >/dev/null 2>&1; then
  mkdir -p "$data"
  env -i PATH="$PATH" HOME="$HOME" MINIO_ROOT_USER="$AWS_ACCESS_KEY_ID" MINIO_ROOT_PASSWORD="$AWS_SECRET_ACCESS_KEY" \
    MINIO_BROWSER=off setsid "$tools/minio" server "$data/store" --address "127.0.0.1:${port}" \
    --console-address 127.0.0.1:0 >"$data/minio.log" 2>&1 < /dev/null &
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:${port}/minio/health/live" >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
node scripts/seed-demo.mjs "http://127.0.0.1:${port}"
mkdir -p "$mnt"
if grep -q " $mnt fuse" /proc/mounts; then fusermount -u "$mnt"; fi
node bin/bucketfs --endpoint-url "http://127.0.0.1:${port}" --force-path-style s3://demo "$mnt"
ls -l "$mnt"
echo "demo: unmount with: fusermount -u $mnt"
