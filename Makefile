# rego-injector: `make help` lists the targets. `make test` never changes the tree.

GO        ?= go
OPA       := $(GO) tool opa
BIN       := bin/rego-injector
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Read once, so that every target of one run names the same version.
VERSION   := $(VERSION)
LDFLAGS   := -X main.version=$(VERSION)
POLICIES  := policies bundles/default
# Rego checked with the policies but not shipped: the load harness's OPA peer.
PEER      := test/bench/opa
STAGE     := build/bundle-default
FUZZTIME  ?= 30s
COVERAGE  ?= 90
# make bundle SIGNING_KEY=key.pem signs the bundle (opa build --signing-key).
SIGNING_KEY ?=
SIGNING_ALG ?= RS256

.PHONY: help run build image image-push image-test test chart go-test opa-test lint bundle bench load soak faults load-revisions dashboard-png check-examples fuzz e2e cluster-binaries registry-binary bundle-push clean

help: ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: build ## start the webhook on https://127.0.0.1:8443 with the embedded default bundle
	$(BIN) serve $(ARGS)

build: ## build bin/rego-injector (static, runs on a scratch image)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/rego-injector

# The container image, built from the binaries alone, without a base image or a container engine
# (docs/install.md#building-the-image). Every time stamp in it is the commit's time, so that one
# commit gives one image digest.
IMAGE_NAME        ?= rego-injector:$(VERSION)
IMAGE_TAR         := build/rego-injector-image.tar
REVISION          := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_URL        := https://github.com/rego-injector/rego-injector
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# make image-push IMAGE=registry.example.com/rego-injector:v1.2.0
IMAGE             ?=
ifneq ($(filter image-push,$(MAKECMDGOALS)),)
ifeq ($(IMAGE),)
$(error make image-push needs IMAGE=registry/repository:tag)
endif
endif

image: ## build build/rego-injector-image.tar: an OCI image index for linux/amd64 and linux/arm64, non-root, with SBOMs
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-amd64/rego-injector ./cmd/rego-injector
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-arm64/rego-injector ./cmd/rego-injector
	@mkdir -p build
	$(GO) run ./test/tools/imagebuild build -o $(IMAGE_TAR) -name $(IMAGE_NAME) \
	  -version $(VERSION) -revision $(REVISION) -source $(SOURCE_URL) -created $(SOURCE_DATE_EPOCH) \
	  -binary linux/amd64=bin/linux-amd64/rego-injector -binary linux/arm64=bin/linux-arm64/rego-injector

image-push: image ## push the image index of make image to IMAGE=registry/repository:tag, with docker login's credentials
	$(GO) run ./test/tools/imagebuild push $(IMAGE_TAR) $(IMAGE)

image-test: image ## test the image of make image: platforms, config, files, SBOM, the binary runs, reproducible, pushed to a registry on 127.0.0.1
	REGO_INJECTOR_IMAGE_BIN=$(CURDIR)/bin REGO_INJECTOR_IMAGE_VERSION=$(VERSION) $(GO) test -count=1 ./test/tools/imagebuild/

test: lint opa-test go-test chart check-examples image-test e2e ## every check and test: gofmt, go vet, opa fmt/check/test, go test -race, the Helm chart, check over examples/, the image, e2e

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

opa-test: ## opa fmt, opa check and opa test (coverage at least $(COVERAGE) %) with OPA's own CLI
	$(OPA) fmt --fail --list $(POLICIES) $(PEER) >/dev/null || { echo "opa fmt needed:"; $(OPA) fmt --list $(POLICIES) $(PEER); exit 1; }
	$(OPA) check --strict $(POLICIES) $(PEER)
	$(OPA) test $(POLICIES)
	@mkdir -p build
	@$(OPA) test --coverage --threshold $(COVERAGE) $(POLICIES) > build/coverage.json || \
	  { echo "policy coverage below $(COVERAGE) % (see build/coverage.json)"; exit 1; }
	@echo "policy coverage $$(grep -o '"coverage": *[0-9.]*' build/coverage.json | tail -1 | grep -o '[0-9.]*$$') % (at least $(COVERAGE) % required)"

go-test: ## go test, with the race detector on the engine; the OCI bundle tests run a registry on 127.0.0.1 (built once, cached)
	@reg=$$(test/tools/registry-binary.sh) && set -x && \
	REGO_INJECTOR_REGISTRY_BIN=$$reg $(GO) test -race -count=1 ./engine/... && \
	REGO_INJECTOR_REGISTRY_BIN=$$reg $(GO) test -count=1 $$($(GO) list ./... | grep -v -e /engine/ -e /test/e2e -e /deploy/helm)

registry-binary: ## build the CNCF distribution registry the OCI bundle tests run, once per machine (cached)
	test/tools/registry-binary.sh

# Helm's CLI is a `go tool` of go.mod (helm.sh/helm/v4/cmd/helm): built once into the Go cache, no download.
HELM       := $(GO) tool helm
CHART      := deploy/helm/rego-injector

chart: ## helm lint the chart with each values file of $(CHART)/ci, then render them and check what they hold (deploy/helm/chart_test.go)
	@for values in $(CHART)/ci/*-values.yaml; do \
	  echo "helm lint $$values"; $(HELM) lint --strict --quiet $(CHART) -f $$values >/dev/null || { $(HELM) lint --strict $(CHART) -f $$values; exit 1; }; \
	done
	GO=$(GO) $(GO) test -count=1 ./deploy/helm/

cluster-binaries: ## build etcd, kube-apiserver, kube-controller-manager and kubectl once per machine (cached)
	test/tools/cluster-binaries.sh

e2e: build ## end-to-end tests against a real etcd, kube-apiserver and kube-controller-manager on 127.0.0.1
	@bin=$$(test/tools/cluster-binaries.sh) && \
	REGO_INJECTOR_CLUSTER_BIN=$$bin REGO_INJECTOR_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m ./test/e2e/

bundle: ## build build/default.tar.gz from policies/ and bundles/default with opa build (SIGNING_KEY=key.pem signs it)
	rm -rf $(STAGE) && mkdir -p $(STAGE)
	cp -R bundles/default/. $(STAGE)/
	cd policies && find . -path ./revisions -prune -o -name '*.rego' ! -name '*_test.rego' -exec cp --parents {} ../$(STAGE)/ \;
	cd $(STAGE) && $(OPA) build --bundle . --output ../default.tar.gz \
	  $(if $(SIGNING_KEY),--signing-key $(abspath $(SIGNING_KEY)) --signing-alg $(SIGNING_ALG))
	@echo "wrote build/default.tar.gz$(if $(SIGNING_KEY), signed with $(SIGNING_KEY))"

# make bundle-push REGISTRY=registry.example.com/policies/rego-injector:v1 (PLAIN_HTTP=1 for a
# plain-HTTP registry that is not on a loopback or private address).
REGISTRY   ?=
PLAIN_HTTP ?=
ifneq ($(filter bundle-push,$(MAKECMDGOALS)),)
ifeq ($(REGISTRY),)
$(error make bundle-push needs REGISTRY=host[:port]/repository:tag)
endif
endif

bundle-push: bundle ## publish build/default.tar.gz to REGISTRY=host[:port]/repository:tag as an OPA OCI bundle, with docker login's credentials
	$(GO) run ./test/tools/bundlepush $(if $(PLAIN_HTTP),-plain-http )build/default.tar.gz $(REGISTRY)

bench: ## run the Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./engine/...

load: build bundle ## open-loop load, rego-injector then OPA's server on the same reviews (servers on CPU 0, load on CPU 1; 127.0.0.1 only)
	$(GO) build -o bin/opa github.com/open-policy-agent/opa
	$(GO) build -o bin/bench ./test/bench
	$(if $(shell command -v taskset),taskset -c 1) bin/bench -server $(BIN) -opa bin/opa $(LOADFLAGS)

check-examples: build ## rego-injector check over examples/ (JUnit report in build/check-examples.xml); every workload must pass
	mkdir -p build
	$(BIN) check -f examples --namespace-labels istio-injection=enabled -o junit > build/check-examples.xml || { cat build/check-examples.xml; exit 1; }
	@echo "check: every workload in examples/ passes"

soak: build bundle ## 10 minutes of distinct pods at 200/s with a bundle swap and a certificate rotation halfway: 0 failures, RSS flat (SOAKFLAGS="-soak 2m" shortens it)
	$(GO) build -o bin/bench ./test/bench
	$(if $(shell command -v taskset),taskset -c 1) bin/bench -server $(BIN) -soak 10m $(SOAKFLAGS)

faults: build bundle ## 150 pods/s while in turn the bundle server hangs, then serves garbage, the apiserver stops, the certificate changes, SIGTERM (~2 min, FAULTFLAGS="-fault-only cert"); exit 1 on a failure docs/operations.md does not predict
	$(GO) build -o bin/bench ./test/bench
	@bin=$${REGO_INJECTOR_CLUSTER_BIN:-$$(test/tools/cluster-binaries.sh)} || bin=; \
	echo "$(if $(shell command -v taskset),taskset -c 1) bin/bench -server $(BIN) -faults -cluster-bin $$bin $(FAULTFLAGS)"; \
	$(if $(shell command -v taskset),taskset -c 1) bin/bench -server $(BIN) -faults -cluster-bin "$$bin" $(FAULTFLAGS)

load-revisions: build ## 250 distinct pods/s for 30 s in namespaces on tags prod, canary and revision 1-31 while prod moves to 1-32 and 1-31's bundle is swapped; times how soon answers follow (~45 s, REVFLAGS="-rate 150"); exit 1 on a failed admission or a change never seen
	$(GO) build -o bin/bench ./test/bench
	@bin=$${REGO_INJECTOR_CLUSTER_BIN:-$$(test/tools/cluster-binaries.sh)} || bin=; \
	echo "$(if $(shell command -v taskset),taskset -c 1) bin/bench -server $(BIN) -revisions -duration 30s -rate 250 -cluster-bin $$bin $(REVFLAGS)"; \
	$(if $(shell command -v taskset),taskset -c 1) bin/bench -server $(BIN) -revisions -duration 30s -rate 250 -cluster-bin "$$bin" $(REVFLAGS)

# The figure of docs/observability.md#what-the-dashboard-shows, from the run's own scrapes of /metrics
# (test/dashboard); build/dashboard-samples.json keeps them: bin/dashboard -replay FILE draws them again.
dashboard-png: build ## draw two dashboard panels over a 20 s load run on 127.0.0.1 into docs/images/dashboard-admissions.png (~30 s)
	$(GO) build -o bin/dashboard ./test/dashboard
	$(if $(shell command -v taskset),taskset -c 1) bin/dashboard -server $(BIN) -o docs/images/dashboard-admissions.png -samples build/dashboard-samples.json $(DASHFLAGS)

fuzz: ## fuzz the decoders that read network input, $(FUZZTIME) each
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./engine/admission
	$(GO) test -run '^$$' -fuzz '^FuzzInject$$' -fuzztime $(FUZZTIME) ./engine/injector
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeObject$$' -fuzztime $(FUZZTIME) ./engine/injector
	$(GO) test -run '^$$' -fuzz '^FuzzCreate$$' -fuzztime $(FUZZTIME) ./engine/patch
	$(GO) test -run '^$$' -fuzz '^FuzzPodMeta$$' -fuzztime $(FUZZTIME) ./engine/revisions
	$(GO) test -run '^$$' -fuzz '^FuzzWitness$$' -fuzztime $(FUZZTIME) ./engine/registration

clean: ## remove build outputs
	rm -rf bin build
