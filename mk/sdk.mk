# The SDK: installed headers and the pkg-config module.
ndfincludedir = $(includedir)/ndf
ndfinclude_HEADERS = \
	sdk/ndf/sdk.h sdk/ndf/version.h sdk/ndf/status.h sdk/ndf/params.h \
	sdk/ndf/context.h sdk/ndf/exec.h sdk/ndf/step.h sdk/ndf/pattern.h \
	sdk/ndf/host.h sdk/ndf/plugin.h

pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = sdk/ndf-sdk.pc
DISTCLEANFILES += sdk/ndf-sdk.pc
EXTRA_DIST += sdk/ndf-sdk.pc.in sdk/README.md

dist_man_MANS += doc/ndf.1 doc/ndf-plugin.7

# configure reads the ABI version out of version.h (for ndf-sdk.pc): a change
# to the header re-runs configure.
CONFIG_STATUS_DEPENDENCIES = $(srcdir)/sdk/ndf/version.h
