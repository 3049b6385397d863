# persona-operator Makefile, in kubebuilder's layout. Every tool is pinned and built
# into bin/ from the Go module proxy; the control plane for tests is built from Go
# module sources by hack/build-controlplane.sh (no asset download).

IMG ?= controller:latest
K8S_VERSION ?= v1.37.2

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs, RBAC and webhook configuration.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	@# Drop upstream Pod field descriptions from the embedded Job template (see hack/trimcrd).
	go run ./hack/trimcrd config/crd/bases/personas.usersuccess.io_playbooks.yaml 'spec.steps[].jobTemplate.spec'

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (config in .golangci.yml).
	$(GOLANGCI_LINT) run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply the fixes it can make.
	$(GOLANGCI_LINT) run --fix

.PHONY: controlplane
controlplane: ## Build etcd, kube-apiserver and kubectl from module sources into bin/k8s (skipped when built).
	@hack/build-controlplane.sh >/dev/null

.PHONY: controlplane-e2e
controlplane-e2e: ## Build all six local-cluster binaries (adds kube-controller-manager, kube-scheduler, kwok) into bin/k8s.
	@hack/build-controlplane.sh etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kwok >/dev/null

.PHONY: cluster-up
cluster-up: controlplane-e2e ## Start a local control plane whose Jobs complete (kwok fake node); state in .localcluster/.
	@hack/localcluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane (every process by PID file) and drop its etcd data.
	@hack/localcluster.sh down

.PHONY: demo
demo: controlplane-e2e build build-plugin ## The product end to end: local control plane, sample data, personas, a playbook; prints the headline answer.
	@hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop the demo's manager and local control plane (no process left behind).
	@hack/demo.sh down

E2E_DIR ?= $(shell pwd)/.localcluster-e2e
.PHONY: test-e2e
test-e2e: controlplane-e2e build ## End to end on a fresh local cluster (own state dir): 1000 users enter, Jobs complete, the manager is SIGKILLed mid-way.
	@LOCALCLUSTER_DIR=$(E2E_DIR) hack/localcluster.sh up >/dev/null
	@LOCALCLUSTER_DIR=$(E2E_DIR) go test -tags e2e ./test/e2e/ -v -count=1 -timeout 20m; rc=$$?; \
		LOCALCLUSTER_DIR=$(E2E_DIR) hack/localcluster.sh down; exit $$rc

USERS ?= 100000
.PHONY: bench-scale
bench-scale: controlplane build ## Scale benchmark of one manager (USERS=1000000): PostgreSQL, bare control plane, RSS, latency, churn, heap profile; see docs/benchmarks.md.
	@USERS=$(USERS) hack/bench-scale.sh run

.PHONY: bench-pushdown
bench-pushdown: controlplane build ## Push-down benchmark (USERS=10000000): at-risk persona evaluated in PostgreSQL over unloaded DataSources vs psql alone, RSS, 1 % churn; see docs/benchmarks.md.
	@USERS=$(USERS) BENCH_MODE=pushdown hack/bench-scale.sh run

.PHONY: bench-events
bench-events: controlplane ## Events end to end on durable PostgreSQL (synchronous_commit on): sustained ingest over 30 s, event → membership at 2 k events/s, window-edge latency; prints the figures (docs/benchmarks.md).
	POSTGRES_DURABLE=1 KUBEBUILDER_ASSETS="$(LOCALBIN)/k8s/$(K8S_VERSION)" go test ./internal/ingest/ -run '^$$' \
		-bench '^Benchmark(SustainedIngest|EventsEndToEnd)$$' -benchtime 1x -count 1 -timeout 20m -v 2>&1 \
		| grep -E '^(Benchmark|---|ok|FAIL|PASS)|(sustained ingest:|event → membership at|of which event|window edge →)'

.PHONY: bench-scale-down
bench-scale-down: ## Stop whatever a killed bench-scale left running (manager, control plane, PostgreSQL).
	@hack/bench-scale.sh down

.PHONY: cluster-smoke
cluster-smoke: controlplane-e2e ## Check the local control plane: 50 Jobs complete, a failing Job fails; prints timings.
	@hack/localcluster-smoke.sh

.PHONY: test
test: manifests generate fmt vet controlplane kustomize ## Run all tests against a real control plane built from sources.
	KUBEBUILDER_ASSETS="$(LOCALBIN)/k8s/$(K8S_VERSION)" KUSTOMIZE="$(KUSTOMIZE)" go test ./... -coverprofile cover.out

.PHONY: verify
verify: ## Fail if `make manifests generate fmt` changes tracked files.
	@$(MAKE) --no-print-directory manifests generate fmt >/dev/null
	@go mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@(cd hack/tools && go mod tidy -diff >/dev/null) || { echo "hack/tools/go.mod is not tidy"; exit 1; }
	@(cd hack/kwok && go mod tidy -diff >/dev/null) || { echo "hack/kwok/go.mod is not tidy"; exit 1; }
	@(cd hack/helm && go mod tidy -diff >/dev/null) || { echo "hack/helm/go.mod is not tidy"; exit 1; }
	@if [ -n "$$(git status --porcelain --untracked-files=no)" ] || [ -n "$$(git ls-files --others --exclude-standard config api internal cmd)" ]; then \
		echo "generated files are out of date: run 'make manifests generate fmt' and commit:"; \
		git status --porcelain; git --no-pager diff --stat; exit 1; \
	fi

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager binary.
	go build -o bin/manager ./cmd

.PHONY: build-plugin
build-plugin: ## Build the kubectl plugin into bin/kubectl-persona.
	go build -ldflags "-s -w" -o bin/kubectl-persona ./cmd/kubectl-persona

.PHONY: install-plugin
install-plugin: build-plugin ## Install kubectl-persona into $(GOBIN), or into $(PREFIX)/bin when PREFIX is set, for `kubectl persona`.
	@dest="$(if $(PREFIX),$(PREFIX)/bin,$(GOBIN))"; mkdir -p "$$dest" && install -m 0755 bin/kubectl-persona "$$dest/kubectl-persona" && echo "installed $$dest/kubectl-persona"

.PHONY: run
run: manifests generate fmt vet ## Run the manager against the cluster in ~/.kube/config.
	go run ./cmd --enable-webhooks=false

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	$(CONTAINER_TOOL) build -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push the manager image.
	$(CONTAINER_TOOL) push ${IMG}

CONTAINER_TOOL ?= docker

.PHONY: build-installer
build-installer: manifests generate kustomize ## Render CRDs, RBAC and the manager Deployment into dist/install.yaml (tracked files untouched).
	mkdir -p dist
	KUSTOMIZE=$(KUSTOMIZE) hack/render-config.sh ${IMG} > dist/install.yaml

# The image the chart generator finds and replaces with the image value.
CHART_IMAGE_SENTINEL = persona-operator-chart-image-sentinel:0

.PHONY: helm-chart
helm-chart: manifests kustomize ## Generate the Helm chart from config/default (and config/events, behind events.enabled) into dist/chart/persona-operator (hack/helmchart).
	mkdir -p dist
	KUSTOMIZE=$(KUSTOMIZE) hack/render-config.sh $(CHART_IMAGE_SENTINEL) events > dist/chart-events.yaml
	KUSTOMIZE=$(KUSTOMIZE) hack/render-config.sh $(CHART_IMAGE_SENTINEL) | \
		go run ./hack/helmchart -image-sentinel $(CHART_IMAGE_SENTINEL) -image ${IMG} -events dist/chart-events.yaml -out dist/chart
	rm -f dist/chart-events.yaml

.PHONY: test-helm
test-helm: helm-chart helm controlplane ## helm lint, helm template, and kubectl apply --dry-run=server of the chart against a real kube-apiserver.
	HELM=$(HELM) CHART=$(shell pwd)/dist/chart/persona-operator KUBEBUILDER_ASSETS="$(LOCALBIN)/k8s/$(K8S_VERSION)" \
		go test ./hack/helmchart/ -run TestChartDryRun -count=1 -v

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install CRDs into the cluster in ~/.kube/config.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall CRDs.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the manager to the cluster in ~/.kube/config.
	KUSTOMIZE=$(KUSTOMIZE) hack/render-config.sh ${IMG} | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy the manager.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

KUBECTL ?= $(LOCALBIN)/k8s/$(K8S_VERSION)/kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
HELM ?= $(LOCALBIN)/helm

KUSTOMIZE_VERSION ?= v5.8.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
# Keep in step with hack/helm/go.mod.
HELM_VERSION ?= v4.3.1

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into bin/.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint into bin/ (several minutes the first time).
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: helm
helm: $(LOCALBIN) ## Build helm from its Go module (hack/helm) into bin/ (cold: minutes; then skipped).
	@[ -f "$(HELM)-$(HELM_VERSION)" ] && [ "$$(readlink -- "$(HELM)" 2>/dev/null)" = "helm-$(HELM_VERSION)" ] || { \
		set -e; echo "building helm $(HELM_VERSION) from module sources (hack/helm)"; start=$$(date +%s); \
		(cd hack/helm && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" -o "$(HELM)-$(HELM_VERSION).tmp" helm.sh/helm/v4/cmd/helm); \
		mv "$(HELM)-$(HELM_VERSION).tmp" "$(HELM)-$(HELM_VERSION)"; echo "built helm in $$(( $$(date +%s) - start ))s"; }
	@ln -sf "helm-$(HELM_VERSION)" "$(HELM)"

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$$(basename "$(1)-$(3)")" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f $(1) ;\
GOBIN=$(LOCALBIN) go install $${package} ;\
mv $(1) $(1)-$(3) ;\
} ;\
ln -sf $$(basename "$(1)-$(3)") $(1)
endef
