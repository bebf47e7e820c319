.DEFAULT_GOAL := test

GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
PKGS := ./...

## test: every test, with the race detector (the README's test command)
test:
	go test -race -count=1 -timeout 30m $(PKGS)

## short: the tests without the slow ones (TTL waits, binaries, faults)
short:
	go test -race -count=1 -short $(PKGS)

## bench: every benchmark once through, with allocations
bench:
	go test -run '^$$' -bench . -benchmem $(PKGS)

## bench-check: compile and run each benchmark once (CI)
bench-check:
	go test -run '^$$' -bench . -benchtime=1x $(PKGS)

## redis-bench-check: the Redis side-by-side module (bench/redis, a module
## of its own) is tidy, vets, and its bus rows run briefly (no Redis needed)
redis-bench-check:
	cd bench/redis && go mod tidy && git diff --exit-code go.mod go.sum && go vet ./... && go test -count=1 ./...

## vet: go vet
vet:
	go vet $(PKGS)

## fmt-check: fail when gofmt would change a file
fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## lint: golangci-lint with .golangci.yml (fetched through the Go module proxy)
lint:
	go run $(GOLANGCI_LINT) run

## tidy-check: fail when go mod tidy changes go.mod or go.sum
tidy-check:
	go mod tidy
	git diff --exit-code go.mod go.sum

## cover: test coverage summary
cover:
	go test -count=1 -coverprofile=cover.out $(PKGS)
	go tool cover -func=cover.out | tail -1

## run: the bus on an embedded NATS server (the README's run command)
run:
	go run ./cmd/session-bus serve

.PHONY: test short bench bench-check redis-bench-check vet fmt-check lint tidy-check cover run
