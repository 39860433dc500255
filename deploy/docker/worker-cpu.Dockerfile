# syntax=docker/dockerfile:1
# ossgate inference worker, CPU backend only, on Debian 12 slim.
#
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t REGISTRY/ossgate-worker-cpu:TAG .
#
# Build context: the repository root. Build stage: tools/setup.sh, then
# tools/build.sh with the CUDA backend off. Runtime stage: inference_worker,
# ossgate-client (in-pod health and smoke checks) and the library packages they
# load, run as uid 10001. No model is in the image: the worker hashes the
# file it is given (a volume), asks the provenance service, and loads it only
# when approved (docs/deploy.md).
ARG BUILD_IMAGE=debian:12
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY tools/setup.sh tools/setup.sh
COPY tests/provenance/interop/package.json tests/provenance/interop/package-lock.json tests/provenance/interop/
COPY tests/deploy/package.json tests/deploy/package-lock.json tests/deploy/
COPY tests/http/package.json tests/http/package-lock.json tests/http/
RUN bash tools/setup.sh
COPY . .
RUN OSSGATE_CUDA=OFF OSSGATE_TARGETS="inference_worker ossgate-client" bash tools/build.sh /out \
 && bash deploy/docker/runtime-packages.sh /out/bin > /out/runtime-packages.txt

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 ossgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin ossgate
COPY --from=build /out/bin/inference_worker /out/bin/ossgate-client /usr/local/bin/
LABEL org.opencontainers.image.title="ossgate-worker-cpu" \
      org.opencontainers.image.description="ossgate inference worker (CPU backend): provenance-gated gpt-oss GGUF serving over gRPC"
USER 10001:10001
# 50061: InferenceService over TLS; 8081: plaintext grpc.health.v1 only (probes); 9091: Prometheus /metrics.
EXPOSE 50061 8081 9091
ENTRYPOINT ["/usr/local/bin/inference_worker"]
