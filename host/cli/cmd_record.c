/* ndf record: the reference's record_execution.  The outcome of work done
 * outside ndf (by an agent, a person, another system) teaches the model
 * like an execution: one-shot, or on a server through `ndf ctl record`. */
#include "build-config.h"

#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "app/api.h"
#include "base/util.h"

static const char record_usage[] =
    "Usage: ndf record PATTERN --success|--failure [context options]\n"
    "                  [--duration S] [--message TEXT] [--json]\n"
    "\n"
    "Records the outcome of work done outside ndf as an execution of PATTERN:\n"
    "its confidence, per-domain counts and history change exactly as if ndf\n"
    "had run it (origin \"external\" in 'ndf runs').\n"
    "\n"
    "  --success, --failure  the outcome (one is required)\n"
    "  --duration S          how long the work took, in seconds (default 0)\n"
    "  --message TEXT        why it failed, or a note kept with it\n"
    "  --json                print {\"id\", \"pattern\", \"success\", \"confidence\",\n"
    "                        \"executions\", \"successes\"}\n"
    "  -h, --help            show this help\n"
    "\n" CTXOPT_HELP;

static int cmd_record(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"success", 0, OPT_NONE, 's'},
                                    {"failure", 0, OPT_NONE, 'f'},
                                    {"duration", 0, OPT_REQUIRED, 'd'},
                                    {"message", 0, OPT_REQUIRED, 'm'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    CTXOPT_OPTIONS,
                                    {0}};
    ctxopt co;
    ctxopt_init(&co);
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, rc = EXIT_OK, outcome = -1, json = 0;
    double duration = 0;
    const char *message = NULL;
    while (rc == EXIT_OK && (o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc))
            continue;
        switch (o) {
        case 's':
        case 'f':
            if (outcome >= 0 && outcome != (o == 's')) {
                cmd_error(c, "--success and --failure exclude each other\n");
                rc = EXIT_USAGE;
            }
            outcome = o == 's';
            break;
        case 'd':
            if (cmd_parse_seconds(c, "--duration", p.arg, &duration) || duration > 1e9) {
                if (duration > 1e9)
                    cmd_error(c, "--duration %s: at most 1e9 seconds\n", p.arg);
                rc = EXIT_USAGE;
            }
            break;
        case 'm': message = p.arg; break;
        case 'j': json = 1; break;
        case 'h': rc = cmd_help(c); goto out;
        default: rc = cmd_bad_usage(c); goto out;
        }
    }
    if (rc != EXIT_OK)
        goto out;
    const char *name = cmd_pattern_arg(c, &p);
    if (!name) {
        rc = EXIT_USAGE;
        goto out;
    }
    if (outcome < 0) {
        cmd_error(c, "say how it went: --success or --failure\n");
        rc = EXIT_USAGE;
        goto out;
    }
    ndf_context *ctx = NULL;
    if ((rc = cmd_context_finish(c, &co, &ctx)) != EXIT_OK)
        goto out;
    int st = runtime_load(c->rt, RT_PATTERNS);
    if (st && !c->rt->reg) {
        context_free(ctx);
        rc = exit_code_for(st);
        goto out;
    }
    api_outcome oc = {.success = outcome, .ctx = ctx, .duration = duration, .message = message};
    char id[48];
    st = api_record(c->rt, name, &oc, id);
    context_free(ctx);
    if (st) {
        cmd_error(c, "%s\n", err_msg());
        rc = st == NDF_ERR_INVALID ? EXIT_USAGE : exit_code_for(st);
        goto out;
    }
    pattern *pat;
    learning_state ls = {0};
    if (registry_get(c->rt->reg, name, &pat) == NDF_OK) {
        pattern_stats(pat, &ls);
        pattern_unref(pat);
    }
    strbuf sb;
    sb_init(&sb);
    if (json) {
        sb_puts(&sb, "{\"id\":");
        sb_json_str(&sb, id);
        sb_puts(&sb, ",\"pattern\":");
        sb_json_str(&sb, name);
        sb_printf(&sb, ",\"success\":%s,\"confidence\":", outcome ? "true" : "false");
        sb_json_num(&sb, ls.score, 6);
        sb_printf(&sb, ",\"executions\":%llu,\"successes\":%llu}\n",
                  (unsigned long long)ls.executions, (unsigned long long)ls.successes);
    } else {
        sb_printf(&sb,
                  "recorded a %s of '%s' (execution %s): confidence %.3f after %llu "
                  "execution(s)\n",
                  outcome ? "success" : "failure", name, id, ls.score,
                  (unsigned long long)ls.executions);
    }
    fwrite(sb.buf, 1, sb.len, c->out);
    sb_free(&sb);
    learning_free(&ls);
    /* a definition that failed to build is still reported (exit 2) */
    rc = exit_code_for(st);
out:
    ctxopt_free(&co);
    return rc;
}

const cmd_entry cmd_record_entry = {
    .name = "record",
    .summary = "record the outcome of work done outside ndf (record_execution)",
    .usage = record_usage,
    .flags = CMD_SERVABLE | CMD_CONTEXT,
    .exec = cmd_record,
};
