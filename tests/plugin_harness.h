/* Shared set-up for the plugin suites (check_sequential, check_parallel,
 * check_meta, check_steps): a scratch directory, a configuration holding
 * the test's patterns, the build-tree plugins ($NDF_PLUGIN_PATH), a
 * registry and an executor, plus record and file helpers.  Header-only, so
 * each suite stays one file plus this. */
#ifndef NDF_TESTS_PLUGIN_HARNESS_H
#define NDF_TESTS_PLUGIN_HARNESS_H

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "model/context.h"
#include "exec/executor.h"
#include "plugin/loader.h"
#include "model/pattern.h"
#include "exec/record.h"
#include "model/build.h"
#include "model/registry.h"
#include "exec/services.h"
#include "base/util.h"
#include "base/value.h"

typedef struct harness {
    char dir[PATH_MAX];
    config *cfg;
    loader *ld;
    registry *reg;
    executor *ex;
    strbuf errors;  /* build errors, one per line */
    size_t nerrors;
} harness;

/* Replaces every "@DIR@" in `text` by the scratch directory. */
static char *h_subst(const harness *h, const char *text)
{
    strbuf sb;
    sb_init(&sb);
    const char *p = text, *q;
    while ((q = strstr(p, "@DIR@"))) {
        sb_add(&sb, p, (size_t)(q - p));
        sb_puts(&sb, h->dir);
        p = q + 5;
    }
    sb_puts(&sb, p);
    return sb_steal(&sb);
}

static void h_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* The file's contents ("" when missing); free() it. */
static char *h_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return xstrdup("");
    strbuf sb;
    sb_init(&sb);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_add(&sb, buf, n);
    fclose(f);
    return sb_steal(&sb);
}

/* A file in the scratch directory; free() the result. */
static char *h_path(const harness *h, const char *name)
{
    return xasprintf("%s/%s", h->dir, name);
}

static char *h_file(const harness *h, const char *name)
{
    char *p = h_path(h, name);
    char *s = h_slurp(p);
    free(p);
    return s;
}

static void h_report(void *opaque, const char *msg)
{
    harness *h = opaque;
    sb_printf(&h->errors, "%s\n", msg);
}

/* Loads `patterns` (the inside of `patterns = ( ... );`, with @DIR@
 * substituted) on an executor of `threads` workers.  Definitions that do not
 * build are counted in h->nerrors with their messages in h->errors, as are
 * sub-patterns required but not defined ("unknown pattern 'x'"). */
/* Configuration put before the patterns by the next h_open (with @DIR@
 * substituted), e.g. an agents section, ending with a newline; NULL for
 * none (the patterns' line numbers stay as they were). */
static const char *h_conf_extra;

static void h_open(harness *h, unsigned threads, const char *patterns)
{
    memset(h, 0, sizeof *h);
    sb_init(&h->errors);
    snprintf(h->dir, sizeof h->dir, "/tmp/ndf-check-plugins.XXXXXX");
    ck_assert_msg(mkdtemp(h->dir) != NULL, "mkdtemp");

    char *body = h_subst(h, patterns);
    char *extra = h_subst(h, h_conf_extra ? h_conf_extra : "");
    char *conf = xasprintf("plugins: { cache_dir = \"%s/cache\"; };\n"
                           "executor: { threads = %u; default_timeout = 30.0;\n"
                           "            pattern_timeout = 30.0; kill_grace = 0.5; };\n"
                           "%s"
                           "patterns = (\n%s\n);\n",
                           h->dir, threads, extra, body);
    free(extra);
    char *path = h_path(h, "ndf.conf");
    h_write(path, conf);
    int rc = config_load(path, &h->cfg);
    for (size_t i = 0; rc && h->cfg && i < h->cfg->ndiags; i++)
        fprintf(stderr, "%s\n", h->cfg->diags[i].text);
    ck_assert_msg(rc == NDF_OK, "config_load: %s", err_msg());
    free(path);
    free(conf);
    free(body);

    const char *pp = getenv("NDF_PLUGIN_PATH");
    ck_assert_msg(pp && *pp, "NDF_PLUGIN_PATH is not set");
    loader_opts lo = {.host = &host_services, .cache_dir = h->cfg->set.cache_dir, .allow_insecure = 0};
    h->ld = loader_new(&lo);
    ck_assert_msg(h->ld != NULL, "loader_new: %s", err_msg());
    char *dir = xstrdup(pp);
    char *colon = strchr(dir, ':');
    if (colon)
        *colon = 0;
    char *dirs[] = {dir};
    ck_assert_msg(loader_scan(h->ld, dirs, 1) >= 4, "plugins in %s did not load", dir);
    free(dir);

    /* The same path from configuration to registry as the program's. */
    settings set = h->cfg->set;
    set.cache_size = 0;
    set.learning_enabled = 1;
    build_opts bo = {.ld = h->ld, .set = &set, .report = h_report, .opaque = h};
    h->reg = build_registry(&bo, h->cfg->patterns, h->cfg->npatterns, &h->nerrors);

    executor_opts eo = {
        .threads = threads,
        .default_timeout = 30,
        .pattern_timeout = 30,
        .kill_grace = 0.5,
        .confidence_threshold = 0,
        .reg = h->reg,
    };
    h->ex = executor_new(&eo);
    ck_assert_msg(h->ex != NULL, "executor_new: %s", err_msg());
}

/* Like h_open, asserting that every definition built. */
static void h_open_ok(harness *h, unsigned threads, const char *patterns)
{
    h_open(h, threads, patterns);
    ck_assert_msg(h->nerrors == 0, "build errors:\n%s", h->errors.buf ? h->errors.buf : "");
}

static void h_close(harness *h)
{
    executor_free(h->ex);
    registry_free(h->reg);
    loader_free(h->ld);
    config_free(h->cfg);
    sb_free(&h->errors);
    char *cmd = xasprintf("rm -rf '%s'", h->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", h->dir);
    free(cmd);
}

/* The build errors so far ("" when none). */
static const char *h_errors(const harness *h)
{
    return h->errors.buf ? h->errors.buf : "";
}

/* Waits (at most 10 s) until only the caller and the executor's ring of
 * kept records hold `r`.  A blocking step runs on a detached thread that
 * drops its reference just after it reports back; were that the last one
 * after h_close() unloaded the plugins, freeing the record would call a
 * plugin's data_free in unmapped code. */
static void h_settle(record *r)
{
    if (!r)
        return;
    for (int i = 0; i < 10000 && atomic_load(&r->refs) > 2; i++)
        usleep(1000);
}

/* Runs pattern `name` (forced past the confidence gate) in `ctx` (NULL: an
 * empty context).  Returns the status; *rec gets the record (unref it) and
 * msg (may be NULL) a copy of the message (free it). */
static int h_run(harness *h, const char *name, const ndf_context *ctx, double timeout, record **rec,
                 char **msg)
{
    ndf_context *own = NULL;
    if (!ctx)
        ctx = own = context_new("test.domain", "tester", 3);
    int rc = executor_execute(h->ex, name, ctx, timeout, EXEC_FORCE, rec);
    if (msg)
        *msg = xstrdup(rc ? err_msg() : "");
    h_settle(*rec);
    context_free(own);
    return rc;
}

/* The first node named `name` below (or at) `n`, depth first; NULL when none.
 * A path "a/b" looks for b below a. */
static ndf_exec *h_find(ndf_exec *n, const char *path)
{
    const char *slash = strchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : strlen(path);
    if (strlen(n->name) == len && strncmp(n->name, path, len) == 0)
        return slash ? h_find(n, slash + 1) : n;
    for (size_t i = 0; i < n->nkids; i++) {
        ndf_exec *f = h_find(n->kids[i], path);
        if (f)
            return f;
    }
    return NULL;
}

/* The state of the node at `path` below the record's root. */
static ndf_state h_state(record *r, const char *path)
{
    ndf_exec *n = h_find(r->root, path);
    ck_assert_msg(n != NULL, "no node '%s' in the record", path);
    return (ndf_state)atomic_load(&n->state);
}

static const char *h_message(record *r, const char *path)
{
    ndf_exec *n = h_find(r->root, path);
    ck_assert_msg(n != NULL, "no node '%s' in the record", path);
    return n->message ? n->message : "";
}

#define ck_assert_state(rec, path, st)                                                      \
    ck_assert_msg(h_state((rec), (path)) == (st), "node '%s' is %s, expected %s (message: %s)", \
                  (path), state_name(h_state((rec), (path))), state_name(st),              \
                  h_message((rec), (path)))

#endif
