/* Check suite for host/monitor.c: usage fractions from fake /proc files,
 * the availability test, a missing /proc, concurrent sampling, and the
 * measuring scope with a real child process. */
#include "build-config.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec/monitor.h"
#include "base/util.h"

static char dir[512];

static void put(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static void setup(void)
{
    const char *base = getenv("top_builddir");
    snprintf(dir, sizeof dir, "%s/check_monitor.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    /* test_own_counting's process tree: this process, a child, a grandchild
     * and a stranger */
    char *sub[4];
    int pids[4] = {(int)getpid(), 900001, 900002, 900003};
    for (int i = 0; i < 4; i++) {
        sub[i] = xasprintf("%s/%d", dir, pids[i]);
        char *f = xasprintf("%s/stat", sub[i]);
        unlink(f);
        free(f);
        rmdir(sub[i]);
        free(sub[i]);
    }
    monitor_set_counting(MONITOR_COUNT_NDF);
    static const char *const files[] = {"stat", "meminfo", "diskstats"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, files[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    monitor_set_proc_dir(NULL);
}

/* Waits out the sample cache (not a timing assertion). */
static void past_cache(void)
{
    struct timespec ts = {0, (long)(MONITOR_CACHE_S * 1.5e9)};
    nanosleep(&ts, NULL);
}

START_TEST(test_fractions)
{
    monitor_set_counting(MONITOR_COUNT_SYSTEM);
    put("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n"
                "cpu1 50 0 50 400 0 0 0 0 0 0\nintr 1\n");
    put("meminfo", "MemTotal:       1000 kB\nMemFree:         100 kB\n"
                   "MemAvailable:    250 kB\n");
    put("diskstats", "   8       0 sda 1 0 0 0 0 0 0 0 0 1000 0\n"
                     "   8       1 sda1 1 0 0 0 0 0 0 0 0 500 0\n"
                     "   7       0 loop0 1 0 0 0 0 0 0 0 0 0 0\n");
    monitor_set_proc_dir(dir);
    monitor_sample s;
    ck_assert_int_eq(monitor_sample_get(&s), NDF_OK);
    ck_assert_double_eq(s.cpu, 0); /* no change between the two readings */
    ck_assert_double_eq_tol(s.mem, 0.75, 1e-12);
    ck_assert_double_eq(s.io, 0);
    ck_assert_int_eq(s.ncpu, 2);
    ck_assert_double_eq(s.mem_total_kb, 1000);

    /* busy: 800 jiffies passed, 400 of them idle or iowait -> 0.5 */
    put("stat", "cpu  400 0 200 1100 100 0 0 0 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n");
    /* no MemAvailable (old kernels): free + buffers + cached */
    put("meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 100 kB\n");
    put("diskstats", "   8       0 sda 1 0 0 0 0 0 0 0 0 100000000 0\n"
                     "   7       0 loop0 1 0 0 0 0 0 0 0 0 999999999 0\n");
    past_cache();
    double cpu, mem, io;
    ck_assert_int_eq(monitor_usage(&cpu, &mem, &io), NDF_OK);
    ck_assert_double_eq_tol(cpu, 0.5, 1e-12);
    ck_assert_double_eq_tol(mem, 0.75, 1e-12);
    ck_assert_double_eq(io, 1); /* busy beyond the interval: clamped; loop ignored */
    ck_assert_int_eq(monitor_available(0.6, 0.8), 1);
    ck_assert_int_eq(monitor_available(0.4, 0.8), 0);
    ck_assert_int_eq(monitor_available(0.6, 0.7), 0);
    ck_assert_int_eq(monitor_available(1, 1), 1);
    ck_assert_int_eq(monitor_usage(NULL, NULL, NULL), NDF_OK);
}
END_TEST

/* A /proc/PID/stat line: ppid, utime, stime, cutime, cstime, rss pages. */
static void put_pid(int pid, int ppid, int ut, int st, int cut, int cst, long rss)
{
    char *d = xasprintf("%s/%d", dir, pid);
    mkdir(d, 0700);
    char *name = xasprintf("%d/stat", pid);
    char *text = xasprintf("%d (a (b) c) S %d 1 1 0 -1 0 0 0 0 0 %d %d %d %d 20 0 1 0 1 1000 %ld "
                           "0 0\n",
                           pid, ppid, ut, st, cut, cst, rss);
    put(name, text);
    free(text);
    free(name);
    free(d);
}

/* resources.scope = "ndf": only this process and its descendants count;
 * "system": the machine.  The descriptions say what was compared. */
START_TEST(test_own_counting)
{
    int self = (int)getpid();
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    put("meminfo", "MemTotal: 100000 kB\nMemAvailable: 10000 kB\n");
    put("stat", "cpu  1000 0 0 1000 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\n");
    put_pid(self, 1, 10, 0, 0, 0, 1000 / page_kb);
    put_pid(900001, self, 0, 0, 0, 0, 0);   /* a step's process */
    put_pid(900002, 900001, 0, 0, 0, 0, 0); /* what it started */
    put_pid(900003, 1, 0, 0, 0, 0, 0);      /* someone else's */
    monitor_set_counting(MONITOR_COUNT_NDF);
    monitor_set_proc_dir(dir);
    monitor_sample s;
    ck_assert_int_eq(monitor_sample_get(&s), NDF_OK);

    /* 2000 ticks pass on the machine, all busy; ndf's tree used 100 of them
     * (its own 20, a reaped child 10, the step 30, what it started 40), the
     * stranger 1000 */
    put("stat", "cpu  3000 0 0 1000 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\n");
    put_pid(self, 1, 30, 0, 10, 0, 1000 / page_kb);
    put_pid(900001, self, 20, 10, 0, 0, 2000 / page_kb);
    put_pid(900002, 900001, 40, 0, 0, 0, 2000 / page_kb);
    put_pid(900003, 1, 1000, 0, 0, 0, 50000 / page_kb);
    past_cache();
    ck_assert_int_eq(monitor_sample_get(&s), NDF_OK);
    ck_assert_double_eq_tol(s.cpu, 1.0, 1e-12);
    ck_assert_double_eq_tol(s.own_cpu, 100.0 / 2000.0, 1e-12);
    ck_assert_double_eq_tol(s.own_mem, 5000.0 / 100000.0, 1e-12);
    ck_assert_int_eq(monitor_available(0.5, 0.5), 1); /* the machine is busy, ndf is not */
    ck_assert_int_eq(monitor_available(0.04, 0.5), 0);
    ck_assert_int_eq(monitor_available(0.5, 0.04), 0);
    char buf[256];
    int ok = -1;
    monitor_describe(buf, sizeof buf, 0.5, 0.5, &ok);
    ck_assert_int_eq(ok, 1);
    ck_assert_str_eq(buf, "ndf's cpu 5.0% of the machine (waits for <= 50%), memory 5.0% of "
                          "the machine (waits for <= 50%)");

    monitor_set_counting(MONITOR_COUNT_SYSTEM);
    ck_assert_str_eq(monitor_counting_name(monitor_get_counting()), "system");
    put("stat", "cpu  5000 0 0 1000 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\n");
    monitor_sample_get(&s); /* a new baseline after the switch */
    put("stat", "cpu  7000 0 0 1000 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\n");
    past_cache();
    ck_assert_int_eq(monitor_available(0.5, 1), 0);
    monitor_describe(buf, sizeof buf, 0.5, 1, &ok);
    ck_assert_int_eq(ok, 0);
    ck_assert_str_eq(buf, "cpu 100% (waits for <= 50%)");
}
END_TEST

START_TEST(test_missing_proc)
{
    char *nowhere = xasprintf("%s/none", dir);
    monitor_set_proc_dir(nowhere);
    double cpu = 9, mem = 9, io = 9;
    ck_assert_int_eq(monitor_usage(&cpu, &mem, &io), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "/none/stat"));
    ck_assert_double_eq(cpu, 0);
    ck_assert_double_eq(mem, 0);
    ck_assert_double_eq(io, 0);
    /* never blocks an executor on a machine without /proc */
    ck_assert_int_eq(monitor_available(0.1, 0.1), 1);
    free(nowhere);

    put("stat", "intr 1\n");
    put("meminfo", "MemTotal: 1000 kB\n");
    monitor_set_proc_dir(dir);
    ck_assert_int_eq(monitor_usage(&cpu, &mem, &io), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "no 'cpu' line"));
    put("stat", "cpu 1 1 1 1\n");
    put("meminfo", "Nothing: 1 kB\n");
    ck_assert_int_eq(monitor_usage(&cpu, &mem, &io), NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "no MemTotal"));
}
END_TEST

static void *sampler(void *arg)
{
    int *ok = arg;
    for (int i = 0; i < 20; i++) {
        double c, m, d;
        if (monitor_usage(&c, &m, &d) != NDF_OK || c < 0 || c > 1 || m < 0 || m > 1 || d < 0 ||
            d > 1)
            return NULL;
    }
    *ok = 1;
    return NULL;
}

START_TEST(test_real_proc_threads)
{
    struct stat st;
    if (stat("/proc/stat", &st) != 0)
        return; /* not Linux */
    pthread_t t[4];
    int ok[4] = {0};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, sampler, &ok[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert(ok[i]);
    }
}
END_TEST

static volatile double sink;

START_TEST(test_scope)
{
    monitor_scope sc;
    monitor_scope_init(&sc);
    struct rusage tok = monitor_scope_enter(&sc);
    double x = 0;
    for (long i = 0; i < 20000000; i++)
        x += (double)i * 1e-9;
    sink = x;
    monitor_scope_leave(&sc, &tok);

    struct rusage fake;
    memset(&fake, 0, sizeof fake);
    fake.ru_utime.tv_sec = 1;
    fake.ru_stime.tv_usec = 500000;
    fake.ru_maxrss = 99999999;
    monitor_scope_add_child(&sc, &fake);

    /* a real child, reaped with wait4 as the executor does */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        double y = 0;
        for (long i = 0; i < 30000000; i++)
            y += (double)i * 1e-9;
        sink = y;
        _exit(0);
    }
    int status;
    struct rusage ru;
    ck_assert_int_eq(wait4(pid, &status, 0, &ru), pid);
    monitor_scope_add_child(&sc, &ru);

    monitor_measure m;
    monitor_scope_finish(&sc, &m);
    ck_assert_uint_eq(m.nchildren, 2);
    ck_assert_double_gt(m.child_cpu_s, 1.5);
    ck_assert_double_gt(m.cpu_s, m.child_cpu_s); /* this thread's loop counts too */
    ck_assert_int_eq(m.peak_rss_kb, 99999999);
    ck_assert_double_ge(m.wall_s, 0);
    monitor_scope_destroy(&sc);

    /* without children: the process's own high-water mark */
    monitor_scope_init(&sc);
    monitor_scope_finish(&sc, &m);
    ck_assert_int_gt(m.peak_rss_kb, 0);
    ck_assert_double_eq(m.cpu_s, 0);
    monitor_scope_destroy(&sc);
}
END_TEST

static Suite *monitor_suite(void)
{
    Suite *s = suite_create("monitor");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fractions);
    tcase_add_test(tc, test_own_counting);
    tcase_add_test(tc, test_missing_proc);
    tcase_add_test(tc, test_real_proc_threads);
    tcase_add_test(tc, test_scope);
    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(monitor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
