# storage: crash-safe pattern storage, analytics and the resource monitor (issue 5)
libndfcore_la_SOURCES += \
	host/monitor.c host/monitor.h
