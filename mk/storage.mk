# storage: the store (SQLite, issue 10) with its history bridge,
# the reader of the previous release's files (for their import), analytics
# and the resource monitor
libndfcore_la_SOURCES += \
	host/exec/monitor.c host/exec/monitor.h \
	host/store/storage.c host/store/storage.h \
	host/store/store.h host/store/store.c host/store/store_backend.h \
	host/store/queue.h host/store/queue.c \
	host/store/redrive.h host/store/redrive.c \
	host/store/defs.h host/store/defs.c \
	host/store/store_sqlite.c \
	host/store/unrec.h host/store/unrec.c \
	host/store/history.h host/store/history.c \
	host/store/analytics.c host/store/analytics.h
# the store's database (issue 10): SQLite, kept to store_sqlite.c
libndfcore_la_CPPFLAGS += $(SQLITE_CFLAGS)
libndfcore_la_LIBADD += $(SQLITE_LIBS)
# the shared store of several hosts (issue 16): PostgreSQL through libpq,
# kept to store_pg.c; optional (configure --with-postgresql)
if HAVE_LIBPQ
# libpq is loaded with dlopen() by pqload.c when a PostgreSQL store is
# opened, not linked: its headers only (a process on SQLite never maps it)
libndfcore_la_SOURCES += host/store/store_pg.c host/store/pqload.c host/store/pqload.h
libndfcore_la_CPPFLAGS += $(LIBPQ_CFLAGS)
else
EXTRA_DIST += host/store/store_pg.c host/store/pqload.c host/store/pqload.h
endif

check_PROGRAMS += tests/check_storage
tests_check_storage_SOURCES = tests/check_storage.c
tests_check_storage_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_storage_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_storage
# files written by the previous release, for the import tests
EXTRA_DIST += tests/compat/storage-v1/legacy.json.gz tests/compat/storage-v1/legacy.json.gz.1 \
	tests/compat/storage-v1/other.v2.json.gz tests/compat/storage-v1/plain.json

check_PROGRAMS += tests/check_analytics
tests_check_analytics_SOURCES = tests/check_analytics.c
tests_check_analytics_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_analytics_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_analytics

TESTS += tests/shell/storage.sh tests/shell/redrive.sh tests/shell/progress.sh \
	tests/shell/crash.sh tests/shell/faults.sh tests/shell/concurrency.sh \
	tests/shell/rollback.sh
EXTRA_DIST += tests/shell/storage.sh tests/shell/redrive.sh tests/shell/progress.sh \
	tests/shell/crash.sh tests/shell/faults.sh tests/shell/concurrency.sh \
	tests/shell/rollback.sh
# the shell tests' view into a store (invariants, ids, counts); built, not run
check_PROGRAMS += tests/store_probe
tests_store_probe_SOURCES = tests/store_probe.c
tests_store_probe_CPPFLAGS = $(CORE_TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_store_probe_LDADD = libndfcore.la $(SQLITE_LIBS)

check_PROGRAMS += tests/check_monitor
tests_check_monitor_SOURCES = tests/check_monitor.c
tests_check_monitor_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_monitor_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_monitor

check_PROGRAMS += tests/check_store
tests_check_store_SOURCES = tests/check_store.c
tests_check_store_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_store_LDADD = $(CORE_TEST_LIBS) $(SQLITE_LIBS)
if HAVE_LIBPQ
tests_check_store_CPPFLAGS += $(LIBPQ_CFLAGS)
tests_check_store_LDADD += $(LIBPQ_LIBS)
endif
TESTS += tests/check_store

check_PROGRAMS += tests/check_queue
tests_check_queue_SOURCES = tests/check_queue.c
tests_check_queue_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_queue_LDADD = $(CORE_TEST_LIBS)
if HAVE_LIBPQ
tests_check_queue_CPPFLAGS += $(LIBPQ_CFLAGS)
tests_check_queue_LDADD += $(LIBPQ_LIBS)
endif
TESTS += tests/check_queue
# the same suite against a PostgreSQL 15 server the test starts (SKIPs
# without the server or libpq)
TESTS += tests/shell/store_pg.sh tests/shell/storage_pg.sh tests/shell/queue_pg.sh \
	tests/shell/store_record.sh
EXTRA_DIST += tests/shell/store_pg.sh tests/shell/storage_pg.sh tests/shell/pglib.sh \
	tests/shell/queue_pg.sh tests/shell/store_record.sh

EXTRA_PROGRAMS += tests/bench/bench_store
BENCHMARKS += tests/bench/bench_store
CLEANFILES += tests/bench/bench_store
tests_bench_bench_store_SOURCES = tests/bench/bench_store.c
tests_bench_bench_store_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_bench_bench_store_LDADD = libndfcore.la $(SQLITE_LIBS)
BENCHMARKS += tests/bench/bench_e2e.sh
EXTRA_DIST += tests/bench/bench_e2e.sh
tests/bench/bench_e2e.sh: tests/bench/bench_store

check_PROGRAMS += tests/check_history
tests_check_history_SOURCES = tests/check_history.c
tests_check_history_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_history_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_history

check_PROGRAMS += tests/check_unrec
tests_check_unrec_SOURCES = tests/check_unrec.c
tests_check_unrec_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_unrec_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_unrec

# the two backends side by side (make bench): bench_store_pg against a
# private PostgreSQL that tests/bench/store_pg.sh starts
EXTRA_DIST += tests/bench/store_pg.sh
if HAVE_LIBPQ
EXTRA_PROGRAMS += tests/bench/bench_store_pg
CLEANFILES += tests/bench/bench_store_pg
tests_bench_bench_store_pg_SOURCES = tests/bench/bench_store_pg.c
tests_bench_bench_store_pg_CPPFLAGS = $(CORE_TEST_CFLAGS) $(LIBPQ_CFLAGS)
tests_bench_bench_store_pg_LDADD = libndfcore.la $(LIBPQ_LIBS)
bench-store-pg: tests/bench/bench_store_pg all
else
bench-store-pg: all
endif
	@echo "== tests/bench/store_pg.sh"
	@top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	  $(SHELL) $(srcdir)/tests/bench/store_pg.sh
bench: bench-store-pg
.PHONY: bench-store-pg
# the work queue with 1, 2, 4 workers beside SQLite on one host, and the
# claim latency (make bench)
EXTRA_DIST += tests/bench/bench_queue.sh
bench-queue: all
	@echo "== tests/bench/bench_queue.sh"
	@top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	  $(SHELL) $(srcdir)/tests/bench/bench_queue.sh
bench: bench-queue
.PHONY: bench-queue
