# Butter Compass. `make run` starts the platform on the embedded broker,
# `make test` runs every module's tests. Modules are listed in go.work.

MODULES := proto broker-bridge cli e2e deployer fnbox gateway loadmon sdk/go timer tracer
GO      ?= go
BIN     := bin
DATA    ?= .butter
# Fuzz budgets are execution counts, not durations: Go 1.26's fuzz coordinator
# can report a spurious "context deadline exceeded" when a duration budget
# expires mid-call (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 500000x

export CGO_ENABLED ?= 1

.PHONY: run build images service-images test test-short fuzz bench lint tidy clean

## run: start butter up on the embedded broker (data in ./.butter)
run: build
	$(BIN)/butter up --data $(DATA)

## build: build the butter command and every service binary into bin/
build:
	@mkdir -p $(BIN)
	cd cli && $(GO) build -o ../$(BIN)/butter ./cmd/butter
	cd broker-bridge && $(GO) build -o ../$(BIN)/butter-broker ./cmd/butter-broker
	cd broker-bridge && $(GO) build -o ../$(BIN)/butter-bridge ./cmd/butter-bridge
	cd broker-bridge && $(GO) build -o ../$(BIN)/vcsim ./cmd/vcsim
	cd deployer && $(GO) build -o ../$(BIN)/butter-deployer ./cmd/butter-deployer
	cd fnbox && $(GO) build -o ../$(BIN)/fnbox ./cmd/fnbox
	cd gateway && $(GO) build -o ../$(BIN)/butter-gateway ./cmd/butter-gateway
	cd loadmon && $(GO) build -o ../$(BIN)/butter-loadmon ./cmd/butter-loadmon
	cd timer && $(GO) build -o ../$(BIN)/butter-timer ./cmd/butter-timer
	cd tracer && $(GO) build -o ../$(BIN)/butter-tracer ./cmd/butter-tracer

## images: the docker runtime's images, built locally and never pulled:
## butter-fnbox (scratch), butter-node and butter-python (Debian bases made
## once with mmdebstrap, cached by tag); see docs/docker.md
images:
	deploy/images/build.sh

## service-images: static service binaries in butter-<service>:dev images (deploy/)
service-images:
	deploy/build-images.sh

## test: the runtime images (built once, cached), every module's tests with the
## race detector, then a short fuzz run
test: lint images
	@set -e; for m in $(MODULES); do \
		echo "== $$m"; (cd $$m && $(GO) test -race -count=1 -timeout 15m ./...); \
	done
	@echo "== third_party/kfake (our patches' tests)"; cd third_party/kfake && GOWORK=off $(GO) test -race -count=1 -timeout 10m .
	$(MAKE) fuzz FUZZTIME=100000x

## fuzz: run every fuzz target for FUZZTIME executions each
fuzz:
	cd proto && $(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./descriptor
	cd proto && $(GO) test -run '^$$' -fuzz '^FuzzFromRecord$$' -fuzztime $(FUZZTIME) ./envelope
	cd proto && $(GO) test -run '^$$' -fuzz '^FuzzFastPath$$' -fuzztime $(FUZZTIME) ./envelope
	cd gateway && $(GO) test -run '^$$' -fuzz '^FuzzParseToken$$' -fuzztime $(FUZZTIME) ./internal/auth
	cd gateway && $(GO) test -run '^$$' -fuzz '^FuzzFromResult$$' -fuzztime $(FUZZTIME) ./internal/httpevent
	cd timer && $(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME) ./internal/api

## bench: measure the embedded broker's raw limits, write docs/benchmarks.md
bench:
	cd e2e && $(GO) run ./cmd/butter-bench -o ../docs/benchmarks.md

## lint: go vet and gofmt on every module
lint:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@bad=$$(gofmt -l $(MODULES)); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi

## tidy: go mod tidy in every module
tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf $(BIN)
