# edgehost build. `make deps` fetches native TFLite and models into .deps/ (pinned, sha256-checked).
SHELL := /bin/bash
ROOT := $(abspath .)
TFLITE ?= 2.17
ARCH ?= amd64
TFLITE_LIB := $(ROOT)/.deps/tflite/$(TFLITE)/lib
export CGO_ENABLED := 1
export CGO_CFLAGS := -I$(ROOT)/host/tflite/include -I$(ROOT)/.deps/tflite/include -O2
export CGO_LDFLAGS := -L$(TFLITE_LIB) -Wl,-rpath,$(TFLITE_LIB)
export EDGEHOST_ROOT := $(ROOT)

.SECONDEXPANSION:
.PHONY: deps-ffmpeg deps-rtsp bench-stream bench-stream-venv stream-accept
.PHONY: all deps brokers build plugins c-plugins run test test-busy test-tflite29 client-check proto bench bench-go bench-venv bench-data bench-cascade fuzz clean

all: build plugins

deps: .deps/.ok .deps/models/pose_landmark_full.tflite $(if $(filter-out amd64,$(ARCH)),.deps/tflite/2.17-$(ARCH)/.ok)
.deps/.ok: scripts/deps.sh
	bash scripts/deps.sh
	touch $@
# ARCH=arm64|armhf: that architecture's TFLite 2.17.1 (the same PyPI wheel's aarch64/armv7l
# build) and a `zig cc` wrapper for it (scripts/deps-arch.sh).
.deps/tflite/2.17-%/.ok: scripts/deps-arch.sh .deps/.ok
	bash scripts/deps-arch.sh $*
	touch $@

# MediaPipe's pose landmark model (npm @mediapipe/pose, pinned): the `people` cascade's second model.
.deps/models/pose_landmark_full.tflite: scripts/deps-pose.sh
	bash scripts/deps-pose.sh

# The servers the MQTT and OCI tests run against: Debian's mosquitto 2.0.11 and
# docker-registry 2.8.2, fetched without root (apt-get download + dpkg-deb -x) into .deps,
# pinned by version and sha256 (scripts/brokers.sh). Not fatal when the archive is
# unreachable: those tests then skip, saying so.
brokers: .deps/mosquitto/.ok .deps/registry/.ok .deps/jpegtools/.ok
.deps/mosquitto/.ok .deps/registry/.ok .deps/jpegtools/.ok: scripts/brokers.sh
	bash scripts/brokers.sh

# The static ffmpeg 7.0.2 that camera streams (rtsp://, video files) run as a child process:
# PyPI imageio-ffmpeg 0.6.0 (29 MB once), pinned by sha256 (scripts/ffmpeg.sh). Not fatal when
# PyPI is unreachable: the stream tests that need ffmpeg then skip, saying so.
deps-ffmpeg: .deps/ffmpeg/.ok
.deps/ffmpeg/.ok: scripts/ffmpeg.sh
	bash scripts/ffmpeg.sh

# The RTSP server the stream tests publish to (npm rtsp-streaming-server 2.1.0, npm ci from
# scripts/rtsp/package-lock.json). Not fatal without npm: the RTSP test skips.
deps-rtsp: .deps/rtsp/.ok
.deps/rtsp/.ok: scripts/rtsp.sh scripts/rtsp/package-lock.json scripts/rtsp/server.js
	bash scripts/rtsp.sh

# ARCH=arm64|armhf cross-builds bin/linux-ARCH/edgehost with the fetched Zig as the cgo C
# compiler (glibc >= 2.36 symbols at most: Debian 12, Raspberry Pi OS bookworm, Ubuntu 22.04
# has 2.35 and is not covered); the binary finds libtensorflowlite_c.so in $ORIGIN/../lib, the
# layout of the release archive (make release). Measured: ~95 s cold on the shared 2 cores.
GOARCH_amd64 := amd64
GOARCH_arm64 := arm64
GOARCH_armhf := arm GOARM=7
build: deps
ifeq ($(ARCH),amd64)
	go build -o bin/edgehost ./cmd/edgehost
else
	$(MAKE) --no-print-directory bin/linux-$(ARCH)/edgehost
endif

.PHONY: FORCE release test-arm deps-emu
bin/linux-%/edgehost: FORCE .deps/tflite/2.17-%/.ok
	GOOS=linux GOARCH=$(GOARCH_$*) CC=$(ROOT)/.deps/bin/cc-$* \
	CGO_LDFLAGS='-L$(ROOT)/.deps/tflite/2.17-$*/lib -Wl,-rpath,$$ORIGIN/../lib' \
	go build -trimpath -o $@ ./cmd/edgehost

# dist/edgehost-VERSION-linux-{amd64,arm64,armhf}.tar.gz and dist/SHA256SUMS (scripts/release.sh):
# the binary (all three built with zig cc for glibc 2.36), its TFLite library through
# $ORIGIN/../lib, the example plugins, the bundled models, config.toml, the systemd unit, the
# README's board section and THIRD_PARTY.txt. Reproducible: a second run is byte-identical.
# Then the OCI image index (linux/amd64, linux/arm64) as an image layout and its tar
# (scripts/image.py: no daemon; Debian's glibc of each architecture + the release archive).
ifndef VERSION
VERSION := 0.1.0-$(shell git rev-parse --short=12 HEAD)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
endif
RELEASE_ARCHS := amd64 arm64 armhf
.PRECIOUS: .deps/tflite/2.17-%/.ok
release: plugins $(foreach a,$(RELEASE_ARCHS),bin/linux-$(a)/edgehost) deps-emu
	bash scripts/release.sh $(VERSION) $(RELEASE_ARCHS)
	python3 scripts/image.py $(VERSION) dist .deps/emu

# The release archives of arm64 and armhf, and the OCI image's arm64 root filesystem, under
# Debian's qemu-user-static (fetched without
# root by scripts/deps-emu.sh), every shipped pipeline compared with amd64's archive
# (scripts/test-arm.sh says how exactly).
deps-emu: .deps/emu/.ok
.deps/emu/.ok: scripts/deps-emu.sh
	bash scripts/deps-emu.sh
test-arm: release deps-emu
	bash scripts/test-arm.sh $(VERSION)

# LiteRT 2.3.0 (PyPI ai-edge-litert, 22 MB once) for models with `accelerator = ...`;
# deps-openvino adds OpenVINO 2026.3.1 (57 MB once, 158 MB unpacked), the Intel NPU
# dispatch's runtime, which the NPU test runs on this machine's CPU.
LITERT_OK := .deps/litert/2.3.0/.litert.ok
deps-litert: $(LITERT_OK)
$(LITERT_OK): scripts/deps-litert.sh
	bash scripts/deps-litert.sh
deps-openvino: .deps/litert/2.3.0/.openvino.ok
.deps/litert/2.3.0/.openvino.ok: scripts/deps-litert.sh
	bash scripts/deps-litert.sh openvino

GO_PLUGINS := imagepre-go classify-go ssd-go
C_PLUGINS := $(patsubst plugins/examples/%/Makefile,%,$(wildcard plugins/examples/*-c/Makefile))
SDK_GO := $(wildcard abi/*.go sdk/go/edgehost/*.go sdk/go/imaging/*.go)

# Every example embeds its manifest with the binary's `edgehost plugin manifest`: build first.
plugins: build $(foreach p,$(GO_PLUGINS),plugins/examples/$(p)/$(p).wasm) c-plugins rust-plugins sdk/go/testdata/modelcall/modelcall.wasm

# The Go SDK's model-call test plugin (ABI 1.3), run by host/pipeline's TestSDKModelCalls.
sdk/go/testdata/modelcall/modelcall.wasm: sdk/go/testdata/modelcall/main.go sdk/go/testdata/modelcall/manifest.json $(SDK_GO)
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -buildmode=c-shared -o $@ ./sdk/go/testdata/modelcall
	./bin/edgehost plugin manifest --set sdk/go/testdata/modelcall/manifest.json $@

# Go plugins: a reactor module for wasip1 (-s -w: no DWARF or symbol table, so less to hash,
# instrument and decode at every load), then the manifest embedded as a custom section.
plugins/examples/%.wasm: $$(wildcard plugins/examples/$$(*D)/*.go plugins/examples/$$(*D)/manifest.json) $(SDK_GO)
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -buildmode=c-shared -o $@ ./plugins/examples/$(*D)
	./bin/edgehost plugin manifest --set plugins/examples/$(*D)/manifest.json $@

c-plugins: deps
	@for p in $(C_PLUGINS); do $(MAKE) --no-print-directory -C plugins/examples/$$p || exit 1; done

# Rust plugins (sdk/rust/README.md): rustc alone, no cargo or crates.io. scripts/rust.sh fetches
# Debian 12's rustc 1.63 with the wasm32-wasi target into .deps/rust (about 110 MB of .debs,
# once); set RUSTC to use another rustc that has the target. The SDK is compiled once as an
# rlib, each plugin as a cdylib against it, then the manifest is embedded.
RUSTC ?= $(ROOT)/.deps/rust/bin/rustc
RUST_OUT := bin/rust
RUST_FLAGS := --edition 2021 --target wasm32-wasi -O -C strip=symbols
RUST_SDK := $(wildcard sdk/rust/edgehost/src/*.rs)
.PHONY: rust-plugins rust-toolchain
rust-plugins: plugins/examples/segment-rust/segment-rust.wasm sdk/rust/testdata/panic.wasm sdk/rust/testdata/modelcall.wasm

rust-toolchain:
	@if [ "$(RUSTC)" = "$(ROOT)/.deps/rust/bin/rustc" ]; then bash scripts/rust.sh; \
	else $(RUSTC) --print target-list >/dev/null || { echo "RUSTC=$(RUSTC) does not run"; exit 1; }; fi

$(RUST_OUT)/libedgehost.rlib: $(RUST_SDK) | rust-toolchain
	mkdir -p $(RUST_OUT)
	$(RUSTC) $(RUST_FLAGS) --crate-type rlib --crate-name edgehost -o $@ sdk/rust/edgehost/src/lib.rs

plugins/examples/segment-rust/segment-rust.wasm: $$(wildcard plugins/examples/segment-rust/src/*.rs) plugins/examples/segment-rust/manifest.json $(RUST_OUT)/libedgehost.rlib | build
	$(RUSTC) $(RUST_FLAGS) --crate-type cdylib --crate-name segment_rust --extern edgehost=$(RUST_OUT)/libedgehost.rlib -o $@ plugins/examples/segment-rust/src/lib.rs
	./bin/edgehost plugin manifest --set plugins/examples/segment-rust/manifest.json $@

sdk/rust/testdata/modelcall.wasm: sdk/rust/testdata/modelcall.rs sdk/rust/testdata/modelcall.json $(RUST_OUT)/libedgehost.rlib | build
	$(RUSTC) $(RUST_FLAGS) --crate-type cdylib --crate-name rust_modelcall --extern edgehost=$(RUST_OUT)/libedgehost.rlib -o $@ sdk/rust/testdata/modelcall.rs
	./bin/edgehost plugin manifest --set sdk/rust/testdata/modelcall.json $@

sdk/rust/testdata/panic.wasm: sdk/rust/testdata/panic.rs sdk/rust/testdata/manifest.json $(RUST_OUT)/libedgehost.rlib | build
	$(RUSTC) $(RUST_FLAGS) --crate-type cdylib --crate-name rust_panic --extern edgehost=$(RUST_OUT)/libedgehost.rlib -o $@ sdk/rust/testdata/panic.rs
	./bin/edgehost plugin manifest --set sdk/rust/testdata/manifest.json $@

run: build plugins
	./bin/edgehost --config config.toml run --pipeline classify .deps/models/peacock.png

# The README's test command: vet, every test (the fleet manifests' test is its own module,
# deploy/, so that k8s.io/api stays out of edgehost's), then the race detector over the host's
# concurrent parts (-short trims the load tests under -race; the 16 clients × 200 requests
# test then runs in full under -race on its own). -timeout 25m: the race run of host/server
# takes ~7 minutes on a quiet 2-core machine, over go test's default 10 minutes when the
# machine is busy (seen once: a CI run beside other builds timed out mid-package).
test: build plugins brokers deps-litert deps-ffmpeg deps-rtsp test-venv
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above"; exit 1)
	go vet ./...
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go vet ./sdk/go/... ./plugins/examples/...
	go test -count=1 -timeout 25m ./...
	cd deploy && go vet ./... && go test -count=1 ./...
	go test -race -short -count=1 -timeout 25m ./host/pipeline ./host/server ./host/engine ./host/mqtt ./host/stream
	go test -race -count=1 -run '^TestConcurrentClients$$' ./host/server
	go test -race -count=1 -run '^TestCache|^TestCompileOnceRace' ./host/plugin
	$(MAKE) --no-print-directory test-tflite29
	JPEGTRAN=$$(command -v jpegtran || echo $(ROOT)/.deps/bin/jpegtran) $(MAKE) --no-print-directory -C plugins/examples/imagepre-c test

# The accelerator tests: LiteRT CPU, zero copy, the fallbacks, and the NPU path through
# Intel's OpenVINO dispatch on OpenVINO's CPU device (mobilenet_quant). Measured 2026-12-01:
# 2-4 s of tests after a one-time 57 MB fetch. (The CPU, zero-copy and fallback tests also
# run in make test; without OpenVINO the NPU test skips there.)
test-accel: build deps-litert deps-openvino
	go test -count=1 -v -run '^TestLiteRT' ./host/tflite

# The GPU correctness test on Mesa 25 lavapipe (software Vulkan, fetched without root by
# scripts/deps-vulkan.sh: 6 debs, 40 MB, 198 MB unpacked). Measured on the shared 2-core
# machine: 94 s with a cold shader cache (Mesa's, kept in .deps/vulkan/mesa-cache), 2.3 s
# warm. Under heavy load a cold first run once took longer than Dawn's 2-minute wait, and
# the model fell back to the CPU (RATIONALE.md, "LiteRT backend").
VULKAN_LIB := $(ROOT)/.deps/vulkan/root/usr/lib/x86_64-linux-gnu
deps-vulkan: .deps/vulkan/.ok
.deps/vulkan/.ok: scripts/deps-vulkan.sh
	bash scripts/deps-vulkan.sh
# The fallbacks run first, in their own process: LiteRT's WebGPU instance lives as long as
# the process, so once the GPU test has found lavapipe, hiding the driver no longer hides it.
VULKAN_ENV := VK_ICD_FILENAMES=$(ROOT)/.deps/vulkan/lvp_icd.json LD_LIBRARY_PATH=$(VULKAN_LIB) \
	EDGEHOST_TEST_GPU_CACHE=$(ROOT)/.deps/vulkan/litert-cache MESA_SHADER_CACHE_DIR=$(ROOT)/.deps/vulkan/mesa-cache
test-gpu: build deps-litert deps-vulkan
	$(VULKAN_ENV) go test -count=1 -v -run '^TestLiteRTFallback$$' ./host/tflite
	$(VULKAN_ENV) go test -count=1 -v -timeout 30m -run '^TestLiteRTGPU' ./host/tflite

# Classic TFLite vs LiteRT on the CPU (and the NPU path, OpenVINO's CPU device; the GPU where
# VK_ICD_FILENAMES names a driver) per bundled model: BENCH_ROUNDS rounds, each running every
# backend once (interleaved), then the median ms per invoke and the ratio to classic.
BENCH_ROUNDS ?= 3
bench-accel: build deps-litert deps-openvino
	go test -c -o bin/tflite.test ./host/tflite
	cd host/tflite && for r in $$(seq $(BENCH_ROUNDS)); do \
		../../bin/tflite.test -test.run '^$$' -test.bench '^BenchmarkBackends$$' -test.benchtime 20x 2>/dev/null | grep '^BenchmarkBackends/'; \
	done | bash ../../scripts/bench-accel-table.sh

# The packages whose tests involve time (budgets, queues, reload, serving) once more while
# every core is kept busy by CPU-bound processes: they must hold on a loaded machine (-short:
# the long measurements, the memory-over-swaps and latency tables, run once in `make test`).
test-busy: build plugins brokers
	bash scripts/busy.sh go test -short -count=1 ./host/... ./cmd/...

# The same native and pipeline tests on the TFLite 2.9 fallback library (one-copy mode).
test-tflite29: deps plugins
	. scripts/env.sh 2.9 && go test -count=1 ./host/tflite ./host/pipeline

# edgehost against what a user would pick instead (Pillow + ai-edge-litert in Python, native
# Go), one interleaved run, printed as one markdown table of ratios and written to
# .deps/bench/results.md. Rounds and durations: BENCH_ROUNDS, BENCH_HTTP_REQS, BENCH_TPUT_SECS,
# BENCH_TPUT_ROUNDS (see bench/README.md). Only this target needs the venv; make test does not.
bench: build plugins bench-venv bench-data wakeword-ref bench-cascade
	go build -o bin/ehbench ./bench/ehbench
	./bin/ehbench -root $(ROOT) -python $(BENCH_PY) -out .deps/bench/results.md
	. scripts/env.sh && go run ./tools/wakewordbench -out .deps/bench/wakeword.md

# The people cascade in process against the same chain in Python (interleaved); its HTTP rows
# are ehbench's (edgehost people / Python people; `./bin/ehbench -no-inproc -only people`).
bench-cascade: build plugins bench-venv
	go build -o bin/ehcascade ./bench/ehcascade
	./bin/ehcascade -root $(ROOT) -python $(BENCH_PY) -out .deps/bench/cascade.md

# The Go micro-benchmarks of the host packages.
bench-go: build plugins
	go test -run '^$$' -bench . -benchtime $(BENCHTIME) ./host/...

# Camera streams (issue 27): a 30 fps Go MJPEG camera into detect, edgehost (MJPEG parts, and
# ffmpeg-decoded raw frames) against the Python loop a user would write (stream_loop.py:
# grabber keeping the newest frame, Pillow, LiteRT, paho-mqtt), interleaved; one markdown
# table to .deps/bench/stream.md. About 7 minutes with the defaults (STREAM_BENCH_ARGS).
STREAM_BENCH_VENV := .deps/stream-bench-venv
STREAM_BENCH_ARGS ?= -rounds 2 -seconds 15
bench-stream: build plugins brokers deps-ffmpeg bench-stream-venv
	go build -o bin/streambench ./bench/streambench
	./bin/streambench -root $(ROOT) -python $(ROOT)/$(STREAM_BENCH_VENV)/bin/python -out .deps/bench/stream.md $(STREAM_BENCH_ARGS)
bench-stream-venv: $(STREAM_BENCH_VENV)/.ok
$(STREAM_BENCH_VENV)/.ok: bench/stream-requirements.txt
	rm -rf $(STREAM_BENCH_VENV)
	python3 -m venv $(STREAM_BENCH_VENV)
	$(STREAM_BENCH_VENV)/bin/python -m pip install --disable-pip-version-check --quiet --only-binary=:all: -r bench/stream-requirements.txt
	touch $@

# The stream acceptance runs that do not fit make test's budget: the camera killed and
# restarted 10 times (each resume within 2 s), then edgehost's RSS over a 10-minute 30 fps
# stream into detect (scripts/stream_rss.sh; STREAM_RSS_SECS to shorten it).
stream-accept: build plugins deps-ffmpeg
	EDGEHOST_STREAM_RESTARTS=10 go test -count=1 -v -run '^TestStreamCameraRestart$$' ./host/engine
	bash scripts/stream_rss.sh

# The cascade's tests compare with the Python chain and Pillow (bench-venv); without PyPI
# they skip, saying so, rather than stop make test.
.PHONY: test-venv
test-venv:
	@$(MAKE) --no-print-directory bench-venv || echo "make bench-venv failed: the cascade's comparisons with Python (TestPeopleMatchesPython, TestCropMatchesPillow) will skip"

# The competitor environment: a venv with exact versions from bench/requirements.txt.
BENCH_VENV := .deps/bench-venv
BENCH_PY := $(ROOT)/$(BENCH_VENV)/bin/python
bench-venv: $(BENCH_VENV)/.ok
$(BENCH_VENV)/.ok: bench/requirements.txt
	rm -rf $(BENCH_VENV)
	python3 -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --disable-pip-version-check --quiet --only-binary=:all: -r bench/requirements.txt
	touch $@

# A 12-megapixel (4032x3024) camera-like JPEG made from the bundled ssd_example.jpg by the
# pinned Pillow/numpy; its sha256 is checked, so every machine benchmarks the same bytes.
FRAME_12MP := .deps/models/frame_12mp.jpg
FRAME_12MP_SHA256 := c59ae8260c58b7c1cd35c72624dda52d506c553d0862d43d95a5d9ef44ae8051
FRAME_12MP_PROG := .deps/models/frame_12mp_progressive.jpg
FRAME_12MP_PROG_SHA256 := d7a14a02d0929dfd123cfcaf75a7173b6b9734841138b6038cdadda5def0af53
bench-data: $(FRAME_12MP) $(FRAME_12MP_PROG)
$(FRAME_12MP): bench/make_frame.py $(BENCH_VENV)/.ok .deps/.ok
	$(BENCH_PY) bench/make_frame.py .deps/models/ssd_example.jpg $@.tmp
	echo "$(FRAME_12MP_SHA256)  $@.tmp" | sha256sum --check --quiet || \
		{ rm -f $@.tmp; echo "$@: sha256 differs from the pinned one (bench/make_frame.py or the venv changed?)"; exit 1; }
	mv $@.tmp $@

# The same pixels saved as a progressive JPEG (libjpeg's default scan script,
# frame_12mp_progressive.jpg), for the progressive row of the table; pinned the same way.
$(FRAME_12MP_PROG): bench/make_frame.py $(BENCH_VENV)/.ok .deps/.ok
	$(BENCH_PY) bench/make_frame.py .deps/models/ssd_example.jpg $@.tmp --progressive
	echo "$(FRAME_12MP_PROG_SHA256)  $@.tmp" | sha256sum --check --quiet || \
		{ rm -f $@.tmp; echo "$@: sha256 differs from the pinned one (bench/make_frame.py or the venv changed?)"; exit 1; }
	mv $@.tmp $@

# Unmodified Triton/KServe clients (tritonclient.http and tritonclient.grpc) against the
# shipped config, its gRPC service turned on with --grpc-addr.
client-check: build plugins
	bash scripts/client_check.sh

# Wake-word reference data (issue 26): espeak-ng from Debian, pymicro-wakeword from PyPI (pinned),
# the test clips and pymicro-wakeword's per-chunk results, into .deps/wakeword-ref; then the
# comparison with the wakeword pipeline (TestWakewordReference; skipped in make test without it).
.PHONY: wakeword-ref test-wakeword seq-accept bench-wakeword
wakeword-ref: deps
	bash scripts/wakeword-ref.sh

# Acceptance of sequences over gRPC streams (not in make test; takes about 2.5 minutes at the
# defaults): SEQ_ACCEPT_FLAGS="-streams 200 -duration 60s -starts 10000 -swap-streams 50".
SEQ_ACCEPT_FLAGS ?=
seq-accept: build plugins
	. scripts/env.sh && go run ./tools/seqaccept $(SEQ_ACCEPT_FLAGS)

# One stream against pymicro-wakeword, interleaved; the table goes to bench/results.
bench-wakeword: build plugins wakeword-ref
	. scripts/env.sh && go run ./tools/wakewordbench -out .deps/bench/wakeword.md

# Start and idle memory (issue 29): ready and first answer from an empty cache_dir and on a
# restart, time to compiled code, idle RSS and its breakdown, against bench/litert_server.py;
# COLDSTART_FLAGS="-base /path/to/old/edgehost" interleaves an older binary.
COLDSTART_FLAGS ?=
.PHONY: bench-coldstart
bench-coldstart: build plugins bench-venv
	. scripts/env.sh && go run ./tools/coldstart -python $(BENCH_PY) -out .deps/bench/coldstart.md $(COLDSTART_FLAGS)

test-wakeword: wakeword-ref plugins
	. scripts/env.sh && go test -count=1 -p 1 -v -run 'TestWakewordReference|TestSequence' ./host/pipeline

# Regenerates host/grpcserver/inference/*.pb.go from grpc_predict_v2.proto (the generated
# code is committed; only a change of the .proto or of the pinned generators needs this).
proto:
	bash scripts/proto.sh

BENCHTIME ?= 2s
FUZZTIME ?= 30s
FUZZ_TARGETS := ./host/wasm:FuzzInstrument ./host/plugin:FuzzInstrument ./host/plugin:FuzzGuestPointers ./host/plugin:FuzzSections ./host/server:FuzzDecodeInferRequest

# Each run starts from the seeds (go clean -fuzzcache): a corpus grown by earlier runs can
# hold large inputs that make a bounded run stall past -fuzztime.
fuzz: build plugins
	go clean -fuzzcache
	bash scripts/fuzz.sh $(FUZZTIME) $(FUZZ_TARGETS)

clean:
	rm -rf bin .deps dist

# ---- From a trained model to the edge (tools/model/README.md) -------------------------------
# model-venv: Python 3.11 venv with the pinned training/conversion tooling in .deps/model-venv
# (tools/model/requirements.txt, every transitive version fixed by constraints.txt).
# model-flow: train -> convert -> quantise/prune/distil -> evaluate through edgehost -> swap
# under traffic -> pytest; prints the table. Not part of `make test`.
MODEL_PYTHON ?= python3
MODEL_VENV := .deps/model-venv
MODEL_OUT := .deps/model-flow
.PHONY: model-venv model-flow test-model

model-venv: $(MODEL_VENV)/.ok
$(MODEL_VENV)/.ok: tools/model/requirements.txt tools/model/constraints.txt | deps
	$(MODEL_PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "tools/model needs Python 3.11, got " + sys.version'
	$(MODEL_PYTHON) -m venv $(MODEL_VENV)
	$(MODEL_VENV)/bin/pip install -q -r tools/model/requirements.txt -c tools/model/constraints.txt
	touch $@

model-flow: build plugins model-venv
	mkdir -p $(MODEL_OUT)
	go build -o $(MODEL_OUT)/bench ./tools/model/bench
	$(MODEL_VENV)/bin/python tools/model/flow.py --out $(MODEL_OUT)
	$(MODEL_VENV)/bin/python tools/model/evaluate.py --dir $(MODEL_OUT) --edgehost bin/edgehost --bench $(MODEL_OUT)/bench
	$(MODEL_VENV)/bin/python tools/model/swap.py --dir $(MODEL_OUT) --edgehost bin/edgehost
	$(MAKE) --no-print-directory test-model

test-model:
	PYTHONDONTWRITEBYTECODE=1 $(MODEL_VENV)/bin/python -m pytest -q -p no:cacheprovider tools/model/test_flow.py
