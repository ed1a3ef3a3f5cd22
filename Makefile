# Thin wrapper around Meson. Every target first installs missing packages.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MESON_SETUP = meson setup --wipe

.PHONY: all deps build test test-unit test-asan fuzz-smoke fuzz run bench soak test-vm install clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja:
	@scripts/deps.sh
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Every test: unit + integration, then the same under ASan+UBSan, then a
# short fuzz smoke run. Ends with one "N passed, N failed" line.
test: build
	scripts/test.sh $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# Only the normal build's suites (fast inner loop).
test-unit: build
	scripts/test.sh --only $(BUILD)

run: build
	scripts/demo.sh $(BUILD)

bench: build
	FUSE_STALL=$(BUILD)/tests/integration/fuse-stall $(BUILD)/bench/vsock-bench --agent $(BUILD)/src/agent/vsock-agent $(BENCH_ARGS)

soak: build
	scripts/soak.sh $(BUILD)

fuzz: deps
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-vm: build
	@scripts/deps.sh vm
	vm/run-vm-test.sh $(BUILD)

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
