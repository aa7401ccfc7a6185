# bucketfs as a container image (docs/deployment.md, "Containers"):
#   docker build -t bucketfs .
#   docker run --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor:unconfined \
#     -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY bucketfs s3://my-bucket /data
# Any Debian-based image with glibc 2.28 or later can be the base (--build-arg BASE_IMAGE=...);
# the CI test builds on a base it makes with mmdebstrap (test/integration/container.test.ts).
ARG BASE_IMAGE=debian:bookworm-slim

# Build: Node 24 from the same pinned wheel as scripts/setup.sh, the npm dependencies, fuse-native
# built from source with bucketfs's patches (npm ci's postinstall), and the TypeScript build.
FROM ${BASE_IMAGE} AS build
RUN apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ca-certificates g++ make patch python3 python3-pip unzip \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bucketfs
COPY scripts/install-node.sh scripts/
RUN BUCKETFS_TOOLS=/opt bash scripts/install-node.sh 24 >/tmp/node-bin \
  && ln -s "$(dirname "$(cat /tmp/node-bin)")" /opt/node
# npm trusts the system's CAs as pip does, so a base image that adds its site's CA (a TLS-inspecting
# proxy) builds too; Node alone would trust only the CAs compiled into it. node-gyp (fuse-native's
# own install script runs it before our postinstall) takes Node's headers from the wheel instead of
# downloading them.
ENV PATH=/opt/node/bin:$PATH NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  npm_config_nodedir=/opt/node npm_config_update_notifier=false
COPY package.json package-lock.json ./
COPY scripts/build-fuse-native.sh scripts/
COPY patches/ patches/
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY src/ src/
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund --loglevel=error
COPY bin/ bin/

# Runtime: Node's one binary, libfuse2 and fusermount (package fuse), tini as PID 1 so SIGTERM
# reaches bucketfs, which then unmounts and exits 0.
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfuse2 fuse tini \
  && rm -rf /var/lib/apt/lists/* \
  && sed -i 's/^#\s*user_allow_other/user_allow_other/' /etc/fuse.conf \
  && grep -qx user_allow_other /etc/fuse.conf
COPY --from=build /opt/node/bin/node /usr/local/bin/node
COPY --from=build /opt/bucketfs/package.json /opt/bucketfs/
COPY --from=build /opt/bucketfs/bin/ /opt/bucketfs/bin/
COPY --from=build /opt/bucketfs/dist/src/ /opt/bucketfs/dist/src/
COPY --from=build /opt/bucketfs/node_modules/ /opt/bucketfs/node_modules/
# Non-root: libfuse mounts through the setuid fusermount, which needs the container to have
# CAP_SYS_ADMIN (and /dev/fuse) but not the process. /data is the mountpoint, /var/cache/bucketfs
# the --cache-dir; both belong to that user. Run with --user 0 for what bucketfs does only as root
# (kernel read-ahead, event-loop priority, FUSE passthrough): docs/deployment.md.
RUN ln -s /opt/bucketfs/bin/bucketfs /usr/local/bin/bucketfs \
  && useradd --uid 10001 --user-group --no-create-home --home-dir /var/cache/bucketfs bucketfs \
  && mkdir -p /data /var/cache/bucketfs \
  && chown bucketfs:bucketfs /data /var/cache/bucketfs \
  && bucketfs --version
USER 10001:10001
ENTRYPOINT ["tini", "--", "bucketfs", "--foreground"]
CMD ["--help"]
