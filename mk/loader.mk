# loader: the plugin loader, `ndf plugins` / `ndf inspect`, their tests and
# fixture plugins (one per refusal), and the ABI 1.0 compatibility fixture.
libndfcore_la_SOURCES += \
	host/plugin/loader.c host/plugin/loader.h \
	host/plugin/scanner.c host/plugin/scanner.h \
	host/plugin/elfcheck.c host/plugin/elfcheck.h \
	host/plugin/elfdata.c host/plugin/elfdata.h \
	host/base/sha256.c host/base/sha256.h

# Fixture plugins: built for `make check` only, never installed.  Each is a
# libtool module so it is built exactly as a real plugin is.
LOADER_FIXTURES = \
	tests/fixtures/good.la tests/fixtures/bad_major.la \
	tests/fixtures/newer_minor.la tests/fixtures/short_descriptor.la \
	tests/fixtures/no_descriptor.la tests/fixtures/init_fails.la \
	tests/fixtures/dup_name.la tests/fixtures/dup_step.la \
	tests/fixtures/bad_schema.la tests/fixtures/compat_v1_0.la \
	tests/fixtures/ctor_marker.la tests/fixtures/nonconforming.la
check_LTLIBRARIES += $(LOADER_FIXTURES)

# The plugin scanner's fixtures: one source, five faults (scan_bad.c).
SCAN_FIXTURES = \
	tests/fixtures/scan_init_segv.la tests/fixtures/scan_init_exit.la \
	tests/fixtures/scan_init_hang.la tests/fixtures/scan_fini_segv.la \
	tests/fixtures/scan_init_daemon.la
check_LTLIBRARIES += $(SCAN_FIXTURES)
tests_fixtures_scan_init_segv_la_SOURCES = tests/fixtures/scan_bad.c
tests_fixtures_scan_init_segv_la_CFLAGS = $(PLUGIN_CFLAGS) -DSCAN_BAD=1
tests_fixtures_scan_init_segv_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_scan_init_exit_la_SOURCES = tests/fixtures/scan_bad.c
tests_fixtures_scan_init_exit_la_CFLAGS = $(PLUGIN_CFLAGS) -DSCAN_BAD=2
tests_fixtures_scan_init_exit_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_scan_init_hang_la_SOURCES = tests/fixtures/scan_bad.c
tests_fixtures_scan_init_hang_la_CFLAGS = $(PLUGIN_CFLAGS) -DSCAN_BAD=3
tests_fixtures_scan_init_hang_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_scan_fini_segv_la_SOURCES = tests/fixtures/scan_bad.c
tests_fixtures_scan_fini_segv_la_CFLAGS = $(PLUGIN_CFLAGS) -DSCAN_BAD=4
tests_fixtures_scan_fini_segv_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_scan_init_daemon_la_SOURCES = tests/fixtures/scan_bad.c
tests_fixtures_scan_init_daemon_la_CFLAGS = $(PLUGIN_CFLAGS) -DSCAN_BAD=5
tests_fixtures_scan_init_daemon_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
# scan_pg.sh SKIPs without a PostgreSQL server or libpq (pglib.sh)
TESTS += tests/shell/scan.sh tests/shell/scan_pg.sh
EXTRA_DIST += tests/shell/scan.sh tests/shell/scan_pg.sh tests/bench/bench_scan.sh
BENCHMARKS += tests/bench/bench_scan.sh

tests_fixtures_nonconforming_la_SOURCES = tests/fixtures/nonconforming.c
tests_fixtures_nonconforming_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_nonconforming_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_good_la_SOURCES = tests/fixtures/good.c
tests_fixtures_good_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_good_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_bad_major_la_SOURCES = tests/fixtures/bad_major.c
tests_fixtures_bad_major_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_bad_major_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_newer_minor_la_SOURCES = tests/fixtures/newer_minor.c
tests_fixtures_newer_minor_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_newer_minor_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_short_descriptor_la_SOURCES = tests/fixtures/short_descriptor.c
tests_fixtures_short_descriptor_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_short_descriptor_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_no_descriptor_la_SOURCES = tests/fixtures/no_descriptor.c
tests_fixtures_no_descriptor_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_no_descriptor_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_init_fails_la_SOURCES = tests/fixtures/init_fails.c
tests_fixtures_init_fails_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_init_fails_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_dup_name_la_SOURCES = tests/fixtures/dup_name.c
tests_fixtures_dup_name_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_dup_name_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_dup_step_la_SOURCES = tests/fixtures/dup_step.c
tests_fixtures_dup_step_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_dup_step_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_bad_schema_la_SOURCES = tests/fixtures/bad_schema.c
tests_fixtures_bad_schema_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_bad_schema_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_ctor_marker_la_SOURCES = tests/fixtures/ctor_marker.c
tests_fixtures_ctor_marker_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_ctor_marker_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
# The compatibility fixture's source lives apart (tests/compat/) because it
# must never change; its module lands beside the others in NDF_FIXTURE_DIR.
tests_fixtures_compat_v1_0_la_SOURCES = tests/compat/compat_v1_0.c
tests_fixtures_compat_v1_0_la_CFLAGS = $(PLUGIN_CFLAGS)
# Built against the frozen 1.0 headers, never against sdk/: it must keep the
# exact binary layout a plugin built for 1.0 has.
tests_fixtures_compat_v1_0_la_CPPFLAGS = -I$(top_srcdir)/tests/compat/sdk-1.0
EXTRA_DIST += tests/compat/sdk-1.0/README \
	tests/compat/sdk-1.0/ndf/sdk.h tests/compat/sdk-1.0/ndf/version.h tests/compat/sdk-1.0/ndf/status.h tests/compat/sdk-1.0/ndf/params.h tests/compat/sdk-1.0/ndf/context.h tests/compat/sdk-1.0/ndf/exec.h tests/compat/sdk-1.0/ndf/step.h tests/compat/sdk-1.0/ndf/pattern.h tests/compat/sdk-1.0/ndf/host.h \
	tests/compat/sdk-1.0/ndf/plugin.h
tests_fixtures_compat_v1_0_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)

check_PROGRAMS += tests/check_loader
tests_check_loader_SOURCES = tests/check_loader.c
tests_check_loader_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_loader_LDADD = $(CORE_TEST_LIBS)
# `make tests/check_loader` alone builds the fixtures it loads.
EXTRA_tests_check_loader_DEPENDENCIES = $(LOADER_FIXTURES)
TESTS += tests/check_loader tests/shell/inspect.sh
EXTRA_DIST += tests/shell/inspect.sh
