/* ndf wait: the reference's wait_for_completion(timeout) for an execution
 * that another process runs (`ndf run`, `ndf batch`, a server): the store
 * is watched until its row is final.  The timeout bounds the wait, never
 * the execution.  (`ndf ctl wait` asks the server instead.) */
#include "build-config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/opt.h"
#include "base/util.h"
#include "store/queue.h"
#include "store/store.h"

static const char wait_usage[] =
    "Usage: ndf wait ID [--timeout S] [--json]\n"
    "\n"
    "Waits until execution ID, run by another ndf process on the same store,\n"
    "has ended, at most S seconds when given (0: only look).  ID may be a\n"
    "queued item's ('ndf submit'): wait follows it from QUEUED and CLAIMED to\n"
    "DONE, then reports the execution that ran it.  A timeout ends\n"
    "the wait, not the execution: it goes on, and wait exits 5.  Otherwise\n"
    "prints how it ended and exits as its run did (0 succeeded, 1 failed,\n"
    "4 refused, 5 timed out, 10 cancelled); 3 when no such execution is kept.\n"
    "An execution being rolled back ('ndf rollback') is waited for until its\n"
    "rollback has ended, which is then how it ended.\n"
    "An id that is not in the store yet but was made in the last 30 seconds\n"
    "(its time is in it) is waited for as well, until it is 30 seconds old or\n"
    "the timeout ends the wait: the process running it may not have written\n"
    "its first row yet.\n"
    "\n"
    "  --timeout S   wait at most S seconds\n"
    "  --json        print {\"id\", \"pattern\", \"status\", \"done\"} (for a\n"
    "                queued item also \"queue\", its state, and \"execution\")\n"
    "  -h, --help    show this help\n";

/* How long after its id was made an execution may still be missing from
 * the store: the process that runs it writes the row when it starts, which
 * a loaded machine may delay (plugin scan, store open). */
#define FRESH_WINDOW 30.0

/* The wall-clock time an execution id was made (record_make_id():
 * YYYYMMDDTHHMMSS-PID-N, UTC), or -1 when `id` has not that form. */
static double id_time(const char *id)
{
    int y, mo, d, h, mi, sec, end = 0;
    unsigned pid, n;
    if (sscanf(id, "%4d%2d%2dT%2d%2d%2d-%x-%u%n", &y, &mo, &d, &h, &mi, &sec, &pid, &n, &end) !=
            8 ||
        id[end] || strlen(id) < 19 || id[8] != 'T' || id[15] != '-')
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    return (double)timegm(&tm);
}

static int cmd_wait(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"timeout", 0, OPT_REQUIRED, 't'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    double timeout = -1;
    int json = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 't':
            if (cmd_parse_seconds(c, "--timeout", p.arg, &timeout))
                return EXIT_USAGE;
            break;
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands != 1) {
        cmd_error(c, "expected one execution ID\n");
        return EXIT_USAGE;
    }
    const char *id = p.operands[0];
    int rc;
    store *s = cmd_open_store(c, RT_CONFIG, &rc);
    if (!s)
        return rc;
    double until = timeout >= 0 ? now_mono() + timeout : INFINITY;
    store_exec e;
    queue_item q;
    memset(&q, 0, sizeof q);
    int queued = 0; /* `id` names a queued item, not an execution */
    double recover_at = 0;
    for (;;) {
        memset(&e, 0, sizeof e);
        const char *state = "RUNNING";
        int st;
        if (!queued) {
            st = store_get(s, id, &e);
            if (st == NDF_ERR_NOT_FOUND && store_get_backend(s) == STORE_BACKEND_POSTGRESQL)
                queued = 1;
        }
        if (queued) {
            queue_item_free(&q);
            st = queue_get(s, id, &q);
            if (st == NDF_OK && q.state == QUEUE_DONE && !q.exec_id) {
                /* ended without an execution: it could not start */
                e.pattern = xstrdup(q.pattern);
                e.status = q.status == STORE_RUNNING ? STORE_FAILED : q.status;
                e.message = q.message ? xstrdup(q.message) : NULL;
            } else if (st == NDF_OK && q.state == QUEUE_DONE && q.exec_id) {
                st = store_get(s, q.exec_id, &e);
                if (st == NDF_ERR_NOT_FOUND) {
                    /* ended, and its record pruned since (history_limit) */
                    e.id = xstrdup(q.exec_id);
                    e.pattern = xstrdup(q.pattern);
                    e.status = q.status;
                    st = NDF_OK;
                }
            } else if (st == NDF_OK) {
                e.pattern = xstrdup(q.pattern);
                e.status = STORE_RUNNING;
                state = queue_state_name(q.state);
            }
        }
        if (st == NDF_ERR_NOT_FOUND) {
            double made = id_time(id), age = made >= 0 ? now_wall() - made : INFINITY;
            double left = until - now_mono();
            if (age > FRESH_WINDOW || age < -FRESH_WINDOW || left <= 0) {
                cmd_error(c, "no execution with id '%s' is kept%s\n", id,
                          made >= 0 && age <= FRESH_WINDOW && age >= -FRESH_WINDOW
                              ? " (yet: the wait ended before its row was written)"
                              : "");
                queue_item_free(&q);
                return EXIT_NOT_FOUND;
            }
            double d = left < 0.1 ? left : 0.1;
            struct timespec ts = {0, (long)(d * 1e9)};
            nanosleep(&ts, NULL);
            queued = 0; /* it may yet appear as an execution */
            continue;
        }
        if (st) {
            queue_item_free(&q);
            store_exec_free(&e);
            cmd_error(c, "%s\n", err_msg());
            return exit_code_for(st);
        }
        /* a rollback's claim is not an end: its undo actions run, and it
         * may yet end FAILED; the rollback's end is waited for */
        int rolling = !queued && e.status == STORE_ROLLED_BACK && e.message &&
                      strncmp(e.message, "being rolled back by ", 21) == 0;
        if (e.status != STORE_RUNNING && !rolling)
            break;
        double left = until - now_mono();
        if (left <= 0) {
            if (json) {
                strbuf sb;
                sb_init(&sb);
                sb_puts(&sb, "{\"id\":");
                sb_json_str(&sb, id);
                sb_puts(&sb, ",\"pattern\":");
                sb_json_str(&sb, e.pattern);
                sb_puts(&sb, ",\"status\":");
                sb_json_str(&sb, rolling ? "ROLLED_BACK" : state);
                if (rolling)
                    sb_puts(&sb, ",\"being_rolled_back\":true");
                if (queued) {
                    sb_puts(&sb, ",\"queue\":");
                    sb_json_str(&sb, queue_state_name(q.state));
                }
                sb_puts(&sb, ",\"done\":false}\n");
                fwrite(sb.buf, 1, sb.len, c->out);
                sb_free(&sb);
            }
            if (rolling)
                cmd_error(c,
                          "execution '%s' is still %s after %gs (the wait ended, the "
                          "rollback goes on)\n",
                          id, e.message, timeout);
            else
                cmd_error(c,
                          "%s '%s' is still %s after %gs (the wait ended, the "
                          "execution goes on)\n",
                          queued ? "queued item" : "execution", id,
                          queued ? (q.state == QUEUE_QUEUED ? "queued" : "running") : "running",
                          timeout);
            store_exec_free(&e);
            queue_item_free(&q);
            return EXIT_TIMEOUT;
        }
        store_exec_free(&e);
        /* a process killed while it ran it must not be waited for forever */
        if (!queued)
            cmd_recover_tick(s, &recover_at);
        /* a store read is cheap; a tenth of a second is prompt enough */
        double d = left < 0.1 ? left : 0.1;
        struct timespec ts = {0, (long)(d * 1e9)};
        nanosleep(&ts, NULL);
    }
    strbuf sb;
    sb_init(&sb);
    if (json) {
        sb_puts(&sb, "{\"id\":");
        sb_json_str(&sb, queued ? id : e.id);
        sb_puts(&sb, ",\"pattern\":");
        sb_json_str(&sb, e.pattern);
        sb_puts(&sb, ",\"status\":");
        sb_json_str(&sb, store_status_name(e.status));
        if (queued) {
            sb_puts(&sb, ",\"queue\":\"DONE\",\"execution\":");
            sb_json_str(&sb, e.id);
            if (!e.id) {
                sb_puts(&sb, ",\"message\":");
                sb_json_str(&sb, e.message);
            }
        }
        sb_puts(&sb, ",\"done\":true}\n");
    } else if (queued && !e.id) {
        char *why = term_safe(e.message ? e.message : "");
        sb_printf(&sb, "queued item %s of '%s': DONE, not started: %s: %s\n", id, e.pattern,
                  store_status_name(e.status), why);
        free(why);
    } else if (queued) {
        sb_printf(&sb, "queued item %s: DONE, execution %s of '%s': %s\n", id, e.id, e.pattern,
                  store_status_name(e.status));
    } else {
        sb_printf(&sb, "execution %s of '%s': %s\n", e.id, e.pattern,
                  store_status_name(e.status));
    }
    fwrite(sb.buf, 1, sb.len, c->out);
    sb_free(&sb);
    queue_item_free(&q);
    rc = cmd_exit_of_stored(e.status);
    store_exec_free(&e);
    return rc;
}

const cmd_entry cmd_wait_entry = {
    .name = "wait",
    .summary = "wait for an execution another process runs to end (wait_for_completion)",
    .usage = wait_usage,
    .exec = cmd_wait,
};
