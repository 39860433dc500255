# syntax=docker/dockerfile:1
# ossgate inference worker with the CUDA backend, on NVIDIA's CUDA 13.0 images
# (the toolkit the project builds with: nvcc 13.0, docs/cuda.md).
#
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t REGISTRY/ossgate-worker-cuda:TAG .
#   (--build-arg CUDA_ARCHS=90a for an H100/H200-only build; default: sm_80, sm_89, sm_90a)
#
# Build context: the repository root. Build stage: the -devel image (nvcc),
# tools/setup.sh, then tools/build.sh with the CUDA backend on. Runtime stage:
# the -runtime image of the same CUDA version and Ubuntu release, so the
# library packages found in the build stage exist there too. The backend links
# the CUDA runtime statically; libcuda comes from the node's driver through the
# NVIDIA container runtime. No compiler, no model, no key is in the image.
ARG CUDA_VERSION=13.0.1
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG CUDA_ARCHS=""
WORKDIR /src
COPY tools/setup.sh tools/setup.sh
COPY tests/provenance/interop/package.json tests/provenance/interop/package-lock.json tests/provenance/interop/
COPY tests/deploy/package.json tests/deploy/package-lock.json tests/deploy/
COPY tests/http/package.json tests/http/package-lock.json tests/http/
RUN bash tools/setup.sh
COPY . .
RUN OSSGATE_CUDA=ON OSSGATE_CUDA_ARCHS="${CUDA_ARCHS}" OSSGATE_TARGETS="inference_worker ossgate-client" bash tools/build.sh /out \
 && bash deploy/docker/runtime-packages.sh /out/bin > /out/runtime-packages.txt

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU} AS runtime
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 ossgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin ossgate
COPY --from=build /out/bin/inference_worker /out/bin/ossgate-client /usr/local/bin/
LABEL org.opencontainers.image.title="ossgate-worker-cuda" \
      org.opencontainers.image.description="ossgate inference worker (CUDA backend): provenance-gated gpt-oss GGUF serving over gRPC"
# The CUDA JIT cache (PTX for GPUs newer than the built architectures) must
# not go to the read-only root filesystem.
ENV CUDA_CACHE_PATH=/tmp/cuda-cache
USER 10001:10001
EXPOSE 50061 8081 9091
ENTRYPOINT ["/usr/local/bin/inference_worker"]
