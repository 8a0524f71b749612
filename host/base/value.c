/* The host's value tree: construction, lookup, copying, JSON output, and
 * checking a group of parameters against a plugin's schema. */
#include "build-config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/util.h"
#include "base/value.h"

static ndf_value *value_new(ndf_value_type type, const char *name)
{
    ndf_value *v = xcalloc(1, sizeof *v);
    v->type = type;
    v->name = name ? xstrdup(name) : NULL;
    return v;
}

ndf_value *value_new_string(const char *name, const char *s)
{
    ndf_value *v = value_new(NDF_VALUE_STRING, name);
    v->u.s = xstrdup(s ? s : "");
    return v;
}

ndf_value *value_new_int(const char *name, int64_t i)
{
    ndf_value *v = value_new(NDF_VALUE_INT, name);
    v->u.i = i;
    return v;
}

ndf_value *value_new_number(const char *name, double n)
{
    ndf_value *v = value_new(NDF_VALUE_NUMBER, name);
    v->u.n = n;
    return v;
}

ndf_value *value_new_bool(const char *name, int b)
{
    ndf_value *v = value_new(NDF_VALUE_BOOL, name);
    v->u.b = b != 0;
    return v;
}

ndf_value *value_new_list(const char *name)
{
    return value_new(NDF_VALUE_LIST, name);
}

ndf_value *value_new_group(const char *name)
{
    return value_new(NDF_VALUE_GROUP, name);
}

static int is_container(const ndf_value *v)
{
    return v && (v->type == NDF_VALUE_LIST || v->type == NDF_VALUE_GROUP);
}

void value_free(ndf_value *v)
{
    if (!v)
        return;
    if (v->type == NDF_VALUE_STRING)
        free(v->u.s);
    else if (is_container(v)) {
        for (size_t i = 0; i < v->u.c.count; i++)
            value_free(v->u.c.items[i]);
        free(v->u.c.items);
    }
    free(v->name);
    free(v);
}

ndf_value *value_dup(const ndf_value *v)
{
    if (!v)
        return NULL;
    ndf_value *d = value_new(v->type, v->name);
    d->file = v->file;
    d->line = v->line;
    switch (v->type) {
    case NDF_VALUE_STRING: d->u.s = xstrdup(v->u.s); break;
    case NDF_VALUE_LIST:
    case NDF_VALUE_GROUP:
        for (size_t i = 0; i < v->u.c.count; i++)
            value_insert(d, d->u.c.count, value_dup(v->u.c.items[i]));
        break;
    default: d->u = v->u; break;
    }
    return d;
}

void value_set_pos(ndf_value *v, const char *file, int line)
{
    v->file = file;
    v->line = line;
}

/* File names are interned so that every value can point at its origin
 * without owning a copy.  This is the one process-wide table in base/, on
 * purpose: values are plain data that are copied freely between
 * configurations, server generations, patterns and plugins (which read the
 * name through the services table and may keep it), so no owner outlives
 * every holder of the pointer but the process.  The set only grows, bounded
 * by the configuration files ever read; the lock makes it safe to read
 * files from several threads. */
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static hashmap *interned;

const char *value_intern_file(const char *path)
{
    if (!path)
        return NULL;
    pthread_mutex_lock(&intern_lock);
    if (!interned)
        interned = hashmap_new();
    const char *p = hashmap_key(interned, path);
    if (!p) {
        hashmap_put(interned, path, NULL);
        p = hashmap_key(interned, path);
    }
    pthread_mutex_unlock(&intern_lock);
    return p;
}

void value_insert(ndf_value *c, size_t pos, ndf_value *child)
{
    if (c->u.c.count == c->u.c.cap) {
        c->u.c.cap = c->u.c.cap ? c->u.c.cap * 2 : 4;
        c->u.c.items = xrealloc(c->u.c.items, c->u.c.cap * sizeof *c->u.c.items);
    }
    if (pos > c->u.c.count)
        pos = c->u.c.count;
    memmove(c->u.c.items + pos + 1, c->u.c.items + pos,
            (c->u.c.count - pos) * sizeof *c->u.c.items);
    c->u.c.items[pos] = child;
    c->u.c.count++;
}

void value_append(ndf_value *c, ndf_value *child)
{
    if (c->type == NDF_VALUE_GROUP && child->name) {
        for (size_t i = 0; i < c->u.c.count; i++)
            if (c->u.c.items[i]->name && strcmp(c->u.c.items[i]->name, child->name) == 0) {
                value_free(c->u.c.items[i]);
                c->u.c.items[i] = child;
                return;
            }
    }
    value_insert(c, c->u.c.count, child);
}

int value_remove(ndf_value *c, size_t i)
{
    if (!is_container(c) || i >= c->u.c.count)
        return -1;
    value_free(c->u.c.items[i]);
    memmove(c->u.c.items + i, c->u.c.items + i + 1, (c->u.c.count - i - 1) * sizeof *c->u.c.items);
    c->u.c.count--;
    return 0;
}

ndf_value *value_get(const ndf_value *g, const char *name)
{
    if (!g || g->type != NDF_VALUE_GROUP || !name)
        return NULL;
    for (size_t i = 0; i < g->u.c.count; i++)
        if (g->u.c.items[i]->name && strcmp(g->u.c.items[i]->name, name) == 0)
            return g->u.c.items[i];
    return NULL;
}

ndf_value *value_at(const ndf_value *v, size_t i)
{
    return is_container(v) && i < v->u.c.count ? v->u.c.items[i] : NULL;
}

size_t value_count(const ndf_value *v)
{
    return is_container(v) ? v->u.c.count : 0;
}

const char *value_string(const ndf_value *v)
{
    return v && v->type == NDF_VALUE_STRING ? v->u.s : NULL;
}

int64_t value_int(const ndf_value *v)
{
    if (!v)
        return 0;
    if (v->type == NDF_VALUE_INT)
        return v->u.i;
    if (v->type == NDF_VALUE_NUMBER && isfinite(v->u.n) && fabs(v->u.n) < 9.2e18)
        return (int64_t)v->u.n;
    return 0;
}

double value_number(const ndf_value *v)
{
    if (!v)
        return 0;
    if (v->type == NDF_VALUE_NUMBER)
        return v->u.n;
    if (v->type == NDF_VALUE_INT)
        return (double)v->u.i;
    return 0;
}

int value_bool(const ndf_value *v)
{
    return v && v->type == NDF_VALUE_BOOL ? v->u.b : 0;
}

int value_equal(const ndf_value *a, const ndf_value *b)
{
    if (!a || !b)
        return a == b;
    if ((a->type == NDF_VALUE_INT || a->type == NDF_VALUE_NUMBER) &&
        (b->type == NDF_VALUE_INT || b->type == NDF_VALUE_NUMBER))
        return value_number(a) == value_number(b);
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case NDF_VALUE_STRING: return strcmp(a->u.s, b->u.s) == 0;
    case NDF_VALUE_BOOL: return a->u.b == b->u.b;
    case NDF_VALUE_LIST:
    case NDF_VALUE_GROUP:
        if (a->u.c.count != b->u.c.count)
            return 0;
        for (size_t i = 0; i < a->u.c.count; i++) {
            const ndf_value *x = a->u.c.items[i], *y = b->u.c.items[i];
            if (a->type == NDF_VALUE_GROUP) {
                y = value_get(b, x->name);
            }
            if (!value_equal(x, y))
                return 0;
        }
        return 1;
    default: return 1;
    }
}

const char *value_type_name(ndf_value_type t)
{
    switch (t) {
    case NDF_VALUE_STRING: return "string";
    case NDF_VALUE_INT: return "integer";
    case NDF_VALUE_NUMBER: return "number";
    case NDF_VALUE_BOOL: return "bool";
    case NDF_VALUE_LIST: return "list";
    case NDF_VALUE_GROUP: return "group";
    case NDF_VALUE_ANY: return "any";
    default: return "none";
    }
}

/* ---- schema validation ---- */

static int type_ok(ndf_value_type want, const ndf_value *v)
{
    if (want == NDF_VALUE_ANY)
        return 1;
    if (want == NDF_VALUE_NUMBER)
        return v->type == NDF_VALUE_NUMBER || v->type == NDF_VALUE_INT;
    return want == v->type;
}

static int fail_at(const ndf_value *at, const ndf_value *parent, int status, const char *fmt, ...)
    ATTR_PRINTF(4, 5);

static int fail_at(const ndf_value *at, const ndf_value *parent, int status, const char *fmt, ...)
{
    const ndf_value *pos = at && at->line ? at : parent;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pos && pos->file)
        return err_set(status, "%s:%d: %s", pos->file, pos->line, msg);
    return err_set(status, "%s", msg);
}

/* A bound or value for a message: whole numbers in full, others %g. */
static const char *range_num(char *buf, size_t n, double x)
{
    if (x == floor(x) && fabs(x) < 1e18)
        snprintf(buf, n, "%.0f", x);
    else
        snprintf(buf, n, "%g", x);
    return buf;
}

/* Where a value sits below the validated group, as a chain of the
 * enclosing names and indexes, printed ("steps[2].name") only for a
 * message: formatting every parameter's path up front was most of the
 * cost of validating 10,000 patterns. */
typedef struct vpath {
    const struct vpath *up;
    const char *name; /* a member's name, or NULL for element `index` of a list */
    size_t index;
} vpath;

/* Writes `p` into buf[n] (truncated as snprintf does); returns the length
 * written. */
static size_t vpath_fmt(const vpath *p, char *buf, size_t n)
{
    if (!p) {
        buf[0] = 0;
        return 0;
    }
    size_t l = vpath_fmt(p->up, buf, n);
    int w = p->name ? snprintf(buf + l, n - l, "%s%s", l ? "." : "", p->name)
                    : snprintf(buf + l, n - l, "[%zu]", p->index);
    if (w < 0)
        return l;
    return (size_t)w < n - l ? l + (size_t)w : n - 1;
}

#define VPATH(var, p)                                                                              \
    char var[512];                                                                                 \
    vpath_fmt(p, var, sizeof var)

static int check_range(const ndf_param_spec *s, const ndf_value *v, const vpath *at,
                       const char *what)
{
    if (!(s->flags & NDF_PARAM_RANGE))
        return NDF_OK;
    double x;
    const char *unit = "";
    if (v->type == NDF_VALUE_STRING) {
        x = (double)strlen(v->u.s);
        unit = " characters";
    } else if (v->type == NDF_VALUE_LIST) {
        x = (double)v->u.c.count;
        unit = " elements";
    } else if (v->type == NDF_VALUE_INT || v->type == NDF_VALUE_NUMBER) {
        x = value_number(v);
    } else {
        return NDF_OK;
    }
    if (x < s->min || x > s->max || isnan(x)) {
        /* integers in full: 67108865 is not "6.71089e+07", nor its range's
         * bound written the same way */
        char bx[32], blo[32], bhi[32];
        VPATH(path, at);
        if (v->type == NDF_VALUE_INT)
            snprintf(bx, sizeof bx, "%lld", (long long)v->u.i);
        else
            range_num(bx, sizeof bx, x);
        return fail_at(v, NULL, NDF_ERR_VALIDATION, "%s: '%s' is %s%s, out of range [%s, %s]",
                       what, path, bx, unit, range_num(blo, sizeof blo, s->min),
                       range_num(bhi, sizeof bhi, s->max));
    }
    return NDF_OK;
}

static int validate_group(ndf_value *g, const ndf_param_spec *schema, unsigned flags,
                          const vpath *at, const char *what);

static int validate_one(ndf_value *v, const ndf_param_spec *s, const vpath *at, const char *what)
{
    if (!type_ok(s->type, v)) {
        VPATH(path, at);
        return fail_at(v, NULL, NDF_ERR_VALIDATION, "%s: '%s' must be %s %s, not %s", what, path,
                       s->type == NDF_VALUE_INT ? "an" : "a", value_type_name(s->type),
                       value_type_name(v->type));
    }
    int rc = check_range(s, v, at, what);
    if (rc)
        return rc;
    if (v->type == NDF_VALUE_GROUP && s->children)
        return validate_group(v, s->children, s->flags, at, what);
    if (v->type == NDF_VALUE_LIST && s->elem_type != NDF_VALUE_NONE) {
        for (size_t i = 0; i < v->u.c.count; i++) {
            ndf_value *e = v->u.c.items[i];
            vpath sub = {at, NULL, i};
            if (!type_ok(s->elem_type, e)) {
                VPATH(path, &sub);
                return fail_at(e, v, NDF_ERR_VALIDATION, "%s: '%s' must be %s %s, not %s", what,
                               path, s->elem_type == NDF_VALUE_INT ? "an" : "a",
                               value_type_name(s->elem_type), value_type_name(e->type));
            }
            if (e->type == NDF_VALUE_GROUP && s->children) {
                rc = validate_group(e, s->children, s->flags, &sub, what);
                if (rc)
                    return rc;
            }
        }
    }
    return NDF_OK;
}

static int validate_group(ndf_value *g, const ndf_param_spec *schema, unsigned flags,
                          const vpath *at, const char *what)
{
    for (const ndf_param_spec *s = schema; s && s->name; s++) {
        vpath here = {at, s->name, 0};
        ndf_value *v = value_get(g, s->name);
        if (!v) {
            if (s->flags & NDF_PARAM_REQUIRED) {
                VPATH(path, &here);
                return fail_at(g, NULL, NDF_ERR_VALIDATION, "%s: missing required parameter '%s'",
                               what, path);
            }
            if (s->def) {
                ndf_value *d = value_parse_default(s->name, s->def, s->type);
                if (!d) {
                    VPATH(path, &here);
                    return err_set(NDF_ERR_INVALID,
                                   "%s: the plugin's default for '%s' (%s) is not a valid %s", what,
                                   path, s->def, value_type_name(s->type));
                }
                value_set_pos(d, g->file, g->line);
                value_append(g, d);
            }
            continue;
        }
        int rc = validate_one(v, s, &here, what);
        if (rc)
            return rc;
    }
    if (flags & NDF_PARAM_OPEN)
        return NDF_OK;
    for (size_t i = 0; i < g->u.c.count; i++) {
        ndf_value *m = g->u.c.items[i];
        const ndf_param_spec *s = schema;
        while (s && s->name && strcmp(s->name, m->name ? m->name : "") != 0)
            s++;
        if (!s || !s->name) {
            vpath here = {at, m->name ? m->name : "?", 0};
            VPATH(path, &here);
            return fail_at(m, g, NDF_ERR_VALIDATION, "%s: unknown parameter '%s'", what, path);
        }
    }
    return NDF_OK;
}

int value_validate(ndf_value *group, const ndf_param_spec *schema, const char *what)
{
    if (!group || group->type != NDF_VALUE_GROUP)
        return fail_at(group, NULL, NDF_ERR_VALIDATION, "%s: parameters must be a group", what);
    return validate_group(group, schema, 0, NULL, what);
}

/* ---- defaults ---- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static ndf_value *parse_scalar(const char *name, const char **pp)
{
    const char *p = skip_ws(*pp);
    if (*p == '"') {
        strbuf sb;
        sb_init(&sb);
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1])
                p++;
            sb_add(&sb, p, 1);
        }
        if (*p != '"') {
            sb_free(&sb);
            return NULL;
        }
        *pp = p + 1;
        char *s = sb_steal(&sb);
        ndf_value *v = value_new_string(name, s);
        free(s);
        return v;
    }
    if (strncmp(p, "true", 4) == 0) {
        *pp = p + 4;
        return value_new_bool(name, 1);
    }
    if (strncmp(p, "false", 5) == 0) {
        *pp = p + 5;
        return value_new_bool(name, 0);
    }
    char *end;
    errno = 0;
    long long ll = strtoll(p, &end, 0);
    if (end != p && errno == 0 && *end != '.' && *end != 'e' && *end != 'E') {
        *pp = end;
        return value_new_int(name, ll);
    }
    double d = strtod(p, &end);
    if (end != p) {
        *pp = end;
        return value_new_number(name, d);
    }
    return NULL;
}

ndf_value *value_parse_default(const char *name, const char *text, ndf_value_type type)
{
    const char *p = skip_ws(text);
    ndf_value *v = NULL;
    if (*p == '[') {
        v = value_new_list(name);
        p = skip_ws(p + 1);
        while (*p && *p != ']') {
            ndf_value *e = parse_scalar(NULL, &p);
            if (!e)
                goto bad;
            value_append(v, e);
            p = skip_ws(p);
            if (*p == ',')
                p = skip_ws(p + 1);
        }
        if (*p != ']')
            goto bad;
        p++;
    } else if (type == NDF_VALUE_STRING && *p != '"') {
        /* A bare default for a string parameter is the string itself. */
        return value_new_string(name, text);
    } else {
        v = parse_scalar(name, &p);
        if (!v)
            return NULL;
    }
    if (*skip_ws(p) != '\0')
        goto bad;
    if (type == NDF_VALUE_NUMBER && v->type == NDF_VALUE_INT) {
        int64_t i = v->u.i;
        v->type = NDF_VALUE_NUMBER;
        v->u.n = (double)i;
    }
    if (!type_ok(type, v))
        goto bad;
    return v;
bad:
    value_free(v);
    return NULL;
}

/* ---- JSON ---- */


void value_to_json(const ndf_value *v, strbuf *sb)
{
    if (!v) {
        sb_puts(sb, "null");
        return;
    }
    switch (v->type) {
    case NDF_VALUE_STRING: sb_json_str(sb, v->u.s); break;
    case NDF_VALUE_INT: sb_printf(sb, "%lld", (long long)v->u.i); break;
    case NDF_VALUE_NUMBER: sb_json_num(sb, v->u.n, 0); break;
    case NDF_VALUE_BOOL: sb_puts(sb, v->u.b ? "true" : "false"); break;
    case NDF_VALUE_LIST:
    case NDF_VALUE_GROUP: {
        int group = v->type == NDF_VALUE_GROUP;
        sb_puts(sb, group ? "{" : "[");
        for (size_t i = 0; i < v->u.c.count; i++) {
            if (i)
                sb_puts(sb, ",");
            if (group) {
                sb_json_str(sb, v->u.c.items[i]->name ? v->u.c.items[i]->name : "");
                sb_puts(sb, ":");
            }
            value_to_json(v->u.c.items[i], sb);
        }
        sb_puts(sb, group ? "}" : "]");
        break;
    }
    default: sb_puts(sb, "null"); break;
    }
}
