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
#include "store/redrive.h"

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
    hashmap *reuse = NULL;
    size_t nreuse = 0;
    record *r = NULL;
    if ((st = redrive_check(&e, from_start)))
        goto fail;
    if (e.context && *e.context) {
        char *where = xasprintf("the context of execution %s", e.id);
        st = context_from_json(e.context, where, &ctx);
        free(where);
        if (st)
            goto fail;
    }
    if (!from_start)
        reuse = redrive_reuse(&e, &nreuse);
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
