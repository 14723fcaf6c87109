# syntax=docker/dockerfile:1
#
# One image for both containers of the load-balancer pod (deploy/): the
# official HAProxy image with haproxy-sidecar added, so the sidecar validates
# configurations (haproxy -c) with the very binary that serves them.
#
# Built for linux/amd64 and linux/arm64 at once (README, "Deploy"):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.25.0 --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
#     -t ghcr.io/haproxy-sidecar/haproxy-sidecar:0.25.0 --push .
#
# The build stage runs on the builder's own platform ($BUILDPLATFORM) and
# cross-compiles for the target's ($TARGETOS/$TARGETARCH): a static Go
# binary needs no emulation. Only the final stage is the target's platform.
#
# The HAProxy branch must be one the tests run against (2.6 or 3.0, see
# DEVELOPERS.md); e2e/deploy checks it, and that the build stage builds
# exactly as `make build` does (both run scripts/build.sh).

# Go as in go.mod's "go" line.
ARG GO_IMAGE=golang:1.26.8-bookworm
# The official image (docker-library/haproxy), built with USE_PROMEX=1: the
# Prometheus exporter is compiled in. Its trixie variant: Debian trixie's
# OpenSSL 3.5 loads certificates about three times as fast as bookworm's 3.0,
# at every start and reload (BENCHMARKS.md); the tests' HAProxy 3.0 is linked
# with the same series (scripts/install-haproxy.sh; e2e/deploy checks it).
ARG HAPROXY_IMAGE=haproxy:3.0.11-trixie

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set by BuildKit from --platform.
ARG TARGETOS TARGETARCH
# VERSION is a semantic version (0.25.0); empty, the binary says
# <next release>-dev. COMMIT: no .git in the build context, so it is told.
# BUILD_DATE: default the time of the build.
ARG VERSION="" COMMIT="" BUILD_DATE=""
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} VERSION=${VERSION} COMMIT=${COMMIT} BUILD_DATE=${BUILD_DATE} sh scripts/build.sh /out/haproxy-sidecar

FROM ${HAPROXY_IMAGE}
COPY --from=build /out/haproxy-sidecar /usr/local/bin/haproxy-sidecar
# The base image stops HAProxy with SIGUSR1 (soft stop). The sidecar, which
# runs from this image too, stops cleanly on SIGTERM only; deploy/ drains
# HAProxy in its preStop hook instead (see README, "Deploy").
STOPSIGNAL SIGTERM
# The base image's unprivileged user (uid 99); nothing here needs root: the
# pod listens on ports above 1024.
USER haproxy
WORKDIR /var/lib/haproxy
# Arguments are a haproxy-sidecar command (run, render, explain, version).
# The HAProxy container of deploy/ sets its own command: haproxy -W -S ...
ENTRYPOINT ["/usr/local/bin/haproxy-sidecar"]
CMD ["help"]
