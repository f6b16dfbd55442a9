# syntax=docker/dockerfile:1
# The Seine image: `seine agent`, `seine controller`, `seine install-cni`, and Open vSwitch for the agent's
# openvswitch container. Build: docker build -t seine:0.1.0 .

# Build: the TypeScript compiled to dist/ (the same build as scripts/setup.sh).
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: nothing Seine needs compiles natively.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx --no-install tsc -p tsconfig.build.json

# The Go binaries (the same build as scripts/build-go.sh): the seine-cni plugin, which install-cni copies to each
# node, and seine-exec, the agent's command runner.
FROM golang:1.22-bookworm AS cni
WORKDIR /src
COPY scripts/build-go.sh ./scripts/
COPY cmd ./cmd
RUN bash scripts/build-go.sh

# Production dependencies only.
FROM node:20-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Runtime: Debian bookworm with Node.js 20 for seine itself (a node's host gets only the static seine-cni binary).
FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openvswitch-switch iproute2 iputils-arping ethtool nftables iptables conntrack util-linux kmod \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/seine
# package.json: "type": "module" for dist/, and the version `seine --version` prints.
COPY package.json ./
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=cni /src/dist/bin/ ./dist/bin/
COPY bin ./bin
ENV NODE_ENV=production
ENTRYPOINT ["/opt/seine/bin/seine"]
