# edgehost build. `make deps` fetches native TFLite and models into .deps/ (pinned, sha256-checked).
SHELL := /bin/bash
ROOT := $(abspath .)
TFLITE ?= 2.17
TFLITE_LIB := $(ROOT)/.deps/tflite/$(TFLITE)/lib
export CGO_ENABLED := 1
export CGO_CFLAGS := -I$(ROOT)/host/tflite/include -I$(ROOT)/.deps/tflite/include -O2
export CGO_LDFLAGS := -L$(TFLITE_LIB) -Wl,-rpath,$(TFLITE_LIB)
export EDGEHOST_ROOT := $(ROOT)

.PHONY: all deps build plugins run test test-race bench fuzz vet fmt clean

all: build plugins

deps: .deps/.ok
.deps/.ok: scripts/deps.sh
	bash scripts/deps.sh
	touch $@

build: deps
	go build -o bin/edgehost ./cmd/edgehost

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
