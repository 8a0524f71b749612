/* The unrecorded-end note: slots claimed, found, freed; several processes
 * sharing it never take the same slot; a hostile file is refused. */
#include "build-config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "store/unrec.h"

static char dir[] = "/tmp/ndf-unrec.XXXXXX";
static char path[256];

static void setup(void)
{
    strcpy(dir, "/tmp/ndf-unrec.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, UNREC_NAME);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

static unrec_entry entry(const char *id, long pid)
{
    unrec_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    e.pid = pid;
    e.end = 1000.5;
    e.duration = 2.25;
    snprintf(e.status, sizeof e.status, "SUCCEEDED");
    snprintf(e.boot, sizeof e.boot, "boot-1");
    snprintf(e.cause, sizeof e.cause, "database or disk is full");
    return e;
}

START_TEST(test_put_find_drop)
{
    unrec *u = unrec_open(dir);
    ck_assert_ptr_nonnull(u);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, UNREC_SLOTS * UNREC_SLOT_SIZE);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    unrec_entry a = entry("e-1", 42), b = entry("e-2", 42), c = entry("e-3", 43), got;
    ck_assert_int_eq(unrec_find(u, "e-1", 42, &got), 0);
    ck_assert_int_eq(unrec_put(u, &a), 0);
    ck_assert_int_eq(unrec_put(u, &b), 0);
    ck_assert_int_eq(unrec_put(u, &c), 0);
    ck_assert_int_eq(unrec_put(u, &a), 0); /* again: the same slot */
    ck_assert_int_eq(unrec_find(u, "e-1", 42, &got), 1);
    ck_assert_str_eq(got.status, "SUCCEEDED");
    ck_assert_str_eq(got.cause, "database or disk is full");
    ck_assert_str_eq(got.boot, "boot-1");
    ck_assert(got.end == 1000.5 && got.duration == 2.25);
    ck_assert_int_eq(unrec_find(u, "e-1", 43, &got), 0); /* another pid's id */
    unrec_entry *v;
    size_t n = unrec_of_pid(u, 42, &v);
    ck_assert_uint_eq(n, 2);
    free(v);
    unrec_drop(u, &a);
    ck_assert_int_eq(unrec_find(u, "e-1", 42, &got), 0);
    ck_assert_int_eq(unrec_find(u, "e-2", 42, &got), 1);
    unrec_close(u);
    /* it lasts: another open finds what was left */
    u = unrec_open(dir);
    ck_assert_int_eq(unrec_find(u, "e-3", 43, &got), 1);
    unrec_close(u);
}
END_TEST

START_TEST(test_full_and_long_fields)
{
    unrec *u = unrec_open(dir);
    ck_assert_ptr_nonnull(u);
    char id[32];
    for (int i = 0; i < UNREC_SLOTS; i++) {
        snprintf(id, sizeof id, "x-%d", i);
        unrec_entry e = entry(id, 7);
        ck_assert_int_eq(unrec_put(u, &e), 0);
    }
    unrec_entry more = entry("x-more", 7);
    ck_assert_int_eq(unrec_put(u, &more), -1); /* no slot left: said, not overwritten */
    unrec_entry first = entry("x-0", 7), got;
    unrec_drop(u, &first);
    ck_assert_int_eq(unrec_put(u, &more), 0);
    ck_assert_int_eq(unrec_find(u, "x-more", 7, &got), 1);
    ck_assert_int_eq(unrec_find(u, "x-63", 7, &got), 1);
    /* a cause longer than its field is cut, still terminated */
    unrec_entry lng = entry("x-1", 7);
    memset(lng.cause, 'c', sizeof lng.cause - 1);
    ck_assert_int_eq(unrec_put(u, &lng), 0);
    ck_assert_int_eq(unrec_find(u, "x-1", 7, &got), 1);
    ck_assert_uint_eq(strlen(got.cause), sizeof got.cause - 1);
    unrec_close(u);
}
END_TEST

/* Several processes claim slots at once: each entry survives in a slot
 * of its own. */
START_TEST(test_processes_share_it)
{
    unrec *u = unrec_open(dir);
    ck_assert_ptr_nonnull(u);
    unrec_close(u);
    const int procs = 4, each = UNREC_SLOTS / 4;
    for (int p = 0; p < procs; p++) {
        pid_t c = fork();
        ck_assert_int_ge(c, 0);
        if (c == 0) {
            unrec *cu = unrec_open(dir);
            int bad = !cu;
            for (int i = 0; i < each && cu; i++) {
                char id[32];
                snprintf(id, sizeof id, "p%d-%d", p, i);
                unrec_entry e = entry(id, 100 + p);
                bad |= unrec_put(cu, &e) != 0;
            }
            unrec_close(cu);
            _exit(bad);
        }
    }
    for (int p = 0; p < procs; p++) {
        int st;
        ck_assert_int_gt(wait(&st), 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    u = unrec_open(dir);
    for (int p = 0; p < procs; p++) {
        unrec_entry *v;
        ck_assert_uint_eq(unrec_of_pid(u, 100 + p, &v), (size_t)each);
        free(v);
    }
    unrec_close(u);
}
END_TEST

START_TEST(test_hostile_file)
{
    /* a symlink is never followed, nor is anything created through it */
    char target[300];
    snprintf(target, sizeof target, "%s/elsewhere", dir);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert_ptr_null(unrec_open(dir));
    ck_assert_int_ne(access(target, F_OK), 0);
    unlink(path);
    /* the wrong size */
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "xyz", 3), 3);
    close(fd);
    ck_assert_ptr_null(unrec_open(dir));
    unlink(path);
    /* a directory in its place */
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_ptr_null(unrec_open(dir));
    rmdir(path);
    /* garbage: opened, never trusted; its slots are taken as free */
    unrec *u = unrec_open(dir);
    unrec_entry e = entry("g-1", 9), got;
    ck_assert_int_eq(unrec_put(u, &e), 0);
    unrec_close(u);
    fd = open(path, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "Z", 1, 40), 1); /* inside the first slot's id */
    close(fd);
    u = unrec_open(dir);
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(unrec_find(u, "g-1", 9, &got), 0);
    ck_assert_int_eq(unrec_find(u, "g-1", 9, &got), 0);
    for (int i = 0; i < UNREC_SLOTS; i++) {
        char id[32];
        snprintf(id, sizeof id, "g-%d", i + 10);
        unrec_entry f = entry(id, 9);
        ck_assert_int_eq(unrec_put(u, &f), 0);
    }
    unrec_close(u);
    /* NULL note: every call is a no-op */
    ck_assert_int_eq(unrec_put(NULL, &e), -1);
    ck_assert_int_eq(unrec_find(NULL, "g-1", 9, &got), 0);
    unrec_drop(NULL, &e);
}
END_TEST

static Suite *unrec_suite(void)
{
    Suite *s = suite_create("unrec");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_put_find_drop);
    tcase_add_test(tc, test_full_and_long_fields);
    tcase_add_test(tc, test_processes_share_it);
    tcase_add_test(tc, test_hostile_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(unrec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
