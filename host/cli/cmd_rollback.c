/* `ndf rollback ID`: the reference's trigger_rollback on an execution kept
 * in the store, run by this process whoever ran it.  The pattern type's
 * rollback needs the run data its run() left, which only the process that
 * ran it has: the execution is replayed (EXEC_REPLAY) from its stored
 * nodes, nothing run, so that the type rebuilds that data, and then its
 * rollback runs the undo actions in the type's own order.  The claim in
 * the store makes it exclusive with `ndf ctl rollback` and other
 * one-shots (see rollback_stored in store/redrive.c). */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include <cJSON.h>
#include <ndf/sdk.h>

#include "app/runtime.h"
#include "base/util.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "store/redrive.h"

static const char rollback_usage[] =
    "Usage: ndf rollback ID [--level pattern|phase|complete] [--target NAME] [--json]\n"
    "\n"
    "Undoes the completed work of execution ID, kept in the store (the\n"
    "reference's trigger_rollback): the undo actions of its steps that\n"
    "completed, in its pattern type's order (a sequence newest first, a\n"
    "parallel pattern in reverse dependency order, a meta pattern by phases,\n"
    "as --level says), with the context, parameters and step results it\n"
    "ran with.  It is then ROLLED_BACK; when an undo fails it is FAILED\n"
    "(\"rollback failed at ...\") and a second rollback undoes what is left.\n"
    "Refused (exit 2) while it runs, when it was rolled back already, for a\n"
    "sub-pattern's execution, when nothing of it has an undo, and when its\n"
    "pattern's definition changed so that its steps no longer match.\n"
    "`ndf ctl rollback ID` asks a server that ran it; either way one\n"
    "rollback of an execution runs at a time.  A first SIGINT or SIGTERM\n"
    "lets the undo actions finish; a second stops them (FAILED \"rollback\n"
    "interrupted\", exit 128 + the signal; a SIGTERM sent to the whole\n"
    "process group also reaches the undo actions).  A rollback whose process died\n"
    "is made FAILED \"rollback interrupted\" by the next ndf's crash\n"
    "recovery; 'ndf rollback ID' then runs the undo actions again.\n"
    "\n"
    "Options:\n"
    "  --level L     pattern, phase or complete (meta patterns; default pattern)\n"
    "  --target NAME the phase (step, task) after which to undo\n"
    "  --json        print the rollback's record as JSON (its duration is the\n"
    "                replay's; rollback_duration is the rollback's own)\n";

/* The rollback levels of trigger_rollback, long and short (as the
 * server's protocol checks them). */
static int level_valid(const char *s)
{
    static const char *const ok[] = {"pattern", "pattern_level", "phase", "phase_level",
                                     "complete"};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
        if (strcmp(s, ok[i]) == 0)
            return 1;
    return 0;
}

static int cmd_rollback(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"level", 0, OPT_REQUIRED, 'l'},
                                    {"target", 0, OPT_REQUIRED, 't'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    const char *level = NULL, *target = NULL;
    int json = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'l':
            if (!level_valid(p.arg)) {
                cmd_error(c, "--level must be pattern, phase or complete, not '%s'\n", p.arg);
                return EXIT_USAGE;
            }
            level = p.arg;
            break;
        case 't': target = p.arg; break;
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands != 1 || !*p.operands[0]) {
        cmd_error(c, "expected one execution ID (see 'ndf runs')\n");
        return EXIT_USAGE;
    }
    if (!c->served) {
        /* rollback mode before the thread takes signals: a first signal
         * in between would be taken as a run's cancellation */
        cmd_signals_rollback();
        cmd_signals_arm(cmd_name(c));
    }
    int rc = cmd_start_executor(c, STORE_ORIGIN_RUN);
    if (rc)
        return rc;
    runtime *rt = c->rt;
    if (!rt->ex || !rt->st) {
        cmd_error(c, "no executor or no store to roll back with\n");
        return EXIT_IO;
    }
    record *r = NULL;
    double t0 = now_mono();
    int st = rollback_stored(rt->ex, rt->st, p.operands[0], level, target,
                             c->served ? NULL : cmd_signals_undo, NULL, &r);
    double took = now_mono() - t0;
    /* a signal that did not stop the undo actions changed nothing: the
     * exit status is the rollback's own */
    if (!(st && r && atomic_load(&r->hard_cancel)))
        cmd_signals_keep_status();
    if (st) {
        cmd_error(c, "%s\n", err_msg());
        record_unref(r);
        return exit_code_for(st);
    }
    strbuf sb;
    sb_init(&sb);
    record_to_json(r, &sb);
    /* the record's duration is its replay's; the rollback's own is added */
    if (sb.len && sb.buf[sb.len - 1] == '}') {
        sb.len--;
        sb_puts(&sb, ",\"rollback_duration\":");
        sb_json_num(&sb, took, 0);
        sb_puts(&sb, "}");
    }
    if (json) {
        fprintf(c->out, "%s\n", sb.buf);
    } else {
        cJSON *j = cJSON_Parse(sb.buf);
        /* the record's own status is its replay's ("ok"): what this
         * command did is a rollback */
        if (j && cJSON_GetObjectItemCaseSensitive(j, "status"))
            cJSON_ReplaceItemInObjectCaseSensitive(j, "status", cJSON_CreateString("rolled back"));
        if (j)
            status_print(c->out, j);
        cJSON_Delete(j);
    }
    sb_free(&sb);
    record_unref(r);
    return EXIT_OK;
}

const cmd_entry cmd_rollback_entry = {
    .name = "rollback",
    .summary = "undo the completed work of a stored execution (trigger_rollback)",
    .usage = rollback_usage,
    .exec = cmd_rollback,
};
