# serve: `ndf serve` (the control socket, its protocol, generations and hot
# reload of plugins and configuration); the Check suites of the protocol
# and the transport, the reload fixtures, the shell test, the benchmark and
# the systemd unit (issue 6).  `ndf serve` and `ndf ctl` are in mk/cli.mk.
libndfcore_la_SOURCES += \
	host/serve/protocol.c host/serve/protocol.h \
	host/serve/transport.c host/serve/transport.h \
	host/serve/generation.c host/serve/generation.h \
	host/serve/watch.c host/serve/watch.h \
	host/serve/server.c host/serve/server.h \
	host/serve/worker.c host/serve/worker.h

check_PROGRAMS += tests/check_protocol tests/check_transport
TESTS += tests/check_protocol tests/check_transport
tests_check_protocol_SOURCES = tests/check_protocol.c
tests_check_protocol_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_protocol_LDADD = $(CORE_TEST_LIBS)
tests_check_transport_SOURCES = tests/check_transport.c
tests_check_transport_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_transport_LDADD = $(CORE_TEST_LIBS)

# Three builds of one plugin, each reporting its own version, copied over a
# watched file by the reload tests and the benchmark.
RELOAD_FIXTURES = tests/fixtures/reload_v1.la tests/fixtures/reload_v2.la \
	tests/fixtures/reload_v3.la tests/fixtures/reload_nodelete.la
check_LTLIBRARIES += $(RELOAD_FIXTURES)
# check_loader reloads them too.
EXTRA_tests_check_loader_DEPENDENCIES += $(RELOAD_FIXTURES)
tests_fixtures_reload_v1_la_SOURCES = tests/fixtures/reload.c
tests_fixtures_reload_v1_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_reload_v1_la_CPPFLAGS = $(AM_CPPFLAGS) -DRELOAD_VERSION=1
tests_fixtures_reload_v1_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_reload_v2_la_SOURCES = tests/fixtures/reload.c
tests_fixtures_reload_v2_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_reload_v2_la_CPPFLAGS = $(AM_CPPFLAGS) -DRELOAD_VERSION=2
tests_fixtures_reload_v2_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_reload_v3_la_SOURCES = tests/fixtures/reload.c
tests_fixtures_reload_v3_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_reload_v3_la_CPPFLAGS = $(AM_CPPFLAGS) -DRELOAD_VERSION=3
tests_fixtures_reload_v3_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
# Marked DF_1_NODELETE: dlclose cannot unmap it, which the loader must notice
# (RTLD_NOLOAD) and report as "not unloadable".
tests_fixtures_reload_nodelete_la_SOURCES = tests/fixtures/reload.c
tests_fixtures_reload_nodelete_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_fixtures_reload_nodelete_la_CPPFLAGS = $(AM_CPPFLAGS) -DRELOAD_VERSION=9
tests_fixtures_reload_nodelete_la_LDFLAGS = $(FIXTURE_LINK_FLAGS) -Wl,-z,nodelete

TESTS += tests/shell/serve.sh
EXTRA_DIST += tests/shell/serve.sh

# The systemd unit, with the installed program's path.  Installed under
# $(prefix)/lib/systemd/system (/usr/lib/systemd/system with --prefix=/usr,
# where distributions keep units); a packager who ships units elsewhere
# passes systemdunitdir=... to make install.
systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = conf/ndf.service
EXTRA_DIST += conf/ndf.service.in
CLEANFILES += conf/ndf.service
conf/ndf.service: $(srcdir)/conf/ndf.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && rm -f $@ $@.tmp && \
	sed -e 's|@ndf_bindir@|$(bindir)|g' -e 's|@ndf_sysconfdir@|$(sysconfdir)|g' \
	    -e 's|@ndf_statedir@|$(localstatedir)/lib/ndf|g' \
	    -e 's|@ndf_socket@|$(runstatedir)/ndf/ndf.sock|g' \
	    $(srcdir)/conf/ndf.service.in > $@.tmp && mv $@.tmp $@

EXTRA_PROGRAMS += tests/bench/bench_serve
BENCHMARKS += tests/bench/bench_serve
CLEANFILES += tests/bench/bench_serve
tests_bench_bench_serve_SOURCES = tests/bench/bench_serve.c
tests_bench_bench_serve_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_bench_bench_serve_LDADD = libndfcore.la
# It serves the reload fixtures with the ndf program just built.
EXTRA_tests_bench_bench_serve_DEPENDENCIES = $(RELOAD_FIXTURES) ndf$(EXEEXT)
