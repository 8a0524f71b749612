/* ndf submit: queues an execution in the shared store's work queue
 * (store/queue.h) for a worker (`ndf serve --worker`, on any host) to run,
 * and prints its id for `ndf wait`.  Served as `ndf ctl submit`. */
#include "build-config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "model/context.h"
#include "store/queue.h"
#include "store/store.h"

static const char submit_usage[] =
    "Usage: ndf submit PATTERN [context options] [--queue-priority N] [--timeout S] [--json]\n"
    "\n"
    "Queues an execution of PATTERN in the work queue of the shared store\n"
    "(storage.backend = \"postgresql\") and prints its id.  A worker ('ndf serve\n"
    "--worker' on any host sharing the store) that has PATTERN loaded runs it;\n"
    "'ndf wait ID' waits for its end.  Exits 0 once the item is committed,\n"
    "2 on a bad command line or a store without a queue (SQLite), 8 when the\n"
    "store cannot be reached.\n"
    "\n"
    "Options:\n"
    "  --queue-priority N  claimed before items of lower N (default 0; a whole\n"
    "                      number from -1000000 to 1000000); equal priorities\n"
    "                      in submission order\n"
    "  --timeout S         the execution's deadline in seconds (at most\n"
    "                      1000000000), counted from its start on a worker\n"
    "                      (default: the worker's)\n"
    "  --json              print {\"id\", \"pattern\", \"priority\", \"state\"}\n"
    "  -h, --help          show this help\n"
    "\n" CTXOPT_HELP;

/* A pattern name as a queue carries it: what a definition could be named,
 * never a control byte a terminal would act on when it is listed, and
 * UTF-8, as the store keeps it (PostgreSQL would store another name that no
 * worker could claim). */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256 || !utf8_valid(s, n))
        return 0;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++)
        if (*q < 0x20 || *q == 0x7f)
            return 0;
    return 1;
}

static int cmd_submit(cmd_ctx *c, int argc, char **argv)
{
    enum { OPT_QPRIO = 1, OPT_TIMEOUT, OPT_JSON };
    static const opt_spec opts[] = {CTXOPT_OPTIONS,
                                    {"queue-priority", 0, OPT_REQUIRED, OPT_QPRIO},
                                    {"timeout", 0, OPT_REQUIRED, OPT_TIMEOUT},
                                    {"json", 0, OPT_NONE, OPT_JSON},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    ctxopt co;
    ctxopt_init(&co);
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, rc = EXIT_OK, json = 0, prio = 0;
    double timeout = 0;
    while ((o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc)) {
            if (rc != EXIT_OK)
                goto out;
            continue;
        }
        switch (o) {
        case OPT_QPRIO:
            if (cmd_parse_queue_priority(c, p.arg, &prio)) {
                rc = EXIT_USAGE;
                goto out;
            }
            break;
        case OPT_TIMEOUT:
            if (cmd_parse_seconds(c, "--timeout", p.arg, &timeout)) {
                rc = EXIT_USAGE;
                goto out;
            }
            break;
        case OPT_JSON: json = 1; break;
        case 'h': rc = cmd_help(c); goto out;
        default: rc = cmd_bad_usage(c); goto out;
        }
    }
    if (p.noperands != 1) {
        cmd_error(c, "expected one PATTERN (see 'ndf submit --help')\n");
        rc = EXIT_USAGE;
        goto out;
    }
    const char *name = p.operands[0];
    if (!name_ok(name)) {
        char *shown = term_safe(name);
        cmd_error(c,
                  "'%s' cannot be a pattern's name (1 to 256 bytes of UTF-8, no control "
                  "characters)\n",
                  shown);
        free(shown);
        rc = EXIT_USAGE;
        goto out;
    }
    ndf_context *ctx = NULL;
    if ((rc = cmd_context_finish(c, &co, &ctx)) != EXIT_OK)
        goto out;
    char *id = NULL;
    rc = cmd_queue_submit(c, RT_CONFIG, name, ctx, prio, timeout, &id);
    context_free(ctx);
    if (rc != EXIT_OK)
        goto out;
    if (json) {
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, "{\"id\":");
        sb_json_str(&sb, id);
        sb_puts(&sb, ",\"pattern\":");
        sb_json_str(&sb, name);
        sb_printf(&sb, ",\"priority\":%d,\"state\":\"QUEUED\"}\n", prio);
        fwrite(sb.buf, 1, sb.len, c->out);
        sb_free(&sb);
    } else {
        fprintf(c->out, "%s\n", id);
    }
    free(id);
    rc = EXIT_OK;
out:
    ctxopt_free(&co);
    return rc;
}

const cmd_entry cmd_submit_entry = {
    .name = "submit",
    .summary = "queue an execution for the workers of a shared store",
    .usage = submit_usage,
    .flags = CMD_SERVABLE | CMD_CONTEXT,
    .exec = cmd_submit,
};
