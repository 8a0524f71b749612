/* Delegation benchmark (make bench), issue 13.
 *
 * 1. A simulation: 20 candidate patterns whose hidden success probabilities
 *    differ by domain (in each domain one arm at 0.9, the others spread
 *    evenly over 0.30..0.85, the arms shuffled per domain), 10,000
 *    delegations per domain over 5 domains (interleaved, so the patterns'
 *    pattern-wide counts mix the domains as they would in ndf), averaged
 *    over 20 seeds.  Each policy runs through delegate_rank(), the code
 *    `ndf delegate` uses.  Regret is the pseudo-regret against the oracle
 *    (the sum of 0.9 - p(chosen)), per domain.  Outcomes come from one
 *    stream of uniforms per seed shared by every policy (common random
 *    numbers), so the policies are compared on the same luck.
 *    A second scenario gives every domain the same probabilities, to show
 *    what the per-domain posterior costs when domains do not differ.
 * 2. The cost of one decision, delegate_choose() with 10,000 registered
 *    patterns (500 domains of 20), and with all 10,000 as candidates.
 *
 * Prints figures; asserts nothing about them.  NDF_BENCH_SEEDS sets the
 * number of seeds (default 20; 0 skips the simulation), NDF_BENCH_DECISIONS
 * the decisions per timing round (default 20,000; fewer under callgrind). */
#include "build-config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "model/delegate.h"

#define K 20     /* candidate patterns */
#define D 5      /* domains */
#define T 10000  /* delegations per domain */
#define NCHECK 3 /* regret checkpoints */

static const int checkpoints[NCHECK] = {100, 1000, 10000};

/* Which of the ratios a variant enters. */
typedef enum role { ROLE_NONE, ROLE_THOMPSON, ROLE_EPSILON, ROLE_GREEDY, ROLE_BLIND } role;

typedef struct variant {
    const char *label;
    delegate_policy policy;
    double m;  /* prior strength */
    int blind; /* domain-blind: the pattern-wide posterior everywhere */
    role role;
} variant;

typedef struct world {
    double p[D][K]; /* hidden success probabilities */
    double best[D];
    float *u; /* [T][D] uniforms deciding the outcomes */
} world;

/* The hidden probabilities of one seed: per domain a shuffle of {0.9,
 * 0.85, ..., 0.30}; with `alike`, one shuffle for every domain. */
static void world_make(world *w, uint64_t seed, int alike)
{
    rng g;
    rng_seed(&g, seed * 7919 + 1);
    for (int d = 0; d < D; d++) {
        int perm[K];
        for (int i = 0; i < K; i++)
            perm[i] = i;
        for (int i = K - 1; i > 0; i--) {
            int j = (int)rng_below(&g, (uint64_t)i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int i = 0; i < K; i++) {
            int r = perm[i]; /* rank 0 is the best arm */
            w->p[d][i] = alike && d > 0 ? w->p[0][i]
                         : r == 0       ? 0.9
                                        : 0.85 - (r - 1) * (0.55 / (K - 2));
        }
        w->best[d] = 0.9;
    }
    for (size_t i = 0; i < (size_t)T * D; i++)
        w->u[i] = (float)rng_uniform(&g);
}

/* Runs one variant on world `w`; adds the per-domain mean regret at each
 * checkpoint to reg[]. */
static void simulate(const variant *v, const world *w, uint64_t seed, double reg[NCHECK])
{
    uint64_t n[K] = {0}, s[K] = {0}, nd[D][K] = {{0}}, sd[D][K] = {{0}};
    static const char *names[K] = {"p00", "p01", "p02", "p03", "p04", "p05", "p06",
                                   "p07", "p08", "p09", "p10", "p11", "p12", "p13",
                                   "p14", "p15", "p16", "p17", "p18", "p19"};
    learning_params lp;
    learning_params_default(&lp);
    delegate_opts o;
    delegate_opts_default(&o);
    o.policy = v->policy;
    o.prior_strength = v->m;
    o.epsilon = 0.1;
    o.max_fallbacks = 0;
    delegate_result res;
    delegate_result_init(&res, K);
    for (int i = 0; i < K; i++) {
        res.cands[i].name = names[i];
        res.cands[i].similarity = 1;
        res.cands[i].threshold = 0;
    }
    rng g;
    rng_seed(&g, seed);
    double regret = 0;
    int ck = 0;
    for (int t = 0; t < T; t++) {
        for (int d = 0; d < D; d++) {
            for (int i = 0; i < K; i++) {
                delegate_candidate *c = &res.cands[i];
                c->n = n[i];
                c->s = s[i];
                c->nd = v->blind ? n[i] : nd[d][i];
                c->sd = v->blind ? s[i] : sd[d][i];
            }
            if (delegate_rank(&o, &lp, &g, &res) != NDF_OK) {
                fprintf(stderr, "bench_delegate: %s\n", err_msg());
                exit(1);
            }
            size_t a = res.order[0];
            int ok = w->u[(size_t)t * D + (size_t)d] < w->p[d][a];
            n[a]++;
            nd[d][a]++;
            s[a] += (uint64_t)ok;
            sd[d][a] += (uint64_t)ok;
            regret += w->best[d] - w->p[d][a];
        }
        if (ck < NCHECK && t + 1 == checkpoints[ck])
            reg[ck++] += regret / D;
    }
    delegate_result_free(&res);
}

typedef struct tally {
    double sum[NCHECK], sum2;
} tally;

static void run_scenario(const char *title, int alike, const variant *vs, size_t nv, int seeds)
{
    tally *ta = xcalloc(nv, sizeof *ta);
    world w;
    w.u = xmalloc((size_t)T * D * sizeof *w.u);
    double t0 = now_mono();
    for (int sd = 1; sd <= seeds; sd++) {
        world_make(&w, (uint64_t)sd, alike);
        for (size_t v = 0; v < nv; v++) {
            double reg[NCHECK] = {0};
            simulate(&vs[v], &w, (uint64_t)sd * 104729 + v, reg);
            for (int c = 0; c < NCHECK; c++)
                ta[v].sum[c] += reg[c];
            ta[v].sum2 += reg[NCHECK - 1] * reg[NCHECK - 1];
        }
    }
    printf("\n%s (%d seeds, %.1f s)\n", title, seeds, now_mono() - t0);
    printf("cumulative regret per domain vs the oracle (mean over seeds; +- standard error)\n");
    printf("  %-34s %9s %9s %17s\n", "policy", "T=100", "T=1,000", "T=10,000");
    double at[ROLE_BLIND + 1] = {0};
    for (size_t v = 0; v < nv; v++) {
        double mean = ta[v].sum[NCHECK - 1] / seeds;
        double var = ta[v].sum2 / seeds - mean * mean;
        double se = seeds > 1 ? sqrt(fmax(var, 0) / (seeds - 1)) : 0;
        printf("  %-34s %9.1f %9.1f %9.1f +- %5.1f\n", vs[v].label, ta[v].sum[0] / seeds,
               ta[v].sum[1] / seeds, mean, se);
        at[vs[v].role] = mean;
    }
    /* The goals, as ratios of the T = 10,000 means. */
    if (at[ROLE_EPSILON] > 0)
        printf("  thompson / epsilon-greedy = %.3f (goal <= 0.5)\n",
               at[ROLE_THOMPSON] / at[ROLE_EPSILON]);
    if (at[ROLE_GREEDY] > 0)
        printf("  thompson / greedy         = %.3f (goal <= 0.2)\n",
               at[ROLE_THOMPSON] / at[ROLE_GREEDY]);
    if (at[ROLE_BLIND] > 0)
        printf("  thompson per-domain / domain-blind = %.3f (below 1: the per-domain "
               "posterior wins)\n",
               at[ROLE_THOMPSON] / at[ROLE_BLIND]);
    free(w.u);
    free(ta);
}

/* ---- the cost of one decision ---- */

static learning_params lp;

static pattern *add(registry *r, const char *name, const char *domain)
{
    pattern *p = pattern_new(name, &lp);
    if (domain)
        pattern_add_domain(p, domain);
    pattern_add_agent_type(p, "agent*");
    if (registry_register(r, p) != NDF_OK) {
        fprintf(stderr, "bench_delegate: %s\n", err_msg());
        exit(1);
    }
    pattern_unref(p);
    return p;
}

/* This thread's CPU time in seconds: on a shared machine, wall time also
 * counts the time other processes held the CPU. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nanoseconds of CPU per delegate_choose() + delegate_result_free(), the
 * median of 5 rounds of `iters`; *wall gets the wall-clock median. */
static double time_choose(registry *r, const ndf_context *ctx, const delegate_opts *o, int iters,
                          double *wall)
{
    double cpu[5], w[5];
    for (int round = 0; round < 5; round++) {
        double c0 = cpu_now(), t0 = now_mono();
        for (int i = 0; i < iters; i++) {
            delegate_result res;
            delegate_opts oi = *o;
            oi.has_seed = 1;
            oi.seed = (uint64_t)i;
            int rc = delegate_choose(r, ctx, &oi, &res);
            if (rc != NDF_OK && rc != NDF_ERR_CONFIDENCE) {
                fprintf(stderr, "bench_delegate: %s\n", err_msg());
                exit(1);
            }
            delegate_result_free(&res);
        }
        cpu[round] = (cpu_now() - c0) / iters * 1e9;
        w[round] = (now_mono() - t0) / iters * 1e9;
    }
    qsort(cpu, 5, sizeof *cpu, by_value);
    qsort(w, 5, sizeof *w, by_value);
    *wall = w[2];
    return cpu[2];
}

static void decision_cost(int iters)
{
    learning_params_default(&lp);
    registry_opts ro = {.cache_size = 0, .enable_learning = 1, .learning = lp, .store = NULL};
    registry *r = registry_new(&ro);
    rng g;
    rng_seed(&g, 99);
    char name[32], dom[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "p%05d", i);
        snprintf(dom, sizeof dom, "d%03d", i % 500);
        pattern *p = add(r, name, dom);
        /* A history in its domain and two others, so the per-domain counts
         * are searched, not found first. */
        for (int k = 0; k < 30; k++) {
            snprintf(dom, sizeof dom, "d%03d", k % 3 == 0 ? i % 500 : (i + k) % 500);
            registry_record(r, p, rng_uniform(&g) < 0.3 + 0.6 * (double)(i / 500) / 19, dom, -1);
        }
    }
    ndf_context *ctx = context_new("d042", "agent-x", 1);
    printf("\ncost of one decision: delegate_choose() + delegate_result_free(), 10,000 "
           "registered patterns\n");
    printf("(500 domains of 20; threshold 0.75; median of 5 rounds; ns per decision, CPU "
           "time and wall)\n");
    const delegate_policy pols[] = {DELEGATE_THOMPSON, DELEGATE_GREEDY, DELEGATE_UCB,
                                    DELEGATE_FIXED, DELEGATE_EPSILON};
    double wall;
    for (size_t i = 0; i < sizeof pols / sizeof *pols; i++) {
        delegate_opts o;
        delegate_opts_default(&o);
        o.policy = pols[i];
        o.threshold = 0.75;
        double cpu = time_choose(r, ctx, &o, iters, &wall);
        printf("  20 candidates, %-18s %8.0f cpu %8.0f wall\n", delegate_policy_name(pols[i]), cpu,
               wall);
    }
    delegate_opts o;
    delegate_opts_default(&o);
    o.threshold = 0.75;
    o.explain = 1;
    double cpu = time_choose(r, ctx, &o, iters / 10 + 1, &wall);
    printf("  20 candidates, %-18s %8.0f cpu %8.0f wall\n", "thompson, explain", cpu, wall);

    /* The policy alone, on the same 20 candidates. */
    delegate_result res;
    o.explain = 0;
    o.has_seed = 1;
    o.seed = 1;
    delegate_choose(r, ctx, &o, &res);
    rng_seed(&g, 5);
    double c0 = cpu_now();
    for (int i = 0; i < 10 * iters; i++)
        delegate_rank(&o, &lp, &g, &res);
    printf("  of which delegate_rank, thompson  %8.0f cpu\n",
           (cpu_now() - c0) / (10.0 * iters) * 1e9);
    delegate_result_free(&res);
    registry_free(r);
    context_free(ctx);

    /* The worst case: every registered pattern is a candidate. */
    r = registry_new(&ro);
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "q%05d", i);
        pattern *p = add(r, name, NULL);
        for (int k = 0; k < 5; k++)
            registry_record(r, p, rng_uniform(&g) < 0.6, "d042", -1);
    }
    ctx = context_new("d042", "agent-x", 1);
    delegate_opts_default(&o);
    o.threshold = 0.75;
    cpu = time_choose(r, ctx, &o, iters / 1000 + 1, &wall);
    printf("  10,000 candidates, thompson %8.0f cpu %8.0f wall (%.0f ns per candidate)\n", cpu,
           wall, cpu / 10000);
    registry_free(r);
    context_free(ctx);
}

int main(void)
{
    int seeds = 20;
    const char *env = getenv("NDF_BENCH_SEEDS");
    if (env && atoi(env) >= 0)
        seeds = atoi(env);
    printf("bench_delegate: %d candidate patterns, %d domains, %d delegations per domain\n", K, D,
           T);
    printf("hidden success probabilities per domain: one arm 0.90, the others 0.30..0.85 "
           "evenly, shuffled per domain\n");
    const variant differ[] = {
        {"fixed (highest similarity)", DELEGATE_FIXED, 10, 0, ROLE_NONE},
        {"greedy (posterior mean)", DELEGATE_GREEDY, 10, 0, ROLE_GREEDY},
        {"epsilon-greedy (0.1)", DELEGATE_EPSILON, 10, 0, ROLE_EPSILON},
        {"ucb (UCB1)", DELEGATE_UCB, 10, 0, ROLE_NONE},
        {"thompson (per-domain, m = 10)", DELEGATE_THOMPSON, 10, 0, ROLE_THOMPSON},
        {"thompson (per-domain, m = 0)", DELEGATE_THOMPSON, 0, 0, ROLE_NONE},
        {"thompson (domain-blind)", DELEGATE_THOMPSON, 0, 1, ROLE_BLIND},
    };
    if (seeds)
        run_scenario("domains differ (the issue's simulation)", 0, differ,
                     sizeof differ / sizeof *differ, seeds);
    const variant alike[] = {
        {"thompson (per-domain, m = 10)", DELEGATE_THOMPSON, 10, 0, ROLE_THOMPSON},
        {"thompson (per-domain, m = 0)", DELEGATE_THOMPSON, 0, 0, ROLE_NONE},
        {"thompson (domain-blind)", DELEGATE_THOMPSON, 0, 1, ROLE_BLIND},
    };
    if (seeds)
        run_scenario("domains alike (every domain the same probabilities)", 1, alike,
                     sizeof alike / sizeof *alike, seeds);
    int iters = 20000;
    if ((env = getenv("NDF_BENCH_DECISIONS")) && atoi(env) > 0)
        iters = atoi(env);
    decision_cost(iters);
    return 0;
}
