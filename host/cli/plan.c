/* The plan of a pattern (see plan.h): a JSON tree built from the pattern's
 * validated parameters, the type's schema and the executor's timeout rule,
 * and its printing as an indented tree. */
#include "build-config.h"

#include <cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/plan.h"
#include "exec/executor.h"
#include "exec/services.h"
#include "model/pattern.h"
#include "model/registry.h"
#include "plugin/loader.h"
#include "base/util.h"
#include "base/value.h"

typedef struct planner {
    runtime *rt;
    const ndf_context *ctx;
    executor_opts eo;
    cJSON *errors;
    const char *stack[EXECUTOR_MAX_NESTING];
    int depth;
} planner;

const char *plan_seconds(char *buf, size_t size, double s)
{
    if (!isfinite(s))
        snprintf(buf, size, "none");
    else
        snprintf(buf, size, "%g s", s);
    return buf;
}

static void add_num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static char *where_of(const ndf_value *v)
{
    if (!v || !v->file)
        return xstrdup("?");
    return xasprintf("%s:%d", v->file, v->line);
}

/* Records problem `msg` about `v` (its file:line) in the plan's list and in
 * `node`'s own. */
static void plan_error(planner *pl, cJSON *node, const ndf_value *v, const char *msg)
{
    char *w = where_of(v);
    char *text = xasprintf("%s: %s", w, msg);
    cJSON *own = cJSON_GetObjectItemCaseSensitive(node, "errors");
    if (!own)
        own = cJSON_AddArrayToObject(node, "errors");
    cJSON_AddItemToArray(own, cJSON_CreateString(text));
    cJSON_AddItemToArray(pl->errors, cJSON_CreateString(text));
    free(text);
    free(w);
}

/* `v` as JSON; strings expanded in the planner's context when `expand`
 * (an unresolvable one is kept as written and reported on `node`). */
static cJSON *value_json(planner *pl, cJSON *node, const ndf_value *v, int expand, const char *what)
{
    switch (v->type) {
    case NDF_VALUE_STRING: {
        const char *s = value_string(v);
        if (!expand || !strchr(s, '$'))
            return cJSON_CreateString(s);
        char *x;
        if (svc_expand_ctx(pl->ctx, NULL, s, &x) != NDF_OK) {
            char *m = xasprintf("%s: %s", what, err_msg());
            plan_error(pl, node, v, m);
            free(m);
            return cJSON_CreateString(s);
        }
        cJSON *j = cJSON_CreateString(x);
        free(x);
        return j;
    }
    case NDF_VALUE_INT: return cJSON_CreateNumber((double)value_int(v));
    case NDF_VALUE_NUMBER: return cJSON_CreateNumber(value_number(v));
    case NDF_VALUE_BOOL: return cJSON_CreateBool(value_bool(v));
    case NDF_VALUE_LIST: {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < value_count(v); i++)
            cJSON_AddItemToArray(a, value_json(pl, node, value_at(v, i), expand, what));
        return a;
    }
    case NDF_VALUE_GROUP: {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < value_count(v); i++) {
            const ndf_value *m = value_at(v, i);
            cJSON_AddItemToObject(o, m->name ? m->name : "?",
                                  value_json(pl, node, m, expand, what));
        }
        return o;
    }
    default: return cJSON_CreateNull();
    }
}

static const ndf_param_spec *spec_find(const ndf_param_spec *s, const char *name)
{
    for (; s && s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static int is_num(const ndf_value *v)
{
    return v && (v->type == NDF_VALUE_INT || v->type == NDF_VALUE_NUMBER);
}

static cJSON *plan_pattern_named(planner *pl, const char *name, const ndf_value *where,
                                 double enclosing, double requested);

/* A step entry `e` (its `step` names a loaded step type `st`). */
static cJSON *plan_step(planner *pl, const char *pname, const ndf_value *e, const provided *st,
                        double enclosing)
{
    cJSON *n = cJSON_CreateObject();
    const char *name = value_string(value_get(e, "name"));
    cJSON_AddStringToObject(n, "kind", "step");
    cJSON_AddStringToObject(n, "name", name ? name : "?");
    cJSON_AddStringToObject(n, "step", st->name);
    char *w = where_of(e);
    cJSON_AddStringToObject(n, "defined_at", w);
    free(w);

    const ndf_value *v;
    if ((v = value_get(e, "depends_on")) && v->type == NDF_VALUE_LIST)
        cJSON_AddItemToObject(n, "depends_on", value_json(pl, n, v, 0, NULL));
    if ((v = value_get(e, "retries")) && is_num(v))
        cJSON_AddNumberToObject(n, "retries", value_number(v));

    double own = (v = value_get(e, "timeout")) && is_num(v) && value_number(v) > 0 ? value_number(v)
                                                                                   : INFINITY;
    cJSON *t = cJSON_AddObjectToObject(n, "timeout");
    add_num_or_null(t, "seconds", own);
    double eff = fmin(own, enclosing);
    add_num_or_null(t, "effective", eff);
    cJSON_AddStringToObject(t, "source",
                            !isfinite(eff)     ? "none"
                            : own <= enclosing ? "step timeout"
                                               : "the pattern's deadline");

    const ndf_value *cpu = value_get(e, "cpu"), *mem = value_get(e, "memory");
    if (is_num(cpu) || is_num(mem)) {
        cJSON *r = cJSON_AddObjectToObject(n, "resources");
        if (is_num(cpu))
            cJSON_AddNumberToObject(r, "cpu", value_number(cpu));
        if (is_num(mem))
            cJSON_AddNumberToObject(r, "memory", value_number(mem));
    }

    char what[256];
    snprintf(what, sizeof what, "pattern '%s', step '%s'", pname, name ? name : "?");
    const ndf_value *params = value_get(e, "params");
    cJSON *pj = params ? value_json(pl, n, params, 1, what) : cJSON_CreateObject();
    cJSON *undo = cJSON_DetachItemFromObjectCaseSensitive(pj, "undo");
    cJSON_AddItemToObject(n, "params", pj);
    if (undo)
        cJSON_AddItemToObject(n, "rollback", undo);
    else
        /* A type whose schema takes an `undo` parameter undoes nothing
         * without one; a type with an undo and no such parameter has its
         * own (the `pattern` step rolls its sub-pattern back). */
        cJSON_AddStringToObject(
            n, "rollback",
            st->def.step->size >= offsetof(ndf_step_def, undo) + sizeof st->def.step->undo &&
                    st->def.step->undo && !spec_find(st->def.step->params, "undo")
                ? "(the step type's own undo)"
                : "none");

    /* A step that runs a pattern (the core `pattern` step and its kind). */
    const ndf_value *sub = params ? value_get(params, "pattern") : NULL;
    pattern *sp;
    if (sub && sub->type == NDF_VALUE_STRING &&
        registry_get(pl->rt->reg, value_string(sub), &sp) == NDF_OK) {
        pattern_unref(sp);
        cJSON *kids = cJSON_AddArrayToObject(n, "children");
        cJSON_AddItemToArray(kids, plan_pattern_named(pl, value_string(sub), sub, eff, 0));
    }
    return n;
}

/* A phase entry `e`: its `patterns`, run with what is left of `enclosing`. */
static cJSON *plan_phase(planner *pl, const ndf_value *e, double enclosing)
{
    cJSON *n = cJSON_CreateObject();
    const char *name = value_string(value_get(e, "name"));
    cJSON_AddStringToObject(n, "kind", "phase");
    cJSON_AddStringToObject(n, "name", name ? name : "?");
    char *w = where_of(e);
    cJSON_AddStringToObject(n, "defined_at", w);
    free(w);
    const char *coord = value_string(value_get(e, "coordination"));
    cJSON_AddStringToObject(n, "coordination", coord ? coord : "sequential");
    for (size_t i = 0; i < value_count(e); i++) {
        const ndf_value *m = value_at(e, i);
        if (m->name && strcmp(m->name, "name") && strcmp(m->name, "patterns") &&
            strcmp(m->name, "coordination"))
            cJSON_AddItemToObject(n, m->name, value_json(pl, n, m, 0, NULL));
    }
    cJSON *kids = cJSON_AddArrayToObject(n, "children");
    const ndf_value *pats = value_get(e, "patterns");
    for (size_t i = 0; i < value_count(pats); i++) {
        const ndf_value *pv = value_at(pats, i);
        if (pv->type == NDF_VALUE_STRING)
            cJSON_AddItemToArray(
                kids, plan_pattern_named(pl, value_string(pv), pv, enclosing, enclosing));
    }
    return n;
}

static cJSON *plan_pattern(planner *pl, pattern *p, double enclosing, double requested, int top)
{
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "kind", "pattern");
    cJSON_AddStringToObject(n, "name", p->name);
    cJSON_AddStringToObject(n, "type", p->type_name);
    if (top && p->description && *p->description)
        cJSON_AddStringToObject(n, "description", p->description);
    if (p->file) {
        char *w = xasprintf("%s:%d", p->file, p->line);
        cJSON_AddStringToObject(n, "defined_at", w);
        free(w);
    }

    timeout_source src;
    int capped;
    /* a sub-pattern's own setting, then what its parent leaves it: the
     * plugin's run_pattern bound is that enclosing deadline */
    double t = executor_timeout(&pl->eo, p, top ? requested : 0, top, &src, &capped);
    double eff = fmin(t, enclosing);
    cJSON *tj = cJSON_AddObjectToObject(n, "timeout");
    add_num_or_null(tj, "seconds", t);
    add_num_or_null(tj, "effective", eff);
    const char *sname = src == TIMEOUT_REQUESTED
                            ? (top ? "--timeout" : "what the enclosing pattern has left")
                            : timeout_source_name(src, p);
    cJSON_AddStringToObject(tj, "source", eff < t ? "the enclosing deadline" : sname);
    if (capped) {
        cJSON_AddBoolToObject(tj, "capped", 1);
        cJSON_AddNumberToObject(tj, "max_timeout", pl->eo.max_timeout);
    }

    if (pl->depth >= EXECUTOR_MAX_NESTING) {
        plan_error(pl, n, p->params, "sub-patterns nested too deep (does a pattern run itself?)");
        return n;
    }
    for (int i = 0; i < pl->depth; i++)
        if (strcmp(pl->stack[i], p->name) == 0) {
            cJSON_AddBoolToObject(n, "cycle", 1);
            return n;
        }
    pl->stack[pl->depth++] = p->name;

    const ndf_param_spec *schema =
        p->type && p->type->def.ptype ? p->type->def.ptype->params : NULL;
    cJSON *set = cJSON_AddObjectToObject(n, "settings");
    cJSON *kids = cJSON_CreateArray();
    const char *order = NULL;
    for (size_t i = 0; i < value_count(p->params); i++) {
        const ndf_value *m = value_at(p->params, i);
        if (!m->name)
            continue;
        int structural = 0;
        if (m->type == NDF_VALUE_LIST && value_count(m) > 0 &&
            value_at(m, 0)->type == NDF_VALUE_GROUP) {
            const ndf_param_spec *ls = spec_find(schema, m->name);
            int dag = ls && spec_find(ls->children, "depends_on");
            for (size_t k = 0; k < value_count(m); k++) {
                const ndf_value *e = value_at(m, k);
                const char *sname2 = value_string(value_get(e, "step"));
                const provided *st = sname2 ? loader_find(pl->rt->ld, PROVIDED_STEP, sname2) : NULL;
                const ndf_value *pats = value_get(e, "patterns");
                cJSON *c = NULL;
                if (st)
                    c = plan_step(pl, p->name, e, st, eff);
                else if (pats && pats->type == NDF_VALUE_LIST)
                    c = plan_phase(pl, e, eff);
                if (c) {
                    cJSON_AddItemToArray(kids, c);
                    structural = 1;
                }
            }
            if (structural && !order)
                order = dag ? "dag" : "chain";
        }
        if (!structural)
            cJSON_AddItemToObject(set, m->name, value_json(pl, n, m, 0, NULL));
    }
    if (order)
        cJSON_AddStringToObject(n, "order", order);
    cJSON_AddItemToObject(n, "children", kids);
    pl->depth--;
    return n;
}

static cJSON *plan_pattern_named(planner *pl, const char *name, const ndf_value *where,
                                 double enclosing, double requested)
{
    pattern *p;
    if (registry_get(pl->rt->reg, name, &p) != NDF_OK) {
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "kind", "pattern");
        cJSON_AddStringToObject(n, "name", name);
        char *m = xasprintf("no pattern named '%s'", name);
        plan_error(pl, n, where, m);
        free(m);
        return n;
    }
    cJSON *n = plan_pattern(pl, p, enclosing, requested, 0);
    pattern_unref(p);
    return n;
}

int plan_missing(const runtime *rt, const char *name)
{
    /* a definition the configuration has, left out of the registry: its
     * own errors were reported when the patterns were built */
    for (size_t i = 0; rt->cfg && i < rt->cfg->npatterns; i++) {
        const ndf_value *n = value_get(rt->cfg->patterns[i], "name");
        if (n && n->type == NDF_VALUE_STRING && strcmp(n->u.s, name) == 0)
            return err_set(NDF_ERR_VALIDATION,
                           "pattern '%s' (%s:%d) did not build: see its errors above", name,
                           n->file ? n->file : "?", n->line);
    }
    return err_set(NDF_ERR_NOT_FOUND, "no pattern named '%s'", name);
}

int plan_build(runtime *rt, const char *name, const ndf_context *ctx, double requested, cJSON **out)
{
    *out = NULL;
    pattern *p;
    if (!rt->reg || registry_get(rt->reg, name, &p) != NDF_OK)
        return plan_missing(rt, name);
    const settings *s = &rt->cfg->set;
    planner pl = {
        .rt = rt,
        .ctx = ctx,
        .eo = {.default_timeout = s->default_timeout,
               .pattern_timeout = s->pattern_timeout,
               .max_timeout = s->max_timeout},
        .errors = cJSON_CreateArray(),
    };
    cJSON *root = plan_pattern(&pl, p, INFINITY, requested, 1);
    pattern_unref(p);
    cJSON *cj = cJSON_AddObjectToObject(root, "context");
    cJSON_AddStringToObject(cj, "domain", ctx->domain);
    cJSON_AddStringToObject(cj, "agent_type", ctx->agent_type);
    cJSON_AddNumberToObject(cj, "priority", ctx->priority);
    int nerr = cJSON_GetArraySize(pl.errors);
    cJSON_AddItemToObject(root, "errors", pl.errors);
    *out = root;
    if (nerr)
        return err_set(NDF_ERR_VALIDATION, "%s", cJSON_GetArrayItem(pl.errors, 0)->valuestring);
    return NDF_OK;
}

/* ---- printing ---- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Prints `text` after `depth` spaces, continuation lines indented too. */
static void print_text(FILE *out, int depth, const char *label, const char *text)
{
    fprintf(out, "%*s%s: ", depth, "", label);
    for (const char *p = text; *p; p++) {
        fputc(*p, out);
        if (*p == '\n' && p[1])
            fprintf(out, "%*s", depth + (int)strlen(label) + 2, "");
    }
    fputc('\n', out);
}

static void print_value(FILE *out, int depth, const char *label, const cJSON *v)
{
    if (cJSON_IsString(v)) {
        print_text(out, depth, label, v->valuestring);
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    print_text(out, depth, label, s ? s : "?");
    cJSON_free(s);
}

static void print_deadline(FILE *out, int depth, const cJSON *n)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "timeout");
    if (!t)
        return;
    const cJSON *eff = cJSON_GetObjectItemCaseSensitive(t, "effective");
    const cJSON *own = cJSON_GetObjectItemCaseSensitive(t, "seconds");
    char a[32], b[32];
    fprintf(out, "%*sdeadline: %s (%s)", depth, "",
            plan_seconds(a, sizeof a, cJSON_IsNumber(eff) ? eff->valuedouble : INFINITY),
            jstr(t, "source"));
    if (cJSON_IsNumber(own) && cJSON_IsNumber(eff) && own->valuedouble > eff->valuedouble)
        fprintf(out, "; its own %s does not apply", plan_seconds(b, sizeof b, own->valuedouble));
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(t, "max_timeout");
    if (cJSON_IsNumber(mt))
        fprintf(out, "; capped by executor.max_timeout (%g s)", mt->valuedouble);
    fputc('\n', out);
}

static void print_node(FILE *out, const cJSON *n, int depth)
{
    const char *kind = jstr(n, "kind");
    const char *name = jstr(n, "name");
    const cJSON *v;
    int in = depth + 2;
    if (kind && strcmp(kind, "pattern") == 0) {
        fprintf(out, "%*spattern %s", depth, "", name);
        if (jstr(n, "type"))
            fprintf(out, " (%s)", jstr(n, "type"));
        if (jstr(n, "description"))
            fprintf(out, ": %s", jstr(n, "description"));
        fputc('\n', out);
        if (jstr(n, "defined_at"))
            fprintf(out, "%*sdefined at %s\n", in, "", jstr(n, "defined_at"));
        print_deadline(out, in, n);
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(n, "settings");
        cJSON_ArrayForEach(v, set) print_value(out, in, v->string, v);
        const char *order = jstr(n, "order");
        if (order)
            fprintf(out, "%*sorder: %s\n", in, "",
                    strcmp(order, "dag") == 0 ? "concurrent, each after what it depends on"
                                              : "one after another");
        if ((v = cJSON_GetObjectItemCaseSensitive(n, "cycle")) && cJSON_IsTrue(v))
            fprintf(out, "%*s(runs itself: not expanded again)\n", in, "");
    } else if (kind && strcmp(kind, "step") == 0) {
        fprintf(out, "%*sstep %s (%s)", depth, "", name, jstr(n, "step"));
        const cJSON *deps = cJSON_GetObjectItemCaseSensitive(n, "depends_on");
        if (cJSON_GetArraySize(deps) > 0) {
            fputs(" after", out);
            const char *sep = " ";
            cJSON_ArrayForEach(v, deps)
            {
                fprintf(out, "%s%s", sep, cJSON_IsString(v) ? v->valuestring : "?");
                sep = ", ";
            }
        }
        fputc('\n', out);
        print_deadline(out, in, n);
        if ((v = cJSON_GetObjectItemCaseSensitive(n, "retries")) && v->valuedouble > 0)
            fprintf(out, "%*sretries: %g\n", in, "", v->valuedouble);
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(n, "resources");
        if (res) {
            fprintf(out, "%*sresources:", in, "");
            cJSON_ArrayForEach(v, res) fprintf(out, " %s %g", v->string, v->valuedouble);
            fputc('\n', out);
        }
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(n, "params");
        cJSON_ArrayForEach(v, params) print_value(out, in, v->string, v);
        print_value(out, in, "rollback", cJSON_GetObjectItemCaseSensitive(n, "rollback"));
    } else if (kind && strcmp(kind, "phase") == 0) {
        fprintf(out, "%*sphase %s (%s)\n", depth, "", name, jstr(n, "coordination"));
        cJSON_ArrayForEach(v, n)
        {
            if (strcmp(v->string, "kind") && strcmp(v->string, "name") &&
                strcmp(v->string, "coordination") && strcmp(v->string, "children") &&
                strcmp(v->string, "defined_at") && strcmp(v->string, "errors"))
                print_value(out, in, v->string, v);
        }
    }
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(n, "errors");
    if (depth > 0) /* the root's list is all of them, printed at the end */
        cJSON_ArrayForEach(v, errs) print_text(out, in, "ERROR", v->valuestring);
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(n, "children");
    cJSON_ArrayForEach(v, kids) print_node(out, v, depth + 2);
}

void plan_print(FILE *out, const cJSON *plan)
{
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(plan, "context");
    const char *d = jstr(ctx, "domain"), *a = jstr(ctx, "agent_type");
    fprintf(out, "plan for context: domain %s, agent type %s\n", d && *d ? d : "(none)",
            a && *a ? a : "(none)");
    print_node(out, plan, 0);
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(plan, "errors");
    int n = cJSON_GetArraySize(errs);
    const cJSON *v;
    cJSON_ArrayForEach(v, errs) print_text(out, 0, "ERROR", v->valuestring);
    if (n)
        fprintf(out, "%d unresolved problem%s: 'ndf run' would refuse to start it\n", n,
                n == 1 ? "" : "s");
}
