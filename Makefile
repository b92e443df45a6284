# privy's developer and CI entry points. `make test` is what .ci/run runs.
#
# GOFLAGS from the environment or `go env -w` is honoured, never overwritten:
# the flags a target needs are passed on its own command line.

GO ?= go
BIN := bin/privy

.PHONY: test fuzz bench demo build clean lint

test:
	scripts/test-env.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	scripts/fuzz.sh 5s

fuzz:
	scripts/fuzz.sh 60s

bench:
	scripts/bench.sh

demo:
	scripts/demo.sh

# A static binary: no cgo, no paths of this machine in it.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/privy

clean:
	rm -rf bin

# testdata may hold Go files that are wrong on purpose; go ignores it too.
lint:
	@unformatted="$$(find . -name '*.go' -not -path '*/testdata/*' -not -path '*/.*' -exec gofmt -l {} +)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -w needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
