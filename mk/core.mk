# The host's core: a convenience library shared by the ndf program and the
# Check suites, so every suite links the code it tests.
noinst_LTLIBRARIES += libndfcore.la
libndfcore_la_SOURCES = \
	host/base/util.c host/base/util.h \
	host/base/value.c host/base/value.h \
	host/exec/services.c host/exec/services.h \
	host/app/runtime.c host/app/runtime.h \
	host/app/define.c host/app/define.h \
	host/app/delegation.c host/app/delegation.h
libndfcore_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DPLUGINDIR='"$(pkglibdir)"' -DSYSCONFDIR='"$(sysconfdir)"' \
	-DLOCALSTATEDIR='"$(localstatedir)"' -DRUNSTATEDIR='"$(runstatedir)"' \
	$(LIBCONFIG_CFLAGS) $(CJSON_CFLAGS) $(ZLIB_CFLAGS) $(YAML_CFLAGS)
libndfcore_la_LIBADD = $(LIBCONFIG_LIBS) $(CJSON_LIBS) $(ZLIB_LIBS) $(YAML_LIBS)

CORE_TEST_CFLAGS = $(libndfcore_la_CPPFLAGS) $(CHECK_CFLAGS)
CORE_TEST_LIBS = libndfcore.la $(CHECK_LIBS)

check_PROGRAMS += tests/check_runtime
TESTS += tests/check_runtime
tests_check_runtime_SOURCES = tests/check_runtime.c
tests_check_runtime_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_runtime_LDADD = $(CORE_TEST_LIBS)

check_PROGRAMS += tests/check_util tests/check_value
TESTS += tests/check_util tests/check_value
tests_check_util_SOURCES = tests/check_util.c
tests_check_util_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_util_LDADD = $(CORE_TEST_LIBS)
tests_check_value_SOURCES = tests/check_value.c
tests_check_value_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_value_LDADD = $(CORE_TEST_LIBS)

# The layers of host/ include only downward, with no module cycle.
TESTS += tests/shell/layers.sh
EXTRA_DIST += tests/shell/layers.sh

# The program itself, the one layer outside libndfcore.la.
include mk/cli.mk
