# Program-level shell tests owned by the build itself: the command line and
# the installed layout.
TESTS += tests/shell/cli.sh tests/shell/install.sh
EXTRA_DIST += tests/shell/cli.sh tests/shell/install.sh tests/shell/lib.sh

# Plugins are loaded with dlopen() on their .so; the .la files are of no use
# at run time, so they are not installed.  libtool uninstalls a module
# through its .la, hence the hook that removes the .so files itself.
install-exec-hook:
	@for la in $(pkglib_LTLIBRARIES); do \
	  rm -f "$(DESTDIR)$(pkglibdir)/`basename $$la`"; \
	done
uninstall-hook:
	@for la in $(pkglib_LTLIBRARIES); do \
	  rm -f "$(DESTDIR)$(pkglibdir)/`basename $$la .la`.so"; \
	done

# Used by tests/shell/install.sh to learn the configured layout.
print-install-dirs:
	@echo "prefix='$(prefix)' bindir='$(bindir)' libdir='$(libdir)' pkglibdir='$(pkglibdir)'"
	@echo "includedir='$(includedir)' sysconfdir='$(sysconfdir)' mandir='$(mandir)' docdir='$(docdir)'"
	@echo "plugins='$(pkglib_LTLIBRARIES)'"
	@echo "localstatedir='$(localstatedir)' runstatedir='$(runstatedir)' bashcompletiondir='$(bashcompletiondir)'"
.PHONY: print-install-dirs

# The README's demo: the seed's complete example, from the build tree.
EXTRA_DIST += conf/demo.sh
demo: all conf/ndf-build.conf
	@NDF_RUNTIME_DIR='$(abs_top_builddir)/var/run' \
	  $(SHELL) $(srcdir)/conf/demo.sh '$(abs_top_builddir)/ndf' '$(abs_top_builddir)/conf/ndf-build.conf'
.PHONY: demo
# Delegation learning, shown (conf/delegation/demo.sh).
demo-delegation: all
	NDF_PLUGIN_PATH='$(abs_top_builddir)/plugins/.libs' \
	  $(SHELL) $(srcdir)/conf/delegation/demo.sh '$(abs_top_builddir)/ndf'
.PHONY: demo-delegation

# The plugin author's kit: test-step, new-plugin, inspect --conformance.
TESTS += tests/shell/kit.sh
EXTRA_DIST += tests/shell/kit.sh
# A third party's plugin (SDK 1.2: a quorum type), built by install.sh from
# the staged SDK only.
EXTRA_DIST += tests/oot/quorum/quorum.c tests/oot/quorum/Makefile

# Lists the test scripts and programs, for CI to pick subsets (the
# sanitizer stages run the thread-heavy ones, distcheck the unit suites).
print-tests:
	@echo $(TESTS)
.PHONY: print-tests

# The order the tests start in (longest first), in GNU make's own syntax.
EXTRA_DIST += mk/test-order.gmk
-include $(top_srcdir)/mk/test-order.gmk

# The cluster the PostgreSQL tests copy instead of running initdb each
# (tests/shell/pglib.sh makes it on first use).
clean-local: clean-local-pg-template
clean-local-pg-template:
	-rm -rf tests/pg-template tests/pg-template.*
.PHONY: clean-local-pg-template
