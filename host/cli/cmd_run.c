/* The execution commands: `ndf run` (one pattern, live progress, optional
 * fallback) and `ndf batch` (JSON lines in, JSON lines out, in input
 * order).  Every execution is committed to the store before its result is
 * printed; one that cannot be is a storage error (exit 8).  Also the
 * printer of a live record that `ndf ctl status` uses, and the signal
 * handling of the commands that run patterns in the foreground. */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/delegation.h"
#include "app/runtime.h"
#include "cli/commands.h"
#include "serve/generation.h"
#include "model/context.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "cli/plan.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "store/history.h"
#include "base/util.h"

/* ---- signals ----
 *
 * SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one
 * thread of their own with sigwait(): no handler runs in the middle of a
 * plugin's code, and the thread may take locks to cancel the executions
 * (executor_cancel_all), which a handler may not.  The command's own wait
 * then sees its executions end as CANCELLED, after rollback, with their
 * processes stopped, and records them as any other. */

static struct {
    pthread_mutex_t lock;
    sigset_t set;
    int armed;
    executor *ex; /* the executor to cancel, or NULL */
    int sig;      /* the first signal received, or 0 */
    int count;
    int rollback;     /* cmd_signals_rollback(): the first signal cancels nothing */
    record *undoing;  /* the record whose undo actions run (a reference), or NULL */
    int kept;         /* cmd_signals_keep_status() */
    char command[64]; /* who says "cancelling" ("" when nothing is cancelled) */
} sigs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *sig_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal";
}

static void *signal_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int sig;
        if (sigwait(&sigs.set, &sig) != 0)
            continue;
        pthread_mutex_lock(&sigs.lock);
        if (!sigs.sig)
            sigs.sig = sig;
        int n = ++sigs.count;
        char msg[256];
        const char *prio = log_to_journal() ? "<4>" : "";
        if (sigs.rollback) {
            /* undo actions left half done are worse than a slow exit:
             * only a second signal stops them */
            if (n == 1)
                snprintf(msg, sizeof msg,
                         "%sndf: %s: %s: letting the undo actions finish; send it again to stop "
                         "them\n",
                         prio, sigs.command, sig_name(sig));
            else
                snprintf(msg, sizeof msg, "%sndf: %s: %s again: stopping the undo actions\n", prio,
                         sigs.command, sig_name(sig));
            /* the stop first, the message after the lock: a stderr that
             * blocks (a full pipe) must not hold the stop back */
            if (n > 1 && sigs.undoing)
                record_cancel(sigs.undoing, 1);
            pthread_mutex_unlock(&sigs.lock);
            ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
            (void)w;
            continue;
        }
        if (n == 1)
            snprintf(msg, sizeof msg,
                     "%sndf: %s: %s: cancelling (rollback runs; send it again to skip "
                     "rollback)\n",
                     prio, sigs.command, sig_name(sig));
        else
            snprintf(msg, sizeof msg,
                     "%sndf: %s: %s again: skipping rollback, killing step processes\n", prio,
                     sigs.command, sig_name(sig));
        /* write(2), not stdio: the main thread may hold stderr's lock
         * while it draws progress, and this message must not wait.  A
         * command that runs nothing (a metrics loop) just stops. */
        if (sigs.command[0]) {
            ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
            (void)w;
        }
        if (sigs.ex)
            executor_cancel_all(sigs.ex, n > 1);
        pthread_mutex_unlock(&sigs.lock);
    }
    return NULL;
}

void cmd_signals_arm(const char *command)
{
    pthread_mutex_lock(&sigs.lock);
    snprintf(sigs.command, sizeof sigs.command, "%s", command ? command : "");
    pthread_mutex_unlock(&sigs.lock);
    if (sigs.armed)
        return;
    sigemptyset(&sigs.set);
    static const int taken[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < ARRAY_SIZE(taken); i++) {
        /* A signal ignored on entry stays ignored (nohup; a background
         * job of a non-interactive shell ignores SIGINT). */
        struct sigaction sa;
        if (sigaction(taken[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            continue;
        sigaddset(&sigs.set, taken[i]);
    }
    /* Before any other thread starts: they inherit the mask. */
    pthread_sigmask(SIG_BLOCK, &sigs.set, NULL);
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &ta, signal_thread, NULL);
    pthread_attr_destroy(&ta);
    if (e) {
        /* No thread: the signals keep their default action (ndf dies),
         * as before; say so once. */
        pthread_sigmask(SIG_UNBLOCK, &sigs.set, NULL);
        log_msg(NDF_LOG_WARN, "cannot start the signal thread (%s): a signal will stop ndf at once",
                strerror(e));
        return;
    }
    sigs.armed = 1;
}

void cmd_signals_watch(executor *ex)
{
    pthread_mutex_lock(&sigs.lock);
    sigs.ex = ex;
    if (ex && sigs.count && !sigs.rollback)
        executor_cancel_all(ex, sigs.count > 1);
    pthread_mutex_unlock(&sigs.lock);
}

void cmd_signals_rollback(void)
{
    pthread_mutex_lock(&sigs.lock);
    sigs.rollback = 1;
    pthread_mutex_unlock(&sigs.lock);
}

void cmd_signals_undo(void *arg, record *r)
{
    (void)arg;
    pthread_mutex_lock(&sigs.lock);
    record_unref(sigs.undoing);
    sigs.undoing = r ? record_ref(r) : NULL;
    /* a second signal that came during the replay stops them all */
    if (r && sigs.rollback && sigs.count > 1)
        record_cancel(r, 1);
    pthread_mutex_unlock(&sigs.lock);
}

void cmd_signals_keep_status(void)
{
    pthread_mutex_lock(&sigs.lock);
    sigs.kept = 1;
    pthread_mutex_unlock(&sigs.lock);
}

int cmd_signals_kept(void)
{
    pthread_mutex_lock(&sigs.lock);
    int k = sigs.kept;
    pthread_mutex_unlock(&sigs.lock);
    return k;
}

int cmd_signal_received(void)
{
    pthread_mutex_lock(&sigs.lock);
    int sig = sigs.sig;
    pthread_mutex_unlock(&sigs.lock);
    return sig;
}

int cmd_start_executor(cmd_ctx *c, store_origin origin)
{
    if (!c->served)
        cmd_signals_arm(cmd_name(c));
    int rc = cmd_load_executor(c->rt, origin);
    if (rc == EXIT_OK && !c->served)
        cmd_signals_watch(c->rt->ex);
    return rc;
}

int cmd_load_executor(runtime *rt, store_origin origin)
{
    rt->store_needed = 1;
    /* a run needs the plugins of the patterns it builds, not the others */
    rt->lazy_plugins = 1;
    /* these follow their one execution (cmd_run_follow), which starts the
     * progress thread once the execution outlasts a wait */
    rt->progress_on_demand = origin == STORE_ORIGIN_RUN || origin == STORE_ORIGIN_DELEGATE ||
                             origin == STORE_ORIGIN_REDRIVE;
    int rc = runtime_load(rt, RT_PATTERNS);
    if (rc)
        return exit_code_for(rc);
    rt->hook.origin = origin;
    if (!rt->ex && (rc = runtime_start_executor(rt, NULL, NULL)) != NDF_OK)
        return rc == NDF_ERR_IO ? EXIT_IO : EXIT_FAILED;
    return EXIT_OK;
}

/* ---- live progress ---- */

/* A terminal that cannot move the cursor gets the plain line-per-change
 * display. */
static int term_dumb(void)
{
    const char *t = getenv("TERM");
    return !t || !*t || strcmp(t, "dumb") == 0;
}

typedef struct seen {
    const ndf_exec *node;
    int state;
} seen;

static void tail_lines(FILE *out, int indent, const char *text, size_t len, int all,
                       const char *more, uint64_t earlier)
{
    while (len > 0 && text[len - 1] == '\n')
        len--;
    if (!len)
        return;
    size_t nlines = 1;
    for (size_t i = 0; i < len; i++)
        nlines += text[i] == '\n';
    size_t skip = !all && nlines > CMD_TAIL_LINES ? nlines - CMD_TAIL_LINES : 0;
    uint64_t before = skip + earlier;
    if (before)
        fprintf(out, "%*s| ... %llu earlier line%s%s%s\n", indent, "", (unsigned long long)before,
                before == 1 ? "" : "s", more ? ": " : "", more ? more : "");
    size_t line = 0, i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        if (line++ >= skip) {
            fprintf(out, "%*s| ", indent, "");
            size_t n = end - i;
            if (!all && n > CMD_TAIL_WIDTH)
                n = CMD_TAIL_WIDTH;
            for (size_t k = 0; k < n; k++) {
                unsigned char ch = (unsigned char)text[i + k];
                fputc(ch < 0x20 && ch != '\t' ? '?' : ch == 0x7f ? '?' : ch, out);
            }
            if (n < end - i)
                fputs(" ...", out);
            fputc('\n', out);
        }
        i = end + 1;
    }
}

void cmd_output_tail(FILE *out, int indent, const char *text, size_t len, int all, const char *more)
{
    tail_lines(out, indent, text, len, all, more, 0);
}

void cmd_output_tail_after(FILE *out, int indent, const char *text, size_t len, uint64_t earlier,
                           const char *more)
{
    tail_lines(out, indent, text, len, 0, more, earlier);
}

typedef struct progress {
    FILE *err; /* where progress goes */
    int tty;
    int verbose; /* all the output of failed steps, not only a tail */
    int lines;   /* lines drawn last time (tty) */
    seen *seen;  /* last state printed per node (plain) */
    size_t nseen;
} progress;

/* The captured output of failed leaf node `n` (its stderr's tail; with
 * `verbose`, all of its stdout and stderr) into sb.  Caller holds the
 * record lock. */
static char *node_path(const ndf_exec *n)
{
    if (!n->parent)
        return xstrdup("");
    char *pp = node_path(n->parent);
    char *r = *pp ? xasprintf("%s/%s", pp, n->name) : xstrdup(n->name);
    free(pp);
    return r;
}

static void failure_output(const ndf_exec *n, int indent, int verbose, strbuf *sb)
{
    char *path = node_path(n);
    char *more = xasprintf("ndf logs %s %s shows all", n->rec->id, path);
    free(path);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        free(more);
        return;
    }
    if (verbose && n->out[REC_STDOUT].len) {
        fprintf(f, "%*sstdout:\n", indent, "");
        cmd_output_tail(f, indent, n->out[REC_STDOUT].buf, n->out[REC_STDOUT].len, 1, NULL);
    }
    if (verbose && n->out[REC_STDERR].len)
        fprintf(f, "%*sstderr:\n", indent, "");
    cmd_output_tail(f, indent, n->out[REC_STDERR].buf, n->out[REC_STDERR].len, verbose, more);
    fclose(f);
    free(more);
    sb_add(sb, text, len);
    free(text);
}

/* Failed leaves of the tree with their reasons, for a terminal whose live
 * display was redrawn in place. */
static void failures_walk(const ndf_exec *n, const char *path, int verbose, strbuf *sb)
{
    ndf_state st = atomic_load(&n->state);
    if (!n->nkids && (st == NDF_STATE_FAILED || st == NDF_STATE_TIMED_OUT) && n->parent) {
        char *p = term_safe(path);
        sb_printf(sb, "%s %s %s", state_name(st), node_kind_name(n->kind), p);
        free(p);
        if (n->message && *n->message)
            sb_printf(sb, ": %s", n->message);
        sb_add(sb, "\n", 1);
        failure_output(n, 2, verbose, sb);
    }
    for (size_t i = 0; i < n->nkids; i++) {
        char *sub = *path ? xasprintf("%s/%s", path, n->kids[i]->name) : xstrdup(n->kids[i]->name);
        failures_walk(n->kids[i], sub, verbose, sb);
        free(sub);
    }
}

/* Caller holds the record lock. */
static void walk(const ndf_exec *n, int depth, progress *pg, strbuf *sb, int *lines)
{
    ndf_state st = atomic_load(&n->state);
    double now = now_mono();
    double dur = n->start > 0 ? (n->end > 0 ? n->end : now) - n->start : 0;
    if (depth > 0) {
        if (pg->tty) {
            char *nm = term_safe(n->name); /* step names come from the configuration */
            sb_printf(sb, "\033[K%*s%-11s %s %s", (depth - 1) * 2, "", state_name(st),
                      node_kind_name(n->kind), nm);
            free(nm);
            if (n->start > 0)
                sb_printf(sb, "  %.1fs", dur);
            if (n->message && *n->message) {
                char *m = term_safe(n->message);
                sb_printf(sb, "  %.60s", m);
                free(m);
            }
            sb_add(sb, "\n", 1);
            (*lines)++;
        } else {
            size_t i;
            for (i = 0; i < pg->nseen && pg->seen[i].node != n; i++)
                ;
            if (i == pg->nseen) {
                pg->seen = xrealloc(pg->seen, (pg->nseen + 1) * sizeof *pg->seen);
                pg->seen[pg->nseen++] = (seen){n, -1};
            }
            if (pg->seen[i].state != (int)st && st != NDF_STATE_PENDING) {
                pg->seen[i].state = (int)st;
                char *nm = term_safe(n->name);
                sb_printf(sb, "%*s%s %s: %s", (depth - 1) * 2, "", node_kind_name(n->kind), nm,
                          state_name(st));
                free(nm);
                if (state_final(st) && n->start > 0)
                    sb_printf(sb, " (%.2fs)", dur);
                if (state_final(st) && n->message && *n->message) {
                    char *m = term_safe(n->message);
                    sb_printf(sb, ": %s", m);
                    free(m);
                }
                sb_add(sb, "\n", 1);
                if ((st == NDF_STATE_FAILED || st == NDF_STATE_TIMED_OUT) && !n->nkids)
                    failure_output(n, (depth + 1) * 2, pg->verbose, sb);
            }
        }
    }
    for (size_t i = 0; i < n->nkids; i++)
        walk(n->kids[i], depth + 1, pg, sb, lines);
}

static void progress_draw(progress *pg, record *r)
{
    strbuf sb;
    sb_init(&sb);
    if (pg->tty && pg->lines)
        sb_printf(&sb, "\033[%dA", pg->lines);
    int lines = 0;
    pthread_mutex_lock(&r->lock);
    walk(r->root, 0, pg, &sb, &lines);
    pthread_mutex_unlock(&r->lock);
    if (pg->tty)
        pg->lines = lines;
    if (sb.len)
        fwrite(sb.buf, 1, sb.len, pg->err);
    fflush(pg->err);
    sb_free(&sb);
}

int cmd_run_one(cmd_ctx *c, const char *name, const ndf_context *ctx, double timeout,
                unsigned flags, int show, record **out)
{
    runtime *rt = c->rt;
    *out = NULL;
    int rc = cmd_plan_check(rt, name, ctx, timeout);
    if (rc)
        return rc;
    rc = executor_start(rt->ex, name, ctx, timeout, flags, out);
    if (rc)
        return rc;
    return cmd_run_follow(c, *out, c->rt->hook.origin, show);
}

int cmd_run_follow(cmd_ctx *c, record *r, store_origin origin, int show)
{
    runtime *rt = c->rt;
    FILE *err = c->err;
    executor *ex = rt->ex;
    const char *name = r->root->name;
    int rc;
    /* its RUNNING row was written before it started (history_on_start),
     * its end is recorded by the executor's hook */
    (void)origin;
    int fd = fileno(err);
    progress pg = {.err = err, .tty = fd >= 0 && isatty(fd) && !term_dumb(), .verbose = show > 1};
    int kicked = 0;
    if (show && !pg.tty)
        fprintf(err, "pattern %s: started (execution %s)\n", name, r->id);
    while (!executor_wait(ex, r, pg.tty ? 0.1 : 0.25)) {
        if (!kicked && history_progress_kick(rt->progress) != NDF_OK)
            log_msg(NDF_LOG_WARN, "%s", err_msg());
        kicked = 1;
        if (show)
            progress_draw(&pg, r);
    }
    if (show)
        progress_draw(&pg, r);
    if (show && pg.tty) {
        strbuf sb;
        sb_init(&sb);
        pthread_mutex_lock(&r->lock);
        failures_walk(r->root, "", pg.verbose, &sb);
        pthread_mutex_unlock(&r->lock);
        if (sb.len)
            fwrite(sb.buf, 1, sb.len, err);
        sb_free(&sb);
    }
    free(pg.seen);
    rc = r->status;
    if (rc)
        err_set(rc, "%s", r->error ? r->error : ndf_status_name(rc));
    return rc;
}

int cmd_plan_check(runtime *rt, const char *name, const ndf_context *ctx, double timeout)
{
    /* A ${variable} the context cannot resolve would fail a step halfway
     * through the run: refuse before anything starts (ndf plan shows all). */
    cJSON *plan = NULL;
    int rc = plan_build(rt, name, ctx, timeout, &plan);
    int planned = plan != NULL;
    cJSON_Delete(plan);
    /* no such pattern (or one that did not build): the executor says so,
     * as it always has */
    if (rc != NDF_ERR_VALIDATION || !planned)
        return NDF_OK;
    char *why = xstrdup(err_msg());
    err_set(rc, "pattern '%s' not started: %s (see 'ndf plan %s')", name, why, name);
    free(why);
    return rc;
}

static void count_states(const ndf_exec *n, unsigned *counts)
{
    for (size_t i = 0; i < n->nkids; i++) {
        counts[atomic_load(&n->kids[i]->state) % 9]++;
        count_states(n->kids[i], counts);
    }
}

void cmd_run_summary(cmd_ctx *c, record *r, int rc)
{
    FILE *err = c->err;
    unsigned counts[9] = {0};
    pthread_mutex_lock(&r->lock);
    count_states(r->root, counts);
    pthread_mutex_unlock(&r->lock);
    double dur = r->end > 0 && r->root->start > 0 ? r->end - r->root->start : 0;
    fprintf(err, "pattern %s: %s in %.2fs (execution %s)", r->root->name,
            rc ? ndf_status_name(rc) : state_name(atomic_load(&r->root->state)), dur, r->id);
    const char *sep = ": ";
    for (int s = 0; s < 9; s++)
        if (counts[s]) {
            fprintf(err, "%s%u %s", sep, counts[s], state_name((ndf_state)s));
            sep = ", ";
        }
    fputc('\n', err);
    if (rc && r->error) {
        char *m = term_safe(r->error);
        cmd_error(c, "%s\n", m);
        free(m);
    }
}

static const char run_usage[] =
    "Usage: ndf run PATTERN [context options] [--timeout S] [--fallback PATTERN]\n"
    "               [--force] [--json] [--dry-run]\n"
    "\n"
    "Runs a pattern and shows its steps, tasks and phases as they go.\n"
    "\n"
    "Options:\n"
    "  --timeout S         the execution's deadline in seconds (default: the\n"
    "                      pattern's own, else executor.default_timeout)\n"
    "  --fallback PATTERN  run PATTERN when the first fails, is not found, is\n"
    "                      refused by the confidence gate or times out\n"
    "  --force             run even when the confidence is below the threshold\n"
    "  --json              print the execution record as JSON on stdout\n"
    "  --dry-run           print the plan (as 'ndf plan') and run nothing\n"
    "\n" CTXOPT_HELP;

typedef struct run_args {
    const char *name, *fallback;
    ndf_context *ctx;
    double timeout;
    unsigned flags;
    int json, dry_run;
} run_args;

/* Parses run's command line into *ra.  Returns EXIT_OK with ra->ctx set
 * (to free) to go on; otherwise ra->ctx is NULL and the return is the
 * command's. */
static int run_parse(cmd_ctx *c, int argc, char **argv, run_args *ra)
{
    enum { OPT_TIMEOUT = 1, OPT_FALLBACK, OPT_FORCE, OPT_JSON, OPT_DRY_RUN };
    static const opt_spec opts[] = {CTXOPT_OPTIONS,
                                    {"timeout", 0, OPT_REQUIRED, OPT_TIMEOUT},
                                    {"fallback", 0, OPT_REQUIRED, OPT_FALLBACK},
                                    {"force", 0, OPT_NONE, OPT_FORCE},
                                    {"json", 0, OPT_NONE, OPT_JSON},
                                    {"dry-run", 'n', OPT_NONE, OPT_DRY_RUN},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    ctxopt co;
    ctxopt_init(&co);
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, rc = EXIT_OK, done = 0;
    while (!done && (o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc)) {
            done = rc != EXIT_OK;
            continue;
        }
        switch (o) {
        case OPT_TIMEOUT:
            if (cmd_parse_interval(c, "--timeout", p.arg, &ra->timeout))
                rc = EXIT_USAGE, done = 1;
            break;
        case OPT_FALLBACK: ra->fallback = p.arg; break;
        case OPT_FORCE: ra->flags |= EXEC_FORCE; break;
        case OPT_JSON: ra->json = 1; break;
        case OPT_DRY_RUN: ra->dry_run = 1; break;
        case 'h': rc = cmd_help(c), done = 1; break;
        default: rc = cmd_bad_usage(c), done = 1; break;
        }
    }
    if (!done && p.noperands != 1) {
        cmd_error(c, "expected one PATTERN (see 'ndf run --help')\n");
        rc = EXIT_USAGE, done = 1;
    }
    if (!done) {
        ra->name = p.operands[0];
        rc = cmd_context_finish(c, &co, &ra->ctx);
    }
    ctxopt_free(&co);
    return rc;
}

/* The primary ended with `st` (its record `r`, or NULL when it did not
 * start): runs the fallback, saying why.  Returns the fallback's status;
 * *r2 gets its record. */
static int run_fallback(cmd_ctx *c, const run_args *ra, int st, record *r, int show, record **r2)
{
    fallback_cause cause = fallback_cause_of(st);
    if (r && show)
        cmd_run_summary(c, r, st);
    /* The summary already said why the primary failed, when there was
     * a record to summarize. */
    if (c->verbosity >= 0 && !(r && show))
        cmd_error(c, "%s\n", err_msg());
    if (c->verbosity >= 0)
        cmd_diag(c->err, cmd_name(c), DIAG_WARNING, "falling back to '%s' (cause: %s)\n",
                 ra->fallback, fallback_cause_name(cause));
    /* the hook writes the link into the record before it is stored */
    c->rt->hook.fallback_from = ra->name;
    c->rt->hook.fallback_cause = fallback_cause_name(cause);
    st = cmd_run_one(c, ra->fallback, ra->ctx, ra->timeout, ra->flags, show, r2);
    c->rt->hook.fallback_from = c->rt->hook.fallback_cause = NULL;
    if (*r2) {
        if (show)
            cmd_run_summary(c, *r2, st);
    } else {
        cmd_error(c, "%s\n", err_msg());
    }
    return st;
}

/* The exit code of `ndf run`: the execution's outcome once its pattern
 * started (record_outcome: a step's NDF_ERR_NOT_FOUND must not make ndf
 * exit as if the pattern name were wrong), else ndf's own status. */
static int run_exit_code(const record *r, int st)
{
    return exit_code_for(r && st == r->status ? record_outcome(r) : st);
}

static int cmd_run(cmd_ctx *c, int argc, char **argv)
{
    run_args ra = {0};
    int rc = run_parse(c, argc, argv, &ra);
    if (!ra.ctx)
        return rc;
    if (ra.dry_run) {
        rc = cmd_plan_show(c, ra.name, ra.ctx, ra.timeout, ra.json);
        context_free(ra.ctx);
        return rc;
    }
    if ((rc = cmd_start_executor(c, STORE_ORIGIN_RUN))) {
        context_free(ra.ctx);
        return rc;
    }
    int show = c->verbosity < 0 || ra.json ? 0 : c->verbosity > 0 ? 2 : 1;
    record *r = NULL, *r2 = NULL;
    int st = cmd_run_one(c, ra.name, ra.ctx, ra.timeout, ra.flags, show, &r);
    if (st && !r && !ra.fallback)
        cmd_error(c, "%s\n", err_msg());
    if (st && r && show && !ra.fallback)
        cmd_run_summary(c, r, st);
    if (st && st != NDF_ERR_CANCELLED && ra.fallback)
        st = run_fallback(c, &ra, st, r, show, &r2);
    else if (!st && show)
        cmd_run_summary(c, r, st);
    record *last = r2 ? r2 : r;
    int code = run_exit_code(last, st);
    /* -q: the pattern's own outcome (failed, timed out, cancelled) is told
     * by the exit status alone, but an error of ndf's (a storage error,
     * exit 8) that decides it is said even without the summary */
    if (last && (ra.json || c->verbosity < 0) && !cmd_outcome_code(code)) {
        pthread_mutex_lock(&last->lock);
        char *m = term_safe(last->error ? last->error : ndf_status_name(last->status));
        pthread_mutex_unlock(&last->lock);
        cmd_error(c, "%s\n", m);
        free(m);
    }
    if (last) {
        if (ra.json) {
            strbuf sb;
            sb_init(&sb);
            record_to_json(last, &sb);
            fprintf(c->out, "%s\n", sb.buf);
            sb_free(&sb);
        }
    }
    record_unref(r);
    record_unref(r2);
    context_free(ra.ctx);
    return code;
}

/* ---- batch ---- */

typedef struct bline {
    long lineno;
    char *pattern;
    ndf_context *ctx;
    double timeout;
    char *error; /* parse error, or NULL */
    int status;
    int delegate;   /* "kind": "delegate": ctx is the context to delegate */
    delegate_opts o; /* its options */
} bline;

/* The longest batch line taken; a longer one is an error result, read past
 * without being kept, so an endless line cannot exhaust memory. */
#define BATCH_LINE_MAX (1 << 20)

/* Reads one line (with its newline) into `sb`, keeping at most `max` bytes;
 * *too_long is set when more were discarded.  Returns 0 at end of input or
 * on a read error (ferror tells which), else 1. */
static int read_line(FILE *f, strbuf *sb, size_t max, int *too_long)
{
    int c;
    while ((c = getc(f)) != EOF) {
        if (sb->len < max) {
            char ch = (char)c;
            sb_add(sb, &ch, 1);
        } else {
            *too_long = 1;
        }
        if (c == '\n')
            return 1;
    }
    return 0;
}

/* The options of a "delegate" line: "policy", "seed", "max_fallbacks".
 * Returns NULL, or the error (caller frees). */
static char *parse_delegate_opts(const cJSON *j, delegate_opts *o, const char *origin, long line)
{
    const cJSON *pol = cJSON_GetObjectItemCaseSensitive(j, "policy");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    const cJSON *mf = cJSON_GetObjectItemCaseSensitive(j, "max_fallbacks");
    if (pol && (!cJSON_IsString(pol) || delegate_policy_parse(pol->valuestring, &o->policy)))
        return xasprintf("%s:%ld: \"policy\" must be thompson, greedy, ucb, fixed or "
                         "epsilon_greedy",
                         origin, line);
    if (seed) {
        double x = cJSON_IsNumber(seed) ? seed->valuedouble : -1;
        if (!(x >= 0 && x <= 9007199254740992.0 && x == floor(x)))
            return xasprintf("%s:%ld: \"seed\" must be a whole number from 0 to 2^53", origin,
                             line);
        o->has_seed = 1;
        o->seed = (uint64_t)x;
    }
    if (mf) {
        double x = cJSON_IsNumber(mf) ? mf->valuedouble : -1;
        if (!(x >= 0 && x <= 1000000 && x == floor(x)))
            return xasprintf("%s:%ld: \"max_fallbacks\" must be a whole number from 0", origin,
                             line);
        o->max_fallbacks = (unsigned)x;
    }
    return NULL;
}

static void parse_line(bline *b, const char *text, const char *origin)
{
    const char *end = NULL, *nul = json_nul_escape(text, strlen(text));
    if (nul) {
        /* cJSON would cut the string there: a pattern name or context
         * that reads as another, without a word */
        b->error = xasprintf("%s:%ld: column %ld: a string holds \\u0000 (NUL), which no "
                             "pattern name or context may hold",
                             origin, b->lineno, (long)(nul - text) + 1);
        return;
    }
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        /* cJSON stops at the first byte it cannot take (or at its nesting
         * limit of CJSON_NESTING_LIMIT); say where. */
        b->error = xasprintf("%s:%ld: invalid JSON at column %ld", origin, b->lineno,
                             end ? (long)(end - text) + 1 : 1L);
        return;
    }
    if (!cJSON_IsObject(j)) {
        b->error = xasprintf("%s:%ld: not a JSON object", origin, b->lineno);
        cJSON_Delete(j);
        return;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *cx = cJSON_GetObjectItemCaseSensitive(j, "context");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "timeout");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    if (kind && !(cJSON_IsString(kind) && (strcmp(kind->valuestring, "run") == 0 ||
                                           strcmp(kind->valuestring, "delegate") == 0))) {
        b->error = xasprintf("%s:%ld: \"kind\" must be \"run\" or \"delegate\"", origin,
                             b->lineno);
    } else if (kind && strcmp(kind->valuestring, "delegate") == 0) {
        b->delegate = 1;
        delegate_opts_default(&b->o);
        b->o.max_fallbacks = DELEGATION_FALLBACKS_CONFIGURED;
        b->error = parse_delegate_opts(j, &b->o, origin, b->lineno);
        if (!b->error && p)
            b->error = xasprintf("%s:%ld: a \"delegate\" line chooses its pattern: it takes no "
                                 "\"pattern\"",
                                 origin, b->lineno);
    } else if (!cJSON_IsString(p) || !*p->valuestring) {
        b->error = xasprintf("%s:%ld: \"pattern\" must be a non-empty string", origin, b->lineno);
    }
    if (!b->error && cx && !cJSON_IsObject(cx)) {
        b->error = xasprintf("%s:%ld: \"context\" must be an object", origin, b->lineno);
    } else if (!b->error && t && (!cJSON_IsNumber(t) || !(t->valuedouble > 0))) {
        b->error = xasprintf("%s:%ld: \"timeout\" must be a number above 0", origin, b->lineno);
    } else if (!b->error) {
        b->pattern = b->delegate ? NULL : xstrdup(p->valuestring);
        b->timeout = t ? t->valuedouble : 0;
        if (cx) {
            char *ctext = cJSON_PrintUnformatted(cx);
            char *where = xasprintf("%s:%ld", origin, b->lineno);
            if (!ctext || context_from_json(ctext, where, &b->ctx) != NDF_OK)
                b->error = xstrdup(err_msg());
            free(where);
            cJSON_free(ctext);
        } else {
            b->ctx = context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
        }
    }
    cJSON_Delete(j);
}

/* The result of a "delegate" line: as a run's, with "kind", the pattern
 * that ran last (null when none did) and the delegation as `ndf delegate
 * --json` prints it. */
static void delegate_line(FILE *out, const bline *b, const delegation *d)
{
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "{\"line\":%ld,\"kind\":\"delegate\",\"pattern\":", b->lineno);
    const delegation_attempt *last = d->nattempts ? &d->attempts[d->nattempts - 1] : NULL;
    if (last)
        sb_json_str(&sb, last->pattern);
    else
        sb_puts(&sb, "null");
    sb_printf(&sb, ",\"success\":%s,\"status\":\"%s\"", d->status ? "false" : "true",
              ndf_status_name(d->status));
    if (last && last->id[0]) {
        sb_puts(&sb, ",\"id\":");
        sb_json_str(&sb, last->id);
    }
    if (d->status && d->error) {
        sb_puts(&sb, ",\"error\":");
        sb_json_str(&sb, d->error);
    }
    sb_puts(&sb, ",\"delegation\":");
    delegation_to_json(d, &sb);
    sb_puts(&sb, "}");
    fprintf(out, "%s\n", sb.buf);
    sb_free(&sb);
}

static void result_line(FILE *out, const bline *b, const batch_result *res)
{
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "{\"line\":%ld", b->lineno);
    if (b->pattern) {
        sb_puts(&sb, ",\"pattern\":");
        sb_json_str(&sb, b->pattern);
    }
    int st = b->error ? (b->status ? b->status : NDF_ERR_INVALID) : res->status;
    sb_printf(&sb, ",\"success\":%s,\"status\":\"%s\"", st ? "false" : "true", ndf_status_name(st));
    if (res && res->rec) {
        sb_puts(&sb, ",\"id\":");
        sb_json_str(&sb, res->rec->id);
        double d = res->rec->end > 0 && res->rec->root->start > 0
                       ? res->rec->end - res->rec->root->start
                       : 0;
        sb_printf(&sb, ",\"duration\":%.6g", d);
    }
    const char *err = b->error ? b->error : res ? res->error : NULL;
    if (err) {
        sb_puts(&sb, ",\"error\":");
        sb_json_str(&sb, err);
    }
    sb_puts(&sb, "}");
    fprintf(out, "%s\n", sb.buf);
    sb_free(&sb);
}

static const char batch_usage[] =
    "Usage: ndf batch [--sequential] FILE|-\n"
    "       ndf batch [--sequential] --items TEXT\n"
    "\n"
    "Runs one pattern per input line, a JSON object\n"
    "  {\"pattern\": NAME, \"context\": {...}, \"timeout\": S}\n"
    "(context and timeout optional), all at once unless --sequential, and\n"
    "prints one JSON result per line in input order.  A line\n"
    "  {\"kind\": \"delegate\", \"context\": {...}, \"policy\": P, \"seed\": N,\n"
    "   \"max_fallbacks\": K, \"timeout\": S}\n"
    "delegates its context as 'ndf delegate' does; delegations run one after\n"
    "another, after the other lines, each learning from those before it.\n"
    "--items takes the lines themselves instead of a file ('ndf ctl batch FILE'\n"
    "reads FILE on the client's side and sends them so).\n"
    "Exits 1 if any failed.\n";

static void blines_free(bline *lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(lines[i].pattern);
        free(lines[i].error);
        context_free(lines[i].ctx);
    }
    free(lines);
}

/* Reads every line of `f` (named `origin` in messages): blank lines and
 * comments are skipped, the others parsed or marked with their error.
 * Returns 0, or -1 on a read error. */
static int batch_read(FILE *f, const char *origin, bline **out, size_t *nout)
{
    bline *lines = NULL;
    size_t n = 0;
    strbuf line;
    sb_init(&line);
    long lineno = 0;
    int more = 1;
    while (more) {
        int too_long = 0;
        more = read_line(f, &line, BATCH_LINE_MAX, &too_long);
        if (!more && line.len == 0)
            break;
        lineno++;
        while (line.len > 0 && (line.buf[line.len - 1] == '\n' || line.buf[line.len - 1] == '\r'))
            line.buf[--line.len] = '\0';
        const char *s = line.buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!too_long && (!*s || *s == '#') && strlen(line.buf) == line.len) {
            line.len = 0; /* skipped, and not glued to the next line */
            continue;
        }
        lines = xrealloc(lines, (n + 1) * sizeof *lines);
        memset(&lines[n], 0, sizeof lines[n]);
        lines[n].lineno = lineno;
        if (too_long)
            lines[n].error =
                xasprintf("%s:%ld: line longer than %d bytes", origin, lineno, BATCH_LINE_MAX);
        else if (strlen(line.buf) != line.len)
            lines[n].error = xasprintf("%s:%ld: the line contains a NUL byte", origin, lineno);
        else
            parse_line(&lines[n], s, origin);
        n++;
        line.len = 0;
        if (line.buf)
            line.buf[0] = '\0';
    }
    sb_free(&line);
    *out = lines;
    *nout = n;
    return ferror(f) ? -1 : 0;
}

/* Runs the lines that parsed (all at once unless !parallel) and prints one
 * result per line in input order.  Returns how many failed; *io is set
 * when one of them failed for the store's sake (its end not recorded). */
static size_t batch_run(cmd_ctx *c, bline *lines, size_t n, int parallel, int *io)
{
    batch_item *items = xcalloc(n ? n : 1, sizeof *items);
    size_t m = 0;
    /* Each line is refused as `ndf run` would refuse it, before any runs:
     * the others still run. */
    /* A delegate line names no pattern until one is chosen, so it is not
     * checked here: an attempt whose template cannot be resolved fails at
     * that step, and the delegation falls back. */
    /* served: the check reads the plugin loader, which a reload rescans */
    if (c->served && c->gs)
        genset_lock(c->gs);
    for (size_t i = 0; i < n; i++)
        if (!lines[i].error && !lines[i].delegate &&
            cmd_plan_check(c->rt, lines[i].pattern, lines[i].ctx, lines[i].timeout) != NDF_OK) {
            lines[i].status = NDF_ERR_VALIDATION;
            lines[i].error = xstrdup(err_msg());
        }
    if (c->served && c->gs)
        genset_unlock(c->gs);
    for (size_t i = 0; i < n; i++)
        if (!lines[i].error && !lines[i].delegate)
            items[m++] = (batch_item){lines[i].pattern, lines[i].ctx, lines[i].timeout};
    batch_result *res = xcalloc(m ? m : 1, sizeof *res);
    size_t failed = executor_batch(c->rt->ex, items, m, parallel, 0, res);
    /* Delegations in input order, one at a time: each chooses with what
     * the ones before it taught. */
    delegation *dl = xcalloc(n ? n : 1, sizeof *dl);
    for (size_t i = 0; i < n; i++) {
        if (lines[i].error || !lines[i].delegate)
            continue;
        delegation_opts_from(c->rt, &lines[i].o);
        lines[i].o.explain = 1;
        int drc = delegation_run(c->rt, lines[i].ctx, &lines[i].o, lines[i].timeout,
                                 STORE_ORIGIN_BATCH, NULL, NULL, &dl[i]);
        failed += drc != NDF_OK;
        *io |= drc == NDF_ERR_IO;
    }
    /* The ends were handed to the writer (history_hook.async): nothing is
     * printed before they are committed, and one that was not is a
     * storage error whatever its outcome. */
    if (c->rt->st)
        store_flush(c->rt->st);
    for (size_t i = 0; i < m; i++) {
        record *r = res[i].rec;
        if (!r || !atomic_load(&r->unrecorded) || res[i].status == NDF_ERR_IO)
            continue;
        failed += res[i].status == NDF_OK;
        res[i].status = NDF_ERR_IO;
        free(res[i].error);
        pthread_mutex_lock(&r->lock);
        res[i].error = xstrdup(r->unrecorded_why ? r->unrecorded_why
                               : r->error        ? r->error
                                                 : "not recorded");
        pthread_mutex_unlock(&r->lock);
    }
    for (size_t i = 0; i < m; i++)
        *io |= res[i].status == NDF_ERR_IO;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (lines[i].error) {
            failed++;
            result_line(c->out, &lines[i], NULL);
        } else if (lines[i].delegate) {
            delegate_line(c->out, &lines[i], &dl[i]);
            delegation_free(&dl[i]);
        } else {
            result_line(c->out, &lines[i], &res[k++]);
        }
    }
    batch_results_free(res, m);
    free(res);
    free(items);
    free(dl);
    return failed;
}

static int cmd_batch(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"sequential", 's', OPT_NONE, 's'},
                                    {"items", 0, OPT_REQUIRED, 'i'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    int parallel = 1, o;
    const char *items = NULL;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 's': parallel = 0; break;
        case 'i': items = p.arg; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (items ? p.noperands != 0 : p.noperands != 1) {
        cmd_error(c, "expected one FILE, '-' or --items (see 'ndf batch --help')\n");
        return EXIT_USAGE;
    }
    if (!items && cmd_refuse_served(c, "ndf ctl batch reads FILE and sends its lines"))
        return CMD_REFUSED;
    const char *path = items ? "request" : p.operands[0];
    int is_stdin = !items && strcmp(path, "-") == 0;
    FILE *f = items       ? fmemopen((void *)items, strlen(items), "r")
              : is_stdin ? c->in
                         : fopen(path, "r");
    if (!f) {
        cmd_error(c, "cannot open %s: %s\n", path,
                  is_stdin ? "no standard input" : strerror(errno));
        return items ? EXIT_IO : EXIT_NOT_FOUND;
    }
    const char *origin = is_stdin ? "<stdin>" : path;
    bline *lines;
    size_t n;
    int read_err = batch_read(f, origin, &lines, &n);
    if (!is_stdin)
        fclose(f);
    if (read_err) {
        cmd_error(c, "error reading %s\n", origin);
        blines_free(lines, n);
        return EXIT_IO;
    }
    /* served, the generation's executor runs them (recorded with origin
     * ctl, as the server's runs are); the shared runtime is not written */
    int rc = c->served ? (c->rt->ex ? EXIT_OK : EXIT_IO) : cmd_start_executor(c, STORE_ORIGIN_BATCH);
    if (rc) {
        blines_free(lines, n);
        return rc;
    }
    /* one transaction may then carry the ends of many executions */
    c->rt->hook.async = 1;
    int io = 0;
    size_t failed = batch_run(c, lines, n, parallel, &io);
    blines_free(lines, n);
    if (c->rt->st) {
        /* how well the writer grouped them (ndf batch -v) */
        store_stats ss;
        store_get_stats(c->rt->st, &ss);
        log_msg(NDF_LOG_INFO,
                "batch: %llu execution ends recorded in %llu transactions (%.1f per transaction)",
                (unsigned long long)ss.executions, (unsigned long long)ss.transactions,
                ss.transactions ? (double)ss.executions / (double)ss.transactions : 0.0);
    }
    /* a storage error is the batch's, whatever the other items did: its
     * results are not all in the store */
    return io ? EXIT_IO : failed ? EXIT_FAILED : EXIT_OK;
}

/* ---- status ---- */

static void status_node(FILE *out, const cJSON *n, int depth)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(n, "kind");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(n, "name");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(n, "state");
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(n, "duration");
    const cJSON *prog = cJSON_GetObjectItemCaseSensitive(n, "progress");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(n, "message");
    fprintf(out, "%*s%-11s %s %s", depth * 2, "", cJSON_IsString(state) ? state->valuestring : "?",
            cJSON_IsString(kind) ? kind->valuestring : "?",
            cJSON_IsString(name) ? name->valuestring : "?");
    if (cJSON_IsNumber(dur))
        fprintf(out, "  %.3fs", dur->valuedouble);
    if (cJSON_IsNumber(prog) && prog->valuedouble < 100 &&
        cJSON_GetObjectItemCaseSensitive(n, "children"))
        fprintf(out, "  %.0f%%", prog->valuedouble);
    if (cJSON_IsString(msg) && *msg->valuestring) {
        char *m = term_safe(msg->valuestring);
        fprintf(out, "  (%s)", m);
        free(m);
    }
    fputc('\n', out);
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(n, "children");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(n, "stderr");
    if (cJSON_IsString(state) && cJSON_IsString(se) && !kids &&
        (strcmp(state->valuestring, "FAILED") == 0 || strcmp(state->valuestring, "TIMED_OUT") == 0))
        cmd_output_tail(out, depth * 2 + 2, se->valuestring, strlen(se->valuestring), 0, NULL);
    const cJSON *k;
    cJSON_ArrayForEach(k, kids) status_node(out, k, depth + 1);
}

void status_print(FILE *out, const cJSON *j)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(j, "fallback_from");
    const cJSON *cause = cJSON_GetObjectItemCaseSensitive(j, "fallback_cause");
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(j, "duration");
    /* a rollback's answer: how long the rollback took, not its run */
    const cJSON *rdur = cJSON_GetObjectItemCaseSensitive(j, "rollback_duration");
    if (cJSON_IsNumber(rdur))
        dur = rdur;
    fprintf(out, "execution %s: %s", cJSON_IsString(id) ? id->valuestring : "?",
            cJSON_IsString(status) ? status->valuestring : "running");
    if (cJSON_IsNumber(dur))
        fprintf(out, " in %.3fs", dur->valuedouble);
    fputc('\n', out);
    if (cJSON_IsString(from))
        fprintf(out, "fallback from %s (cause: %s)\n", from->valuestring,
                cJSON_IsString(cause) ? cause->valuestring : "?");
    if (cJSON_IsString(err)) {
        char *m = term_safe(err->valuestring);
        fprintf(out, "error: %s\n", m);
        free(m);
    }
    status_node(out, cJSON_GetObjectItemCaseSensitive(j, "root"), 0);
}

const cmd_entry cmd_run_entry = {
    .name = "run",
    .summary = "run a pattern, showing its progress",
    .usage = run_usage,
    .exec = cmd_run,
};

const cmd_entry cmd_batch_entry = {
    .name = "batch",
    .summary = "run patterns listed as JSON lines, results in input order",
    .usage = batch_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_batch,
};
