# haproxy-sidecar. `make test` is what CI runs (.ci/run); it installs what
# the tests need when it is missing (HAProxy 2.6 and 3.0, etcd,
# kube-apiserver), which needs root.

GO        ?= go
BIN       ?= bin/haproxy-sidecar
# A semantic version (0.25.0) stamped into the binary; empty, the binary
# says <next release>-dev+<commit> (version_cmd.go). make dist needs one.
VERSION   ?=
# Default: git's HEAD and now (scripts/build.sh).
COMMIT    ?=
BUILD_DATE ?=
DIST      ?= dist
# The image's repository in make dist's manifests; default deploy/'s.
IMAGE     ?=
# -count=1: the results depend on HAProxy, etcd and kube-apiserver binaries,
# which Go's test cache does not track.
GOFLAGS_TEST ?= -timeout 40m -count=1

.PHONY: build dist chart test deps vet bench bench-peers golden clean run demo-deps corpus

# scripts/build.sh holds the build flags (static, -trimpath, version
# stamped); the Dockerfile's build stage runs the same script.
build:
	GO=$(GO) VERSION=$(VERSION) COMMIT=$(COMMIT) BUILD_DATE=$(BUILD_DATE) sh scripts/build.sh $(BIN)

# A release's files in $(DIST)/: the binaries for linux/amd64 and
# linux/arm64, deploy/ rendered with the image tagged $(VERSION), the Helm
# chart packaged with version and appVersion $(VERSION), and SHA256SUMS
# (scripts/dist.sh; IMAGE=REPOSITORY changes the image's repository in the
# manifests).
#   make dist VERSION=0.25.0
dist:
	@[ -n "$(VERSION)" ] || { echo "make dist needs VERSION=X.Y.Z" >&2; exit 2; }
	GO=$(GO) COMMIT=$(COMMIT) BUILD_DATE=$(BUILD_DATE) IMAGE=$(IMAGE) sh scripts/dist.sh $(VERSION) $(DIST)

# The Helm chart as it is (charts/haproxy-sidecar, its Chart.yaml's version)
# packaged into $(DIST)/haproxy-sidecar-VERSION.tgz, with the Helm CLI that
# scripts/install-helm.sh builds (once) from tools/helm.
chart:
	@mkdir -p $(DIST)
	"$$(bash scripts/install-helm.sh | tail -n 1)" package charts/haproxy-sidecar --destination $(DIST)

# Real components the tests run against: Debian's HAProxy 2.6, HAProxy 3.0
# built from Debian trixie's source package, Debian's etcd and a
# kube-apiserver built from the Go module proxy (cached after the first run),
# the Prometheus tools and the Helm CLI.
deps:
	bash scripts/install-haproxy.sh
	bash scripts/install-kube.sh
	bash scripts/install-prom.sh
	bash scripts/install-helm.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# Then a short fuzz run: manifest decoding + render (both renderers) +
# haproxy -c on whatever the fuzzer makes of the golden cases' manifests
# and hostile seeds (render/fuzz_test.go). A failure writes its input to
# render/testdata/fuzz/. The budget is a number of inputs (about 20 s
# here), not a duration: Go 1.26's fuzzing coordinator can fail a run
# that found nothing with "context deadline exceeded" when a duration
# ends while a worker is busy (go.dev/issue/75804, fixed in Go 1.27; our
# haproxy -c of each input makes the window wide). The run starts from
# the seeds and testdata/fuzz only, in a corpus directory of its own: Go's
# shared one ($$GOCACHE/fuzz) grows with every run (550 inputs at ~36 ms
# each on a machine that had run CI for weeks). -test.fuzzcachedir given
# after go test's own wins.
test: deps vet
	$(GO) test $(GOFLAGS_TEST) ./...
	corpus=$$(mktemp -d) && trap 'rm -rf "$$corpus"' EXIT && \
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzManifestRender$$' -fuzztime 2000x -fuzzminimizetime 0 ./render/ -test.fuzzcachedir="$$corpus"

# Rewrite the golden files in testdata/ after an intended output change.
golden:
	$(GO) test ./... -update

# Benchmarks; figures and the commands behind them are kept in BENCHMARKS.md.
# The Go benchmarks of render/ and e2e/run, then the in-cluster suite of
# e2e/bench (root: a network namespace, etcd, kube-apiserver), which prints
# one results table with all of them and writes it to $(BENCH_DIR)/results.md.
# BENCH_SIZES="1000" limits the cluster sizes; BENCH_HAPROXY, BENCH_TLS,
# BENCH_VARIANTS, BENCH_CHANGES, BENCH_RELOADS, BENCH_STARTS, BENCH_TLS_STARTS and
# BENCH_SIDECAR_BIN are read from the environment (see e2e/bench).
BENCH_DIR   ?= bin/bench
BENCH_SIZES ?= 1000 10000
bench: deps
	@mkdir -p $(BENCH_DIR)
	@$(GO) test -count=1 -run '^$$' -bench . -benchmem ./render/ >$(BENCH_DIR)/render.txt 2>&1; \
		status=$$?; cat $(BENCH_DIR)/render.txt; exit $$status
	@$(GO) test -count=1 -run '^$$' -bench . -benchtime 30x ./e2e/run/ >$(BENCH_DIR)/run.txt 2>&1; \
		status=$$?; cat $(BENCH_DIR)/run.txt; exit $$status
	BENCH_SIZES="$(BENCH_SIZES)" BENCH_OUT=$(abspath $(BENCH_DIR))/results.md \
	BENCH_GO_RESULTS="$(abspath $(BENCH_DIR))/render.txt $(abspath $(BENCH_DIR))/run.txt" \
		$(GO) test -count=1 -timeout 90m -run '^$$' -bench Cluster -benchtime 1x ./e2e/bench/
	@echo "results table: $(BENCH_DIR)/results.md"

# The side-by-side benchmark (BENCHMARKS.md, "Side by side with the peer
# controllers"): this project, haproxy-ingress v0.16.1 (default and fastest
# settings) and haproxytech/kubernetes-ingress v3.2.11, one after the other
# against a fresh kube-apiserver with the same 1,000 Ingresses, HAProxy 3.0
# for all. scripts/install-peers.sh builds the peers once (from GitHub;
# HAPROXY_INGRESS_SOURCE / HAPROXYTECH_SOURCE name a local clone instead);
# neither deps nor test runs it. BENCH_PEER_CHANGES, BENCH_PEER_RELOADS,
# BENCH_PEER_STARTS, BENCH_PEER_SIZE and BENCH_PEER_RUNS are read from the
# environment (e2e/bench/peers_bench_test.go). Prints one table, also
# written to $(BENCH_DIR)/peers.md.
bench-peers: deps
	@mkdir -p $(BENCH_DIR)
	@peers=$$(bash scripts/install-peers.sh) || exit 1; \
	BENCH_PEERS="$$(printf '%s\n' "$$peers" | tail -n 1)" BENCH_OUT=$(abspath $(BENCH_DIR))/peers.md \
		$(GO) test -count=1 -timeout 120m -run '^$$' -bench '^BenchmarkPeers$$' -benchtime 1x ./e2e/bench/
	@echo "side-by-side table: $(BENCH_DIR)/peers.md"

# The ingress-nginx corpus (testdata/corpus, corpus_test.go): real Ingresses
# with nginx.ingress.kubernetes.io annotations. Prints the two shares migrate
# reports (Ingresses fully supported, annotation uses supported) and rewrites
# testdata/corpus/report.txt with them and the per-annotation table: commit
# the change. Every Ingress is also rendered and checked by HAProxy 2.6 and 3.0.
corpus:
	@mkdir -p bin
	@$(GO) test -count=1 -run '^TestCorpus$$' -v . -args -update >bin/corpus.txt 2>&1; \
		status=$$?; sed -n 's/^ *corpus_test\.go:[0-9]*: //p' bin/corpus.txt; \
		[ $$status -eq 0 ] || tail -40 bin/corpus.txt; exit $$status

# A local demo: HAProxy, echo backends and the sidecar watching a copy of
# testdata/demo, all on 127.0.0.1 (scripts/demo.sh; Ctrl-C stops it).
run: build demo-deps
	bash scripts/demo.sh

# What the demo needs, installed (as root) only when missing: an HAProxy
# (Debian's 2.6 is enough; $$HAPROXY, one on PATH or /usr/sbin/haproxy will
# do) and curl.
demo-deps:
	@if [ -z "$$HAPROXY" ] && ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then \
		bash scripts/install-haproxy.sh --only-2.6 >/dev/null; \
	fi
	@if ! command -v curl >/dev/null 2>&1; then \
		[ "$$(id -u)" -eq 0 ] || { echo "curl not found; the demo needs it (as root: apt-get install curl)" >&2; exit 1; }; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl; \
	fi

clean:
	rm -rf bin $(DIST)
