/* Check suite for host/process.c (ndf_host.spawn) and the templating of
 * ndf_host.expand: environment, cwd, stdin, captured and bounded output,
 * exit status and signals, and deadlines that kill whole process trees. */
#include "build-config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/context.h"
#include "exec/cgroup.h"
#include "exec/process.h"
#include "exec/record.h"
#include "exec/services.h"
#include "base/util.h"

static record *rec;

static void setup(void)
{
    ndf_context *c = context_new("web.prod", "dev", 2);
    context_set_attr(c, "max-size", value_new_int(NULL, 3));
    context_set_attr(c, "region", value_new_string(NULL, "eu"));
    ndf_value *l = value_new_list(NULL);
    value_append(l, value_new_string(NULL, "a"));
    value_append(l, value_new_string(NULL, "b"));
    context_set_attr(c, "tags", l);
    rec = record_new("p", c, INFINITY);
    rec->kill_grace = 0.3;
    context_free(c);
}

static void teardown(void)
{
    record_unref(rec);
}

static int run(ndf_exec *n, const char *const *argv, const char *input, ndf_spawn_result *res)
{
    ndf_spawn o = {
        .size = sizeof o, .argv = argv, .input = input, .input_len = input ? strlen(input) : 0};
    return process_run(n, &o, res);
}

static const char *out(ndf_exec *n)
{
    return n->out[REC_STDOUT].buf ? n->out[REC_STDOUT].buf : "";
}

/* 1 when the process is gone (or a zombie its parent has not reaped). */
static int dead(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return kill(pid, 0) < 0 && errno == ESRCH;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && (p[2] == 'Z' || p[2] == 'X');
}

START_TEST(env_exported)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    const char *argv[] = {"sh", "-c",
                          "echo $NDF_DOMAIN $NDF_AGENT_TYPE $NDF_PRIORITY $NDF_ATTR_MAX_SIZE "
                          "$NDF_ATTR_REGION $NDF_ATTR_TAGS $EXTRA $NDF_EXECUTION_ID",
                          NULL};
    const char *env[] = {"EXTRA=x y", "NDF_ATTR_REGION=override", NULL};
    ndf_spawn o = {.size = sizeof o, .argv = argv, .env = env};
    ck_assert_int_eq(process_run(n, &o, NULL), NDF_OK);
    char want[256];
    snprintf(want, sizeof want, "web.prod dev 2 3 override a,b x y %s\n", rec->id);
    ck_assert_str_eq(out(n), want);
    char *name = process_attr_env_name("max-size.v2");
    ck_assert_str_eq(name, "NDF_ATTR_MAX_SIZE_V2");
    free(name);
}
END_TEST

START_TEST(cwd_stdin_stderr)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    const char *pwd[] = {"pwd", NULL};
    ndf_spawn o = {.size = sizeof o, .argv = pwd, .cwd = "/"};
    ck_assert_int_eq(process_run(n, &o, NULL), NDF_OK);
    ck_assert_str_eq(out(n), "/\n");

    n = node_new(rec->root, NDF_NODE_STEP, "s2");
    const char *cat[] = {"cat", NULL};
    ck_assert_int_eq(run(n, cat, "hello\n", NULL), NDF_OK);
    ck_assert_str_eq(out(n), "hello\n");

    n = node_new(rec->root, NDF_NODE_STEP, "s3"); /* no input: /dev/null */
    ck_assert_int_eq(run(n, cat, NULL, NULL), NDF_OK);
    ck_assert_str_eq(out(n), "");

    n = node_new(rec->root, NDF_NODE_STEP, "s4"); /* more than a pipe holds */
    size_t len = 300000;
    char *big = xmalloc(len + 1);
    memset(big, 'z', len);
    big[len] = '\0';
    const char *wc[] = {"wc", "-c", NULL};
    ck_assert_int_eq(run(n, wc, big, NULL), NDF_OK);
    ck_assert_int_eq(atoi(out(n)), (int)len);
    free(big);

    n = node_new(rec->root, NDF_NODE_STEP, "s5"); /* input the child never reads */
    const char *tru[] = {"true", NULL};
    char *big2 = xmalloc(1 << 20);
    memset(big2, 'q', (1 << 20) - 1);
    big2[(1 << 20) - 1] = '\0';
    ck_assert_int_eq(run(n, tru, big2, NULL), NDF_OK);
    free(big2);

    n = node_new(rec->root, NDF_NODE_STEP, "s6");
    const char *err[] = {"sh", "-c", "echo oops >&2", NULL};
    ck_assert_int_eq(run(n, err, NULL, NULL), NDF_OK);
    ck_assert_str_eq(n->out[REC_STDERR].buf, "oops\n");

    n = node_new(rec->root, NDF_NODE_STEP, "s7");
    o.argv = pwd;
    o.cwd = "/nonexistent-dir";
    ck_assert_int_eq(process_run(n, &o, NULL), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(err_msg(), "cannot run 'pwd'"), "%s", err_msg());
}
END_TEST

START_TEST(output_truncated)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    const char *argv[] = {"seq", "1", "100000", NULL};
    ndf_spawn o = {.size = sizeof o, .argv = argv, .output_limit = 100};
    ck_assert_int_eq(process_run(n, &o, NULL), NDF_OK);
    ck_assert_uint_eq(n->out[REC_STDOUT].len, 100);
    ck_assert(n->out[REC_STDOUT].dropped > 0);
    const char *s = out(n);
    ck_assert_str_eq(s + strlen(s) - 7, "100000\n");
}
END_TEST

START_TEST(exit_status_and_signal)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    ndf_spawn_result res = {.size = sizeof res};
    const char *e3[] = {"sh", "-c", "exit 3", NULL};
    ck_assert_int_eq(run(n, e3, NULL, &res), NDF_ERR_EXECUTION);
    ck_assert_str_eq(err_msg(), "exited with status 3");
    ck_assert_int_eq(res.exit_status, 3);
    ck_assert_int_eq(res.term_signal, 0);
    const char *k9[] = {"sh", "-c", "kill -9 $$", NULL};
    ck_assert_int_eq(run(n, k9, NULL, &res), NDF_ERR_EXECUTION);
    ck_assert_str_eq(err_msg(), "killed by signal 9");
    ck_assert_int_eq(res.exit_status, -1);
    ck_assert_int_eq(res.term_signal, 9);
    const char *none[] = {"/nonexistent/ndf-no-such-program", NULL};
    ck_assert_int_eq(run(n, none, NULL, &res), NDF_ERR_EXECUTION);
    ck_assert_str_eq(err_msg(),
                     "cannot run '/nonexistent/ndf-no-such-program': No such file or directory");
    const char *empty[] = {NULL};
    ck_assert_int_eq(run(n, empty, NULL, NULL), NDF_ERR_INVALID);
    ck_assert_int_eq(process_run(n, NULL, NULL), NDF_ERR_INVALID);
}
END_TEST

START_TEST(timeout_kills_tree)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    node_limit_deadline(n, now_mono() + 0.3);
    const char *argv[] = {"sh", "-c", "sleep 1000 & echo $!; wait", NULL};
    ndf_spawn_result res = {.size = sizeof res};
    double t0 = now_mono();
    ck_assert_int_eq(run(n, argv, NULL, &res), NDF_ERR_TIMEOUT);
    ck_assert(now_mono() - t0 < 3);
    ck_assert_str_eq(err_msg(), "killed by signal 15 (timeout)");
    pid_t child = (pid_t)atoi(out(n));
    ck_assert_int_gt(child, 1);
    ck_assert_msg(dead(child), "background child %d survived", (int)child);

    /* a tree that ignores SIGTERM gets SIGKILL after the grace period */
    n = node_new(rec->root, NDF_NODE_STEP, "s2");
    node_limit_deadline(n, now_mono() + 0.3);
    const char *stubborn[] = {
        "sh", "-c", "trap '' TERM; sleep 1000 & echo $!; while :; do sleep 0.05; done", NULL};
    ck_assert_int_eq(run(n, stubborn, NULL, &res), NDF_ERR_TIMEOUT);
    ck_assert_str_eq(err_msg(), "killed by signal 9 (timeout)");
    ck_assert_int_eq(res.term_signal, 9);
    child = (pid_t)atoi(out(n));
    ck_assert_int_gt(child, 1);
    ck_assert_msg(dead(child), "background child %d survived", (int)child);
}
END_TEST

START_TEST(leftovers_stopped)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    const char *argv[] = {"sh", "-c", "sleep 1000 & echo $!", NULL};
    double t0 = now_mono();
    ck_assert_int_eq(run(n, argv, NULL, NULL), NDF_OK);
    ck_assert(now_mono() - t0 < 3);
    pid_t child = (pid_t)atoi(out(n));
    ck_assert_int_gt(child, 1);
    ck_assert_msg(dead(child), "background child %d survived", (int)child);
}
END_TEST

/* The CPU seconds of the step's processes on `n`. */
static double child_cpu(const ndf_exec *n)
{
    return n->usage.child_user_s + n->usage.child_sys_s;
}

/* A daemon that left the step's group burns ~0.15 s of CPU (100,000 rounds
 * of shell arithmetic), says so, and lingers; the step waits for the word
 * and ends.  `linger` 0: the daemon ends by itself before the step. */
static double escapee_cpu(int linger)
{
    char dir[] = "/tmp/ndf-check-spawn.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *script = xasprintf("setsid sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i + 1)); done; "
                             "echo x > %s/burnt; %s' & while [ ! -s %s/burnt ]; do sleep 0.05; "
                             "done; sleep %s",
                             dir, linger ? "exec sleep 100" : "exit 0", dir, linger ? "0" : "0.3");
    const char *argv[] = {"sh", "-c", script, NULL};
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    ck_assert_int_eq(run(n, argv, NULL, NULL), NDF_OK);
    ck_assert_uint_eq(n->usage.sources & USAGE_CHILD, USAGE_CHILD);
    double cpu = child_cpu(n);
    char *f = xasprintf("%s/burnt", dir);
    unlink(f);
    free(f);
    rmdir(dir);
    free(script);
    return cpu;
}

START_TEST(escaped_daemon_cpu_counted)
{
    /* Stopped and reaped by the step's end: its wait4 figures are added
     * (the step's own shell only sleeps). */
    double cpu = escapee_cpu(1);
    ck_assert_msg(cpu >= 0.08, "the escaped daemon's CPU is not the step's: %.3f s", cpu);
}
END_TEST

START_TEST(escaped_daemon_ended_cpu_in_cgroup)
{
    /* Ended by itself before the step: reaped as an anonymous orphan, so
     * only a step cgroup sees what it used. */
    if (!cgroup_base()) {
        fprintf(stderr, "# SKIP no delegated cgroup2 tree: the cgroup CPU figure is not tested\n");
        return;
    }
    double cpu = escapee_cpu(0);
    ck_assert_msg(cpu >= 0.08, "the cgroup's CPU figure misses the daemon: %.3f s", cpu);
}
END_TEST

static void *cancel_later(void *arg)
{
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&((record *)arg)->cancel, NDF_ERR_CANCELLED);
    return NULL;
}

START_TEST(cancelled)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, rec);
    const char *argv[] = {"sleep", "1000", NULL};
    ck_assert_int_eq(run(n, argv, NULL, NULL), NDF_ERR_CANCELLED);
    ck_assert_str_eq(err_msg(), "killed by signal 15 (cancelled)");
    pthread_join(t, NULL);
}
END_TEST

typedef struct par {
    ndf_exec *node;
    int rc;
    char text[32];
} par;

static void *spawner(void *arg)
{
    par *p = arg;
    const char *cat[] = {"cat", NULL};
    for (int i = 0; i < 20 && !p->rc; i++)
        p->rc = run(p->node, cat, p->text, NULL);
    return NULL;
}

START_TEST(many_threads)
{
    par ps[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", i);
        ps[i].node = node_new(rec->root, NDF_NODE_STEP, name);
        ps[i].rc = 0;
        snprintf(ps[i].text, sizeof ps[i].text, "thread %d\n", i);
        pthread_create(&t[i], NULL, spawner, &ps[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(ps[i].rc, NDF_OK);
        /* 20 runs of its own text, nothing of the others' */
        const char *s = out(ps[i].node);
        ck_assert_uint_eq(strlen(s), 20 * strlen(ps[i].text));
        for (int k = 0; k < 20; k++)
            ck_assert(strncmp(s + k * strlen(ps[i].text), ps[i].text, strlen(ps[i].text)) == 0);
    }
}
END_TEST

START_TEST(expand_templates)
{
    ndf_exec *n = node_new(rec->root, NDF_NODE_STEP, "s");
    char *s;
    ck_assert_int_eq(host_services.expand(n,
                                          "d=${domain} a=${agent_type} p=${priority} "
                                          "r=${attr.region} m=${attr.max-size} $$x $y",
                                          &s),
                     NDF_OK);
    ck_assert_str_eq(s, "d=web.prod a=dev p=2 r=eu m=3 $x $y");
    free(s);
    ck_assert_int_eq(host_services.expand(n, "${execution_id}", &s), NDF_OK);
    ck_assert_str_eq(s, rec->id);
    free(s);
    ck_assert_int_eq(host_services.expand(n, "", &s), NDF_OK);
    ck_assert_str_eq(s, "");
    free(s);
    ck_assert_int_eq(host_services.expand(n, "a ${nope} b", &s), NDF_ERR_VALIDATION);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(err_msg(), "unknown variable ${nope} in 'a ${nope} b'");
    ck_assert_int_eq(host_services.expand(n, "${attr.missing}", &s), NDF_ERR_VALIDATION);
    ck_assert_str_eq(err_msg(), "unknown variable ${attr.missing} in '${attr.missing}'");
    ck_assert_int_eq(host_services.expand(n, "x ${domain", &s), NDF_ERR_VALIDATION);
    ck_assert_str_eq(err_msg(), "unterminated ${ in 'x ${domain'");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spawn");
    TCase *tc = tcase_create("spawn");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, env_exported);
    tcase_add_test(tc, cwd_stdin_stderr);
    tcase_add_test(tc, output_truncated);
    tcase_add_test(tc, exit_status_and_signal);
    tcase_add_test(tc, timeout_kills_tree);
    tcase_add_test(tc, leftovers_stopped);
    tcase_add_test(tc, cancelled);
    tcase_add_test(tc, many_threads);
    tcase_add_test(tc, expand_templates);
    tcase_add_test(tc, escaped_daemon_cpu_counted);
    tcase_add_test(tc, escaped_daemon_ended_cpu_in_cgroup);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
