/* Delegation: choosing the pattern for a context (the seed's
 * "minimum confidence threshold for pattern selection").  The registry's
 * candidates for the context are ranked by a policy over each candidate's
 * Beta posterior for the context's domain; the first runs, the next ones
 * are its fallbacks.  These formulas are the ones in ndf.conf(5)
 * (doc/ndf.conf.5, DELEGATION); change one only together with the other.
 *
 * Posterior of a candidate in domain d.  a0, b0 are the configured prior
 * (confidence.prior_alpha/beta), m >= 0 the prior strength; n, s are the
 * pattern's executions and successes, n_d, s_d those in domain d:
 *
 *     n_o = n - n_d,  s_o = s - s_d          outcomes outside d
 *     p_o = (a0 + s_o) / (a0 + b0 + n_o)     their posterior mean
 *     w   = min(m, n_o)                      pseudo-outcomes lent to d
 *     alpha = a0 + s_d + w p_o
 *     beta  = b0 + (n_d - s_d) + w (1 - p_o)
 *
 * A domain with few samples thus starts from the pattern's record
 * elsewhere, worth at most m outcomes (and never more than there are), and
 * its own outcomes take over as they accumulate.  Outcomes in d are not in
 * p_o, so none is counted twice.  A context without a domain uses the
 * pattern-wide posterior: alpha = a0 + s, beta = b0 + n - s.  Selection
 * reads the counts, not the adaptive_bayes alpha, beta of the confidence
 * score, which stop moving once converged.
 *
 * The confidence threshold (the pattern's own, else the global one) governs
 * selection: a candidate is *confidently below* it when the upper end of its
 * 90% credible interval, the 0.95 quantile, is below the threshold.  Such a
 * candidate is chosen only by exploration (a Thompson draw, a UCB bonus, an
 * epsilon-greedy coin), never by greedy or fixed.  Policies, scoring each
 * candidate i with posterior mean mu_i = alpha_i / (alpha_i + beta_i):
 *
 *     thompson  a draw from Beta(alpha_i, beta_i); every candidate takes part
 *     greedy    mu_i; only candidates not confidently below
 *     ucb       mu_i + sqrt(2 ln N / nu_i), nu_i = alpha_i + beta_i,
 *               N = sum of nu (UCB1 on the posterior's pseudo-counts);
 *               every candidate
 *     fixed     the similarity alone (no learning); not confidently below
 *     epsilon   with probability epsilon a uniformly drawn candidate (any)
 *               first, then greedy's order; else greedy
 *
 * The attempt order is the candidates by score, best first (ties: higher
 * similarity, then name), cut to 1 + max_fallbacks: the first is chosen,
 * the next are tried in turn when it fails.  A fallback is never a
 * candidate already tried. */
#ifndef NDF_DELEGATE_H
#define NDF_DELEGATE_H

#include <stddef.h>
#include <stdint.h>
#include "base/learning.h"
#include "base/rng.h"
#include "model/context.h"
#include "model/pattern.h"
#include "model/registry.h"

struct strbuf;

typedef enum delegate_policy {
    DELEGATE_THOMPSON = 0,
    DELEGATE_GREEDY = 1,
    DELEGATE_UCB = 2,
    DELEGATE_FIXED = 3,
    DELEGATE_EPSILON = 4 /* epsilon-greedy */
} delegate_policy;

/* "thompson", "greedy", "ucb", "fixed", "epsilon_greedy". */
const char *delegate_policy_name(delegate_policy p);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int delegate_policy_parse(const char *name, delegate_policy *out);

/* The credible interval shown by explain is [q(0.05), q(0.95)]; the
 * threshold rule compares its upper end. */
#define DELEGATE_INTERVAL_LO 0.05
#define DELEGATE_INTERVAL_HI 0.95

typedef struct delegate_opts {
    delegate_policy policy;
    double prior_strength;  /* m >= 0, finite */
    double epsilon;         /* DELEGATE_EPSILON: 0..1 */
    double threshold;       /* global confidence threshold 0..1 */
    unsigned max_fallbacks; /* the attempt order holds at most 1 + this */
    int explain;            /* also compute each credible interval */
    int has_seed;           /* else a fresh seed is drawn (and reported) */
    uint64_t seed;
} delegate_opts;

/* thompson, prior strength 10, epsilon 0.1, threshold 0, 2 fallbacks, no
 * explain, no seed. */
void delegate_opts_default(delegate_opts *o);

/* Why a candidate is where it is (the explain table's last column). */
typedef enum delegate_verdict {
    DELEGATE_CHOSEN = 0,    /* first in the attempt order */
    DELEGATE_FALLBACK = 1,  /* later in the attempt order */
    DELEGATE_OUTRANKED = 2, /* eligible, ranked after the last fallback */
    DELEGATE_BELOW = 3      /* confidently below its threshold, and this
                               policy does not explore */
} delegate_verdict;

/* "chosen", "fallback", "outranked", "below threshold". */
const char *delegate_verdict_name(delegate_verdict v);

/* One candidate.  The caller (delegate_choose, or a simulation) sets the
 * inputs; delegate_rank() the rest. */
typedef struct delegate_candidate {
    /* inputs */
    pattern *p;        /* a reference owned by the result, or NULL */
    const char *name;  /* p->name, or a simulation's (not owned) */
    double similarity; /* registry_similarity(), 0..1 */
    double threshold;  /* in effect for this pattern, 0..1 */
    uint64_t n, s;     /* pattern-wide executions and successes */
    uint64_t nd, sd;   /* in the context's domain (= n, s without one) */
    /* outputs */
    double alpha, beta; /* the blended posterior */
    double mean;        /* alpha / (alpha + beta) */
    double lo, hi;      /* 90% credible interval; NAN unless explain */
    double score;       /* what the policy ranked by (the draw for
                           thompson); NAN when it did not score it */
    int below;          /* 1 confidently below its threshold, 0 not, -1 not
                           judged (only without explain: a candidate whose
                           place did not depend on it) */
    int explored;       /* in the order although below */
    int rank;           /* place in the attempt order, -1 when not in it */
    delegate_verdict verdict;
} delegate_candidate;

typedef struct delegate_result {
    delegate_policy policy;
    uint64_t seed;             /* the generator's seed (reproduces the choice) */
    char *domain;              /* the context's domain (owned), or NULL */
    delegate_candidate *cands; /* by similarity, then name */
    size_t ncands;
    size_t *order; /* indexes into cands: the attempt order */
    size_t norder;
    int coin; /* epsilon: the coin said explore */
} delegate_result;

/* Makes room for `n` candidates (zeroed, rank -1) and their order, for a
 * caller that fills them itself (a simulation reuses one result for every
 * decision).  Release with delegate_result_free(). */
void delegate_result_init(delegate_result *res, size_t n);
/* Drops the candidates' pattern references and frees the arrays; `res` may
 * be zeroed or already freed. */
void delegate_result_free(delegate_result *res);

/* The blended posterior of `c` from its counts (the formula above), with
 * prior `lp` and strength m: sets c->alpha, c->beta and c->mean. */
void delegate_posterior(delegate_candidate *c, const learning_params *lp, double m);

/* 1 when Beta(alpha, beta)'s 0.95 quantile is below `threshold`.  Exact,
 * with shortcuts that decide most cases without the incomplete beta. */
int delegate_confidently_below(double alpha, double beta, double threshold);

/* Ranks res->cands (inputs set) for policy o->policy with draws from `g`:
 * sets every candidate's outputs, res->order / norder, res->coin and
 * res->policy (not res->seed).  Returns NDF_OK; NDF_ERR_CONFIDENCE when
 * candidates exist but the policy may choose none of them (greedy, fixed,
 * or epsilon's greedy turn, with all confidently below: the message says
 * so); NDF_ERR_NOT_FOUND when there are no candidates; NDF_ERR_INVALID for
 * options out of range.  The outputs are set in every case, so explain can
 * show why. */
int delegate_rank(const delegate_opts *o, const learning_params *lp, rng *g, delegate_result *res);

/* Chooses the pattern for `ctx`: the candidates are the registered patterns
 * that match it (registry_find_by_domain, then pattern_matches: domain and
 * agent-type globs, attributes, the type's matches hook), by similarity;
 * their counts are read from the patterns (a paged-out pattern's domain
 * counts from its store); then delegate_rank() with a generator seeded by
 * o->seed, or by a fresh seed below 2^53 (exact in JSON) kept in
 * out->seed.  Safe to call from several threads at once.  `out` is always filled
 * and must be released with delegate_result_free().  Returns what
 * delegate_rank() returns; NDF_ERR_NOT_FOUND is the distinct status of "no
 * pattern suits this context" (message names the domain and agent type),
 * which `ndf delegate` maps to its own exit code. */
int delegate_choose(registry *r, const ndf_context *ctx, const delegate_opts *o,
                    delegate_result *out);

/* One line on why the candidate at place `k` of the attempt order was
 * chosen there, for the record of that attempt ("thompson draw 0.812, best
 * of 4; posterior 0.74 from 12 runs in 'eu', 40 in all").  Caller frees. */
char *delegate_reason(const delegate_result *res, size_t k);

/* Appends the result as a JSON object: policy, seed, coin, the candidates
 * (pattern, similarity, threshold, counts, alpha, beta, mean, interval or
 * null, score or null, below or null, explored, rank or null, verdict)
 * and the attempt order by name. */
void delegate_result_to_json(const delegate_result *res, struct strbuf *sb);

/* ---- outcome accounting ---- */

/* What one attempt's status means for learning and for the fallback chain
 * (table in ndf.conf(5), DELEGATION):
 *
 *   status                           outcome      learns     next candidate
 *   NDF_OK                           SUCCESS      success    no (done)
 *   EXECUTION (a step failed, a      FAILURE      failure    yes
 *     success criterion failed)
 *   TIMEOUT                          FAILURE      failure    yes
 *   VALIDATION (e.g. ${attr.x}       SKIP         no         yes
 *     missing), INVALID, NOT_FOUND,
 *     CONFIDENCE, RESOURCE
 *   CANCELLED (operator, shutdown),  STOP         no         no
 *     IO (storage), NOMEM, EXISTS
 *   any other code                   as EXECUTION (ndf/status.h)
 *
 * SKIP: the pattern did not run as itself (it could not with this context,
 * was refused, or waited out the host's load), so the outcome says nothing
 * about it, yet another candidate may do.  STOP: the delegation as a whole
 * must end; nothing about the pattern was learned. */
typedef enum delegate_outcome {
    DELEGATE_SUCCESS = 0,
    DELEGATE_FAILURE = 1,
    DELEGATE_SKIP = 2,
    DELEGATE_STOP = 3
} delegate_outcome;

delegate_outcome delegate_outcome_of(int status);
/* "success", "failure", "not counted", "not counted, stop". */
const char *delegate_outcome_name(delegate_outcome o);
/* 1 when the outcome is learned (registry_record with success = o ==
 * DELEGATE_SUCCESS), 0 when not. */
int delegate_outcome_counts(delegate_outcome o);
/* 1 when the next candidate should be tried after this outcome. */
int delegate_outcome_falls_back(delegate_outcome o);

#endif
