# model: contexts, patterns, learning, the registry and the pattern commands.
libndfcore_la_SOURCES += \
	host/context.c host/context.h \
	host/learning.c host/learning.h \
	host/pattern.c host/pattern.h \
	host/registry.c host/registry.h
