/* `ndf test-step`: a plugin author's unit-test harness.  Loads one plugin
 * file in a private loader (no configuration, no store, no other plugins),
 * binds one of its steps to parameters given as JSON, runs it in a scratch
 * execution with a context built from the usual options, prints the step's
 * record and exits with its outcome. */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "exec/pool.h"
#include "exec/record.h"
#include "exec/services.h"
#include "plugin/loader.h"
#include "base/util.h"
#include "base/value.h"

static const char teststep_usage[] =
    "Usage: ndf test-step PLUGIN.so STEP [--params JSON|FILE] [context options]\n"
    "                     [--timeout S] [--undo] [--json]\n"
    "\n"
    "Runs step STEP of the plugin file PLUGIN.so once, in a scratch execution,\n"
    "without any configuration, store or other plugin, and prints its record:\n"
    "state, message, duration, output, result and metrics.  Exits with the\n"
    "step's outcome: 0 completed (or rolled back with --undo), 1 failed,\n"
    "5 timed out, 10 cancelled; 2 for bad parameters or options, 3 for an\n"
    "unknown step, 7 when the file is not a loadable plugin.\n"
    "\n"
    "  --params JSON|FILE  the step's parameters: a JSON object, inline (it\n"
    "                      starts with '{') or in FILE; checked against the\n"
    "                      step's schema, defaults filled in.  Default: {}\n"
    "  --timeout S         the step's deadline in seconds (default: none); a\n"
    "                      step still running 1 s after its deadline plus the\n"
    "                      kill grace (it ignores cancellation) is given up\n"
    "                      on: exit 5\n"
    "  --undo              after a successful run, run the step's undo too\n"
    "  --json              print the execution's record as JSON\n"
    "\n" CTXOPT_HELP;

enum { OPT_PARAMS = 1, OPT_TIMEOUT, OPT_UNDO, OPT_JSON };

/* JSON to a parameter value: objects are groups, arrays lists, integral
 * numbers that fit int64 are ints.  `name` names the member (NULL for list
 * elements).  NULL with err_msg() set for null. */
static ndf_value *from_json(const cJSON *j, const char *name, const char *where)
{
    if (cJSON_IsString(j))
        return value_new_string(name, j->valuestring);
    if (cJSON_IsBool(j))
        return value_new_bool(name, cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9.007199254740992e15)
            return value_new_int(name, (int64_t)d);
        return value_new_number(name, d);
    }
    if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
        ndf_value *c = cJSON_IsArray(j) ? value_new_list(name) : value_new_group(name);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            ndf_value *x = from_json(e, cJSON_IsObject(j) ? e->string : NULL, where);
            if (!x) {
                value_free(c);
                return NULL;
            }
            value_append(c, x);
        }
        return c;
    }
    err_set(NDF_ERR_VALIDATION, "%s: '%s' is null; leave it out to get its default", where,
            name ? name : "a list element");
    return NULL;
}

/* The whole of file `path` (at most 16 MiB, no NUL), or NULL with err_msg()
 * set. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        err_set(NDF_ERR_VALIDATION, "--params %s: %s", path, strerror(errno));
        return NULL;
    }
    strbuf sb;
    sb_init(&sb);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && sb.len < (1u << 24))
        sb_add(&sb, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || sb.len >= (1u << 24) || (sb.len && memchr(sb.buf, '\0', sb.len))) {
        err_set(NDF_ERR_VALIDATION, "--params %s: %s", path,
                bad                    ? "read error"
                : sb.len >= (1u << 24) ? "larger than 16 MiB"
                                       : "holds a NUL byte");
        sb_free(&sb);
        return NULL;
    }
    return sb_steal(&sb);
}

/* The --params argument as a GROUP: inline JSON, or a file of it.  NULL
 * with err_msg() set. */
static ndf_value *read_params(const char *arg)
{
    char *text = NULL;
    const char *where = "--params";
    if (arg[strspn(arg, " \t\n")] == '{') {
        text = xstrdup(arg);
    } else {
        if (!(text = read_text(arg)))
            return NULL;
        where = arg;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, strlen(text) + 1, &end, 1);
    if (!root || !cJSON_IsObject(root)) {
        size_t off = root ? 0 : end && end >= text ? (size_t)(end - text) : 0;
        err_set(NDF_ERR_VALIDATION, "%s: %s (at byte %zu)", where,
                root ? "the parameters must be a JSON object" : "not valid JSON", off);
        cJSON_Delete(root);
        free(text);
        return NULL;
    }
    ndf_value *g = from_json(root, NULL, where);
    if (g)
        value_set_pos(g, value_intern_file(where), 0);
    cJSON_Delete(root);
    free(text);
    return g;
}

/* The watchdog of --timeout: a step runs in this process, so one that
 * never looks at host->cancelled() cannot be stopped.  Past its deadline
 * and the kill grace, the harness gives up on it and exits 5 rather than
 * hang the author's `make check`. */
typedef struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    double seconds; /* from the start to giving up */
    const char *step;
} watchdog;

static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double whole = floor(w->seconds);
    until.tv_sec += (time_t)whole;
    until.tv_nsec += (long)((w->seconds - whole) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (!w->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cond, &w->lock, &until);
    int done = w->done;
    pthread_mutex_unlock(&w->lock);
    if (!done) {
        char msg[256];
        int len = snprintf(msg, sizeof msg,
                           "ndf test-step: step '%s' has not returned %.3gs after it started, "
                           "past its --timeout and the kill grace: it does not check "
                           "host->cancelled(); giving up (exit 5)\n",
                           w->step, w->seconds);
        if (len > 0)
            (void)!write(2, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1);
        _exit(EXIT_TIMEOUT);
    }
    return NULL;
}

static int outcome_exit(ndf_state st)
{
    switch (st) {
    case NDF_STATE_COMPLETED:
    case NDF_STATE_ROLLED_BACK: return EXIT_OK;
    case NDF_STATE_TIMED_OUT: return EXIT_TIMEOUT;
    case NDF_STATE_CANCELLED: return EXIT_CANCELLED;
    default: return EXIT_FAILED;
    }
}

/* Prints the step node for people: state, duration, message, result,
 * metrics, then each output stream. */
static void print_step(FILE *out, ndf_exec *n, const char *plugin_name)
{
    double start, end;
    node_times(n, &start, &end);
    fprintf(out, "step %s (%s): %s in %.3fs\n", n->name, plugin_name,
            state_name(atomic_load(&n->state)), start > 0 && end > start ? end - start : 0.0);
    pthread_mutex_lock(&n->rec->lock);
    if (n->message && *n->message)
        fprintf(out, "message: %s\n", n->message);
    if (n->result)
        fprintf(out, "result: %s\n", n->result);
    for (size_t i = 0; i < n->nmetrics; i++)
        fprintf(out, "metric %s = %.17g\n", n->metrics[i].name, n->metrics[i].value);
    static const char *const names[] = {"stdout", "stderr", "log"};
    for (int s = 0; s < 3; s++) {
        const tailbuf *t = &n->out[s];
        if (!t->len)
            continue;
        fprintf(out, "--- %s%s ---\n", names[s], t->dropped ? " (truncated)" : "");
        fwrite(t->buf, 1, t->len, out);
        if (t->buf[t->len - 1] != '\n')
            fputc('\n', out);
    }
    pthread_mutex_unlock(&n->rec->lock);
}

typedef struct ts_args {
    const char *plugin, *step, *params;
    double timeout;
    int undo, json;
    ndf_context *ctx;
} ts_args;

static int parse(cmd_ctx *c, int argc, char **argv, ts_args *a)
{
    static const opt_spec specs[] = {{"params", 0, OPT_REQUIRED, OPT_PARAMS},
                                     {"timeout", 0, OPT_REQUIRED, OPT_TIMEOUT},
                                     {"undo", 0, OPT_NONE, OPT_UNDO},
                                     {"json", 0, OPT_NONE, OPT_JSON},
                                     {"help", 'h', OPT_NONE, 'h'},
                                     CTXOPT_OPTIONS,
                                     {0}};
    opt_parser p;
    opt_init(&p, argc, argv, specs, OPT_PERMUTE, c->err);
    ctxopt co;
    ctxopt_init(&co);
    int rc = -1, opt;
    while (rc < 0 && (opt = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, opt, p.arg, &rc))
            continue;
        switch (opt) {
        case 'h': rc = cmd_help(c); break;
        case OPT_PARAMS: a->params = p.arg; break;
        case OPT_TIMEOUT:
            if (cmd_parse_interval(c, "--timeout", p.arg, &a->timeout))
                rc = EXIT_USAGE;
            break;
        case OPT_UNDO: a->undo = 1; break;
        case OPT_JSON: a->json = 1; break;
        default: rc = cmd_bad_usage(c); break;
        }
    }
    if (rc < 0 && p.noperands != 2) {
        cmd_error(c, "expected PLUGIN.so and STEP (see 'ndf test-step --help')\n");
        rc = EXIT_USAGE;
    }
    if (rc < 0) {
        a->plugin = p.operands[0];
        a->step = p.operands[1];
        int crc = cmd_context_finish(c, &co, &a->ctx);
        if (crc)
            rc = crc;
    }
    ctxopt_free(&co);
    return rc;
}

static int cmd_test_step(cmd_ctx *c, int argc, char **argv)
{
    ts_args a = {0};
    int rc = parse(c, argc, argv, &a);
    if (rc >= 0) {
        context_free(a.ctx);
        return rc;
    }
    loader_opts lo = {.host = &host_services, .quiet = 1};
    loader *ld = loader_new(&lo);
    if (!ld) {
        cmd_error(c, "%s\n", err_msg());
        context_free(a.ctx);
        return EXIT_IO;
    }
    ndf_value *params = NULL;
    ndf_step *step = NULL;
    record *r = NULL;
    pool *pl = NULL;
    int status = loader_load(ld, a.plugin);
    if (status != NDF_OK) {
        plugin_info pi;
        loader_plugin(ld, 0, &pi);
        cmd_error(c, "%s\n", pi.reason ? pi.reason : err_msg());
        rc = status == NDF_ERR_NOT_FOUND ? EXIT_NOT_FOUND
             : status == NDF_ERR_IO      ? EXIT_IO
                                         : EXIT_PLUGIN;
        goto out;
    }
    if (!loader_find(ld, PROVIDED_STEP, a.step)) {
        plugin_info pi;
        loader_plugin(ld, 0, &pi);
        cmd_error(c, "plugin %s has no step named '%s' (steps:", pi.name, a.step);
        for (size_t i = 0; i < pi.nprovides; i++)
            if (pi.provides[i]->kind == PROVIDED_STEP)
                fprintf(c->err, " %s", pi.provides[i]->name);
        fprintf(c->err, ")\n");
        rc = EXIT_NOT_FOUND;
        goto out;
    }
    params = a.params ? read_params(a.params) : value_new_group(NULL);
    if (!params) {
        cmd_error(c, "%s\n", err_msg());
        rc = EXIT_USAGE;
        goto out;
    }
    /* step_new finds step types through the loader in scope, as a build
     * of the configuration does. */
    loader *prev = loader_scope_enter(ld);
    status = host_services.step_new(a.step, params, params, &step);
    loader_scope_leave(prev);
    if (status != NDF_OK) {
        cmd_error(c, "%s\n", err_msg());
        rc = exit_code_for(status) == EXIT_NOT_FOUND ? EXIT_NOT_FOUND : EXIT_USAGE;
        goto out;
    }

    /* The scratch execution: a record with a pool of one worker (groups
     * and spawn work; a waiting group runs its work itself) and no
     * executor, so a step that runs sub-patterns is told there is none. */
    pl = pool_new(1);
    if (!pl) {
        cmd_error(c, "%s\n", err_msg());
        rc = EXIT_IO;
        goto out;
    }
    r = record_new("test-step", a.ctx, INFINITY);
    r->pool = pl;
    r->kill_grace = 2.0;
    node_set_state(r->root, NDF_STATE_RUNNING, NULL);
    ndf_exec *n = node_new(r->root, NDF_NODE_STEP, a.step);
    watchdog wd = {.seconds = a.timeout + r->kill_grace + 1.0, .step = a.step};
    pthread_t wt;
    int watching = a.timeout > 0 && isfinite(a.timeout) && pthread_mutex_init(&wd.lock, NULL) == 0;
    if (watching && pthread_cond_init(&wd.cond, NULL) != 0) {
        pthread_mutex_destroy(&wd.lock);
        watching = 0;
    }
    if (watching && pthread_create(&wt, NULL, watchdog_main, &wd) != 0) {
        pthread_cond_destroy(&wd.cond);
        pthread_mutex_destroy(&wd.lock);
        watching = 0;
    }
    status = host_services.run_step(n, step, a.timeout);
    if (watching) {
        pthread_mutex_lock(&wd.lock);
        wd.done = 1;
        pthread_cond_signal(&wd.cond);
        pthread_mutex_unlock(&wd.lock);
        pthread_join(wt, NULL);
        pthread_cond_destroy(&wd.cond);
        pthread_mutex_destroy(&wd.lock);
    }
    if (status == NDF_OK && a.undo)
        status = host_services.undo_step(n, step);
    ndf_state st = (ndf_state)atomic_load(&n->state);
    node_set_state(r->root, st == NDF_STATE_ROLLED_BACK ? NDF_STATE_COMPLETED : st, NULL);
    r->status = status;
    if (status && !r->error)
        r->error = xstrdup(*err_msg() ? err_msg() : ndf_status_name(status));
    atomic_store(&r->done, 1);
    if (a.json) {
        strbuf sb;
        sb_init(&sb);
        record_to_json(r, &sb);
        fprintf(c->out, "%s\n", sb.buf);
        sb_free(&sb);
    } else {
        plugin_info pi;
        loader_plugin(ld, 0, &pi);
        print_step(c->out, n, pi.name);
    }
    rc = outcome_exit(st);
out:
    fflush(c->out);
    if (step)
        host_services.step_free(step);
    value_free(params);
    record_unref(r);
    if (pl)
        pool_free(pl, 5.0);
    loader_free(ld);
    context_free(a.ctx);
    return rc;
}

const cmd_entry cmd_test_step_entry = {
    .name = "test-step",
    .summary = "run one step of a plugin file alone (the author's test harness)",
    .usage = teststep_usage,
    .exec = cmd_test_step,
};
