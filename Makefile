# libflink: a small front over CMake (GNU make). `make help` lists the targets.
#
# Every target first checks the Debian packages (scripts/install-deps.sh; quiet when
# all are present, FL_SKIP_DEPS=1 skips it). Build trees:
#   build/          RelWithDebInfo, asserts on         make, make test, make demo
#   build-asan/     AddressSanitizer + UBSan           make test
#   build-tsan/     ThreadSanitizer                    make test (tests labelled runtime)
#   build-release/  Release (-O3 -DNDEBUG)             make bench

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
# The steps share two cores and depend on each other's order; never run them at once.
.NOTPARALLEL:
# cmake --build runs make again; its "Entering directory" lines are only noise here.
MAKEFLAGS += --no-print-directory

JOBS ?= 2
CMAKE ?= cmake
CTEST ?= ctest
PREFIX ?= /usr/local
# Extra arguments for every cmake configure, e.g. CMAKE_ARGS=-DFL_WERROR=OFF
CMAKE_ARGS ?=

BUILD_DIR := build
ASAN_DIR := build-asan
TSAN_DIR := build-tsan
RELEASE_DIR := build-release

# The demo: the real-time feature pipeline (docs/feature-pipeline.md) for 30 s on a mock
# Kafka cluster inside the process. The smaller examples: make demo-examples.
DEMO_CMD := $(BUILD_DIR)/examples/feature_pipeline
EXAMPLES_CMD := $(BUILD_DIR)/examples/user_spend --demo && $(BUILD_DIR)/examples/kafka_features

# Benchmarks: one quoted argument list per run of $(BENCH); add runs here.
BENCH := $(RELEASE_DIR)/bench/flink-bench
NEXMARK_EVENTS ?= 10000000
BENCH_RUNS := \
  "window --events 20000000 --keys 10000 --window-ms 1000 --parallelism 1" \
  "window --events 20000000 --keys 1000000 --window-ms 1000 --parallelism 1" \
  "window --events 20000000 --keys 10000 --window-ms 1000 --parallelism 2" \
  "window --events 20000000 --keys 10000 --window-ms 300000 --parallelism 1" \
  "window --events 20000000 --keys 1000000 --window-ms 300000 --parallelism 1" \
  "window --kind sliding --events 20000000 --keys 10000 --window-ms 3600000 --slide-ms 300000 --parallelism 1" \
  "window --kind session --events 20000000 --keys 10000 --gap-ms 999 --parallelism 1" \
  "window --events 20000000 --keys 10000 --window-ms 1000 --parallelism 1 --set execution.checkpointing.interval=1s --set state.checkpoints.dir=/tmp/flink-bench-ckpt" \
  "state --backend both --keys 1000000 --ops 1000000" \
  "checkpoint --state-mb 1024 --interval 5s --rounds 3 --incremental true" \
  "checkpoint --state-mb 1024 --interval 5s --rounds 3 --incremental false" \
  "kafka --events 400000 --partitions 8 --parallelism 1" \
  "kafka --events 400000 --partitions 8 --parallelism 2" \
  "kafka --events 400000 --partitions 8 --parallelism 1 --guarantee exactly-once" \
  "kafka --rate 50000 --seconds 10 --window-ms 1000 --partitions 8 --parallelism 1"

# Sanitizer settings; values from the environment win. Leaks are found by scanning
# memory, whatever the unwinder; the stack a report shows for an allocation comes from
# the frame-pointer unwinder, which stops inside libraries built without frame pointers
# (an object jansson allocated may show no caller of ours). For the full stack, run the
# failing test again with ASAN_OPTIONS=...:fast_unwind_on_malloc=0: the exact unwinder
# makes a test under ASan take about ten times the CPU (test_nexmark: 65 s against 7 s).
ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1
UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/scripts/tsan.supp
# Tests multiply their timeouts by FL_TEST_TIMEOUT_SCALE. When it is not set, the
# instrumented runs, which are several times slower, get a larger one.
SCALE_PLAIN := $(or $(FL_TEST_TIMEOUT_SCALE),1)
SCALE_ASAN := $(or $(FL_TEST_TIMEOUT_SCALE),3)
SCALE_TSAN := $(or $(FL_TEST_TIMEOUT_SCALE),5)

RUN_CTEST := scripts/run-ctest.sh

# $(call configure,<dir>,<build type>,<extra cmake args>)
configure = $(CMAKE) -S . -B $(1) -DCMAKE_BUILD_TYPE=$(2) $(3) $(CMAKE_ARGS)
# $(call compile,<dir>)
compile = $(CMAKE) --build $(1) -j $(JOBS)

.PHONY: all build deps test test-plain test-asan test-tsan demo demo-examples bench install clean \
  help format

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(call configure,$(BUILD_DIR),RelWithDebInfo,-DFL_SANITIZE=)
	$(call compile,$(BUILD_DIR))

test: deps test-plain test-asan test-tsan
	@echo "make test: all runs passed (plain, asan+ubsan, tsan)"

test-plain: deps
	$(call configure,$(BUILD_DIR),RelWithDebInfo,-DFL_SANITIZE=)
	$(call compile,$(BUILD_DIR))
	FL_TEST_CPUS=$(JOBS) FL_TEST_TIMEOUT_SCALE=$(SCALE_PLAIN) $(RUN_CTEST) $(BUILD_DIR)

test-asan: deps
	$(call configure,$(ASAN_DIR),RelWithDebInfo,-DFL_SANITIZE=address)
	$(call compile,$(ASAN_DIR))
	ASAN_OPTIONS='$(ASAN_OPTIONS)' UBSAN_OPTIONS='$(UBSAN_OPTIONS)' \
	  FL_TEST_CPUS=$(JOBS) FL_TEST_TIMEOUT_SCALE=$(SCALE_ASAN) $(RUN_CTEST) $(ASAN_DIR)

test-tsan: deps
	$(call configure,$(TSAN_DIR),RelWithDebInfo,-DFL_SANITIZE=thread)
	$(call compile,$(TSAN_DIR))
	TSAN_OPTIONS='$(TSAN_OPTIONS)' \
	  FL_TEST_CPUS=$(JOBS) FL_TEST_TIMEOUT_SCALE=$(SCALE_TSAN) $(RUN_CTEST) $(TSAN_DIR) -L runtime

demo: build
	$(DEMO_CMD)

demo-examples: build
	$(EXAMPLES_CMD)

bench: deps
	$(call configure,$(RELEASE_DIR),Release,-DFL_SANITIZE= -DFL_ASSERTS=OFF \
	  -DFL_BUILD_TESTS=OFF "-DCMAKE_C_FLAGS_RELEASE=-O3 -DNDEBUG")
	$(call compile,$(RELEASE_DIR))
	@for args in $(BENCH_RUNS); do \
	  echo "+ $(BENCH) $$args"; \
	  $(BENCH) $$args; \
	done
	@for p in 1 2; do \
	  echo "+ $(BENCH) nexmark --query all --events $(NEXMARK_EVENTS) --parallelism $$p"; \
	  $(BENCH) nexmark --query all --events $(NEXMARK_EVENTS) --parallelism $$p \
	    | tee $(RELEASE_DIR)/nexmark-p$$p.jsonl; \
	done
	@$(BENCH) nexmark-table $(RELEASE_DIR)/nexmark-p1.jsonl $(RELEASE_DIR)/nexmark-p2.jsonl

install: build
	$(CMAKE) --install $(BUILD_DIR) --prefix $(PREFIX)

# Rewrites every C file as .clang-format says (ctest `format` checks it in make test).
format: deps
	find src include tests tools examples bench \( -name '*.[ch]' -o -name '*.cpp' \) \
	  -print0 | xargs -0 clang-format -i --style=file

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR) $(RELEASE_DIR)

help:
	@echo "make [build]         configure and build in $(BUILD_DIR)/ (RelWithDebInfo)"
	@echo "make test            ctest in $(BUILD_DIR)/, then under ASan+UBSan in $(ASAN_DIR)/,"
	@echo "                     then the runtime tests under TSan in $(TSAN_DIR)/"
	@echo "                     (one at a time: make test-plain, test-asan, test-tsan)"
	@echo "make demo            build and run: $(DEMO_CMD)"
	@echo "make demo-examples   build and run: $(EXAMPLES_CMD)"
	@echo "make bench           Release build in $(RELEASE_DIR)/ and run $(BENCH)"
	@echo "make install PREFIX=/usr/local"
	@echo "make format          rewrite the sources as .clang-format says"
	@echo "make clean           remove all build trees"
	@echo "Variables: JOBS=$(JOBS) CMAKE_ARGS=... FL_TEST_TIMEOUT_SCALE=n FL_SKIP_DEPS=1"
