/* The agents section of ndf.conf: checking it, and resolving a step's
 * agent into its parameters at build time (see agents.h for why this way). */
#include "build-config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "conf/agents.h"

/* The keys an agent may set, with the type each must have.  agent_types is
 * the agent's own (which context agent types it serves); the others are
 * handed to the step as parameters of the same name. */
static const struct agent_key {
    const char *name;
    ndf_value_type type; /* NUMBER accepts INT too */
} agent_keys[] = {
    {"argv", NDF_VALUE_LIST},      {"env", NDF_VALUE_GROUP},        {"cwd", NDF_VALUE_STRING},
    {"timeout", NDF_VALUE_NUMBER}, {"output_limit", NDF_VALUE_INT}, {"format", NDF_VALUE_STRING},
    {"result", NDF_VALUE_STRING},  {"usage", NDF_VALUE_STRING},     {"agent_types", NDF_VALUE_LIST},
    {NULL, NDF_VALUE_NONE},
};

static const char *type_phrase(ndf_value_type t)
{
    switch (t) {
    case NDF_VALUE_STRING: return "a string";
    case NDF_VALUE_INT: return "an integer";
    case NDF_VALUE_NUMBER: return "a number";
    case NDF_VALUE_BOOL: return "a bool";
    case NDF_VALUE_LIST: return "a list";
    case NDF_VALUE_GROUP: return "a group";
    default: return "nothing";
    }
}

static void say(agents_report_fn report, void *arg, const ndf_value *at, const char *fmt, ...)
    ATTR_PRINTF(4, 5);

static void say(agents_report_fn report, void *arg, const ndf_value *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    report(arg, at ? at->file : NULL, at ? at->line : 0, msg);
    free(msg);
}

static int env_name_ok(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* Checks one member of agent `an`; returns the problems found. */
static size_t check_key(const ndf_value *m, const char *an, agents_report_fn report, void *arg)
{
    const struct agent_key *k = agent_keys;
    while (k->name && strcmp(k->name, m->name) != 0)
        k++;
    if (!k->name) {
        strbuf sb = {0};
        for (const struct agent_key *q = agent_keys; q->name; q++)
            sb_printf(&sb, "%s%s", q == agent_keys ? "" : ", ", q->name);
        say(report, arg, m, "agent '%s': unknown key '%s' (an agent sets %s)", an, m->name, sb.buf);
        sb_free(&sb);
        return 1;
    }
    int ok = m->type == k->type || (k->type == NDF_VALUE_NUMBER && m->type == NDF_VALUE_INT);
    if (!ok) {
        say(report, arg, m, "agent '%s': '%s' must be %s, not %s", an, m->name,
            type_phrase(k->type), type_phrase(m->type));
        return 1;
    }
    size_t bad = 0;
    if (strcmp(k->name, "argv") == 0) {
        if (!value_count(m)) {
            say(report, arg, m, "agent '%s': 'argv' is empty (the program, then its arguments)",
                an);
            return 1;
        }
        for (size_t i = 0; i < value_count(m); i++) {
            const ndf_value *e = value_at(m, i);
            if (e->type != NDF_VALUE_STRING) {
                say(report, arg, e, "agent '%s': 'argv[%zu]' must be a string, not %s", an, i,
                    type_phrase(e->type));
                bad++;
            } else if (i == 0 && !*e->u.s) {
                say(report, arg, e, "agent '%s': 'argv[0]' (the program) is empty", an);
                bad++;
            }
        }
    } else if (strcmp(k->name, "env") == 0) {
        for (size_t i = 0; i < value_count(m); i++) {
            const ndf_value *e = value_at(m, i);
            if (!env_name_ok(e->name)) {
                say(report, arg, e, "agent '%s': 'env.%s' is not a valid environment name", an,
                    e->name);
                bad++;
            } else if (e->type != NDF_VALUE_STRING) {
                say(report, arg, e, "agent '%s': 'env.%s' must be a string, not %s", an, e->name,
                    type_phrase(e->type));
                bad++;
            }
        }
    } else if (strcmp(k->name, "timeout") == 0) {
        double t = value_number(m);
        if (!(t >= 0 && t <= 1e9)) {
            say(report, arg, m, "agent '%s': 'timeout' is %g, out of range [0, 1000000000]", an, t);
            bad++;
        }
    } else if (strcmp(k->name, "output_limit") == 0) {
        int64_t n = value_int(m);
        if (n < 1 || n > 67108864) {
            say(report, arg, m, "agent '%s': 'output_limit' is %lld, out of range [1, 67108864]",
                an, (long long)n);
            bad++;
        }
    } else if (strcmp(k->name, "format") == 0) {
        if (strcmp(m->u.s, "text") != 0 && strcmp(m->u.s, "json") != 0) {
            say(report, arg, m, "agent '%s': unknown format '%s' (text or json)", an, m->u.s);
            bad++;
        }
    } else if (strcmp(k->name, "agent_types") == 0) {
        for (size_t i = 0; i < value_count(m); i++) {
            const ndf_value *e = value_at(m, i);
            if (e->type != NDF_VALUE_STRING || !name_valid(e->u.s)) {
                say(report, arg, e,
                    "agent '%s': 'agent_types[%zu]' must be an agent type name (A-Z a-z 0-9 _ . "
                    "-, no pattern characters)",
                    an, i);
                bad++;
            }
        }
    }
    return bad;
}

size_t agents_check(const ndf_value *agents, agents_report_fn report, void *arg)
{
    if (!agents)
        return 0;
    size_t bad = 0;
    for (size_t a = 0; a < value_count(agents); a++) {
        const ndf_value *ag = value_at(agents, a);
        if (!name_valid(ag->name)) {
            say(report, arg, ag,
                "agents: invalid agent name '%s' (use A-Z a-z 0-9 _ . -, 1 to 128 characters, "
                "no leading dot)",
                ag->name);
            bad++;
            continue;
        }
        if (ag->type != NDF_VALUE_GROUP) {
            say(report, arg, ag, "agent '%s' must be a group { argv = [...]; ... }, not %s",
                ag->name, type_phrase(ag->type));
            bad++;
            continue;
        }
        if (!value_get(ag, "argv")) {
            say(report, arg, ag, "agent '%s' has no 'argv' (the program and its arguments)",
                ag->name);
            bad++;
        }
        for (size_t i = 0; i < value_count(ag); i++)
            bad += check_key(value_at(ag, i), ag->name, report, arg);
        /* an agent type served twice would make the choice depend on order */
        const ndf_value *types = value_get(ag, "agent_types");
        for (size_t i = 0; types && types->type == NDF_VALUE_LIST && i < value_count(types); i++) {
            const char *t = value_string(value_at(types, i));
            if (!t)
                continue;
            for (size_t b = 0; b <= a; b++) {
                const ndf_value *other = value_at(agents, b);
                const ndf_value *ot = value_get(other, "agent_types");
                size_t upto = b == a ? i : value_count(ot);
                for (size_t j = 0; ot && ot->type == NDF_VALUE_LIST && j < upto; j++) {
                    const char *u = value_string(value_at(ot, j));
                    if (u && strcmp(t, u) == 0) {
                        say(report, arg, value_at(types, i),
                            "agent '%s': agent type '%s' is already served by agent '%s' "
                            "(%s:%d)",
                            ag->name, t, other->name,
                            value_at(ot, j)->file ? value_at(ot, j)->file : "?",
                            value_at(ot, j)->line);
                        bad++;
                        b = a + 1; /* reported once */
                        break;
                    }
                }
            }
        }
    }
    return bad;
}

/* ---- the build's scope ---- */

static _Thread_local const ndf_value *scope_agents;
static _Thread_local size_t scope_mapped;

const ndf_value *agents_scope_enter(const ndf_value *agents)
{
    const ndf_value *prev = scope_agents;
    scope_agents = agents;
    return prev;
}

void agents_scope_leave(const ndf_value *prev)
{
    scope_agents = prev;
}

const ndf_value *agents_scope(void)
{
    return scope_agents;
}

size_t agents_scope_take_mapped(void)
{
    size_t n = scope_mapped;
    scope_mapped = 0;
    return n;
}

/* The agent that serves `type`, or NULL. */
static const ndf_value *serving(const char *type)
{
    for (size_t a = 0; a < value_count(scope_agents); a++) {
        const ndf_value *types = value_get(value_at(scope_agents, a), "agent_types");
        for (size_t i = 0; i < value_count(types); i++) {
            const char *t = value_string(value_at(types, i));
            if (t && strcmp(t, type) == 0)
                return value_at(scope_agents, a);
        }
    }
    return NULL;
}

int agents_serves(const char *type)
{
    if (strpbrk(type, "*?")) {
        /* a pattern's glob: served when some agent type matches it */
        for (size_t a = 0; a < value_count(scope_agents); a++) {
            const ndf_value *types = value_get(value_at(scope_agents, a), "agent_types");
            for (size_t i = 0; i < value_count(types); i++) {
                const char *t = value_string(value_at(types, i));
                if (t && glob_match(type, t))
                    return 1;
            }
        }
        return 0;
    }
    return serving(type) != NULL;
}

static const ndf_param_spec *spec_find(const ndf_param_spec *schema, const char *name)
{
    for (const ndf_param_spec *p = schema; p && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* Fills what `params` leaves out from agent `ag`, for the keys `schema`
 * declares; an env group is merged member by member, the step's winning.
 * The copies keep their ndf.conf file:line, so a bad value is reported
 * where it was written. */
static void merge(ndf_value *params, const ndf_value *ag, const ndf_param_spec *schema)
{
    for (size_t i = 0; i < value_count(ag); i++) {
        const ndf_value *m = value_at(ag, i);
        if (strcmp(m->name, "agent_types") == 0 || !spec_find(schema, m->name))
            continue;
        ndf_value *have = value_get(params, m->name);
        if (!have) {
            value_append(params, value_dup(m));
        } else if (have->type == NDF_VALUE_GROUP && m->type == NDF_VALUE_GROUP) {
            for (size_t j = 0; j < value_count(m); j++) {
                const ndf_value *e = value_at(m, j);
                if (!value_get(have, e->name))
                    value_append(have, value_dup(e));
            }
        }
    }
}

/* The configured agents' names, for a message. */
static char *agent_names(void)
{
    strbuf sb = {0};
    for (size_t a = 0; a < value_count(scope_agents); a++)
        sb_printf(&sb, "%s%s", a ? ", " : "", value_at(scope_agents, a)->name);
    return sb.buf ? sb_steal(&sb) : xstrdup("");
}

static int fail_at(const ndf_value *at, const char *fmt, ...) ATTR_PRINTF(2, 3);

static int fail_at(const ndf_value *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (at && at->file)
        err_set(NDF_ERR_VALIDATION, "%s:%d: %s", at->file, at->line, msg);
    else
        err_set(NDF_ERR_VALIDATION, "%s", msg);
    free(msg);
    return NDF_ERR_VALIDATION;
}

int agents_apply(ndf_value *params, const ndf_param_spec *schema, const char *what)
{
    const ndf_param_spec *as = spec_find(schema, "agent");
    if (!as || as->type != NDF_VALUE_STRING || !params || params->type != NDF_VALUE_GROUP)
        return NDF_OK;
    const ndf_value *name = value_get(params, "agent");
    const ndf_param_spec *ts = spec_find(schema, "agent_types");
    if (ts && value_get(params, "agent_types"))
        return fail_at(value_get(params, "agent_types"),
                       "%s: 'agent_types' is filled in from ndf.conf's agents; a step does not "
                       "set it (name an agent with 'agent', or set 'argv')",
                       what);
    if (name) {
        if (name->type != NDF_VALUE_STRING)
            return NDF_OK; /* the schema check says what is wrong */
        const ndf_value *ag = value_get(scope_agents, name->u.s);
        if (!ag || ag->type != NDF_VALUE_GROUP) {
            char *names = agent_names();
            int rc =
                fail_at(name, "%s: unknown agent '%s' (%s%s)", what, name->u.s,
                        *names ? "configured: " : "ndf.conf's agents section defines none", names);
            free(names);
            return rc;
        }
        merge(params, ag, schema);
        return NDF_OK;
    }
    if (value_get(params, "argv") || !ts || ts->type != NDF_VALUE_GROUP)
        return NDF_OK;
    /* No agent named and no program: one complete parameter set per agent
     * type, each checked against the schema like the step's own. */
    ndf_value *map = value_new_group("agent_types");
    value_set_pos(map, params->file, params->line);
    for (size_t a = 0; a < value_count(scope_agents); a++) {
        const ndf_value *ag = value_at(scope_agents, a);
        const ndf_value *types = value_get(ag, "agent_types");
        for (size_t i = 0; i < value_count(types); i++) {
            const char *t = value_string(value_at(types, i));
            if (!t)
                continue;
            ndf_value *v = value_dup(params);
            free(v->name);
            v->name = xstrdup(t);
            ndf_value *an = value_new_string("agent", ag->name);
            value_set_pos(an, ag->file, ag->line);
            value_append(v, an);
            merge(v, ag, schema);
            char *vwhat = xasprintf("%s (agent '%s' for agent type '%s')", what, ag->name, t);
            int rc = value_validate(v, schema, vwhat);
            free(vwhat);
            if (rc) {
                value_free(v);
                value_free(map);
                return rc;
            }
            value_append(map, v);
        }
    }
    if (!value_count(map)) {
        value_free(map);
        return fail_at(params,
                       "%s: no agent to run: set 'agent' (an agent of ndf.conf), or 'argv'; or "
                       "give an agent in ndf.conf 'agent_types' to choose it by the context's "
                       "agent type",
                       what);
    }
    value_append(params, map);
    scope_mapped++;
    return NDF_OK;
}
