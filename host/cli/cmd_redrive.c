/* `ndf redrive ID`: runs a failed, timed-out, cancelled or crashed
 * execution again as a new execution linked to it (redrive_of), taking the
 * recorded outcome of the steps, tasks and sub-patterns that completed
 * instead of running them again.  Which nodes are reused is decided here,
 * from the stored execution alone; the executor only looks paths up (see
 * record_reuse_node), so every pattern type gets it without knowing. */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ndf/sdk.h>

#include "app/runtime.h"
#include "base/hashmap.h"
#include "base/util.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "model/context.h"
#include "store/history.h"

static const char redrive_usage[] =
    "Usage: ndf redrive ID [--from-start] [--timeout S] [--force] [--json]\n"
    "\n"
    "Runs execution ID (FAILED, TIMED_OUT, CANCELLED or CRASHED) again as a new\n"
    "execution linked to it, in the context it had.  Steps, tasks and\n"
    "sub-patterns that completed in it are not run again: their recorded\n"
    "outcome is reused.  The rest runs: a sequence from the failed step, a\n"
    "parallel pattern's failed and skipped tasks, a meta pattern from its\n"
    "failed phase.  A redriven step may run twice (it may have done its work\n"
    "before it failed): make commands idempotent or give them an undo.\n"
    "\n"
    "Options:\n"
    "  --from-start  reuse nothing: run all of it again (also allowed for an\n"
    "                execution that was rolled back)\n"
    "  --timeout S   the new execution's deadline in seconds\n"
    "  --force       run even when the confidence is below the threshold\n"
    "  --json        print the new execution's record as JSON on stdout\n";

/* 1 when node `n`'s state is a success (the outcome a redrive reuses). */
static int succeeded(int state)
{
    return state == NDF_STATE_COMPLETED || state == NDF_STATE_DEGRADED;
}

/* 1 when every PHASE above the node at `path` succeeded: a phase that
 * failed runs again whole (its completed sub-patterns too), since its
 * success criteria judge the phase as one. */
static int phases_succeeded(const hashmap *by_path, const char *path)
{
    for (const char *q = strchr(path, '/'); q; q = strchr(q + 1, '/')) {
        const store_node *a = hashmap_getn(by_path, path, (size_t)(q - path));
        if (a && a->kind == NDF_NODE_PHASE && !succeeded(a->state))
            return 0;
    }
    return 1;
}

/* Execution `e`'s nodes by path; the values point into `e`. */
static hashmap *nodes_by_path(const store_exec *e)
{
    hashmap *m = hashmap_new();
    for (size_t i = 0; i < e->nnodes; i++)
        hashmap_put(m, e->nodes[i].path, &e->nodes[i]);
    return m;
}

/* The reuse set of execution `e`: the paths of its nodes that succeeded,
 * outside failed phases, each with its message ("" when none).  *n gets
 * the count. */
static hashmap *reuse_set(const store_exec *e, const hashmap *by_path, size_t *n)
{
    hashmap *reuse = hashmap_new();
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *nd = &e->nodes[i];
        if (!*nd->path || !succeeded(nd->state) || !phases_succeeded(by_path, nd->path))
            continue;
        hashmap_put(reuse, nd->path, xstrdup(nd->message ? nd->message : ""));
    }
    *n = hashmap_count(reuse);
    return reuse;
}

/* Nodes of `e` undone by a rollback whose work a redrive would build on:
 * those outside a failed phase (a failed phase runs again whole, so what
 * was undone inside it is simply redone). */
static size_t rolled_back(const store_exec *e, const hashmap *by_path)
{
    size_t k = 0;
    for (size_t i = 0; i < e->nnodes; i++)
        k += e->nodes[i].state == NDF_STATE_ROLLED_BACK &&
             phases_succeeded(by_path, e->nodes[i].path);
    return k;
}

/* NDF_OK when `e` may be redriven (from_start: rerun whole), else a
 * status with err_msg() saying why and what to do. */
static int redrivable(const store_exec *e, const hashmap *by_path, int from_start)
{
    if (e->parent_id)
        return err_set(NDF_ERR_INVALID,
                       "execution %s ran as a sub-pattern of %s: redrive that one instead", e->id,
                       e->parent_id);
    switch (e->status) {
    case STORE_FAILED:
    case STORE_TIMED_OUT:
    case STORE_CANCELLED:
    case STORE_CRASHED: break;
    case STORE_RUNNING:
        return err_set(NDF_ERR_INVALID,
                       "execution %s is still running (cancel it first, or wait for it)", e->id);
    case STORE_ROLLED_BACK:
        if (from_start)
            return NDF_OK;
        return err_set(NDF_ERR_INVALID,
                       "execution %s was rolled back: its completed work was undone, so there is "
                       "nothing to resume (--from-start runs all of it again)",
                       e->id);
    default:
        return err_set(NDF_ERR_INVALID,
                       "execution %s %s: only a FAILED, TIMED_OUT, CANCELLED or CRASHED execution "
                       "can be redriven (ndf run %s runs the pattern again)",
                       e->id, e->status == STORE_SUCCEEDED ? "succeeded" : "never ran", e->pattern);
    }
    size_t undone = rolled_back(e, by_path);
    if (undone && !from_start)
        return err_set(NDF_ERR_INVALID,
                       "execution %s was rolled back (%zu node(s) undone): its completed work is "
                       "gone, so there is nothing to resume (--from-start runs all of it again)",
                       e->id, undone);
    return NDF_OK;
}

/* executor_claim_fn: the redrive's RUNNING row, committed before any of
 * its work starts.  The store refuses it while another redrive of the same
 * execution (or of one redriven from it) runs or after one succeeded, so
 * of two redrives started at once only one runs. */
static int claim_redrive(void *arg, const record *r)
{
    return history_begin(arg, r, STORE_ORIGIN_REDRIVE);
}

static int cmd_redrive(cmd_ctx *c, int argc, char **argv)
{
    enum { OPT_FROM_START = 1, OPT_TIMEOUT, OPT_FORCE, OPT_JSON };
    static const opt_spec opts[] = {{"from-start", 0, OPT_NONE, OPT_FROM_START},
                                    {"timeout", 0, OPT_REQUIRED, OPT_TIMEOUT},
                                    {"force", 0, OPT_NONE, OPT_FORCE},
                                    {"json", 0, OPT_NONE, OPT_JSON},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    int from_start = 0, json = 0;
    unsigned flags = 0;
    double timeout = 0;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o;
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case OPT_FROM_START: from_start = 1; break;
        case OPT_TIMEOUT:
            if (cmd_parse_interval(c, "--timeout", p.arg, &timeout))
                return EXIT_USAGE;
            break;
        case OPT_FORCE: flags |= EXEC_FORCE; break;
        case OPT_JSON: json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands != 1) {
        cmd_error(c, "expected one execution ID (see 'ndf runs')\n");
        return EXIT_USAGE;
    }
    const char *id = p.operands[0];
    runtime *rt = c->rt;
    int rc;
    /* Served, the generation's runtime is loaded and shared: nothing is
     * written into it. */
    if (!c->served && (rc = cmd_load_executor(rt, STORE_ORIGIN_REDRIVE)))
        return rc;
    if (!rt->ex || !rt->st) {
        cmd_error(c, "no executor or no store to redrive with\n");
        return EXIT_IO;
    }
    store_exec e;
    int st = store_get(rt->st, id, &e);
    if (st) {
        cmd_error(c, "%s\n", err_msg());
        return exit_code_for(st);
    }
    ndf_context *ctx = NULL;
    hashmap *reuse = NULL, *by_path = NULL;
    size_t nreuse = 0;
    record *r = NULL;
    by_path = nodes_by_path(&e);
    if ((st = redrivable(&e, by_path, from_start)))
        goto fail;
    if (e.context && *e.context) {
        char *where = xasprintf("the context of execution %s", e.id);
        st = context_from_json(e.context, where, &ctx);
        free(where);
        if (st)
            goto fail;
    }
    if (!from_start)
        reuse = reuse_set(&e, by_path, &nreuse);
    hashmap_free(by_path, NULL);
    by_path = NULL;
    st = executor_start_redrive(rt->ex, e.pattern, ctx, timeout, flags, e.id, reuse,
                               claim_redrive, rt->st, &r);
    reuse = NULL; /* taken */
    if (st)
        goto fail;
    int show = c->verbosity >= 0 && !json;
    if (show)
        fprintf(c->err, "redrive of %s (%s, %s): %zu node(s) reused, execution %s\n", e.id,
                e.pattern, store_status_name(e.status), nreuse, r->id);
    st = cmd_run_follow(c, r, STORE_ORIGIN_REDRIVE, show);
    if (show)
        cmd_run_summary(c, r, st);
    else if (st && c->verbosity >= 0)
        cmd_error(c, "%s\n", r->error ? r->error : ndf_status_name(st));
    if (json) {
        strbuf sb;
        sb_init(&sb);
        record_to_json(r, &sb);
        /* the record's object, with the link and the reuse count added */
        if (sb.len && sb.buf[sb.len - 1] == '}') {
            sb.len--;
            sb_puts(&sb, ",\"redrive_of\":");
            sb_json_str(&sb, e.id);
            sb_printf(&sb, ",\"reused\":%zu}", nreuse);
        }
        fprintf(c->out, "%s\n", sb.buf);
        sb_free(&sb);
    }
    record_unref(r);
    context_free(ctx);
    store_exec_free(&e);
    return exit_code_for(st);
fail:
    cmd_error(c, "%s\n", err_msg());
    hashmap_free(by_path, NULL);
    context_free(ctx);
    store_exec_free(&e);
    return exit_code_for(st);
}

const cmd_entry cmd_redrive_entry = {
    .name = "redrive",
    .summary = "run a failed execution again, reusing the steps that completed",
    .usage = redrive_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_redrive,
};
