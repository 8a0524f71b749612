# storage: crash-safe pattern storage, analytics and the resource monitor (issue 5)
libndfcore_la_SOURCES += \
	host/exec/monitor.c host/exec/monitor.h \
	host/store/storage.c host/store/storage.h \
	host/store/analytics.c host/store/analytics.h

check_PROGRAMS += tests/check_storage
tests_check_storage_SOURCES = tests/check_storage.c
tests_check_storage_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_storage_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_storage

check_PROGRAMS += tests/check_analytics
tests_check_analytics_SOURCES = tests/check_analytics.c
tests_check_analytics_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_analytics_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_analytics

TESTS += tests/shell/storage.sh
EXTRA_DIST += tests/shell/storage.sh

check_PROGRAMS += tests/check_monitor
tests_check_monitor_SOURCES = tests/check_monitor.c
tests_check_monitor_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_monitor_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_monitor

EXTRA_PROGRAMS += tests/bench/bench_storage
BENCHMARKS += tests/bench/bench_storage
CLEANFILES += tests/bench/bench_storage
tests_bench_bench_storage_SOURCES = tests/bench/bench_storage.c
tests_bench_bench_storage_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_bench_bench_storage_LDADD = libndfcore.la
