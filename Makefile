# edgehost build. `make deps` fetches native TFLite and models into .deps/ (pinned, sha256-checked).
SHELL := /bin/bash
ROOT := $(abspath .)
TFLITE ?= 2.17
TFLITE_LIB := $(ROOT)/.deps/tflite/$(TFLITE)/lib
export CGO_ENABLED := 1
export CGO_CFLAGS := -I$(ROOT)/host/tflite/include -I$(ROOT)/.deps/tflite/include -O2
export CGO_LDFLAGS := -L$(TFLITE_LIB) -Wl,-rpath,$(TFLITE_LIB)
export EDGEHOST_ROOT := $(ROOT)

.SECONDEXPANSION:
.PHONY: all deps build plugins c-plugins run test test-race bench fuzz vet fmt clean

all: build plugins

deps: .deps/.ok
.deps/.ok: scripts/deps.sh
	bash scripts/deps.sh
	touch $@

build: deps
	go build -o bin/edgehost ./cmd/edgehost

GO_PLUGINS := imagepre-go classify-go ssd-go
C_PLUGINS := $(patsubst plugins/examples/%/Makefile,%,$(wildcard plugins/examples/*-c/Makefile))
SDK_GO := $(wildcard abi/*.go sdk/go/edgehost/*.go)

plugins: $(foreach p,$(GO_PLUGINS),plugins/examples/$(p)/$(p).wasm) c-plugins

# Go plugins: a reactor module for wasip1, then the manifest embedded as a custom section.
plugins/examples/%.wasm: $$(wildcard plugins/examples/$$(*D)/*.go plugins/examples/$$(*D)/manifest.json) $(SDK_GO)
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -buildmode=c-shared -o $@ ./plugins/examples/$(*D)
	go run ./sdk/cmd/ehmanifest -in $@ -manifest plugins/examples/$(*D)/manifest.json

c-plugins:
	@for p in $(C_PLUGINS); do $(MAKE) --no-print-directory -C plugins/examples/$$p || exit 1; done

run: build plugins
	./bin/edgehost --config config.toml run --pipeline classify .deps/models/peacock.png

test: build plugins
	go vet ./...
	go test -count=1 ./...

test-race: build plugins
	go test -race -count=1 ./host/...

bench: build plugins
	go test -run '^$$' -bench . -benchtime 3s ./host/...

clean:
	rm -rf bin .deps
