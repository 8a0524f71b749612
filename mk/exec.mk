# exec: the pool (work stealing, groups), the executor (execute calls), the
# live record, processes started by steps, the execution half of the
# services table, and the run / batch / status commands; their Check
# suites, fixtures, shell test and benchmarks.  (monitor.c is built by
# mk/storage.mk.)
libndfcore_la_SOURCES += \
	host/exec/pool.c host/exec/pool.h \
	host/exec/executor.c host/exec/executor.h \
	host/exec/record.c host/exec/record.h \
	host/exec/process.c host/exec/process.h \
	host/exec/cgroup.c host/exec/cgroup.h \
	host/exec/crash.c host/exec/crash.h \
	host/exec/isolate.c host/exec/isolate.h \
	host/exec/services_exec.c

EXEC_FIXTURES = tests/fixtures/exec_fixtures.c tests/fixtures/exec_fixtures.h
EXEC_TEST_CFLAGS = $(CORE_TEST_CFLAGS) -I$(top_srcdir)/tests/fixtures

check_PROGRAMS += tests/check_pool tests/check_executor tests/check_record tests/check_spawn
TESTS += tests/check_pool tests/check_executor tests/check_record tests/check_spawn
tests_check_pool_SOURCES = tests/check_pool.c
tests_check_pool_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_check_pool_LDADD = $(CORE_TEST_LIBS)
# The suite fails pthread_create on purpose to see the error pool_new reports.
tests_check_pool_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=pthread_create
tests_check_executor_SOURCES = tests/check_executor.c $(EXEC_FIXTURES)
tests_check_executor_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_check_executor_LDADD = $(CORE_TEST_LIBS)
tests_check_record_SOURCES = tests/check_record.c
tests_check_record_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_check_record_LDADD = $(CORE_TEST_LIBS) $(ZLIB_LIBS) $(CJSON_LIBS)
tests_check_spawn_SOURCES = tests/check_spawn.c
tests_check_spawn_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_check_spawn_LDADD = $(CORE_TEST_LIBS)

EXTRA_PROGRAMS += tests/bench/bench_pool tests/bench/bench_dispatch
BENCHMARKS += tests/bench/bench_pool tests/bench/bench_dispatch
CLEANFILES += tests/bench/bench_pool tests/bench/bench_dispatch
tests_bench_bench_pool_SOURCES = tests/bench/bench_pool.c
tests_bench_bench_pool_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_bench_bench_pool_LDADD = libndfcore.la
tests_bench_bench_dispatch_SOURCES = tests/bench/bench_dispatch.c $(EXEC_FIXTURES)
tests_bench_bench_dispatch_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_bench_bench_dispatch_LDADD = libndfcore.la

TESTS += tests/shell/run.sh tests/shell/fault.sh tests/shell/injection.sh tests/shell/isolation.sh tests/shell/isolated_output.sh
EXTRA_DIST += tests/shell/run.sh tests/shell/fault.sh tests/shell/injection.sh tests/shell/isolation.sh tests/shell/isolated_output.sh

# What captured output costs in memory (a script; ndf.1's output_limit).
BENCHMARKS += tests/bench/bench_capture.sh
EXTRA_DIST += tests/bench/bench_capture.sh

# The process-DAG benchmark is a script; its floor is a small C helper.
EXTRA_PROGRAMS += tests/bench/bench_spawnloop
CLEANFILES += tests/bench/bench_spawnloop
tests_bench_bench_spawnloop_SOURCES = tests/bench/bench_spawnloop.c
BENCHMARKS += tests/bench/bench_procdag.sh
EXTRA_DIST += tests/bench/bench_procdag.sh
tests/bench/bench_procdag.sh: tests/bench/bench_spawnloop

# The fault-containment fixture: misbehaving steps (tests/shell/fault.sh).
check_LTLIBRARIES += tests/fixtures/misbehave.la
tests_fixtures_misbehave_la_SOURCES = tests/fixtures/misbehave.c
tests_fixtures_misbehave_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_misbehave_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)

# The ABI 1.2 members of the services table, through the table itself.
check_PROGRAMS += tests/check_services
TESTS += tests/check_services
tests_check_services_SOURCES = tests/check_services.c $(EXEC_FIXTURES)
tests_check_services_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_check_services_LDADD = $(CORE_TEST_LIBS)

# Isolated steps: a warm worker against in process, and replacement after a
# crash (it runs the ndf binary and the misbehave fixture).
EXTRA_PROGRAMS += tests/bench/bench_isolate
BENCHMARKS += tests/bench/bench_isolate
CLEANFILES += tests/bench/bench_isolate
tests_bench_bench_isolate_SOURCES = tests/bench/bench_isolate.c
tests_bench_bench_isolate_CPPFLAGS = $(EXEC_TEST_CFLAGS)
tests_bench_bench_isolate_LDADD = libndfcore.la
tests_bench_bench_isolate_DEPENDENCIES = libndfcore.la tests/fixtures/misbehave.la
