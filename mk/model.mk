# model: contexts, patterns, the registry, the build from configuration to
# registry, and the pattern commands.
libndfcore_la_SOURCES += \
	host/model/context.c host/model/context.h \
	host/model/pattern.c host/model/pattern.h \
	host/model/registry.c host/model/registry.h \
	host/model/build.c host/model/build.h

check_PROGRAMS += tests/check_context
TESTS += tests/check_context
tests_check_context_SOURCES = tests/check_context.c
tests_check_context_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_context_LDADD = $(CORE_TEST_LIBS)
check_PROGRAMS += tests/check_registry
TESTS += tests/check_registry
tests_check_registry_SOURCES = tests/check_registry.c
tests_check_registry_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_registry_LDADD = $(CORE_TEST_LIBS)
check_PROGRAMS += tests/check_pattern
TESTS += tests/check_pattern
tests_check_pattern_SOURCES = tests/check_pattern.c
tests_check_pattern_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_pattern_LDADD = $(CORE_TEST_LIBS)

# The registry benchmark (make bench).
EXTRA_PROGRAMS += tests/bench/bench_registry
BENCHMARKS += tests/bench/bench_registry
CLEANFILES += tests/bench/bench_registry
tests_bench_bench_registry_SOURCES = tests/bench/bench_registry.c
tests_bench_bench_registry_CPPFLAGS = $(libndfcore_la_CPPFLAGS)
tests_bench_bench_registry_LDADD = libndfcore.la

# The CONFIDENCE AND LEARNING section of ndf.conf(5), included by its build.

# Delegation (issue 13): choosing the pattern for a context by the Beta
# posterior of each candidate, the policies, the outcome table; with the
# seeded generator and the Beta distribution it draws from and bounds with.
libndfcore_la_SOURCES += \
	host/base/rng.c host/base/rng.h \
	host/base/beta.c host/base/beta.h \
	host/model/delegate.c host/model/delegate.h

DELEGATE_SUITES = tests/check_rng tests/check_beta tests/check_delegate
check_PROGRAMS += $(DELEGATE_SUITES)
TESTS += $(DELEGATE_SUITES)
tests_check_rng_SOURCES = tests/check_rng.c
tests_check_rng_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_rng_LDADD = $(CORE_TEST_LIBS)
tests_check_beta_SOURCES = tests/check_beta.c
tests_check_beta_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_beta_LDADD = $(CORE_TEST_LIBS)
tests_check_delegate_SOURCES = tests/check_delegate.c
tests_check_delegate_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_delegate_LDADD = $(CORE_TEST_LIBS)

# The delegation simulation and the cost of one decision (make bench).
EXTRA_PROGRAMS += tests/bench/bench_delegate
BENCHMARKS += tests/bench/bench_delegate
CLEANFILES += tests/bench/bench_delegate
tests_bench_bench_delegate_SOURCES = tests/bench/bench_delegate.c
tests_bench_bench_delegate_CPPFLAGS = $(libndfcore_la_CPPFLAGS)
tests_bench_bench_delegate_LDADD = libndfcore.la

# Reading a JSON context of up to the 10,000-attribute bound (make bench).
EXTRA_PROGRAMS += tests/bench/bench_context
BENCHMARKS += tests/bench/bench_context
CLEANFILES += tests/bench/bench_context
tests_bench_bench_context_SOURCES = tests/bench/bench_context.c
tests_bench_bench_context_CPPFLAGS = $(libndfcore_la_CPPFLAGS)
tests_bench_bench_context_LDADD = libndfcore.la
