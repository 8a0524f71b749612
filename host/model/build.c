/* The configuration -> registry pipeline shared by `ndf run` and friends
 * and by each generation of `ndf serve`, so a fix lands in both. */
#include "build-config.h"

#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/util.h"
#include "model/build.h"
#include "model/pattern.h"
#include "conf/agents.h"

static void report(const build_opts *o, const char *msg)
{
    if (o->report)
        o->report(o->opaque, msg);
    else
        log_msg(NDF_LOG_WARN, "%s", msg);
}

/* Learning goes on across runs and reloads: from the previous generation's
 * pattern of the same name, else from the store.  A bad stored record is
 * reported by the store and the pattern starts afresh. */
static void carry_learning(const build_opts *o, hashmap *bulk, pattern *p)
{
    pattern *old = NULL;
    if (o->prev && registry_get(o->prev, p->name, &old) == NDF_OK) {
        pattern_adopt_learning(p, old);
        pattern_unref(old);
        return;
    }
    learning_state st;
    memset(&st, 0, sizeof st);
    int rc;
    if (bulk) {
        learning_state *got = hashmap_remove(bulk, p->name);
        if (!got)
            return; /* nothing stored */
        st = *got;
        free(got);
        rc = NDF_OK;
    } else if (!o->store || !o->store->load) {
        return;
    } else {
        rc = o->store->load(o->store->opaque, p->name, &st);
    }
    if (rc == NDF_OK) {
        pthread_mutex_lock(&p->lock);
        learning_free(&p->learn);
        p->learn = st;
        pthread_mutex_unlock(&p->lock);
    } else if (rc != NDF_ERR_NOT_FOUND) {
        log_msg(NDF_LOG_WARN, "%s", err_msg());
    }
}

/* One sub-pattern reference: pattern `from` runs pattern `to` (a `pattern`
 * step, a meta phase), written at file:line. */
typedef struct edge {
    char *from; /* the referring pattern's name */
    char *to;
    const char *file;
    int line;
} edge;

typedef struct edges {
    edge *v;
    size_t n;
} edges;

static int edge_cmp(const void *a, const void *b)
{
    const edge *x = a, *y = b;
    int c = strcmp(x->from, y->from);
    return c ? c : strcmp(x->to, y->to);
}

/* The references the definition just built made, attributed to `from`
 * (NULL: the definition failed and its references are dropped). */
static void take_edges(edges *es, const char *from)
{
    loader_requirement *req;
    size_t nreq;
    loader_take_requirements(&req, &nreq);
    for (size_t i = 0; i < nreq; i++) {
        if (!from) {
            free(req[i].name);
            continue;
        }
        es->v = xrealloc(es->v, (es->n + 1) * sizeof *es->v);
        es->v[es->n++] = (edge){xstrdup(from), req[i].name, req[i].file, req[i].line};
    }
    free(req);
}

static size_t first_edge(const edges *es, const char *name);

/* Every reference must name a registered pattern.  A pattern whose
 * reference is missing (undefined, or left out for a cycle or an error of
 * its own) is reported and left out too, and so on up the chain, so that
 * nothing registered can run a pattern that is not there. */
static size_t check_unknown(const build_opts *o, registry *reg, const edges *es)
{
    size_t errors = 0;
    unsigned char *done = xcalloc(es->n ? es->n : 1, 1);
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < es->n; i++) {
            pattern *p;
            if (done[i] || registry_get(reg, es->v[i].to, &p) == NDF_OK) {
                if (!done[i])
                    pattern_unref(p);
                continue;
            }
            done[i] = 1;
            if (registry_get(reg, es->v[i].from, &p) != NDF_OK)
                continue; /* the referring pattern is gone already */
            pattern_unref(p);
            /* a target with references of its own was defined, and left out */
            size_t t = first_edge(es, es->v[i].to);
            int defined = t < es->n && strcmp(es->v[t].from, es->v[i].to) == 0;
            char *m = xasprintf(
                defined ? "%s:%d: pattern '%s' is left out (see above), so '%s' is too"
                        : "%s:%d: unknown pattern '%s'",
                es->v[i].file ? es->v[i].file : "?", es->v[i].line, es->v[i].to, es->v[i].from);
            report(o, m);
            free(m);
            errors++;
            registry_unregister(reg, es->v[i].from);
            changed = 1;
        }
    }
    free(done);
    return errors;
}

/* The first edge leaving `name` in the sorted list, or es->n. */
static size_t first_edge(const edges *es, const char *name)
{
    size_t lo = 0, hi = es->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(es->v[mid].from, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

enum { WHITE = 0, GREY = 1, BLACK = 2 };

/* Reports the cycle closed by the edge on top of the DFS stack (its target
 * is on the stack): every edge of it with its file:line.  Its patterns are
 * unregistered, so that nothing can run them into unbounded recursion. */
static void report_cycle(const build_opts *o, registry *reg, const edges *es, const size_t *stack,
                         size_t depth)
{
    const edge *back = &es->v[stack[depth - 1]];
    size_t j = depth - 1;
    while (j > 0 && strcmp(es->v[stack[j]].from, back->to) != 0)
        j--;
    strbuf sb = {0};
    sb_printf(&sb, "%s:%d: pattern '%s' runs itself:", back->file ? back->file : "?", back->line,
              back->to);
    for (size_t i = j; i < depth; i++) {
        const edge *e = &es->v[stack[i]];
        sb_printf(&sb, "%s %s -> %s (%s:%d)", i > j ? ";" : "", e->from, e->to,
                  e->file ? e->file : "?", e->line);
    }
    report(o, sb.buf);
    sb_free(&sb);
    for (size_t i = j; i < depth; i++)
        registry_unregister(reg, es->v[stack[i]].from);
}

/* Depth-first search over the reference graph, iterative so that a chain
 * of 100,000 patterns cannot exhaust the stack.  A node is a pattern with
 * references, identified by the index of its first edge in the sorted list;
 * the stack holds the edge being followed at each depth. */
static size_t check_cycles(const build_opts *o, registry *reg, edges *es)
{
    if (!es->n)
        return 0;
    qsort(es->v, es->n, sizeof *es->v, edge_cmp);
    unsigned char *color = xcalloc(es->n, 1);
    size_t *stack = xmalloc(es->n * sizeof *stack);
    size_t errors = 0;
    for (size_t r0 = 0; r0 < es->n; r0++) {
        if (r0 > 0 && strcmp(es->v[r0].from, es->v[r0 - 1].from) == 0)
            continue; /* not a node's first edge */
        if (color[r0] != WHITE)
            continue;
        color[r0] = GREY;
        size_t depth = 0;
        stack[depth++] = r0;
        while (depth) {
            const edge *e = &es->v[stack[depth - 1]];
            size_t t = first_edge(es, e->to);
            int has_out = t < es->n && strcmp(es->v[t].from, e->to) == 0;
            if (has_out && color[t] == WHITE) {
                color[t] = GREY;
                stack[depth++] = t;
                continue;
            }
            if (has_out && color[t] == GREY) {
                report_cycle(o, reg, es, stack, depth);
                errors++;
            }
            /* Advance the top edge; a node whose edges are all followed is
             * done, and so is the parent's edge that led to it. */
            while (depth) {
                size_t cur = stack[depth - 1];
                if (cur + 1 < es->n && strcmp(es->v[cur + 1].from, es->v[cur].from) == 0) {
                    stack[depth - 1] = cur + 1;
                    break;
                }
                color[first_edge(es, es->v[cur].from)] = BLACK;
                depth--;
            }
        }
    }
    free(stack);
    free(color);
    return errors;
}

static void bulk_put(void *arg, const char *name, learning_state *st)
{
    learning_state *copy = xmalloc(sizeof *copy);
    *copy = *st;
    memset(st, 0, sizeof *st);
    learning_state *was = hashmap_put(arg, name, copy);
    if (was) {
        learning_free(was);
        free(was);
    }
}

static void bulk_free(void *v)
{
    learning_free(v);
    free(v);
}

/* From this many definitions on (and with no previous generation to take
 * state from), the whole patterns table is read at once: one query costs
 * less than this many indexed lookups even when the table holds many
 * patterns the configuration no longer defines. */
#define BULK_LOAD_MIN 64

/* The stored learning state of every pattern, by name, or NULL when it is
 * read per pattern instead. */
static hashmap *bulk_load(const build_opts *o, size_t ndefs)
{
    if (o->prev || ndefs < BULK_LOAD_MIN || !o->store || !o->store->load_all)
        return NULL;
    hashmap *m = hashmap_new();
    if (o->store->load_all(o->store->opaque, bulk_put, m) != NDF_OK) {
        /* per pattern, then, which reports what is wrong where */
        log_msg(NDF_LOG_WARN, "%s", err_msg());
        hashmap_free(m, bulk_free);
        return NULL;
    }
    return m;
}

static void free_edges(edges *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->v[i].from);
        free(es->v[i].to);
    }
    free(es->v);
}

/* A pattern with a step that picks its agent by the context's agent type
 * must declare only agent types some agent serves: otherwise delegating
 * it for one of them could only fail.  Returns the problems reported. */
static size_t check_agent_types(const build_opts *o, const pattern *p)
{
    size_t bad = 0;
    const ndf_value *at = value_get(p->def, "agent_types");
    for (size_t i = 0; i < p->nagent_types; i++) {
        if (agents_serves(p->agent_types[i]))
            continue;
        const ndf_value *e = value_at(at, i);
        if (!e)
            e = at ? at : p->def;
        char *m = xasprintf("%s:%d: pattern '%s': agent type '%s' is served by no agent in "
                            "ndf.conf, and its agent step picks its agent by the context's "
                            "agent type (add it to an agent's agent_types, or name an agent)",
                            e->file ? e->file : "?", e->line, p->name, p->agent_types[i]);
        report(o, m);
        free(m);
        bad++;
    }
    return bad;
}

registry *build_registry(const build_opts *o, ndf_value *const *defs, size_t ndefs, size_t *nerrors)
{
    const settings *set = o->set;
    registry_opts ro = {
        .cache_size = (size_t)set->cache_size,
        .enable_learning = set->learning_enabled,
        .learning = set->learning,
        .store = o->store,
    };
    registry *reg = registry_new(&ro);
    size_t errors = 0;
    /* References left by an earlier, abandoned build on this thread are
     * not this build's. */
    loader_requirement *stale;
    size_t nstale;
    loader_take_requirements(&stale, &nstale);
    loader_free_requirements(stale, nstale);
    edges es = {0};
    hashmap *bulk = bulk_load(o, ndefs);
    const ndf_value *prev_agents = agents_scope_enter(set->agents);
    for (size_t i = 0; i < ndefs; i++) {
        pattern *p;
        agents_scope_take_mapped();
        int rc = pattern_build(o->ld, value_dup(defs[i]), &set->learning, &p);
        size_t bad;
        if (rc == NDF_OK && agents_scope_take_mapped() && (bad = check_agent_types(o, p))) {
            errors += bad;
            take_edges(&es, NULL);
            pattern_unref(p);
            continue;
        }
        if (rc == NDF_OK) {
            carry_learning(o, bulk, p);
            rc = registry_register(reg, p);
            take_edges(&es, rc == NDF_OK ? p->name : NULL);
            pattern_unref(p);
        } else {
            take_edges(&es, NULL);
        }
        if (rc) {
            report(o, err_msg());
            errors++;
        }
    }
    agents_scope_leave(prev_agents);
    hashmap_free(bulk, bulk_free);
    errors += check_cycles(o, reg, &es);
    errors += check_unknown(o, reg, &es);
    free_edges(&es);
    *nerrors = errors;
    return reg;
}
