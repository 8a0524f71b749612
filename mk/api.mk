# The reference's imperative API at run time: record, the verbs every
# command shares between one-shot use and ndf ctl, and the reference's
# semantics (find_patterns_by_domain order, the type's gate, exit codes).
TESTS += tests/shell/api.sh tests/shell/define.sh
EXTRA_DIST += tests/shell/api.sh tests/shell/define.sh
libndfcore_la_SOURCES += host/app/api.c host/app/api.h
ndf_SOURCES += host/cli/cmd_record.c host/cli/cmd_wait.c host/cli/cmd_define.c
# the work queue of a shared store: submit, and the workers that run it
ndf_SOURCES += host/cli/cmd_submit.c host/cli/cmd_workers.c
check_PROGRAMS += tests/check_define
TESTS += tests/check_define
tests_check_define_SOURCES = tests/check_define.c
tests_check_define_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_define_LDADD = $(CORE_TEST_LIBS)
