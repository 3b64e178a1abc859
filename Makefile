# natsregion: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
TOOLS_CACHE ?= $(or $(NATSREGION_TOOLS_CACHE),$(HOME)/.cache/natsregion/tools)
export NATSREGION_TOOLS_CACHE := $(TOOLS_CACHE)
export NATSREGION_TOOLS_BIN := $(TOOLS_CACHE)/bin
export PATH := $(NATSREGION_TOOLS_BIN):$(PATH)
# Two cores: keep rustc and the test harness from oversubscribing them.
CARGO_TEST_THREADS ?= 2

.PHONY: demo test tools tools-demo node-tools images e2e-kind fmt-check clippy shellcheck modcycles unit integration crds clean-tools

## demo: build what the quick start needs and run a real local drill (3 zones, all four claims)
## (dev profile, like the tests: the two share every dependency; the drill is paced, so it needs no release build)
demo: tools-demo
	@echo "demo: building natsregion (dev profile, the build make test shares; a first build compiles every dependency, about 3 minutes on 2 cores; after make test only natsregion itself, under a minute; later ones take a second)"
	cargo build --bin natsregion
	cargo run --quiet --bin natsregion -- drill --local examples/drill-local.yaml --report out/demo.json

## test: install every tool the tests need, then fmt, clippy, unit and integration tests
test: tools fmt-check clippy shellcheck modcycles unit integration

tools-demo:
	tools/install.sh nats
	tools/install.sh toxiproxy

tools:
	tools/install.sh all
	tools/install.sh promtool
	@if [ "$$(id -u)" = 0 ]; then tools/install.sh netfilter || true; fi
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory node-tools; \
	else echo "make: not root: skipping the one-node cluster's tools and images; the cluster tests (tests/cluster.rs) will skip"; fi

## node-tools: what the one-node cluster tests need (root): containerd, kubelet, ..., and the images they run
node-tools:
	tools/install.sh node
	$(MAKE) --no-print-directory images

## images: OCI image tarballs (operator, nats, toxiproxy, pause, coredns, resolve) from local static builds
images:
	tools/images.sh >/dev/null

## e2e-kind: kind/e2e.sh on a kind cluster built offline (root; opt-in, not in make test): a private
## dockerd (tools/kind/docker.sh), the node image built here (tools/kind/node-image.sh), 1 control plane
## + 3 zoned workers, kube-router, then kind/steps.sh. KEEP_CLUSTER=1 keeps the cluster;
## `tools/kind/docker.sh stop` stops the daemon afterwards. See docs/kind.md.
e2e-kind:
	tools/install.sh all >/dev/null
	tools/install.sh node >/dev/null
	tools/install.sh kind >/dev/null
	eval "$$(tools/kind/docker.sh start)" && KIND_OFFLINE=1 kind/e2e.sh

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --all-targets --quiet -- -D warnings

## shellcheck: lint the shell scripts (kind end-to-end, tool install, offline kind, CI) (pinned ShellCheck, see tools/install.sh)
shellcheck:
	tools/install.sh shellcheck >/dev/null
	shellcheck kind/*.sh tools/*.sh tools/kind/*.sh tools/kind/runc-bounded tools/kind/node/entrypoint tools/kind/node/import-images .ci/run

## modcycles: fail on an import cycle between modules of src/ (and print the top-level dependency listing)
modcycles:
	python3 tools/modcycles.py src

unit:
	cargo test --lib --bins --quiet

integration:
	cargo test --test '*' --quiet -- --test-threads=$(CARGO_TEST_THREADS)

## crds: regenerate crds/ from the Rust types (a unit test fails when they differ)
crds:
	cargo run --quiet -- crd --dir crds
	cp crds/*.yaml charts/natsregion/crds/

clean-tools:
	rm -rf $(TOOLS_CACHE)
