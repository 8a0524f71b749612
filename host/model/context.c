/* The execution context (seed PatternContext): domain, agent type, priority
 * and attributes; the domain glob rule; --attr and JSON parsing.  cJSON is
 * used here and in the wire/export code only. */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "base/hashmap.h"
#include "base/util.h"

ndf_context *context_new(const char *domain, const char *agent_type, int priority)
{
    ndf_context *c = xcalloc(1, sizeof *c);
    c->domain = xstrdup(domain ? domain : "");
    c->agent_type = xstrdup(agent_type ? agent_type : "");
    c->priority = priority;
    c->attrs = value_new_group(NULL);
    return c;
}

void context_free(ndf_context *ctx)
{
    if (!ctx)
        return;
    free(ctx->domain);
    free(ctx->agent_type);
    value_free(ctx->attrs);
    free(ctx);
}

ndf_context *context_dup(const ndf_context *ctx)
{
    ndf_context *c = xcalloc(1, sizeof *c);
    c->domain = xstrdup(ctx->domain);
    c->agent_type = xstrdup(ctx->agent_type);
    c->priority = ctx->priority;
    c->attrs = value_dup(ctx->attrs);
    return c;
}

void context_set_attr(ndf_context *ctx, const char *key, ndf_value *val)
{
    if (!val->name || strcmp(val->name, key) != 0) {
        free(val->name);
        val->name = xstrdup(key);
    }
    value_append(ctx->attrs, val); /* replaces a member of the same name */
}

int context_glob_match(const char *glob, const char *text)
{
    if (glob_match(glob, text))
        return 1;
    size_t gl = strlen(glob);
    /* "a.b.*" also names the parent "a.b" itself: a pattern for a domain
     * family serves the family's root too. */
    if (gl < 2 || glob[gl - 2] != '.' || glob[gl - 1] != '*')
        return 0;
    if (!memchr(glob, '*', gl - 2) && !memchr(glob, '?', gl - 2))
        return strlen(text) == gl - 2 && memcmp(glob, text, gl - 2) == 0;
    /* The parent may itself hold wildcards ("web_*.*" serves "web_x"). */
    char *parent = xstrndup(glob, gl - 2);
    int m = glob_match(parent, text);
    free(parent);
    return m;
}

int context_matches_domain(const ndf_context *ctx, const char *pattern)
{
    return context_glob_match(pattern, ctx->domain);
}

static int list_contains(const ndf_value *list, const ndf_value *x)
{
    for (size_t i = 0; i < value_count(list); i++)
        if (value_equal(value_at(list, i), x))
            return 1;
    return 0;
}

int context_value_matches(const ndf_value *have, const ndf_value *want)
{
    if (!have || !want)
        return 0;
    int hl = have->type == NDF_VALUE_LIST, wl = want->type == NDF_VALUE_LIST;
    if (hl && wl) {
        if (value_equal(have, want))
            return 1;
        for (size_t i = 0; i < value_count(want); i++)
            if (list_contains(have, value_at(want, i)))
                return 1;
        return 0;
    }
    if (hl)
        return list_contains(have, want);
    if (wl)
        return list_contains(want, have);
    return value_equal(have, want);
}

int context_has_attribute(const ndf_context *ctx, const char *key, const ndf_value *value)
{
    const ndf_value *have = value_get(ctx->attrs, key);
    if (!have)
        return 0;
    return value ? context_value_matches(have, value) : 1;
}

ndf_context *context_merge_attributes(const ndf_context *ctx, const ndf_value *extra)
{
    ndf_context *c = context_dup(ctx);
    for (size_t i = 0; extra && i < value_count(extra); i++) {
        const ndf_value *m = value_at(extra, i);
        if (m->name)
            context_set_attr(c, m->name, value_dup(m));
    }
    return c;
}

/* ---- --attr KEY=VALUE ---- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* A scalar from command-line text: bool, integer, number, else string. */
static ndf_value *parse_scalar(const char *text)
{
    if (strcmp(text, "true") == 0)
        return value_new_bool(NULL, 1);
    if (strcmp(text, "false") == 0)
        return value_new_bool(NULL, 0);
    if (*text && strpbrk(text, "0123456789")) {
        char *end;
        errno = 0;
        long long ll = strtoll(text, &end, 10);
        if (*end == '\0' && errno == 0)
            return value_new_int(NULL, ll);
        errno = 0;
        double d = strtod(text, &end);
        if (*end == '\0' && errno == 0 && isfinite(d))
            return value_new_number(NULL, d);
    }
    return value_new_string(NULL, text);
}

int context_parse_attr(ndf_context *ctx, const char *arg)
{
    /* a context travels as JSON (ctl, batch, show): text must be UTF-8, and
     * the message must not echo bytes a terminal would choke on */
    if (!utf8_valid(arg, strlen(arg)))
        return err_set(NDF_ERR_INVALID, "--attr: the argument is not valid UTF-8");
    const char *eq = strchr(arg, '=');
    if (!eq)
        return err_set(NDF_ERR_INVALID, "--attr '%s': expected KEY=VALUE", arg);
    if (eq == arg)
        return err_set(NDF_ERR_INVALID, "--attr '%s': the key is empty", arg);
    char *key = xstrndup(arg, (size_t)(eq - arg));
    char *copy = xstrdup(eq + 1);
    char *val = trim(copy);
    ndf_value *v;
    size_t n = strlen(val);
    if (n >= 2 && val[0] == '[' && val[n - 1] == ']') {
        v = value_new_list(NULL);
        val[n - 1] = '\0';
        char *p = val + 1;
        if (*trim(p)) {
            for (;;) {
                char *comma = strchr(p, ',');
                if (comma)
                    *comma = '\0';
                char *item = trim(p);
                if (!*item) {
                    value_free(v);
                    free(copy);
                    int rc = err_set(NDF_ERR_INVALID, "--attr '%s': empty list element", arg);
                    free(key);
                    return rc;
                }
                value_append(v, parse_scalar(item));
                if (!comma)
                    break;
                p = comma + 1;
            }
        }
    } else {
        v = parse_scalar(val);
    }
    context_set_attr(ctx, key, v);
    free(key);
    free(copy);
    return NDF_OK;
}

/* ---- JSON ---- */

static void position(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* cJSON takes any bytes inside a string; a context's text must be UTF-8 so
 * that it reads back the same wherever it is written out again. */
static int utf8_ok(const char *s)
{
    return utf8_valid(s, strlen(s));
}

/* A JSON number becomes an INT when it is integral and in range; NULL for
 * one that overflowed a double (cJSON reads 1e999 as infinity), which JSON
 * could not write back. */
static ndf_value *json_number(const cJSON *j)
{
    double d = j->valuedouble;
    if (!isfinite(d))
        return NULL;
    if (d == floor(d) && fabs(d) < 9007199254740992.0)
        return value_new_int(NULL, (int64_t)d);
    return value_new_number(NULL, d);
}

static int json_attr(const cJSON *j, const char *origin, const char *key, ndf_value **out)
{
    *out = NULL;
    if (cJSON_IsString(j)) {
        if (!utf8_ok(j->valuestring))
            return err_set(NDF_ERR_INVALID, "%s: attribute '%s': the string is not valid UTF-8",
                           origin, key);
        *out = value_new_string(NULL, j->valuestring);
    } else if (cJSON_IsBool(j)) {
        *out = value_new_bool(NULL, cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        if (!(*out = json_number(j)))
            return err_set(NDF_ERR_INVALID, "%s: attribute '%s': the number is out of range",
                           origin, key);
    } else if (cJSON_IsArray(j)) {
        ndf_value *l = value_new_list(NULL);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            ndf_value *x = NULL;
            if (cJSON_IsString(e) && !utf8_ok(e->valuestring)) {
                value_free(l);
                return err_set(NDF_ERR_INVALID,
                               "%s: attribute '%s': a list element is not valid UTF-8", origin,
                               key);
            }
            if (cJSON_IsString(e))
                x = value_new_string(NULL, e->valuestring);
            else if (cJSON_IsBool(e))
                x = value_new_bool(NULL, cJSON_IsTrue(e));
            else if (cJSON_IsNumber(e) && !(x = json_number(e))) {
                value_free(l);
                return err_set(NDF_ERR_INVALID,
                               "%s: attribute '%s': a list element is out of range", origin,
                               key);
            }
            if (!x) {
                value_free(l);
                return err_set(NDF_ERR_INVALID,
                               "%s: attribute '%s': list elements must be strings, numbers "
                               "or booleans",
                               origin, key);
            }
            value_append(l, x);
        }
        *out = l;
    } else {
        return err_set(NDF_ERR_INVALID,
                       "%s: attribute '%s' must be a string, number, boolean or list", origin,
                       key);
    }
    return NDF_OK;
}

int context_from_json(const char *text, const char *origin, ndf_context **out)
{
    *out = NULL;
    const char *end = NULL, *nul = json_nul_escape(text, strlen(text));
    if (nul) {
        int line, col;
        position(text, nul, &line, &col);
        return err_set(NDF_ERR_INVALID,
                       "%s: line %d, column %d: a string holds \\u0000 (NUL), which no "
                       "attribute name or value may hold",
                       origin, line, col);
    }
    cJSON *root = cJSON_ParseWithLengthOpts(text, strlen(text) + 1, &end, 1);
    if (!root) {
        int line, col;
        position(text, end ? end : text, &line, &col);
        return err_set(NDF_ERR_INVALID, "%s: invalid JSON at line %d, column %d", origin, line,
                       col);
    }
    int rc = NDF_OK;
    ndf_context *c = NULL;
    if (!cJSON_IsObject(root)) {
        rc = err_set(NDF_ERR_INVALID, "%s: a context must be a JSON object", origin);
        goto done;
    }
    c = context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
    const cJSON *m;
    cJSON_ArrayForEach(m, root)
    {
        const char *k = m->string;
        if (!utf8_ok(k)) {
            rc = err_set(NDF_ERR_INVALID, "%s: a key is not valid UTF-8", origin);
            goto done;
        }
        if (strcmp(k, "domain") == 0 || strcmp(k, "agent_type") == 0) {
            if (!cJSON_IsString(m)) {
                rc = err_set(NDF_ERR_INVALID, "%s: '%s' must be a string", origin, k);
                goto done;
            }
            if (!utf8_ok(m->valuestring)) {
                rc = err_set(NDF_ERR_INVALID, "%s: '%s' is not valid UTF-8", origin, k);
                goto done;
            }
            char **field = k[0] == 'd' ? &c->domain : &c->agent_type;
            free(*field);
            *field = xstrdup(m->valuestring);
        } else if (strcmp(k, "priority") == 0) {
            double d = cJSON_IsNumber(m) ? m->valuedouble : 0;
            if (!cJSON_IsNumber(m) || d != floor(d) || d < NDF_PRIORITY_HIGHEST ||
                d > NDF_PRIORITY_LOWEST) {
                rc = err_set(NDF_ERR_INVALID,
                             "%s: 'priority' must be an integer from 1 (highest) to 5 (lowest)",
                             origin);
                goto done;
            }
            c->priority = (int)d;
        } else if (strcmp(k, "attributes") == 0) {
            if (!cJSON_IsObject(m)) {
                rc = err_set(NDF_ERR_INVALID, "%s: 'attributes' must be an object", origin);
                goto done;
            }
            int nattrs = cJSON_GetArraySize(m);
            if (nattrs > CONTEXT_MAX_ATTRS) {
                rc = err_set(NDF_ERR_INVALID, "%s: %d attributes; a context holds at most %d",
                             origin, nattrs, CONTEXT_MAX_ATTRS);
                goto done;
            }
            /* a later member of the same name replaces the earlier one, in
             * its place (as context_set_attr()), found through an index of
             * the names rather than a scan of those before it: up to the
             * bound, a linear read rather than a quadratic one */
            hashmap *seen = hashmap_new();
            ndf_value *g = c->attrs;
            const cJSON *a;
            cJSON_ArrayForEach(a, m)
            {
                ndf_value *v;
                if (!utf8_ok(a->string)) {
                    rc = err_set(NDF_ERR_INVALID, "%s: an attribute name is not valid UTF-8",
                                 origin);
                    break;
                }
                if ((rc = json_attr(a, origin, a->string, &v)))
                    break;
                v->name = xstrdup(a->string);
                size_t at = (size_t)(uintptr_t)hashmap_get(seen, a->string);
                if (at) {
                    value_free(g->u.c.items[at - 1]);
                    g->u.c.items[at - 1] = v;
                } else {
                    hashmap_put(seen, a->string, (void *)(uintptr_t)(value_count(g) + 1));
                    value_insert(g, value_count(g), v);
                }
            }
            hashmap_free(seen, NULL);
            if (rc)
                goto done;
        } else {
            rc = err_set(NDF_ERR_INVALID,
                         "%s: unknown key '%s' (expected domain, agent_type, priority, "
                         "attributes)",
                         origin, k);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    if (rc) {
        context_free(c);
        return rc;
    }
    *out = c;
    return NDF_OK;
}

int context_from_json_file(const char *path, ndf_context **out)
{
    *out = NULL;
    int is_stdin = strcmp(path, "-") == 0;
    const char *origin = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f)
        return err_set(NDF_ERR_INVALID, "%s: cannot read context: %s", origin, strerror(errno));
    strbuf sb;
    sb_init(&sb);
    char buf[4096];
    size_t n;
    /* checked while reading, so that /dev/zero or an endless pipe ends in a
     * message rather than in memory exhaustion */
    const char *bad = NULL;
    while (!bad && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (memchr(buf, '\0', n))
            bad = "invalid JSON: contains a NUL byte";
        else if (sb.len + n > CONTEXT_MAX_FILE)
            bad = "larger than " CONTEXT_MAX_FILE_TEXT "; refusing to read it";
        else
            sb_add(&sb, buf, n);
    }
    int err = !bad && ferror(f);
    int saved = errno;
    if (!is_stdin)
        fclose(f);
    if (bad || err) {
        sb_free(&sb);
        if (bad)
            return err_set(NDF_ERR_INVALID, "%s: %s", origin, bad);
        return err_set(NDF_ERR_INVALID, "%s: cannot read context: %s", origin, strerror(saved));
    }
    char *text = sb_steal(&sb);
    int rc = context_from_json(text, origin, out);
    free(text);
    return rc;
}


void context_to_json(const ndf_context *ctx, strbuf *sb)
{
    sb_puts(sb, "{\"domain\":");
    sb_json_str(sb, ctx->domain);
    sb_puts(sb, ",\"agent_type\":");
    sb_json_str(sb, ctx->agent_type);
    sb_printf(sb, ",\"priority\":%d,\"attributes\":", ctx->priority);
    value_to_json(ctx->attrs, sb);
    sb_puts(sb, "}");
}

int context_validate(const ndf_context *ctx)
{
    if (ctx->priority < NDF_PRIORITY_HIGHEST || ctx->priority > NDF_PRIORITY_LOWEST)
        return err_set(NDF_ERR_INVALID,
                       "priority %d is out of range (1 highest .. 5 lowest)", ctx->priority);
    if (!utf8_ok(ctx->domain))
        return err_set(NDF_ERR_INVALID, "the domain is not valid UTF-8");
    if (!utf8_ok(ctx->agent_type))
        return err_set(NDF_ERR_INVALID, "the agent type is not valid UTF-8");
    for (size_t i = 0; i < value_count(ctx->attrs); i++) {
        const ndf_value *a = value_at(ctx->attrs, i);
        if (a->type == NDF_VALUE_GROUP || a->type == NDF_VALUE_NONE)
            return err_set(NDF_ERR_INVALID,
                           "attribute '%s' must be a string, number, boolean or list",
                           a->name ? a->name : "");
    }
    return NDF_OK;
}
