# base: the helpers every layer shares (hash map, file system, the learning
# arithmetic), each with its Check suite.  Also in base/: util and value
# (listed in core.mk) and sha256 (in loader.mk, beside its one user).
libndfcore_la_SOURCES += \
	host/base/hashmap.c host/base/hashmap.h \
	host/base/fsutil.c host/base/fsutil.h \
	host/base/learning.c host/base/learning.h \
	host/base/ztail.c host/base/ztail.h

check_PROGRAMS += tests/check_hashmap tests/check_fsutil tests/check_learning tests/check_ztail
TESTS += tests/check_hashmap tests/check_fsutil tests/check_learning tests/check_ztail
tests_check_hashmap_SOURCES = tests/check_hashmap.c
tests_check_hashmap_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_hashmap_LDADD = $(CORE_TEST_LIBS)
tests_check_fsutil_SOURCES = tests/check_fsutil.c
tests_check_fsutil_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_fsutil_LDADD = $(CORE_TEST_LIBS)
tests_check_learning_SOURCES = tests/check_learning.c
tests_check_learning_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_learning_LDADD = $(CORE_TEST_LIBS)
tests_check_ztail_SOURCES = tests/check_ztail.c
tests_check_ztail_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_ztail_LDADD = $(CORE_TEST_LIBS) $(ZLIB_LIBS)
