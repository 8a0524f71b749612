/* Check suite for host/store/history.c: execution records become store
 * rows (paths, outputs, sub-pattern executions counted, refused ones not),
 * the committed learning state flows back into the patterns, a RUNNING row
 * is replaced by the final one, and a failed commit becomes the record's
 * storage error. */
#include "build-config.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ndf/sdk.h>

#include "base/util.h"
#include "exec/record.h"
#include "model/context.h"
#include "model/pattern.h"
#include "store/history.h"

static char dir[512];
static learning_params lp;

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
    snprintf(dir, sizeof dir, "%s/check_history.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    learning_params_default(&lp);
    log_set_level(-1);
}

static void teardown(void)
{
    rm_rf(dir);
}

static store *open_store(void)
{
    store_opts o;
    store_opts_default(&o);
    o.learning = lp;
    store *s;
    ck_assert_msg(store_open(dir, &o, &s) == NDF_OK, "%s", err_msg());
    return s;
}

static void run_node(ndf_exec *n, ndf_state final)
{
    node_set_state(n, NDF_STATE_RUNNING, NULL);
    node_set_state(n, final, final == NDF_STATE_COMPLETED ? NULL : "it went wrong");
}

/* A finished execution of `top`: steps "a", "a" (a repeated name), a
 * sub-pattern `sub` that ran step "x", and sub-pattern `gated` that the
 * confidence gate refused. */
static record *make_record(pattern *top, pattern *sub, pattern *gated, int status)
{
    ndf_context *ctx = context_new("web", NULL, NDF_PRIORITY_HIGHEST);
    record *r = record_new(top->name, ctx, INFINITY);
    context_free(ctx);
    r->root->pat = pattern_ref(top);
    node_set_state(r->root, NDF_STATE_RUNNING, NULL);
    ndf_exec *a = node_new(r->root, NDF_NODE_STEP, "a");
    run_node(a, NDF_STATE_COMPLETED);
    node_append(a, REC_STDOUT, "out of a\n", 9, 0);
    ndf_exec *a2 = node_new(r->root, NDF_NODE_STEP, "a");
    run_node(a2, NDF_STATE_COMPLETED);
    ndf_exec *sp = node_new(r->root, NDF_NODE_PATTERN, sub->name);
    sp->pat = pattern_ref(sub);
    node_set_state(sp, NDF_STATE_RUNNING, NULL);
    ndf_exec *x = node_new(sp, NDF_NODE_STEP, "x");
    run_node(x, status ? NDF_STATE_FAILED : NDF_STATE_COMPLETED);
    node_append(x, REC_STDERR, "x says\n", 7, 0);
    node_set_state(sp, status ? NDF_STATE_FAILED : NDF_STATE_COMPLETED, NULL);
    ndf_exec *g = node_new(r->root, NDF_NODE_PATTERN, gated->name);
    g->pat = pattern_ref(gated);
    node_set_state(g, NDF_STATE_SKIPPED, "confidence below the threshold");
    node_set_state(r->root, status ? NDF_STATE_FAILED : NDF_STATE_COMPLETED, NULL);
    r->status = status;
    r->error = status ? xstrdup("step 'x' failed") : NULL;
    r->end = now_mono();
    atomic_store(&r->claimed, 1);
    return r;
}

START_TEST(test_rows_from_record)
{
    pattern *top = pattern_new("top", &lp), *sub = pattern_new("sub", &lp),
            *gated = pattern_new("gated", &lp);
    record *r = make_record(top, sub, gated, NDF_OK);
    store_exec *v;
    size_t n;
    pattern **pats;
    history_from_record(r, STORE_ORIGIN_BATCH, &v, &n, &pats);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[0].id, r->id);
    ck_assert_str_eq(v[0].pattern, "top");
    ck_assert_int_eq(v[0].status, STORE_SUCCEEDED);
    ck_assert_int_eq(v[0].origin, STORE_ORIGIN_BATCH);
    ck_assert_str_eq(v[0].domain, "web");
    ck_assert_ptr_nonnull(strstr(v[0].context, "\"domain\":\"web\""));
    ck_assert(pats[0] == top);
    /* root, a, a#2, sub, sub/x, gated */
    ck_assert_uint_eq(v[0].nnodes, 6);
    ck_assert_str_eq(v[0].nodes[0].path, "");
    ck_assert_str_eq(v[0].nodes[1].path, "a");
    ck_assert_uint_eq(v[0].nodes[1].outlen[STORE_STDOUT], 9);
    ck_assert(memcmp(v[0].nodes[1].out[STORE_STDOUT], "out of a\n", 9) == 0);
    ck_assert_str_eq(v[0].nodes[2].path, "a#2");
    ck_assert_str_eq(v[0].nodes[3].path, "sub");
    ck_assert_str_eq(v[0].nodes[4].path, "sub/x");
    ck_assert_str_eq(v[0].nodes[5].path, "gated");
    /* the sub-pattern's own execution, re-rooted */
    ck_assert_str_eq(v[1].pattern, "sub");
    ck_assert_str_eq(v[1].parent_id, r->id);
    ck_assert_int_eq(v[1].learn, 1);
    ck_assert_int_eq(v[1].status, STORE_SUCCEEDED);
    ck_assert_uint_eq(v[1].nnodes, 2);
    ck_assert_str_eq(v[1].nodes[1].path, "x");
    ck_assert(pats[1] == sub);
    /* refused by the gate: a row, not counted */
    ck_assert_str_eq(v[2].pattern, "gated");
    ck_assert_int_eq(v[2].status, STORE_REFUSED);
    ck_assert_int_eq(v[2].learn, 0);
    store_exec_array_free(v, n);
    free(pats);
    record_unref(r);
    pattern_unref(top);
    pattern_unref(sub);
    pattern_unref(gated);
}
END_TEST

START_TEST(test_record_commits_and_learns)
{
    store *s = open_store();
    pattern *top = pattern_new("top", &lp), *sub = pattern_new("sub", &lp),
            *gated = pattern_new("gated", &lp);
    record *r = make_record(top, sub, gated, NDF_OK);
    ck_assert_int_eq(history_begin(s, r, STORE_ORIGIN_RUN), NDF_OK);
    store_exec got;
    ck_assert_int_eq(store_get(s, r->id, &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_RUNNING);
    store_exec_free(&got);
    ck_assert_int_eq(history_record(s, r, STORE_ORIGIN_RUN, NULL), NDF_OK);
    ck_assert_int_eq(r->status, NDF_OK);
    /* the committed state is the patterns' state now */
    learning_state l;
    pattern_stats(top, &l);
    ck_assert_uint_eq(l.executions, 1);
    ck_assert_uint_eq(l.ndomains, 1);
    learning_free(&l);
    pattern_stats(sub, &l);
    ck_assert_uint_eq(l.executions, 1);
    learning_free(&l);
    pattern_stats(gated, &l);
    ck_assert_uint_eq(l.executions, 0);
    learning_free(&l);
    ck_assert_int_eq(store_learning(s, "gated", &l), NDF_ERR_NOT_FOUND);
    ck_assert_int_eq(store_get(s, r->id, &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_SUCCEEDED);
    ck_assert_uint_eq(got.nnodes, 6);
    store_exec_free(&got);
    store_exec *kids;
    size_t nk;
    ck_assert_int_eq(store_children(s, r->id, &kids, &nk), NDF_OK);
    ck_assert_uint_eq(nk, 2);
    store_exec_array_free(kids, nk);
    char *buf;
    size_t len;
    char *sub_id = xasprintf("%s/sub", r->id);
    ck_assert_int_eq(store_output(s, sub_id, "x", STORE_STDERR, &buf, &len, NULL), NDF_OK);
    ck_assert_str_eq(buf, "x says\n");
    free(buf);
    free(sub_id);
    ck_assert_int_eq(store_check(s), NDF_OK);

    /* history_load gives analytics the root's children as steps */
    stored_pattern sp;
    ck_assert_int_eq(history_load(s, "top", 0, &sp), NDF_OK);
    ck_assert_uint_eq(sp.nhistory, 1);
    ck_assert_uint_eq(sp.history[0].nsteps, 4);
    ck_assert_str_eq(sp.history[0].steps[1].name, "a#2");
    ck_assert(sp.history[0].confidence > 0.5);
    stored_pattern_free(&sp);
    record_unref(r);

    /* a second, failed execution: counts go on */
    r = make_record(top, sub, gated, NDF_ERR_EXECUTION);
    ck_assert_int_eq(history_record(s, r, STORE_ORIGIN_RUN, NULL), NDF_OK);
    pattern_stats(sub, &l);
    ck_assert_uint_eq(l.executions, 2);
    ck_assert_uint_eq(l.successes, 1);
    learning_free(&l);
    ck_assert_int_eq(store_get(s, r->id, &got), NDF_OK);
    ck_assert_int_eq(got.status, STORE_FAILED);
    ck_assert_str_eq(got.message, "step 'x' failed");
    store_exec_free(&got);
    record_unref(r);
    store_close(s);
    pattern_unref(top);
    pattern_unref(sub);
    pattern_unref(gated);
}
END_TEST

START_TEST(test_failed_commit_is_the_records_error)
{
    store *s = open_store();
    pattern *top = pattern_new("top", &lp), *sub = pattern_new("sub", &lp),
            *gated = pattern_new("gated", &lp);
    record *r = make_record(top, sub, gated, NDF_OK);
    /* the database goes away under the open store, and a file takes the
     * directory's place (a removed one alone is recreated) */
    rm_rf(dir);
    FILE *f = fopen(dir, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(history_record(s, r, STORE_ORIGIN_RUN, NULL), NDF_ERR_IO);
    ck_assert_int_eq(r->status, NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(r->error, "not recorded"));
    ck_assert_ptr_nonnull(strstr(r->error, STORE_DB_NAME));
    learning_state l;
    pattern_stats(top, &l);
    ck_assert_uint_eq(l.executions, 0); /* nothing committed, nothing learned */
    learning_free(&l);
    record_unref(r);
    store_close(s);
    unlink(dir);
    pattern_unref(top);
    pattern_unref(sub);
    pattern_unref(gated);
}
END_TEST

static Suite *history_suite(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rows_from_record);
    tcase_add_test(tc, test_record_commits_and_learns);
    tcase_add_test(tc, test_failed_commit_is_the_records_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(history_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
