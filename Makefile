# ens — Mon espace santé provisioning pipeline. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
PKGS  := ./...
export GOFLAGS := -mod=mod

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

deps: ## Install what the project needs from Debian when missing (PostgreSQL, poppler, Chromium, Postfix, promtool)
	@missing=(); \
	if [ -z "$$DATABASE_URL" ] && ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then missing+=(postgresql); fi; \
	command -v pdftotext >/dev/null || missing+=(poppler-utils); \
	command -v chromium >/dev/null || missing+=(chromium chromium-driver); \
	test -x /usr/sbin/postfix || missing+=(postfix); \
	command -v promtool >/dev/null || missing+=(prometheus); \
	if [ $${#missing[@]} -gt 0 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $${missing[*]}"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$${missing[@]}" >/dev/null; \
	  else echo "missing: $${missing[*]} — install them (Debian: apt-get install $${missing[*]}) or set DATABASE_URL" >&2; exit 1; fi; \
	fi

build: ## Build bin/ens
	$(GO) build -o bin/ens ./cmd/ens

# Fuzz targets, as package:Target. FUZZ_PURE need nothing but the code: `make test`
# fuzzes each for FUZZTIME. FUZZ_HTTP drive the HTTP handlers on a real database (each
# fuzzing process starts its own PostgreSQL, which takes longer than a brief run):
# `make test` runs their seed corpus (go test does), `make fuzz` fuzzes them too.
FUZZ_PURE := ./provisioning/registry/:FuzzRegistryReader ./provisioning/registry/:FuzzQuoteGuard ./notify/:FuzzParseReport ./optout/:FuzzParseCode
FUZZ_HTTP := ./optout/:FuzzAPI ./optout/:FuzzPublicRoutes ./jobs/ops/:FuzzOpsArea
FUZZTIME ?= 3s

test: deps ## go vet + go test -race (starts its own PostgreSQL unless DATABASE_URL is set), then the pure fuzz targets briefly
	$(GO) vet $(PKGS)
	$(MAKE) --no-print-directory monitoring
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory fuzz-run TARGETS="$(FUZZ_PURE)"

monitoring: ## Check the alerting rules in docs/monitoring and run their unit tests (promtool)
	cd docs/monitoring && promtool check rules alerts.yml && promtool test rules alerts_test.yml

fuzz: ## Fuzz every target, the HTTP handlers included, for FUZZTIME each (e.g. make fuzz FUZZTIME=10m)
	$(MAKE) --no-print-directory fuzz-run TARGETS="$(FUZZ_PURE) $(FUZZ_HTTP)" FUZZTIME=$(if $(filter 3s,$(FUZZTIME)),1m,$(FUZZTIME))

# A run fails on a finding (an input written under testdata/fuzz); an error of the fuzzing
# engine itself (Go's coordinator at times ends a run with "context deadline exceeded") is
# reported and does not fail the build.
fuzz-run:
	@set -e; for f in $(TARGETS); do echo "fuzz $${f#*:} ($${f%%:*}, $(FUZZTIME))"; \
	  out=$$($(GO) test -timeout 30m -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}" 2>&1) || \
	  if echo "$$out" | grep -q "Failing input written to"; then echo "$$out" | tail -40; exit 1; \
	  else echo "  fuzzing engine error, no finding:"; echo "$$out" | grep -v '^\s*/' | tail -5 | sed 's/^/    /'; fi; done

demo: deps build ## Run a whole wave end to end on a private database and a local SMTP server
	./bin/ens demo

bench: deps build ## Measure throughput against the raw tools on durable PostgreSQL settings; writes var/bench/*.json (not run in CI)
	ENS_TEST_DURABLE=1 $(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./provisioning/wave/ ./provisioning/reconcile/ ./jobs/ ./optout/ ./cmd/ens/

# The cost of a person as a campaign grows (cmd/ens/scale_bench_test.go): the same wave at
# 100,000, 1,000,000 and 5,000,000 people (times ENS_BENCH_SCALE), each on a durable cluster of
# its own whose shared_buffers is 300 bytes a person, about a quarter of what its database
# holds once the wave is out, as a 65-million deployment would have. About an hour; needs
# about 15 GB of disk.
SCALE_PEOPLE ?= 100000 1000000 5000000
bench-scale: deps ## Measure CPU per notice, bytes per person and disk reads at 100k, 1M and 5M people; prints the table (not run in CI)
	@rm -f var/bench/wave-scale-*.json; set -e; for n in $(SCALE_PEOPLE); do \
	  n=$$(awk -v n=$$n -v s=$${ENS_BENCH_SCALE:-1} 'BEGIN { printf "%d", n * s }'); \
	  sb=$$(( n * 300 / 1048576 )); [ $$sb -ge 16 ] || sb=16; \
	  echo "== $$n people, shared_buffers $${sb}MB"; \
	  ENS_BENCH_PEOPLE=$$n ENS_TEST_DURABLE=1 ENS_TEST_PG_OPTIONS="-c shared_buffers=$${sb}MB -c shared_preload_libraries=pg_stat_statements" \
	    $(GO) test -p 1 -run '^$$' -bench '^BenchmarkWaveScale$$' -benchtime 1x -timeout 180m ./cmd/ens/ | grep -v '^smtp/server'; \
	done

# The fault suite (cmd/ens/chaos_test.go): each fault in turn on real processes; make test
# runs it short (one run of each, three kills, 1,500 people).
CHAOS_RUNS   ?= 3
CHAOS_KILLS  ?= 20
CHAOS_PEOPLE ?= 5000
chaos: deps ## The fault suite at length: CHAOS_RUNS runs of each fault, CHAOS_KILLS worker kills a run; writes var/chaos.md
	@mkdir -p var
	ENS_CHAOS_RUNS=$(CHAOS_RUNS) ENS_CHAOS_KILLS=$(CHAOS_KILLS) ENS_CHAOS_PEOPLE=$(CHAOS_PEOPLE) ENS_CHAOS_TABLE=$(CURDIR)/var/chaos.md \
	  $(GO) test -count=1 -timeout 60m -run '^TestChaos$$' -v ./cmd/ens/ | grep -v '^smtp/server'; test $${PIPESTATUS[0]} -eq 0
	@cat var/chaos.md

# The linter, pinned; installed once per machine next to Go's other tools.
LINT_VERSION := v2.15.0
LINT := $(shell $(GO) env GOPATH)/bin/golangci-lint-$(LINT_VERSION)

$(LINT):
	@echo "installing golangci-lint $(LINT_VERSION)"
	@tmp=$$(mktemp -d) && GOFLAGS= GOBIN=$$tmp $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION) && \
	  mkdir -p $(dir $(LINT)) && mv $$tmp/golangci-lint $(LINT) && rmdir $$tmp

lint: $(LINT) ## gofmt, then golangci-lint with the checked-in .golangci.yml (govet, staticcheck, errcheck, gosec, revive, misspell…)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(LINT) run ./...


DSFR_VERSION := 1.15.3
AXE_VERSION := 4.14.1
ALTCHA_VERSION := 3.2.2
assets: ## Refresh the vendored front-end assets from npm, pinned: the State's design system (DSFR) and the ALTCHA proof-of-work widget embedded in the form, axe-core for its accessibility test
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent @gouvfr/dsfr@$(DSFR_VERSION) axe-core@$(AXE_VERSION) altcha@$(ALTCHA_VERSION) >/dev/null && \
	  mkdir dsfr axe altcha && tar xzf gouvfr-dsfr-$(DSFR_VERSION).tgz -C dsfr && tar xzf axe-core-$(AXE_VERSION).tgz -C axe && tar xzf altcha-$(ALTCHA_VERSION).tgz -C altcha && \
	  rm -rf $(CURDIR)/optout/web/altcha && mkdir -p $(CURDIR)/optout/web/altcha && \
	  cp altcha/package/dist/external/altcha.min.js altcha/package/dist/external/altcha.css altcha/package/dist/workers/pbkdf2.js \
	    altcha/package/dist/i18n/fr-fr.js altcha/package/LICENSE.txt $(CURDIR)/optout/web/altcha/ && \
	  rm -rf $(CURDIR)/optout/web/dsfr && mkdir -p $(CURDIR)/optout/web/dsfr && \
	  cp dsfr/package/dist/dsfr.min.css dsfr/package/LICENSE.md $(CURDIR)/optout/web/dsfr/ && \
	  cd dsfr/package/dist && grep -oE 'url\((icons|fonts)/[^)"]+\)' dsfr.min.css | sed 's/^url(//; s/)$$//' | sort -u | \
	  while read f; do mkdir -p $(CURDIR)/optout/web/dsfr/$$(dirname $$f) && cp $$f $(CURDIR)/optout/web/dsfr/$$f; done && \
	  cp $$tmp/axe/package/axe.min.js $(CURDIR)/optout/testdata/axe.min.js && cp $$tmp/axe/package/LICENSE $(CURDIR)/optout/testdata/axe.LICENSE && \
	  rm -rf $$tmp && echo "DSFR $(DSFR_VERSION), ALTCHA $(ALTCHA_VERSION) and axe-core $(AXE_VERSION) vendored"

clean: ## Stop the private database and remove local state
	-./bin/ens db stop 2>/dev/null
	rm -rf bin var

.PHONY: help deps build test monitoring fuzz fuzz-run demo bench bench-scale chaos lint assets clean
