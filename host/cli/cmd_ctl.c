/* `ndf ctl`, the client of `ndf serve`: turns a command line into one JSON
 * request, sends it over the control socket and prints the answer as the
 * one-shot command would (same output, same exit status). */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/delegation.h"
#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "conf/config.h"
#include "model/context.h"
#include "serve/transport.h"
#include "base/util.h"

/* ---- ndf ctl ---- */

static const char ctl_usage[] =
    "Usage: ndf ctl [--socket PATH] VERB [ARGS]\n"
    "\n"
    "Sends one request to a running 'ndf serve' and prints the answer as the\n"
    "one-shot command would (same exit status; 'ndf ctl run' shows no stderr\n"
    "tail under a FAILED step, 'ndf ctl status' prints the live record: see ndf(1)).\n"
    "\n"
    "Verbs:\n"
    "  run PATTERN [context options] [--timeout S] [--force] [--fallback P]\n"
    "      [--async] [--json]\n"
    "                     run a pattern as 'ndf run' does; --async prints the\n"
    "                     execution id at once\n"
    "  delegate [context options] [--policy P] [--seed N] [--max-fallbacks K]\n"
    "      [--timeout S] [--explain] [--json]\n"
    "                     choose, run and fall back as 'ndf delegate' does\n"
    "  status [ID] [--json]\n"
    "                     an execution's live record (default: the latest)\n"
    "  cancel ID          cancel a running execution\n"
    "  rollback ID [--level LEVEL] [--target PHASE] [--json]\n"
    "                     roll back a finished execution (pattern, phase, complete)\n"
    "  wait ID [--timeout S] [--json]\n"
    "                     wait for an execution to end, at most S seconds (it\n"
    "                     goes on running after a timeout: exit 5); then as\n"
    "                     status, exiting as the execution did\n"
    "  redrive ID [--from-start] [--json]\n"
    "                     as 'ndf redrive ID', run by the server\n"
    "  submit PATTERN [context options] [--queue-priority N] [--timeout S] [--json]\n"
    "                     queue an execution for the workers of the shared store\n"
    "                     (as 'ndf submit'); prints its id\n"
    "  drain [--timeout S]\n"
    "                     a worker ('ndf serve --worker') stops claiming, lets\n"
    "                     what it holds finish (at most S seconds: exit 5 when\n"
    "                     some still run), and says what it ran\n"
    "  list, show, similar, analytics, export, plugins, config, record,\n"
    "  reset-stats, cleanup, workers [ARGS]\n"
    "                     as 'ndf VERB ARGS', answered by the server\n"
    "  reload             reload the configuration and plugins (a transaction)\n"
    "  ping               the server's generation and reload counters (JSON)\n"
    "  metrics [--window S] [--textfile FILE.prom [--interval S]]\n"
    "                     'ndf metrics' with the server's live gauges and\n"
    "                     counters; --textfile is written on this side\n"
    "  send               send each line of stdin as a raw request, print answers\n"
    "  shutdown           stop the server as SIGTERM does\n"
    "\n"
    "Options:\n"
    "  --socket PATH      the server's socket (default: server.socket)\n"
    "\n" CTXOPT_HELP "\n"
    "Exit status: as the one-shot command; 9 when no server is listening.\n";

/* One ctl invocation: where the server is, and the sinks to print on. */
typedef struct ctl {
    const char *socket;
    cmd_ctx *c;
    /* > 0: seconds the answer may take, past which the server is taken to
     * be stopped or frozen (drain --timeout); 0: as long as it takes */
    double answer_within;
} ctl;

/* What a drain's answer may take past its --timeout: the server answers
 * at the timeout, after giving back what still runs (no waiting). */
#define DRAIN_ANSWER_MARGIN 5.0

static void send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
}

/* How long an answer may be silent before ctl asks the server, on a second
 * connection, whether it is there: a run or a drain may take long by
 * design, a stopped server never answers.  NDF_CTL_SILENCE (seconds)
 * overrides it. */
#define CTL_SILENCE 10.0

static double ctl_silence(void)
{
    const char *e = getenv("NDF_CTL_SILENCE");
    double v;
    if (e && parse_seconds(e, &v) == 0 && v > 0)
        return v;
    return CTL_SILENCE;
}

/* 1 when the server at `path` answers a ping within `within` seconds. */
static int server_answers(const char *path, double within)
{
    int fd = transport_connect(path);
    if (fd < 0)
        return 0;
    static const char ping[] = "{\"cmd\":\"ping\"}\n";
    send_all(fd, ping, sizeof ping - 1);
    double until = now_mono() + within;
    int answered = 0;
    char buf[4096];
    for (;;) {
        double left = until - now_mono();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int k = poll(&pfd, 1, (int)ceil(fmin(left, 3600) * 1000));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (memchr(buf, '\n', (size_t)n)) {
            answered = 1;
            break;
        }
    }
    close(fd);
    return answered;
}

/* Sends `req` and reads one answer line; NULL (after printing why) when
 * the server is not there, does not answer (exit 5), or the answer is not
 * a JSON object. */
static cJSON *ctl_call(ctl *t, cJSON *req, int *rc)
{
    *rc = EXIT_UNAVAILABLE;
    int fd = transport_connect(t->socket);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            cmd_error(t->c,
                      "no ndf server is listening on %s (start one with 'ndf "
                      "serve')\n",
                      t->socket);
        else
            cmd_error(t->c, "cannot connect to %s: %s\n", t->socket, strerror(e));
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(req);
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; cJSON allocated len + 1 */
    send_all(fd, text, len + 1);
    cJSON_free(text);
    strbuf sb;
    sb_init(&sb);
    char buf[65536];
    double until = t->answer_within > 0 ? now_mono() + t->answer_within : 0;
    double silence = ctl_silence();
    int late = 0, frozen = 0;
    for (;;) {
        if (until <= 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int k = poll(&pfd, 1, (int)ceil(fmin(silence, 3600) * 1000));
            if (k < 0 && errno == EINTR)
                continue;
            if (k == 0) {
                /* silent: waiting on is right only while it answers */
                if (server_answers(t->socket, silence))
                    continue;
                frozen = 1;
                break;
            }
        } else {
            double left = until - now_mono();
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            /* in slices that fit an int of milliseconds */
            int k = left > 0 ? poll(&pfd, 1, (int)ceil(fmin(left, 3600) * 1000)) : 0;
            if (k == 0 && now_mono() < until)
                continue;
            if (k < 0 && errno == EINTR)
                continue;
            if (k == 0) {
                late = 1;
                break;
            }
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        sb_add(&sb, buf, (size_t)n);
        if (memchr(buf, '\n', (size_t)n))
            break;
    }
    close(fd);
    if (frozen) {
        cmd_error(t->c,
                  "the server at %s has not answered for %gs and does not answer a ping: it is "
                  "stopped or frozen (a SIGSTOP, a stalled host); what it holds is taken over "
                  "by other workers when its leases expire\n",
                  t->socket, silence);
        sb_free(&sb);
        *rc = EXIT_TIMEOUT;
        return NULL;
    }
    if (late) {
        cmd_error(t->c,
                  "the server at %s did not answer within %gs: it is stopped or frozen (a "
                  "SIGSTOP, a stalled host); what it holds is taken over by other workers when "
                  "its leases expire\n",
                  t->socket, t->answer_within);
        sb_free(&sb);
        *rc = EXIT_TIMEOUT;
        return NULL;
    }
    if (!sb.len) {
        cmd_error(t->c, "the server at %s closed the connection without an answer\n", t->socket);
        sb_free(&sb);
        return NULL;
    }
    cJSON *resp = cJSON_ParseWithLength(sb.buf, sb.len);
    sb_free(&sb);
    if (!cJSON_IsObject(resp)) {
        cJSON_Delete(resp);
        cmd_error(t->c, "the server's answer is not a JSON object\n");
        *rc = EXIT_IO;
        return NULL;
    }
    *rc = EXIT_OK;
    return resp;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int int_of(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* An error answer: its message on err ("ndf: ctl: VERB: ..."), its exit
 * code; EXIT_OK for an answer that is not one. */
static int ctl_failed(ctl *t, const cJSON *resp)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok")))
        return EXIT_OK;
    const char *e = str_of(resp, "error");
    char *m = term_safe(e ? e : "failed"); /* the server's words, maybe quoting a client */
    cmd_error(t->c, "%s\n", m);
    free(m);
    int rc = int_of(resp, "exit", EXIT_FAILED);
    return rc ? rc : EXIT_FAILED;
}

/* ---- printing records as the one-shot commands do ---- */

static const char *const state_names[] = {"PENDING",   "RUNNING",   "COMPLETED",
                                          "FAILED",    "SKIPPED",   "ROLLED_BACK",
                                          "CANCELLED", "TIMED_OUT", "DEGRADED"};

/* `ndf run` reports, on stderr, each node's final state and a summary line
 * (cmd_run.c: walk, summary); the server sends the finished record. */
static void run_nodes(FILE *err, const cJSON *n, int depth, unsigned *counts)
{
    const char *state = str_of(n, "state");
    if (depth > 0) {
        for (size_t s = 0; state && s < ARRAY_SIZE(state_names); s++)
            if (strcmp(state, state_names[s]) == 0)
                counts[s]++;
        const cJSON *dur = cJSON_GetObjectItemCaseSensitive(n, "duration");
        const char *msg = str_of(n, "message");
        fprintf(err, "%*s%s %s: %s", (depth - 1) * 2, "", str_of(n, "kind"), str_of(n, "name"),
                state ? state : "?");
        if (cJSON_IsNumber(dur))
            fprintf(err, " (%.2fs)", dur->valuedouble);
        if (msg && *msg)
            fprintf(err, ": %s", msg);
        fputc('\n', err);
    }
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(n, "children"))
        run_nodes(err, k, depth + 1, counts);
}

static void run_summary(cmd_ctx *c, const cJSON *j, int failed)
{
    FILE *err = c->err;
    unsigned counts[ARRAY_SIZE(state_names)] = {0};
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(j, "root");
    fprintf(err, "pattern %s: started (execution %s)\n", str_of(root, "name"), str_of(j, "id"));
    run_nodes(err, root, 0, counts);
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(j, "duration");
    const char *status = str_of(j, "status");
    fprintf(err, "pattern %s: %s in %.2fs (execution %s)", str_of(root, "name"),
            failed && status ? status : str_of(root, "state"),
            cJSON_IsNumber(dur) ? dur->valuedouble : 0.0, str_of(j, "id"));
    const char *sep = ": ";
    for (size_t s = 0; s < ARRAY_SIZE(state_names); s++)
        if (counts[s]) {
            fprintf(err, "%s%u %s", sep, counts[s], state_names[s]);
            sep = ", ";
        }
    fputc('\n', err);
    const char *e = str_of(j, "error");
    if (failed && e)
        cmd_error(c, "%s\n", e);
}

/* The server's store, one line: where, which schema, and whether its
 * last write failed (then why and when). */
static void store_health(FILE *out, const cJSON *st)
{
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(st, "path");
    const cJSON *be = cJSON_GetObjectItemCaseSensitive(st, "backend");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(st, "schema");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(st, "state");
    const cJSON *le = cJSON_GetObjectItemCaseSensitive(st, "last_error");
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(st, "last_error_time");
    if (!cJSON_IsString(path) || !cJSON_IsString(state))
        return;
    char *p = term_safe(path->valuestring);
    fprintf(out, "server store: %s (%s, schema %.0f): %s",
            p, cJSON_IsString(be) ? be->valuestring : "?",
            cJSON_IsNumber(schema) ? schema->valuedouble : 0, state->valuestring);
    free(p);
    if (cJSON_IsString(le) && *le->valuestring) {
        char *m = term_safe(le->valuestring);
        char when[32] = "";
        if (cJSON_IsNumber(lt)) {
            time_t t = (time_t)lt->valuedouble;
            struct tm tm;
            if (gmtime_r(&t, &tm))
                strftime(when, sizeof when, " at %Y-%m-%dT%H:%M:%SZ", &tm);
        }
        fprintf(out, "; last error%s: %s", when, m);
        free(m);
    }
    fputc('\n', out);
}

static void print_record(FILE *out, const cJSON *resp, int json)
{
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(resp, "record");
    if (json) {
        char *t = cJSON_PrintUnformatted(rec);
        if (t)
            fprintf(out, "%s\n", t);
        cJSON_free(t);
    } else if (rec) {
        status_print(out, rec);
        /* Overrunning steps hold workers the server gave up on: said here
         * too, not only by ping, since that is where a stuck run is
         * looked at. */
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(resp, "workers");
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(w, "abandoned");
        if (cJSON_IsNumber(ab) && ab->valuedouble > 0) {
            const cJSON *rp = cJSON_GetObjectItemCaseSensitive(w, "replaced");
            const cJSON *un = cJSON_GetObjectItemCaseSensitive(w, "unreplaced");
            fprintf(out,
                    "server: %.0f worker(s) abandoned in steps that overran their deadline "
                    "(%.0f replaced, %.0f not replaced)\n",
                    ab->valuedouble, cJSON_IsNumber(rp) ? rp->valuedouble : 0,
                    cJSON_IsNumber(un) ? un->valuedouble : 0);
        }
        store_health(out, cJSON_GetObjectItemCaseSensitive(resp, "store"));
    }
}

static cJSON *request(const char *cmd)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "cmd", cmd);
    return r;
}

/* Adds `ctx` as the request's "context" (replacing one already there).
 * Returns EXIT_OK, or EXIT_USAGE after saying why. */
static int add_context(ctl *t, cJSON *req, const ndf_context *ctx)
{
    strbuf sb;
    sb_init(&sb);
    context_to_json(ctx, &sb);
    cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
    sb_free(&sb);
    if (!j) {
        cmd_error(t->c, "cannot encode the context\n");
        return EXIT_USAGE;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(req, "context");
    cJSON_AddItemToObject(req, "context", j);
    return EXIT_OK;
}

/* ---- ctl run ---- */

/* Parses `ctl run`'s command line into the request.  Returns EXIT_OK with
 * *req set (to delete) to go on; otherwise the exit code. */
static int ctl_run_parse(ctl *t, int argc, char **argv, cJSON **req, int *json, int *async,
                         const char **fallback)
{
    static const opt_spec opts[] = {CTXOPT_OPTIONS,
                                    {"timeout", 0, OPT_REQUIRED, 't'},
                                    {"force", 0, OPT_NONE, 'f'},
                                    {"async", 0, OPT_NONE, 'A'},
                                    {"fallback", 0, OPT_REQUIRED, 'F'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    cmd_ctx *c = t->c;
    ctxopt co;
    ctxopt_init(&co);
    double timeout = 0;
    int force = 0, o, rc = EXIT_OK, done = 0;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while (!done && (o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc)) {
            done = rc != EXIT_OK;
            continue;
        }
        switch (o) {
        case 't':
            if (cmd_parse_interval(c, "--timeout", p.arg, &timeout))
                rc = EXIT_USAGE, done = 1;
            break;
        case 'f': force = 1; break;
        case 'A': *async = 1; break;
        case 'F': *fallback = p.arg; break;
        case 'j': *json = 1; break;
        case 'h': rc = cmd_help(c), done = 1; break;
        default: rc = cmd_bad_usage(c), done = 1; break;
        }
    }
    if (!done && p.noperands != 1) {
        cmd_error(c, "expected one PATTERN (see 'ndf ctl --help')\n");
        rc = EXIT_USAGE, done = 1;
    }
    ndf_context *ctx = NULL;
    if (!done && (rc = cmd_context_finish(c, &co, &ctx)) != EXIT_OK)
        done = 1;
    ctxopt_free(&co);
    if (done)
        return rc;
    if (*async && *fallback) {
        cmd_error(c, "--fallback waits for the primary; it cannot be --async\n");
        context_free(ctx);
        return EXIT_USAGE;
    }
    *req = request("run");
    cJSON_AddStringToObject(*req, "pattern", p.operands[0]);
    rc = add_context(t, *req, ctx);
    context_free(ctx);
    if (rc != EXIT_OK) {
        cJSON_Delete(*req);
        *req = NULL;
        return rc;
    }
    if (timeout > 0)
        cJSON_AddNumberToObject(*req, "timeout", timeout);
    if (force)
        cJSON_AddBoolToObject(*req, "force", 1);
    if (*async)
        cJSON_AddBoolToObject(*req, "async", 1);
    if (*fallback)
        cJSON_AddStringToObject(*req, "fallback", *fallback);
    return EXIT_OK;
}

/* A finished run's answer, printed as `ndf run` would. */
static int ctl_run_report(ctl *t, const cJSON *resp, int json, const char *fallback)
{
    int rc = int_of(resp, "exit", EXIT_FAILED);
    const cJSON *prim = cJSON_GetObjectItemCaseSensitive(resp, "primary");
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(resp, "record");
    const char *cause = str_of(resp, "fallback_cause");
    /* a fallback that could not start: "record" is the primary's, and
     * "error" says why the fallback did not start */
    const char *fb_error = cause && !prim ? str_of(resp, "error") : NULL;
    /* -q, as ndf run -q: no summaries and no fallback notice, only a
     * fallback that could not start (and the exit status) */
    int show = !json && t->c->verbosity >= 0;
    if (show && (prim || (fb_error && rec)))
        run_summary(t->c, prim ? prim : rec, 1);
    if (show && cause) {
        const char *perr = str_of(resp, "primary_error");
        if (!prim && !(fb_error && rec) && perr)
            cmd_error(t->c, "%s\n", perr);
        cmd_diag(t->c->err, cmd_name(t->c), DIAG_WARNING, "falling back to '%s' (cause: %s)\n",
                 fallback, cause);
    }
    if (json) {
        print_record(t->c->out, resp, 1);
    } else if (fb_error) {
        char *m = term_safe(fb_error);
        cmd_error(t->c, "%s\n", m);
        free(m);
    } else if (rec && show) {
        run_summary(t->c, rec, rc != EXIT_OK);
    } else if (rec && !cmd_outcome_code(rc)) {
        /* -q keeps an error of ndf's that decides the exit status, as ndf run -q */
        const char *e = str_of(rec, "error");
        char *m = term_safe(e ? e : str_of(rec, "status") ? str_of(rec, "status") : "failed");
        cmd_error(t->c, "%s\n", m);
        free(m);
    }
    return rc;
}

static int ctl_run(ctl *t, int argc, char **argv)
{
    cJSON *req = NULL;
    int json = 0, async = 0, rc;
    const char *fallback = NULL;
    if ((rc = ctl_run_parse(t, argc, argv, &req, &json, &async, &fallback)) != EXIT_OK)
        return rc;
    cJSON *resp = ctl_call(t, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if ((rc = ctl_failed(t, resp)) != EXIT_OK) {
        cJSON_Delete(resp);
        return rc;
    }
    if (async) {
        const char *id = str_of(resp, "id");
        if (json)
            fprintf(t->c->out, "{\"id\":\"%s\"}\n", id ? id : "");
        else
            fprintf(t->c->out, "%s\n", id ? id : "");
    } else {
        rc = ctl_run_report(t, resp, json, fallback);
    }
    cJSON_Delete(resp);
    return rc;
}

/* ---- ctl delegate: `ndf delegate`'s options, run by the server ---- */

static int ctl_delegate(ctl *t, int argc, char **argv)
{
    cmd_delegate_args da;
    int rc = cmd_delegate_parse(t->c, argc, argv, &da);
    if (!da.ctx)
        return rc;
    if (da.submit) {
        context_free(da.ctx);
        cmd_error(t->c, "delegate: --submit is not served: 'ndf delegate --submit' chooses from "
                        "the shared store's counts on any host\n");
        return EXIT_USAGE;
    }
    cJSON *req = request("delegate");
    rc = add_context(t, req, da.ctx);
    context_free(da.ctx);
    if (rc != EXIT_OK) {
        cJSON_Delete(req);
        return rc;
    }
    cJSON_AddStringToObject(req, "policy", delegate_policy_name(da.o.policy));
    if (da.o.has_seed)
        cJSON_AddNumberToObject(req, "seed", (double)da.o.seed);
    if (da.o.max_fallbacks != DELEGATION_FALLBACKS_CONFIGURED)
        cJSON_AddNumberToObject(req, "max_fallbacks", da.o.max_fallbacks);
    if (da.timeout > 0)
        cJSON_AddNumberToObject(req, "timeout", da.timeout);
    if (da.explain || da.json)
        cJSON_AddBoolToObject(req, "explain", 1);
    cJSON *resp = ctl_call(t, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    /* a refusal of the request itself has no delegation to print */
    if (!cJSON_GetObjectItemCaseSensitive(resp, "delegation"))
        rc = ctl_failed(t, resp);
    else
        rc = cmd_delegate_answer(t->c, resp, da.json, da.explain);
    cJSON_Delete(resp);
    return rc;
}

/* ---- status / cancel / rollback: an id and a few options ---- */

static int ctl_by_id(ctl *t, const char *verb, int argc, char **argv)
{
    static const opt_spec opts[] = {{"json", 0, OPT_NONE, 'j'},
                                    {"level", 0, OPT_REQUIRED, 'l'},
                                    {"target", 0, OPT_REQUIRED, 't'},
                                    {"timeout", 0, OPT_REQUIRED, 'T'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    cmd_ctx *c = t->c;
    int json = 0, o, rc;
    const char *level = NULL, *target = NULL;
    double timeout = -1;
    int is_status = strcmp(verb, "status") == 0, is_rollback = strcmp(verb, "rollback") == 0;
    int is_wait = strcmp(verb, "wait") == 0;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'j': json = 1; break;
        case 'l':
        case 't':
            if (!is_rollback) {
                cmd_error(c, "--%s is for rollback\n", o == 'l' ? "level" : "target");
                return EXIT_USAGE;
            }
            *(o == 'l' ? &level : &target) = p.arg;
            break;
        case 'T':
            if (!is_wait) {
                cmd_error(c, "--timeout is for wait\n");
                return EXIT_USAGE;
            }
            if (cmd_parse_seconds(c, "--timeout", p.arg, &timeout))
                return EXIT_USAGE;
            break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands > 1 || (p.noperands == 0 && !is_status) ||
        (p.noperands == 1 && !*p.operands[0])) {
        cmd_error(c, "expected %s execution ID\n", is_status ? "at most one" : "one");
        return EXIT_USAGE;
    }
    cJSON *req = request(verb);
    if (p.noperands)
        cJSON_AddStringToObject(req, "id", p.operands[0]);
    if (level)
        cJSON_AddStringToObject(req, "level", level);
    if (target)
        cJSON_AddStringToObject(req, "target", target);
    if (timeout >= 0)
        cJSON_AddNumberToObject(req, "timeout", timeout);
    cJSON *resp = ctl_call(t, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if ((rc = ctl_failed(t, resp)) == EXIT_OK) {
        if (strcmp(verb, "cancel") == 0)
            fprintf(c->out, "cancelled %s\n", p.operands[0]);
        else {
            if (is_rollback && !json) {
                /* the record's own status is its run's ("ok"): what
                 * this command did is a rollback */
                cJSON *rec = cJSON_GetObjectItemCaseSensitive(resp, "record");
                if (cJSON_IsObject(rec))
                    cJSON_ReplaceItemInObjectCaseSensitive(rec, "status",
                                                           cJSON_CreateString("rolled back"));
            }
            print_record(c->out, resp, json);
        }
        /* wait ends as the execution did, as run does */
        if (is_wait)
            rc = int_of(resp, "exit", EXIT_OK);
    }
    cJSON_Delete(resp);
    return rc;
}

/* ---- the commands the server runs ---- */

/* Prints the served command's standard error `se` on this side: its
 * diagnostics ("ndf: VERB: ...", as the server ran VERB) in ctl's style,
 * "ndf: ctl: VERB: ...", with the journal's priority when this side's
 * stderr is the journal; its other lines (progress, summaries) as they
 * are. */
static void relay_stderr(ctl *t, const char *verb, const char *se)
{
    size_t vlen = strlen(verb);
    while (*se) {
        size_t n = strcspn(se, "\n");
        char *line = xstrndup(se, n);
        se += n + (se[n] == '\n');
        const char *rest = line + 5;
        if (strncmp(line, "ndf: ", 5) != 0) {
            fprintf(t->c->err, "%s\n", line);
        } else {
            if (strncmp(rest, verb, vlen) == 0 && strncmp(rest + vlen, ": ", 2) == 0)
                rest += vlen + 2;
            cmd_diag(t->c->err, cmd_name(t->c),
                     strncmp(rest, "warning: ", 9) == 0 ? DIAG_WARNING : DIAG_ERR, "%s\n", rest);
        }
        free(line);
    }
}

/* Writes an export to `path` on this side: the server writes no file a
 * client names. */
static int write_file(ctl *t, const char *path, const char *data)
{
    if (strcmp(path, "-") == 0) {
        /* as `ndf export -o -`: standard output, not a file named "-" */
        if (fputs(data, t->c->out) < 0 || fflush(t->c->out) != 0) {
            cmd_error(t->c, "cannot write to standard output: %s\n", strerror(errno));
            return EXIT_IO;
        }
        return EXIT_OK;
    }
    FILE *f = fopen(path, "w");
    int e = f ? 0 : errno;
    if (f && fputs(data, f) < 0)
        e = errno;
    /* fclose releases the stream even when it fails: never a second one */
    if (f && fclose(f) != 0 && !e)
        e = errno;
    if (e) {
        cmd_error(t->c, "cannot write %s: %s\n", path, strerror(e));
        return EXIT_IO;
    }
    return EXIT_OK;
}

/* Takes out of the arguments what names a file on this side: export's -o
 * (written here) and the --context of similar and record (read here, sent
 * as data).
 * Returns EXIT_OK, or EXIT_USAGE after saying why. */
static int ctl_local_args(ctl *t, const char *verb, int argc, char **argv, cJSON *req,
                          const char **out)
{
    cJSON *args = cJSON_AddArrayToObject(req, "args");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        int is_out = 0, is_ctx = 0;
        if (strcmp(verb, "export") == 0) {
            if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
                is_out = 1, val = i + 1 < argc ? argv[++i] : NULL;
            else if (strncmp(a, "--output=", 9) == 0)
                is_out = 1, val = a + 9;
            else if (strncmp(a, "-o", 2) == 0 && a[2])
                is_out = 1, val = a + 2;
        } else if (strcmp(verb, "similar") == 0 || strcmp(verb, "record") == 0 ||
                   strcmp(verb, "submit") == 0) {
            if (strcmp(a, "--context") == 0)
                is_ctx = 1, val = i + 1 < argc ? argv[++i] : NULL;
            else if (strncmp(a, "--context=", 10) == 0)
                is_ctx = 1, val = a + 10;
        }
        int is_batch = strcmp(verb, "batch") == 0;
        if ((strcmp(verb, "define") == 0 || is_batch) && (a[0] != '-' || strcmp(a, "-") == 0)) {
            /* the definition's or the batch's file is read here and sent
             * as data */
            if (i > 1 && (strcmp(argv[i - 1], "--text") == 0 || strcmp(argv[i - 1], "--items") == 0)) {
                cJSON_AddItemToArray(args, cJSON_CreateString(a));
                continue;
            }
            char *text = NULL;
            size_t len = 0;
            int is_stdin = strcmp(a, "-") == 0;
            FILE *f = is_stdin ? t->c->in : fopen(a, "r");
            if (f) {
                strbuf sb;
                sb_init(&sb);
                char buf[65536];
                size_t k;
                while ((k = fread(buf, 1, sizeof buf, f)) > 0 && sb.len <= ((size_t)16 << 20))
                    sb_add(&sb, buf, k);
                int bad = ferror(f) || sb.len > ((size_t)16 << 20);
                if (!is_stdin)
                    fclose(f);
                len = sb.len;
                text = bad ? NULL : sb_steal(&sb);
                if (!text && !bad)
                    text = xstrdup("");
                sb_free(&sb);
                if (bad)
                    errno = EFBIG;
            }
            if (!text || memchr(text, 0, len)) {
                cmd_error(t->c, "cannot read %s: %s\n", a,
                          text ? "it holds a NUL byte" : strerror(errno));
                free(text);
                return is_batch && !text ? EXIT_NOT_FOUND : EXIT_USAGE;
            }
            cJSON_AddItemToArray(args, cJSON_CreateString(is_batch ? "--items" : "--text"));
            cJSON_AddItemToArray(args, cJSON_CreateString(text));
            free(text);
            continue;
        }
        if ((is_out || is_ctx) && !val) {
            cmd_error(t->c, "%s needs a value\n", a);
            return EXIT_USAGE;
        }
        if (is_out) {
            *out = val;
        } else if (is_ctx) {
            ndf_context *ctx;
            if (context_from_json_file(val, &ctx) != NDF_OK) {
                cmd_error(t->c, "%s\n", err_msg());
                return EXIT_USAGE;
            }
            int rc = add_context(t, req, ctx);
            context_free(ctx);
            if (rc != EXIT_OK)
                return rc;
        } else {
            cJSON_AddItemToArray(args, cJSON_CreateString(a));
        }
    }
    return EXIT_OK;
}

/* The servable commands: the arguments go to the server untouched, except
 * what names a file on this side. */
static int ctl_forward(ctl *t, const char *verb, int argc, char **argv)
{
    if (strcmp(verb, "drain") == 0) {
        /* the server answers at the drain's --timeout; one that does not
         * answer by a margin past it is frozen: say so, not wait on it */
        for (int i = 1; i + 1 < argc; i++) {
            double v;
            if (strcmp(argv[i], "--timeout") == 0 && parse_seconds(argv[i + 1], &v) == 0)
                t->answer_within = v + DRAIN_ANSWER_MARGIN;
        }
    }
    cJSON *req = request(verb);
    const char *out = NULL;
    int rc = ctl_local_args(t, verb, argc, argv, req, &out);
    if (rc != EXIT_OK) {
        cJSON_Delete(req);
        return rc;
    }
    cJSON *resp = ctl_call(t, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if ((rc = ctl_failed(t, resp)) != EXIT_OK) {
        cJSON_Delete(resp);
        return rc;
    }
    const char *so = str_of(resp, "stdout"), *se = str_of(resp, "stderr");
    rc = int_of(resp, "exit", EXIT_FAILED);
    if (se)
        relay_stderr(t, verb, se);
    if (so && out && rc == EXIT_OK)
        rc = write_file(t, out, so);
    else if (so)
        fputs(so, t->c->out);
    cJSON_Delete(resp);
    return rc;
}

/* ---- send, and the verbs without arguments ---- */

/* Protocol-level access for scripts and tests: each line of stdin is sent
 * as it is, on one connection, and each answer line printed. */
static int ctl_send(ctl *t, int argc, char **argv)
{
    cmd_ctx *c = t->c;
    (void)argv;
    if (argc > 1) {
        cmd_error(c, "takes no arguments (the requests come on stdin)\n");
        return EXIT_USAGE;
    }
    int fd = transport_connect(t->socket);
    if (fd < 0) {
        cmd_error(c, "no ndf server is listening on %s (%s)\n", t->socket, strerror(errno));
        return EXIT_UNAVAILABLE;
    }
    char *line = NULL, *ans = NULL;
    size_t cap = 0, acap = 0;
    ssize_t n;
    int rc = EXIT_OK;
    FILE *in = fdopen(dup(fd), "r");
    while (c->in && (n = getline(&line, &cap, c->in)) > 0) {
        /* The server answers every request line and skips blank ones
         * without a word, so a blank line must not wait for an answer. */
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        if (line[n - 1] != '\n') {
            line = xrealloc(line, (size_t)n + 2);
            line[n++] = '\n';
        }
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = send(fd, line + off, (size_t)n - off, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        int broken = off < (size_t)n; /* the server may have answered, then closed */
        /* the server sends nothing unasked, so `in` holds no answer yet:
         * a silent one is pinged as ctl_call() does */
        double silence = ctl_silence();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int k;
        while ((k = poll(&pfd, 1, (int)ceil(fmin(silence, 3600) * 1000))) <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 || !server_answers(t->socket, silence))
                break;
        }
        if (k == 0) {
            cmd_error(c,
                      "the server at %s has not answered for %gs and does not answer a ping: "
                      "it is stopped or frozen\n",
                      t->socket, silence);
            rc = EXIT_TIMEOUT;
            break;
        }
        ssize_t an = in ? getline(&ans, &acap, in) : -1;
        if (an <= 0) {
            cmd_error(c, "the server closed the connection\n");
            rc = EXIT_UNAVAILABLE;
            break;
        }
        fwrite(ans, 1, (size_t)an, c->out);
        if (broken)
            break;
    }
    free(line);
    free(ans);
    if (in)
        fclose(in);
    close(fd);
    return rc;
}

static int ctl_simple(ctl *t, const char *verb, int argc, char **argv)
{
    cmd_ctx *c = t->c;
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
            return cmd_help(c);
        cmd_error(c, "takes no arguments\n");
        return EXIT_USAGE;
    }
    int rc;
    cJSON *req = request(verb);
    cJSON *resp = ctl_call(t, req, &rc);
    cJSON_Delete(req);
    if (!resp)
        return rc;
    if (strcmp(verb, "ping") == 0) {
        char *text = cJSON_PrintUnformatted(resp);
        fprintf(c->out, "%s\n", text);
        cJSON_free(text);
    } else if (strcmp(verb, "reload") == 0) {
        const char *cfg = str_of(resp, "config");
        int changed = int_of(resp, "plugins_changed", 0);
        fprintf(c->out, "generation %d serves (configuration %s, %d plugin change%s)\n",
                int_of(resp, "generation", 0), cfg ? cfg : "?", changed, changed == 1 ? "" : "s");
    }
    rc = ctl_failed(t, resp);
    cJSON_Delete(resp);
    return rc;
}

/* ---- ctl metrics ---- */

/* One metric of the server's from its ping answer. */
static void ping_metric(strbuf *sb, const cJSON *ping, const char *key, const char *name,
                        const char *type, const char *help)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ping, key);
    if (!cJSON_IsNumber(v))
        return;
    sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %.0f\n", name, help, name, type, name,
              v->valuedouble);
}

static const char server_down[] = "# HELP ndf_server_up 1 when the ndf server answered.\n"
                                  "# TYPE ndf_server_up gauge\nndf_server_up 0\n";

/* The served `metrics` exposition and the server's own counters (from a
 * ping) into `sb`.  Returns EXIT_OK, the served command's exit code, or
 * EXIT_UNAVAILABLE (with ndf_server_up 0 in `sb`) when there is no server. */
static int ctl_metrics_collect(ctl *t, double window, strbuf *sb)
{
    int rc;
    cJSON *req = request("metrics");
    cJSON *args = cJSON_AddArrayToObject(req, "args");
    char w[64];
    snprintf(w, sizeof w, "--window=%.17g", window);
    cJSON_AddItemToArray(args, cJSON_CreateString(w));
    cJSON *resp = ctl_call(t, req, &rc);
    cJSON_Delete(req);
    cJSON *ping = NULL;
    if (resp) {
        req = request("ping");
        ping = ctl_call(t, req, &rc);
        cJSON_Delete(req);
    }
    if (!resp || !ping || (rc = ctl_failed(t, resp)) != EXIT_OK) {
        cJSON_Delete(resp);
        cJSON_Delete(ping);
        /* said, so that an alert fires rather than a stale file being read */
        sb_puts(sb, server_down);
        return rc ? rc : EXIT_UNAVAILABLE;
    }
    const char *so = str_of(resp, "stdout"), *se = str_of(resp, "stderr");
    rc = int_of(resp, "exit", EXIT_FAILED);
    if (se)
        relay_stderr(t, "metrics", se);
    if (so)
        sb_puts(sb, so);
    sb_puts(sb, "# HELP ndf_server_up 1 when the ndf server answered.\n"
                "# TYPE ndf_server_up gauge\nndf_server_up 1\n");
    ping_metric(sb, ping, "generation", "ndf_server_generation", "gauge",
                "The configuration generation serving (1 at start, one more per reload).");
    ping_metric(sb, ping, "old_generations", "ndf_server_old_generations", "gauge",
                "Replaced generations still finishing their executions.");
    ping_metric(sb, ping, "reloads", "ndf_reloads_total", "counter",
                "Reloads of the configuration and plugins that took effect.");
    ping_metric(sb, ping, "reloads_failed", "ndf_reloads_failed_total", "counter",
                "Reloads refused (the old generation kept serving).");
    ping_metric(sb, ping, "plugins_retired", "ndf_plugins_retired_total", "counter",
                "Plugin builds replaced by a reload.");
    ping_metric(sb, ping, "plugins_unloaded", "ndf_plugins_unloaded_total", "counter",
                "Retired plugin builds unloaded after their last execution.");
    ping_metric(sb, ping, "plugins_not_unloadable", "ndf_plugins_not_unloadable", "gauge",
                "Retired plugin builds that cannot be unloaded (kept mapped).");
    cJSON_Delete(resp);
    cJSON_Delete(ping);
    return rc;
}

int cmd_ctl_metrics(cmd_ctx *c, const char *socket, double window, strbuf *sb)
{
    ctl t = {.socket = socket, .c = c};
    if (!socket) {
        sb_puts(sb, server_down);
        return EXIT_UNAVAILABLE;
    }
    return ctl_metrics_collect(&t, window, sb);
}

char *cmd_ctl_socket(cmd_ctx *c)
{
    /* Only the socket path is needed, and a configuration being edited
     * (with errors: the server keeps its old one) must not keep ctl from
     * reaching the server: take whatever path was read. */
    config *cfg = NULL;
    const char *path = c->rt->config_path;
    if (access(path, F_OK) == 0) {
        config_load(path, &cfg);
    } else {
        cfg = xcalloc(1, sizeof *cfg);
        settings_default(&cfg->set);
    }
    char *s = cfg->set.socket_path ? xstrdup(cfg->set.socket_path) : NULL;
    config_free(cfg);
    return s;
}

static int ctl_metrics(ctl *t, int argc, char **argv)
{
    cmd_metrics_args a;
    int rc = cmd_metrics_options(t->c, argc, argv, &a);
    if (rc != EXIT_OK || a.help)
        return rc;
    if (a.interval > 0)
        cmd_signals_arm(NULL);
    do {
        strbuf sb;
        sb_init(&sb);
        rc = ctl_metrics_collect(t, a.window, &sb);
        /* a textfile says the server is down; standard output says nothing
         * a scraper would take for figures */
        int wrc = EXIT_OK;
        if (a.textfile || rc != EXIT_UNAVAILABLE)
            wrc = cmd_metrics_write(t->c, a.textfile, sb.buf ? sb.buf : "", sb.len);
        sb_free(&sb);
        if (wrc != EXIT_OK)
            rc = wrc;
    } while (a.interval > 0 && cmd_metrics_sleep(a.interval) == 0);
    return rc;
}

static int ctl_dispatch(ctl *t, const char *verb, int argc, char **argv);

/* The verb argv[0] on the server at t->socket.  Its diagnostics, the
 * option parser's included, read "ndf: ctl: VERB: ...": argv[0] names
 * the command in the parser's messages. */
static int ctl_verb(ctl *t, int argc, char **argv)
{
    const char *verb = argv[0];
    static const char *const own[] = {"delegate", "run",    "status",   "cancel", "rollback", "wait",
                                      "reload",   "shutdown", "ping", "send",   "metrics", "drain"};
    int known = 0;
    for (size_t i = 0; i < ARRAY_SIZE(own) && !known; i++)
        known = strcmp(verb, own[i]) == 0;
    const cmd_entry *e = cmd_find(verb);
    if (!known && !(e && (e->flags & CMD_SERVABLE))) {
        cmd_error(t->c, "unknown verb '%s' (see 'ndf ctl --help')\n", verb);
        return EXIT_USAGE;
    }
    char label[64];
    snprintf(label, sizeof label, "ctl: %.50s", verb);
    const char *old = t->c->name;
    t->c->name = label;
    argv[0] = label;
    int rc = ctl_dispatch(t, verb, argc, argv);
    argv[0] = (char *)verb;
    t->c->name = old;
    return rc;
}

static int ctl_dispatch(ctl *t, const char *verb, int argc, char **argv)
{
    if (strcmp(verb, "delegate") == 0)
        return ctl_delegate(t, argc, argv);
    if (strcmp(verb, "run") == 0)
        return ctl_run(t, argc, argv);
    if (strcmp(verb, "status") == 0 || strcmp(verb, "cancel") == 0 ||
        strcmp(verb, "rollback") == 0 || strcmp(verb, "wait") == 0)
        return ctl_by_id(t, verb, argc, argv);
    if (strcmp(verb, "reload") == 0 || strcmp(verb, "shutdown") == 0 || strcmp(verb, "ping") == 0)
        return ctl_simple(t, verb, argc, argv);
    if (strcmp(verb, "send") == 0)
        return ctl_send(t, argc, argv);
    if (strcmp(verb, "metrics") == 0)
        return ctl_metrics(t, argc, argv);
    return ctl_forward(t, verb, argc, argv);
}

static int cmd_ctl(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {
        {"socket", 0, OPT_REQUIRED, 's'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    ctl t = {.c = c};
    int o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_STOP, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 's': t.socket = p.arg; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (!p.noperands)
        return cmd_bad_usage(c);
    char *sock = NULL;
    if (!t.socket)
        t.socket = sock = cmd_ctl_socket(c);
    if (!t.socket) {
        cmd_error(c, "no server.socket is configured: name one with --socket\n");
        return EXIT_USAGE;
    }
    int rc = ctl_verb(&t, argc - p.ind, argv + p.ind);
    free(sock);
    return rc;
}

const cmd_entry cmd_ctl_entry = {
    .name = "ctl",
    .summary = "send a request to a running 'ndf serve'",
    .usage = ctl_usage,
    .exec = cmd_ctl,
};
