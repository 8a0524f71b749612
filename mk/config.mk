# Configuration: reading ndf.conf (host/conf/config.c), the check-config and
# config commands, the example configuration and ndf.conf(5).
libndfcore_la_SOURCES += host/conf/config.c host/conf/config.h \
	host/conf/conftext.c host/conf/conftext.h \
	host/conf/agents.c host/conf/agents.h

check_PROGRAMS += tests/check_config
tests_check_config_SOURCES = tests/check_config.c
tests_check_config_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_config_LDADD = $(CORE_TEST_LIBS)
TESTS += tests/check_config tests/shell/check_config.sh tests/shell/hostile_output.sh \
	tests/shell/hostile_config.sh

# Fixtures for the error cases (read in place through $(srcdir)).
EXTRA_DIST += tests/shell/check_config.sh tests/shell/hostile_output.sh \
	tests/shell/hostile_config.sh \
	tests/configs/README \
	tests/configs/syntax.conf \
	tests/configs/types.conf \
	tests/configs/ranges.conf \
	tests/configs/unknown.conf \
	tests/configs/patterns.conf \
	tests/configs/include.conf \
	tests/configs/inc/settings.inc \
	tests/configs/dup/main.conf \
	tests/configs/dup/d/10-first.conf \
	tests/configs/dup/d/20-second.conf \
	tests/configs/dup/d/30-extra.conf \
	tests/configs/dup/d/ignored.txt \
	tests/configs/relative/sub/ndf.conf

dist_man_MANS += doc/ndf.conf.5

# The example configuration.  ndf.conf.in is turned into two files:
#  - conf/ndf.conf, installed into $(sysconfdir)/ndf and as an example;
#  - conf/ndf-build.conf, which points the uninstalled program at the build
#    tree (plugins just built, patterns from the source tree, state under
#    $(top_builddir)/var), for the README's demo and `make check`.
NDF_PATTERN_FILES = \
	conf/patterns.d/10-data-processing.conf \
	conf/patterns.d/20-microservices.conf \
	conf/patterns.d/25-health-checks.conf \
	conf/patterns.d/30-migration.conf \
	conf/patterns.d/90-basic-deployment.conf

ndfconfdir = $(sysconfdir)/ndf
ndfconf_DATA = conf/ndf.conf
ndfexamplesdir = $(docdir)/examples
ndfexamples_DATA = conf/ndf.conf
# The demo patterns are examples, not live configuration: a fresh install
# runs none of them.  The live patterns.d is created empty for the
# operator's own (and removed on uninstall when it is still empty).
ndfexamplespatternsdir = $(docdir)/examples/patterns.d
dist_ndfexamplespatterns_DATA = $(NDF_PATTERN_FILES)
# The delegation demo: a pattern set and the script that shows ndf learning
# which of them to choose (also examples, never live configuration).
ndfexamplesdelegationdir = $(docdir)/examples/delegation
dist_ndfexamplesdelegation_DATA = conf/delegation/patterns.conf
dist_ndfexamplesdelegation_SCRIPTS = conf/delegation/demo.sh
install-data-local: install-data-local-patterns
install-data-local-patterns:
	$(MKDIR_P) '$(DESTDIR)$(sysconfdir)/ndf/patterns.d'
uninstall-local: uninstall-local-patterns
uninstall-local-patterns:
	-rmdir '$(DESTDIR)$(sysconfdir)/ndf/patterns.d' 2>/dev/null
.PHONY: install-data-local-patterns uninstall-local-patterns

EXTRA_DIST += conf/ndf.conf.in
CLEANFILES += conf/ndf.conf conf/ndf-build.conf

# Lines marked "@install-only@" or "@build-only@" are kept in one output and
# dropped from the other; the marker itself is removed.
conf/ndf.conf: $(srcdir)/conf/ndf.conf.in Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && rm -f $@ $@.tmp && \
	sed -e '/@build-only@/d' -e 's| *# *@install-only@||' \
	    -e 's|@plugindir@|$(pkglibdir)|g' \
	    -e 's|@statedir@|$(localstatedir)/lib/ndf|g' \
	    -e 's|@runsocket@|$(runstatedir)/ndf/ndf.sock|g' \
	    -e 's|@patternsdir@|patterns.d|g' \
	    $(srcdir)/conf/ndf.conf.in > $@.tmp && mv $@.tmp $@

conf/ndf-build.conf: $(srcdir)/conf/ndf.conf.in Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && rm -f $@ $@.tmp && \
	sed -e '/@install-only@/d' -e 's| *# *@build-only@||' \
	    -e 's|@plugindir@|$(abs_top_builddir)/plugins/.libs|g' \
	    -e 's|@statedir@|$(abs_top_builddir)/var/state|g' \
	    -e 's|@patternsdir@|$(abs_top_srcdir)/conf/patterns.d|g' \
	    -e 's|@plugincachedir@|$(abs_top_builddir)/var/plugin-cache|g' \
	    -e 's|@socket@|$(abs_top_builddir)/var/ndf.sock|g' \
	    $(srcdir)/conf/ndf.conf.in > $@.tmp && mv $@.tmp $@

all-local: conf/ndf-build.conf

# State, plugin cache and socket of build-tree runs.
clean-local: clean-local-config
clean-local-config:
	-rm -rf var
.PHONY: clean-local-config

# Reading cost: long values and many patterns beside libconfig's own file
# reader (make bench).
EXTRA_PROGRAMS += tests/bench/bench_config
BENCHMARKS += tests/bench/bench_config
CLEANFILES += tests/bench/bench_config
tests_bench_bench_config_SOURCES = tests/bench/bench_config.c
tests_bench_bench_config_CPPFLAGS = $(libndfcore_la_CPPFLAGS)
tests_bench_bench_config_LDADD = libndfcore.la
