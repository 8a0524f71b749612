/* Delegation: candidates for a context, their blended Beta posteriors, the
 * policies that rank them, and the accounting of outcomes.  The formulas
 * are in delegate.h and ndf.conf(5), DELEGATION. */
#include "build-config.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/beta.h"
#include "base/util.h"
#include "model/delegate.h"

static const char *const policy_names[] = {"thompson", "greedy", "ucb", "fixed", "epsilon_greedy"};

const char *delegate_policy_name(delegate_policy p)
{
    return (unsigned)p < ARRAY_SIZE(policy_names) ? policy_names[p] : "unknown";
}

int delegate_policy_parse(const char *name, delegate_policy *out)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(policy_names); i++)
        if (strcmp(name, policy_names[i]) == 0) {
            *out = (delegate_policy)i;
            return 0;
        }
    return -1;
}

static const char *const verdict_names[] = {"chosen", "fallback", "outranked", "below threshold"};

const char *delegate_verdict_name(delegate_verdict v)
{
    return (unsigned)v < ARRAY_SIZE(verdict_names) ? verdict_names[v] : "unknown";
}

void delegate_opts_default(delegate_opts *o)
{
    memset(o, 0, sizeof *o);
    o->policy = DELEGATE_THOMPSON;
    o->prior_strength = 10;
    o->epsilon = 0.1;
    o->threshold = 0;
    o->max_fallbacks = 2;
}

void delegate_result_init(delegate_result *res, size_t n)
{
    memset(res, 0, sizeof *res);
    res->cands = xcalloc(n ? n : 1, sizeof *res->cands);
    res->order = xcalloc(n ? n : 1, sizeof *res->order);
    res->ncands = n;
    for (size_t i = 0; i < n; i++)
        res->cands[i].rank = -1;
}

void delegate_result_free(delegate_result *res)
{
    for (size_t i = 0; res->cands && i < res->ncands; i++)
        pattern_unref(res->cands[i].p);
    free(res->cands);
    free(res->order);
    free(res->domain);
    memset(res, 0, sizeof *res);
}

/* ---- the posterior and the threshold rule ---- */

/* As learning.c: a prior parameter that is not positive counts as 1. */
static double prior_or_one(double v)
{
    return v > 0 ? v : 1.0;
}

void delegate_posterior(delegate_candidate *c, const learning_params *lp, double m)
{
    double a0 = prior_or_one(lp->prior_alpha), b0 = prior_or_one(lp->prior_beta);
    /* Counts read from one snapshot are consistent; clamping keeps a
     * simulation's mistake from wrapping an unsigned difference. */
    uint64_t n = c->n, nd = c->nd < n ? c->nd : n;
    uint64_t sd = c->sd < nd ? c->sd : nd;
    uint64_t s = c->s < n ? c->s : n;
    uint64_t no = n - nd, so = s > sd ? s - sd : 0;
    if (so > no)
        so = no;
    double phat = (a0 + (double)so) / (a0 + b0 + (double)no);
    double w = m > 0 ? fmin(m, (double)no) : 0;
    c->alpha = a0 + (double)sd + w * phat;
    c->beta = b0 + (double)(nd - sd) + w * (1 - phat);
    c->mean = c->alpha / (c->alpha + c->beta);
}

int delegate_confidently_below(double alpha, double beta, double threshold)
{
    if (!(threshold > 0))
        return 0;
    double n = alpha + beta, mean = alpha / n;
    /* With alpha, beta >= 1 the density is log-concave, so P(X <= mean) <=
     * 1 - 1/e (Grunbaum): the 0.95 quantile is above the mean. */
    if (alpha >= 1 && beta >= 1 && mean >= threshold)
        return 0;
    /* Cantelli: P(X >= mean + t) <= var / (var + t^2), below 0.05 once
     * t^2 > 19 var; then the 0.95 quantile is below mean + t. */
    double var = alpha * beta / (n * n * (n + 1)), t = threshold - mean;
    if (t > 0 && t * t > 19 * var)
        return 1;
    return beta_cdf(threshold, alpha, beta) > DELEGATE_INTERVAL_HI;
}

/* ---- ranking ---- */

typedef struct key {
    double score, sim;
    size_t i;
} key;

/* Best first: higher score, then higher similarity, then earlier. */
static int key_before(const key *x, const key *y)
{
    if (x->score != y->score)
        return x->score > y->score;
    if (x->sim != y->sim)
        return x->sim > y->sim;
    return x->i < y->i;
}

static int key_cmp(const void *a, const void *b)
{
    const key *x = a, *y = b;
    return key_before(x, y) ? -1 : key_before(y, x) ? 1 : 0;
}

static int opts_check(const delegate_opts *o)
{
    if ((unsigned)o->policy >= ARRAY_SIZE(policy_names))
        return err_set(NDF_ERR_INVALID, "delegation: unknown policy %d", (int)o->policy);
    if (!(o->prior_strength >= 0) || isinf(o->prior_strength))
        return err_set(NDF_ERR_INVALID, "delegation: prior strength %g is not a finite number >= 0",
                       o->prior_strength);
    if (!(o->epsilon >= 0 && o->epsilon <= 1))
        return err_set(NDF_ERR_INVALID, "delegation: epsilon %g is outside 0..1", o->epsilon);
    if (!(o->threshold >= 0 && o->threshold <= 1))
        return err_set(NDF_ERR_INVALID, "delegation: confidence threshold %g is outside 0..1",
                       o->threshold);
    return NDF_OK;
}

/* 1 when the policy ranks candidates that are confidently below. */
static int policy_explores(delegate_policy p)
{
    return p == DELEGATE_THOMPSON || p == DELEGATE_UCB;
}

/* The threshold rule for `c`, judged at most once per ranking: an exact
 * judgement may cost an incomplete beta (0.3 us), so a policy judges only
 * the candidates whose place depends on it. */
static int judge(delegate_candidate *c)
{
    if (c->below < 0)
        c->below = delegate_confidently_below(c->alpha, c->beta, c->threshold);
    return c->below;
}

/* Appends to res->order the best keys of v[0..n), best first, until it
 * holds `want`.  A policy that does not explore passes over (and marks)
 * the candidates that are confidently below, judging them as it reaches
 * them.  A partial selection for the usual handful of attempts, a sort for
 * many. */
static void take_best(delegate_result *res, key *v, size_t n, size_t want, int explores)
{
    delegate_candidate *c = res->cands;
    if (want <= 8) {
        size_t j = 0;
        while (res->norder < want && j < n) {
            size_t best = j;
            for (size_t i = j + 1; i < n; i++)
                if (key_before(&v[i], &v[best]))
                    best = i;
            key t = v[j];
            v[j] = v[best];
            v[best] = t;
            if (!explores && judge(&c[v[j].i])) {
                c[v[j].i].score = NAN;
                v[j] = v[--n];
                continue;
            }
            res->order[res->norder++] = v[j++].i;
        }
        return;
    }
    qsort(v, n, sizeof *v, key_cmp);
    for (size_t j = 0; j < n && res->norder < want; j++) {
        if (!explores && judge(&c[v[j].i])) {
            c[v[j].i].score = NAN;
            continue;
        }
        res->order[res->norder++] = v[j].i;
    }
}

int delegate_rank(const delegate_opts *o, const learning_params *lp, rng *g, delegate_result *res)
{
    int rc = opts_check(o);
    if (rc)
        return rc;
    size_t n = res->ncands;
    delegate_candidate *c = res->cands;
    res->policy = o->policy;
    res->norder = 0;
    res->coin = 0;
    if (n == 0)
        return err_set(NDF_ERR_NOT_FOUND, "no pattern suits the context");

    double total = 0; /* UCB's N */
    for (size_t i = 0; i < n; i++) {
        delegate_posterior(&c[i], lp, o->prior_strength);
        c[i].below = -1;
        c[i].lo = c[i].hi = NAN;
        if (o->explain) {
            judge(&c[i]);
            c[i].lo = beta_quantile(DELEGATE_INTERVAL_LO, c[i].alpha, c[i].beta);
            c[i].hi = beta_quantile(DELEGATE_INTERVAL_HI, c[i].alpha, c[i].beta);
        }
        c[i].rank = -1;
        c[i].explored = 0;
        total += c[i].alpha + c[i].beta;
    }

    /* epsilon-greedy's coin comes first, so a seed fixes it too. */
    size_t want = (size_t)o->max_fallbacks + 1;
    size_t picked = n;
    if (o->policy == DELEGATE_EPSILON && rng_uniform(g) < o->epsilon) {
        res->coin = 1;
        picked = (size_t)rng_below(g, n);
        res->order[res->norder++] = picked;
    }

    key stack[32];
    key *keys = n <= ARRAY_SIZE(stack) ? stack : xmalloc(n * sizeof *keys);
    size_t nk = 0;
    int explores = policy_explores(o->policy);
    for (size_t i = 0; i < n; i++) {
        double s;
        switch (o->policy) {
        case DELEGATE_THOMPSON: s = rng_beta(g, c[i].alpha, c[i].beta); break;
        case DELEGATE_UCB: s = c[i].mean + sqrt(2 * log(total) / (c[i].alpha + c[i].beta)); break;
        case DELEGATE_FIXED: s = c[i].similarity; break;
        case DELEGATE_GREEDY:
        case DELEGATE_EPSILON:
        default: s = c[i].mean; break;
        }
        c[i].score = s;
        if (i != picked)
            keys[nk++] = (key){s, c[i].similarity, i};
    }
    take_best(res, keys, nk, want, explores);
    if (keys != stack)
        free(keys);

    for (size_t j = 0; j < res->norder; j++) {
        delegate_candidate *x = &c[res->order[j]];
        x->rank = (int)j;
        x->explored = judge(x);
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i].rank == 0)
            c[i].verdict = DELEGATE_CHOSEN;
        else if (c[i].rank > 0)
            c[i].verdict = DELEGATE_FALLBACK;
        else if (c[i].below == 1 && !explores)
            c[i].verdict = DELEGATE_BELOW;
        else
            c[i].verdict = DELEGATE_OUTRANKED;
    }

    if (res->norder == 0) {
        /* Only a policy that does not explore gets here, having judged
         * every candidate below. */
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (c[i].mean > c[best].mean)
                best = i;
        return err_set(NDF_ERR_CONFIDENCE,
                       "all %zu candidate%s confidently below %s confidence threshold (best: '%s', "
                       "posterior mean %.3f, threshold %.2f); policy %s does not explore them",
                       n, n == 1 ? " is" : "s are", n == 1 ? "its" : "their",
                       c[best].name ? c[best].name : "?", c[best].mean, c[best].threshold,
                       delegate_policy_name(o->policy));
    }
    return NDF_OK;
}

/* ---- candidates from the registry ---- */

/* What the candidates are sorted by, kept small: sorting the candidates
 * themselves would move 150-byte structs. */
typedef struct simkey {
    double sim;
    pattern *p;
} simkey;

static int by_similarity(const void *a, const void *b)
{
    const simkey *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return strcmp(x->p->name, y->p->name);
}

static const domain_count *find_domain(const learning_state *st, const char *domain)
{
    size_t lo = 0, hi = st->ndomains;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(st->domains[mid].domain, domain);
        if (cmp == 0)
            return &st->domains[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void set_counts(delegate_candidate *c, const learning_state *st, const char *domain)
{
    c->n = st->executions;
    c->s = st->successes;
    if (!*domain) {
        c->nd = c->n;
        c->sd = c->s;
        return;
    }
    const domain_count *d = find_domain(st, domain);
    c->nd = d ? d->executions : 0;
    c->sd = d ? d->successes : 0;
}

/* The counts in one consistent read.  A resident pattern's are read in
 * place under its lock (no copy: this is the decision's hot path); a
 * paged-out one's domain counts come from its store through
 * pattern_stats(). */
static void read_counts(delegate_candidate *c, const char *domain)
{
    pattern *p = c->p;
    pthread_mutex_lock(&p->lock);
    int paged = !p->resident && p->store && p->store->load;
    if (!paged)
        set_counts(c, &p->learn, domain);
    pthread_mutex_unlock(&p->lock);
    if (paged) {
        learning_state st;
        pattern_stats(p, &st);
        set_counts(c, &st, domain);
        learning_free(&st);
    }
}

int delegate_choose(registry *r, const ndf_context *ctx, const delegate_opts *o,
                    delegate_result *out)
{
    pattern_list l;
    registry_find_by_domain(r, ctx->domain, &l);
    size_t n = 0;
    for (size_t i = 0; i < l.count; i++)
        if (pattern_matches(l.items[i], ctx))
            l.items[n++] = l.items[i];
        else
            pattern_unref(l.items[i]);
    l.count = n;

    simkey *sk = xmalloc((n ? n : 1) * sizeof *sk);
    for (size_t i = 0; i < n; i++)
        sk[i] = (simkey){registry_similarity(l.items[i], ctx), l.items[i]};
    qsort(sk, n, sizeof *sk, by_similarity);

    delegate_result_init(out, n);
    out->domain = xstrdup(ctx->domain);
    /* 53 bits: the seed is reported in JSON, whose numbers are doubles,
     * and must come back exactly through --seed. */
    out->seed = o->has_seed ? o->seed : rng_seed_fresh() >> 11;
    for (size_t i = 0; i < n; i++) {
        delegate_candidate *c = &out->cands[i];
        c->p = sk[i].p; /* the list's reference passes to the result */
        c->name = c->p->name;
        c->similarity = sk[i].sim;
        c->threshold = pattern_threshold(c->p, o->threshold);
        read_counts(c, ctx->domain);
    }
    free(sk);
    l.count = 0;
    pattern_list_free(&l);

    rng g;
    rng_seed(&g, out->seed);
    int rc = delegate_rank(o, registry_learning(r), &g, out);
    if (rc == NDF_ERR_NOT_FOUND)
        err_set(rc,
                "no pattern suits the context (domain '%s', agent type '%s'): none of the %zu "
                "registered matches it",
                ctx->domain, ctx->agent_type, registry_count(r));
    return rc;
}

/* ---- explaining ---- */

char *delegate_reason(const delegate_result *res, size_t k)
{
    if (k >= res->norder)
        return xstrdup("");
    const delegate_candidate *c = &res->cands[res->order[k]];
    strbuf sb;
    sb_init(&sb);
    const char *pol = delegate_policy_name(res->policy);
    if (res->policy == DELEGATE_EPSILON && res->coin && k == 0)
        sb_printf(&sb, "%s: exploring, drawn uniformly from %zu", pol, res->ncands);
    else if (res->policy == DELEGATE_THOMPSON)
        sb_printf(&sb, "%s draw %.3f", pol, c->score);
    else if (res->policy == DELEGATE_UCB)
        sb_printf(&sb, "%s index %.3f", pol, c->score);
    else if (res->policy == DELEGATE_FIXED)
        sb_printf(&sb, "%s: similarity %.3f", pol, c->score);
    else
        sb_printf(&sb, "%s: posterior mean %.3f", pol, c->score);
    if (k == 0)
        sb_printf(&sb, ", best of %zu", res->ncands);
    else
        sb_printf(&sb, ", fallback %zu of %zu", k, res->norder - 1);
    sb_printf(&sb, "; posterior %.3f", c->mean);
    if (res->domain && *res->domain)
        sb_printf(&sb, " from %" PRIu64 " run%s in '%s', %" PRIu64 " in all", c->nd,
                  c->nd == 1 ? "" : "s", res->domain, c->n);
    else
        sb_printf(&sb, " from %" PRIu64 " run%s", c->n, c->n == 1 ? "" : "s");
    if (c->explored)
        sb_printf(&sb, "; exploring: confidently below its threshold %.2f", c->threshold);
    return sb_steal(&sb);
}

void delegate_result_to_json(const delegate_result *res, strbuf *sb)
{
    sb_puts(sb, "{\"policy\": ");
    sb_json_str(sb, delegate_policy_name(res->policy));
    sb_printf(sb, ", \"seed\": %" PRIu64 ", \"coin\": %s, \"domain\": ", res->seed,
              res->coin ? "true" : "false");
    sb_json_str(sb, res->domain);
    sb_puts(sb, ", \"candidates\": [");
    for (size_t i = 0; i < res->ncands; i++) {
        const delegate_candidate *c = &res->cands[i];
        sb_puts(sb, i ? ", {\"pattern\": " : "{\"pattern\": ");
        sb_json_str(sb, c->name);
        sb_puts(sb, ", \"similarity\": ");
        sb_json_num(sb, c->similarity, 6);
        sb_puts(sb, ", \"threshold\": ");
        sb_json_num(sb, c->threshold, 6);
        sb_printf(sb,
                  ", \"executions\": %" PRIu64 ", \"successes\": %" PRIu64
                  ", \"domain_executions\": %" PRIu64 ", \"domain_successes\": %" PRIu64,
                  c->n, c->s, c->nd, c->sd);
        sb_puts(sb, ", \"alpha\": ");
        sb_json_num(sb, c->alpha, 6);
        sb_puts(sb, ", \"beta\": ");
        sb_json_num(sb, c->beta, 6);
        sb_puts(sb, ", \"mean\": ");
        sb_json_num(sb, c->mean, 6);
        sb_puts(sb, ", \"interval\": ");
        if (isfinite(c->lo) && isfinite(c->hi))
            sb_printf(sb, "[%.6g, %.6g]", c->lo, c->hi);
        else
            sb_puts(sb, "null");
        sb_puts(sb, ", \"score\": ");
        sb_json_num(sb, c->score, 6);
        sb_printf(sb, ", \"below\": %s, \"explored\": %s, \"rank\": ",
                  c->below < 0 ? "null"
                  : c->below   ? "true"
                               : "false",
                  c->explored ? "true" : "false");
        if (c->rank >= 0)
            sb_printf(sb, "%d", c->rank);
        else
            sb_puts(sb, "null");
        sb_puts(sb, ", \"verdict\": ");
        sb_json_str(sb, delegate_verdict_name(c->verdict));
        sb_puts(sb, "}");
    }
    sb_puts(sb, "], \"order\": [");
    for (size_t k = 0; k < res->norder; k++) {
        if (k)
            sb_puts(sb, ", ");
        sb_json_str(sb, res->cands[res->order[k]].name);
    }
    sb_puts(sb, "]}");
}

/* ---- outcome accounting ---- */

delegate_outcome delegate_outcome_of(int status)
{
    switch (status) {
    case NDF_OK: return DELEGATE_SUCCESS;
    case NDF_ERR_EXECUTION:
    case NDF_ERR_TIMEOUT: return DELEGATE_FAILURE;
    case NDF_ERR_VALIDATION:
    case NDF_ERR_INVALID:
    case NDF_ERR_NOT_FOUND:
    case NDF_ERR_CONFIDENCE:
    case NDF_ERR_RESOURCE: return DELEGATE_SKIP;
    case NDF_ERR_CANCELLED:
    case NDF_ERR_IO:
    case NDF_ERR_NOMEM:
    case NDF_ERR_EXISTS: return DELEGATE_STOP;
    default: return DELEGATE_FAILURE; /* ndf/status.h: an unknown code is EXECUTION */
    }
}

const char *delegate_outcome_name(delegate_outcome o)
{
    switch (o) {
    case DELEGATE_SUCCESS: return "success";
    case DELEGATE_FAILURE: return "failure";
    case DELEGATE_SKIP: return "not counted";
    case DELEGATE_STOP: return "not counted, stop";
    default: return "unknown";
    }
}

int delegate_outcome_counts(delegate_outcome o)
{
    return o == DELEGATE_SUCCESS || o == DELEGATE_FAILURE;
}

int delegate_outcome_falls_back(delegate_outcome o)
{
    return o == DELEGATE_FAILURE || o == DELEGATE_SKIP;
}
