/* Check suite for host/app/runtime.c: loading in order, diagnostics
 * through the callback, the plugin directories in effect, ownership of a
 * view, and what runtime_free() frees. */
#include "build-config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/runtime.h"
#include "model/context.h"
#include "base/util.h"

static char scratch[64];

/* Collects the diagnostics: "E:", "W:" or "F:" and the message, a line
 * each. */
static void collect(void *opaque, runtime_diag sev, const char *msg)
{
    sb_printf(opaque, "%c:%s\n", "EWF"[sev], msg);
}

static void setup(void)
{
    strcpy(scratch, "/tmp/ndf-check-runtime.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes a configuration with storage in the scratch directory and the
 * given patterns; returns its path (caller frees). */
static char *write_conf(const char *patterns)
{
    char *path = xasprintf("%s/ndf.conf", scratch);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "storage: { path = \"%s/state\"; };\nplugins: { cache_dir = \"%s/cache\"; };\n%s",
            scratch, scratch, patterns);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

START_TEST(test_default_config)
{
    strbuf diags;
    sb_init(&diags);
    char *path = xasprintf("%s/absent.conf", scratch);
    runtime rt;
    runtime_init(&rt, path, 0, collect, &diags);
    ck_assert_int_eq(runtime_load(&rt, RT_CONFIG), NDF_OK);
    ck_assert_ptr_nonnull(rt.cfg);
    ck_assert(rt.owned & RT_OWN_CONFIG);
    ck_assert_ptr_null(rt.ld);
    ck_assert_uint_eq(diags.len, 0);
    runtime_free(&rt);
    /* named by the user, a missing file is an error that names it */
    runtime_init(&rt, path, 1, collect, &diags);
    ck_assert_int_ne(runtime_load(&rt, RT_PATTERNS), NDF_OK);
    ck_assert_ptr_nonnull(strstr(diags.buf, "absent.conf"));
    ck_assert_ptr_null(rt.ld);
    ck_assert_ptr_null(rt.reg);
    /* and stays one */
    ck_assert_int_ne(runtime_load(&rt, RT_CONFIG), NDF_OK);
    runtime_free(&rt);
    sb_free(&diags);
    free(path);
}
END_TEST

/* A definition the configuration reader leaves out (an invalid name, a
 * duplicate) does not keep the others from being built; an error outside
 * the definitions does. */
START_TEST(test_definition_errors)
{
    static const char ok[] = "  { name = \"ok\"; type = \"sequential\";\n"
                             "    params = { steps = ( { name = \"n\"; step = \"noop\"; } ); }; }";
    char *body = xasprintf("patterns = (\n%s,\n  { name = \"bad name\"; type = \"sequential\"; },\n"
                           "  { name = \"ok\"; type = \"sequential\"; }\n);\n",
                           ok);
    char *path = write_conf(body);
    strbuf diags;
    sb_init(&diags);
    runtime rt;
    runtime_init(&rt, path, 1, collect, &diags);
    ck_assert_int_eq(runtime_load(&rt, RT_PATTERNS), NDF_ERR_VALIDATION);
    ck_assert_ptr_nonnull(rt.reg);
    ck_assert_uint_eq(registry_count(rt.reg), 1);
    ck_assert_ptr_nonnull(strstr(diags.buf, "invalid name 'bad name'"));
    ck_assert_ptr_nonnull(strstr(diags.buf, "duplicate pattern 'ok'"));
    /* an executor is not started on a configuration with errors */
    ck_assert_int_eq(runtime_load(&rt, RT_EXECUTOR), NDF_ERR_VALIDATION);
    ck_assert_ptr_null(rt.ex);
    runtime_free(&rt);
    free(body);
    free(path);

    /* a bad setting: nothing is built */
    body = xasprintf("executor: { threads = \"x\"; };\npatterns = (\n%s\n);\n", ok);
    path = write_conf(body);
    sb_free(&diags);
    sb_init(&diags);
    runtime_init(&rt, path, 1, collect, &diags);
    ck_assert_int_eq(runtime_load(&rt, RT_PATTERNS), NDF_ERR_VALIDATION);
    ck_assert_ptr_null(rt.reg);
    ck_assert_ptr_null(rt.ld);
    runtime_free(&rt);
    sb_free(&diags);
    free(body);
    free(path);
}
END_TEST

START_TEST(test_patterns_and_executor)
{
    char *path = write_conf("patterns = (\n"
                            "  { name = \"ok\"; type = \"sequential\";\n"
                            "    params = { steps = ( { name = \"n\"; step = \"noop\"; } ); }; },\n"
                            "  { name = \"bad\"; type = \"no_such_type\"; }\n"
                            ");\n");
    strbuf diags;
    sb_init(&diags);
    runtime rt;
    runtime_init(&rt, path, 1, collect, &diags);
    /* the failed definition is reported and counted; the others are built */
    ck_assert_int_eq(runtime_load(&rt, RT_PATTERNS), NDF_ERR_VALIDATION);
    ck_assert_uint_eq(rt.pattern_errors, 1);
    ck_assert_ptr_nonnull(rt.reg);
    ck_assert_uint_eq(registry_count(rt.reg), 1);
    ck_assert_ptr_nonnull(strstr(diags.buf, "E:"));
    ck_assert_ptr_nonnull(strstr(diags.buf, "no_such_type"));
    ck_assert(rt.owned & RT_OWN_LOADER);
    ck_assert_int_eq(runtime_start_executor(&rt, NULL, NULL), NDF_OK);
    ck_assert_ptr_nonnull(rt.ex);
    ck_assert_ptr_nonnull(runtime_store(&rt));
    ck_assert(rt.owned & RT_OWN_STORAGE);
    ndf_context *ctx = context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
    ck_assert_int_eq(executor_execute(rt.ex, "ok", ctx, 0, EXEC_FORCE, NULL), NDF_OK);
    context_free(ctx);
    config *cfg = runtime_take_config(&rt);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_null(rt.cfg);
    runtime_free(&rt);
    config_free(cfg);
    sb_free(&diags);
    free(path);
}
END_TEST

/* A view borrows the base's loader and storage, builds its own registry
 * and executor, and frees only those. */
START_TEST(test_view)
{
    char *path =
        write_conf("patterns = ( { name = \"ok\"; type = \"sequential\";\n"
                   "  params = { steps = ( { name = \"n\"; step = \"noop\"; } ); }; } );\n");
    runtime base;
    runtime_init(&base, path, 1, NULL, NULL);
    ck_assert_int_eq(runtime_load(&base, RT_PATTERNS), NDF_OK);
    ck_assert_ptr_nonnull(runtime_store(&base));
    runtime v;
    runtime_view(&v, &base, base.cfg);
    ck_assert_ptr_eq(v.ld, base.ld);
    ck_assert_ptr_eq(v.st, base.st);
    ck_assert_uint_eq(v.owned, 0);
    ck_assert_int_eq(runtime_build_registry(&v, base.reg), NDF_OK);
    ck_assert_int_eq(runtime_start_executor(&v, NULL, NULL), NDF_OK);
    ck_assert_uint_eq(v.owned, RT_OWN_REGISTRY | RT_OWN_EXECUTOR);
    ck_assert_ptr_null(runtime_take_config(&v)); /* the base's, not the view's */
    ck_assert_ptr_eq(v.cfg, base.cfg);
    /* fully loaded: loading again changes nothing */
    registry *reg = v.reg;
    ck_assert_int_eq(runtime_load(&v, RT_EXECUTOR), NDF_OK);
    ck_assert_ptr_eq(v.reg, reg);
    runtime_free(&v);
    /* the base is intact */
    ck_assert_uint_eq(registry_count(base.reg), 1);
    ck_assert_uint_gt(loader_count(base.ld), 0);
    runtime_free(&base);
    free(path);
}
END_TEST

START_TEST(test_plugin_dirs)
{
    settings set;
    settings_default(&set);
    char *dirs[] = {(char *)"/conf/a", (char *)"/conf/b"};
    char **own = set.plugin_dirs; /* the default's, freed by settings_free() */
    size_t nown = set.nplugin_dirs;
    set.plugin_dirs = NULL;
    set.nplugin_dirs = 0;
    runtime rt;
    size_t n;

    unsetenv("NDF_PLUGIN_PATH");
    runtime_init(&rt, "/x", 0, NULL, NULL);
    char *const *d = runtime_plugin_dirs(&rt, &set, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(d[0], PLUGINDIR);
    set.plugin_dirs = dirs;
    set.nplugin_dirs = 2;
    d = runtime_plugin_dirs(&rt, &set, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(d[1], "/conf/b");
    runtime_free(&rt);

    /* the environment replaces the configuration; empty elements are skipped */
    setenv("NDF_PLUGIN_PATH", "/env/1::/env/2:", 1);
    runtime_init(&rt, "/x", 0, NULL, NULL);
    d = runtime_plugin_dirs(&rt, &set, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(d[0], "/env/1");
    ck_assert_str_eq(d[1], "/env/2");
    /* read once, at init */
    setenv("NDF_PLUGIN_PATH", "/later", 1);
    d = runtime_plugin_dirs(&rt, NULL, &n);
    ck_assert_str_eq(d[0], "/env/1");
    runtime_free(&rt);
    set.plugin_dirs = own;
    set.nplugin_dirs = nown;
    settings_free(&set);
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_default_config);
    tcase_add_test(tc, test_patterns_and_executor);
    tcase_add_test(tc, test_definition_errors);
    tcase_add_test(tc, test_view);
    tcase_add_test(tc, test_plugin_dirs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(runtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
