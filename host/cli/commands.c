/* The command table and what the handlers share: exit codes, help,
 * diagnostics, the PATTERN operand and the served-request rule. */
#include "build-config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "store/queue.h"
#include "store/store.h"
#include "base/util.h"

const cmd_entry *const cmd_table[] = {
    &cmd_plugins_entry,
    &cmd_inspect_entry,
    &cmd_test_step_entry,
    &cmd_new_plugin_entry,
    &cmd_check_config_entry,
    &cmd_config_entry,
    &cmd_list_entry,
    &cmd_show_entry,
    &cmd_similar_entry,
    &cmd_plan_entry,
    &cmd_graph_entry,
    &cmd_run_entry,
    &cmd_delegate_entry,
    &cmd_batch_entry,
    &cmd_redrive_entry,
    &cmd_rollback_entry,
    &cmd_record_entry,
    &cmd_wait_entry,
    &cmd_submit_entry,
    &cmd_workers_entry,
    &cmd_define_entry,
    &cmd_undefine_entry,
    &cmd_edit_entry,
    &cmd_setting_entry,
    &cmd_definitions_entry,
    &cmd_runs_entry,
    &cmd_status_entry,
    &cmd_logs_entry,
    &cmd_export_entry,
    &cmd_cleanup_entry,
    &cmd_reset_stats_entry,
    &cmd_backup_entry,
    &cmd_restore_entry,
    &cmd_analytics_entry,
    &cmd_monitor_entry,
    &cmd_metrics_entry,
    &cmd_serve_entry,
    &cmd_ctl_entry,
    NULL,
};

const cmd_entry *cmd_find(const char *name)
{
    for (size_t i = 0; cmd_table[i]; i++)
        if (strcmp(cmd_table[i]->name, name) == 0)
            return cmd_table[i];
    return NULL;
}

int exit_code_for(int status)
{
    switch (status) {
    case NDF_OK: return EXIT_OK;
    case NDF_ERR_NOT_FOUND: return EXIT_NOT_FOUND;
    case NDF_ERR_EXISTS: return EXIT_EXISTS;
    case NDF_ERR_INVALID:
    case NDF_ERR_VALIDATION: return EXIT_USAGE;
    case NDF_ERR_CONFIDENCE: return EXIT_CONFIDENCE;
    case NDF_ERR_RESOURCE: return EXIT_RESOURCE;
    case NDF_ERR_TIMEOUT: return EXIT_TIMEOUT;
    case NDF_ERR_IO:
    case NDF_ERR_NOMEM: return EXIT_IO;
    case NDF_ERR_CANCELLED: return EXIT_CANCELLED;
    default: return EXIT_FAILED;
    }
}

int cmd_exit_of_stored(int st)
{
    switch (st) {
    case STORE_SUCCEEDED: return EXIT_OK;
    case STORE_REFUSED: return EXIT_CONFIDENCE;
    case STORE_TIMED_OUT: return EXIT_TIMEOUT;
    case STORE_CANCELLED: return EXIT_CANCELLED;
    default: return EXIT_FAILED;
    }
}

void cmd_recover_tick(store *s, double *next)
{
    double now = now_mono();
    if (now < *next)
        return;
    *next = now + 1.0;
    /* a failure is the store's to report at the next read */
    if (store_recover(s, NULL) != NDF_OK)
        err_clear();
}

static void diag_v(FILE *err, const char *command, int prio, const char *what, const char *fmt,
                   va_list ap)
{
    /* One line, one write: a server's or batch's threads may report at
     * once, and a line of one must not split another's. */
    strbuf sb;
    sb_init(&sb);
    if (err == stderr && log_to_journal())
        sb_printf(&sb, "<%d>", prio);
    sb_puts(&sb, "ndf: ");
    if (command)
        sb_printf(&sb, "%s: ", command);
    sb_puts(&sb, what);
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n > 0) {
        char *m = xmalloc((size_t)n + 1);
        vsnprintf(m, (size_t)n + 1, fmt, ap);
        sb_add(&sb, m, (size_t)n);
        free(m);
    }
    fwrite(sb.buf, 1, sb.len, err);
    sb_free(&sb);
}

void cmd_diag(FILE *err, const char *command, int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_v(err, command, prio, "", fmt, ap);
    va_end(ap);
}

const char *cmd_name(const cmd_ctx *c)
{
    return c->name ? c->name : c->entry->name;
}

void cmd_error(cmd_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_v(c->err, cmd_name(c), DIAG_ERR, "", fmt, ap);
    va_end(ap);
}

void cmd_warn(cmd_ctx *c, const char *fmt, ...)
{
    if (c->verbosity < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    diag_v(c->err, cmd_name(c), DIAG_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

void cmd_report(void *opaque, runtime_diag sev, const char *msg)
{
    cmd_ctx *c = opaque;
    switch (sev) {
    case RT_DIAG_ERROR:
    case RT_DIAG_FAILURE: cmd_error(c, "%s\n", msg); break;
    case RT_DIAG_WARNING: cmd_warn(c, "%s\n", msg); break;
    }
}

int cmd_help(cmd_ctx *c)
{
    fputs(c->entry->usage, c->out);
    return EXIT_OK;
}

int cmd_bad_usage(cmd_ctx *c)
{
    fputs(c->entry->usage, c->err);
    return EXIT_USAGE;
}

const char *cmd_pattern_arg(cmd_ctx *c, const opt_parser *p)
{
    if (p->noperands == 1)
        return p->operands[0];
    cmd_error(c, "%s\n", p->noperands ? "too many arguments" : "which pattern? (see 'ndf list')");
    return NULL;
}

int cmd_refuse_served(cmd_ctx *c, const char *instead)
{
    if (!c->served)
        return 0;
    err_set(NDF_ERR_INVALID, "bad request: %s", instead);
    return 1;
}

int cmd_context_option(cmd_ctx *c, ctxopt *co, int opt, const char *arg, int *rc)
{
    if (opt == CTXOPT_CONTEXT &&
        cmd_refuse_served(c, "pass the context as the \"context\" member, not --context")) {
        *rc = CMD_REFUSED;
        return 1;
    }
    int h = ctxopt_handle(co, opt, arg);
    if (h < 0) {
        cmd_error(c, "%s\n", err_msg());
        *rc = EXIT_USAGE;
    }
    return h != 0;
}

int cmd_context_finish(cmd_ctx *c, ctxopt *co, ndf_context **out)
{
    co->base = c->context;
    if (ctxopt_finish(co, out) != NDF_OK) {
        cmd_error(c, "%s\n", err_msg());
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cmd_parse_seconds(cmd_ctx *c, const char *opt, const char *arg, double *out)
{
    if (parse_seconds(arg, out) != 0) {
        char *shown = term_safe(arg);
        cmd_error(c, "%s %s: expected a number of seconds from 0 to " SECONDS_MAX_TEXT "\n", opt,
                  shown);
        free(shown);
        return -1;
    }
    return 0;
}

int cmd_parse_interval(cmd_ctx *c, const char *opt, const char *arg, double *out)
{
    double v;
    if (parse_seconds(arg, &v) != 0 || !(v > 0)) {
        char *shown = term_safe(arg);
        cmd_error(c, "%s %s: expected a number of seconds above 0, at most " SECONDS_MAX_TEXT "\n",
                  opt, shown);
        free(shown);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_parse_queue_priority(cmd_ctx *c, const char *arg, int *out)
{
    long v;
    if (parse_long_in(arg, -QUEUE_PRIORITY_MAX, QUEUE_PRIORITY_MAX, &v) != 0) {
        char *shown = term_safe(arg);
        cmd_error(c, "--queue-priority %s: expected a whole number from %d to %d\n", shown,
                  -QUEUE_PRIORITY_MAX, QUEUE_PRIORITY_MAX);
        free(shown);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cmd_queue_check(cmd_ctx *c, const char *what)
{
    int st = runtime_load(c->rt, RT_CONFIG);
    if (st == NDF_OK && c->rt->cfg->set.storage_backend != STORE_BACKEND_POSTGRESQL) {
        cmd_error(c,
                  "%sthe work queue needs a store several hosts share: set storage.backend = "
                  "\"postgresql\" (and storage.conninfo) in %s; this one is %s\n",
                  what ? what : "", c->rt->config_path ? c->rt->config_path : "the configuration",
                  store_backend_name((store_backend)c->rt->cfg->set.storage_backend));
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cmd_queue_submit(cmd_ctx *c, unsigned load, const char *pat, const ndf_context *ctx,
                     int priority, double timeout, char **id)
{
    *id = NULL;
    int rc = cmd_queue_check(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    store *s = cmd_open_store(c, load, &rc);
    if (!s)
        return rc;
    strbuf cj;
    sb_init(&cj);
    context_to_json(ctx, &cj);
    int st = queue_submit(s, pat, cj.buf, priority, timeout, id);
    sb_free(&cj);
    if (st) {
        cmd_error(c, "%s\n", err_msg());
        return exit_code_for(st);
    }
    return EXIT_OK;
}

store *cmd_open_store(cmd_ctx *c, unsigned what, int *rc)
{
    runtime *a = c->rt;
    int st = runtime_load(a, what);
    *rc = exit_code_for(st);
    if (st && !(what & RT_PATTERNS && a->reg))
        return NULL;
    store *s = runtime_store(a);
    if (!s) {
        cmd_error(c, "%s\n", err_msg());
        *rc = EXIT_IO;
    }
    return s;
}

void cmd_write_safe(FILE *out, const char *buf, size_t len)
{
    const char *end = buf + len;
    while (buf < end) {
        const char *nl = memchr(buf, '\n', (size_t)(end - buf));
        size_t n = nl ? (size_t)(nl - buf) : (size_t)(end - buf);
        /* a value with a NUL byte cannot come from a C string; a line is
         * cut at one rather than lost */
        char *line = xstrndup(buf, n);
        char *safe = term_safe(line);
        fputs(safe, out);
        if (nl)
            fputc('\n', out);
        free(safe);
        free(line);
        buf += n + (nl != NULL);
    }
}

void cmd_print_safe(FILE *out, void (*print)(FILE *, const void *), const void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) { /* out of memory: as x*alloc, but printing raw is worse */
        fputs("ndf: out of memory\n", stderr);
        abort();
    }
    print(m, arg);
    fclose(m);
    cmd_write_safe(out, buf, len);
    free(buf);
}
