/* The pattern registry (seed PatternRegistry): a hash map by name, domain
 * indexes (exact domains, wildcard globs by the first token of their literal
 * prefix, domain tokens for similarity), the similarity score, and the cache
 * of resident learning state paged through a registry_store.
 *
 * Locking: `lock` (rwlock) guards the maps and lists; `lru_lock` guards the
 * cache list; each pattern's own mutex guards its learning state.  Order:
 * lock -> lru_lock -> pattern lock; I/O to the store happens under the
 * pattern lock only. */
#include "build-config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/registry.h"
#include "base/hashmap.h"
#include "base/util.h"

/* ---- small containers ---- */

typedef struct pvec {
    pattern **v;
    size_t n, cap;
} pvec;

static void pvec_push(pvec *a, pattern *p)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->v = xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = p;
}

static void pvec_remove(pvec *a, const pattern *p)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i] == p) {
            memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof *a->v);
            a->n--;
            return;
        }
}

static void pvec_free_void(void *p)
{
    pvec *a = p;
    free(a->v);
    free(a);
}

/* The pvec under the `len` bytes at `key` in `m`, created when `create`. */
static pvec *index_vec(hashmap *m, const char *key, size_t len, int create)
{
    pvec *a = hashmap_getn(m, key, len);
    if (a || !create)
        return a;
    a = xcalloc(1, sizeof *a);
    hashmap_putn(m, key, len, a);
    return a;
}

static void index_drop(hashmap *m, const char *key, size_t len, const pattern *p)
{
    pvec *a = index_vec(m, key, len, 0);
    if (!a)
        return;
    pvec_remove(a, p);
    if (!a->n)
        pvec_free_void(hashmap_removen(m, key, len));
}

/* ---- tokens and globs ---- */

static int is_sep(char c)
{
    return c == '_' || c == '.' || c == '-';
}

static int has_meta(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '*' || s[i] == '?')
            return 1;
    return 0;
}

/* A glob made only of '*' serves any text. */
static int is_any(const char *g)
{
    if (!*g)
        return 0;
    for (; *g; g++)
        if (*g != '*')
            return 0;
    return 1;
}

/* The length of the first token of a text (up to the first separator). */
static size_t first_token(const char *s)
{
    size_t i = 0;
    while (s[i] && !is_sep(s[i]))
        i++;
    return i;
}

/* For a wildcard glob: the length of its first token when its literal
 * prefix holds that token entirely (a separator comes before any
 * metacharacter), else 0.  Every text the glob matches (the bare-parent rule
 * included) then has the same first token. */
static size_t glob_first_token(const char *g)
{
    for (size_t i = 0; g[i]; i++) {
        if (g[i] == '*' || g[i] == '?')
            return 0;
        if (is_sep(g[i]))
            return i;
    }
    return 0;
}

typedef struct tok {
    const char *s;
    size_t n;
} tok;

#define MAX_TOKENS 32

/* Distinct literal tokens of `s`; tokens holding a metacharacter are left
 * out.  Returns the count (at most MAX_TOKENS). */
static size_t tokenize(const char *s, tok *out)
{
    size_t n = 0;
    while (*s) {
        while (*s && is_sep(*s))
            s++;
        const char *b = s;
        while (*s && !is_sep(*s))
            s++;
        size_t len = (size_t)(s - b);
        if (!len || has_meta(b, len))
            continue;
        size_t i;
        for (i = 0; i < n; i++)
            if (out[i].n == len && memcmp(out[i].s, b, len) == 0)
                break;
        if (i == n && n < MAX_TOKENS)
            out[n++] = (tok){b, len};
    }
    return n;
}

/* Dice coefficient of the token sets: 2|A n B| / (|A| + |B|). */
static double dice(const char *a, const char *b)
{
    tok ta[MAX_TOKENS], tb[MAX_TOKENS];
    size_t na = tokenize(a, ta), nb = tokenize(b, tb), common = 0;
    if (!na || !nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (ta[i].n == tb[j].n && memcmp(ta[i].s, tb[j].s, ta[i].n) == 0) {
                common++;
                break;
            }
    return 2.0 * (double)common / (double)(na + nb);
}

/* The score of one field (domain or agent type) against a pattern's globs:
 * none 0.5, exact 1.0, wildcard 0.75, only-'*' glob 0.5, else token overlap
 * 0.6 * Dice; the best over the globs. */
static double field_score(char *const *globs, size_t n, const char *text)
{
    if (!n)
        return 0.5;
    double best = 0;
    for (size_t i = 0; i < n && best < 1.0; i++) {
        const char *g = globs[i];
        double s;
        if (is_any(g))
            s = 0.5;
        else if (!has_meta(g, strlen(g)) && strcmp(g, text) == 0)
            s = 1.0;
        else if (context_glob_match(g, text))
            s = 0.75;
        else
            s = 0.6 * dice(g, text);
        if (s > best)
            best = s;
    }
    return best;
}

double registry_similarity(const pattern *p, const ndf_context *ctx)
{
    double d = field_score(p->domains, p->ndomains, ctx->domain);
    double a = field_score(p->agent_types, p->nagent_types, ctx->agent_type);
    size_t n = value_count(p->attributes), matched = 0;
    for (size_t i = 0; i < n; i++) {
        const ndf_value *want = value_at(p->attributes, i);
        const ndf_value *have = want->name ? value_get(ctx->attrs, want->name) : NULL;
        if (have && context_value_matches(have, want))
            matched++;
    }
    double t = n ? (double)matched / (double)n : 0.5;
    return 0.5 * d + 0.25 * a + 0.25 * t;
}

/* ---- the registry ---- */

typedef struct entry {
    pattern *p;
    struct entry *prev, *next; /* cache list, most recently used first */
    int cached;
} entry;

struct registry {
    registry_opts opts;
    pthread_rwlock_t lock;
    hashmap *names;  /* name -> entry */
    hashmap *exact;  /* literal domain -> pvec */
    hashmap *wild;   /* first token of a wildcard glob's literal prefix -> pvec */
    pvec other;      /* wildcard globs without such a token ("w*", "?x") */
    pvec any;        /* no domains, or a glob of only '*' */
    hashmap *tokens; /* literal token of a domain glob -> pvec */

    pthread_mutex_t lru_lock;
    entry *head, *tail;
    size_t resident;
};

registry *registry_new(const registry_opts *opts)
{
    registry *r = xcalloc(1, sizeof *r);
    r->opts = *opts;
    r->names = hashmap_new();
    r->exact = hashmap_new();
    r->wild = hashmap_new();
    r->tokens = hashmap_new();
    pthread_rwlock_init(&r->lock, NULL);
    pthread_mutex_init(&r->lru_lock, NULL);
    return r;
}

static void entry_free(void *v)
{
    entry *e = v;
    pattern_unref(e->p);
    free(e);
}

void registry_free(registry *r)
{
    if (!r)
        return;
    hashmap_free(r->names, entry_free);
    hashmap_free(r->exact, pvec_free_void);
    hashmap_free(r->wild, pvec_free_void);
    hashmap_free(r->tokens, pvec_free_void);
    free(r->other.v);
    free(r->any.v);
    pthread_rwlock_destroy(&r->lock);
    pthread_mutex_destroy(&r->lru_lock);
    free(r);
}

/* Adds (add=1) or removes the pattern from the domain and token indexes.
 * A pattern appears once per distinct key. */
static void index_pattern(registry *r, pattern *p, int add)
{
    if (!p->ndomains) {
        add ? pvec_push(&r->any, p) : pvec_remove(&r->any, p);
        return;
    }
    for (size_t i = 0; i < p->ndomains; i++) {
        const char *g = p->domains[i];
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(p->domains[j], g) == 0;
        if (dup)
            continue;
        size_t ft;
        if (is_any(g)) {
            if (add)
                pvec_push(&r->any, p);
            else
                pvec_remove(&r->any, p);
        } else if (!has_meta(g, strlen(g))) {
            if (add)
                pvec_push(index_vec(r->exact, g, strlen(g), 1), p);
            else
                index_drop(r->exact, g, strlen(g), p);
        } else if ((ft = glob_first_token(g)) > 0) {
            if (add)
                pvec_push(index_vec(r->wild, g, ft, 1), p);
            else
                index_drop(r->wild, g, ft, p);
        } else {
            if (add)
                pvec_push(&r->other, p);
            else
                pvec_remove(&r->other, p);
        }
    }
    /* Tokens, once per pattern over all its globs. */
    tok seen[MAX_TOKENS * 4];
    size_t nseen = 0;
    for (size_t i = 0; i < p->ndomains; i++) {
        tok t[MAX_TOKENS];
        size_t n = tokenize(p->domains[i], t);
        for (size_t k = 0; k < n; k++) {
            size_t j;
            for (j = 0; j < nseen; j++)
                if (seen[j].n == t[k].n && memcmp(seen[j].s, t[k].s, t[k].n) == 0)
                    break;
            if (j < nseen || nseen == ARRAY_SIZE(seen))
                continue;
            seen[nseen++] = t[k];
            if (add)
                pvec_push(index_vec(r->tokens, t[k].s, t[k].n, 1), p);
            else
                index_drop(r->tokens, t[k].s, t[k].n, p);
        }
    }
}

/* Cache list operations; caller holds lru_lock. */
static void lru_unlink(registry *r, entry *e)
{
    if (!e->cached)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        r->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        r->tail = e->prev;
    e->prev = e->next = NULL;
    e->cached = 0;
    r->resident--;
}

static void lru_front(registry *r, entry *e)
{
    lru_unlink(r, e);
    e->next = r->head;
    if (r->head)
        r->head->prev = e;
    r->head = e;
    if (!r->tail)
        r->tail = e;
    e->cached = 1;
    r->resident++;
}

static int can_page(const registry *r)
{
    return r->opts.store && r->opts.store->save && r->opts.cache_size > 0;
}

/* Pages out least recently used state while over cache_size.  Caller holds
 * `lock` (read or write), so entries stay alive; not lru_lock. */
static void evict_over(registry *r)
{
    if (!can_page(r))
        return;
    for (;;) {
        pthread_mutex_lock(&r->lru_lock);
        if (r->resident <= r->opts.cache_size || !r->tail) {
            pthread_mutex_unlock(&r->lru_lock);
            return;
        }
        entry *victim = r->tail;
        lru_unlink(r, victim);
        pthread_mutex_unlock(&r->lru_lock);
        if (pattern_page_out(victim->p) != NDF_OK)
            /* Stays in memory, out of the list: retrying every time would
             * turn a broken store into a loop. */
            log_msg(NDF_LOG_WARN, "pattern '%s': cannot page out its learning state: %s",
                    victim->p->name, err_msg());
    }
}

static int check_globs(char *const *g, size_t n, const char *what, const pattern *p)
{
    for (size_t i = 0; i < n; i++)
        if (!g[i] || !*g[i])
            return err_set(NDF_ERR_INVALID, "pattern '%s': empty %s glob", p->name, what);
    return NDF_OK;
}

int registry_register(registry *r, pattern *p)
{
    if (!p || !p->name || !name_valid(p->name))
        return err_set(NDF_ERR_INVALID,
                       "invalid pattern name '%s' (use 1 to 128 of [A-Za-z0-9_.-], not "
                       "starting with '.')",
                       p && p->name ? p->name : "");
    int rc = check_globs(p->domains, p->ndomains, "domain", p);
    if (!rc)
        rc = check_globs(p->agent_types, p->nagent_types, "agent type", p);
    if (rc)
        return rc;
    if (p->threshold > 1)
        return err_set(NDF_ERR_INVALID, "pattern '%s': confidence threshold %g is above 1",
                       p->name, p->threshold);

    pthread_rwlock_wrlock(&r->lock);
    entry *old = hashmap_get(r->names, p->name);
    if (old) {
        const pattern *q = old->p;
        if (p->file && q->file)
            rc = err_set(NDF_ERR_EXISTS, "%s:%d: pattern '%s' already defined at %s:%d", p->file,
                         p->line, p->name, q->file, q->line);
        else
            rc = err_set(NDF_ERR_EXISTS, "pattern '%s' already exists", p->name);
        pthread_rwlock_unlock(&r->lock);
        return rc;
    }
    entry *e = xcalloc(1, sizeof *e);
    e->p = pattern_ref(p);
    hashmap_put(r->names, p->name, e);
    index_pattern(r, p, 1);

    pthread_mutex_lock(&p->lock);
    p->store = r->opts.store;
    int resident = p->resident;
    pthread_mutex_unlock(&p->lock);
    if (resident) {
        pthread_mutex_lock(&r->lru_lock);
        lru_front(r, e);
        pthread_mutex_unlock(&r->lru_lock);
        evict_over(r);
    }
    pthread_rwlock_unlock(&r->lock);
    return NDF_OK;
}

int registry_unregister(registry *r, const char *name)
{
    pthread_rwlock_wrlock(&r->lock);
    entry *e = hashmap_remove(r->names, name);
    if (!e) {
        pthread_rwlock_unlock(&r->lock);
        return err_set(NDF_ERR_NOT_FOUND, "no pattern named '%s'", name);
    }
    index_pattern(r, e->p, 0);
    pthread_mutex_lock(&r->lru_lock);
    lru_unlink(r, e);
    pthread_mutex_unlock(&r->lru_lock);
    pthread_rwlock_unlock(&r->lock);
    entry_free(e);
    return NDF_OK;
}

int registry_get(registry *r, const char *name, pattern **out)
{
    pthread_rwlock_rdlock(&r->lock);
    entry *e = hashmap_get(r->names, name);
    *out = e ? pattern_ref(e->p) : NULL;
    pthread_rwlock_unlock(&r->lock);
    return e ? NDF_OK : err_set(NDF_ERR_NOT_FOUND, "no pattern named '%s'", name);
}

size_t registry_count(registry *r)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t n = hashmap_count(r->names);
    pthread_rwlock_unlock(&r->lock);
    return n;
}

size_t registry_resident(registry *r)
{
    pthread_mutex_lock(&r->lru_lock);
    size_t n = r->resident;
    pthread_mutex_unlock(&r->lru_lock);
    return n;
}

const learning_params *registry_learning(registry *r)
{
    return &r->opts.learning;
}

void pattern_list_free(pattern_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        pattern_unref(l->items[i]);
    free(l->items);
    free(l->scores);
    memset(l, 0, sizeof *l);
}

/* ---- queries ---- */

typedef struct scored {
    pattern *p;
    double score;
} scored;

static int by_ptr(const void *a, const void *b)
{
    const pattern *x = *(pattern *const *)a, *y = *(pattern *const *)b;
    return x < y ? -1 : x > y;
}

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return strcmp(x->p->name, y->p->name);
}

static void add_all(pvec *c, const pvec *src)
{
    if (src)
        for (size_t i = 0; i < src->n; i++)
            pvec_push(c, src->v[i]);
}

/* Sorts and removes duplicates (a pattern reached through two of its
 * globs). */
static void uniq(pvec *c)
{
    if (c->n < 2)
        return;
    qsort(c->v, c->n, sizeof *c->v, by_ptr);
    size_t k = 1;
    for (size_t i = 1; i < c->n; i++)
        if (c->v[i] != c->v[k - 1])
            c->v[k++] = c->v[i];
    c->n = k;
}

/* Candidates for `domain` from the domain indexes; caller holds the lock. */
static void domain_candidates(registry *r, const char *domain, pvec *c)
{
    add_all(c, hashmap_get(r->exact, domain));
    size_t ft = first_token(domain);
    add_all(c, index_vec(r->wild, domain, ft, 0));
    add_all(c, &r->other);
    add_all(c, &r->any);
}

/* Fills `out` from `s` (n entries, references held), sorted. */
static void fill_list(scored *s, size_t n, pattern_list *out)
{
    qsort(s, n, sizeof *s, by_score);
    out->count = n;
    out->items = xmalloc((n ? n : 1) * sizeof *out->items);
    out->scores = xmalloc((n ? n : 1) * sizeof *out->scores);
    for (size_t i = 0; i < n; i++) {
        out->items[i] = s[i].p;
        out->scores[i] = s[i].score;
    }
}

static int serves_domain(const pattern *p, const char *domain)
{
    if (!p->ndomains)
        return 1;
    for (size_t i = 0; i < p->ndomains; i++)
        if (context_glob_match(p->domains[i], domain))
            return 1;
    return 0;
}

int registry_find_by_domain(registry *r, const char *domain, pattern_list *out)
{
    memset(out, 0, sizeof *out);
    pvec c = {0};
    pthread_rwlock_rdlock(&r->lock);
    domain_candidates(r, domain, &c);
    uniq(&c);
    scored *s = xmalloc((c.n ? c.n : 1) * sizeof *s);
    size_t n = 0;
    for (size_t i = 0; i < c.n; i++)
        if (serves_domain(c.v[i], domain))
            s[n++].p = pattern_ref(c.v[i]);
    pthread_rwlock_unlock(&r->lock);
    for (size_t i = 0; i < n; i++)
        s[i].score = pattern_score(s[i].p);
    fill_list(s, n, out);
    free(s);
    free(c.v);
    return NDF_OK;
}

int registry_find_similar(registry *r, const ndf_context *ctx, double threshold,
                          pattern_list *out)
{
    memset(out, 0, sizeof *out);
    if (!(threshold >= 0 && threshold <= 1))
        return err_set(NDF_ERR_INVALID, "similarity threshold %g is outside 0..1", threshold);
    pvec c = {0};
    pthread_rwlock_rdlock(&r->lock);
    if (threshold > 0.5) {
        /* Agent type and attributes weigh 0.5 together: above that, only a
         * pattern with a domain score above 0 can qualify, and all such are
         * in the domain indexes or share a token with the domain. */
        domain_candidates(r, ctx->domain, &c);
        tok t[MAX_TOKENS];
        size_t nt = tokenize(ctx->domain, t);
        for (size_t i = 0; i < nt; i++)
            add_all(&c, index_vec(r->tokens, t[i].s, t[i].n, 0));
        uniq(&c);
    } else {
        size_t pos = 0;
        void *e;
        while (hashmap_next(r->names, &pos, NULL, &e))
            pvec_push(&c, ((entry *)e)->p);
    }
    scored *s = xmalloc((c.n ? c.n : 1) * sizeof *s);
    size_t n = 0;
    for (size_t i = 0; i < c.n; i++) {
        double sc = registry_similarity(c.v[i], ctx);
        if (sc >= threshold) {
            s[n].p = pattern_ref(c.v[i]);
            s[n++].score = sc;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    fill_list(s, n, out);
    free(s);
    free(c.v);
    return NDF_OK;
}

int registry_all(registry *r, pattern_list *out)
{
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&r->lock);
    size_t n = 0;
    size_t total = hashmap_count(r->names), pos = 0;
    scored *s = xmalloc((total ? total : 1) * sizeof *s);
    void *e;
    while (hashmap_next(r->names, &pos, NULL, &e)) {
        s[n].p = pattern_ref(((entry *)e)->p);
        s[n++].score = 0; /* all equal: sorted by name */
    }
    pthread_rwlock_unlock(&r->lock);
    fill_list(s, n, out);
    free(s);
    return NDF_OK;
}

size_t registry_cleanup(registry *r, double max_age_hours, double now)
{
    if (!can_page(r))
        return 0;
    double cutoff = now - max_age_hours * 3600.0;
    size_t count = 0;
    pthread_rwlock_rdlock(&r->lock);
    size_t pos = 0;
    void *v;
    while (hashmap_next(r->names, &pos, NULL, &v)) {
        entry *e = v;
        pattern *p = e->p;
        pthread_mutex_lock(&p->lock);
        double base = p->learn.last_used > 0 ? p->learn.last_used : p->learn.created;
        int stale = p->resident && base < cutoff;
        pthread_mutex_unlock(&p->lock);
        if (!stale)
            continue;
        pthread_mutex_lock(&r->lru_lock);
        lru_unlink(r, e);
        pthread_mutex_unlock(&r->lru_lock);
        if (pattern_page_out(p) == NDF_OK)
            count++;
        else
            log_msg(NDF_LOG_WARN, "pattern '%s': cannot page out its learning state: %s", p->name,
                    err_msg());
    }
    pthread_rwlock_unlock(&r->lock);
    return count;
}

void registry_record(registry *r, pattern *p, int success, const char *domain,
                     double duration_s)
{
    if (!r->opts.enable_learning)
        return;
    pattern_record(p, &r->opts.learning, success, domain);
    if (duration_s >= 0)
        pattern_record_duration(p, duration_s);
    pthread_rwlock_rdlock(&r->lock);
    entry *e = hashmap_get(r->names, p->name);
    if (e && e->p == p) {
        pthread_mutex_lock(&r->lru_lock);
        lru_front(r, e);
        pthread_mutex_unlock(&r->lru_lock);
        evict_over(r);
    }
    pthread_rwlock_unlock(&r->lock);
}
