/* ndf export, cleanup, reset-stats, analytics and monitor: the commands over
 * the store's learning data and history, and the resource monitor.  --json
 * outputs are documented in ndf(1). */
#include "build-config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ndf/sdk.h>

#include "app/runtime.h"
#include "store/analytics.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "exec/monitor.h"
#include "model/pattern.h"
#include "model/registry.h"
#include "store/history.h"
#include "base/util.h"

/* ---- shared ---- */

static int fail_status(cmd_ctx *c, int status)
{
    cmd_error(c, "%s\n", err_msg());
    return status == NDF_ERR_NOT_FOUND ? EXIT_NOT_FOUND
           : status == NDF_ERR_INVALID ? EXIT_USAGE
                                       : exit_code_for(status);
}

static void emit(FILE *out, strbuf *sb)
{
    fwrite(sb->buf, 1, sb->len, out);
    sb_free(sb);
}

static void fmt_time(char *buf, size_t n, double t)
{
    if (t <= 0) {
        snprintf(buf, n, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Writes `data` to `path` ("-" or NULL: c->out), reporting errors by path. */
static int write_output(cmd_ctx *c, const char *path, const char *data, size_t len)
{
    if (!path || strcmp(path, "-") == 0) {
        fwrite(data, 1, len, c->out);
        return EXIT_OK;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        cmd_error(c, "%s: %s\n", path, strerror(errno));
        return EXIT_IO;
    }
    size_t w = fwrite(data, 1, len, f);
    int bad = w != len || ferror(f);
    if (fclose(f) != 0 || bad) {
        cmd_error(c, "%s: write error\n", path);
        return EXIT_IO;
    }
    return EXIT_OK;
}

/* ---- ndf export ---- */

static const char export_usage[] =
    "Usage: ndf export PATTERN [--format json|csv|yaml | --json] [-o FILE]\n"
    "\n"
    "Prints the stored learning data of PATTERN: its learning state and\n"
    "execution history.  json is the stored document, csv one row per\n"
    "execution (RFC 4180), yaml the document as YAML.\n"
    "\n"
    "  -f, --format FMT  json (default), csv or yaml\n"
    "      --json        the same as --format json\n"
    "  -o, --output FILE write to FILE instead of standard output\n"
    "  -h, --help        show this help\n";

static int cmd_export(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"format", 'f', OPT_REQUIRED, 'f'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"output", 'o', OPT_REQUIRED, 'o'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    store_format fmt = STORE_FORMAT_JSON;
    const char *out = NULL, *fmt_arg = NULL;
    int o, json = 0;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'f':
            if (store_format_parse(p.arg, &fmt) != 0) {
                cmd_error(c, "unknown format '%s' (json, csv or yaml)\n", p.arg);
                return EXIT_USAGE;
            }
            fmt_arg = p.arg;
            break;
        case 'j': json = 1; break;
        case 'o':
            /* the server writes no file a client names: the data comes
             * back, and `ndf ctl export -o` writes it on the client's side */
            if (cmd_refuse_served(c, "export answers with the data in \"stdout\"; the client "
                                     "writes the file, not -o"))
                return CMD_REFUSED;
            out = p.arg;
            break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    /* --json is what every reporting command takes; said twice, it must
     * not quietly lose to a --format that says otherwise */
    if (json && fmt != STORE_FORMAT_JSON) {
        cmd_error(c, "--json and --format %s contradict each other\n", fmt_arg);
        return EXIT_USAGE;
    }
    const char *name = cmd_pattern_arg(c, &p);
    if (!name)
        return EXIT_USAGE;
    int rc;
    store *s = cmd_open_store(c, RT_CONFIG, &rc);
    if (!s)
        return rc;
    strbuf sb;
    sb_init(&sb);
    int st = store_export(s, name, fmt, &sb);
    if (st == NDF_ERR_NOT_FOUND) {
        /* the one wording of a name that is not there; export reads the
         * store alone, where a pattern is once it has run */
        sb_free(&sb);
        cmd_error(c,
                  "no pattern named '%s' in the store (it has never run, or ndf cleanup "
                  "removed it)\n",
                  name);
        return EXIT_NOT_FOUND;
    }
    if (st) {
        sb_free(&sb);
        return fail_status(c, st);
    }
    rc = write_output(c, out, sb.buf ? sb.buf : "", sb.len);
    sb_free(&sb);
    return rc;
}

/* ---- ndf cleanup ---- */

static const char cleanup_usage[] =
    "Usage: ndf cleanup [--max-age-hours N] [--dry-run] [--json]\n"
    "\n"
    "Prunes the stored history: executions beyond storage.history_limit per\n"
    "pattern and those older than storage.retention days (running ones are\n"
    "kept, counts stay exact), and gives the freed space back to the file\n"
    "system.  Then removes the stored state of patterns that are no longer\n"
    "defined and were not used for N hours (default 24).  Prints what it\n"
    "removes.\n"
    "\n"
    "  --max-age-hours N  age in hours (>= 0) for patterns no longer defined\n"
    "  -n, --dry-run      prune nothing; only name the patterns it would remove\n"
    "  --json             print {\"dry_run\", \"executions_removed\", \"pages_freed\",\n"
    "                     \"patterns_removed\"} (counts null with --dry-run)\n"
    "  -h, --help         show this help\n";

/* Removes (or, dry, names) the stored state of the patterns in `names`
 * that are no longer defined and were not used for `hours`.  Returns the
 * exit code so far. */
static int cleanup_stored(cmd_ctx *c, store *s, char **names, size_t n, double hours, double now,
                          int dry, int status, strbuf *json)
{
    size_t listed = 0;
    for (size_t i = 0; i < n; i++) {
        pattern *p;
        if (registry_get(c->rt->reg, names[i], &p) == NDF_OK) {
            pattern_unref(p);
            continue;
        }
        /* with definitions that failed to load, "not defined" means nothing */
        if (c->rt->pattern_errors) {
            cmd_error(c, "some pattern definitions failed to load; "
                         "stored state is left alone\n");
            break;
        }
        learning_state l;
        double used = 0;
        if (store_learning(s, names[i], &l) == NDF_OK) {
            used = l.last_used > 0 ? l.last_used : l.created;
            learning_free(&l);
        }
        if (used > 0 && now - used < hours * 3600.0)
            continue;
        if (dry) {
            if (!json)
                fprintf(c->out, "would remove the stored state of '%s' (not defined)\n", names[i]);
        } else if (store_remove_pattern(s, names[i]) != NDF_OK) {
            cmd_error(c, "%s\n", err_msg());
            status = EXIT_IO;
            continue;
        } else if (!json) {
            fprintf(c->out, "removed the stored state of '%s' (not defined)\n", names[i]);
        }
        if (json) {
            sb_puts(json, listed++ ? "," : "");
            sb_json_str(json, names[i]);
        }
    }
    return status;
}

static int cmd_cleanup(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"max-age-hours", 0, OPT_REQUIRED, 'm'},
                                    {"dry-run", 'n', OPT_NONE, 'n'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    double hours = 24;
    int dry = 0, json = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'm': {
            char *end;
            hours = strtod(p.arg, &end);
            if (*end || end == p.arg || !(hours >= 0) || !isfinite(hours)) {
                cmd_error(c, "--max-age-hours: not a number >= 0: '%s'\n", p.arg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'n': dry = 1; break;
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands) {
        cmd_error(c, "too many arguments\n");
        return EXIT_USAGE;
    }
    int rc;
    store *s = cmd_open_store(c, RT_PATTERNS, &rc);
    if (!s)
        return rc;
    const settings *set = &c->rt->cfg->set;
    double now = now_wall();
    strbuf js;
    sb_init(&js);
    /* --json: {"dry_run", "executions_removed", "pages_freed" (null when
     * dry), "patterns_removed" (or would remove)} */
    sb_printf(&js, "{\"dry_run\":%s", dry ? "true" : "false");
    if (!dry) {
        store_cleanup_result res;
        int st = store_cleanup(s, set->history_limit, set->retention_days * 86400.0, now, &res);
        if (st) {
            sb_free(&js);
            return fail_status(c, st);
        }
        if (!json)
            fprintf(c->out, "removed %llu execution%s from the history; gave back %llu page%s\n",
                    (unsigned long long)res.executions, res.executions == 1 ? "" : "s",
                    (unsigned long long)res.pages, res.pages == 1 ? "" : "s");
        sb_printf(&js, ",\"executions_removed\":%llu,\"pages_freed\":%llu",
                  (unsigned long long)res.executions, (unsigned long long)res.pages);
    } else {
        sb_puts(&js, ",\"executions_removed\":null,\"pages_freed\":null");
    }
    char **names;
    size_t n;
    int st = store_patterns(s, &names, &n);
    if (st) {
        sb_free(&js);
        return fail_status(c, st);
    }
    sb_puts(&js, ",\"patterns_removed\":[");
    int status = cleanup_stored(c, s, names, n, hours, now, dry, rc, json ? &js : NULL);
    sb_puts(&js, "]}\n");
    if (json)
        fwrite(js.buf, 1, js.len, c->out);
    sb_free(&js);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return status;
}

/* ---- ndf reset-stats ---- */

static const char reset_usage[] =
    "Usage: ndf reset-stats PATTERN [--json]\n"
    "\n"
    "Resets the learning state of PATTERN (counts, confidence) to its prior.\n"
    "Its kept executions stay in the history ('ndf runs'), no longer counted.\n"
    "\n"
    "  --json      print {\"pattern\", \"reset\": true, \"defined\"} (defined: it is\n"
    "              in the configuration, not only in the store)\n"
    "  -h, --help  show this help\n";

static int cmd_reset_stats(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {
        {"json", 0, OPT_NONE, 'j'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    int o, json = 0;
    opt_parser op;
    opt_init(&op, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&op)) != OPT_END) {
        switch (o) {
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    const char *name = cmd_pattern_arg(c, &op);
    if (!name)
        return EXIT_USAGE;
    int rc;
    store *s = cmd_open_store(c, RT_PATTERNS, &rc);
    if (!s)
        return rc;
    registry *reg = c->rt->reg;
    pattern *p = NULL;
    int defined = registry_get(reg, name, &p) == NDF_OK;
    int st = store_reset_stats(s, name);
    if (st == NDF_ERR_NOT_FOUND && defined)
        st = NDF_OK; /* nothing stored: it is at its prior already */
    if (p) {
        if (!st)
            pattern_reset_stats(p, registry_learning(reg));
        pattern_unref(p);
    }
    if (st == NDF_ERR_NOT_FOUND) {
        cmd_error(c, "no pattern named '%s'\n", name);
        return EXIT_NOT_FOUND;
    }
    if (st)
        return fail_status(c, st);
    if (json) {
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, "{\"pattern\":");
        sb_json_str(&sb, name);
        sb_printf(&sb, ",\"reset\":true,\"defined\":%s}\n", defined ? "true" : "false");
        fwrite(sb.buf, 1, sb.len, c->out);
        sb_free(&sb);
    } else {
        fprintf(c->out, "reset the statistics of '%s' (its kept executions stay in the history)\n",
                name);
    }
    return rc;
}

/* ---- ndf analytics ---- */

static const char analytics_usage[] =
    "Usage: ndf analytics PATTERN [--days N] [--json]\n"
    "\n"
    "Reports a pattern's performance from its stored history: counts, success\n"
    "rate, response times, resource usage, domains, steps, the trend over the\n"
    "last N days (default 7) and recommendations.  ndf(1) gives the formulas.\n"
    "Counts and confidence are since the last 'ndf reset-stats'; response\n"
    "times, resources, steps and the trend are over the kept history, which\n"
    "a reset does not clear (a History: line says so when they differ).\n"
    "\n"
    "  -d, --days N  trend window in days (1..3650)\n"
    "  --json        print JSON (see ndf(1))\n"
    "  -h, --help    show this help\n";

/* Unicode sparklines only where the locale says UTF-8. */
static int utf8_terminal(FILE *out)
{
    const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    int fd = fileno(out); /* -1 for a memory stream (a served command) */
    if (fd < 0 || !isatty(fd))
        return 0;
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8") ||
                   strstr(v, "utf-8");
    }
    return 0;
}

/* analytics_json's steps, trend and recommendations. */
static void analytics_json_tail(strbuf *sb, const analytics *an, const trend *t, char **recs,
                                size_t nrec)
{
    sb_puts(sb, ",\"steps\":[");
    for (size_t i = 0; i < an->nsteps; i++) {
        const step_stats *s = &an->steps[i];
        if (i)
            sb_puts(sb, ",");
        sb_puts(sb, "{\"name\":");
        sb_json_str(sb, s->name);
        sb_printf(sb, ",\"count\":%zu,\"failures\":%zu,\"timeouts\":%zu,\"mean_ms\":", s->count,
                  s->failures, s->timeouts);
        sb_json_num(sb, s->mean_ms, 10);
        sb_puts(sb, ",\"p50_ms\":");
        sb_json_num(sb, s->p50_ms, 10);
        sb_puts(sb, ",\"p95_ms\":");
        sb_json_num(sb, s->p95_ms, 10);
        sb_puts(sb, ",\"max_ms\":");
        sb_json_num(sb, s->max_ms, 10);
        sb_puts(sb, "}");
    }
    sb_printf(sb, "],\"trend\":{\"days\":%d,\"samples\":%zu,\"success_rate\":", t->days,
              t->samples);
    sb_json_num(sb, t->success_rate, 10);
    sb_puts(sb, ",\"success_rate_trend\":[");
    for (int i = 0; i < t->days; i++) {
        if (i)
            sb_puts(sb, ",");
        if (t->daily[i].executions)
            sb_json_num(sb, (double)t->daily[i].successes / (double)t->daily[i].executions, 10);
        else
            sb_puts(sb, "null");
    }
    sb_puts(sb, "],\"direction\":");
    sb_json_str(sb, t->direction);
    /* no number where the data cannot support one (t->why says why) */
    int enough = !t->why[0];
    sb_puts(sb, ",\"rate_of_change\":");
    if (enough)
        sb_json_num(sb, t->slope_per_day, 10);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"rate_of_change_interval\":[");
    if (enough && isfinite(t->slope_low) && isfinite(t->slope_high)) {
        sb_json_num(sb, t->slope_low, 10);
        sb_puts(sb, ",");
        sb_json_num(sb, t->slope_high, 10);
    } else {
        sb_puts(sb, "null,null");
    }
    sb_printf(sb, "],\"span_days\":");
    sb_json_num(sb, t->span_days, 10);
    if (t->why[0]) {
        sb_puts(sb, ",\"insufficient\":");
        sb_json_str(sb, t->why);
    }
    sb_puts(sb, ",\"prediction\":");
    if (enough)
        sb_json_num(sb, t->prediction, 10);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"horizon_days\":");
    sb_json_num(sb, t->horizon_days, 10);
    sb_puts(sb, ",\"performance_outlook\":");
    sb_json_str(sb, t->outlook);
    sb_puts(sb, "},\"recommendations\":[");
    for (size_t i = 0; i < nrec; i++) {
        if (i)
            sb_puts(sb, ",");
        sb_json_str(sb, recs[i]);
    }
    sb_puts(sb, "]}\n");
}

static void analytics_json(strbuf *sb, const stored_pattern *sp, const analytics *an,
                           const trend *t, char **recs, size_t nrec, const analytics_opts *o)
{
    sb_puts(sb, "{\"pattern\":");
    sb_json_str(sb, sp->name);
    sb_printf(sb, ",\"execution_count\":%llu,\"successes\":%llu,\"success_rate\":",
              (unsigned long long)an->execution_count, (unsigned long long)an->successes);
    sb_json_num(sb, an->success_rate, 10);
    sb_puts(sb, ",\"confidence\":");
    sb_json_num(sb, an->score, 10);
    sb_puts(sb, ",\"threshold\":");
    sb_json_num(sb, o->threshold, 10);
    sb_printf(sb, ",\"confidence_gate\":\"%s\"", confidence_gate_name((confidence_gate)o->gate));
    sb_puts(sb, ",\"avg_response_time\":");
    sb_json_num(sb, an->avg_response_ms, 10);
    sb_puts(sb, ",\"p50_response_time\":");
    sb_json_num(sb, an->p50_response_ms, 10);
    sb_puts(sb, ",\"p95_response_time\":");
    sb_json_num(sb, an->p95_response_ms, 10);
    sb_printf(sb, ",\"history_count\":%zu,\"confidence_trend\":[", an->history_count);
    for (size_t i = 0; i < an->ntrend; i++) {
        if (i)
            sb_puts(sb, ",");
        sb_json_num(sb, an->confidence_trend[i], 10);
    }
    sb_puts(sb, "],\"resource_usage\":{\"avg_cpu_time\":");
    sb_json_num(sb, an->avg_cpu_s, 10);
    sb_puts(sb, ",\"max_cpu_time\":");
    sb_json_num(sb, an->max_cpu_s, 10);
    sb_puts(sb, ",\"avg_peak_rss_kb\":");
    sb_json_num(sb, an->avg_peak_rss_kb, 10);
    sb_puts(sb, ",\"max_peak_rss_kb\":");
    sb_json_num(sb, an->max_peak_rss_kb, 10);
    sb_puts(sb, "},\"domain_performance\":{");
    for (size_t i = 0; i < an->ndomains; i++) {
        const domain_perf *d = &an->domains[i];
        if (i)
            sb_puts(sb, ",");
        sb_json_str(sb, d->domain);
        sb_printf(sb, ":{\"executions\":%llu,\"successes\":%llu,\"success_rate\":",
                  (unsigned long long)d->executions, (unsigned long long)d->successes);
        sb_json_num(sb, d->success_rate, 10);
        sb_puts(sb, ",\"avg_response_time\":");
        sb_json_num(sb, d->avg_ms, 10);
        sb_puts(sb, "}");
    }
    sb_puts(sb, "},\"last_execution\":");
    if (an->last_execution > 0)
        sb_json_num(sb, an->last_execution, 10);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"learning_progress\":");
    sb_json_num(sb, an->learning_progress, 10);
    analytics_json_tail(sb, an, t, recs, nrec);
}

/* The charts: scores as stored, the success rate as a rolling mean. */
static void analytics_charts(strbuf *sb, const stored_pattern *sp, const analytics *an, int utf8)
{
    size_t n = an->ntrend, w = n >= 50 ? n / 10 : 5;
    double *roll = xmalloc(n * sizeof *roll);
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += sp->history[i].success ? 1 : 0;
        if (i >= w)
            acc -= sp->history[i - w].success ? 1 : 0;
        roll[i] = acc / (double)(i + 1 < w ? i + 1 : w);
    }
    char *cl = sparkline(an->confidence_trend, n, 0, 1, 60, utf8);
    char *rl = sparkline(roll, n, 0, 1, 60, utf8);
    sb_printf(sb, "  confidence    %s  %.2f -> %.2f\n", cl, an->confidence_trend[0],
              an->confidence_trend[n - 1]);
    sb_printf(sb, "  success rate  %s  (rolling over %zu)\n", rl, w);
    free(cl);
    free(rl);
    free(roll);
}

/* The per-domain and per-step tables. */
static void analytics_breakdown(strbuf *sb, const analytics *an)
{
    if (an->ndomains) {
        sb_puts(sb, "\nDomains:\n");
        for (size_t i = 0; i < an->ndomains; i++) {
            const domain_perf *d = &an->domains[i];
            sb_printf(sb, "  %-24s %6llu executions  %5.1f%% success", d->domain,
                      (unsigned long long)d->executions, 100.0 * d->success_rate);
            if (d->avg_ms > 0)
                sb_printf(sb, "  avg %.1f ms", d->avg_ms);
            sb_puts(sb, "\n");
        }
    }
    if (an->nsteps) {
        sb_printf(sb, "\nSteps:\n  %-24s %7s %8s %10s %10s\n", "NAME", "RUNS", "FAILED", "P50 MS",
                  "P95 MS");
        for (size_t i = 0; i < an->nsteps; i++) {
            const step_stats *s = &an->steps[i];
            sb_printf(sb, "  %-24s %7zu %8zu %10.1f %10.1f\n", s->name, s->count, s->failures,
                      s->p50_ms, s->p95_ms);
        }
    }
}

static void analytics_text(strbuf *sb, const stored_pattern *sp, const analytics *an,
                           const trend *t, char **recs, size_t nrec, const analytics_opts *o,
                           int utf8)
{
    char when[64];
    sb_printf(sb, "Pattern:         %s\n", sp->name);
    sb_printf(sb, "Executions:      %llu (%llu succeeded, success rate %.1f%%)\n",
              (unsigned long long)an->execution_count, (unsigned long long)an->successes,
              100.0 * an->success_rate);
    sb_printf(sb, "Confidence:      %.3f (%s), threshold %.2f, gate %s\n", an->score,
              confidence_level_name(confidence_level_from_score(an->score)), o->threshold,
              confidence_gate_name((confidence_gate)o->gate));
    sb_printf(sb, "Learning:        %.0f%% (min_samples %d)\n", 100.0 * an->learning_progress,
              o->min_samples);
    if (an->history_count) {
        sb_printf(sb, "Response time:   avg %.1f ms, p50 %.1f ms, p95 %.1f ms (last %zu)\n",
                  an->avg_response_ms, an->p50_response_ms, an->p95_response_ms, an->history_count);
        sb_printf(sb,
                  "Resources:       cpu avg %.3f s (max %.3f s), peak memory avg %.1f MiB "
                  "(max %.1f MiB)\n",
                  an->avg_cpu_s, an->max_cpu_s, an->avg_peak_rss_kb / 1024.0,
                  an->max_peak_rss_kb / 1024.0);
        /* the store keeps no reset time: the history before 'ndf
         * reset-stats' is still in these figures, so say what they cover */
        if ((uint64_t)an->history_count > an->execution_count && sp->nhistory) {
            fmt_time(when, sizeof when, sp->history[0].time);
            sb_printf(sb,
                      "History:         response time, resources and steps are over the %zu "
                      "kept executions since %s (any before 'ndf reset-stats' and the uncounted "
                      "included)\n",
                      an->history_count, when);
        }
    }
    fmt_time(when, sizeof when, an->last_execution);
    sb_printf(sb, "Last execution:  %s\n", when);
    sb_printf(sb, "\nTrend, last %d day%s: %s", t->days, t->days == 1 ? "" : "s", t->direction);
    /* A slope fitted to too few samples (two runs seconds apart give
     * thousands per day) says nothing, so it is only shown once trusted. */
    if (strcmp(t->direction, "insufficient data") == 0)
        sb_printf(sb, " (%s; no rate of change or outlook)", t->why);
    else if (t->samples >= 2)
        sb_printf(sb,
                  ", %+.3f per day (95%% interval %+.3f to %+.3f, from %zu executions over "
                  "%.1f days); success %.1f%%; predicted %.0f%%; outlook %s",
                  t->slope_per_day, t->slope_low, t->slope_high, t->samples, t->span_days,
                  100.0 * t->success_rate, 100.0 * t->prediction, t->outlook);
    sb_puts(sb, "\n");
    if (an->ntrend)
        analytics_charts(sb, sp, an, utf8);
    analytics_breakdown(sb, an);
    sb_puts(sb, "\nRecommendations:\n");
    if (!nrec)
        sb_puts(sb, "  none: nothing stands out\n");
    for (size_t i = 0; i < nrec; i++)
        sb_printf(sb, "  - %s\n", recs[i]);
}

/* The pattern's stored record, its counts from the live pattern when it is
 * defined, into *sp, and the analysis options in *o.  Returns NDF_OK or a
 * status with err_msg() set. */
static int analytics_load(runtime *a, store *s, const char *name, stored_pattern *sp,
                          analytics_opts *o)
{
    const learning_params *lp = registry_learning(a->reg);
    *o = (analytics_opts){lp->min_samples,
                          a->cfg->set.confidence_threshold,
                          a->cfg->set.pattern_timeout,
                          lp->convergence_threshold,
                          now_wall(),
                          a->cfg->set.confidence_gate,
                          lp->prior_alpha,
                          lp->prior_beta};
    pattern *p = NULL;
    int st = history_load(s, name, (size_t)a->cfg->set.history_limit, sp);
    if (registry_get(a->reg, name, &p) != NDF_OK) {
        /* a name never stored (or not a valid one) is simply not there */
        if (st == NDF_ERR_NOT_FOUND || st == NDF_ERR_INVALID)
            st = err_set(NDF_ERR_NOT_FOUND, "no pattern named '%s' (not defined, nothing stored)",
                         name);
        return st;
    }
    o->threshold = pattern_threshold(p, o->threshold);
    o->gate = (int)pattern_gate(p, (confidence_gate)o->gate);
    if (p->timeout > 0)
        o->timeout_s = p->timeout;
    /* the registry read it from the store: the same counts, resident */
    if (st == NDF_OK) {
        learning_free(&sp->learn);
    } else if (st == NDF_ERR_NOT_FOUND) {
        memset(sp, 0, sizeof *sp);
        sp->name = xstrdup(name);
    } else {
        pattern_unref(p);
        return st;
    }
    pattern_stats(p, &sp->learn);
    pattern_unref(p);
    return NDF_OK;
}

static int cmd_analytics(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"days", 'd', OPT_REQUIRED, 'd'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    int days = 7, json = 0, opt;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((opt = opt_next(&p)) != OPT_END) {
        switch (opt) {
        case 'd': {
            char *end;
            long v = strtol(p.arg, &end, 10);
            if (*end || end == p.arg || v < 1 || v > 3650) {
                cmd_error(c, "--days: not a number of days 1..3650: '%s'\n", p.arg);
                return EXIT_USAGE;
            }
            days = (int)v;
            break;
        }
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    const char *name = cmd_pattern_arg(c, &p);
    if (!name)
        return EXIT_USAGE;
    int rc;
    store *s = cmd_open_store(c, RT_PATTERNS, &rc);
    if (!s)
        return rc;
    stored_pattern sp;
    analytics_opts o;
    int st = analytics_load(c->rt, s, name, &sp, &o);
    if (st)
        return fail_status(c, st);
    analytics an;
    trend t;
    char **recs;
    analytics_compute(&sp, &o, &an);
    analytics_trend(&sp, days, &o, &t);
    size_t nrec = analytics_recommendations(&an, &t, &o, &recs);
    strbuf sb;
    sb_init(&sb);
    if (json)
        analytics_json(&sb, &sp, &an, &t, recs, nrec, &o);
    else
        analytics_text(&sb, &sp, &an, &t, recs, nrec, &o, utf8_terminal(c->out));
    emit(c->out, &sb);
    for (size_t i = 0; i < nrec; i++)
        free(recs[i]);
    free(recs);
    trend_free(&t);
    analytics_free(&an);
    stored_pattern_free(&sp);
    return rc;
}

/* ---- ndf monitor ---- */

static const char monitor_help[] =
    "Usage: ndf monitor [--json]\n"
    "\n"
    "Prints the current cpu, memory and disk I/O usage (fractions of the\n"
    "machine, from /proc over a 100 ms interval), as the executor sees them\n"
    "for resource thresholds.\n"
    "\n"
    "  --json      print JSON (see ndf(1))\n"
    "  -h, --help  show this help\n";

static int cmd_monitor(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"json", 0, OPT_NONE, 'j'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    int json = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands) {
        cmd_error(c, "too many arguments\n");
        return EXIT_USAGE;
    }
    monitor_sample m;
    if (monitor_sample_get(&m) != NDF_OK) {
        cmd_error(c, "%s\n", err_msg());
        return EXIT_IO;
    }
    strbuf sb;
    sb_init(&sb);
    if (json) {
        sb_puts(&sb, "{\"cpu\":");
        sb_json_num(&sb, m.cpu, 10);
        sb_puts(&sb, ",\"memory\":");
        sb_json_num(&sb, m.mem, 10);
        sb_puts(&sb, ",\"disk_io\":");
        sb_json_num(&sb, m.io, 10);
        sb_printf(&sb, ",\"cpus\":%d,\"memory_total_kb\":", m.ncpu);
        sb_json_num(&sb, m.mem_total_kb, 10);
        sb_puts(&sb, ",\"memory_available_kb\":");
        sb_json_num(&sb, m.mem_available_kb, 10);
        sb_puts(&sb, "}\n");
    } else {
        sb_printf(&sb, "cpu       %5.1f%%  (%d cpu%s)\n", 100.0 * m.cpu, m.ncpu,
                  m.ncpu == 1 ? "" : "s");
        sb_printf(&sb, "memory    %5.1f%%  (%.0f of %.0f MiB available)\n", 100.0 * m.mem,
                  m.mem_available_kb / 1024.0, m.mem_total_kb / 1024.0);
        sb_printf(&sb, "disk I/O  %5.1f%%  (busiest device)\n", 100.0 * m.io);
    }
    emit(c->out, &sb);
    return EXIT_OK;
}

const cmd_entry cmd_export_entry = {
    .name = "export",
    .summary = "export a pattern's learning data (json, csv, yaml)",
    .usage = export_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_export,
};

const cmd_entry cmd_cleanup_entry = {
    .name = "cleanup",
    .summary = "release unused learning state and stale stored files",
    .usage = cleanup_usage,
    /* served, it releases the server's own resident state too */
    .flags = CMD_SERVABLE,
    .exec = cmd_cleanup,
};

const cmd_entry cmd_reset_stats_entry = {
    .name = "reset-stats",
    .summary = "reset a pattern's learning state and history",
    .usage = reset_usage,
    /* served, the server's patterns are reset at once, not at their next
     * execution's commit */
    .flags = CMD_SERVABLE,
    .exec = cmd_reset_stats,
};

const cmd_entry cmd_analytics_entry = {
    .name = "analytics",
    .summary = "report a pattern's performance, trend and advice",
    .usage = analytics_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_analytics,
};

const cmd_entry cmd_monitor_entry = {
    .name = "monitor",
    .summary = "print current cpu, memory and disk I/O usage",
    .usage = monitor_help,
    .flags = 0,
    .exec = cmd_monitor,
};
