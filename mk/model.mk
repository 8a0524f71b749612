# model: contexts, patterns, learning, the registry and the pattern commands.
libndfcore_la_SOURCES += \
	host/model/context.c host/model/context.h \
	host/base/learning.c host/base/learning.h \
	host/model/pattern.c host/model/pattern.h \
	host/model/registry.c host/model/registry.h \
	host/model/build.c host/model/build.h \
	host/cli/ctxopt.c host/cli/ctxopt.h \
	host/cli/cmd_patterns.c

check_PROGRAMS += tests/check_context tests/check_learning
TESTS += tests/check_context tests/check_learning
tests_check_context_SOURCES = tests/check_context.c
tests_check_context_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_context_LDADD = $(CORE_TEST_LIBS)
tests_check_learning_SOURCES = tests/check_learning.c
tests_check_learning_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_learning_LDADD = $(CORE_TEST_LIBS)
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
