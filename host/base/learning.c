/* Learning state of one pattern and the three confidence algorithms.  The
 * formulas here are the ones written down in ndf.conf(5) (CONFIDENCE AND
 * LEARNING); change one only together with the other. */
#include "build-config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/learning.h"
#include "base/util.h"

void learning_params_default(learning_params *p)
{
    p->algorithm = ALGO_ADAPTIVE_BAYES;
    p->learning_rate = 0.1;
    p->min_samples = 5;
    p->convergence_threshold = 0.95;
    p->prior_alpha = 1.0;
    p->prior_beta = 1.0;
}

static const char *const algo_names[] = {"simple_average", "weighted_average", "adaptive_bayes"};

const char *confidence_algorithm_name(confidence_algorithm a)
{
    return (unsigned)a < ARRAY_SIZE(algo_names) ? algo_names[a] : "unknown";
}

int confidence_algorithm_parse(const char *name, confidence_algorithm *out)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(algo_names); i++) {
        if (strcmp(name, algo_names[i]) == 0) {
            *out = (confidence_algorithm)i;
            return 0;
        }
    }
    return -1;
}

static const char *const gate_names[] = {"warn", "enforce", "off"};

const char *confidence_gate_name(confidence_gate g)
{
    return (unsigned)g < ARRAY_SIZE(gate_names) ? gate_names[g] : "unknown";
}

int confidence_gate_parse(const char *name, confidence_gate *out)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(gate_names); i++) {
        if (strcmp(name, gate_names[i]) == 0) {
            *out = (confidence_gate)i;
            return 0;
        }
    }
    return -1;
}

confidence_level confidence_level_from_score(double score)
{
    if (score > 0.8)
        return CONFIDENCE_HIGH;
    if (score >= 0.5)
        return CONFIDENCE_MEDIUM;
    return CONFIDENCE_LOW; /* also NaN */
}

const char *confidence_level_name(confidence_level l)
{
    switch (l) {
    case CONFIDENCE_HIGH: return "HIGH";
    case CONFIDENCE_MEDIUM: return "MEDIUM";
    default: return "LOW";
    }
}

int confidence_level_compare(confidence_level a, confidence_level b)
{
    return (int)a < (int)b ? -1 : (int)a > (int)b;
}

/* A configuration that never set the prior (zeroed params) must not divide
 * by zero: a non-positive prior parameter counts as 1. */
static double prior_a(const learning_params *p)
{
    return p->prior_alpha > 0 ? p->prior_alpha : 1.0;
}

static double prior_b(const learning_params *p)
{
    return p->prior_beta > 0 ? p->prior_beta : 1.0;
}

double learning_prior_mean(const learning_params *p)
{
    return prior_a(p) / (prior_a(p) + prior_b(p));
}

double learning_certainty(double a, double b)
{
    double n = a + b;
    if (!(a > 0) || !(b > 0))
        return 0;
    double sd = sqrt(a * b / (n * n * (n + 1)));
    double c = 1 - 2 * sd;
    return c < 0 ? 0 : c > 1 ? 1 : c;
}

void learning_init(learning_state *st, const learning_params *p)
{
    memset(st, 0, sizeof *st);
    st->alpha = prior_a(p);
    st->beta = prior_b(p);
    st->score = learning_prior_mean(p);
}

void learning_free(learning_state *st)
{
    for (size_t i = 0; i < st->ndomains; i++)
        free(st->domains[i].domain);
    free(st->domains);
    st->domains = NULL;
    st->ndomains = 0;
}

void learning_copy(learning_state *dst, const learning_state *src)
{
    *dst = *src;
    dst->domains = NULL;
    if (src->ndomains) {
        dst->domains = xmalloc(src->ndomains * sizeof *dst->domains);
        for (size_t i = 0; i < src->ndomains; i++) {
            dst->domains[i] = src->domains[i];
            dst->domains[i].domain = xstrdup(src->domains[i].domain);
        }
    }
}

/* The per-domain entry for `domain`, inserted in sorted position if new. */
static domain_count *domain_slot(learning_state *st, const char *domain)
{
    size_t lo = 0, hi = st->ndomains;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->domains[mid].domain, domain);
        if (c == 0)
            return &st->domains[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    st->domains = xrealloc(st->domains, (st->ndomains + 1) * sizeof *st->domains);
    memmove(&st->domains[lo + 1], &st->domains[lo], (st->ndomains - lo) * sizeof *st->domains);
    st->ndomains++;
    st->domains[lo].domain = xstrdup(domain);
    st->domains[lo].executions = st->domains[lo].successes = 0;
    return &st->domains[lo];
}

void learning_record(learning_state *st, const learning_params *p, int success,
                     const char *domain, double when)
{
    double x = success ? 1.0 : 0.0;
    st->executions++;
    if (success)
        st->successes++;
    if (domain && *domain) {
        domain_count *d = domain_slot(st, domain);
        d->executions++;
        if (success)
            d->successes++;
    }
    if (when > 0)
        st->last_used = when;

    switch (p->algorithm) {
    case ALGO_SIMPLE_AVERAGE:
        st->score = (double)st->successes / (double)st->executions;
        break;
    case ALGO_WEIGHTED_AVERAGE: {
        double lr = p->learning_rate;
        lr = lr < 0 ? 0 : lr > 1 ? 1 : lr;
        st->score += lr * (x - st->score);
        break;
    }
    case ALGO_ADAPTIVE_BAYES:
    default:
        if (st->converged)
            break;
        st->alpha += x;
        st->beta += 1 - x;
        st->score = st->alpha / (st->alpha + st->beta);
        if (st->executions >= (uint64_t)(p->min_samples > 0 ? p->min_samples : 0) &&
            learning_certainty(st->alpha, st->beta) >= p->convergence_threshold)
            st->converged = 1;
        break;
    }
}

void learning_add_duration(learning_state *st, double seconds)
{
    if (seconds >= 0 && isfinite(seconds)) {
        st->duration_total += seconds;
        st->timed++;
    }
}

void learning_reset(learning_state *st, const learning_params *p)
{
    double created = st->created;
    learning_free(st);
    learning_init(st, p);
    st->created = created;
}

double learning_success_rate(const learning_state *st)
{
    return st->executions ? (double)st->successes / (double)st->executions : 0.0;
}

int learning_trusted(const learning_state *st, const learning_params *p)
{
    return st->executions >= (uint64_t)(p->min_samples > 0 ? p->min_samples : 0);
}
