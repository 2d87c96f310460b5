# nicpool build, test and demo entry points. `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
GO ?= go
BIN := $(CURDIR)/bin
TOOLS := $(BIN)/tools
CONTROLLER_GEN := $(TOOLS)/controller-gen
export KUBEBUILDER_ASSETS ?= $(BIN)/k8s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION) -X github.com/nicpool/nicpool/cni.Version=$(VERSION)
BINARIES := nicpool-operator nicpool-agent nicpool nicpoolctl nicpool-armsim
# Packages whose tests need root and network namespaces run in their own step.
TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install Debian packages, the control-plane binaries and code generators (idempotent).
	hack/setup.sh

.PHONY: control-plane
control-plane: ## Build kube-apiserver, kubectl and etcd from the Go module proxy into bin/k8s.
	hack/control-plane.sh

.PHONY: build
build: ## Build every binary into bin/.
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

.PHONY: generate
generate: ## Generate deepcopy code.
	@hack/tools.sh controller-gen
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate the CRD and RBAC roles from markers, and copy the CRD into the chart.
	@hack/tools.sh controller-gen
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=nicpool-operator paths=./controllers output:rbac:dir=config/rbac/operator
	$(CONTROLLER_GEN) rbac:roleName=nicpool-operator-services paths=./controllers/servicerbac output:rbac:dir=config/rbac/operator-services
	$(CONTROLLER_GEN) rbac:roleName=nicpool-agent paths=./nodeagent/... output:rbac:dir=config/rbac/agent
	@if [ -x hack/sync-chart-crds.sh ]; then hack/sync-chart-crds.sh; fi

.PHONY: verify
verify: ## Fail when generated files are stale, code is unformatted or vet complains.
	hack/verify-generated.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting" >&2; exit 1; }
	$(GO) vet ./...

.PHONY: lint
lint: verify ## gofmt, go vet and golangci-lint.
	@hack/tools.sh golangci-lint
	$(TOOLS)/golangci-lint run ./...

.PHONY: test
test: setup verify ## Everything CI runs: unit, envtest, network-namespace, e2e and real-node cluster tests.
	hack/test-images.sh
	$(GO) test $(TEST_FLAGS) ./...
	cd hack/imagebuild && $(GO) test -count=1 ./...

.PHONY: demo
demo: setup ## A 3-node Kubernetes cluster on the simulated VNet, nicpool by Helm, ~30 pods; DEMO_FLAGS=--keep leaves it up.
	hack/test-images.sh
	$(GO) run ./test/e2e/demo $(DEMO_FLAGS)

.PHONY: demo-standalone
demo-standalone: setup ## Containers on VMs without Kubernetes (root): nerdctl + containerd and nicpoolctl attach, imds and arm pools, connectivity table.
	hack/test-images.sh
	$(GO) run ./test/standalone/demo

.PHONY: bench
bench: setup build ## Benchmarks (root): pod ADD+DEL, bursts, datapath, operator scale, each vs a reference; one table, results in bin/bench.
	test/bench/run.sh

SOAK_DRILLS ?= 230
SOAK_FLAGS ?=
.PHONY: soak
soak: setup ## Randomized kill and fault drills with an audit after each (root); SOAK_DRILLS=230 (~15 min) by default.
	$(GO) test -count=1 -timeout 0 -v -run '^TestSoak$$' ./test/soak -args -soak.drills=$(SOAK_DRILLS) $(SOAK_FLAGS)

.PHONY: images
images: ## Build the operator and agent container images as tarballs, without Docker.
	hack/images.sh

.PHONY: clean
clean: ## Remove build outputs (keeps the cached control plane under ~/.cache/nicpool).
	rm -rf $(BIN)
