/* Check suite for host/analytics.c: formulas against hand-computed values,
 * the trend analysis, and recommendations triggered by crafted histories. */
#include "build-config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/analytics.h"
#include "base/util.h"

#define NOW 1800000000.0
#define DAY 86400.0

static stored_pattern sp;

static void rec_init(void)
{
    memset(&sp, 0, sizeof sp);
    sp.name = xstrdup("p");
    sp.learn.score = 0.5;
}

/* Adds an execution `days_ago` days before NOW with steps given as
 * "name:outcome:ms:timeout_s" separated by spaces. */
static void add(double days_ago, int ok, const char *domain, double ms, double conf,
                const char *steps)
{
    sp.history = xrealloc(sp.history, (sp.nhistory + 1) * sizeof *sp.history);
    history_entry *h = &sp.history[sp.nhistory++];
    memset(h, 0, sizeof *h);
    h->time = NOW - days_ago * DAY;
    h->success = ok;
    h->outcome = xstrdup(ok ? "succeeded" : "failed");
    h->domain = domain ? xstrdup(domain) : NULL;
    h->duration_s = ms / 1000.0;
    h->confidence = conf;
    h->cpu_s = ms / 2000.0;
    h->peak_rss_kb = (long)ms;
    if (steps) {
        char *copy = xstrdup(steps), *save = NULL;
        for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            char name[64], outcome[32];
            double sms = 0, to = 0;
            ck_assert_int_ge(sscanf(tok, "%63[^:]:%31[^:]:%lf:%lf", name, outcome, &sms, &to), 3);
            h->steps = xrealloc(h->steps, (h->nsteps + 1) * sizeof *h->steps);
            history_step *st = &h->steps[h->nsteps++];
            st->name = xstrdup(name);
            st->outcome = xstrdup(outcome);
            st->duration_s = sms / 1000.0;
            st->timeout_s = to;
        }
        free(copy);
    }
    sp.learn.executions++;
    if (ok)
        sp.learn.successes++;
    sp.learn.last_used = h->time;
}

static void add_domain(const char *d, uint64_t n, uint64_t ok)
{
    sp.learn.domains = xrealloc(sp.learn.domains, (sp.learn.ndomains + 1) *
                                                      sizeof *sp.learn.domains);
    domain_count *dc = &sp.learn.domains[sp.learn.ndomains++];
    dc->domain = xstrdup(d);
    dc->executions = n;
    dc->successes = ok;
}

static analytics_opts opts(int min_samples, double threshold, double timeout)
{
    analytics_opts o = {.min_samples = min_samples,
                        .threshold = threshold,
                        .timeout_s = timeout,
                        .convergence_threshold = 0.95,
                        .now = NOW};
    return o;
}

static int has(char **r, size_t n, const char *needle)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(r[i], needle))
            return 1;
    return 0;
}

static void free_recs(char **r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i]);
    free(r);
}

START_TEST(test_least_squares_percentile)
{
    double x[] = {0, 1, 2, 3}, y[] = {1, 3, 5, 7};
    double s, i;
    ck_assert_int_eq(least_squares(x, y, 4, &s, &i), 0);
    ck_assert_double_eq_tol(s, 2, 1e-12);
    ck_assert_double_eq_tol(i, 1, 1e-12);
    double x2[] = {1, 2, 3, 4, 5}, y2[] = {2, 4, 5, 4, 5};
    ck_assert_int_eq(least_squares(x2, y2, 5, &s, &i), 0);
    ck_assert_double_eq_tol(s, 0.6, 1e-12);
    ck_assert_double_eq_tol(i, 2.2, 1e-12);
    /* large x (wall-clock seconds) stays exact */
    double x3[] = {1.8e9, 1.8e9 + 1, 1.8e9 + 2};
    double y3[] = {0, 0.5, 1};
    ck_assert_int_eq(least_squares(x3, y3, 3, &s, &i), 0);
    ck_assert_double_eq_tol(s, 0.5, 1e-9);
    double same[] = {2, 2};
    ck_assert_int_eq(least_squares(same, y, 2, &s, &i), -1);
    ck_assert_double_eq(s, 0);
    ck_assert_double_eq(i, 2); /* mean of y[0..1] */
    ck_assert_int_eq(least_squares(x, y, 1, &s, &i), -1);

    double v[] = {4, 1, 3, 2};
    ck_assert_double_eq_tol(percentile(v, 4, 0.5), 2.5, 1e-12);
    ck_assert_double_eq_tol(percentile(v, 4, 0.95), 3.85, 1e-12);
    ck_assert_double_eq(percentile(v, 4, 0), 1);
    ck_assert_double_eq(percentile(v, 4, 1), 4);
    double one[] = {7};
    ck_assert_double_eq(percentile(one, 1, 0.95), 7);
    ck_assert_double_eq(percentile(NULL, 0, 0.5), 0);
}
END_TEST

START_TEST(test_figures)
{
    rec_init();
    add(3, 1, "web", 100, 0.6, "a:succeeded:40:10 b:succeeded:60:0");
    add(2, 0, "web", 200, 0.5, "a:succeeded:50:10 b:failed:150:0");
    add(1, 1, "data", 300, 0.55, "a:succeeded:60:10 b:succeeded:240:0");
    add(0.5, 1, "data", 400, 0.6, "a:succeeded:70:10 b:succeeded:330:0");
    add_domain("data", 2, 2);
    add_domain("web", 2, 1);
    sp.learn.alpha = 6;
    sp.learn.beta = 2;
    analytics_opts o = opts(5, 0.7, 60);
    analytics a;
    analytics_compute(&sp, &o, &a);
    ck_assert_uint_eq(a.execution_count, 4);
    ck_assert_double_eq_tol(a.success_rate, 0.75, 1e-12);
    ck_assert_double_eq_tol(a.avg_response_ms, 250, 1e-9);
    ck_assert_double_eq_tol(a.p50_response_ms, 250, 1e-9);
    ck_assert_double_eq_tol(a.p95_response_ms, 385, 1e-9); /* 300 + 0.85 * 100 */
    ck_assert_uint_eq(a.ntrend, 4);
    ck_assert_double_eq(a.confidence_trend[1], 0.5);
    ck_assert_double_eq_tol(a.avg_cpu_s, 0.125, 1e-12);
    ck_assert_double_eq_tol(a.max_cpu_s, 0.2, 1e-12);
    ck_assert_double_eq_tol(a.max_peak_rss_kb, 400, 1e-12);
    ck_assert_double_eq(a.last_execution, NOW - 0.5 * DAY);
    ck_assert_uint_eq(a.ndomains, 2);
    ck_assert_str_eq(a.domains[0].domain, "data");
    ck_assert_double_eq(a.domains[0].success_rate, 1);
    ck_assert_double_eq_tol(a.domains[0].avg_ms, 350, 1e-9);
    ck_assert_double_eq_tol(a.domains[1].success_rate, 0.5, 1e-12);
    ck_assert_uint_eq(a.nsteps, 2);
    ck_assert_str_eq(a.steps[1].name, "b");
    ck_assert_uint_eq(a.steps[1].count, 4);
    ck_assert_uint_eq(a.steps[1].failures, 1);
    ck_assert_double_eq_tol(a.steps[1].p50_ms, 195, 1e-9);
    ck_assert_double_eq_tol(a.steps[1].p95_ms, 316.5, 1e-9); /* 240 + 0.85 * 90 */
    ck_assert_double_eq_tol(a.steps[1].mean_ms, 195, 1e-9);
    ck_assert_double_eq_tol(a.steps[1].max_ms, 330, 1e-9);
    ck_assert_double_eq(a.steps[0].timeout_s, 10);
    /* progress: 4/5 samples; certainty of Beta(6,2) = 1 - 2 sd = 0.711325, / 0.95 */
    ck_assert_double_eq_tol(a.learning_progress, 0.5 * 0.8 + 0.5 * 0.7487630162, 1e-9);
    sp.learn.converged = 1;
    analytics_free(&a);
    analytics_compute(&sp, &o, &a);
    ck_assert_double_eq_tol(a.learning_progress, 0.9, 1e-12);
    analytics_free(&a);
    stored_pattern_free(&sp);

    /* nothing recorded at all */
    rec_init();
    analytics_compute(&sp, &o, &a);
    ck_assert_uint_eq(a.execution_count, 0);
    ck_assert_double_eq(a.success_rate, 0);
    ck_assert_double_eq(a.avg_response_ms, 0);
    ck_assert_double_eq(a.learning_progress, 0);
    trend t;
    analytics_trend(&sp, 7, &o, &t);
    ck_assert_str_eq(t.direction, "insufficient data");
    ck_assert_str_eq(t.outlook, "unknown");
    char **r;
    size_t n = analytics_recommendations(&a, &t, &o, &r);
    ck_assert(has(r, n, "Only 0 of the 5 executions"));
    free_recs(r, n);
    trend_free(&t);
    analytics_free(&a);
    stored_pattern_free(&sp);
}
END_TEST

START_TEST(test_trend)
{
    /* hand computed: x = -3.5, -2.5, -1.5, -0.5 days, y = 1, 1, 0, 1:
     * mean x -2, mean y 0.75, Sxy = -0.5, Sxx = 5: slope -0.1 per day,
     * intercept 0.55; span 3 days so the prediction looks 3 days past the
     * last point: 0.55 - 0.1 * 2.5 = 0.30 */
    rec_init();
    add(3.5, 1, NULL, 10, 0.6, NULL);
    add(2.5, 1, NULL, 10, 0.7, NULL);
    add(1.5, 0, NULL, 10, 0.6, NULL);
    add(0.5, 1, NULL, 10, 0.65, NULL);
    add(30, 0, NULL, 10, 0.1, NULL); /* outside the window */
    analytics_opts o = opts(4, 0.5, 0);
    trend t;
    analytics_trend(&sp, 20, &o, &t);
    ck_assert_uint_eq(t.samples, 4);
    ck_assert_double_eq_tol(t.success_rate, 0.75, 1e-12);
    ck_assert_double_eq_tol(t.slope_per_day, -0.1, 1e-9);
    ck_assert_double_eq_tol(t.horizon_days, 3, 1e-9);
    ck_assert_double_eq_tol(t.prediction, 0.30, 1e-9);
    ck_assert_str_eq(t.direction, "declining");
    ck_assert_str_eq(t.outlook, "poor");
    ck_assert_double_eq_tol(t.confidence_change, 0.05, 1e-12);
    ck_assert_int_eq(t.days, 20);
    ck_assert_uint_eq(t.daily[16].executions, 1);
    ck_assert_uint_eq(t.daily[18].successes, 0);
    ck_assert_uint_eq(t.daily[19].successes, 1);
    ck_assert_uint_eq(t.daily[0].executions, 0);
    analytics a;
    analytics_compute(&sp, &o, &a);
    char **r;
    size_t n = analytics_recommendations(&a, &t, &o, &r);
    ck_assert(has(r, n, "The success rate is declining (-0.10 per day over the last 20 days"));
    free_recs(r, n);
    analytics_free(&a);
    trend_free(&t);

    /* hand computed interval: the fit 0.55 - 0.1 x gives 0.9, 0.8, 0.7,
     * 0.6, residuals 0.1, 0.2, -0.7, 0.4, RSS 0.70, s^2 = 0.35 on 2 df,
     * SE = sqrt(0.35 / Sxx = 5), t(0.975, 2) = 4.303 */
    analytics_trend(&sp, 20, &o, &t);
    double w = 4.303 * sqrt(0.35 / 5);
    ck_assert_double_eq_tol(t.slope_low, -0.1 - w, 1e-9);
    ck_assert_double_eq_tol(t.slope_high, -0.1 + w, 1e-9);
    ck_assert_double_eq_tol(t.span_days, 3, 1e-9);
    ck_assert_str_eq(t.why, "");
    trend_free(&t);

    /* all at one instant: no trend is claimed from no time span */
    stored_pattern_free(&sp);
    rec_init();
    for (int i = 0; i < 6; i++)
        add(0.1, i % 2, NULL, 10, 0.5, NULL);
    analytics_trend(&sp, 7, &o, &t);
    ck_assert_double_eq(t.slope_per_day, 0);
    ck_assert_str_eq(t.direction, "insufficient data");
    ck_assert_str_eq(t.outlook, "unknown");
    ck_assert_ptr_nonnull(strstr(t.why, "span 0 days, at least 1 needed"));
    trend_free(&t);

    /* ten executions within ten seconds (a "+5594 per day" outlook once shown):
     * enough samples, too short a span */
    stored_pattern_free(&sp);
    rec_init();
    for (int i = 0; i < 10; i++)
        add(0.5 - i / 86400.0, i >= 5, NULL, 10, 0.5, NULL);
    analytics_trend(&sp, 7, &o, &t);
    ck_assert_str_eq(t.direction, "insufficient data");
    ck_assert_str_eq(t.outlook, "unknown");
    ck_assert_ptr_nonnull(strstr(t.why, "at least 1 needed"));
    trend_free(&t);

    /* three samples are needed even when min_samples says fewer */
    stored_pattern_free(&sp);
    rec_init();
    add(3, 1, NULL, 10, 0.5, NULL);
    add(1, 0, NULL, 10, 0.5, NULL);
    analytics_opts o2 = opts(1, 0.5, 0);
    analytics_trend(&sp, 7, &o2, &t);
    ck_assert_str_eq(t.direction, "insufficient data");
    ck_assert_str_eq(t.why, "2 executions in the period, 3 needed");
    trend_free(&t);

    /* improving, clamped prediction */
    stored_pattern_free(&sp);
    rec_init();
    for (int i = 0; i < 10; i++)
        add(9.5 - i, i >= 5, NULL, 10, 0.5, NULL);
    analytics_trend(&sp, 10, &o, &t);
    ck_assert_double_eq_tol(t.slope_per_day, 12.5 / 82.5, 1e-9);
    ck_assert_double_eq(t.prediction, 1);
    ck_assert_str_eq(t.direction, "improving");
    ck_assert_str_eq(t.outlook, "excellent");
    trend_free(&t);
    stored_pattern_free(&sp);
}
END_TEST

START_TEST(test_recommendations)
{
    rec_init();
    /* 10 executions: step "fetch" fails 4 times, "build" is slow, "deploy"
     * runs at 90% of its 1 s timeout, the "eu" domain fails a lot */
    for (int i = 0; i < 10; i++) {
        int fail = i % 5 < 2;
        char steps[200];
        snprintf(steps, sizeof steps, "fetch:%s:20:0 build:succeeded:700:0 deploy:succeeded:%d:0.35",
                 fail ? "failed" : "succeeded", 300 + i * 5);
        add(5 - i * 0.3, !fail, fail ? "eu" : "us", 1000, 0.5, steps);
    }
    add_domain("eu", 5, 1);
    add_domain("us", 5, 5);
    sp.learn.executions = 10;
    sp.learn.successes = 6;
    analytics_opts o = opts(5, 0.9, 1.2);
    analytics a;
    analytics_compute(&sp, &o, &a);
    trend t;
    analytics_trend(&sp, 7, &o, &t);
    char **r;
    size_t n = analytics_recommendations(&a, &t, &o, &r);
    ck_assert_msg(has(r, n, "Step 'fetch' fails most often: 4 of 10 runs (40%)"), "%s", r[0]);
    ck_assert(has(r, n, "Step 'build' is the slowest (p50 700 ms"));
    ck_assert(has(r, n, "Step 'deploy' runs close to its timeout: p95"));
    ck_assert(has(r, n, "Executions run close to the pattern's timeout: p95 1000 ms is 83%"));
    ck_assert(has(r, n, "Domain 'eu' does worse than the rest: 20% success over 5 executions "
                        "against 100% elsewhere"));
    ck_assert(has(r, n, "The confidence threshold 0.90 is above the success rate this pattern "
                        "achieves (0.60"));
    ck_assert(has(r, n, "'ndf run' runs it with a warning (confidence_gate warn)"));
    /* Beta(7, 5): the 0.95 quantile is about 0.81, below 0.90 */
    ck_assert(has(r, n, "Delegation holds it back: even the upper end of its 90% credible "
                        "interval is below the threshold 0.90"));
    ck_assert(!has(r, n, "Only "));
    free_recs(r, n);
    o.gate = GATE_ENFORCE;
    n = analytics_recommendations(&a, &t, &o, &r);
    ck_assert(has(r, n, "'ndf run' refuses it unless forced (confidence_gate enforce)"));
    free_recs(r, n);
    o.gate = GATE_OFF;
    o.threshold = 0.7; /* above 0.60, but Beta(7, 5) reaches above 0.7 */
    n = analytics_recommendations(&a, &t, &o, &r);
    ck_assert(has(r, n, "'ndf run' still runs it (confidence_gate off)"));
    ck_assert(!has(r, n, "Delegation holds it back"));
    free_recs(r, n);
    trend_free(&t);
    analytics_free(&a);

    /* a healthy pattern gets no advice */
    stored_pattern_free(&sp);
    rec_init();
    for (int i = 0; i < 8; i++)
        add(5 - i * 0.5, 1, "us", 100, 0.9, "a:succeeded:30:10 b:succeeded:25:10");
    add_domain("us", 8, 8);
    o = opts(5, 0.75, 60);
    analytics_compute(&sp, &o, &a);
    analytics_trend(&sp, 7, &o, &t);
    n = analytics_recommendations(&a, &t, &o, &r);
    ck_assert_msg(n == 0, "unexpected: %s", n ? r[0] : "");
    free_recs(r, n);
    trend_free(&t);
    analytics_free(&a);

    /* timeouts */
    stored_pattern_free(&sp);
    rec_init();
    for (int i = 0; i < 6; i++)
        add(1, i != 0, NULL, 100, 0.9, i == 0 ? "slow:timeout:5000:5" : "slow:succeeded:50:5");
    analytics_compute(&sp, &o, &a);
    n = analytics_recommendations(&a, NULL, &o, &r);
    ck_assert(has(r, n, "Step 'slow' timed out 1 time: raise its timeout (5 s)"));
    free_recs(r, n);
    analytics_free(&a);

    /* a step with no timeout of its own: the pattern's deadline, no "0 s" */
    stored_pattern_free(&sp);
    rec_init();
    for (int i = 0; i < 6; i++)
        add(1, i > 1, NULL, 100, 0.9, i <= 1 ? "s:timeout:4000:0" : "s:succeeded:50:0");
    o = opts(5, 0.75, 4);
    analytics_compute(&sp, &o, &a);
    n = analytics_recommendations(&a, NULL, &o, &r);
    ck_assert(has(r, n, "Step 's' timed out 2 times under the pattern's deadline (4 s)"));
    ck_assert(!has(r, n, "(0 s)"));
    free_recs(r, n);
    analytics_free(&a);
    /* and when the pattern's timeout is not known either */
    o = opts(5, 0.75, 0);
    analytics_compute(&sp, &o, &a);
    n = analytics_recommendations(&a, NULL, &o, &r);
    ck_assert(has(r, n, "Step 's' timed out 2 times with no timeout of its own"));
    ck_assert(!has(r, n, "(0 s)"));
    free_recs(r, n);
    analytics_free(&a);
    stored_pattern_free(&sp);
}
END_TEST

START_TEST(test_sparkline)
{
    double v[] = {0, 1};
    char *s = sparkline(v, 2, 0, 1, 10, 0);
    ck_assert_str_eq(s, "_#");
    free(s);
    double w[] = {0, 0, 1, 1, 0.5, 0.5};
    s = sparkline(w, 6, 0, 1, 3, 0);
    ck_assert_str_eq(s, "_#="); /* averages of pairs; 0.5 -> level 4 */
    free(s);
    s = sparkline(v, 2, 0, 1, 10, 1);
    ck_assert_str_eq(s, "\u2581\u2588");
    free(s);
    s = sparkline(NULL, 0, 0, 1, 10, 1);
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

static Suite *analytics_suite(void)
{
    Suite *s = suite_create("analytics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_least_squares_percentile);
    tcase_add_test(tc, test_figures);
    tcase_add_test(tc, test_trend);
    tcase_add_test(tc, test_recommendations);
    tcase_add_test(tc, test_sparkline);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(analytics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
