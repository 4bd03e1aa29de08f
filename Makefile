# The two commands: `make test` and `make demo`. Each installs what it needs (Debian 12, as root),
# configures, builds and runs; the services they need are started privately on 127.0.0.1.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
WERROR ?= ON
CMAKE_FLAGS ?=

.PHONY: all deps configure build test demo bench format format-check clean images test-images

all: build

deps:
	@bash scripts/install-deps.sh
	@bash scripts/install-node-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DBILLING_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build format-check
	@cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 900 -LE 'bench|images'

demo: build
	@$(BUILD_DIR)/demo/billing-demo --exporter $(BUILD_DIR)/exporter/billing-exporter \
	  --plugin $(BUILD_DIR)/exporter/billing_mosquitto_plugin.so \
	  --simulator $(BUILD_DIR)/tools/device-simulator/device-simulator \
	  --provisioner $(BUILD_DIR)/provisioner/provisioner

bench: build
	@bash bench/run.sh $(BUILD_DIR)

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
