# syntax=docker/dockerfile:1
# qwen-serve container images (docs/monitoring.md). Two targets:
#   runtime (the default) CPU image, without node-llama-cpp's GPU prebuilts:
#       docker build -t qwen-serve .
#       docker run -p 8080:8080 -p 8000:8000 -v qwen-models:/models qwen-serve --model demo
#   cuda    NVIDIA image, with the CUDA prebuilts and the CUDA runtime libraries they load:
#       docker build --target cuda -t qwen-serve:cuda .
#       docker run --gpus all -p 8080:8080 -p 8000:8000 -v qwen-models:/models qwen-serve:cuda
# Both listen on 0.0.0.0 (API 8080, Prometheus metrics 8000), keep models in the /models volume, run as the
# unprivileged `node` user and report health from /health. Arguments after the image name are qwen-serve
# flags; every flag also has a QWEN_* environment variable (README.md, "Flags").
# test/monitoring-docker.test.ts lints this file and checks these properties (there is no Docker engine in CI).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: every dependency, compile the TypeScript, then drop the dev dependencies.
FROM ${NODE_IMAGE} AS build
# npm ci's postinstall rebuilds node-llama-cpp's CPU addon with qwen-serve's top-k patch (scripts/addon-patch,
# ~30 s): it needs a C++ compiler and git, in this stage only. The images get the built addon, not the tools.
RUN apt-get update \
  && apt-get install -y --no-install-recommends g++ git \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY workers ./workers
RUN npx tsc -p . \
  && npm prune --omit=dev --no-audit --no-fund

# ---- production node_modules for each image. node-llama-cpp installs its CUDA and Vulkan prebuilt
# binaries (~600 MB) as optional dependencies; the CPU image has no use for them.
FROM build AS deps-cpu
RUN rm -rf node_modules/@node-llama-cpp/linux-x64-cuda \
  node_modules/@node-llama-cpp/linux-x64-cuda-ext \
  node_modules/@node-llama-cpp/linux-x64-vulkan

FROM build AS deps-cuda
RUN rm -rf node_modules/@node-llama-cpp/linux-x64-vulkan

# ---- what both images share.
FROM ${NODE_IMAGE} AS base
ENV NODE_ENV=production \
  QWEN_HOST=0.0.0.0 \
  QWEN_PORT=8080 \
  QWEN_METRICS_HOST=0.0.0.0 \
  QWEN_METRICS_PORT=8000 \
  QWEN_MODELS_DIR=/models
WORKDIR /app
# Downloaded (hf:) and demo models go to /models, the only place the server writes.
RUN mkdir -p /models && chown node:node /models
COPY package.json ./
COPY --from=build /app/dist ./dist
# The dashboard's page, styles and scripts are served from the source tree (tsc compiles only .ts).
COPY --from=build /app/src/dashboard/public ./src/dashboard/public
VOLUME ["/models"]
EXPOSE 8080 8000
# The model loads (and an hf: model downloads) before /health answers: allow 10 minutes for that.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10m --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.QWEN_PORT || 8080) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/cli.js"]

# ---- cuda: run with `docker run --gpus all` (the NVIDIA Container Toolkit mounts the driver, libcuda and
# libnvidia-ml for the GPU gauges). node-llama-cpp's CUDA prebuilts need the CUDA runtime and cuBLAS:
# @node-llama-cpp/linux-x64-cuda is built for CUDA 13, linux-x64-cuda-ext for CUDA 12, and node-llama-cpp
# uses whichever loads. CUDA 12 runs on older drivers (>= 525), so that is what is installed by default.
FROM base AS cuda
ARG CUDA_VERSION=12.8
USER root
ADD https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb /tmp/cuda-keyring.deb
# node-llama-cpp finds the libraries under /usr/local/cuda-*/targets/*/lib; ldconfig lets the loader find them.
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates \
  && dpkg -i /tmp/cuda-keyring.deb \
  && rm /tmp/cuda-keyring.deb \
  && apt-get update \
  && apt-get install -y --no-install-recommends "cuda-cudart-$(echo "$CUDA_VERSION" | tr . -)" "libcublas-$(echo "$CUDA_VERSION" | tr . -)" \
  && rm -rf /var/lib/apt/lists/* \
  && echo "/usr/local/cuda-${CUDA_VERSION}/targets/x86_64-linux/lib" > /etc/ld.so.conf.d/qwen-serve-cuda.conf \
  && ldconfig
COPY --from=deps-cuda /app/node_modules ./node_modules
ENV QWEN_GPU=cuda \
  QWEN_GPU_LAYERS=max \
  NVIDIA_VISIBLE_DEVICES=all \
  NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER node

# ---- runtime: the CPU image (the default target, last in this file).
FROM base AS runtime
COPY --from=deps-cpu /app/node_modules ./node_modules
ENV QWEN_GPU=off
USER node
