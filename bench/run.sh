#!/usr/bin/env bash
# The "Read throughput" benchmark in one command (npm run bench), as root: installs what it needs
# (toxiproxy pinned via go install; matplotlib in a venv), builds, then runs bench/bench.ts in a
# tmpfs work dir and writes docs/benchmarks.md + docs/benchmarks.png (BENCH_QUICK=1: a short run
# whose report goes to /tmp/bucketfs-bench-quick instead). Whatever happens — failure, Ctrl-C,
# SIGTERM — the trap unmounts every FUSE mount under the work dir, stops every process the run
# started (by pid, from the run's pid files) and removes the tmpfs. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TOXIPROXY_VERSION=v2.5.0
MATPLOTLIB_VERSION=3.10.8
TOOLS="${BUCKETFS_TOOLS:-$HOME/.cache/bucketfs/tools}"
VENV="$HOME/.cache/bucketfs/bench-venv"

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*"; }

[[ $(id -u) -eq 0 ]] || die "run as root: it mounts FUSE file systems and drops the page cache"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing"
for cmd in fio fusermount go python3 node mount umount; do
  command -v "$cmd" >/dev/null || die "$cmd is missing (bash scripts/setup.sh installs fio and FUSE; Go and Python come with the machine)"
done

# The pids recorded in work dir $1 whose process is still ours: it names the work dir on its
# command line (MinIO's data dir, a mountpoint, fio's output, toxiproxy's config) or is our SDK
# reader. A pid that was reused by someone else's process fails the check and is left alone.
our_pids() {
  local dir=$1 pidf pid cmd
  for pidf in "$dir"/pids/*; do
    [[ -e $pidf ]] || continue
    pid=${pidf##*/}
    cmd=$( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
    if [[ -n $cmd && ( $cmd == *"$dir"* || $cmd == *bench/sdk-read.js* || $cmd == *fake-gcs-server* ) ]]; then echo "$pid"; fi
  done
}

# Stops what a run left behind in work dir $1: its processes (SIGTERM, then SIGKILL after 10 s),
# its FUSE mounts, then the tmpfs itself.
sweep() {
  local dir=$1 pid mnt
  for pid in $(our_pids "$dir"); do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [[ -z $(our_pids "$dir") ]] && break
    sleep 1
  done
  for pid in $(our_pids "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
  # FUSE mounts first (deepest first), then the tmpfs.
  while read -r mnt; do
    fusermount -u "$mnt" 2>/dev/null || fusermount -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  if awk -v d="$dir" '$2 == d' /proc/mounts | grep -q .; then
    umount "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
  fi
  rmdir "$dir" 2>/dev/null || true
}

# A run killed with SIGKILL cannot clean up; the next run does, for work dirs whose owner is gone.
while read -r stale; do
  owner=$(cat "$stale/owner" 2>/dev/null || echo 0)
  if ! kill -0 "$owner" 2>/dev/null; then
    say "cleaning up after an earlier run: $stale"
    sweep "$stale"
  fi
done < <(awk '$1 == "bucketfs-bench" && $3 == "tmpfs" { print $2 }' /proc/mounts)

# Tools: MinIO (scripts/install-servers.sh), toxiproxy (pinned), matplotlib (venv).
[[ -x "$TOOLS/bin/minio" ]] || bash scripts/install-servers.sh
TOXIPROXY="$TOOLS/toxiproxy-$TOXIPROXY_VERSION/toxiproxy-server"
if [[ ! -x $TOXIPROXY ]]; then
  say "building toxiproxy $TOXIPROXY_VERSION with go install"
  mkdir -p "${TOXIPROXY%/*}"
  env -u AWS_CA_BUNDLE GOBIN="${TOXIPROXY%/*}" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "${TOXIPROXY%/*}/server" "$TOXIPROXY"
fi
if ! "$VENV/bin/python" -c "import matplotlib; assert matplotlib.__version__ == '$MATPLOTLIB_VERSION'" 2>/dev/null; then
  say "installing matplotlib $MATPLOTLIB_VERSION into $VENV"
  python3 -m venv "$VENV" 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q --disable-pip-version-check "matplotlib==$MATPLOTLIB_VERSION"
fi

say "building"
if ! npx --no-install tsc -p tsconfig.json; then
  # tsc still emits JavaScript; benchmarking it is the caller's explicit choice.
  [[ ${BENCH_ALLOW_TYPE_ERRORS:-0} == 1 ]] || die "the build has type errors (above); BENCH_ALLOW_TYPE_ERRORS=1 runs what tsc emitted anyway"
  say "WARNING: type errors; benchmarking what tsc emitted (BENCH_ALLOW_TYPE_ERRORS=1)"
fi

# BENCH_PEERS=1 (npm run bench:peers): the peer comparison (bench/peers.ts) instead, with the peers
# it installs (bench/install-peers.sh); its report is the peers section of docs/benchmarks.md.
DRIVER=bench.js
if [[ ${BENCH_PEERS:-0} == 1 ]]; then
  DRIVER=peers.js
  BENCH_PEER_BINS=$(bash bench/install-peers.sh) || die "installing the peers failed (above)"
  export BENCH_PEER_BINS
  # Whether the lead's quiet-machine flag was up when the run started (the report says so).
  if [[ -e /tmp/bucketfs-quiet ]]; then export BENCH_QUIET=yes; else export BENCH_QUIET="no (/tmp/bucketfs-quiet absent)"; fi
fi
if [[ ${BENCH_PEERS:-0} == 1 && ${BENCH_QUICK:-0} == 1 ]]; then
  export BENCH_OUT="${BENCH_OUT:-/tmp/bucketfs-bench-quick}"
  export BENCH_JSON="${BENCH_JSON:-$BENCH_OUT/peers.json}"
  export BENCH_COMMAND="BENCH_QUICK=1 npm run bench:peers"
  size=6g
elif [[ ${BENCH_PEERS:-0} == 1 ]]; then
  export BENCH_OUT="${BENCH_OUT:-$ROOT/docs}"
  export BENCH_JSON="${BENCH_JSON:-$ROOT/bench/results/peers.json}"
  export BENCH_COMMAND="npm run bench:peers"
  size=16g
elif [[ ${BENCH_QUICK:-0} == 1 ]]; then
  export BENCH_OUT="${BENCH_OUT:-/tmp/bucketfs-bench-quick}"
  export BENCH_JSON="${BENCH_JSON:-$BENCH_OUT/benchmarks.json}"
  export BENCH_COMMAND="BENCH_QUICK=1 npm run bench"
  size=4g
elif [[ ${BENCH_DIRECT_IO:-0} == 1 ]]; then
  # The same run with the page cache bypassed (bucketfs --direct-io, direct_io for the FUSE limit).
  export BENCH_OUT="${BENCH_OUT:-$ROOT/docs/direct-io}"
  export BENCH_JSON="${BENCH_JSON:-$ROOT/bench/results/direct-io.json}"
  export BENCH_COMMAND="BENCH_DIRECT_IO=1 npm run bench"
  size=16g
else
  export BENCH_OUT="${BENCH_OUT:-$ROOT/docs}"
  export BENCH_JSON="${BENCH_JSON:-$ROOT/bench/results/latest.json}"
  export BENCH_COMMAND="npm run bench"
  size=16g
fi
mkdir -p "$BENCH_OUT" "$(dirname "$BENCH_JSON")"

WORK=$(mktemp -d /tmp/bucketfs-bench.XXXXXX)
NODE_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n $NODE_PID ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    say "stopping the benchmark driver"
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
  fi
  if [[ -n ${BENCH_KEEP_LOGS:-} && -d $WORK/logs ]]; then
    mkdir -p "$BENCH_KEEP_LOGS" && cp -r "$WORK/logs" "$WORK/fio" "$BENCH_KEEP_LOGS/" 2>/dev/null || true
  fi
  sweep "$WORK"
  if awk -v d="$WORK" 'index($2, d) == 1' /proc/mounts | grep -q .; then
    echo "bench: WARNING: still mounted under $WORK:" >&2
    awk -v d="$WORK" 'index($2, d) == 1' /proc/mounts >&2
    rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mount -t tmpfs -o "size=$size,mode=0700" bucketfs-bench "$WORK"
echo $$ >"$WORK/owner"

# Everything runs from a snapshot of the build: others rebuilding dist/ mid-run cannot change
# the code under test, and the report names exactly what was measured.
APP="$WORK/app"
mkdir -p "$APP"
cp -r dist bin bench package.json "$APP/"
ln -s "$ROOT/node_modules" "$APP/node_modules"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- src bin 2>/dev/null) ]]; then commit+=" + uncommitted changes in src/ or bin/"; fi

start=$(date +%s)
# The driver gets no CA-bundle variables (the AWS SDK would try to load them) and a tmpdir on
# the tmpfs, where MinIO keeps its data: dropping the page cache must never send MinIO to disk.
env -u AWS_CA_BUNDLE TMPDIR="$WORK" BENCH_WORK="$WORK" BENCH_TOXIPROXY="$TOXIPROXY" \
  BENCH_TOXIPROXY_VERSION="$TOXIPROXY_VERSION" BENCH_COMMIT="$commit" \
  BENCH_PYTHON="$VENV/bin/python" AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
  node "$APP/dist/bench/$DRIVER" &
NODE_PID=$!
wait "$NODE_PID"
NODE_PID=
say "done in $(($(date +%s) - start)) s"
