/* The history commands over the store: `ndf runs` (executions, newest
 * first), `ndf status [ID]` (one execution, its steps and sub-patterns),
 * `ndf logs ID [STEP]` (captured output), `ndf backup` and `ndf restore`.
 * --json outputs are documented in ndf(1). */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ndf/sdk.h>

#include "app/runtime.h"
#include "base/util.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "conf/config.h"
#include "exec/record.h"
#include "store/history.h"

/* ---- shared ---- */

static int fail(cmd_ctx *c, int status)
{
    cmd_error(c, "%s\n", err_msg());
    return exit_code_for(status);
}

/* Parses the options of a command that takes only --help (and `extra`, an
 * option id handled by setting *flag).  Returns -1 to go on, else the exit
 * code. */
static int parse_simple(cmd_ctx *c, opt_parser *p, int argc, char **argv, const opt_spec *opts,
                        int extra, int *flag)
{
    int o;
    opt_init(p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(p)) != OPT_END) {
        if (o == 'h')
            return cmd_help(c);
        if (extra && o == extra) {
            *flag = 1;
            continue;
        }
        return cmd_bad_usage(c);
    }
    return -1;
}

static void utc(char *buf, size_t n, double t)
{
    buf[0] = 0;
    if (!(t > 0 && t < 253402300800.0))
        return;
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The summary fields of an execution as JSON members (no braces). */
static void exec_json(strbuf *sb, const store_exec *e)
{
    sb_puts(sb, "\"id\":");
    sb_json_str(sb, e->id);
    sb_puts(sb, ",\"pattern\":");
    sb_json_str(sb, e->pattern);
    sb_puts(sb, ",\"status\":");
    sb_json_str(sb, store_status_name(e->status));
    sb_puts(sb, ",\"origin\":");
    sb_json_str(sb, store_origin_name(e->origin));
    sb_puts(sb, ",\"start\":");
    sb_json_num(sb, e->start, 0);
    sb_puts(sb, ",\"end\":");
    if (e->end > 0)
        sb_json_num(sb, e->end, 0);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"duration\":");
    sb_json_num(sb, e->duration, 0);
    sb_puts(sb, ",\"host\":");
    sb_json_str(sb, e->host);
    sb_printf(sb, ",\"pid\":%ld,\"parent_id\":", e->pid);
    sb_json_str(sb, e->parent_id);
    sb_puts(sb, ",\"redrive_of\":");
    sb_json_str(sb, e->redrive_of);
    sb_puts(sb, ",\"domain\":");
    sb_json_str(sb, e->domain);
    sb_puts(sb, ",\"message\":");
    sb_json_str(sb, e->message);
    sb_puts(sb, ",\"fallback_from\":");
    sb_json_str(sb, e->fallback_from);
    sb_puts(sb, ",\"fallback_cause\":");
    sb_json_str(sb, e->fallback_cause);
    /* measured per step (ndf(1), Resource accounting); 0 peak: none measured */
    sb_puts(sb, ",\"cpu\":");
    sb_json_num(sb, e->cpu, 6);
    sb_printf(sb, ",\"peak_rss_kb\":%ld", e->peak_rss_kb);
    sb_puts(sb, ",\"context\":");
    cJSON *ctx = e->context ? cJSON_Parse(e->context) : NULL;
    if (ctx)
        sb_puts(sb, e->context);
    else
        sb_json_str(sb, e->context);
    cJSON_Delete(ctx);
    sb_puts(sb, ",\"plugins\":");
    cJSON *pl = e->plugins ? cJSON_Parse(e->plugins) : NULL;
    if (pl)
        sb_puts(sb, e->plugins);
    else
        sb_json_str(sb, e->plugins);
    cJSON_Delete(pl);
}

/* "sequential (plugin sequential 1.0, sha256 0123456789ab)" from an
 * execution's plugins JSON into `buf`; "" when it says nothing. */
static void plugins_text(char *buf, size_t n, const char *json)
{
    buf[0] = 0;
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "plugin");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "sha256");
    if (cJSON_IsString(t))
        snprintf(buf, n, "%s (plugin %s %s, sha256 %.12s)", t->valuestring,
                 cJSON_IsString(p) ? p->valuestring : "?", cJSON_IsString(v) ? v->valuestring : "?",
                 cJSON_IsString(h) ? h->valuestring : "?");
    cJSON_Delete(j);
}

/* --since: seconds since the epoch, an ISO date or time (UTC), or an age
 * such as 30s, 15m, 2h or 7d.  Returns 0 and *out, or -1. */
static int parse_since(const char *arg, double now, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (!errno && end != arg && v >= 0 && isfinite(v)) {
        double unit = 0;
        if (!*end)
            unit = -1; /* plain number: epoch seconds */
        else if (!strcmp(end, "s"))
            unit = 1;
        else if (!strcmp(end, "m"))
            unit = 60;
        else if (!strcmp(end, "h"))
            unit = 3600;
        else if (!strcmp(end, "d"))
            unit = 86400;
        if (unit < 0) {
            *out = v;
            return 0;
        }
        if (unit > 0) {
            *out = now - v * unit;
            return 0;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(arg, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) {
        memset(&tm, 0, sizeof tm);
        rest = strptime(arg, "%Y-%m-%d", &tm);
    }
    if (!rest || (*rest && strcmp(rest, "Z") != 0))
        return -1;
    *out = (double)timegm(&tm);
    return 0;
}

/* ---- ndf runs ---- */

static const char runs_usage[] =
    "Usage: ndf runs [PATTERN] [--all] [--status S] [--origin O] [--since TIME]\n"
    "                [--limit N] [--json]\n"
    "\n"
    "Lists kept executions, newest first: id, pattern, status, start (UTC),\n"
    "duration, host and how it was started (run, batch, ctl, delegate,\n"
    "redrive, external, queue).  Only top-level executions are listed, so the first\n"
    "is the last run; the sub-pattern executions of a meta pattern are listed\n"
    "with --all, or when PATTERN names their pattern.\n"
    "\n"
    "  -a, --all         sub-pattern executions too\n"
    "  -s, --status S    RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED,\n"
    "                    REFUSED, ROLLED_BACK or CRASHED\n"
    "  -o, --origin O    run, batch, ctl, delegate, redrive, external or queue\n"
    "  --since TIME      started at or after TIME: epoch seconds, 2024-05-01,\n"
    "                    2024-05-01T12:00:00Z, or an age: 30m, 2h, 7d\n"
    "  -n, --limit N     at most N (default 50)\n"
    "  --json            one JSON array (see ndf(1))\n"
    "  -h, --help        show this help\n";

static int cmd_runs(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {
        {"status", 's', OPT_REQUIRED, 's'}, {"since", 0, OPT_REQUIRED, 'S'},
        {"limit", 'n', OPT_REQUIRED, 'n'},  {"json", 0, OPT_NONE, 'j'},
        {"all", 'a', OPT_NONE, 'a'},        {"help", 'h', OPT_NONE, 'h'},
        {"origin", 'o', OPT_REQUIRED, 'o'}, {0}};
    store_query q = {NULL, -1, 0, 50, 0, NULL};
    int json = 0, all = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 's': {
            store_status st;
            if (store_status_parse(p.arg, &st) != 0) {
                cmd_error(c, "--status: unknown status '%s'\n", p.arg);
                return EXIT_USAGE;
            }
            q.status = (int)st;
            break;
        }
        case 'o': {
            store_origin so;
            if (store_origin_parse(p.arg, &so) != 0) {
                char *safe = term_safe(p.arg);
                cmd_error(c, "--origin: unknown origin '%s' (run, batch, ctl, delegate, redrive, "
                             "external or queue)\n",
                          safe);
                free(safe);
                return EXIT_USAGE;
            }
            q.origin = store_origin_name(so);
            break;
        }
        case 'S':
            if (parse_since(p.arg, now_wall(), &q.since) != 0) {
                cmd_error(c, "--since: not a time or an age: '%s'\n", p.arg);
                return EXIT_USAGE;
            }
            break;
        case 'n': {
            char *end;
            long v = strtol(p.arg, &end, 10);
            if (*end || end == p.arg || v < 1 || v > 1000000) {
                cmd_error(c, "--limit: not a number 1..1000000: '%s'\n", p.arg);
                return EXIT_USAGE;
            }
            q.limit = (size_t)v;
            break;
        }
        case 'j': json = 1; break;
        case 'a': all = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands > 1) {
        cmd_error(c, "too many arguments\n");
        return EXIT_USAGE;
    }
    if (p.noperands)
        q.pattern = p.operands[0];
    /* a pattern named is asked for wherever it ran */
    q.top = !all && !q.pattern;
    int rc;
    store *s = cmd_open_store(c, RT_CONFIG, &rc);
    if (!s)
        return rc;
    store_exec *v;
    size_t n;
    int st = store_runs(s, &q, &v, &n);
    if (st)
        return fail(c, st);
    strbuf sb;
    sb_init(&sb);
    if (json) {
        sb_puts(&sb, "[");
        for (size_t i = 0; i < n; i++) {
            sb_puts(&sb, i ? ",{" : "{");
            exec_json(&sb, &v[i]);
            sb_puts(&sb, "}");
        }
        sb_puts(&sb, "]\n");
    } else if (n) {
        sb_printf(&sb, "%-40s %-24s %-11s %-20s %10s %-8s %s\n", "ID", "PATTERN", "STATUS",
                  "STARTED", "DURATION", "ORIGIN", "HOST");
        for (size_t i = 0; i < n; i++) {
            char when[32];
            utc(when, sizeof when, v[i].start);
            sb_printf(&sb, "%-40s %-24s %-11s %-20s %9.3fs %-8s %s\n", v[i].id, v[i].pattern,
                      store_status_name(v[i].status), when, v[i].duration,
                      store_origin_name(v[i].origin), v[i].host ? v[i].host : "");
        }
    } else if (c->verbosity >= 0) {
        cmd_error(c, "no execution matches\n");
    }
    fwrite(sb.buf ? sb.buf : "", 1, sb.len, c->out);
    sb_free(&sb);
    store_exec_array_free(v, n);
    return EXIT_OK;
}

/* ---- ndf status ---- */

static const char *kind_name(int k)
{
    return node_kind_name((ndf_node_kind)k);
}

/* A node's metrics as stored (a JSON object of numbers), parsed; NULL
 * when it has none or the column does not hold such an object. */
static cJSON *node_metrics(const store_node *n)
{
    cJSON *j = n->metrics ? cJSON_Parse(n->metrics) : NULL;
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

/* Under a node's line in `status`: what it answered (its first line, all
 * of what the store kept with -v) and the figures it reported. */
static void node_result_text(FILE *out, int indent, const store_node *n, int verbose)
{
    if (n->result && verbose) {
        /* all of what the store kept, line by line */
        fprintf(out, "%*sresult:\n", indent, "");
        for (const char *p = n->result; *p;) {
            size_t k = strcspn(p, "\n");
            char *line = xmalloc(k + 1);
            memcpy(line, p, k);
            line[k] = '\0';
            char *m = term_safe(line);
            fprintf(out, "%*s%s\n", indent + 2, "", m);
            free(m);
            free(line);
            p += k + (p[k] == '\n');
        }
        if (strlen(n->result) < n->result_len)
            fprintf(out, "%*s... (%zu of %zu bytes kept)\n", indent + 2, "", strlen(n->result),
                    n->result_len);
    } else if (n->result) {
        /* its first line, at most 160 bytes cut on a character boundary */
        size_t show = strcspn(n->result, "\n");
        if (show > 160) {
            show = 160;
            while (show && ((unsigned char)n->result[show] & 0xc0) == 0x80)
                show--;
        }
        char *part = xmalloc(show + 1);
        memcpy(part, n->result, show);
        part[show] = '\0';
        char *m = term_safe(part);
        free(part);
        fprintf(out, "%*sresult: %s", indent, "", m);
        free(m);
        if (show < n->result_len)
            fprintf(out, " ... (%zu of %zu bytes; -v shows %s)", show, n->result_len,
                    strlen(n->result) < n->result_len ? "what is kept" : "all");
        fputc('\n', out);
    }
    /* what the step reported (usage:), then what ndf measured of it
     * (measured:, the "ndf." names a step cannot set) */
    cJSON *j = node_metrics(n);
    for (int host = 0; host < 2; host++) {
        const cJSON *c;
        int first = 1;
        cJSON_ArrayForEach(c, j)
        {
            if (!cJSON_IsNumber(c) || (strncmp(c->string, "ndf.", 4) == 0) != host)
                continue;
            char *name = term_safe(c->string);
            if (first)
                fprintf(out, "%*s%s: ", indent, "", host ? "measured" : "usage");
            fprintf(out, "%s%s %.10g", first ? "" : ", ", name, c->valuedouble);
            free(name);
            first = 0;
        }
        if (!first)
            fputc('\n', out);
    }
    cJSON_Delete(j);
}


/* ---- reading a kept output piece by piece ---- */

/* The newest `cap` bytes of an output seen so far, and its newlines. */
typedef struct window {
    char *buf;
    size_t len, cap;
    uint64_t lines; /* newlines before the window */
    uint64_t gone;  /* bytes before the window */
    char before;    /* the byte just before it */
} window;

static void window_drop(window *w, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w->lines += p[i] == '\n';
    if (n) {
        w->gone += n;
        w->before = p[n - 1];
    }
}

static int window_piece(void *arg, const char *buf, size_t n)
{
    window *w = arg;
    if (n >= w->cap) {
        window_drop(w, w->buf, w->len);
        window_drop(w, buf, n - w->cap);
        memcpy(w->buf, buf + n - w->cap, w->cap);
        w->len = w->cap;
        return NDF_OK;
    }
    if (w->len + n > w->cap) {
        size_t drop = w->len + n - w->cap;
        window_drop(w, w->buf, drop);
        memmove(w->buf, w->buf + drop, w->len - drop);
        w->len -= drop;
    }
    memcpy(w->buf + w->len, buf, n);
    w->len += n;
    return NDF_OK;
}

/* What output_tail() prints as it reads with `all`: every line after
 * `indent` spaces and "| ", control characters as ?, the newlines that
 * end the output left out. */
typedef struct lines_out {
    FILE *out;
    int indent, bol;
    size_t pending; /* newlines not printed yet */
} lines_out;

static int lines_piece(void *arg, const char *buf, size_t n)
{
    lines_out *l = arg;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n') {
            l->pending++;
            continue;
        }
        for (; l->pending; l->pending--) {
            if (l->bol)
                fprintf(l->out, "%*s| ", l->indent, "");
            fputc('\n', l->out);
            l->bol = 1;
        }
        if (l->bol)
            fprintf(l->out, "%*s| ", l->indent, "");
        l->bol = 0;
        fputc(ch < 0x20 && ch != '\t' ? '?' : ch == 0x7f ? '?' : ch, l->out);
    }
    return ferror(l->out) ? err_set(NDF_ERR_IO, "cannot write the output: %s", strerror(errno))
                          : NDF_OK;
}

/* Under a failed step in `status`: its stream `k`, all of it (`all`, read
 * and printed piece by piece) or its last CMD_TAIL_LINES lines (from its
 * newest 64 KiB, the earlier lines counted as they go by), so that a
 * 64 MiB output is never held. */
static void output_tail(FILE *out, store *s, const char *id, const char *path, int k, int indent,
                        int all, const char *more)
{
    if (all) {
        lines_out l = {out, indent, 1, 0};
        if (store_output_each(s, id, path, k, 0, lines_piece, &l, NULL, NULL) == NDF_OK && !l.bol)
            fputc('\n', out);
        return;
    }
    window w = {xmalloc(64 * 1024), 0, 64 * 1024, 0, 0, 0};
    if (store_output_each(s, id, path, k, 0, window_piece, &w, NULL, NULL) == NDF_OK) {
        /* from the first whole line of the window, unless one line fills it */
        size_t from = 0;
        if (w.gone && w.before != '\n') {
            const char *nl = memchr(w.buf, '\n', w.len);
            if (nl && (size_t)(nl - w.buf) + 1 < w.len) {
                from = (size_t)(nl - w.buf) + 1;
                w.lines++;
            }
        }
        cmd_output_tail_after(out, indent, w.buf + from, w.len - from, w.lines, more);
    }
    free(w.buf);
}

static void status_text(FILE *out, store *s, const store_exec *e, const store_exec *kids,
                        size_t nkids, int verbose)
{
    char when[32];
    utc(when, sizeof when, e->start);
    fprintf(out, "execution %s: %s in %.3fs\n", e->id, store_status_name(e->status), e->duration);
    fprintf(out, "pattern %s, started %s by %s on %s (pid %ld)\n", e->pattern, when,
            store_origin_name(e->origin), e->host ? e->host : "?", e->pid);
    char ran[256];
    plugins_text(ran, sizeof ran, e->plugins);
    if (*ran)
        fprintf(out, "type %s\n", ran);
    if (e->parent_id)
        fprintf(out, "sub-pattern of %s\n", e->parent_id);
    if (e->redrive_of)
        fprintf(out, "redrive of %s\n", e->redrive_of);
    if (e->fallback_from)
        fprintf(out, "fallback from %s (cause: %s)\n", e->fallback_from,
                e->fallback_cause ? e->fallback_cause : "?");
    if (e->message) {
        char *m = term_safe(e->message);
        /* a rolled-back or succeeded execution's message is no error */
        fprintf(out, "%s: %s\n",
                e->status == STORE_ROLLED_BACK || e->status == STORE_SUCCEEDED ? "message"
                                                                                : "error",
                m);
        free(m);
    }
    if (e->cpu > 0 || e->peak_rss_kb > 0) {
        fprintf(out, "used: cpu %.3fs", e->cpu);
        if (e->peak_rss_kb > 0)
            fprintf(out, ", largest process peak %.1f MiB", (double)e->peak_rss_kb / 1024.0);
        fputs(" (measured per step: see ndf(1), Resource accounting)\n", out);
    }
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *n = &e->nodes[i];
        int depth = 0;
        const char *name = n->path;
        for (const char *q = n->path; *q; q++)
            if (*q == '/') {
                depth++;
                name = q + 1;
            }
        if (*n->path)
            depth++;
        fprintf(out, "%*s%-11s %s %s", depth * 2, "", state_name((ndf_state)n->state),
                kind_name(n->kind), *n->path ? name : e->pattern);
        if (n->start > 0 && n->end >= n->start)
            fprintf(out, "  %.3fs", n->end - n->start);
        if (n->message) {
            char *m = term_safe(n->message);
            fprintf(out, "  (%s)", m);
            free(m);
        }
        size_t bytes = n->outlen[0] + n->outlen[1] + n->outlen[2];
        if (bytes)
            fprintf(out, "  [%zu bytes of output]", bytes);
        fputc('\n', out);
        node_result_text(out, depth * 2 + 2, n, verbose);
        /* why a failed step failed is usually on its stderr: its tail (all
         * of its output with -v) under the line */
        size_t pl = strlen(n->path);
        int leaf = i + 1 == e->nnodes || strncmp(e->nodes[i + 1].path, n->path, pl) != 0 ||
                   e->nodes[i + 1].path[pl] != '/';
        if (leaf && *n->path && (n->state == NDF_STATE_FAILED || n->state == NDF_STATE_TIMED_OUT))
            for (int k = verbose ? 0 : 1; k < 2; k++) {
                if (!n->outlen[k])
                    continue;
                if (verbose)
                    fprintf(out, "%*s%s:\n", depth * 2 + 2, "", k ? "stderr" : "stdout");
                char more[200];
                snprintf(more, sizeof more, "ndf logs %s %s shows all", e->id, n->path);
                output_tail(out, s, e->id, n->path, k, depth * 2 + 2, verbose, more);
            }
    }
    for (size_t i = 0; i < nkids; i++)
        fprintf(out, "sub-pattern execution %s: %s %s\n", kids[i].id, kids[i].pattern,
                store_status_name(kids[i].status));
}

/* The bytes each result and stream of `e` may put in its JSON: at most
 * RECORD_JSON_OUTPUT, and, as record_to_json does, less when they would
 * add up to more than RECORD_JSON_TOTAL (the largest cut to one share,
 * the smaller ones whole). */
static size_t json_share(const store_exec *e)
{
    size_t *v = xcalloc(e->nnodes * (STORE_NSTREAMS + 1) + 1, sizeof *v), nv = 0, total = 0;
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *n = &e->nodes[i];
        size_t parts[STORE_NSTREAMS + 1] = {n->result ? strlen(n->result) : 0};
        for (int k = 0; k < STORE_NSTREAMS; k++)
            parts[k + 1] = n->outlen[k];
        for (int k = 0; k <= STORE_NSTREAMS; k++)
            if (parts[k]) {
                v[nv] = parts[k] < RECORD_JSON_OUTPUT ? parts[k] : RECORD_JSON_OUTPUT;
                total += v[nv++];
            }
    }
    size_t c = record_json_share(v, nv, total);
    free(v);
    return c ? c : 1;
}

static void status_json(strbuf *sb, store *s, const store_exec *e, const store_exec *kids,
                        size_t nkids)
{
    static const char *const streams[] = {"stdout", "stderr", "log"};
    size_t share = json_share(e);
    uint64_t omitted = 0;
    sb_puts(sb, "{");
    exec_json(sb, e);
    sb_puts(sb, ",\"nodes\":[");
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *n = &e->nodes[i];
        sb_puts(sb, i ? ",{\"path\":" : "{\"path\":");
        sb_json_str(sb, n->path);
        sb_puts(sb, ",\"kind\":");
        sb_json_str(sb, kind_name(n->kind));
        sb_puts(sb, ",\"state\":");
        sb_json_str(sb, state_name((ndf_state)n->state));
        sb_puts(sb, ",\"start\":");
        sb_json_num(sb, n->start, 0);
        sb_puts(sb, ",\"end\":");
        sb_json_num(sb, n->end, 0);
        sb_puts(sb, ",\"message\":");
        sb_json_str(sb, n->message);
        if (n->result) {
            size_t rl = strlen(n->result), keep = rl < share ? rl : share;
            sb_puts(sb, ",\"result\":");
            sb_json_strn(sb, n->result, keep);
            omitted += (rl < RECORD_JSON_OUTPUT ? rl : RECORD_JSON_OUTPUT) - keep;
            if (n->result_len > keep)
                sb_printf(sb, ",\"result_length\":%zu", n->result_len > rl ? n->result_len : rl);
        }
        cJSON *mj = node_metrics(n);
        if (mj) {
            const cJSON *c;
            int first = 1;
            sb_puts(sb, ",\"metrics\":{");
            cJSON_ArrayForEach(c, mj)
            {
                if (!cJSON_IsNumber(c))
                    continue;
                sb_puts(sb, first ? "" : ",");
                sb_json_str(sb, c->string);
                sb_puts(sb, ":");
                sb_json_num(sb, c->valuedouble, 0);
                first = 0;
            }
            sb_puts(sb, "}");
            cJSON_Delete(mj);
        }
        /* the newest RECORD_JSON_OUTPUT bytes of the captured output, as
         * the live record gives them: escaping takes up to six bytes for
         * one, which must not turn a 64 MiB output into 400 MB of JSON
         * (`ndf logs` prints all of it) */
        for (int k = 0; k < STORE_NSTREAMS; k++) {
            size_t len = 0;
            uint64_t dropped = 0;
            if (!n->outlen[k])
                continue;
            window w = {xmalloc(share), 0, share, 0, 0, 0};
            if (store_output_each(s, e->id, n->path, k, -(int64_t)share, window_piece, &w, &len,
                                  &dropped) == NDF_OK) {
                size_t skip = len - w.len;
                omitted += (len < RECORD_JSON_OUTPUT ? len : RECORD_JSON_OUTPUT) - w.len;
                sb_printf(sb, ",\"%s\":", streams[k]);
                sb_json_strn(sb, w.buf, w.len);
                if (dropped || skip)
                    sb_printf(sb, ",\"%s_truncated\":%llu", streams[k],
                              (unsigned long long)(dropped + skip));
            }
            free(w.buf);
        }
        sb_puts(sb, "}");
    }
    sb_puts(sb, "]");
    if (omitted)
        sb_printf(sb, ",\"output_omitted\":%llu", (unsigned long long)omitted);
    sb_puts(sb, ",\"sub_executions\":[");
    for (size_t i = 0; i < nkids; i++) {
        sb_puts(sb, i ? ",{" : "{");
        exec_json(sb, &kids[i]);
        sb_puts(sb, "}");
    }
    sb_puts(sb, "]}\n");
}

static const char status_usage[] =
    "Usage: ndf status [ID] [--json]\n"
    "\n"
    "Shows a kept execution (the newest top-level one when no ID is\n"
    "given; a sub-pattern execution by its ID), however it was\n"
    "started: its status, timing, every step, task and phase, and the\n"
    "sub-pattern executions it ran.\n"
    "\n"
    "  --json      print JSON (see ndf(1))\n"
    "  -h, --help  show this help\n";

static int cmd_status(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"json", 0, OPT_NONE, 'j'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    int json = 0;
    opt_parser p;
    int rc = parse_simple(c, &p, argc, argv, opts, 'j', &json);
    if (rc >= 0)
        return rc;
    if (p.noperands > 1) {
        cmd_error(c, "expected at most one execution ID\n");
        return EXIT_USAGE;
    }
    store *s = cmd_open_store(c, RT_CONFIG, &rc);
    if (!s)
        return rc;
    char *id = p.noperands ? xstrdup(p.operands[0]) : NULL;
    if (!id) {
        store_exec *v;
        size_t n;
        /* the last run: a top-level one, not a meta pattern's last sub-run */
        store_query q = {NULL, -1, 0, 1, 1, NULL};
        int st = store_runs(s, &q, &v, &n);
        if (st)
            return fail(c, st);
        if (!n) {
            free(v);
            cmd_error(c, "no execution recorded yet in %s\n", store_path(s));
            return EXIT_NOT_FOUND;
        }
        id = xstrdup(v[0].id);
        store_exec_array_free(v, n);
    }
    store_exec e;
    int st = store_get(s, id, &e);
    free(id);
    if (st)
        return fail(c, st);
    store_exec *kids;
    size_t nkids;
    st = store_children(s, e.id, &kids, &nkids);
    if (st) {
        store_exec_free(&e);
        return fail(c, st);
    }
    if (json) {
        strbuf sb;
        sb_init(&sb);
        status_json(&sb, s, &e, kids, nkids);
        fwrite(sb.buf, 1, sb.len, c->out);
        sb_free(&sb);
    } else {
        status_text(c->out, s, &e, kids, nkids, c->verbosity > 0);
    }
    store_exec_array_free(kids, nkids);
    store_exec_free(&e);
    return EXIT_OK;
}

/* ---- ndf logs ---- */

static const char logs_usage[] =
    "Usage: ndf logs ID [STEP] [--stream stdout|stderr|log] [--follow]\n"
    "\n"
    "Prints the output captured from the steps of execution ID (the newest\n"
    "output_limit bytes of each stream per step, 64 KiB unless the step\n"
    "sets it, as stored): of every node that wrote\n"
    "any, each under a header, or of STEP alone (its path in 'ndf status',\n"
    "e.g. validate or phase1/task2) without headers.\n"
    "\n"
    "  --stream S  only stdout, stderr or log lines\n"
    "  -f, --follow  print output as it arrives while the execution is RUNNING\n"
    "                (its progress is stored every 0.25 s), until it ends;\n"
    "                then exits as its run did (1 when it failed or its\n"
    "                process died: crash recovery runs once a second)\n"
    "  -h, --help  show this help\n";

/* What print_stream() writes as the store hands it out. */
typedef struct stream_out {
    FILE *out;
    const char *path;
    int k, header, started;
    char last; /* the last byte written */
    const size_t *len;
    const uint64_t *dropped;
} stream_out;

static int stream_piece(void *arg, const char *buf, size_t n)
{
    static const char *const names[] = {"stdout", "stderr", "log"};
    stream_out *o = arg;
    if (!o->started && o->header)
        fprintf(o->out, "==> %s (%s)%s <==\n", *o->path ? o->path : "(pattern)", names[o->k],
                *o->dropped ? " [older output dropped]" : "");
    o->started = 1;
    if (fwrite(buf, 1, n, o->out) != n)
        return err_set(NDF_ERR_IO, "cannot write the output: %s", strerror(errno));
    o->last = buf[n - 1];
    return NDF_OK;
}

/* Prints a kept stream as it is read from the store, a piece at a time:
 * `ndf logs` of a 64 MiB output holds one piece, not the output. */
static int print_stream(FILE *out, store *s, const char *id, const char *path, int k, int header)
{
    size_t len = 0;
    uint64_t dropped = 0;
    stream_out o = {out, path, k, header, 0, '\n', &len, &dropped};
    int st = store_output_each(s, id, path, k, 0, stream_piece, &o, &len, &dropped);
    if (o.started && o.last != '\n')
        fputc('\n', out);
    return st;
}

static int has_node(const store_exec *e, const char *path)
{
    for (size_t i = 0; i < e->nnodes; i++)
        if (!strcmp(e->nodes[i].path, path))
            return 1;
    return 0;
}

/* How much of one node's stream --follow has printed: bytes counted from
 * the first the node ever wrote (kept + dropped before them). */
typedef struct followed {
    char *path;
    int stream;
    uint64_t printed;
} followed;

/* One follow_stream() read: what is new is printed as the pieces come. */
typedef struct follow_out {
    cmd_ctx *c;
    followed *f;
    int header;
    const followed **last;
    int *open;
    const size_t *len;
    const uint64_t *dropped;
    int begun, news;
    uint64_t pos;  /* kept bytes handed out so far */
    uint64_t from; /* the first kept byte not printed yet */
} follow_out;

/* Once per read, before the first new byte: the header or the note. */
static void follow_begin(follow_out *o)
{
    static const char *const names[] = {"stdout", "stderr", "log"};
    followed *f = o->f;
    o->begun = 1;
    uint64_t total = *o->dropped + *o->len;
    if (total <= f->printed)
        return;
    o->news = 1;
    uint64_t lost = 0; /* bytes that went before we saw them */
    if (f->printed < *o->dropped)
        lost = *o->dropped - f->printed;
    else
        o->from = f->printed - *o->dropped;
    /* a gap is never silent: a new header says so, or (one STEP, no
     * headers, the output kept raw) a note on standard error */
    if (o->header && (*o->last != f || lost))
        fprintf(o->c->out, "%s==> %s (%s)%s <==\n", *o->open ? "\n" : "",
                *f->path ? f->path : "(pattern)", names[f->stream],
                lost ? " [older output dropped]" : "");
    else if (lost && f->printed > 0)
        cmd_error(o->c, "%s (%s): %llu bytes dropped before they could be followed\n",
                  *f->path ? f->path : "(pattern)", names[f->stream], (unsigned long long)lost);
}

static int follow_piece(void *arg, const char *buf, size_t n)
{
    follow_out *o = arg;
    if (!o->begun)
        follow_begin(o);
    uint64_t at = o->pos;
    o->pos += n;
    if (!o->news || o->pos <= o->from)
        return NDF_OK;
    size_t skip = at >= o->from ? 0 : (size_t)(o->from - at);
    fwrite(buf + skip, 1, n - skip, o->c->out);
    *o->open = buf[n - 1] != '\n';
    return NDF_OK;
}

/* Prints what node `path` wrote to stream `k` since *f, with a header
 * when `header` and the stream differs from the last one printed
 * (*last), as it is read from the store.  *open: what was printed last
 * ends mid-line (a header then starts a line of its own). */
static int follow_stream(cmd_ctx *c, store *s, const char *id, followed *f, int header,
                         const followed **last, int *open)
{
    size_t len = 0;
    uint64_t dropped = 0;
    follow_out o = {c, f, header, last, open, &len, &dropped, 0, 0, 0, 0};
    int st = store_output_each(s, id, f->path, f->stream, 0, follow_piece, &o, &len, &dropped);
    if (st)
        return st == NDF_ERR_NOT_FOUND ? NDF_OK : st;
    if (!o.begun)
        follow_begin(&o);
    if (o.news) {
        f->printed = dropped + len;
        *last = f;
        fflush(c->out);
    }
    return NDF_OK;
}

/* --follow: prints output as the store receives it (the running
 * execution's progress, written while it runs), polling until the
 * execution has ended, then what its final record adds. */
static int follow_logs(cmd_ctx *c, store *s, const char *id, const char *step, int stream)
{
    followed *fs = NULL;
    size_t nf = 0;
    const followed *last = NULL;
    int st, running, seen_step = 0, midline = 0, final = STORE_RUNNING;
    double recover_at = 0;
    char *pat = NULL, *why = NULL;
    do {
        store_exec e;
        if ((st = store_get(s, id, &e)))
            break;
        running = e.status == STORE_RUNNING;
        if (!running) {
            final = e.status;
            pat = xstrdup(e.pattern ? e.pattern : "");
            why = e.message ? xstrdup(e.message) : NULL;
        }
        for (size_t i = 0; i < e.nnodes && !st; i++) {
            const store_node *n = &e.nodes[i];
            if (step && strcmp(n->path, step) != 0)
                continue;
            seen_step = 1;
            for (int k = 0; k < STORE_NSTREAMS && !st; k++) {
                if ((stream >= 0 && stream != k) || !(n->outlen[k] || n->dropped[k]))
                    continue;
                size_t j;
                for (j = 0; j < nf && (fs[j].stream != k || strcmp(fs[j].path, n->path)); j++)
                    ;
                if (j == nf) {
                    fs = xrealloc(fs, (nf + 1) * sizeof *fs);
                    fs[nf++] = (followed){.path = xstrdup(n->path), .stream = k};
                }
                st = follow_stream(c, s, id, &fs[j], !step, &last, &midline);
            }
        }
        store_exec_free(&e);
        if (!st && running) {
            /* its process may have died (SIGKILL): recovery ends it
             * CRASHED, and the next read prints what it left */
            cmd_recover_tick(s, &recover_at);
            usleep(200000);
        }
    } while (!st && running);
    /* the step may appear only once it starts: unknown only at the end */
    if (!st && step && !seen_step) {
        store_exec e;
        if (!(st = store_get(s, id, &e))) {
            if (!has_node(&e, step))
                st = err_set(NDF_ERR_NOT_FOUND,
                             "execution %s has no step named '%s' (see 'ndf status %s')", id,
                             step, id);
            store_exec_free(&e);
        }
    }
    for (size_t j = 0; j < nf; j++)
        free(fs[j].path);
    free(fs);
    /* the output is on stdout; how it ended, when not well, on stderr,
     * and in the exit code, as `ndf wait` gives it */
    if (!st && final != STORE_SUCCEEDED) {
        char *safe = why ? term_safe(why) : NULL;
        cmd_error(c, "execution %s of '%s' ended %s%s%s\n", id, pat,
                  store_status_name((store_status)final), safe ? ": " : "", safe ? safe : "");
        free(safe);
    }
    free(pat);
    free(why);
    return st ? fail(c, st) : cmd_exit_of_stored(final);
}

static int cmd_logs(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"stream", 0, OPT_REQUIRED, 's'},
                                    {"follow", 'f', OPT_NONE, 'f'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    int stream = -1, follow = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 's':
            stream = !strcmp(p.arg, "stdout")   ? STORE_STDOUT
                     : !strcmp(p.arg, "stderr") ? STORE_STDERR
                     : !strcmp(p.arg, "log")    ? STORE_LOG
                                                : -2;
            if (stream == -2) {
                cmd_error(c, "--stream: stdout, stderr or log, not '%s'\n", p.arg);
                return EXIT_USAGE;
            }
            break;
        case 'f': follow = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands < 1 || p.noperands > 2) {
        cmd_error(c, "expected an execution ID and at most one STEP\n");
        return EXIT_USAGE;
    }
    const char *id = p.operands[0];
    const char *step = p.noperands == 2 ? p.operands[1] : NULL;
    int rc;
    store *s = cmd_open_store(c, RT_CONFIG, &rc);
    if (!s)
        return rc;
    store_exec e;
    int st;
    if (follow)
        return follow_logs(c, s, id, step, stream);
    if ((st = store_get(s, id, &e)))
        return fail(c, st);
    for (size_t i = 0; i < e.nnodes && !st; i++) {
        const store_node *n = &e.nodes[i];
        if (step && strcmp(n->path, step) != 0)
            continue;
        for (int k = 0; k < STORE_NSTREAMS && !st; k++)
            if ((stream < 0 || stream == k) && n->outlen[k])
                st = print_stream(c->out, s, id, n->path, k, !step);
    }
    if (!st && step && !has_node(&e, step))
        st = err_set(NDF_ERR_NOT_FOUND, "execution %s has no step named '%s' (see 'ndf status %s')",
                     id, step, id);
    store_exec_free(&e);
    return st ? fail(c, st) : EXIT_OK;
}

/* ---- ndf backup, ndf restore ---- */

static const char backup_usage[] =
    "Usage: ndf backup\n"
    "\n"
    "Writes a consistent copy of the store (while executions go on) as\n"
    "backups/ndf-TIME.db.gz in the storage directory, keeping the newest\n"
    "storage.backups of them, and prints its path.\n"
    "\n"
    "  -h, --help  show this help\n";

static int cmd_backup(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"help", 'h', OPT_NONE, 'h'}, {0}};
    opt_parser p;
    int rc = parse_simple(c, &p, argc, argv, opts, 0, NULL);
    if (rc >= 0)
        return rc;
    if (p.noperands) {
        cmd_error(c, "too many arguments\n");
        return EXIT_USAGE;
    }
    store *s = cmd_open_store(c, RT_CONFIG, &rc);
    if (!s)
        return rc;
    char *path;
    int st = store_backup(s, &path);
    if (st)
        return fail(c, st);
    fprintf(c->out, "%s\n", path);
    free(path);
    return EXIT_OK;
}

/* 1 when a server answers on the configured socket. */
static int server_running(const char *path)
{
    if (!path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    int up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return up;
}

static const char restore_usage[] =
    "Usage: ndf restore FILE [--force]\n"
    "\n"
    "Replaces the store with backup FILE (from 'ndf backup', gzip or not),\n"
    "after checking it.  A corrupt store is kept aside as ndf.db.corrupt-TIME.\n"
    "Refuses while 'ndf serve' answers on the configured socket.\n"
    "\n"
    "  --force     restore even while a server runs (it sees the restored\n"
    "              contents; executions it finishes meanwhile are lost)\n"
    "  -h, --help  show this help\n";

static int cmd_restore(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"force", 0, OPT_NONE, 'F'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    int force = 0;
    opt_parser p;
    int rc = parse_simple(c, &p, argc, argv, opts, 'F', &force);
    if (rc >= 0)
        return rc;
    if (p.noperands != 1) {
        cmd_error(c, "expected one backup FILE\n");
        return EXIT_USAGE;
    }
    if ((rc = runtime_load(c->rt, RT_CONFIG)))
        return exit_code_for(rc);
    const settings *set = &c->rt->cfg->set;
    if (!force && server_running(set->socket_path)) {
        cmd_error(c,
                  "a server answers on %s and uses the store; stop it first "
                  "(or --force)\n",
                  set->socket_path);
        return EXIT_USAGE;
    }
    store_opts o;
    history_opts(set, &o);
    int st = store_restore(set->storage_path, &o, p.operands[0]);
    if (st)
        return fail(c, st);
    fprintf(c->out, "restored %s into %s/%s\n", p.operands[0], set->storage_path, STORE_DB_NAME);
    return EXIT_OK;
}

const cmd_entry cmd_runs_entry = {
    .name = "runs",
    .summary = "list kept executions, newest first",
    .usage = runs_usage,
    .exec = cmd_runs,
};

const cmd_entry cmd_status_entry = {
    .name = "status",
    .summary = "show an execution's steps, tasks and phases (the newest by default)",
    .usage = status_usage,
    .exec = cmd_status,
};

const cmd_entry cmd_logs_entry = {
    .name = "logs",
    .summary = "print the output captured from an execution's steps",
    .usage = logs_usage,
    .exec = cmd_logs,
};

const cmd_entry cmd_backup_entry = {
    .name = "backup",
    .summary = "write a compressed online backup of the store",
    .usage = backup_usage,
    .exec = cmd_backup,
};

const cmd_entry cmd_restore_entry = {
    .name = "restore",
    .summary = "replace the store with a backup",
    .usage = restore_usage,
    .exec = cmd_restore,
};
