# The host's core: a convenience library shared by the ndf program and the
# Check suites, so every suite links the code it tests.
noinst_LTLIBRARIES += libndfcore.la
libndfcore_la_SOURCES = \
	host/base/util.c host/base/util.h \
	host/base/value.c host/base/value.h \
	host/exec/services.c host/exec/services.h \
	host/cli/app.c host/cli/app.h \
	host/cli/commands.h
libndfcore_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-DPLUGINDIR='"$(pkglibdir)"' -DSYSCONFDIR='"$(sysconfdir)"' \
	-DLOCALSTATEDIR='"$(localstatedir)"' -DRUNSTATEDIR='"$(runstatedir)"' \
	$(LIBCONFIG_CFLAGS) $(CJSON_CFLAGS) $(ZLIB_CFLAGS) $(YAML_CFLAGS)
libndfcore_la_LIBADD = $(LIBCONFIG_LIBS) $(CJSON_LIBS) $(ZLIB_LIBS) $(YAML_LIBS)

bin_PROGRAMS += ndf
ndf_SOURCES = host/cli/main.c
ndf_CPPFLAGS = $(libndfcore_la_CPPFLAGS)
ndf_LDADD = libndfcore.la

CORE_TEST_CFLAGS = $(libndfcore_la_CPPFLAGS) $(CHECK_CFLAGS)
CORE_TEST_LIBS = libndfcore.la $(CHECK_LIBS)

check_PROGRAMS += tests/check_util tests/check_value
TESTS += tests/check_util tests/check_value
tests_check_util_SOURCES = tests/check_util.c
tests_check_util_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_util_LDADD = $(CORE_TEST_LIBS)
tests_check_value_SOURCES = tests/check_value.c
tests_check_value_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_value_LDADD = $(CORE_TEST_LIBS)
