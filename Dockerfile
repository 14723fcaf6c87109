# syntax=docker/dockerfile:1
#
# One image for both containers of the load-balancer pod (deploy/): the
# official HAProxy image with haproxy-sidecar added, so the sidecar validates
# configurations (haproxy -c) with the very binary that serves them.
#
#   docker build -t haproxy-sidecar:dev --build-arg VERSION=$(git describe --always) .
#
# The HAProxy branch must be one the tests run against (2.6 or 3.0, see
# DEVELOPERS.md); e2e/deploy checks it, and that the build stage builds
# exactly as `make build` does (both run scripts/build.sh).

# Go as in go.mod's "go" line.
ARG GO_IMAGE=golang:1.26.8-bookworm
# The official image (docker-library/haproxy), built with USE_PROMEX=1: the
# Prometheus exporter is compiled in.
ARG HAPROXY_IMAGE=haproxy:3.0.11-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION=${VERSION} sh scripts/build.sh /out/haproxy-sidecar

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
