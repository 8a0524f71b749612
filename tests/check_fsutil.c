/* Check suite for host/base/fsutil.c: mkdir -p (modes, existing parts, a
 * file in the way) and atomic replacement (content, mode, no temporary file
 * left behind on success or failure, the old file intact on failure). */
#include "build-config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "base/util.h"

static char scratch[256];

static void setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/ndf-fsutil.XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
    umask(022);
}

static void rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    int rc = system(cmd);
    (void)rc;
    free(cmd);
}

static void teardown(void)
{
    rm_rf(scratch);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    strbuf sb;
    sb_init(&sb);
    char buf[256];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_add(&sb, buf, n);
    fclose(f);
    return sb_steal(&sb);
}

/* Entries of `dir` other than . and .., for "nothing left behind". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

START_TEST(test_mkdir_p)
{
    char *deep = xasprintf("%s/a/b/c", scratch);
    ck_assert_int_eq(fs_mkdir_p(deep, 0700, NULL), NDF_OK);
    struct stat st;
    ck_assert_int_eq(stat(deep, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    char *mid = xasprintf("%s/a", scratch);
    ck_assert_int_eq(stat(mid, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    /* existing directories are fine and keep their mode */
    ck_assert_int_eq(chmod(mid, 0755), 0);
    ck_assert_int_eq(fs_mkdir_p(deep, 0700, NULL), NDF_OK);
    ck_assert_int_eq(stat(mid, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0755);
    /* a trailing slash and doubled slashes */
    char *odd = xasprintf("%s//x//y/", scratch);
    ck_assert_int_eq(fs_mkdir_p(odd, 0755, NULL), NDF_OK);
    char *y = xasprintf("%s/x/y", scratch);
    ck_assert_int_eq(stat(y, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0755);
    free(deep);
    free(mid);
    free(odd);
    free(y);
}
END_TEST

START_TEST(test_mkdir_p_file_in_the_way)
{
    char *file = xasprintf("%s/file", scratch);
    ck_assert_int_eq(fs_replace(scratch, "file", "x", 1, 0600), NDF_OK);
    /* the file as a parent */
    char *below = xasprintf("%s/sub", file);
    errno = 0;
    ck_assert_int_eq(fs_mkdir_p(below, 0700, "the test directory"), NDF_ERR_IO);
    ck_assert_int_eq(errno, ENOTDIR);
    ck_assert_msg(strstr(err_msg(), "cannot create the test directory ") == err_msg(), "%s",
                  err_msg());
    /* the file as the directory itself */
    errno = 0;
    ck_assert_int_eq(fs_mkdir_p(file, 0700, NULL), NDF_ERR_IO);
    ck_assert_int_eq(errno, ENOTDIR);
    ck_assert_msg(strstr(err_msg(), "cannot create directory ") == err_msg(), "%s", err_msg());
    ck_assert_ptr_nonnull(strstr(err_msg(), file));
    free(file);
    free(below);
}
END_TEST

START_TEST(test_replace)
{
    char *path = xasprintf("%s/data.json", scratch);
    ck_assert_int_eq(fs_replace(scratch, "data.json", "{\"v\":1}\n", 8, 0640), NDF_OK);
    char *s = read_all(path);
    ck_assert_str_eq(s, "{\"v\":1}\n");
    free(s);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0640);
    ck_assert_int_eq(fs_replace(scratch, "data.json", "{\"v\":2}\n", 8, 0640), NDF_OK);
    s = read_all(path);
    ck_assert_str_eq(s, "{\"v\":2}\n");
    free(s);
    ck_assert_int_eq(count_entries(scratch), 1); /* no temporary left */
    /* an empty file is a valid content too */
    ck_assert_int_eq(fs_replace(scratch, "data.json", "", 0, 0640), NDF_OK);
    s = read_all(path);
    ck_assert_str_eq(s, "");
    free(s);
    /* a directory that does not exist */
    char *none = xasprintf("%s/none", scratch);
    ck_assert_int_eq(fs_replace(none, "f", "x", 1, 0600), NDF_ERR_IO);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_ptr_nonnull(strstr(err_msg(), none));
    free(none);
    free(path);
}
END_TEST

START_TEST(test_atomic_steps)
{
    int dfd = open(scratch, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(dfd, 0);
    /* commit under a name chosen after writing (content-addressed) */
    fs_atomic a;
    ck_assert_int_eq(fs_atomic_begin(&a, dfd, scratch, "copy", 0600), NDF_OK);
    ck_assert_int_ge(a.fd, 0);
    ck_assert_int_eq(strncmp(a.tmp, ".copy.tmp-", 10), 0);
    ck_assert_int_eq(fs_write_all(a.fd, "abc", 3), 0);
    ck_assert_int_eq(fs_atomic_commit(&a, "abc.bin", 0), NDF_OK);
    char *p = xasprintf("%s/abc.bin", scratch);
    char *s = read_all(p);
    ck_assert_str_eq(s, "abc");
    free(s);
    ck_assert_int_eq(count_entries(scratch), 1);

    /* abort leaves nothing behind */
    ck_assert_int_eq(fs_atomic_begin(&a, dfd, scratch, "gone", 0600), NDF_OK);
    ck_assert_int_eq(fs_write_all(a.fd, "zzz", 3), 0);
    fs_atomic_abort(&a);
    ck_assert_int_eq(count_entries(scratch), 1);

    /* a rename that fails (over a non-empty directory) removes the
     * temporary file and leaves what was there */
    char *busy = xasprintf("%s/busy", scratch);
    ck_assert_int_eq(fs_mkdir_p(busy, 0700, NULL), NDF_OK);
    ck_assert_int_eq(fs_replace(busy, "inner", "i", 1, 0600), NDF_OK);
    ck_assert_int_eq(fs_atomic_begin(&a, dfd, scratch, "busy", 0600), NDF_OK);
    ck_assert_int_eq(fs_write_all(a.fd, "new", 3), 0);
    ck_assert_int_eq(fs_atomic_commit(&a, "busy", FS_DURABLE), NDF_ERR_IO);
    ck_assert_msg(strstr(err_msg(), "cannot replace ") == err_msg(), "%s", err_msg());
    ck_assert_int_eq(count_entries(scratch), 2); /* abc.bin and busy/ */
    ck_assert_int_eq(count_entries(busy), 1);

    /* a name too long for a temporary file is refused, not truncated */
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(fs_atomic_begin(&a, dfd, scratch, longname, 0600), NDF_ERR_IO);
    ck_assert_int_eq(errno, ENAMETOOLONG);
    ck_assert_int_eq(count_entries(scratch), 2);
    close(dfd);
    free(p);
    free(busy);
}
END_TEST

START_TEST(test_unwritable_directory)
{
    if (geteuid() == 0)
        return; /* root writes anywhere: nothing to see */
    char *ro = xasprintf("%s/ro", scratch);
    ck_assert_int_eq(fs_mkdir_p(ro, 0500, NULL), NDF_OK);
    ck_assert_int_eq(fs_replace(ro, "f", "x", 1, 0600), NDF_ERR_IO);
    ck_assert_int_eq(errno, EACCES);
    char *below = xasprintf("%s/sub", ro);
    ck_assert_int_eq(fs_mkdir_p(below, 0700, NULL), NDF_ERR_IO);
    ck_assert_int_eq(errno, EACCES);
    ck_assert_int_eq(chmod(ro, 0700), 0);
    free(ro);
    free(below);
}
END_TEST

static Suite *fsutil_suite(void)
{
    Suite *s = suite_create("fsutil");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_mkdir_p);
    tcase_add_test(tc, test_mkdir_p_file_in_the_way);
    tcase_add_test(tc, test_replace);
    tcase_add_test(tc, test_atomic_steps);
    tcase_add_test(tc, test_unwritable_directory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fsutil_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
