# The plugins shipped with ndf: the seed's three pattern types, the core
# steps, and the template plugin.  Each is built only against sdk/ (never
# host/) and exports only its descriptor.
pkglib_LTLIBRARIES += plugins/sequential.la plugins/parallel.la plugins/meta.la \
	plugins/steps.la

plugins_sequential_la_SOURCES = plugins/sequential/sequential.c
plugins_sequential_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_sequential_la_CPPFLAGS = -I$(top_srcdir)/sdk
plugins_sequential_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)

plugins_parallel_la_SOURCES = plugins/parallel/parallel.c
plugins_parallel_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_parallel_la_CPPFLAGS = -I$(top_srcdir)/sdk
plugins_parallel_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)

plugins_meta_la_SOURCES = plugins/meta/meta.c
plugins_meta_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_meta_la_CPPFLAGS = -I$(top_srcdir)/sdk
plugins_meta_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)

plugins_steps_la_SOURCES = plugins/steps/steps.c
plugins_steps_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_steps_la_CPPFLAGS = -I$(top_srcdir)/sdk
plugins_steps_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)

# The template for third-party authors.  Built in the build tree with every
# `make` (so it keeps compiling, and tests load it from plugins/.libs), never
# installed as a live plugin: its source, Makefile and README are installed
# as documentation, to copy.
noinst_LTLIBRARIES += plugins/example.la
plugins_example_la_SOURCES = plugins/example/example.c
plugins_example_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_example_la_CPPFLAGS = -I$(top_srcdir)/sdk
plugins_example_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
ndfexampleplugindir = $(docdir)/examples/plugin
dist_ndfexampleplugin_DATA = plugins/example/example.c plugins/example/Makefile \
	plugins/example/README.md

# Their Check suites run patterns on the real executor with the build-tree
# plugins ($NDF_PLUGIN_PATH); plugin_harness.h is their shared set-up.
PLUGIN_SUITES = tests/check_sequential tests/check_parallel tests/check_meta tests/check_steps
check_PROGRAMS += $(PLUGIN_SUITES)
TESTS += $(PLUGIN_SUITES)
tests_check_sequential_SOURCES = tests/check_sequential.c tests/plugin_harness.h
tests_check_sequential_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_sequential_LDADD = $(CORE_TEST_LIBS)
tests_check_parallel_SOURCES = tests/check_parallel.c tests/plugin_harness.h
tests_check_parallel_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_parallel_LDADD = $(CORE_TEST_LIBS)
tests_check_meta_SOURCES = tests/check_meta.c tests/plugin_harness.h
tests_check_meta_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_meta_LDADD = $(CORE_TEST_LIBS)
tests_check_steps_SOURCES = tests/check_steps.c tests/plugin_harness.h
tests_check_steps_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_steps_LDADD = $(CORE_TEST_LIBS)

# The agent step: delegates a step to an agent program.  It
# links cJSON itself, to check and pick from JSON answers.
pkglib_LTLIBRARIES += plugins/agent.la
plugins_agent_la_SOURCES = plugins/agent/agent.c
plugins_agent_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_agent_la_CPPFLAGS = -I$(top_srcdir)/sdk $(CJSON_CFLAGS)
plugins_agent_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_agent_la_LIBADD = $(CJSON_LIBS)

# Its suite drives a fake agent (a shell script read through $(srcdir)).
check_PROGRAMS += tests/check_agent
TESTS += tests/check_agent
tests_check_agent_SOURCES = tests/check_agent.c tests/plugin_harness.h
tests_check_agent_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_agent_LDADD = $(CORE_TEST_LIBS)
EXTRA_DIST += tests/fixtures/fake_agent.sh
