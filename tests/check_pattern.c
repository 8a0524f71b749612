/* Check suite for host/pattern.c: building a pattern from its definition
 * (generic keys, type lookup, parameter validation, the type's create())
 * with the file:line of every error, reference counting, learning through
 * the pattern, and matching a context.  Loads the build tree's plugins from
 * NDF_PLUGIN_PATH. */
#include "build-config.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/context.h"
#include "plugin/loader.h"
#include "exec/services.h"
#include "model/pattern.h"
#include "base/util.h"

static loader *ld;
static char cache_dir[256];
static learning_params lp;

static void setup(void)
{
    learning_params_default(&lp);
    const char *base = getenv("top_builddir");
    snprintf(cache_dir, sizeof cache_dir, "%s/check_pattern.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(cache_dir));
    loader_opts o = {.host = &host_services, .cache_dir = cache_dir, .allow_insecure = 0};
    ld = loader_new(&o);
    ck_assert_ptr_nonnull(ld);
    const char *dir = getenv("NDF_PLUGIN_PATH");
    char *dirs[] = {(char *)(dir ? dir : "plugins/.libs")};
    loader_scan(ld, dirs, 1);
}

static void teardown(void)
{
    loader_free(ld);
    /* The loader may leave its private copies for reuse: not ours to keep. */
    DIR *d = opendir(cache_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", cache_dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(cache_dir);
}

static const char *F;

static ndf_value *at(ndf_value *v, int line)
{
    value_set_pos(v, F, line);
    return v;
}

/* A valid sequential definition at p.conf lines 10..: */
static ndf_value *good_def(void)
{
    F = value_intern_file("p.conf");
    ndf_value *d = at(value_new_group(NULL), 10);
    value_append(d, at(value_new_string("name", "data_processing_pipeline"), 11));
    value_append(d, at(value_new_string("type", "sequential"), 12));
    value_append(d, at(value_new_string("description", "ETL"), 13));
    ndf_value *doms = at(value_new_list("domains"), 14);
    value_append(doms, at(value_new_string(NULL, "data_engineering"), 14));
    value_append(doms, at(value_new_string(NULL, "data_processing.*"), 14));
    value_append(d, doms);
    ndf_value *agents = at(value_new_list("agent_types"), 15);
    value_append(agents, at(value_new_string(NULL, "data_*"), 15));
    value_append(d, agents);
    ndf_value *attrs = at(value_new_group("attributes"), 16);
    value_append(attrs, at(value_new_string("data_size", "large"), 16));
    value_append(d, attrs);
    ndf_value *tags = at(value_new_list("tags"), 17);
    value_append(tags, at(value_new_string(NULL, "etl"), 17));
    value_append(d, tags);
    value_append(d, at(value_new_number("confidence_threshold", 0.6), 18));
    value_append(d, at(value_new_int("timeout", 300), 19));
    ndf_value *params = at(value_new_group("params"), 20);
    ndf_value *steps = at(value_new_list("steps"), 21);
    ndf_value *s = at(value_new_group(NULL), 22);
    value_append(s, at(value_new_string("name", "validate"), 22));
    value_append(s, at(value_new_string("step", "noop"), 22));
    value_append(steps, s);
    value_append(params, steps);
    value_append(d, params);
    return d;
}

/* good_def() with member `key` replaced by `v` (or removed when v is NULL). */
static ndf_value *def_with(const char *key, ndf_value *v)
{
    ndf_value *d = good_def();
    for (size_t i = 0; i < value_count(d); i++)
        if (strcmp(value_at(d, i)->name, key) == 0) {
            value_remove(d, i);
            break;
        }
    if (v) {
        free(v->name);
        v->name = xstrdup(key);
        value_append(d, v);
    }
    return d;
}

static void build_fails(ndf_value *def, int status, const char *msg)
{
    pattern *p = (pattern *)1;
    int rc = pattern_build(ld, def, &lp, &p);
    ck_assert_int_eq(rc, status);
    ck_assert_ptr_null(p);
    if (strcmp(err_msg(), msg) != 0)
        ck_abort_msg("message '%s', expected '%s'", err_msg(), msg);
}

START_TEST(test_build)
{
    pattern *p;
    int rc = pattern_build(ld, good_def(), &lp, &p);
    if (rc)
        ck_abort_msg("%s", err_msg());
    ck_assert_str_eq(p->name, "data_processing_pipeline");
    ck_assert_str_eq(p->type_name, "sequential");
    ck_assert_str_eq(p->description, "ETL");
    ck_assert_uint_eq(p->ndomains, 2);
    ck_assert_str_eq(p->domains[1], "data_processing.*");
    ck_assert_uint_eq(p->nagent_types, 1);
    ck_assert_uint_eq(p->ntags, 1);
    ck_assert_str_eq(value_string(value_get(p->attributes, "data_size")), "large");
    ck_assert_double_eq_tol(p->threshold, 0.6, 1e-12);
    ck_assert_double_eq_tol(p->timeout, 300, 1e-12);
    ck_assert_str_eq(p->file, "p.conf");
    ck_assert_int_eq(p->line, 10);
    ck_assert_ptr_nonnull(p->type);
    ck_assert_ptr_nonnull(p->instance);
    /* Defaults filled in by the schema. */
    ck_assert_int_eq(value_bool(value_get(p->params, "rollback_enabled")), 1);
    ck_assert_int_eq(p->refs, 1);
    ck_assert_ptr_eq(pattern_ref(p), p);
    ck_assert_int_eq(p->refs, 2);
    pattern_unref(p);
    pattern_unref(p);

    /* Only the required keys; params absent is an empty group (and then
     * the sequential schema wants its steps). */
    ndf_value *d = def_with("params", NULL);
    build_fails(d, NDF_ERR_VALIDATION,
                "p.conf:10: pattern 'data_processing_pipeline' (type sequential): missing "
                "required parameter 'steps'");
}
END_TEST

START_TEST(test_generic_errors)
{
    F = value_intern_file("p.conf");
    build_fails(def_with("name", NULL), NDF_ERR_VALIDATION, "p.conf:10: pattern has no 'name'");
    build_fails(def_with("name", at(value_new_int(NULL, 3), 30)), NDF_ERR_VALIDATION,
                "p.conf:30: pattern 'name' must be a string, not a integer");
    build_fails(def_with("name", at(value_new_string(NULL, ".x"), 30)), NDF_ERR_VALIDATION,
                "p.conf:30: invalid pattern name '.x' (use 1 to 128 of [A-Za-z0-9_.-], not "
                "starting with '.')");
    build_fails(def_with("name", at(value_new_string(NULL, "a b"), 30)), NDF_ERR_VALIDATION,
                "p.conf:30: invalid pattern name 'a b' (use 1 to 128 of [A-Za-z0-9_.-], not "
                "starting with '.')");
    build_fails(def_with("type", NULL), NDF_ERR_VALIDATION,
                "p.conf:10: pattern 'data_processing_pipeline' has no 'type'");
    build_fails(def_with("domains", at(value_new_string(NULL, "x"), 30)), NDF_ERR_VALIDATION,
                "p.conf:30: pattern 'data_processing_pipeline': 'domains' must be a list of "
                "strings, not a string");
    ndf_value *l = at(value_new_list(NULL), 31);
    value_append(l, at(value_new_string(NULL, "ok"), 31));
    value_append(l, at(value_new_int(NULL, 1), 32));
    build_fails(def_with("agent_types", l), NDF_ERR_VALIDATION,
                "p.conf:32: pattern 'data_processing_pipeline': 'agent_types' element 2 must be "
                "a non-empty string");
    build_fails(def_with("confidence_threshold", at(value_new_number(NULL, 1.5), 33)),
                NDF_ERR_VALIDATION,
                "p.conf:33: pattern 'data_processing_pipeline': 'confidence_threshold' must be a "
                "number from 0 to 1");
    build_fails(def_with("timeout", at(value_new_number(NULL, 0), 34)), NDF_ERR_VALIDATION,
                "p.conf:34: pattern 'data_processing_pipeline': 'timeout' must be a number of "
                "seconds above 0");
    ndf_value *g = at(value_new_group(NULL), 35);
    value_append(g, at(value_new_group("nested"), 36));
    build_fails(def_with("attributes", g), NDF_ERR_VALIDATION,
                "p.conf:36: pattern 'data_processing_pipeline': attribute 'nested' must be a "
                "string, number, bool or list");
    build_fails(def_with("description", at(value_new_bool(NULL, 1), 37)), NDF_ERR_VALIDATION,
                "p.conf:37: pattern 'data_processing_pipeline': 'description' must be a "
                "string, not a bool");
    build_fails(at(value_new_list(NULL), 5), NDF_ERR_VALIDATION,
                "p.conf:5: a pattern definition must be a group");
}
END_TEST

START_TEST(test_type_errors)
{
    F = value_intern_file("p.conf");
    pattern *p = (pattern *)1;
    int rc = pattern_build(ld, def_with("type", at(value_new_string(NULL, "bogus"), 40)), &lp, &p);
    ck_assert_int_eq(rc, NDF_ERR_VALIDATION);
    ck_assert_ptr_null(p);
    const char *want = "p.conf:40: unknown pattern type 'bogus' (loaded types: ";
    ck_assert_msg(strncmp(err_msg(), want, strlen(want)) == 0, "%s", err_msg());
    /* Sorted; the build tree's example plugin may add its own. */
    const char *m = strstr(err_msg(), "meta, "), *q = strstr(err_msg(), "parallel, ");
    ck_assert_msg(m && q && m < q && strstr(q, "sequential"), "%s", err_msg());

    /* A parameter of the wrong type, from the type's schema. */
    ndf_value *params = at(value_new_group(NULL), 41);
    value_append(params, at(value_new_string("steps", "x"), 42));
    build_fails(def_with("params", params), NDF_ERR_VALIDATION,
                "p.conf:42: pattern 'data_processing_pipeline' (type sequential): 'steps' must "
                "be a list, not string");

    /* The type's create() refuses: a step type nobody provides. */
    params = at(value_new_group(NULL), 43);
    ndf_value *steps = at(value_new_list("steps"), 44);
    ndf_value *s = at(value_new_group(NULL), 45);
    value_append(s, at(value_new_string("name", "a"), 45));
    value_append(s, at(value_new_string("step", "warp_drive"), 45));
    value_append(steps, s);
    value_append(params, steps);
    rc = pattern_build(ld, def_with("params", params), &lp, &p);
    ck_assert_int_eq(rc, NDF_ERR_VALIDATION);
    ck_assert_msg(strstr(err_msg(), "p.conf:45") && strstr(err_msg(), "warp_drive"), "%s",
                  err_msg());

    /* No plugins at all. */
    rc = pattern_build(NULL, good_def(), &lp, &p);
    ck_assert_int_eq(rc, NDF_ERR_VALIDATION);
    ck_assert_str_eq(err_msg(), "p.conf:12: unknown pattern type 'sequential' (loaded types: "
                                "none: no plugins loaded)");
}
END_TEST

START_TEST(test_unknown_key_warns)
{
    pattern *p;
    ndf_value *d = good_def();
    value_append(d, at(value_new_string("colour", "red"), 50));
    log_set_level(0); /* the warning goes to stderr; the build succeeds */
    ck_assert_int_eq(pattern_build(ld, d, &lp, &p), NDF_OK);
    log_set_level(1);
    pattern_unref(p);
}
END_TEST

START_TEST(test_matches)
{
    pattern *p;
    ck_assert_int_eq(pattern_build(ld, good_def(), &lp, &p), NDF_OK);
    ndf_context *c = context_new("data_processing.stream", "data_analyst", 1);
    ck_assert(pattern_matches(p, c));
    context_set_attr(c, "data_size", value_new_string(NULL, "large"));
    ck_assert(pattern_matches(p, c));
    context_set_attr(c, "data_size", value_new_string(NULL, "small"));
    ck_assert(!pattern_matches(p, c)); /* conflicting attribute */
    context_free(c);
    c = context_new("data_processing", "data_analyst", 1); /* bare parent */
    ck_assert(pattern_matches(p, c));
    context_free(c);
    c = context_new("devops", "data_analyst", 1);
    ck_assert(!pattern_matches(p, c));
    context_free(c);
    c = context_new("data_engineering", "architect", 1);
    ck_assert(!pattern_matches(p, c));
    context_free(c);
    pattern_unref(p);

    /* A bare pattern serves every context. */
    p = pattern_new("any", &lp);
    c = context_new("x", "y", 5);
    ck_assert(pattern_matches(p, c));
    pattern_add_agent_type(p, "y*");
    ck_assert(pattern_matches(p, c));
    pattern_add_domain(p, "z");
    ck_assert(!pattern_matches(p, c));
    context_free(c);
    pattern_unref(p);
}
END_TEST

START_TEST(test_learning)
{
    pattern *p = pattern_new("p", &lp);
    lp.algorithm = ALGO_SIMPLE_AVERAGE;
    pattern_record(p, &lp, 1, "web_development");
    pattern_record(p, &lp, 0, "web_development");
    pattern_record(p, &lp, 1, NULL);
    pattern_record_duration(p, 2.0);
    learning_state st;
    pattern_stats(p, &st);
    ck_assert_uint_eq(st.executions, 3);
    ck_assert_double_eq_tol(st.score, 2.0 / 3.0, 1e-12);
    ck_assert_uint_eq(st.ndomains, 1);
    ck_assert_uint_eq(st.domains[0].executions, 2);
    ck_assert_double_eq_tol(st.duration_total, 2.0, 1e-12);
    ck_assert(st.last_used > 0);
    learning_free(&st);
    ck_assert_double_eq_tol(pattern_threshold(p, 0.75), 0.75, 1e-12);
    pattern_set_threshold(p, 0.4);
    ck_assert_double_eq_tol(pattern_threshold(p, 0.75), 0.4, 1e-12);
    pattern_set_threshold(p, 7);
    ck_assert_double_eq_tol(pattern_threshold(p, 0.75), 1.0, 1e-12);
    pattern_reset_stats(p, &lp);
    ck_assert_double_eq_tol(pattern_score(p), 0.5, 1e-12);
    /* Without a store there is nothing to page out to. */
    ck_assert_int_eq(pattern_page_out(p), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "pattern 'p': no store to page out to");
    pattern_unref(p);
}
END_TEST

static Suite *pattern_suite(void)
{
    Suite *s = suite_create("pattern");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_build);
    tcase_add_test(tc, test_generic_errors);
    tcase_add_test(tc, test_type_errors);
    tcase_add_test(tc, test_unknown_key_warns);
    tcase_add_test(tc, test_matches);
    tcase_add_test(tc, test_learning);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pattern_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
