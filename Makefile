# The two commands: `make test` and `make demo`. Each installs what it needs (Debian 12, as root),
# configures, builds and runs; the services they need are started privately on 127.0.0.1.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
WERROR ?= ON
CMAKE_FLAGS ?=
# `make test SANITIZE=address` (AddressSanitizer + UndefinedBehaviorSanitizer) or
# `SANITIZE=thread` (ThreadSanitizer): the same suite, built in its own directory.
SANITIZE ?=
ifeq ($(SANITIZE),address)
  BUILD_DIR := build-asan
  override CMAKE_FLAGS += -DBILLING_SANITIZE=address,undefined -DBILLING_BENCH=OFF
  # Inherited by every process the tests start (the exporter, the provisioner).
  export LSAN_OPTIONS := suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0
else ifeq ($(SANITIZE),thread)
  BUILD_DIR := build-tsan
  override CMAKE_FLAGS += -DBILLING_SANITIZE=thread -DBILLING_BENCH=OFF
else ifneq ($(SANITIZE),)
  $(error SANITIZE must be address or thread)
endif
# `make fuzz`: every libFuzzer target for FUZZ_SECONDS each (clang, its own build directory).
FUZZ_SECONDS ?= 60
# Extra ctest arguments, e.g. CTEST_ARGS='-R exporter' (CI uses it to bound the sanitizer run).
CTEST_ARGS ?=
FUZZ_BUILD_DIR ?= build-fuzz

.PHONY: all deps configure build test demo bench fuzz format format-check clean images test-images

all: build

deps:
	@bash scripts/install-deps.sh
	@bash scripts/install-node-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DBILLING_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build format-check
	@cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 900 -LE 'bench|images' $(CTEST_ARGS)

demo: build
	@$(BUILD_DIR)/demo/billing-demo --exporter $(BUILD_DIR)/exporter/billing-exporter \
	  --plugin $(BUILD_DIR)/exporter/billing_mosquitto_plugin.so \
	  --simulator $(BUILD_DIR)/tools/device-simulator/device-simulator \
	  --provisioner $(BUILD_DIR)/provisioner/provisioner

bench: build
	@bash bench/run.sh $(BUILD_DIR)

fuzz: deps
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD_DIR) -DBILLING_FUZZ=ON -DBILLING_TESTS=OFF \
	  -DBILLING_BENCH=OFF -DBILLING_SANITIZE=address,undefined,fuzzer-no-link $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target fuzz_targets
	@bash fuzz/run.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS)

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

format-check: deps
	@git ls-files '*.cpp' '*.h' | xargs -r clang-format --dry-run --Werror

clean:
	@rm -rf $(BUILD_DIR)

# Container images iotistic/billing-exporter and iotistic/provisioner (:<version> and :<revision>)
# with buildah into the local image store; see README.md, "Container images".
images:
	@bash images/build.sh

# The images' tests (tests/images, label "images"): run from the images with buildah, compared with
# the host-built binaries.
test-images: build images
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900 -L images
