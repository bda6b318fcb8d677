# The README's two commands: `go run ./cmd/muster serve` and `make test`.
GO ?= go
TESTFLAGS ?=

.PHONY: test build lint bench

# test installs nothing by itself; .ci/run and the README say what the
# suite uses (PostgreSQL through MUSTER_TEST_DATABASE_URL, softhsm2, openssl).
test:
	$(GO) test -count=1 -timeout 15m $(TESTFLAGS) ./...

build:
	$(GO) build -o bin/muster ./cmd/muster

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
