/* `ndf metrics`: the store's figures (and, served, the executor's live
 * gauges) in the Prometheus text exposition format, on standard output or
 * written atomically into a node_exporter textfile-collector file, once or
 * on an interval.  `ndf ctl metrics` (cmd_ctl.c) adds the server's own
 * counters through the same writer.  The metric names are documented in
 * ndf(1), METRICS. */
#include "build-config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opt.h"
#include "conf/config.h"
#include "exec/executor.h"
#include "exec/pool.h"
#include "exec/record.h"
#include "store/store.h"
#include "base/fsutil.h"
#include "base/hashmap.h"
#include "base/util.h"

/* Upper bounds (seconds) of the duration histogram's buckets: from a step
 * that only echoes to a nightly job of an hour. */
static const double bucket_le[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600};
#define NBUCKETS (sizeof bucket_le / sizeof bucket_le[0])
#define NSTATUS 8 /* store_status values */

/* What the window of kept executions says about one pattern. */
typedef struct pat_window {
    char *name;
    uint64_t by_status[NSTATUS];
    uint64_t buckets[NBUCKETS]; /* not cumulative yet */
    uint64_t count;             /* finished executions with a duration */
    double sum;
} pat_window;

static void sb_char(strbuf *sb, char ch)
{
    sb_add(sb, &ch, 1);
}

/* A label value as the exposition format wants it: backslash, double
 * quote and line feed escaped. */
static void label_value(strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            sb_printf(sb, "\\%c", *s);
        else if (*s == '\n')
            sb_puts(sb, "\\n");
        else
            sb_add(sb, s, 1);
    }
}

/* A sample value: integers as integers, others with as many digits as
 * they need; the format's own spellings for the non-finite. */
static void value(strbuf *sb, double v)
{
    if (isnan(v))
        sb_puts(sb, "NaN");
    else if (isinf(v))
        sb_puts(sb, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        sb_printf(sb, "%.0f", v);
    else {
        /* the shortest text that reads back as v: "0.05", not
         * "0.050000000000000003" (a bucket's le is matched as text) */
        char buf[32];
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        sb_puts(sb, buf);
    }
}

static void family(strbuf *sb, const char *name, const char *type, const char *help)
{
    sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(strbuf *sb, const char *name, const char *pat, double v)
{
    sb_puts(sb, name);
    if (pat) {
        sb_puts(sb, "{pattern=\"");
        label_value(sb, pat);
        sb_puts(sb, "\"}");
    }
    sb_char(sb, ' ');
    value(sb, v);
    sb_char(sb, '\n');
}

static char *lower(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* ---- the learning state: counters since the pattern was created ---- */

typedef struct learned {
    char **names;
    learning_state *st;
    size_t n;
} learned;

static void take_learning(void *arg, const char *name, learning_state *st)
{
    learned *l = arg;
    l->names = xrealloc(l->names, (l->n + 1) * sizeof *l->names);
    l->st = xrealloc(l->st, (l->n + 1) * sizeof *l->st);
    l->names[l->n] = xstrdup(name);
    l->st[l->n] = *st;
    memset(st, 0, sizeof *st);
    l->n++;
}

static void learned_free(learned *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        learning_free(&l->st[i]);
    }
    free(l->names);
    free(l->st);
}

static void put_learning(strbuf *sb, const learned *l)
{
    family(sb, "ndf_pattern_executions_total", "counter",
           "Executions counted in the pattern's learning state (ndf reset-stats starts it over).");
    for (size_t i = 0; i < l->n; i++)
        sample(sb, "ndf_pattern_executions_total", l->names[i], (double)l->st[i].executions);
    family(sb, "ndf_pattern_successes_total", "counter",
           "Successful executions counted in the pattern's learning state.");
    for (size_t i = 0; i < l->n; i++)
        sample(sb, "ndf_pattern_successes_total", l->names[i], (double)l->st[i].successes);
    family(sb, "ndf_pattern_duration_seconds_total", "counter",
           "Seconds spent by the counted executions that were timed.");
    for (size_t i = 0; i < l->n; i++)
        sample(sb, "ndf_pattern_duration_seconds_total", l->names[i], l->st[i].duration_total);
    family(sb, "ndf_pattern_timed_executions_total", "counter",
           "Counted executions recorded with a duration.");
    for (size_t i = 0; i < l->n; i++)
        sample(sb, "ndf_pattern_timed_executions_total", l->names[i], (double)l->st[i].timed);
    family(sb, "ndf_pattern_confidence", "gauge", "The pattern's confidence score, 0 to 1.");
    for (size_t i = 0; i < l->n; i++)
        sample(sb, "ndf_pattern_confidence", l->names[i], l->st[i].score);
    family(sb, "ndf_pattern_last_execution_timestamp_seconds", "gauge",
           "When the pattern last ran (Unix time; 0: never).");
    for (size_t i = 0; i < l->n; i++)
        sample(sb, "ndf_pattern_last_execution_timestamp_seconds", l->names[i], l->st[i].last_used);
}

/* ---- the window of kept executions ---- */

static int cmp_window(const void *a, const void *b)
{
    return strcmp(((const pat_window *)a)->name, ((const pat_window *)b)->name);
}

/* Reads the executions started in the last `window` seconds (0: all kept)
 * into per-pattern figures, sorted by name: one for each pattern of `l`
 * too, with none in the window, so that its series read 0 rather than
 * vanish (and an alert on them go quiet). */
static int read_window(store *s, const learned *l, double window, pat_window **out, size_t *nout)
{
    store_query q = {.pattern = NULL,
                     .status = -1,
                     .since = window > 0 ? now_wall() - window : 0,
                     .limit = SIZE_MAX};
    store_exec *v;
    size_t n;
    int rc = store_runs(s, &q, &v, &n);
    if (rc)
        return rc;
    pat_window *all = NULL;
    size_t nall = 0;
    hashmap *by = hashmap_new(); /* name -> index + 1: the array moves as it grows */
    for (size_t i = 0; i < n + l->n; i++) {
        const char *name = i < l->n ? l->names[i] : v[i - l->n].pattern;
        uintptr_t k = (uintptr_t)hashmap_get(by, name);
        if (!k) {
            all = xrealloc(all, (nall + 1) * sizeof *all);
            memset(&all[nall], 0, sizeof all[nall]);
            all[nall].name = xstrdup(name);
            k = ++nall;
            hashmap_put(by, name, (void *)k);
        }
        if (i < l->n)
            continue;
        const store_exec *e = &v[i - l->n];
        pat_window *w = &all[k - 1];
        if ((unsigned)e->status < NSTATUS)
            w->by_status[e->status]++;
        if (e->status == STORE_RUNNING)
            continue;
        double d = e->duration > 0                     ? e->duration
                   : e->end > e->start && e->start > 0 ? e->end - e->start
                                                       : -1;
        if (d < 0)
            continue;
        w->count++;
        w->sum += d;
        for (size_t b = 0; b < NBUCKETS; b++)
            if (d <= bucket_le[b]) {
                w->buckets[b]++;
                break;
            }
    }
    hashmap_free(by, NULL);
    store_exec_array_free(v, n);
    if (nall)
        qsort(all, nall, sizeof *all, cmp_window);
    *out = all;
    *nout = nall;
    return NDF_OK;
}

static void put_window(strbuf *sb, const pat_window *w, size_t n, double window)
{
    family(sb, "ndf_executions", "gauge",
           "Executions kept in the store that started in the window, by pattern and status "
           "(status running: running now, or died without a record of its end).");
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < NSTATUS; s++) {
            /* every status of a pattern present, so that a series does not
             * vanish (and an alert on it go quiet) when it drops to 0 */
            char *st = lower(store_status_name((store_status)s));
            sb_puts(sb, "ndf_executions{pattern=\"");
            label_value(sb, w[i].name);
            sb_printf(sb, "\",status=\"%s\"} ", st);
            value(sb, (double)w[i].by_status[s]);
            sb_char(sb, '\n');
            free(st);
        }
    family(sb, "ndf_execution_duration_seconds", "histogram",
           "Durations of the finished executions kept in the store that started in the window.");
    for (size_t i = 0; i < n; i++) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cum += b < NBUCKETS ? w[i].buckets[b] : 0;
            sb_puts(sb, "ndf_execution_duration_seconds_bucket{pattern=\"");
            label_value(sb, w[i].name);
            sb_puts(sb, "\",le=\"");
            if (b < NBUCKETS)
                value(sb, bucket_le[b]);
            else
                sb_puts(sb, "+Inf");
            sb_puts(sb, "\"} ");
            value(sb, (double)(b < NBUCKETS ? cum : w[i].count));
            sb_char(sb, '\n');
        }
        sb_puts(sb, "ndf_execution_duration_seconds_sum{pattern=\"");
        label_value(sb, w[i].name);
        sb_puts(sb, "\"} ");
        value(sb, w[i].sum);
        sb_puts(sb, "\nndf_execution_duration_seconds_count{pattern=\"");
        label_value(sb, w[i].name);
        sb_puts(sb, "\"} ");
        value(sb, (double)w[i].count);
        sb_char(sb, '\n');
    }
    family(sb, "ndf_metrics_window_seconds", "gauge",
           "The window of ndf_executions and ndf_execution_duration_seconds (0: all kept).");
    sample(sb, "ndf_metrics_window_seconds", NULL, window);
}

static void windows_free(pat_window *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(w[i].name);
    free(w);
}

/* ---- the whole exposition ---- */

/* Appends the store's families (ndf_store_up 0 and nothing else from it
 * when `s` is NULL or cannot be read) and, when `ex` is not NULL, the
 * executor's live gauges.  `absent`: there is no store yet (nothing has
 * run), which reads as a store with no pattern in it.  Returns NDF_OK, or
 * the status of the store read that failed (err_msg() says why; the
 * exposition is still complete). */
static int collect(store *s, int absent, executor *ex, double window, strbuf *sb)
{
    int rc = s || absent ? NDF_OK : NDF_ERR_IO;
    learned l = {0};
    pat_window *w = NULL;
    size_t nw = 0;
    if (s && (rc = store_learning_all(s, take_learning, &l)) == NDF_OK)
        rc = read_window(s, &l, window, &w, &nw);
    if (rc == NDF_OK) {
        put_learning(sb, &l);
        put_window(sb, w, nw, window);
    }
    learned_free(&l);
    windows_free(w, nw);

    family(sb, "ndf_store_up", "gauge",
           "1 when the store could be opened and read, or does not exist yet (nothing has run).");
    sample(sb, "ndf_store_up", NULL, rc == NDF_OK);
    if (s || absent) {
        store_stats st = {0};
        if (s)
            store_get_stats(s, &st);
        family(sb, "ndf_store_degraded", "gauge", "1 when this process's last store write failed.");
        sample(sb, "ndf_store_degraded", NULL, st.degraded);
        family(sb, "ndf_store_pending_writes", "gauge",
               "Store writes of this process queued or being committed.");
        sample(sb, "ndf_store_pending_writes", NULL, (double)st.pending);
        family(sb, "ndf_store_transactions_total", "counter",
               "Group-commit transactions this process committed.");
        sample(sb, "ndf_store_transactions_total", NULL, (double)st.transactions);
    }
    if (ex) {
        pool_stats ps;
        executor_health(ex, &ps);
        record **run = NULL;
        size_t nrun = executor_running(ex, &run);
        for (size_t i = 0; i < nrun; i++)
            record_unref(run[i]);
        free(run);
        family(sb, "ndf_executions_running", "gauge", "Executions running in this server now.");
        sample(sb, "ndf_executions_running", NULL, (double)nrun);
        family(sb, "ndf_workers", "gauge", "Worker threads the executor was configured with.");
        sample(sb, "ndf_workers", NULL, ps.threads);
        family(sb, "ndf_workers_available", "gauge", "Worker threads that can take work.");
        sample(sb, "ndf_workers_available", NULL, ps.active);
        family(sb, "ndf_workers_abandoned", "gauge",
               "Worker threads stuck in work that was given up on (an overrun step).");
        sample(sb, "ndf_workers_abandoned", NULL, ps.abandoned);
        family(sb, "ndf_workers_replaced_total", "counter", "Abandoned workers replaced.");
        sample(sb, "ndf_workers_replaced_total", NULL, (double)ps.replaced);
        family(sb, "ndf_workers_unreplaced_total", "counter",
               "Abandoned workers that could not be replaced.");
        sample(sb, "ndf_workers_unreplaced_total", NULL, (double)ps.unreplaced);
    }
    return rc;
}

/* ---- writing it ---- */

int cmd_metrics_check_textfile(cmd_ctx *c, const char *opt, const char *path)
{
    size_t len = strlen(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* node_exporter's textfile collector reads *.prom and nothing else: a
     * file by another name would be written forever and never read */
    if (len < 5 || strcmp(path + len - 5, ".prom") != 0) {
        cmd_error(c,
                  "%s '%s': the name must end in .prom (node_exporter's textfile "
                  "collector reads no other)\n",
                  opt, path);
        return EXIT_USAGE;
    }
    /* ".prom" alone, or a hidden name: what an operator meant is not
     * that, and the writer's own temporary files are the hidden ones */
    if (base[0] == '.') {
        cmd_error(c, "%s '%s': the file needs a name before .prom that does not start with '.'\n",
                  opt, path);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cmd_metrics_write(cmd_ctx *c, const char *path, const char *text, size_t len)
{
    if (!path) {
        if (fwrite(text, 1, len, c->out) != len || fflush(c->out) != 0) {
            cmd_error(c, "cannot write to standard output: %s\n", strerror(errno));
            return EXIT_IO;
        }
        return EXIT_OK;
    }
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *name = path;
    if (slash) {
        name = path + (slash - dir) + 1;
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    } else {
        strcpy(dir, ".");
    }
    /* a temporary ".NAME.tmp-*" beside it, renamed over it: the collector
     * reads the old exposition or the new, never half of one */
    int st = fs_replace(dir, name, text, len, 0644);
    free(dir);
    if (st) {
        cmd_error(c, "%s\n", err_msg());
        return EXIT_IO;
    }
    return EXIT_OK;
}

int cmd_metrics_sleep(double seconds)
{
    double until = now_mono() + seconds;
    while (!cmd_signal_received()) {
        double left = until - now_mono();
        if (left <= 0)
            return 0;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(fmin(left, 0.1) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* ---- the command ---- */

static const char metrics_usage[] =
    "Usage: ndf metrics [--window SECONDS] [--textfile FILE.prom [--interval SECONDS]]\n"
    "\n"
    "Prints the store's figures in the Prometheus text exposition format:\n"
    "per pattern its counted executions, successes and time (counters), its\n"
    "confidence, the kept executions of the window by status and a histogram\n"
    "of their durations, and the store's health; 'ndf ctl metrics' adds the\n"
    "running server's live gauges and counters.  The names are in ndf(1).\n"
    "\n"
    "Options:\n"
    "  --window SECONDS     executions started this long ago or later count in\n"
    "                       ndf_executions and the histogram (default 86400;\n"
    "                       0: all the store keeps)\n"
    "  --textfile FILE.prom write the exposition to FILE.prom, atomically (for\n"
    "                       node_exporter's textfile collector), not to stdout\n"
    "  --interval SECONDS   with --textfile: write it again every SECONDS until\n"
    "                       SIGINT or SIGTERM\n"
    "\n"
    "Exit status: 0; 2 on a usage error; 8 when the store cannot be read (the\n"
    "exposition is still written, with ndf_store_up 0).\n";

int cmd_metrics_options(cmd_ctx *c, int argc, char **argv, cmd_metrics_args *a)
{
    static const opt_spec opts[] = {{"window", 0, OPT_REQUIRED, 'w'},
                                    {"textfile", 0, OPT_REQUIRED, 't'},
                                    {"interval", 0, OPT_REQUIRED, 'i'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    a->window = 86400;
    a->textfile = NULL;
    a->interval = 0;
    a->help = 0;
    int o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'w':
            if (cmd_parse_seconds(c, "--window", p.arg, &a->window))
                return EXIT_USAGE;
            break;
        case 't':
            if (cmd_refuse_served(c, "the server writes no file a client names: run "
                                     "'ndf ctl metrics --textfile FILE' on the client's side"))
                return CMD_REFUSED;
            a->textfile = p.arg;
            break;
        case 'i':
            if (cmd_parse_interval(c, "--interval", p.arg, &a->interval))
                return EXIT_USAGE;
            break;
        case 'h': a->help = 1; return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands) {
        cmd_error(c, "unexpected argument '%s' (see 'ndf %s --help')\n", p.operands[0],
                  c->entry->name);
        return EXIT_USAGE;
    }
    if (a->interval > 0 && !a->textfile) {
        cmd_error(c, "--interval needs --textfile (a scraper reads standard output once)\n");
        return EXIT_USAGE;
    }
    if (a->textfile)
        return cmd_metrics_check_textfile(c, "--textfile", a->textfile);
    return EXIT_OK;
}

/* Whether the configuration's store is yet to be made: an SQLite store
 * whose database file does not exist.  A report must not create one. */
static int store_absent(cmd_ctx *c)
{
    const config *cfg = c->rt->cfg;
    if (c->served || !cfg || cfg->set.storage_backend != STORE_BACKEND_SQLITE ||
        !cfg->set.storage_path)
        return 0;
    char *db = xasprintf("%s/%s", cfg->set.storage_path, STORE_DB_NAME);
    struct stat st;
    int absent = lstat(db, &st) != 0 && errno == ENOENT;
    free(db);
    return absent;
}

static int cmd_metrics(cmd_ctx *c, int argc, char **argv)
{
    cmd_metrics_args a;
    int rc = cmd_metrics_options(c, argc, argv, &a);
    if (rc != EXIT_OK || a.help)
        return rc;
    if (a.interval > 0)
        cmd_signals_arm(NULL);
    int st = runtime_load(c->rt, RT_CONFIG);
    if (st)
        return exit_code_for(st);
    /* the store is opened once, when there is one: a textfile loop reads
     * it on each round, and opens it once the first execution made it */
    int orc = EXIT_OK, absent = store_absent(c), said = 0;
    store *s = absent ? NULL : cmd_open_store(c, RT_CONFIG, &orc);
    do {
        if (absent && !store_absent(c)) {
            absent = 0;
            s = cmd_open_store(c, RT_CONFIG, &orc);
        }
        if (absent && !said++)
            cmd_warn(c, "no store yet in %s (nothing has run): no pattern to report\n",
                     c->rt->cfg->set.storage_path);
        strbuf sb;
        sb_init(&sb);
        st = collect(s, absent, c->served ? c->rt->ex : NULL, a.window, &sb);
        if (st && s)
            cmd_error(c, "%s\n", err_msg());
        rc = cmd_metrics_write(c, a.textfile, sb.buf ? sb.buf : "", sb.len);
        sb_free(&sb);
        if (rc == EXIT_OK && st)
            rc = s ? exit_code_for(st) : orc;
    } while (a.interval > 0 && cmd_metrics_sleep(a.interval) == 0);
    return rc;
}

const cmd_entry cmd_metrics_entry = {
    .name = "metrics",
    .summary = "the store's (and a server's) figures for Prometheus",
    .usage = metrics_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_metrics,
};
