# gpu-policy-controller — plain GNU Makefile.
#
# Sources are discovered by convention so that adding a module never means
# editing this file:
#   controller/{base,client,domain,cmd,}/*.c -> libgpc.a (all but controller/main.c; controller/README.md)
#   controller/main.c          -> gpu-policy-controller
#   controller/validator/*.c   -> gpu-policy-validator (links libgpc.a)
#   templates/*.yaml           -> embedded into libgpc.a (build/gen/templates_embedded.c)
#   test/unit/test_*.c         -> one cmocka binary each, run by `make unit`
#   test/tools/*.c             -> helper binaries the pytest suites drive
#   test/fuzz/fuzz_*.c         -> libFuzzer targets (clang), run by `make fuzz`
#   bench/*.c                  -> benchmark binaries; bench/bench_*.py run them
#
# Knobs: WERROR=1 (CI), BUILD=dir, SAN=1 (ASan+UBSan), OPT (default -O2; -O0 drops
#        _FORTIFY_SOURCE), PREFIX, DESTDIR, V=1 (echo commands),
#        INTEGRATION=suites for `make integration`, UNIT_BINS=binaries for `make unit`.

PROJECT   := gpu-policy-controller
ifeq ($(V),1)
Q :=
else
Q := @
endif
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DATADIR   ?= $(PREFIX)/share/$(PROJECT)
PYTHON    ?= /usr/bin/python3
BUILD     ?= build
CC        ?= gcc
PKGS      := libcurl jansson yaml-0.1 openssl libwebsockets libuv

# Read once, when make parses this file. On a fresh machine the packages (and
# pkg-config itself) arrive only when `deps` runs, after parsing; so `demo` and
# `test` run deps first and then build in a new make that reads these afresh.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Expanded in every compile and link recipe: one clear line instead of
# hundreds of missing headers or undefined references.
NEED_PKGS  = $(if $(PKG_LIBS),,$(error pkg-config finds none of: $(PKGS); run 'make deps' (scripts/deps.sh) first))

WARN      := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wvla \
             -Wno-unused-parameter
OPT       ?= -O2
# The layers (controller/README.md): primitives, the Kubernetes client core, the rest.
LIB_DIRS  := controller/base controller/client controller/domain controller/cmd controller
CFLAGS    ?= $(OPT) -g
CFLAGS    += -std=gnu17 $(WARN) -fno-common
CPPFLAGS  += $(LIB_DIRS:%=-I%) -I$(BUILD)/gen -D_GNU_SOURCE -DGPC_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
LDLIBS    += $(PKG_LIBS) -lm -ldl
ifeq ($(WERROR),1)
CFLAGS    += -Werror
endif
# Hardening (test/integration/test_hardening.py checks the binaries): stack
# protector, full RELRO and immediate binding everywhere; _FORTIFY_SOURCE=3
# only where it works: it needs optimization (not with OPT=-O0) and is left
# out of the sanitizer build, whose interceptors it would bypass (the fuzz
# build has its own flags, FUZZ_CFLAGS). -U first: some compilers predefine it.
HARDEN_CFLAGS  := -fstack-protector-strong
HARDEN_LDFLAGS := -Wl,-z,relro,-z,now
ifneq ($(SAN),1)
ifeq ($(filter -O0,$(OPT) $(CFLAGS)),)
HARDEN_CFLAGS  += -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
endif
endif
CFLAGS    += $(HARDEN_CFLAGS)
LDFLAGS   += $(HARDEN_LDFLAGS)
ifeq ($(SAN),1)
CFLAGS    += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=address,undefined
endif

LIB_SRCS  := $(filter-out controller/main.c,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/templates_embedded.o
LIB       := $(BUILD)/libgpc.a
CTRL      := $(BUILD)/gpu-policy-controller
VAL_SRCS  := $(wildcard controller/validator/*.c)
VAL_OBJS  := $(VAL_SRCS:%.c=$(BUILD)/%.o)
VALIDATOR := $(BUILD)/gpu-policy-validator
TEMPLATES := $(sort $(wildcard templates/*.yaml))

UNIT_SRCS := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
# The validator's own unit test links its objects (all but main.o).
VAL_UNIT  := $(BUILD)/test/validator/test_pure
UNIT_BINS += $(VAL_UNIT)
TOOL_SRCS := $(wildcard test/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:%.c=$(BUILD)/%)
BENCH_SRCS:= $(wildcard bench/*.c)
BENCH_BINS:= $(BENCH_SRCS:%.c=$(BUILD)/%)
FUZZ_SRCS := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:test/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 60
# Every integration test is bounded: a hang fails that test, never the whole run.
# INTEGRATION: the suites `make integration` (and so `make test`) runs.
INTEGRATION ?= test/integration
PYTEST_FLAGS ?= -q -p no:cacheprovider --timeout=300 --durations=10

C_FILES   := $(shell find controller test/unit test/fuzz test/tools test/validator bench -name '*.[ch]' 2>/dev/null)

.PHONY: all deps test unit integration golden demo install clean format check-format \
        lint asan valgrind fuzz bench tools

all: $(CTRL) $(VALIDATOR) tools

tools: $(TOOL_BINS) $(BENCH_BINS)

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c
	$(NEED_PKGS)@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/templates_embedded.c: $(TEMPLATES) scripts/embed-templates.py
	@mkdir -p $(@D)
	$(PYTHON) scripts/embed-templates.py $@ $(TEMPLATES)

$(BUILD)/gen/templates_embedded.o: $(BUILD)/gen/templates_embedded.c
	$(NEED_PKGS)$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(CTRL): $(BUILD)/controller/main.o $(LIB)
	$(NEED_PKGS)@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(VALIDATOR): $(VAL_OBJS) $(LIB)
	$(NEED_PKGS)@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/unit/%: test/unit/%.c $(LIB)
	@mkdir -p $(@D)
	$(NEED_PKGS)@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) -lcmocka $(LDLIBS)

$(VAL_UNIT): test/validator/test_pure.c $(filter-out $(BUILD)/controller/validator/main.o,$(VAL_OBJS)) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CPPFLAGS) -Icontroller/validator $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(BUILD)/test/tools/%: test/tools/%.c $(LIB)
	@mkdir -p $(@D)
	$(NEED_PKGS)@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(NEED_PKGS)@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Unit tests run from the repository root so that test/data/ paths resolve.
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $(RUNNER) ./$$t; done

# Regenerates test/golden/ (render output per operand and per sample policy)
# after a deliberate template, sample or render change; review the diff.
golden: $(BUILD)/test/unit/test_render
	GOLDEN_UPDATE=1 ./$<
	@git status --short test/golden

integration: all
	GPC_BUILD=$(BUILD) $(PYTHON) -m pytest $(PYTEST_FLAGS) $(INTEGRATION)

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration

# deps first, then a new make: see PKG_CFLAGS above.
demo: deps
	$(MAKE) $(CTRL)
	@GPC_BUILD=$(BUILD) scripts/demo.sh

bench: all
	@set -e; for b in bench/bench_*.py; do [ -f "$$b" ] || continue; echo "== $$b"; GPC_BUILD=$(BUILD) $(PYTHON) $$b; done

install: $(CTRL) $(VALIDATOR)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/templates
	install -m 0755 $(CTRL) $(VALIDATOR) $(DESTDIR)$(BINDIR)/
	for t in $(TEMPLATES); do install -m 0644 $$t $(DESTDIR)$(DATADIR)/templates/; done

clean:
	rm -rf $(BUILD) build-asan build-fuzz

format:
	clang-format -i $(C_FILES)

check-format:
	clang-format --dry-run --Werror $(C_FILES)

lint:
	cppcheck --quiet --error-exitcode=1 --inline-suppr --std=c11 \
	  --enable=warning,performance,portability \
	  --suppress=missingIncludeSystem --library=cppcheck.cfg $(LIB_DIRS:%=-I%) \
	  -D__CPPCHECK__ -D_GNU_SOURCE controller

# ASan+UBSan: a separate build tree; the unit tests and the integration suites
# that drive our C binaries run against the sanitized builds (kubesim's own
# suites exercise only Python and gain nothing from a second run).
ASAN_PYTESTS ?= $(filter $(addprefix test/integration/,test_kube_client.py test_informer.py \
                  test_reconcile.py test_render_cmd.py test_validator.py test_ha.py test_metrics.py \
                  test_apply_cli.py test_allocation.py test_driver_upgrade.py),$(wildcard test/integration/test_*.py))
asan:
	$(MAKE) BUILD=build-asan SAN=1 all unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  GPC_BUILD=build-asan GPC_SANITIZED=1 $(PYTHON) -m pytest $(PYTEST_FLAGS) $(ASAN_PYTESTS)

valgrind: $(UNIT_BINS)
	$(MAKE) unit RUNNER="valgrind -q --error-exitcode=1 --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect"

# libFuzzer targets are built with clang against the library sources.
FUZZ_CFLAGS := -std=gnu17 -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS)
$(BUILD)/fuzz/%: test/fuzz/%.c $(LIB_SRCS) $(BUILD)/gen/templates_embedded.c
	$(NEED_PKGS)@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(LDLIBS)

# Every target runs FUZZ_SECONDS from the checked-in seeds (test/fuzz/corpus/<target>/) and the
# inputs that once crashed it (test/fuzz/regressions/<target>/, replayed first on every run). A crash
# ends that target's run; libFuzzer writes the input to test/fuzz/regressions/<target>/ (commit it
# with the fix); the other targets still run and the target fails at the end.
fuzz: $(FUZZ_BINS)
	@rc=0; for f in $(FUZZ_BINS); do n=$$(basename $$f); \
	  mkdir -p $(BUILD)/fuzz/corpus-$$n test/fuzz/regressions/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	      -artifact_prefix=test/fuzz/regressions/$$n/ $(BUILD)/fuzz/corpus-$$n \
	      test/fuzz/regressions/$$n $$( [ -d test/fuzz/corpus/$$n ] && echo test/fuzz/corpus/$$n ) \
	      || { echo "== $$n FAILED: crashing input in test/fuzz/regressions/$$n/"; rc=1; }; \
	done; exit $$rc

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
