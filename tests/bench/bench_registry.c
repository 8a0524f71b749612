/* Registry benchmark (make bench): registers up to 1,000,000 patterns over
 * 1,000 domains and times get-by-name, find-by-domain and find-similar at
 * 10k, 100k and 1M patterns, beside a plain linear scan over the same
 * patterns measured in the same run.  A fixed "probe" domain holds 10
 * patterns throughout, so its lookups show whether the cost depends on the
 * patterns of other domains. */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/registry.h"
#include "base/util.h"

#define NDOMAINS 1000
#define MAXN 1000000

static pattern **all;
static size_t nall;
static learning_params lp;

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static pattern *make(size_t i, const char *domain)
{
    char name[32], glob[32], agent[16];
    snprintf(name, sizeof name, "p%07zu", i);
    pattern *p = pattern_new(name, &lp);
    if (domain) {
        pattern_add_domain(p, domain);
    } else if (i % 100 == 7) {
        /* 1% serve a domain family through a wildcard. */
        snprintf(glob, sizeof glob, "d%04zu.*", i % NDOMAINS);
        pattern_add_domain(p, glob);
    } else {
        snprintf(glob, sizeof glob, "d%04zu", i % NDOMAINS);
        pattern_add_domain(p, glob);
    }
    snprintf(agent, sizeof agent, "agent%zu", i % 10);
    pattern_add_agent_type(p, agent);
    value_append(p->attributes, value_new_string("tier", i % 2 ? "gold" : "silver"));
    p->learn.score = (double)(next() % 1000) / 1000.0;
    return p;
}

/* ---- the linear baselines ---- */

static pattern *scan_get(const char *name)
{
    for (size_t i = 0; i < nall; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

static size_t scan_domain(const char *domain)
{
    size_t n = 0;
    for (size_t i = 0; i < nall; i++) {
        const pattern *p = all[i];
        for (size_t j = 0; j < p->ndomains; j++)
            if (context_glob_match(p->domains[j], domain)) {
                n++;
                break;
            }
    }
    return n;
}

static size_t scan_similar(const ndf_context *c, double t)
{
    size_t n = 0;
    for (size_t i = 0; i < nall; i++)
        n += registry_similarity(all[i], c) >= t;
    return n;
}

/* ---- timing ---- */

typedef struct row {
    const char *op;
    double reg_ns, lin_ns;
    size_t results;
} row;

static double base_reg[8], base_lin[8];

static void print_row(size_t n, int k, const row *r, int first)
{
    if (first) {
        base_reg[k] = r->reg_ns;
        base_lin[k] = r->lin_ns;
    }
    printf("%9zu  %-22s %12.0f %8.2fx %14.0f %8.2fx %8zu\n", n, r->op, r->reg_ns,
           r->reg_ns / base_reg[k], r->lin_ns, r->lin_ns / base_lin[k], r->results);
}

static void measure(registry *r, size_t n, int first)
{
    char name[32], dom[32];
    row rows[5];
    int k = 0;

    /* get by name */
    size_t ops = 1000000;
    double t0 = now_mono();
    for (size_t i = 0; i < ops; i++) {
        snprintf(name, sizeof name, "p%07zu", (size_t)(next() % n));
        pattern *p;
        if (registry_get(r, name, &p) != NDF_OK)
            abort();
        pattern_unref(p);
    }
    double reg = (now_mono() - t0) * 1e9 / (double)ops;
    size_t lops = 200;
    t0 = now_mono();
    for (size_t i = 0; i < lops; i++) {
        snprintf(name, sizeof name, "p%07zu", (size_t)(next() % n));
        if (!scan_get(name))
            abort();
    }
    rows[k++] = (row){"get_by_name", reg, (now_mono() - t0) * 1e9 / (double)lops, 1};

    /* find by domain: a busy domain (n/1000 patterns) */
    ops = 2000;
    size_t res = 0;
    t0 = now_mono();
    for (size_t i = 0; i < ops; i++) {
        snprintf(dom, sizeof dom, "d%04zu", (size_t)(next() % NDOMAINS));
        pattern_list l;
        registry_find_by_domain(r, dom, &l);
        res += l.count;
        pattern_list_free(&l);
    }
    reg = (now_mono() - t0) * 1e9 / (double)ops;
    lops = 20;
    t0 = now_mono();
    for (size_t i = 0; i < lops; i++) {
        snprintf(dom, sizeof dom, "d%04zu", (size_t)(next() % NDOMAINS));
        scan_domain(dom);
    }
    rows[k++] = (row){"find_by_domain", reg, (now_mono() - t0) * 1e9 / (double)lops, res / ops};

    /* find by domain: the probe domain (always 10 patterns) */
    ops = 200000;
    t0 = now_mono();
    for (size_t i = 0; i < ops; i++) {
        pattern_list l;
        registry_find_by_domain(r, "probe", &l);
        res = l.count;
        pattern_list_free(&l);
    }
    reg = (now_mono() - t0) * 1e9 / (double)ops;
    t0 = now_mono();
    for (size_t i = 0; i < lops; i++)
        scan_domain("probe");
    rows[k++] = (row){"find_by_domain(probe)", reg, (now_mono() - t0) * 1e9 / (double)lops, res};

    /* find similar, threshold 0.6, in a busy domain */
    ndf_context *c = context_new("d0042", "agent2", 1);
    context_set_attr(c, "tier", value_new_string(NULL, "silver"));
    ops = 2000;
    t0 = now_mono();
    for (size_t i = 0; i < ops; i++) {
        pattern_list l;
        registry_find_similar(r, c, 0.6, &l);
        res = l.count;
        pattern_list_free(&l);
    }
    reg = (now_mono() - t0) * 1e9 / (double)ops;
    t0 = now_mono();
    for (size_t i = 0; i < lops; i++)
        scan_similar(c, 0.6);
    rows[k++] = (row){"find_similar(0.6)", reg, (now_mono() - t0) * 1e9 / (double)lops, res};
    context_free(c);

    /* find similar in the probe domain */
    c = context_new("probe", "agent2", 1);
    ops = 100000;
    t0 = now_mono();
    for (size_t i = 0; i < ops; i++) {
        pattern_list l;
        registry_find_similar(r, c, 0.6, &l);
        res = l.count;
        pattern_list_free(&l);
    }
    reg = (now_mono() - t0) * 1e9 / (double)ops;
    t0 = now_mono();
    for (size_t i = 0; i < lops; i++)
        scan_similar(c, 0.6);
    rows[k++] = (row){"find_similar(probe)", reg, (now_mono() - t0) * 1e9 / (double)lops, res};
    context_free(c);

    for (int i = 0; i < k; i++)
        print_row(n, i, &rows[i], first);
}

int main(void)
{
    learning_params_default(&lp);
    registry_opts o = {.cache_size = MAXN, .enable_learning = 1, .learning = lp, .store = NULL};
    registry *r = registry_new(&o);
    all = xmalloc((MAXN + 10) * sizeof *all);

    /* The probe domain: 10 patterns, registered first, never more. */
    for (size_t i = 0; i < 10; i++) {
        pattern *p = make(MAXN + i, "probe");
        registry_register(r, p);
        all[nall++] = p;
    }

    printf("registry benchmark: %d domains; growth is relative to the first size\n", NDOMAINS);
    printf("%9s  %-22s %12s %9s %14s %9s %8s\n", "patterns", "operation", "registry ns", "growth",
           "linear ns", "growth", "results");
    static const size_t sizes[] = {10000, 100000, 1000000};
    size_t i = 0;
    double reg_time = 0;
    for (size_t s = 0; s < 3; s++) {
        double t0 = now_mono();
        for (; i < sizes[s]; i++) {
            pattern *p = make(i, NULL);
            if (registry_register(r, p) != NDF_OK) {
                fprintf(stderr, "bench_registry: %s\n", err_msg());
                return 1;
            }
            all[nall++] = p;
        }
        reg_time += now_mono() - t0;
        measure(r, sizes[s], s == 0);
        printf("%9zu  %-22s %12.0f\n", sizes[s], "register (cumulative)",
               reg_time * 1e9 / (double)sizes[s]);
    }
    for (size_t j = 0; j < nall; j++)
        pattern_unref(all[j]);
    free(all);
    registry_free(r);
    return 0;
}
