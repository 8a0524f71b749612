/* Pattern analytics (seed PatternAnalytics): figures, a trend analysis and
 * recommendations computed from a pattern's stored record.  The formulas are
 * written down in ndf(1) under "ndf analytics". */
#ifndef NDF_ANALYTICS_H
#define NDF_ANALYTICS_H

#include <stddef.h>
#include <stdint.h>
#include "store/storage.h"

/* What the analysis needs beyond the record. */
typedef struct analytics_opts {
    int min_samples;      /* executions before the score is trusted */
    double threshold;     /* the confidence threshold in effect, 0..1 */
    double timeout_s;     /* the pattern's timeout, 0 when unknown */
    double convergence_threshold; /* adaptive_bayes certainty target */
    double now;           /* wall-clock seconds (now_wall()) */
    int gate;             /* the confidence_gate in effect (0: warn) */
    double prior_alpha, prior_beta; /* the Beta prior; 0, 0: Beta(1, 1) */
} analytics_opts;

/* Per-step breakdown over the history. */
typedef struct step_stats {
    char *name;
    size_t count, failures, timeouts;
    double mean_ms, p50_ms, p95_ms, max_ms;
    double timeout_s;     /* the largest limit seen, 0 when none */
} step_stats;

typedef struct domain_perf {
    char *domain;
    uint64_t executions, successes;
    double success_rate;
    double avg_ms;        /* over the history entries of this domain, 0 when none */
} domain_perf;

typedef struct analytics {
    uint64_t execution_count;   /* learning state: all executions ever */
    uint64_t successes;
    double success_rate;        /* successes / executions, 0 when none */
    double score;               /* current confidence score */
    size_t history_count;       /* executions in the kept history */
    double avg_response_ms;     /* mean duration over the history */
    double p50_response_ms, p95_response_ms;
    double *confidence_trend;   /* score after each execution in the history */
    size_t ntrend;
    /* resource usage, averages and maxima over the history */
    double avg_cpu_s, max_cpu_s;
    double avg_peak_rss_kb, max_peak_rss_kb;
    domain_perf *domains;       /* sorted by domain */
    size_t ndomains;
    double last_execution;      /* wall-clock seconds, 0 never */
    double learning_progress;   /* 0..1, see ndf(1) */
    step_stats *steps;          /* by first appearance */
    size_t nsteps;
} analytics;

/* Computes the figures.  Always succeeds; free with analytics_free(). */
void analytics_compute(const stored_pattern *sp, const analytics_opts *o, analytics *out);
void analytics_free(analytics *a);

/* One day of the trend window. */
typedef struct trend_day {
    double start;          /* wall-clock seconds of the day's start */
    size_t executions, successes;
} trend_day;

/* No trend, rate of change or outlook is computed from executions that
 * span less than this (days): a slope "per day" fitted to minutes of data
 * is an extrapolation, not a measurement (documented in ndf(1)). */
#define TREND_MIN_SPAN_DAYS 1.0

/* seed get_trend_analysis(days). */
typedef struct trend {
    int days;
    size_t samples;        /* executions in the window */
    double success_rate;   /* over the window */
    double slope_per_day;  /* least-squares slope of outcome (0/1) on time */
    double prediction;     /* fitted success rate ahead, clamped 0..1 */
    double horizon_days;   /* how far ahead the prediction looks */
    const char *direction; /* "improving", "declining", "stable", "insufficient data" */
    const char *outlook;   /* "excellent", "good", "fair", "poor", "unknown" */
    trend_day *daily;      /* `days` entries, oldest first */
    double confidence_change; /* last minus first score in the window */
    /* the 95% interval of slope_per_day (Student's t on the least-squares
     * standard error); both equal slope_per_day when it is exact */
    double slope_low, slope_high;
    double span_days;        /* first to last execution in the window */
    char why[120];           /* with "insufficient data": what is missing */
} trend;

/* Analyses the executions of the last `days` days (>= 1) before o->now. */
void analytics_trend(const stored_pattern *sp, int days, const analytics_opts *o, trend *out);
void trend_free(trend *t);

/* seed generate_recommendations(): advice drawn from the figures, each a
 * sentence.  Returns the count; *out is an array of strings (free each and
 * the array).  An empty list means nothing stands out. */
size_t analytics_recommendations(const analytics *a, const trend *t, const analytics_opts *o,
                                 char ***out);

/* Least squares: slope and intercept of y on x.  Returns 0, or -1 when
 * fewer than two points or all x are equal (slope 0, intercept mean y). */
int least_squares(const double *x, const double *y, size_t n, double *slope, double *intercept);
/* Percentile by linear interpolation between closest ranks (q in 0..1) of
 * `v` (sorted in place). 0 for an empty array. */
double percentile(double *v, size_t n, double q);

/* A sparkline of `v` (n values in lo..hi) resampled to `width` columns:
 * Unicode blocks when `utf8`, else ASCII " .:-=+*#".  Caller frees. */
char *sparkline(const double *v, size_t n, double lo, double hi, size_t width, int utf8);

#endif
