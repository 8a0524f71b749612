/* Pattern analytics: the seed's PatternAnalytics figures, the trend
 * analysis (least squares over the window's outcomes) and recommendations,
 * all computed from a stored record so they work without running anything. */
#include "build-config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/delegate.h"
#include "store/analytics.h"
#include "base/learning.h"
#include "base/util.h"

#define DAY_S 86400.0
/* A fitted change smaller than this over the data's span is "stable". */
#define TREND_STABLE 0.05
/* A step or execution whose p95 reaches this share of its limit runs close
 * to its timeout. */
#define TIMEOUT_NEAR 0.8
/* A domain this far below the others' success rate is called out. */
#define DOMAIN_GAP 0.2
#define DOMAIN_MIN 3

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double percentile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    if (q <= 0)
        return v[0];
    if (q >= 1)
        return v[n - 1];
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    double frac = pos - (double)lo;
    if (lo + 1 >= n)
        return v[n - 1];
    return v[lo] + (v[lo + 1] - v[lo]) * frac;
}

/* The two-sided 97.5% quantile of Student's t with `df` degrees of
 * freedom: the table to 30, then 1.96 + 2.46 / df, within 0.001 of the
 * exact value beyond. */
static double t975(size_t df)
{
    static const double q[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                               2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                               2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                               2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
    if (df == 0)
        return INFINITY;
    if (df <= 30)
        return q[df - 1];
    return 1.96 + 2.46 / (double)df;
}

/* The 95% interval of a least-squares slope: slope +- t * s / sqrt(Sxx),
 * s^2 the residual variance on n - 2 degrees of freedom.  Unbounded (the
 * whole line) with fewer than three points or no spread in x. */
static void slope_interval(const double *x, const double *y, size_t n, double slope, double icpt,
                           double *lo, double *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
    if (n < 3)
        return;
    double mx = 0;
    for (size_t i = 0; i < n; i++)
        mx += x[i];
    mx /= (double)n;
    double sxx = 0, rss = 0;
    for (size_t i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        double r = y[i] - (icpt + slope * x[i]);
        rss += r * r;
    }
    if (sxx == 0)
        return;
    double se = sqrt(rss / (double)(n - 2) / sxx);
    double w = t975(n - 2) * se;
    *lo = slope - w;
    *hi = slope + w;
}

int least_squares(const double *x, const double *y, size_t n, double *slope, double *intercept)
{
    double sx = 0, sy = 0;
    *slope = 0;
    *intercept = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        sx += x[i];
        sy += y[i];
    }
    double mx = sx / (double)n, my = sy / (double)n;
    *intercept = my;
    if (n < 2)
        return -1;
    /* centred sums: no cancellation with x in the billions of seconds */
    double sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        sxy += (x[i] - mx) * (y[i] - my);
    }
    if (sxx == 0)
        return -1;
    *slope = sxy / sxx;
    *intercept = my - *slope * mx;
    return 0;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static step_stats *find_step(analytics *a, const char *name)
{
    for (size_t i = 0; i < a->nsteps; i++)
        if (strcmp(a->steps[i].name, name) == 0)
            return &a->steps[i];
    a->steps = xrealloc(a->steps, (a->nsteps + 1) * sizeof *a->steps);
    step_stats *s = &a->steps[a->nsteps++];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(name);
    return s;
}

static int is_timeout(const char *outcome)
{
    return outcome && (strcmp(outcome, "timeout") == 0 || strcmp(outcome, "TIMEOUT") == 0 ||
                       strcmp(outcome, "timed_out") == 0);
}

static int is_failure(const char *outcome)
{
    if (!outcome)
        return 0;
    static const char *const bad[] = {"failed", "FAILED", "timeout", "TIMEOUT", "timed_out",
                                      "error"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strcmp(outcome, bad[i]) == 0)
            return 1;
    return 0;
}

/* The stability of the score: 1 - 10 * stddev of the last k scores. */
static double stability(const double *v, size_t n, size_t k)
{
    if (n < 2)
        return 0;
    if (k < 2)
        k = 2;
    if (k > n)
        k = n;
    const double *w = v + n - k;
    double m = 0, ss = 0;
    for (size_t i = 0; i < k; i++)
        m += w[i];
    m /= (double)k;
    for (size_t i = 0; i < k; i++)
        ss += (w[i] - m) * (w[i] - m);
    return clamp01(1 - 10 * sqrt(ss / (double)k));
}

void analytics_compute(const stored_pattern *sp, const analytics_opts *o, analytics *a)
{
    memset(a, 0, sizeof *a);
    const learning_state *l = &sp->learn;
    a->execution_count = l->executions;
    a->successes = l->successes;
    a->success_rate = l->executions ? (double)l->successes / (double)l->executions : 0;
    a->score = l->score;
    a->last_execution = l->last_used;
    a->history_count = sp->nhistory;

    size_t n = sp->nhistory;
    double *dur = n ? xmalloc(n * sizeof *dur) : NULL;
    a->confidence_trend = n ? xmalloc(n * sizeof *a->confidence_trend) : NULL;
    a->ntrend = n;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const history_entry *h = &sp->history[i];
        dur[i] = h->duration_s * 1000.0;
        sum += dur[i];
        a->confidence_trend[i] = h->confidence;
        a->avg_cpu_s += h->cpu_s;
        a->avg_peak_rss_kb += (double)h->peak_rss_kb;
        if (h->cpu_s > a->max_cpu_s)
            a->max_cpu_s = h->cpu_s;
        if ((double)h->peak_rss_kb > a->max_peak_rss_kb)
            a->max_peak_rss_kb = (double)h->peak_rss_kb;
        if (h->time > a->last_execution)
            a->last_execution = h->time;
    }
    if (n) {
        a->avg_response_ms = sum / (double)n;
        a->avg_cpu_s /= (double)n;
        a->avg_peak_rss_kb /= (double)n;
        a->p50_response_ms = percentile(dur, n, 0.5);
        a->p95_response_ms = percentile(dur, n, 0.95);
    }
    free(dur);

    /* domains: counts from the learning state (all executions), times from
     * the history */
    a->ndomains = l->ndomains;
    a->domains = l->ndomains ? xcalloc(l->ndomains, sizeof *a->domains) : NULL;
    for (size_t i = 0; i < l->ndomains; i++) {
        domain_perf *d = &a->domains[i];
        d->domain = xstrdup(l->domains[i].domain);
        d->executions = l->domains[i].executions;
        d->successes = l->domains[i].successes;
        d->success_rate = d->executions ? (double)d->successes / (double)d->executions : 0;
        double t = 0;
        size_t c = 0;
        for (size_t k = 0; k < n; k++) {
            if (sp->history[k].domain && strcmp(sp->history[k].domain, d->domain) == 0) {
                t += sp->history[k].duration_s * 1000.0;
                c++;
            }
        }
        d->avg_ms = c ? t / (double)c : 0;
    }

    /* steps */
    for (size_t k = 0; k < n; k++) {
        const history_entry *h = &sp->history[k];
        for (size_t j = 0; j < h->nsteps; j++) {
            step_stats *s = find_step(a, h->steps[j].name ? h->steps[j].name : "?");
            s->count++;
            if (is_failure(h->steps[j].outcome))
                s->failures++;
            if (is_timeout(h->steps[j].outcome))
                s->timeouts++;
            if (h->steps[j].timeout_s > s->timeout_s)
                s->timeout_s = h->steps[j].timeout_s;
        }
    }
    for (size_t i = 0; i < a->nsteps; i++) {
        step_stats *s = &a->steps[i];
        double *v = xmalloc(s->count * sizeof *v);
        size_t c = 0;
        double t = 0;
        for (size_t k = 0; k < n; k++) {
            const history_entry *h = &sp->history[k];
            for (size_t j = 0; j < h->nsteps; j++) {
                if (strcmp(h->steps[j].name ? h->steps[j].name : "?", s->name) == 0) {
                    v[c] = h->steps[j].duration_s * 1000.0;
                    t += v[c++];
                }
            }
        }
        s->mean_ms = c ? t / (double)c : 0;
        s->p50_ms = percentile(v, c, 0.5);
        s->p95_ms = percentile(v, c, 0.95);
        s->max_ms = c ? v[c - 1] : 0; /* sorted by percentile() */
        free(v);
    }

    /* learning progress: half for having the samples, half for a settled
     * score (the posterior's certainty against its target, or the score's
     * stability when there is no posterior) */
    int ms = o->min_samples > 0 ? o->min_samples : 1;
    double samples = clamp01((double)l->executions / (double)ms);
    double settled;
    if (l->converged)
        settled = 1;
    else if (l->alpha > 0 && l->beta > 0 && o->convergence_threshold > 0)
        settled = clamp01(learning_certainty(l->alpha, l->beta) / o->convergence_threshold);
    else
        settled = stability(a->confidence_trend, a->ntrend, (size_t)ms);
    a->learning_progress = 0.5 * samples + 0.5 * settled;
}

void analytics_free(analytics *a)
{
    free(a->confidence_trend);
    for (size_t i = 0; i < a->ndomains; i++)
        free(a->domains[i].domain);
    free(a->domains);
    for (size_t i = 0; i < a->nsteps; i++)
        free(a->steps[i].name);
    free(a->steps);
    memset(a, 0, sizeof *a);
}

void analytics_trend(const stored_pattern *sp, int days, const analytics_opts *o, trend *t)
{
    memset(t, 0, sizeof *t);
    if (days < 1)
        days = 1;
    if (days > 3650)
        days = 3650;
    t->days = days;
    double start = o->now - days * DAY_S;
    t->daily = xcalloc((size_t)days, sizeof *t->daily);
    for (int i = 0; i < days; i++)
        t->daily[i].start = start + i * DAY_S;

    size_t n = sp->nhistory;
    double *x = n ? xmalloc(n * sizeof *x) : NULL;
    double *y = n ? xmalloc(n * sizeof *y) : NULL;
    size_t m = 0;
    double first_conf = 0, last_conf = 0;
    for (size_t i = 0; i < n; i++) {
        const history_entry *h = &sp->history[i];
        if (h->time < start)
            continue;
        x[m] = (h->time - o->now) / DAY_S;
        y[m] = h->success ? 1 : 0;
        if (m == 0)
            first_conf = h->confidence;
        last_conf = h->confidence;
        m++;
        long d = (long)floor((h->time - start) / DAY_S);
        if (d >= days)
            d = days - 1; /* an entry stamped after `now` */
        t->daily[d].executions++;
        if (h->success)
            t->daily[d].successes++;
    }
    t->samples = m;
    double slope, icpt;
    least_squares(x, y, m, &slope, &icpt);
    t->slope_per_day = slope;
    double ok = 0, xmin = 0, xmax = 0;
    for (size_t i = 0; i < m; i++) {
        ok += y[i];
        if (i == 0 || x[i] < xmin)
            xmin = x[i];
        if (i == 0 || x[i] > xmax)
            xmax = x[i];
    }
    t->success_rate = m ? ok / (double)m : 0;
    double span = xmax - xmin;
    /* extrapolate no further than the data reaches back, nor beyond `days` */
    t->horizon_days = span < days ? span : days;
    t->prediction = m ? clamp01(icpt + slope * (xmax + t->horizon_days)) : 0;
    t->confidence_change = m >= 2 ? last_conf - first_conf : 0;
    t->span_days = span;
    slope_interval(x, y, m, slope, icpt, &t->slope_low, &t->slope_high);
    /* three points at least: two always fit a line exactly */
    size_t need = o->min_samples > 3 ? (size_t)o->min_samples : 3;
    if (m < need || span < TREND_MIN_SPAN_DAYS) {
        t->direction = "insufficient data";
        t->outlook = "unknown";
        if (m < need)
            snprintf(t->why, sizeof t->why, "%zu execution%s in the period, %zu needed", m,
                     m == 1 ? "" : "s", need);
        else
            snprintf(t->why, sizeof t->why,
                     "the executions span %.2g day%s, at least %g needed", span,
                     span == 1 ? "" : "s", TREND_MIN_SPAN_DAYS);
    } else {
        double change = slope * span;
        t->direction = fabs(change) < TREND_STABLE ? "stable"
                       : change > 0                ? "improving"
                                                   : "declining";
        double p = t->prediction;
        if (p >= 0.9 && strcmp(t->direction, "declining") != 0)
            t->outlook = "excellent";
        else if (p >= 0.75)
            t->outlook = "good";
        else if (p >= 0.5)
            t->outlook = "fair";
        else
            t->outlook = "poor";
    }
    free(x);
    free(y);
}

void trend_free(trend *t)
{
    free(t->daily);
    memset(t, 0, sizeof *t);
}

typedef struct recs {
    char **v;
    size_t n;
} recs;

static void rec_add(recs *r, char *s)
{
    r->v = xrealloc(r->v, (r->n + 1) * sizeof *r->v);
    r->v[r->n++] = s;
}

size_t analytics_recommendations(const analytics *a, const trend *t, const analytics_opts *o,
                                 char ***out)
{
    recs r = {0};
    int ms = o->min_samples > 0 ? o->min_samples : 1;
    if (a->execution_count < (uint64_t)ms)
        rec_add(&r, xasprintf("Only %llu of the %d executions needed to trust the confidence "
                              "score (min_samples) are recorded: run the pattern more before "
                              "relying on its score.",
                              (unsigned long long)a->execution_count, ms));
    else if (o->threshold > a->success_rate)
        rec_add(&r, xasprintf("The confidence threshold %.2f is above the success rate this "
                              "pattern achieves (%.2f over %llu executions, score %.2f): %s; "
                              "lower confidence_threshold or fix its failures.",
                              o->threshold, a->success_rate,
                              (unsigned long long)a->execution_count, a->score,
                              o->gate == GATE_ENFORCE
                                  ? "'ndf run' refuses it unless forced (confidence_gate "
                                    "enforce)"
                              : o->gate == GATE_OFF
                                  ? "'ndf run' still runs it (confidence_gate off)"
                                  : "'ndf run' runs it with a warning (confidence_gate warn)"));
    /* what delegation does with it: the pattern-wide posterior, as
     * delegate_rank judges a context without a domain */
    double a0 = o->prior_alpha > 0 ? o->prior_alpha : 1, b0 = o->prior_beta > 0 ? o->prior_beta : 1;
    if (a->execution_count &&
        delegate_confidently_below(a0 + (double)a->successes,
                                   b0 + (double)(a->execution_count - a->successes), o->threshold))
        rec_add(&r, xasprintf("Delegation holds it back: even the upper end of its 90%% "
                              "credible interval is below the threshold %.2f, so 'ndf delegate' "
                              "chooses it only by exploration (thompson, ucb, epsilon_greedy), "
                              "never by greedy or fixed.",
                              o->threshold));

    /* the step that fails most */
    const step_stats *worst = NULL;
    for (size_t i = 0; i < a->nsteps; i++) {
        const step_stats *s = &a->steps[i];
        if (!s->failures || (double)s->failures < 0.1 * (double)s->count)
            continue;
        if (!worst || s->failures > worst->failures ||
            (s->failures == worst->failures &&
             (double)s->failures / (double)s->count >
                 (double)worst->failures / (double)worst->count))
            worst = s;
    }
    if (worst)
        rec_add(&r, xasprintf("Step '%s' fails most often: %zu of %zu runs (%.0f%%); look at "
                              "its errors first, or give it retries.",
                              worst->name, worst->failures, worst->count,
                              100.0 * (double)worst->failures / (double)worst->count));

    /* the slowest step, when it dominates */
    if (a->nsteps >= 2 && a->p50_response_ms > 0) {
        const step_stats *slow = &a->steps[0];
        for (size_t i = 1; i < a->nsteps; i++)
            if (a->steps[i].p50_ms > slow->p50_ms)
                slow = &a->steps[i];
        double share = slow->p50_ms / a->p50_response_ms;
        if (share >= 0.5)
            rec_add(&r, xasprintf("Step '%s' is the slowest (p50 %.0f ms, p95 %.0f ms), %.0f%% "
                                  "of the pattern's median time: it is the place to optimize.",
                                  slow->name, slow->p50_ms, slow->p95_ms,
                                  share > 1 ? 100.0 : 100.0 * share));
    }

    /* timeouts that run close to their limit */
    for (size_t i = 0; i < a->nsteps; i++) {
        const step_stats *s = &a->steps[i];
        if (s->timeouts && s->timeout_s > 0)
            rec_add(&r, xasprintf("Step '%s' timed out %zu time%s: raise its timeout (%.3g s) "
                                  "or make it faster.",
                                  s->name, s->timeouts, s->timeouts == 1 ? "" : "s",
                                  s->timeout_s));
        else if (s->timeouts && o->timeout_s > 0)
            /* no timeout of its own: the pattern's deadline cut it */
            rec_add(&r, xasprintf("Step '%s' timed out %zu time%s under the pattern's deadline "
                                  "(%.3g s): raise that, or make the step faster.",
                                  s->name, s->timeouts, s->timeouts == 1 ? "" : "s",
                                  o->timeout_s));
        else if (s->timeouts)
            rec_add(&r, xasprintf("Step '%s' timed out %zu time%s with no timeout of its own "
                                  "(a deadline above it cut it): raise that deadline, or make "
                                  "the step faster.",
                                  s->name, s->timeouts, s->timeouts == 1 ? "" : "s"));
        else if (s->timeout_s > 0 && s->p95_ms >= TIMEOUT_NEAR * s->timeout_s * 1000.0)
            rec_add(&r, xasprintf("Step '%s' runs close to its timeout: p95 %.0f ms is %.0f%% "
                                  "of %.3g s; raise the timeout before it starts failing.",
                                  s->name, s->p95_ms, 100.0 * s->p95_ms / (s->timeout_s * 1e3),
                                  s->timeout_s));
    }
    if (o->timeout_s > 0 && a->history_count &&
        a->p95_response_ms >= TIMEOUT_NEAR * o->timeout_s * 1000.0)
        rec_add(&r, xasprintf("Executions run close to the pattern's timeout: p95 %.0f ms is "
                              "%.0f%% of %.3g s.",
                              a->p95_response_ms,
                              100.0 * a->p95_response_ms / (o->timeout_s * 1e3), o->timeout_s));

    /* a domain doing worse than the rest */
    for (size_t i = 0; i < a->ndomains; i++) {
        const domain_perf *d = &a->domains[i];
        if (d->executions < DOMAIN_MIN)
            continue;
        uint64_t oe = 0, os = 0;
        for (size_t k = 0; k < a->ndomains; k++) {
            if (k != i) {
                oe += a->domains[k].executions;
                os += a->domains[k].successes;
            }
        }
        if (oe < DOMAIN_MIN)
            continue;
        double other = (double)os / (double)oe;
        if (d->success_rate + DOMAIN_GAP <= other)
            rec_add(&r, xasprintf("Domain '%s' does worse than the rest: %.0f%% success over "
                                  "%llu executions against %.0f%% elsewhere; check what "
                                  "differs there, or narrow the pattern's domains.",
                                  d->domain, 100.0 * d->success_rate,
                                  (unsigned long long)d->executions, 100.0 * other));
    }

    if (t && strcmp(t->direction ? t->direction : "", "declining") == 0)
        rec_add(&r, xasprintf("The success rate is declining (%+.2f per day over the last %d "
                              "day%s, %zu executions); predicted %.0f%%.",
                              t->slope_per_day, t->days, t->days == 1 ? "" : "s", t->samples,
                              100.0 * t->prediction));
    *out = r.v;
    return r.n;
}

char *sparkline(const double *v, size_t n, double lo, double hi, size_t width, int utf8)
{
    static const char *const blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                         "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char ascii[] = "_.-:=+*#";
    strbuf sb;
    sb_init(&sb);
    sb_add(&sb, "", 0);
    if (!n || !width)
        return sb_steal(&sb);
    size_t cols = n < width ? n : width;
    for (size_t c = 0; c < cols; c++) {
        /* each column averages its share of the values */
        size_t a = c * n / cols, b = (c + 1) * n / cols;
        if (b <= a)
            b = a + 1;
        double s = 0;
        for (size_t i = a; i < b; i++)
            s += v[i];
        double m = s / (double)(b - a);
        double f = hi > lo ? (m - lo) / (hi - lo) : 0;
        int level = (int)floor(clamp01(f) * 7.0 + 0.5);
        if (utf8)
            sb_puts(&sb, blocks[level]);
        else
            sb_add(&sb, &ascii[level], 1);
    }
    return sb_steal(&sb);
}
