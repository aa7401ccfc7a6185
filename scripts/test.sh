#!/usr/bin/env bash
# The whole suite: unit tests, then integration tests against real servers and real FUSE
# mounts. Needs scripts/setup.sh to have run once. Test files run one at a time (2-core machines;
# mounts and servers are heavy), tests inside a file as they declare.
# BUCKETFS_TEST_BACKENDS=minio,rclone,gcs narrows the backends.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
mapfile -t files < <(find dist/test/unit dist/test/integration -name '*.test.js' | sort)
exec node --test --test-concurrency=1 --test-timeout=1200000 --test-reporter=spec "${files[@]}"
