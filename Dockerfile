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

# The seine-cni plugin: a static Go binary (the same build as scripts/build-cni.sh), which install-cni copies
# to each node.
FROM golang:1.22-bookworm AS cni
WORKDIR /src/cmd/seine-cni
COPY cmd/seine-cni ./
RUN CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off go build -trimpath -ldflags='-s -w' -o /out/seine-cni .

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
COPY --from=cni /out/seine-cni ./dist/bin/seine-cni
COPY bin ./bin
ENV NODE_ENV=production
ENTRYPOINT ["/opt/seine/bin/seine"]
