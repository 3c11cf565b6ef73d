# uvs — userspace virtual server. `make` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
CMDS  := $(notdir $(wildcard cmd/*))
export CGO_ENABLED := 0

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the system packages the tests and demo need (apt-get, only what is missing)
	@./scripts/install-deps.sh

.PHONY: build
build: ## build every command into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: test
test: deps ## run every test: unit, race, fuzz seeds, netns end-to-end on both I/O backends and the labs (as root), benchmarks once
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	UVS_E2E_IO=afpacket UVS_IO=afpacket $(GO) test -count=1 -timeout 20m ./e2e/
	CGO_ENABLED=1 $(GO) test -count=1 -race -timeout 20m ./sched/... ./conntrack/... ./dataplane/... ./control/...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 10m ./...

.PHONY: demo
demo: deps build ## build, run the built-in demo and tear it down
	$(BIN)/uvs-lab demo

.PHONY: bench
bench: ## (root) uvs vs kernel forwarding, nftables, iptables, HAProxy into bench/results, then the Go micro-benchmarks; QUICK=1: < 3 min
	@[ "$$(id -u)" = 0 ] || { echo "make bench: needs root (it builds network namespaces): sudo make bench" >&2; exit 1; }
	@./bench/install-deps.sh
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...
	$(BIN)/uvs-bench $(if $(QUICK),--quick) --bin $(BIN) --out bench/results \
	  --micro '$(if $(QUICK),./ipvsadm ./conntrack ./sched ./modes ./dataplane ./bench,./...)' --micro-benchtime $(if $(QUICK),100ms,200ms)

FUZZTIME ?= 20s
FUZZPARALLEL ?= 2
FUZZMINTIME ?= 1000x
FUZZPKGS ?= ./...
.PHONY: fuzz fuzz-keep
# Each target runs with at most FUZZPARALLEL workers. FUZZMINTIME bounds
# how much the fuzzer minimises each new input (interesting or failing):
# Go's default of 60 s per input, quadratic in its length, stalled the
# campaigns at 0 execs/s. It is a count, not a time: a time limit kills a
# worker that hangs while minimising before the per-input watchdog
# (internal/fuzzwatch) can report it, and the run passes. New inputs stay in $$(go env GOCACHE)/fuzz;
# `make fuzz-keep` copies them into the packages' testdata/fuzz.
fuzz: ## run every fuzz target for FUZZTIME each (default 20s; FUZZPKGS, FUZZPARALLEL, FUZZMINTIME)
	@set -e; for pkg in $$($(GO) list $(FUZZPKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) \
	      -fuzzminimizetime $(FUZZMINTIME) -parallel $(FUZZPARALLEL) $$pkg; \
	  done; done

EXECS ?= 10000000
CAP ?= 600
.PHONY: fuzz-campaign
fuzz-campaign: ## run every fuzz target until EXECS executions (10 M) or CAP seconds (600) each, one at a time; prints package, target, executions, seconds, result
	@EXECS=$(EXECS) CAP=$(CAP) FUZZPARALLEL=$(FUZZPARALLEL) FUZZMINTIME=$(FUZZMINTIME) GO=$(GO) scripts/fuzz-campaign $(FUZZPKGS)

fuzz-keep: ## copy the fuzz corpus the fuzzer found (GOCACHE) into each package's testdata/fuzz (the corpus kept in git)
	@cache=$$($(GO) env GOCACHE)/fuzz; mod=$$($(GO) list -m); \
	for pkg in $$($(GO) list $(FUZZPKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    src=$$cache/$$pkg/$$f; [ -d $$src ] || continue; \
	    mkdir -p $$dir/testdata/fuzz/$$f; n=0; \
	    for in in $$src/*; do \
	      [ -e $$dir/testdata/fuzz/$$f/$$(basename $$in) ] || { cp $$in $$dir/testdata/fuzz/$$f/; n=$$((n+1)); }; \
	    done; echo "$${pkg#$$mod/} $$f: $$n new inputs kept"; \
	  done; done

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
.PHONY: lint
lint: ## gofmt, go vet, go mod tidy -diff, staticcheck (when it installs)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	@if $(GO) run $(STATICCHECK) -version >/dev/null 2>&1; then \
	  echo "$(GO) run $(STATICCHECK) ./..."; $(GO) run $(STATICCHECK) ./...; else echo "staticcheck unavailable, skipped"; fi

CROSS_GOOS ?= darwin freebsd
.PHONY: cross
cross: ## build and vet every package (tests too) for non-Linux systems, so the _others.go stubs stay true
	@set -e; for os in $(CROSS_GOOS); do echo "GOOS=$$os go build ./... && GOOS=$$os go vet ./..."; \
	  GOOS=$$os $(GO) build ./... && GOOS=$$os $(GO) vet ./...; done

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
# systemd reads units from /lib/systemd/system and /usr/local/lib/systemd/system.
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
.PHONY: install
install: build ## install the commands into $(PREFIX)/bin (ipvsadm names where none exist), uvsd.service into $(UNITDIR), and, if absent, $(SYSCONFDIR)/default/uvsd and $(SYSCONFDIR)/uvs/uvsd.rules; DESTDIR honoured
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix $(BIN)/,$(CMDS)) $(DESTDIR)$(PREFIX)/bin/
	@cd $(DESTDIR)$(PREFIX)/bin && for n in uvsadm-save uvsadm-restore ipvsadm ipvsadm-save ipvsadm-restore; do \
	  if command -v $$n >/dev/null 2>&1 && [ "$$(readlink -f $$(command -v $$n))" != "$$(readlink -f uvsadm)" ]; then \
	    echo "keeping the existing $$n"; else ln -sf uvsadm $$n; echo "$$n -> uvsadm"; fi; done
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(SYSCONFDIR)/uvs
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/uvsd.service > $(DESTDIR)$(UNITDIR)/uvsd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/uvsd.service
	@# The configuration is the operator's: never overwritten.
	@[ -e $(DESTDIR)$(SYSCONFDIR)/default/uvsd ] && echo "keeping the existing $(SYSCONFDIR)/default/uvsd" || { \
	  sed -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/uvsd.default > $(DESTDIR)$(SYSCONFDIR)/default/uvsd; chmod 0644 $(DESTDIR)$(SYSCONFDIR)/default/uvsd; }
	@[ -e $(DESTDIR)$(SYSCONFDIR)/uvs/uvsd.rules ] && echo "keeping the existing $(SYSCONFDIR)/uvs/uvsd.rules" || \
	  install -m 0644 dist/uvsd.rules $(DESTDIR)$(SYSCONFDIR)/uvs/uvsd.rules

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
