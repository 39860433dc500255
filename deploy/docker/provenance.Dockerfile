# syntax=docker/dockerfile:1
# ossgate provenance service (provenance_service + provctl) on Debian 12 slim.
#
#   docker build -f deploy/docker/provenance.Dockerfile -t REGISTRY/ossgate-provenance:TAG .
#
# Build context: the repository root. Build stage: the README's scripts
# (tools/setup.sh installs the Debian packages, tools/build.sh runs cmake +
# ninja like tools/test.sh). Runtime stage: the two binaries and the library
# packages they load (deploy/docker/runtime-packages.sh), run as uid 10001.
# No compiler, no key, no database and no model is in the image: keys and
# certificates come from Kubernetes Secrets, the audit log from a volume
# (deploy/k8s, docs/deploy.md).
ARG BUILD_IMAGE=debian:12
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Toolchain layer first, so source changes do not reinstall it. setup.sh also
# runs `npm ci` for the test packages, hence their lock files.
COPY tools/setup.sh tools/setup.sh
COPY tests/provenance/interop/package.json tests/provenance/interop/package-lock.json tests/provenance/interop/
COPY tests/deploy/package.json tests/deploy/package-lock.json tests/deploy/
COPY tests/http/package.json tests/http/package-lock.json tests/http/
RUN bash tools/setup.sh
COPY . .
RUN OSSGATE_CUDA=OFF OSSGATE_TARGETS="provenance_service provctl" bash tools/build.sh /out \
 && bash deploy/docker/runtime-packages.sh /out/bin > /out/runtime-packages.txt

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 ossgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin ossgate
COPY --from=build /out/bin/provenance_service /out/bin/provctl /usr/local/bin/
LABEL org.opencontainers.image.title="ossgate-provenance" \
      org.opencontainers.image.description="ossgate provenance service: model-file approvals, PASETO tokens, RFC 6962 audit log"
USER 10001:10001
# 7443: gRPC over mutual TLS (verification, registry, audit, keys).
EXPOSE 7443
ENTRYPOINT ["/usr/local/bin/provenance_service"]
