# libFuzzer harnesses for the parsers (tests/fuzz/README.md).  They need
# clang with its fuzzer runtime, so they are never part of `make check`;
# `make fuzz-smoke` builds them into a scratch directory outside the tree
# and runs each over its seed corpus once (-runs=0) when clang is there.
FUZZ_HARNESSES = fuzz_context_json fuzz_ctxopt_attr fuzz_config fuzz_storage_json \
	fuzz_value_default fuzz_protocol

EXTRA_DIST += tests/fuzz/README.md tests/fuzz/build.sh tests/fuzz/lsan.supp \
	tests/fuzz/fuzz_common.h tests/fuzz/fuzz_shims.c \
	tests/fuzz/fuzz_context_json.c tests/fuzz/fuzz_ctxopt_attr.c \
	tests/fuzz/fuzz_config.c tests/fuzz/fuzz_storage_json.c \
	tests/fuzz/fuzz_value_default.c tests/fuzz/fuzz_protocol.c \
	tests/fuzz/corpus

FUZZ_CC = clang

fuzz-smoke: $(top_builddir)/build-config.h
	@if ! command -v $(FUZZ_CC) >/dev/null 2>&1; then \
	  echo "fuzz-smoke: $(FUZZ_CC) not found; skipped"; exit 0; \
	fi; \
	d=`mktemp -d "$${TMPDIR:-/tmp}/ndf-fuzz.XXXXXX"` || exit 1; \
	trap 'rm -rf "$$d"' EXIT; \
	CC='$(FUZZ_CC)' BUILDDIR='$(abs_top_builddir)' \
	  $(SHELL) '$(abs_top_srcdir)/tests/fuzz/build.sh' "$$d" $(FUZZ_HARNESSES) || exit 1; \
	for h in $(FUZZ_HARNESSES); do \
	  echo "== $$h"; \
	  LSAN_OPTIONS='suppressions=$(abs_top_srcdir)/tests/fuzz/lsan.supp' \
	    "$$d/$$h" -runs=0 '$(abs_top_srcdir)/tests/fuzz/corpus/'"$$h" >"$$d/$$h.log" 2>&1 || \
	    { cat "$$d/$$h.log"; echo "fuzz-smoke: $$h failed"; exit 1; }; \
	  grep "^Done" "$$d/$$h.log"; \
	done
.PHONY: fuzz-smoke
