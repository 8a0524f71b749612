/* The generic half of the seed's DelegationPattern: building a pattern from
 * its definition (generic keys checked here, the type's parameters by its
 * schema and its create()), reference counting, learning under a per-pattern
 * lock, and matching a context. */
#include "build-config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "plugin/loader.h"
#include "model/pattern.h"
#include "base/util.h"

/* Type definitions older than the running host are read only up to their
 * size; a member they do not have counts as NULL. */
#define DEF_HAS(def, member)                                                                       \
    ((def)->size >= offsetof(__typeof__(*(def)), member) + sizeof((def)->member))

static pattern *pattern_alloc(const learning_params *lp)
{
    pattern *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    learning_init(&p->learn, lp);
    p->learn.created = now_wall();
    p->resident = 1;
    p->threshold = -1;
    p->gate = -1;
    p->refs = 1;
    return p;
}

pattern *pattern_new(const char *name, const learning_params *lp)
{
    pattern *p = pattern_alloc(lp);
    p->name = xstrdup(name);
    p->type_name = xstrdup("");
    p->description = xstrdup("");
    p->attributes = value_new_group("attributes");
    return p;
}

static void push_str(char ***arr, size_t *n, const char *s)
{
    *arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[(*n)++] = xstrdup(s);
}

void pattern_add_domain(pattern *p, const char *glob)
{
    push_str(&p->domains, &p->ndomains, glob);
}

void pattern_add_agent_type(pattern *p, const char *glob)
{
    push_str(&p->agent_types, &p->nagent_types, glob);
}

static void free_strs(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

static void pattern_destroy(pattern *p)
{
    if (p->instance && p->type)
        p->type->def.ptype->destroy(p->host, p->instance);
    loader_unpin(p->type); /* the type's code may be unloaded from here on */
    free(p->name);
    free(p->type_name);
    free(p->description);
    free_strs(p->domains, p->ndomains);
    free_strs(p->agent_types, p->nagent_types);
    free_strs(p->tags, p->ntags);
    /* `attributes` is a member of `def` when built from a definition. */
    if (!p->def || !p->attributes || p->attributes != value_get(p->def, "attributes"))
        value_free(p->attributes);
    value_free(p->def);
    learning_free(&p->learn);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

pattern *pattern_ref(pattern *p)
{
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void pattern_unref(pattern *p)
{
    if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
        pattern_destroy(p);
}

/* ---- building from a definition ---- */

static int bad(const ndf_value *at, const char *fmt, ...) ATTR_PRINTF(2, 3);

static int bad(const ndf_value *at, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at && at->file)
        return err_set(NDF_ERR_VALIDATION, "%s:%d: %s", at->file, at->line, msg);
    return err_set(NDF_ERR_VALIDATION, "%s", msg);
}

/* A LIST of non-empty strings into a new array. */
static int str_list(const ndf_value *v, const char *pname, const char *key, char ***out, size_t *n)
{
    if (v->type != NDF_VALUE_LIST)
        return bad(v, "pattern '%s': '%s' must be a list of strings, not a %s", pname, key,
                   value_type_name(v->type));
    for (size_t i = 0; i < value_count(v); i++) {
        const ndf_value *e = value_at(v, i);
        if (e->type != NDF_VALUE_STRING || !*e->u.s)
            return bad(e->line ? e : v, "pattern '%s': '%s' element %zu must be a non-empty string",
                       pname, key, i + 1);
    }
    for (size_t i = 0; i < value_count(v); i++)
        push_str(out, n, value_at(v, i)->u.s);
    return NDF_OK;
}

/* "a, b, c": the loaded pattern types, sorted, for the unknown-type error. */
static char *loaded_types(const loader *ld)
{
    const char **names = NULL;
    size_t n = 0;
    for (size_t i = 0; ld && i < loader_count(ld); i++) {
        plugin_info info;
        loader_plugin(ld, i, &info);
        if (!info.loaded)
            continue;
        for (size_t j = 0; j < info.nprovides; j++) {
            if (info.provides[j]->kind != PROVIDED_PATTERN_TYPE)
                continue;
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = info.provides[j]->name;
        }
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < n; i++)
        sb_printf(&sb, "%s%s", i ? ", " : "", names[i]);
    if (!n)
        sb_puts(&sb, ld ? "none" : "none: no plugins loaded");
    free(names);
    return sb_steal(&sb);
}

static const char *const generic_keys[] = {
    "name",       "type", "description",          "domains", "agent_types",
    "attributes", "tags", "confidence_threshold", "confidence_gate", "timeout", "params",
};

static int is_generic(const char *k)
{
    for (size_t i = 0; i < ARRAY_SIZE(generic_keys); i++)
        if (strcmp(k, generic_keys[i]) == 0)
            return 1;
    return 0;
}

static int check_attributes(const ndf_value *v, const char *pname)
{
    if (v->type != NDF_VALUE_GROUP)
        return bad(v, "pattern '%s': 'attributes' must be a group, not a %s", pname,
                   value_type_name(v->type));
    for (size_t i = 0; i < value_count(v); i++) {
        const ndf_value *a = value_at(v, i);
        if (a->type == NDF_VALUE_GROUP)
            return bad(a->line ? a : v,
                       "pattern '%s': attribute '%s' must be a string, number, bool or list", pname,
                       a->name ? a->name : "?");
        for (size_t j = 0; a->type == NDF_VALUE_LIST && j < value_count(a); j++) {
            ndf_value_type t = value_at(a, j)->type;
            if (t == NDF_VALUE_LIST || t == NDF_VALUE_GROUP)
                return bad(a->line ? a : v,
                           "pattern '%s': attribute '%s': list elements must be scalars", pname,
                           a->name ? a->name : "?");
        }
    }
    return NDF_OK;
}

static int is_number(const ndf_value *v)
{
    return v->type == NDF_VALUE_INT || v->type == NDF_VALUE_NUMBER;
}

/* The generic keys, into `p`. */
static int build_generic(pattern *p, ndf_value *def)
{
    const ndf_value *v = value_get(def, "name");
    if (!v)
        return bad(def, "pattern has no 'name'");
    if (v->type != NDF_VALUE_STRING)
        return bad(v, "pattern 'name' must be a string, not a %s", value_type_name(v->type));
    if (!name_valid(v->u.s))
        return bad(v,
                   "invalid pattern name '%s' (use 1 to 128 of [A-Za-z0-9_.-], not starting "
                   "with '.')",
                   v->u.s);
    p->name = xstrdup(v->u.s);

    v = value_get(def, "type");
    if (!v)
        return bad(def, "pattern '%s' has no 'type'", p->name);
    if (v->type != NDF_VALUE_STRING)
        return bad(v, "pattern '%s': 'type' must be a string, not a %s", p->name,
                   value_type_name(v->type));
    p->type_name = xstrdup(v->u.s);

    v = value_get(def, "description");
    if (v && v->type != NDF_VALUE_STRING)
        return bad(v, "pattern '%s': 'description' must be a string, not a %s", p->name,
                   value_type_name(v->type));
    p->description = xstrdup(v ? v->u.s : "");

    int rc;
    if ((v = value_get(def, "domains")) &&
        (rc = str_list(v, p->name, "domains", &p->domains, &p->ndomains)))
        return rc;
    if ((v = value_get(def, "agent_types")) &&
        (rc = str_list(v, p->name, "agent_types", &p->agent_types, &p->nagent_types)))
        return rc;
    if ((v = value_get(def, "tags")) && (rc = str_list(v, p->name, "tags", &p->tags, &p->ntags)))
        return rc;

    if ((v = value_get(def, "attributes"))) {
        if ((rc = check_attributes(v, p->name)))
            return rc;
        p->attributes = (ndf_value *)v;
    }

    if ((v = value_get(def, "confidence_threshold"))) {
        if (!is_number(v) || value_number(v) < 0 || value_number(v) > 1)
            return bad(v, "pattern '%s': 'confidence_threshold' must be a number from 0 to 1",
                       p->name);
        p->threshold = value_number(v);
    }
    if ((v = value_get(def, "confidence_gate"))) {
        confidence_gate g;
        if (v->type != NDF_VALUE_STRING || confidence_gate_parse(v->u.s, &g) != 0)
            return bad(v, "pattern '%s': 'confidence_gate' must be \"warn\", \"enforce\" or \"off\"",
                       p->name);
        p->gate = (int)g;
    }
    if ((v = value_get(def, "timeout"))) {
        if (!is_number(v) || !(value_number(v) > 0))
            return bad(v, "pattern '%s': 'timeout' must be a number of seconds above 0", p->name);
        p->timeout = value_number(v);
        p->timeout_key = "timeout";
    }

    for (size_t i = 0; i < value_count(def); i++) {
        const ndf_value *m = value_at(def, i);
        if (m->name && !is_generic(m->name))
            log_msg(NDF_LOG_WARN, "%s:%d: pattern '%s': unknown key '%s' (ignored)",
                    m->file ? m->file : "?", m->line ? m->line : def->line, p->name, m->name);
    }
    return NDF_OK;
}

int pattern_build(loader *ld, ndf_value *def, const learning_params *lp, pattern **out)
{
    *out = NULL;
    if (!def || def->type != NDF_VALUE_GROUP) {
        int rc = bad(def, "a pattern definition must be a group");
        value_free(def);
        return rc;
    }
    pattern *p = pattern_alloc(lp);
    p->def = def;
    p->file = def->file;
    p->line = def->line;
    int rc = build_generic(p, def);
    if (rc)
        goto fail;

    const provided *t = ld ? loader_find(ld, PROVIDED_PATTERN_TYPE, p->type_name) : NULL;
    if (!t) {
        char *names = loaded_types(ld);
        const ndf_value *tv = value_get(def, "type");
        rc = bad(tv, "unknown pattern type '%s' (loaded types: %s)", p->type_name, names);
        free(names);
        goto fail;
    }

    ndf_value *params = value_get(def, "params");
    if (!params) {
        params = value_new_group("params");
        value_set_pos(params, def->file, def->line);
        value_append(def, params);
    }
    char what[300];
    snprintf(what, sizeof what, "pattern '%s' (type %s)", p->name, t->name);
    rc = value_validate(params, t->def.ptype->params, what);
    if (rc)
        goto fail;
    p->params = params;
    /* A type's own whole-run budget is how long the pattern says it needs:
     * the executor's default must not cut it short (executor_timeout). */
    const ndf_value *ts = value_get(params, "timeout_seconds");
    if (!p->timeout_key && ts && is_number(ts) && value_number(ts) > 0) {
        p->timeout = value_number(ts);
        p->timeout_key = "params.timeout_seconds";
    }

    err_clear();
    p->host = loader_host(ld);
    /* step_new() calls from create() resolve against this loader */
    loader *prev = loader_scope_enter(ld);
    rc = t->def.ptype->create(p->host, params, &p->instance);
    loader_scope_leave(prev);
    if (rc) {
        if (!*err_msg())
            bad(params, "%s refused its parameters", what);
        rc = rc < 0 ? rc : NDF_ERR_VALIDATION;
        p->instance = NULL;
        goto fail;
    }
    p->type = t;
    loader_pin(t); /* running this pattern needs its type's code */
    if (!p->attributes)
        p->attributes = value_new_group("attributes");
    *out = p;
    return NDF_OK;

fail:
    pattern_destroy(p);
    return rc;
}

/* ---- learning ---- */

void pattern_page_in(pattern *p)
{
    /* Caller holds p->lock. */
    if (p->resident)
        return;
    p->resident = 1;
    if (!p->store || !p->store->load)
        return;
    learning_state st;
    memset(&st, 0, sizeof st);
    int rc = p->store->load(p->store->opaque, p->name, &st);
    if (rc == NDF_OK) {
        learning_free(&p->learn);
        p->learn = st;
    } else if (rc != NDF_ERR_NOT_FOUND) {
        log_msg(NDF_LOG_WARN, "pattern '%s': cannot read its learning state: %s", p->name,
                err_msg());
    }
}

int pattern_page_out(pattern *p)
{
    pthread_mutex_lock(&p->lock);
    int rc = NDF_OK;
    if (p->resident && p->store && p->store->save) {
        rc = p->store->save(p->store->opaque, p->name, &p->learn);
        if (rc == NDF_OK) {
            learning_free(&p->learn);
            p->resident = 0;
        }
    } else if (p->resident) {
        rc = err_set(NDF_ERR_INVALID, "pattern '%s': no store to page out to", p->name);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pattern_record(pattern *p, const learning_params *lp, int success, const char *domain)
{
    pthread_mutex_lock(&p->lock);
    pattern_page_in(p);
    learning_record(&p->learn, lp, success, domain, now_wall());
    pthread_mutex_unlock(&p->lock);
}

void pattern_record_duration(pattern *p, double seconds)
{
    pthread_mutex_lock(&p->lock);
    learning_add_duration(&p->learn, seconds);
    pthread_mutex_unlock(&p->lock);
}

void pattern_reset_stats(pattern *p, const learning_params *lp)
{
    pthread_mutex_lock(&p->lock);
    learning_reset(&p->learn, lp);
    p->resident = 1;
    pthread_mutex_unlock(&p->lock);
}

void pattern_stats(pattern *p, learning_state *out)
{
    pthread_mutex_lock(&p->lock);
    /* Paged out, only the per-domain counts are not in memory, and a
     * pattern that never ran has none: no read (ndf list of 10,000 new
     * patterns made 9,000 empty ones). */
    if (!p->resident && p->store && p->store->load && p->learn.executions > 0) {
        memset(out, 0, sizeof *out);
        if (p->store->load(p->store->opaque, p->name, out) == NDF_OK) {
            pthread_mutex_unlock(&p->lock);
            return;
        }
        learning_free(out);
    }
    learning_copy(out, &p->learn);
    pthread_mutex_unlock(&p->lock);
}

double pattern_score(pattern *p)
{
    pthread_mutex_lock(&p->lock);
    double s = p->learn.score;
    pthread_mutex_unlock(&p->lock);
    return s;
}

void pattern_set_threshold(pattern *p, double threshold)
{
    pthread_mutex_lock(&p->lock);
    p->threshold = threshold < 0 ? -1 : threshold > 1 ? 1 : threshold;
    pthread_mutex_unlock(&p->lock);
}

double pattern_threshold(const pattern *p, double global)
{
    return p->threshold >= 0 ? p->threshold : global;
}

confidence_gate pattern_gate(const pattern *p, confidence_gate global)
{
    return p->gate >= 0 ? (confidence_gate)p->gate : global;
}

/* ---- matching ---- */

int pattern_type_accepts(const pattern *p, const ndf_context *ctx)
{
    if (!ctx || !p->type || !p->instance)
        return 1;
    const ndf_pattern_type_def *d = p->type->def.ptype;
    if (!DEF_HAS(d, matches) || !d->matches)
        return 1;
    err_clear();
    if (d->matches(p->host, p->instance, ctx))
        return 1;
    if (!*err_msg())
        err_set(NDF_ERR_VALIDATION, "its type (%s) does not serve this context", p->type_name);
    return 0;
}

int pattern_matches(const pattern *p, const ndf_context *ctx)
{
    size_t i;
    for (i = 0; i < p->ndomains; i++)
        if (context_glob_match(p->domains[i], ctx->domain))
            break;
    if (p->ndomains && i == p->ndomains)
        return 0;
    for (i = 0; i < p->nagent_types; i++)
        if (context_glob_match(p->agent_types[i], ctx->agent_type))
            break;
    if (p->nagent_types && i == p->nagent_types)
        return 0;
    /* An attribute the context leaves out does not count against the
     * pattern; one it sets to something else does. */
    for (i = 0; i < value_count(p->attributes); i++) {
        const ndf_value *a = value_at(p->attributes, i);
        const ndf_value *have = a->name ? value_get(ctx->attrs, a->name) : NULL;
        if (have && !context_value_matches(have, a))
            return 0;
    }
    if (p->type && p->instance) {
        const ndf_pattern_type_def *d = p->type->def.ptype;
        if (DEF_HAS(d, matches) && d->matches)
            return d->matches(p->host, p->instance, ctx) ? 1 : 0;
    }
    return 1;
}

void pattern_adopt_learning(pattern *to, pattern *from)
{
    learning_state st;
    pattern_stats(from, &st);
    pthread_mutex_lock(&to->lock);
    learning_free(&to->learn);
    to->learn = st;
    pthread_mutex_unlock(&to->lock);
}
