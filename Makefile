# relaygate: build, test, lint, demo. Privileged targets (test's integration
# part, demo) need root: they build network namespaces, a bridge and
# nftables rules.

GO          ?= go
BIN         := bin
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

export CGO_ENABLED := 0

.PHONY: all build labtools test unit lint demo deps clean bench fuzz

all: build

## build: the static appliance binary in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/appliance ./cmd/appliance

## labtools: the lab's remote MX and its switches' SNMP helper (used by demo and the integration tests)
labtools:
	$(GO) build -o $(BIN)/labmx ./internal/testutil/labmx
	$(GO) build -o $(BIN)/labbridgemib ./internal/testutil/labbridgemib

## test: lint, then every test; the integration tests run in network namespaces when root;
## then each fuzz target of the parsers of untrusted input for FUZZTIME; then, when root,
## the appliance image is built and booted in QEMU (test-image)
test: deps lint build labtools
	RELAYGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory test-image

## test-image: make image, then make image-test, when root (CI runs as root); skipped otherwise
test-image:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make test: SKIPPING make image and make image-test: they need root (debootstrap, chroot, network namespaces, QEMU)"; \
	else \
	  $(MAKE) --no-print-directory VERSION=$(VERSION) image && \
	  $(MAKE) --no-print-directory VERSION=$(VERSION) image-test; \
	fi

FUZZTIME ?= 10s
FUZZ_TARGETS := smtpproxy:FuzzParseCommand smtpproxy:FuzzReadReply smtpproxy:FuzzDataScanner \
	inspect:FuzzConversation inspect:FuzzStream

## fuzz: run every fuzz target for FUZZTIME (new failures land in testdata/fuzz as regression cases)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$pkg/; done

## unit: the tests that need no root, with the race detector
unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## demo: the lab with the appliance in enforce mode; Ctrl-C tears it down
demo: deps build labtools
	bash scripts/demo.sh

## bench: the benchmarks in the lab (scripts/bench*.sh), each against its baseline in the same run (root)
bench: deps
	@set -e; for s in scripts/bench*.sh; do echo "== $$s"; bash $$s; done

## deps: install the Debian packages the lab and tests use (when root and missing)
deps:
	@bash scripts/deps.sh

clean:
	rm -rf $(BIN) dist .lab

.PHONY: image image-test test-image

## image: the bootable appliance disk (raw, qcow2) and update bundle in dist/ (root; see image/build.sh);
## SIGNING_KEY=FILE signs the update bundle with your key (default: a throwaway test key; docs/image.md)
image: build
	VERSION=$(VERSION) SIGNING_KEY=$(SIGNING_KEY) bash image/build.sh

## image-test: boot the qcow2 in QEMU between namespace hosts and check it (root; after make image)
image-test: labtools
	VERSION=$(VERSION) GO=$(GO) SIGNING_KEY=$(SIGNING_KEY) bash image/test/image-test.sh
