/* Learning state of one pattern (the statistics half of the seed's
 * DelegationPattern) and the confidence algorithms (seed ConfidenceLevel,
 * PatternConfig.configure_confidence_calculation).  The math is written down
 * in ndf.conf(5). */
#ifndef NDF_LEARNING_H
#define NDF_LEARNING_H

#include <stdint.h>

typedef enum confidence_level {
    CONFIDENCE_LOW = 0,    /* score < 0.5 */
    CONFIDENCE_MEDIUM = 1, /* 0.5 <= score <= 0.8 */
    CONFIDENCE_HIGH = 2    /* score > 0.8 */
} confidence_level;

typedef enum confidence_algorithm {
    ALGO_SIMPLE_AVERAGE = 0,
    ALGO_WEIGHTED_AVERAGE = 1,
    ALGO_ADAPTIVE_BAYES = 2
} confidence_algorithm;

/* How the confidence threshold applies to an explicit run (`ndf run`,
 * batch, ctl run, sub-patterns); delegation always selects by it.  warn is
 * the default: a gate that refuses a pattern also stops it from earning its
 * confidence back, so refusing is opt-in. */
typedef enum confidence_gate {
    GATE_WARN = 0,    /* run it, with a warning */
    GATE_ENFORCE = 1, /* refuse it (NDF_ERR_CONFIDENCE) unless forced */
    GATE_OFF = 2      /* run it, say nothing */
} confidence_gate;

/* "warn", "enforce", "off"; "unknown" when out of range. */
const char *confidence_gate_name(confidence_gate g);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int confidence_gate_parse(const char *name, confidence_gate *out);

/* The parameters of the confidence calculation (from the global config). */
typedef struct learning_params {
    confidence_algorithm algorithm;
    double learning_rate;         /* weighted_average: weight of the newest outcome */
    int min_samples;              /* executions before the score is trusted */
    double convergence_threshold; /* adaptive_bayes: stop updating once the
                                     posterior's certainty exceeds it */
    double prior_alpha, prior_beta; /* adaptive_bayes Beta prior */
} learning_params;

/* adaptive_bayes, learning_rate 0.1, min_samples 5, convergence 0.95, Beta(1, 1). */
void learning_params_default(learning_params *p);
/* The configuration name of `a` ("adaptive_bayes", ...); a static string,
 * "unknown" when out of range. */
const char *confidence_algorithm_name(confidence_algorithm a);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int confidence_algorithm_parse(const char *name, confidence_algorithm *out);

/* The seed's ConfidenceLevel of a score: HIGH above 0.8, MEDIUM from 0.5,
 * else LOW. */
confidence_level confidence_level_from_score(double score);
const char *confidence_level_name(confidence_level l); /* "LOW", ... */
/* <0, 0, >0 like strcmp (the seed's __lt__ and friends). */
int confidence_level_compare(confidence_level a, confidence_level b);

typedef struct domain_count {
    char *domain;
    uint64_t executions, successes;
} domain_count;

typedef struct learning_state {
    uint64_t executions, successes;
    double score;          /* current confidence score 0..1 */
    double alpha, beta;    /* adaptive_bayes posterior */
    int converged;         /* adaptive_bayes stopped updating */
    domain_count *domains; /* per-domain counts, sorted by domain */
    size_t ndomains;
    double last_used;      /* wall-clock seconds of the last execution, 0 never */
    double created;        /* wall-clock seconds when first registered */
    double duration_total; /* seconds, summed over the executions recorded with one */
    uint64_t timed;        /* executions that were recorded with a duration */
} learning_state;

/* The score with no executions: the prior mean alpha0 / (alpha0 + beta0),
 * for every algorithm (0.5 with the default Beta(1, 1) prior). */
double learning_prior_mean(const learning_params *p);

/* adaptive_bayes: the certainty of a Beta(alpha, beta) posterior,
 * 1 - 2 * sd with sd = sqrt(alpha*beta / ((alpha+beta)^2 (alpha+beta+1))),
 * clamped to 0..1.  Updating stops once it reaches convergence_threshold
 * (and min_samples executions were seen). */
double learning_certainty(double alpha, double beta);

/* Initializes to "no executions": score is the prior mean. */
void learning_init(learning_state *st, const learning_params *p);
void learning_free(learning_state *st);
/* Deep copy into `dst` (which must not hold data). */
void learning_copy(learning_state *dst, const learning_state *src);
/* seed record_execution.  `domain` may be NULL. */
void learning_record(learning_state *st, const learning_params *p, int success,
                     const char *domain, double when);
/* Adds one execution's duration (seconds, >= 0) to the totals. */
void learning_add_duration(learning_state *st, double seconds);
/* seed reset_stats: back to "no executions" (keeps `created`). */
void learning_reset(learning_state *st, const learning_params *p);
double learning_success_rate(const learning_state *st); /* 0 when no executions */
/* 1 once min_samples executions have been recorded. */
int learning_trusted(const learning_state *st, const learning_params *p);

#endif
