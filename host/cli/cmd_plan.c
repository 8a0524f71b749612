/* ndf plan (and ndf run --dry-run): what a run of a pattern in a context
 * would do, resolved before anything runs (cli/plan.h builds it). */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "cli/plan.h"
#include "base/util.h"

static const char plan_usage[] =
    "Usage: ndf plan PATTERN [context options] [--timeout S] [--json]\n"
    "\n"
    "Shows what 'ndf run PATTERN' would do in the context, without running\n"
    "anything: every step with its type, its parameters expanded as they would\n"
    "run, dependencies, retries, resources and rollback, the phases and the\n"
    "sub-patterns they run, and each deadline with the setting it comes from.\n"
    "A ${variable} the context cannot resolve is an error (exit 2), as it\n"
    "would be for 'ndf run'.\n"
    "\n"
    "Options:\n"
    "  --timeout S   plan with this execution deadline, as 'ndf run --timeout'\n"
    "  --json        print the plan as JSON (see ndf(1))\n"
    "  -h, --help    show this help\n"
    "\n" CTXOPT_HELP;

static void plan_print_cb(FILE *out, const void *plan)
{
    plan_print(out, plan);
}

int cmd_plan_show(cmd_ctx *c, const char *name, const ndf_context *ctx, double timeout, int json)
{
    int rc = runtime_load(c->rt, RT_PATTERNS);
    if (rc && !c->rt->reg)
        return exit_code_for(rc);
    cJSON *plan;
    int st = plan_build(c->rt, name, ctx, timeout, &plan);
    if (!plan) {
        cmd_error(c, "%s\n", err_msg());
        return exit_code_for(st);
    }
    if (json) {
        char *s = cJSON_Print(plan);
        fprintf(c->out, "%s\n", s ? s : "null");
        cJSON_free(s);
    } else {
        /* the plan quotes the configuration: names, commands, parameters */
        cmd_print_safe(c->out, plan_print_cb, plan);
    }
    cJSON_Delete(plan);
    if (st) {
        cmd_error(c, "%s\n", err_msg());
        return exit_code_for(st);
    }
    return exit_code_for(rc);
}

static int cmd_plan(cmd_ctx *c, int argc, char **argv)
{
    enum { OPT_TIMEOUT = 1, OPT_JSON };
    static const opt_spec opts[] = {CTXOPT_OPTIONS,
                                    {"timeout", 0, OPT_REQUIRED, OPT_TIMEOUT},
                                    {"json", 0, OPT_NONE, OPT_JSON},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    ctxopt co;
    ctxopt_init(&co);
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, rc = EXIT_OK, done = 0, json = 0;
    double timeout = 0;
    while (!done && (o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc)) {
            done = rc != EXIT_OK;
            continue;
        }
        switch (o) {
        case OPT_TIMEOUT:
            if (cmd_parse_interval(c, "--timeout", p.arg, &timeout))
                rc = EXIT_USAGE, done = 1;
            break;
        case OPT_JSON: json = 1; break;
        case 'h': rc = cmd_help(c), done = 1; break;
        default: rc = cmd_bad_usage(c), done = 1; break;
        }
    }
    const char *name = NULL;
    if (!done && !(name = cmd_pattern_arg(c, &p)))
        rc = EXIT_USAGE, done = 1;
    ndf_context *ctx = NULL;
    if (!done && (rc = cmd_context_finish(c, &co, &ctx)) == EXIT_OK)
        rc = cmd_plan_show(c, name, ctx, timeout, json);
    context_free(ctx);
    ctxopt_free(&co);
    return rc;
}

const cmd_entry cmd_plan_entry = {
    .name = "plan",
    .summary = "show what running a pattern would do, resolved, without running it",
    .usage = plan_usage,
    .flags = CMD_SERVABLE | CMD_CONTEXT | CMD_LOADER,
    .exec = cmd_plan,
};
