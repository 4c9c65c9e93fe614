# keel: a container toolchain. `make demo` and `make test` work on a fresh
# Debian machine as root: they install what they need themselves.

CARGO ?= cargo
# Where cargo puts the release binaries: .cargo/config.toml names the host
# target (static binaries), so they are under target/<host tuple>/.
BIN := target/$(shell rustc -vV | sed -n 's/^host: //p')/release
RUNTIME := $(BIN)/keel-runtime
DEMO_DIR ?= /tmp/keel-demo

# Debian packages: for the tests (busybox rootfs), the conformance suite
# installs its own; the benchmarks and real clients need the peers.
TEST_DEBS := busybox-static procps python3 runc tmux skopeo umoci debootstrap
BENCH_DEBS := busybox-static hyperfine runc crun time python3 podman conmon bpftrace
# The builder's peers, and what makes its base images (debootstrap).
BENCH_BUILD_DEBS := buildah podman skopeo umoci hyperfine runc python3 busybox-static debootstrap
CLIENT_DEBS := busybox-static docker.io containerd podman conmon runc umoci skopeo python3 tmux

.PHONY: all build demo test unit lint conformance conformance-oci conformance-clients bench clean

all: build

build:
	$(CARGO) build --release --workspace

demo: build
	scripts/deps.sh $(TEST_DEBS)
	scripts/demo.sh $(BIN) $(DEMO_DIR)

# What CI runs (.ci/run): style, lints, unit and root integration tests,
# then the OCI validation suite compared with our recorded results.
test: lint build
	scripts/deps.sh $(TEST_DEBS)
	$(CARGO) test --workspace -- --test-threads=2
	conformance/oci-validation.sh $(RUNTIME)

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

conformance: conformance-oci conformance-clients

conformance-oci: build
	conformance/oci-validation.sh $(RUNTIME)

conformance-clients: build
	scripts/deps.sh $(CLIENT_DEBS)
	conformance/clients/run-all.sh $(CURDIR)/$(RUNTIME)

bench: build
	scripts/deps.sh $(BENCH_DEBS) $(BENCH_BUILD_DEBS)
	bench/runtime.sh $(CURDIR)/$(RUNTIME)
	bench/run-phases.sh $(CURDIR)/$(RUNTIME)
	bench/builder.sh $(CURDIR)/$(BIN)/keel-build $(CURDIR)/$(RUNTIME)
	bench/shim.sh $(CURDIR)/$(BIN)

clean:
	$(CARGO) clean
