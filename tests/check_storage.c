/* Check suite for host/store/storage.c, the reader of the previous
 * release's per-pattern files that the store imports: files written by
 * that release (tests/compat/storage-v1), a damaged file falling back to
 * its backup without writing, bounded decompression, FIFOs, bad names and
 * the document checks. */
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

#include <zlib.h>

#include "base/util.h"
#include "store/storage.h"

static char dir[512];

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char *p = xasprintf("%s/%s", path, de->d_name);
            rm_rf(p);
            free(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void setup(void)
{
    const char *base = getenv("top_builddir");
    snprintf(dir, sizeof dir, "%s/check_storage.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    log_set_level(-1);
}

static void teardown(void)
{
    rm_rf(dir);
}

/* Copies fixture `name` of tests/compat/storage-v1 into the directory as
 * `as` (NULL: the same name). */
static void fixture(const char *name, const char *as)
{
    const char *src = getenv("top_srcdir");
    char *from = xasprintf("%s/tests/compat/storage-v1/%s", src ? src : ".", name);
    char *to = xasprintf("%s/%s", dir, as ? as : name);
    FILE *in = fopen(from, "rb");
    ck_assert_msg(in != NULL, "%s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    free(from);
    free(to);
}

static storage *open_dir(void)
{
    storage_opts o = {1, 1};
    storage *s;
    ck_assert_int_eq(storage_open(dir, &o, &s), NDF_OK);
    return s;
}

START_TEST(test_fixtures_load)
{
    fixture("legacy.json.gz", NULL);
    fixture("legacy.json.gz.1", NULL);
    fixture("other.v2.json.gz", NULL);
    fixture("plain.json", NULL);
    storage *s = open_dir();
    char **names;
    size_t n;
    ck_assert_int_eq(storage_list(s, &names, &n), NDF_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(names[0], "legacy");
    ck_assert_str_eq(names[1], "other.v2");
    ck_assert_str_eq(names[2], "plain");
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);

    stored_pattern sp;
    ck_assert_int_eq(storage_load_pattern(s, "legacy", &sp), NDF_OK);
    ck_assert_str_eq(sp.name, "legacy");
    ck_assert_uint_eq(sp.learn.executions, 5);
    ck_assert_uint_eq(sp.learn.successes, 4);
    ck_assert_uint_eq(sp.learn.ndomains, 1);
    ck_assert_str_eq(sp.learn.domains[0].domain, "web");
    ck_assert(sp.learn.created == 1690000000);
    /* written with history_limit 3: the newest three, oldest first */
    ck_assert_uint_eq(sp.nhistory, 3);
    ck_assert(sp.history[0].time == 1700000002);
    ck_assert_str_eq(sp.history[0].outcome, "timeout");
    ck_assert_str_eq(sp.history[0].error, "timed out after 1s");
    ck_assert_uint_eq(sp.history[0].nsteps, 2);
    ck_assert(sp.history[0].steps[1].duration_s == 0.25);
    ck_assert_int_eq(sp.history[2].peak_rss_kb, 2048);
    stored_pattern_free(&sp);

    /* the other extension is found too */
    ck_assert_int_eq(storage_load_pattern(s, "plain", &sp), NDF_OK);
    ck_assert_uint_eq(sp.nhistory, 0);
    ck_assert_uint_eq(sp.learn.executions, 5);
    stored_pattern_free(&sp);
    ck_assert_int_eq(storage_load_pattern(s, "absent", &sp), NDF_ERR_NOT_FOUND);
    storage_close(s);
}
END_TEST

START_TEST(test_damaged_uses_backup_without_writing)
{
    fixture("legacy.json.gz.1", NULL);
    fixture("legacy.json.gz", "whole");
    char *whole = xasprintf("%s/whole", dir), *cut = xasprintf("%s/legacy.json.gz", dir);
    ck_assert_int_eq(truncate(whole, 30), 0);
    ck_assert_int_eq(rename(whole, cut), 0);
    storage *s = open_dir();
    stored_pattern sp;
    ck_assert_int_eq(storage_load_pattern(s, "legacy", &sp), NDF_OK);
    ck_assert_uint_eq(sp.learn.executions, 4); /* the backup's */
    stored_pattern_free(&sp);
    struct stat st;
    ck_assert_int_eq(stat(cut, &st), 0);
    ck_assert_int_eq(st.st_size, 30); /* nothing rewritten */
    /* without the backup: an I/O error naming the file and the reason */
    char *bk = xasprintf("%s/legacy.json.gz.1", dir);
    ck_assert_int_eq(unlink(bk), 0);
    ck_assert_int_eq(storage_load_pattern(s, "legacy", &sp), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "legacy.json.gz"));
    ck_assert_ptr_nonnull(strstr(err_msg(), "no good backup"));
    storage_close(s);
    free(whole);
    free(cut);
    free(bk);
}
END_TEST

START_TEST(test_inflate_bound)
{
    /* a small file that inflates beyond the document limit */
    size_t big = STORAGE_MAX_DOCUMENT + 4096;
    char *spaces = xmalloc(big);
    memset(spaces, ' ', big);
    char *path = xasprintf("%s/bomb.json.gz", dir);
    gzFile gz = gzopen(path, "wb9");
    ck_assert_ptr_nonnull(gz);
    ck_assert_int_eq(gzwrite(gz, spaces, (unsigned)big), (int)big);
    ck_assert_int_eq(gzclose(gz), Z_OK);
    free(spaces);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_lt(st.st_size, 1 << 20);
    storage *s = open_dir();
    stored_pattern sp;
    ck_assert_int_eq(storage_load_pattern(s, "bomb", &sp), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "limit"));
    storage_close(s);
    free(path);
}
END_TEST

START_TEST(test_fifo_and_bad_names)
{
    char *fifo = xasprintf("%s/pipe.json.gz", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    storage *s = open_dir();
    stored_pattern sp;
    /* refused as not regular, without waiting for a writer */
    ck_assert_int_eq(storage_load_pattern(s, "pipe", &sp), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "not a regular file"));
    ck_assert_int_eq(storage_load_pattern(s, "../etc", &sp), NDF_ERR_INVALID);
    ck_assert_int_eq(storage_load_pattern(s, ".hidden", &sp), NDF_ERR_INVALID);
    ck_assert_int_eq(storage_load_pattern(s, "a/b", &sp), NDF_ERR_INVALID);
    storage_close(s);
    free(fifo);
    /* a missing directory holds nothing */
    char *none = xasprintf("%s/none", dir);
    storage_opts o = {1, 1};
    ck_assert_int_eq(storage_open(none, &o, &s), NDF_OK);
    char **names;
    size_t n;
    ck_assert_int_eq(storage_list(s, &names, &n), NDF_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(storage_load_pattern(s, "x", &sp), NDF_ERR_NOT_FOUND);
    storage_close(s);
    free(none);
}
END_TEST

static int parse(const char *text, stored_pattern *sp)
{
    return storage_from_json(text, strlen(text), sp);
}

START_TEST(test_document_checks)
{
    stored_pattern sp;
    ck_assert_int_eq(parse("{\"schema\":1,\"name\":\"p\",\"learning\":{\"executions\":2,"
                           "\"successes\":1,\"score\":0.5}}",
                           &sp),
                     NDF_OK);
    ck_assert_uint_eq(sp.learn.executions, 2);
    stored_pattern_free(&sp);
    ck_assert_int_eq(parse("{\"schema\":2,\"name\":\"p\"}", &sp), NDF_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err_msg(), "unsupported schema version 2"));
    ck_assert_int_eq(parse("{\"schema\":1,\"name\":\"p\",\"learning\":{\"executions\":1,"
                           "\"successes\":2,\"score\":0.5}}",
                           &sp),
                     NDF_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err_msg(), "exceeds executions"));
    ck_assert_int_eq(parse("{\"schema\":1,\"name\":\"p\",\"learning\":{\"executions\":0,"
                           "\"successes\":0,\"score\":0.5}} {}",
                           &sp),
                     NDF_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err_msg(), "trailing data"));
    ck_assert_int_eq(parse("[1,2]", &sp), NDF_ERR_INVALID);
    ck_assert_int_eq(parse("{\"schema\":1,\"name\":\"p\",\"learning\":{\"executions\":1.5,"
                           "\"successes\":0,\"score\":0.5}}",
                           &sp),
                     NDF_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err_msg(), "not a count"));
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("legacy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fixtures_load);
    tcase_add_test(tc, test_damaged_uses_backup_without_writing);
    tcase_add_test(tc, test_inflate_bound);
    tcase_add_test(tc, test_fifo_and_bad_names);
    tcase_add_test(tc, test_document_checks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(storage_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
