/* Check suite for host/model/delegate.c: the blend formula against values
 * worked by hand, the threshold rule against the exact quantile, each
 * policy seeded and reproducible, the fallback order, the outcome table,
 * and choosing from a registry (matching, similarity order, counts from
 * resident and paged-out patterns, no candidate, one, 10,000). */
#include "build-config.h"

#include <check.h>
#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/beta.h"
#include "base/util.h"
#include "model/delegate.h"

#define EPS 1e-9

static learning_params lp;

static void setup(void)
{
    learning_params_default(&lp);
}

/* Sets candidate i of `res`. */
static void cand(delegate_result *res, size_t i, const char *name, double sim, double thr,
                 uint64_t n, uint64_t s, uint64_t nd, uint64_t sd)
{
    delegate_candidate *c = &res->cands[i];
    c->name = name;
    c->similarity = sim;
    c->threshold = thr;
    c->n = n;
    c->s = s;
    c->nd = nd;
    c->sd = sd;
}

static delegate_opts opts(delegate_policy p, unsigned fallbacks)
{
    delegate_opts o;
    delegate_opts_default(&o);
    o.policy = p;
    o.max_fallbacks = fallbacks;
    return o;
}

/* Ranks with a generator seeded by `seed`. */
static int rank_seeded(const delegate_opts *o, delegate_result *res, uint64_t seed)
{
    rng g;
    rng_seed(&g, seed);
    return delegate_rank(o, &lp, &g, res);
}

static const char *chosen(const delegate_result *res)
{
    return res->norder ? res->cands[res->order[0]].name : "(none)";
}

START_TEST(test_names)
{
    for (int p = DELEGATE_THOMPSON; p <= DELEGATE_EPSILON; p++) {
        delegate_policy back;
        ck_assert_int_eq(delegate_policy_parse(delegate_policy_name((delegate_policy)p), &back), 0);
        ck_assert_int_eq(back, p);
    }
    delegate_policy x;
    ck_assert_int_eq(delegate_policy_parse("random", &x), -1);
    ck_assert_int_eq(delegate_policy_parse(NULL, &x), -1);
    ck_assert_str_eq(delegate_policy_name(DELEGATE_EPSILON), "epsilon_greedy");
    ck_assert_str_eq(delegate_verdict_name(DELEGATE_BELOW), "below threshold");
}
END_TEST

START_TEST(test_blend_by_hand)
{
    delegate_candidate c;
    memset(&c, 0, sizeof c);
    /* 30 runs, 24 successes; 5 of them in this domain with 1 success.
     * Outside: 25 runs, 23 successes: p = (1 + 23) / (2 + 25) = 24/27;
     * w = min(10, 25) = 10; alpha = 1 + 1 + 10 * 24/27 = 10.888...;
     * beta = 1 + 4 + 10 * 3/27 = 6.111...; mean = 10.888.../17. */
    c.n = 30, c.s = 24, c.nd = 5, c.sd = 1;
    delegate_posterior(&c, &lp, 10);
    ck_assert_double_eq_tol(c.alpha, 2 + 240.0 / 27, EPS);
    ck_assert_double_eq_tol(c.beta, 5 + 30.0 / 27, EPS);
    ck_assert_double_eq_tol(c.mean, 0.6405228758169935, EPS);

    /* Fewer outcomes outside than m: they lend only what they are.  6 runs,
     * 5 successes, all 3 in this domain successes: outside 3 runs, 2
     * successes: p = 3/5; w = 3; alpha = 1 + 3 + 1.8, beta = 1 + 0 + 1.2. */
    c.n = 6, c.s = 5, c.nd = 3, c.sd = 3;
    delegate_posterior(&c, &lp, 10);
    ck_assert_double_eq_tol(c.alpha, 5.8, EPS);
    ck_assert_double_eq_tol(c.beta, 2.2, EPS);
    ck_assert_double_eq_tol(c.mean, 0.725, EPS);

    /* m = 0: the domain alone. */
    delegate_posterior(&c, &lp, 0);
    ck_assert_double_eq_tol(c.alpha, 4, EPS);
    ck_assert_double_eq_tol(c.beta, 1, EPS);

    /* Prior Beta(2, 3), m = 4, a new domain of a pattern that always
     * succeeded 10 times: p = 12/15 = 0.8; alpha = 2 + 3.2, beta = 3 + 0.8. */
    learning_params l2 = lp;
    l2.prior_alpha = 2;
    l2.prior_beta = 3;
    c.n = 10, c.s = 10, c.nd = 0, c.sd = 0;
    delegate_posterior(&c, &l2, 4);
    ck_assert_double_eq_tol(c.alpha, 5.2, EPS);
    ck_assert_double_eq_tol(c.beta, 3.8, EPS);

    /* No domain in the context (nd = n): the pattern-wide posterior. */
    c.n = 10, c.s = 7, c.nd = 10, c.sd = 7;
    delegate_posterior(&c, &lp, 10);
    ck_assert_double_eq_tol(c.alpha, 8, EPS);
    ck_assert_double_eq_tol(c.beta, 4, EPS);

    /* Inconsistent counts are clamped, never wrapped. */
    c.n = 3, c.s = 1, c.nd = 5, c.sd = 9;
    delegate_posterior(&c, &lp, 10);
    ck_assert(isfinite(c.alpha) && isfinite(c.beta));
    ck_assert_double_eq_tol(c.alpha + c.beta, 2 + 3, EPS);
}
END_TEST

START_TEST(test_threshold_rule)
{
    /* Beta(1, 3): q95 = 1 - 0.05^(1/3) = 0.6316 < 0.75; Beta(1, 2): q95 =
     * 1 - sqrt(0.05) = 0.7764 > 0.75. */
    ck_assert_int_eq(delegate_confidently_below(1, 3, 0.75), 1);
    ck_assert_int_eq(delegate_confidently_below(1, 2, 0.75), 0);
    ck_assert_int_eq(delegate_confidently_below(1, 1, 0.75), 0);
    ck_assert_int_eq(delegate_confidently_below(1, 1000, 0), 0);
    ck_assert_int_eq(delegate_confidently_below(1000, 1, 1), 1);
    /* The shortcuts agree with the exact quantile everywhere on a grid,
     * parameters below 1 included. */
    const double ps[] = {0.05, 0.3, 0.9, 1, 1.5, 3, 8, 20, 75, 400, 3000};
    const double ts[] = {0.01, 0.2, 0.5, 0.7, 0.75, 0.9, 0.99};
    size_t np = sizeof ps / sizeof *ps, nt = sizeof ts / sizeof *ts, below = 0;
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < np; j++)
            for (size_t k = 0; k < nt; k++) {
                double a = ps[i], b = ps[j], t = ts[k];
                int want = beta_quantile(DELEGATE_INTERVAL_HI, a, b) < t;
                ck_assert_msg(delegate_confidently_below(a, b, t) == want,
                              "Beta(%g, %g) against %g: expected %d", a, b, t, want);
                below += want;
            }
    ck_assert_uint_gt(below, 100); /* both answers are exercised */
    ck_assert_uint_lt(below, np * np * nt - 100);
}
END_TEST

/* Three candidates with equal posteriors: only the draws decide. */
START_TEST(test_thompson_seeded)
{
    delegate_result a, b;
    delegate_result_init(&a, 3);
    delegate_result_init(&b, 3);
    const char *names[] = {"x", "y", "z"};
    for (size_t i = 0; i < 3; i++) {
        cand(&a, i, names[i], 1, 0, 4, 2, 4, 2);
        cand(&b, i, names[i], 1, 0, 4, 2, 4, 2);
    }
    delegate_opts o = opts(DELEGATE_THOMPSON, 2);
    int seen[3] = {0, 0, 0};
    for (uint64_t seed = 1; seed <= 300; seed++) {
        ck_assert_int_eq(rank_seeded(&o, &a, seed), NDF_OK);
        ck_assert_int_eq(rank_seeded(&o, &b, seed), NDF_OK);
        ck_assert_uint_eq(a.norder, 3);
        for (size_t k = 0; k < 3; k++) {
            ck_assert_uint_eq(a.order[k], b.order[k]);
            ck_assert(a.cands[k].score == b.cands[k].score);
        }
        /* The order is by draw. */
        ck_assert(a.cands[a.order[0]].score >= a.cands[a.order[1]].score);
        ck_assert(a.cands[a.order[1]].score >= a.cands[a.order[2]].score);
        seen[a.order[0]]++;
    }
    /* Each is chosen about a third of the time. */
    for (int i = 0; i < 3; i++)
        ck_assert_msg(seen[i] > 60 && seen[i] < 140, "%s chosen %d times of 300", names[i],
                      seen[i]);
    delegate_result_free(&a);
    delegate_result_free(&b);
}
END_TEST

START_TEST(test_thompson_prefers_evidence)
{
    delegate_result r;
    delegate_result_init(&r, 2);
    cand(&r, 0, "weak", 1, 0, 100, 10, 100, 10);
    cand(&r, 1, "strong", 0.5, 0, 100, 90, 100, 90);
    delegate_opts o = opts(DELEGATE_THOMPSON, 0);
    for (uint64_t seed = 0; seed < 100; seed++) {
        ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
        ck_assert_str_eq(chosen(&r), "strong");
        ck_assert_uint_eq(r.norder, 1);
        ck_assert_int_eq(r.cands[0].verdict, DELEGATE_OUTRANKED);
    }
    delegate_result_free(&r);
}
END_TEST

/* "good": Beta(8, 4), q95 0.87, above 0.75.  "poor": Beta(2, 4), q95 0.66:
 * confidently below 0.75. */
static void threshold_pair(delegate_result *r)
{
    delegate_result_init(r, 2);
    cand(r, 0, "poor", 1, 0.75, 4, 1, 4, 1);
    cand(r, 1, "good", 0.9, 0.75, 10, 7, 10, 7);
}

START_TEST(test_threshold_governs_selection)
{
    delegate_result r;
    threshold_pair(&r);
    /* Greedy and fixed never rank "poor", though fixed prefers its
     * similarity. */
    delegate_policy strict[] = {DELEGATE_GREEDY, DELEGATE_FIXED};
    for (size_t i = 0; i < 2; i++) {
        delegate_opts o = opts(strict[i], 5);
        ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
        ck_assert_uint_eq(r.norder, 1);
        ck_assert_str_eq(chosen(&r), "good");
        ck_assert_int_eq(r.cands[0].below, 1);
        ck_assert_int_eq(r.cands[0].verdict, DELEGATE_BELOW);
        ck_assert_int_eq(r.cands[0].rank, -1);
        ck_assert(isnan(r.cands[0].score));
    }
    /* Thompson explores it now and then, and says so. */
    delegate_opts o = opts(DELEGATE_THOMPSON, 5);
    int explored = 0;
    for (uint64_t seed = 0; seed < 400; seed++) {
        ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
        ck_assert_uint_eq(r.norder, 2); /* both take part */
        ck_assert_int_eq(r.cands[0].explored, 1);
        ck_assert_int_eq(r.cands[1].explored, 0);
        if (strcmp(chosen(&r), "poor") == 0)
            explored++;
    }
    ck_assert_int_gt(explored, 0);
    ck_assert_int_lt(explored, 100);
    /* UCB's bonus makes it take part too. */
    o = opts(DELEGATE_UCB, 5);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
    ck_assert_uint_eq(r.norder, 2);

    /* All below: greedy chooses none, with a message; thompson still
     * explores. */
    r.cands[1].n = 10, r.cands[1].s = 1, r.cands[1].nd = 10, r.cands[1].sd = 1;
    o = opts(DELEGATE_GREEDY, 5);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_ERR_CONFIDENCE);
    ck_assert_uint_eq(r.norder, 0);
    ck_assert_msg(strstr(err_msg(), "all 2 candidates are confidently below"), "%s", err_msg());
    ck_assert_msg(strstr(err_msg(), "policy greedy does not explore"), "%s", err_msg());
    ck_assert_int_eq(r.cands[0].verdict, DELEGATE_BELOW);
    ck_assert_int_eq(r.cands[1].verdict, DELEGATE_BELOW);
    o = opts(DELEGATE_THOMPSON, 5);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
    ck_assert_uint_eq(r.norder, 2);
    /* Only the candidates whose place depends on it are judged, unless
     * explain asks for all. */
    r.cands[1].n = 10, r.cands[1].s = 9, r.cands[1].nd = 10, r.cands[1].sd = 9;
    o = opts(DELEGATE_GREEDY, 0);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
    ck_assert_str_eq(chosen(&r), "good");
    ck_assert_int_eq(r.cands[1].below, 0);
    ck_assert_int_eq(r.cands[0].below, -1);
    ck_assert_int_eq(r.cands[0].verdict, DELEGATE_OUTRANKED);
    o.explain = 1;
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
    ck_assert_int_eq(r.cands[0].below, 1);
    ck_assert_int_eq(r.cands[0].verdict, DELEGATE_BELOW);
    /* A threshold of 0 holds nothing back. */
    r.cands[0].threshold = r.cands[1].threshold = 0;
    o = opts(DELEGATE_GREEDY, 5);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
    ck_assert_uint_eq(r.norder, 2);
    delegate_result_free(&r);
}
END_TEST

START_TEST(test_greedy_and_fallback_order)
{
    delegate_result r;
    delegate_result_init(&r, 5);
    /* Means (m = 0 here): a 0.5, b 0.75, c 0.25, d 0.75 (less similar than
     * b), e 0.9. */
    cand(&r, 0, "a", 0.9, 0, 2, 1, 2, 1);
    cand(&r, 1, "b", 0.9, 0, 2, 2, 2, 2);
    cand(&r, 2, "c", 0.9, 0, 2, 0, 2, 0);
    cand(&r, 3, "d", 0.8, 0, 2, 2, 2, 2);
    cand(&r, 4, "e", 0.5, 0, 8, 8, 8, 8);
    delegate_opts o = opts(DELEGATE_GREEDY, 2);
    o.prior_strength = 0;
    ck_assert_int_eq(rank_seeded(&o, &r, 9), NDF_OK);
    ck_assert_uint_eq(r.norder, 3);
    ck_assert_str_eq(r.cands[r.order[0]].name, "e");
    ck_assert_str_eq(r.cands[r.order[1]].name, "b"); /* tie with d: more similar */
    ck_assert_str_eq(r.cands[r.order[2]].name, "d");
    ck_assert_int_eq(r.cands[4].verdict, DELEGATE_CHOSEN);
    ck_assert_int_eq(r.cands[1].verdict, DELEGATE_FALLBACK);
    ck_assert_int_eq(r.cands[1].rank, 1);
    ck_assert_int_eq(r.cands[0].verdict, DELEGATE_OUTRANKED);
    ck_assert_int_eq(r.cands[2].verdict, DELEGATE_OUTRANKED);
    /* No fallbacks: the choice alone. */
    o.max_fallbacks = 0;
    ck_assert_int_eq(rank_seeded(&o, &r, 9), NDF_OK);
    ck_assert_uint_eq(r.norder, 1);
    ck_assert_int_eq(r.cands[1].verdict, DELEGATE_OUTRANKED);
    /* More fallbacks than candidates: every candidate once, for every
     * policy (the sort path as well as the selection path). */
    for (int p = DELEGATE_THOMPSON; p <= DELEGATE_EPSILON; p++) {
        for (unsigned fb = 3; fb <= 12; fb += 9) {
            o = opts((delegate_policy)p, fb);
            o.epsilon = 0.5;
            for (uint64_t seed = 0; seed < 20; seed++) {
                ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
                size_t want = fb + 1 < 5 ? fb + 1 : 5;
                ck_assert_uint_eq(r.norder, want);
                int used[5] = {0};
                for (size_t k = 0; k < r.norder; k++) {
                    ck_assert_int_eq(used[r.order[k]]++, 0);
                    ck_assert_int_eq(r.cands[r.order[k]].rank, (int)k);
                }
            }
        }
    }
    delegate_result_free(&r);
}
END_TEST

START_TEST(test_ucb_index)
{
    delegate_result r;
    delegate_result_init(&r, 2);
    /* m = 0.  "tried": Beta(6, 6), nu 12; "new": Beta(1, 1), nu 2; N = 14.
     * Index = mean + sqrt(2 ln 14 / nu): 1.1632 and 2.1245. */
    cand(&r, 0, "tried", 1, 0, 10, 5, 10, 5);
    cand(&r, 1, "new", 1, 0, 0, 0, 0, 0);
    delegate_opts o = opts(DELEGATE_UCB, 1);
    o.prior_strength = 0;
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
    ck_assert_double_eq_tol(r.cands[0].score, 0.5 + sqrt(2 * log(14.0) / 12), EPS);
    ck_assert_double_eq_tol(r.cands[1].score, 0.5 + sqrt(2 * log(14.0) / 2), EPS);
    ck_assert_double_eq_tol(r.cands[0].score, 1.163206, 1e-6);
    ck_assert_str_eq(chosen(&r), "new");
    /* Deterministic: the seed plays no part. */
    size_t first = r.order[0];
    ck_assert_int_eq(rank_seeded(&o, &r, 777), NDF_OK);
    ck_assert_uint_eq(r.order[0], first);
    /* With enough evidence the better mean wins over the bonus. */
    cand(&r, 0, "tried", 1, 0, 1000, 900, 1000, 900);
    cand(&r, 1, "new", 1, 0, 1000, 500, 1000, 500);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_OK);
    ck_assert_str_eq(chosen(&r), "tried");
    delegate_result_free(&r);
}
END_TEST

START_TEST(test_fixed_ignores_learning)
{
    delegate_result r;
    delegate_result_init(&r, 3);
    cand(&r, 0, "close", 0.95, 0, 50, 20, 50, 20);
    cand(&r, 1, "far", 0.6, 0, 50, 49, 50, 49);
    cand(&r, 2, "mid", 0.7, 0, 0, 0, 0, 0);
    delegate_opts o = opts(DELEGATE_FIXED, 2);
    for (uint64_t seed = 0; seed < 10; seed++) {
        ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
        ck_assert_str_eq(r.cands[r.order[0]].name, "close");
        ck_assert_str_eq(r.cands[r.order[1]].name, "mid");
        ck_assert_str_eq(r.cands[r.order[2]].name, "far");
        ck_assert_double_eq_tol(r.cands[0].score, 0.95, EPS);
    }
    delegate_result_free(&r);
}
END_TEST

START_TEST(test_epsilon_greedy)
{
    delegate_result r;
    delegate_result_init(&r, 4);
    cand(&r, 0, "a", 1, 0, 10, 9, 10, 9);
    cand(&r, 1, "b", 1, 0, 10, 5, 10, 5);
    cand(&r, 2, "c", 1, 0, 10, 3, 10, 3);
    cand(&r, 3, "d", 1, 0, 10, 1, 10, 1);
    /* epsilon 0 is greedy. */
    delegate_opts o = opts(DELEGATE_EPSILON, 0);
    o.epsilon = 0;
    for (uint64_t seed = 0; seed < 100; seed++) {
        ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
        ck_assert_int_eq(r.coin, 0);
        ck_assert_str_eq(chosen(&r), "a");
    }
    /* epsilon 1 always explores, uniformly; the rest follows greedy. */
    o.epsilon = 1;
    o.max_fallbacks = 1;
    int seen[4] = {0};
    for (uint64_t seed = 0; seed < 400; seed++) {
        ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
        ck_assert_int_eq(r.coin, 1);
        seen[r.order[0]]++;
        ck_assert_str_eq(r.cands[r.order[1]].name, r.order[0] == 0 ? "b" : "a");
    }
    for (int i = 0; i < 4; i++)
        ck_assert_msg(seen[i] > 60 && seen[i] < 140, "candidate %d explored %d of 400", i, seen[i]);
    /* epsilon 0.1: about one decision in ten explores, reproducibly. */
    o.epsilon = 0.1;
    int coins = 0;
    for (uint64_t seed = 0; seed < 1000; seed++) {
        ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
        coins += r.coin;
        int c1 = r.coin;
        size_t o1 = r.order[0];
        ck_assert_int_eq(rank_seeded(&o, &r, seed), NDF_OK);
        ck_assert_int_eq(r.coin, c1);
        ck_assert_uint_eq(r.order[0], o1);
    }
    ck_assert_int_gt(coins, 60);
    ck_assert_int_lt(coins, 140);
    delegate_result_free(&r);
}
END_TEST

START_TEST(test_bad_options_and_no_candidates)
{
    delegate_result r;
    delegate_result_init(&r, 1);
    cand(&r, 0, "a", 1, 0, 0, 0, 0, 0);
    delegate_opts o = opts(DELEGATE_THOMPSON, 0);
    o.epsilon = 1.5;
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "epsilon 1.5 is outside 0..1"), "%s", err_msg());
    o = opts(DELEGATE_THOMPSON, 0);
    o.threshold = -0.1;
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_ERR_INVALID);
    o = opts(DELEGATE_THOMPSON, 0);
    o.prior_strength = NAN;
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_ERR_INVALID);
    o.prior_strength = INFINITY;
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_ERR_INVALID);
    o = opts((delegate_policy)42, 0);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_ERR_INVALID);
    delegate_result_free(&r);

    delegate_result_init(&r, 0);
    o = opts(DELEGATE_THOMPSON, 3);
    ck_assert_int_eq(rank_seeded(&o, &r, 1), NDF_ERR_NOT_FOUND);
    ck_assert_uint_eq(r.norder, 0);
    delegate_result_free(&r);
    delegate_result_free(&r); /* freeing twice is harmless */
}
END_TEST

START_TEST(test_outcome_table)
{
    static const struct {
        int status;
        delegate_outcome want;
    } table[] = {
        {NDF_OK, DELEGATE_SUCCESS},
        {NDF_ERR_EXECUTION, DELEGATE_FAILURE}, /* a step, or a success criterion */
        {NDF_ERR_TIMEOUT, DELEGATE_FAILURE},
        {NDF_ERR_VALIDATION, DELEGATE_SKIP}, /* e.g. ${attr.x} missing */
        {NDF_ERR_INVALID, DELEGATE_SKIP},
        {NDF_ERR_NOT_FOUND, DELEGATE_SKIP},
        {NDF_ERR_CONFIDENCE, DELEGATE_SKIP},
        {NDF_ERR_RESOURCE, DELEGATE_SKIP},
        {NDF_ERR_CANCELLED, DELEGATE_STOP}, /* operator, host shutdown */
        {NDF_ERR_IO, DELEGATE_STOP},        /* storage */
        {NDF_ERR_NOMEM, DELEGATE_STOP},
        {NDF_ERR_EXISTS, DELEGATE_STOP},
        {NDF_STATUS_MIN - 1, DELEGATE_FAILURE}, /* unknown: as EXECUTION */
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        ck_assert_msg(delegate_outcome_of(table[i].status) == table[i].want, "status %d (%s): %s",
                      table[i].status, ndf_status_name(table[i].status),
                      delegate_outcome_name(delegate_outcome_of(table[i].status)));
    ck_assert_int_eq(delegate_outcome_counts(DELEGATE_SUCCESS), 1);
    ck_assert_int_eq(delegate_outcome_counts(DELEGATE_FAILURE), 1);
    ck_assert_int_eq(delegate_outcome_counts(DELEGATE_SKIP), 0);
    ck_assert_int_eq(delegate_outcome_counts(DELEGATE_STOP), 0);
    ck_assert_int_eq(delegate_outcome_falls_back(DELEGATE_SUCCESS), 0);
    ck_assert_int_eq(delegate_outcome_falls_back(DELEGATE_FAILURE), 1);
    ck_assert_int_eq(delegate_outcome_falls_back(DELEGATE_SKIP), 1);
    ck_assert_int_eq(delegate_outcome_falls_back(DELEGATE_STOP), 0);
    ck_assert_str_eq(delegate_outcome_name(DELEGATE_SKIP), "not counted");
}
END_TEST

/* ---- from a registry ---- */

static registry *new_registry(size_t cache, const registry_store *store)
{
    registry_opts ro = {.cache_size = cache, .enable_learning = 1, .learning = lp, .store = store};
    return registry_new(&ro);
}

/* Registers a bare pattern; the registry holds the only reference. */
static pattern *add(registry *r, const char *name, const char *domain, const char *agent)
{
    pattern *p = pattern_new(name, &lp);
    if (domain)
        pattern_add_domain(p, domain);
    if (agent)
        pattern_add_agent_type(p, agent);
    ck_assert_int_eq(registry_register(r, p), NDF_OK);
    pattern_unref(p);
    return p;
}

static void record(registry *r, pattern *p, int runs, int successes, const char *domain)
{
    for (int i = 0; i < runs; i++)
        registry_record(r, p, i < successes, domain, -1);
}

static delegate_candidate *find(delegate_result *res, const char *name)
{
    for (size_t i = 0; i < res->ncands; i++)
        if (strcmp(res->cands[i].name, name) == 0)
            return &res->cands[i];
    return NULL;
}

START_TEST(test_choose_from_registry)
{
    registry *r = new_registry(0, NULL);
    pattern *wild = add(r, "wild", "payments.*", NULL);
    pattern *exact = add(r, "exact", "payments.eu", NULL);
    add(r, "web", "web", NULL);
    pattern *gold = add(r, "gold", NULL, NULL);
    value_append(gold->attributes, value_new_string("tier", "gold"));
    add(r, "builder", "payments.eu", "builder");
    record(r, exact, 6, 5, "payments.eu");
    record(r, exact, 4, 1, "payments.us");
    record(r, wild, 3, 3, NULL);

    ndf_context *ctx = context_new("payments.eu", "deployer", 2);
    context_set_attr(ctx, "tier", value_new_string("tier", "silver"));
    delegate_opts o = opts(DELEGATE_FIXED, 5);
    o.has_seed = 1;
    o.seed = 5;
    delegate_result res;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
    /* "web" serves another domain, "gold" another tier, "builder" another
     * agent type. */
    ck_assert_uint_eq(res.ncands, 2);
    ck_assert_str_eq(res.cands[0].name, "exact"); /* exact domain: more similar */
    ck_assert_str_eq(res.cands[1].name, "wild");
    ck_assert_double_eq_tol(res.cands[0].similarity, registry_similarity(exact, ctx), EPS);
    ck_assert(res.cands[0].similarity > res.cands[1].similarity);
    ck_assert_uint_eq(res.seed, 5);
    ck_assert_str_eq(res.domain, "payments.eu");
    delegate_candidate *c = find(&res, "exact");
    ck_assert_uint_eq(c->n, 10);
    ck_assert_uint_eq(c->s, 6);
    ck_assert_uint_eq(c->nd, 6);
    ck_assert_uint_eq(c->sd, 5);
    /* Outside the domain: 4 runs, 1 success: p = 2/6; w = 4;
     * alpha = 1 + 5 + 4/3, beta = 1 + 1 + 8/3. */
    ck_assert_double_eq_tol(c->alpha, 6 + 4.0 / 3, EPS);
    ck_assert_double_eq_tol(c->beta, 2 + 8.0 / 3, EPS);
    c = find(&res, "wild");
    ck_assert_uint_eq(c->n, 3);
    ck_assert_uint_eq(c->nd, 0);
    ck_assert_ptr_eq(c->p, wild);
    delegate_result_free(&res);

    /* The pattern's own threshold wins over the global one. */
    pattern_set_threshold(exact, 0.9);
    o.threshold = 0.2;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
    ck_assert_double_eq_tol(find(&res, "exact")->threshold, 0.9, EPS);
    ck_assert_double_eq_tol(find(&res, "wild")->threshold, 0.2, EPS);
    /* Beta(7.33, 4.67) reaches 0.9 within its 90% interval? q95 < 0.9 is
     * what the rule checks: the exact quantile decides. */
    c = find(&res, "exact");
    ck_assert_int_eq(c->below, beta_quantile(0.95, c->alpha, c->beta) < 0.9);
    delegate_result_free(&res);

    /* No pattern suits: the distinct status, with the context named. */
    ndf_context *none = context_new("mining", "robot", 1);
    context_set_attr(none, "tier", value_new_string("tier", "bronze"));
    ck_assert_int_eq(delegate_choose(r, none, &o, &res), NDF_ERR_NOT_FOUND);
    ck_assert_msg(strstr(err_msg(), "no pattern suits the context (domain 'mining', agent type "
                                    "'robot')"),
                  "%s", err_msg());
    ck_assert_uint_eq(res.ncands, 0);
    ck_assert_uint_eq(res.norder, 0);
    delegate_result_free(&res);
    context_free(none);

    /* A context without a domain reads the pattern-wide counts. */
    ndf_context *bare = context_new(NULL, "deployer", 1);
    pattern *any = add(r, "any", NULL, NULL);
    record(r, any, 5, 4, "payments.eu");
    ck_assert_int_eq(delegate_choose(r, bare, &o, &res), NDF_OK);
    ck_assert_uint_eq(res.ncands, 2); /* "any" and "gold" (no tier asked) */
    c = find(&res, "any");
    ck_assert_uint_eq(c->nd, 5);
    ck_assert_uint_eq(c->sd, 4);
    delegate_result_free(&res);
    context_free(bare);

    context_free(ctx);
    registry_free(r);
}
END_TEST

START_TEST(test_seed_reproduces)
{
    registry *r = new_registry(0, NULL);
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        pattern *p = add(r, name, "d", NULL);
        record(r, p, 6, 3, "d");
    }
    ndf_context *ctx = context_new("d", NULL, 1);
    delegate_opts o = opts(DELEGATE_THOMPSON, 7);
    delegate_result a, b;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &a), NDF_OK);
    ck_assert_uint_lt(a.seed, 1ull << 53); /* exact as a JSON number */
    /* The fresh seed it reports reproduces the whole order. */
    o.has_seed = 1;
    o.seed = a.seed;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &b), NDF_OK);
    ck_assert_uint_eq(a.norder, 8);
    for (size_t k = 0; k < a.norder; k++)
        ck_assert_str_eq(a.cands[a.order[k]].name, b.cands[b.order[k]].name);
    delegate_result_free(&a);
    delegate_result_free(&b);
    /* Some other seed orders them differently. */
    int differs = 0;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &a), NDF_OK);
    for (uint64_t s = 1; s < 20 && !differs; s++) {
        o.seed = o.seed + s;
        ck_assert_int_eq(delegate_choose(r, ctx, &o, &b), NDF_OK);
        for (size_t k = 0; k < a.norder; k++)
            differs |= a.order[k] != b.order[k];
        delegate_result_free(&b);
    }
    ck_assert(differs);
    delegate_result_free(&a);
    context_free(ctx);
    registry_free(r);
}
END_TEST

START_TEST(test_one_candidate)
{
    registry *r = new_registry(0, NULL);
    pattern *p = add(r, "only", "d", NULL);
    record(r, p, 3, 0, "d");
    ndf_context *ctx = context_new("d", NULL, 1);
    for (int pol = DELEGATE_THOMPSON; pol <= DELEGATE_EPSILON; pol++) {
        delegate_opts o = opts((delegate_policy)pol, 3);
        delegate_result res;
        ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
        ck_assert_uint_eq(res.ncands, 1);
        ck_assert_uint_eq(res.norder, 1);
        ck_assert_str_eq(chosen(&res), "only");
        ck_assert_int_eq(res.cands[0].verdict, DELEGATE_CHOSEN);
        delegate_result_free(&res);
    }
    /* Beta(1, 4) is confidently below 0.75: greedy refuses, thompson
     * explores. */
    delegate_opts o = opts(DELEGATE_GREEDY, 0);
    o.threshold = 0.75;
    delegate_result res;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_ERR_CONFIDENCE);
    ck_assert_msg(strstr(err_msg(), "all 1 candidate is confidently below its"), "%s", err_msg());
    delegate_result_free(&res);
    o.policy = DELEGATE_THOMPSON;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
    ck_assert_int_eq(res.cands[0].explored, 1);
    char *why = delegate_reason(&res, 0);
    ck_assert_msg(strstr(why, "exploring: confidently below its threshold 0.75"), "%s", why);
    free(why);
    delegate_result_free(&res);
    context_free(ctx);
    registry_free(r);
}
END_TEST

START_TEST(test_ten_thousand_candidates)
{
    registry *r = new_registry(0, NULL);
    pattern *star = NULL;
    for (int i = 0; i < 10000; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%05d", i);
        pattern *p = add(r, name, i % 2 ? "big" : NULL, NULL);
        if (i == 4242)
            star = p;
    }
    record(r, star, 200, 199, "big");
    ndf_context *ctx = context_new("big", NULL, 1);
    for (int pol = DELEGATE_THOMPSON; pol <= DELEGATE_EPSILON; pol++) {
        delegate_opts o = opts((delegate_policy)pol, 3);
        o.epsilon = 0.01;
        o.has_seed = 1;
        o.seed = 11;
        delegate_result res;
        ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
        ck_assert_uint_eq(res.ncands, 10000);
        ck_assert_uint_eq(res.norder, 4);
        if (pol == DELEGATE_GREEDY || pol == DELEGATE_EPSILON)
            ck_assert_str_eq(chosen(&res), "p04242");
        /* Odd names serve "big" exactly, even ones serve any domain. */
        ck_assert_int_eq(res.cands[0].name[5] % 2, 1);
        ck_assert(res.cands[0].similarity > res.cands[9999].similarity);
        delegate_result_free(&res);
    }
    /* Explain on every candidate. */
    delegate_opts o = opts(DELEGATE_THOMPSON, 0);
    o.explain = 1;
    delegate_result res;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
    for (size_t i = 0; i < res.ncands; i++)
        ck_assert(res.cands[i].lo < res.cands[i].mean && res.cands[i].mean < res.cands[i].hi);
    delegate_result_free(&res);
    context_free(ctx);
    registry_free(r);
}
END_TEST

START_TEST(test_explain_reason_json)
{
    registry *r = new_registry(0, NULL);
    pattern *a = add(r, "a", "ops", NULL);
    add(r, "b", "ops", NULL);
    record(r, a, 12, 9, "ops");
    ndf_context *ctx = context_new("ops", NULL, 1);
    delegate_opts o = opts(DELEGATE_GREEDY, 1);
    o.explain = 1;
    delegate_result res;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
    delegate_candidate *b = find(&res, "b");
    /* Beta(1, 1): the interval is [0.05, 0.95]. */
    ck_assert_double_eq_tol(b->lo, 0.05, 1e-9);
    ck_assert_double_eq_tol(b->hi, 0.95, 1e-9);
    delegate_candidate *c = find(&res, "a");
    ck_assert_double_eq_tol(beta_cdf(c->lo, c->alpha, c->beta), 0.05, 1e-9);
    ck_assert_double_eq_tol(beta_cdf(c->hi, c->alpha, c->beta), 0.95, 1e-9);

    char *why = delegate_reason(&res, 0);
    ck_assert_str_eq(why, "greedy: posterior mean 0.714, best of 2; posterior 0.714 from 12 runs "
                          "in 'ops', 12 in all");
    free(why);
    why = delegate_reason(&res, 1);
    ck_assert_msg(strstr(why, "fallback 1 of 1"), "%s", why);
    free(why);
    why = delegate_reason(&res, 2);
    ck_assert_str_eq(why, "");
    free(why);

    strbuf sb;
    sb_init(&sb);
    delegate_result_to_json(&res, &sb);
    cJSON *j = cJSON_Parse(sb.buf);
    ck_assert_msg(j != NULL, "bad JSON: %s", sb.buf);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "policy")->valuestring, "greedy");
    cJSON *cands = cJSON_GetObjectItemCaseSensitive(j, "candidates");
    ck_assert_int_eq(cJSON_GetArraySize(cands), 2);
    cJSON *first = cJSON_GetArrayItem(cands, 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(first, "verdict")->valuestring, "chosen");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(first, "interval")), 2);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(first, "domain_executions")->valueint, 12);
    cJSON *order = cJSON_GetObjectItemCaseSensitive(j, "order");
    ck_assert_str_eq(cJSON_GetArrayItem(order, 0)->valuestring, "a");
    cJSON_Delete(j);
    sb_free(&sb);
    delegate_result_free(&res);

    /* Without explain there is no interval (null in JSON). */
    o.explain = 0;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
    ck_assert(isnan(res.cands[0].lo) && isnan(res.cands[0].hi));
    sb_init(&sb);
    delegate_result_to_json(&res, &sb);
    ck_assert_msg(strstr(sb.buf, "\"interval\": null"), "%s", sb.buf);
    sb_free(&sb);
    delegate_result_free(&res);
    context_free(ctx);
    registry_free(r);
}
END_TEST

/* A store in memory, so the registry can page learning state out. */
typedef struct mem_store {
    char *names[8];
    learning_state st[8];
    size_t n, loads;
} mem_store;

static int ms_save(void *opaque, const char *name, const learning_state *st)
{
    mem_store *m = opaque;
    size_t i;
    for (i = 0; i < m->n && strcmp(m->names[i], name) != 0; i++)
        ;
    if (i == m->n) {
        ck_assert_uint_lt(m->n, 8);
        m->names[m->n++] = xstrdup(name);
    } else {
        learning_free(&m->st[i]);
    }
    learning_copy(&m->st[i], st);
    return NDF_OK;
}

static int ms_load(void *opaque, const char *name, learning_state *st)
{
    mem_store *m = opaque;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->names[i], name) == 0) {
            learning_copy(st, &m->st[i]);
            m->loads++;
            return NDF_OK;
        }
    return err_set(NDF_ERR_NOT_FOUND, "no state for '%s'", name);
}

START_TEST(test_paged_out_counts)
{
    mem_store m;
    memset(&m, 0, sizeof m);
    registry_store store = {.opaque = &m, .save = ms_save, .load = ms_load};
    registry *r = new_registry(1, &store);
    pattern *a = add(r, "a", "d", NULL);
    pattern *b = add(r, "b", "d", NULL);
    record(r, a, 7, 6, "d");
    record(r, b, 2, 0, "d"); /* a is paged out: its domain counts leave memory */
    ck_assert_int_eq(a->resident, 0);
    ck_assert_ptr_null(a->learn.domains);
    ndf_context *ctx = context_new("d", NULL, 1);
    delegate_opts o = opts(DELEGATE_GREEDY, 1);
    delegate_result res;
    ck_assert_int_eq(delegate_choose(r, ctx, &o, &res), NDF_OK);
    delegate_candidate *c = find(&res, "a");
    ck_assert_uint_eq(c->nd, 7);
    ck_assert_uint_eq(c->sd, 6);
    ck_assert_uint_ge(m.loads, 1);
    ck_assert_int_eq(a->resident, 0); /* read, not paged back in */
    ck_assert_str_eq(chosen(&res), "a");
    delegate_result_free(&res);
    context_free(ctx);
    registry_free(r);
    for (size_t i = 0; i < m.n; i++) {
        free(m.names[i]);
        learning_free(&m.st[i]);
    }
}
END_TEST

static Suite *delegate_suite(void)
{
    Suite *s = suite_create("delegate");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_blend_by_hand);
    tcase_add_test(tc, test_threshold_rule);
    tcase_add_test(tc, test_thompson_seeded);
    tcase_add_test(tc, test_thompson_prefers_evidence);
    tcase_add_test(tc, test_threshold_governs_selection);
    tcase_add_test(tc, test_greedy_and_fallback_order);
    tcase_add_test(tc, test_ucb_index);
    tcase_add_test(tc, test_fixed_ignores_learning);
    tcase_add_test(tc, test_epsilon_greedy);
    tcase_add_test(tc, test_bad_options_and_no_candidates);
    tcase_add_test(tc, test_outcome_table);
    tcase_add_test(tc, test_choose_from_registry);
    tcase_add_test(tc, test_seed_reproduces);
    tcase_add_test(tc, test_one_candidate);
    tcase_add_test(tc, test_ten_thousand_candidates);
    tcase_add_test(tc, test_explain_reason_json);
    tcase_add_test(tc, test_paged_out_counts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(delegate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
