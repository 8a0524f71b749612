/* ndf workers: the workers (`ndf serve --worker`) registered in the shared
 * store, with what they hold and how fresh their heartbeat is. */
#include "build-config.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "store/queue.h"
#include "store/store.h"

static const char workers_usage[] =
    "Usage: ndf workers [--all] [--json]\n"
    "\n"
    "Lists the live workers of the shared store (storage.backend =\n"
    "\"postgresql\"): those whose last heartbeat is younger than their lease,\n"
    "with host, pid, capacity, load (executions held), state (claiming or\n"
    "draining) and heartbeat age in seconds.\n"
    "\n"
    "  --all       also those whose heartbeat is older (dead, or cut off from\n"
    "              the database); their leases expire and others take their work\n"
    "  --json      one JSON array; each worker also with its patterns and plugins\n"
    "  -h, --help  show this help\n";

/* A column that ndf wrote as a JSON array, as it is when it still is one
 * (anyone with the database can write it), else []. */
static void json_array(strbuf *sb, const char *text)
{
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    char *out = cJSON_IsArray(j) ? cJSON_PrintUnformatted(j) : NULL;
    sb_puts(sb, out ? out : "[]");
    free(out);
    cJSON_Delete(j);
}

static int cmd_workers(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"all", 0, OPT_NONE, 'a'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    int all = 0, json = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'a': all = 1; break;
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands) {
        cmd_error(c, "unexpected argument '%s'\n", p.operands[0]);
        return EXIT_USAGE;
    }
    int rc, st = runtime_load(c->rt, RT_CONFIG);
    if (st == NDF_OK && c->rt->cfg->set.storage_backend != STORE_BACKEND_POSTGRESQL) {
        cmd_error(c,
                  "workers share a store: set storage.backend = \"postgresql\" (this one is "
                  "%s)\n",
                  store_backend_name((store_backend)c->rt->cfg->set.storage_backend));
        return EXIT_USAGE;
    }
    store *s = cmd_open_store(c, RT_CONFIG, &rc);
    if (!s)
        return rc;
    queue_worker *v;
    size_t n;
    if ((st = queue_workers(s, &v, &n))) {
        cmd_error(c, "%s\n", err_msg());
        return exit_code_for(st);
    }
    strbuf sb;
    sb_init(&sb);
    if (json)
        sb_puts(&sb, "[");
    else
        sb_printf(&sb, "%-40s %-20s %8s %8s %5s %-9s %7s\n", "WORKER", "HOST", "PID", "CAPACITY",
                  "LOAD", "STATE", "AGE");
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        const queue_worker *w = &v[i];
        int live = w->age <= w->lease;
        if (!live && !all)
            continue;
        const char *state = !live ? "stale" : w->draining ? "draining" : "claiming";
        if (json) {
            sb_puts(&sb, shown ? ",{\"name\":" : "{\"name\":");
            sb_json_str(&sb, w->name);
            sb_puts(&sb, ",\"host\":");
            sb_json_str(&sb, w->host);
            sb_printf(&sb, ",\"pid\":%ld,\"capacity\":%d,\"load\":%d,\"state\":\"%s\",", w->pid,
                      w->capacity, w->load, state);
            sb_puts(&sb, "\"heartbeat_age\":");
            sb_json_num(&sb, w->age, 0);
            sb_puts(&sb, ",\"lease\":");
            sb_json_num(&sb, w->lease, 0);
            sb_puts(&sb, ",\"patterns\":");
            json_array(&sb, w->patterns);
            sb_puts(&sb, ",\"plugins\":");
            json_array(&sb, w->plugins);
            sb_puts(&sb, "}");
        } else {
            char *name = term_safe(w->name), *host = term_safe(w->host ? w->host : "");
            sb_printf(&sb, "%-40s %-20s %8ld %8d %5d %-9s %7.1f\n", name, host, w->pid,
                      w->capacity, w->load, state, w->age);
            free(name);
            free(host);
        }
        shown++;
    }
    if (json)
        sb_puts(&sb, "]\n");
    fwrite(sb.buf, 1, sb.len, c->out);
    sb_free(&sb);
    queue_workers_free(v, n);
    return EXIT_OK;
}

const cmd_entry cmd_workers_entry = {
    .name = "workers",
    .summary = "list the workers of a shared store's work queue",
    .usage = workers_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_workers,
};
