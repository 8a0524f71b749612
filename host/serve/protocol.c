/* The wire protocol (see protocol.h): request lines parsed with cJSON and
 * checked member by member; answers written with the host's JSON string
 * writer, which escapes and repairs whatever text it is given. */
#include "build-config.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ndf/status.h>

#include "serve/protocol.h"
#include "base/util.h"

/* ---- requests ---- */

static const struct {
    const char *name;
    request_kind kind;
} kinds[] = {
    {"run", REQ_RUN},           {"status", REQ_STATUS}, {"cancel", REQ_CANCEL},
    {"rollback", REQ_ROLLBACK}, {"reload", REQ_RELOAD}, {"ping", REQ_PING},
    {"shutdown", REQ_SHUTDOWN}, {"delegate", REQ_DELEGATE}, {"wait", REQ_WAIT},
};

/* Member `key` of type `want` (cJSON type bits): 0 with *out NULL when
 * absent or null, 0 with *out set when of that type, else -1 with *error. */
static int member(const cJSON *req, const char *key, int want, const cJSON **out, char **error)
{
    static const struct {
        int t;
        const char *name;
    } names[] = {{cJSON_String, "a string"},
                 {cJSON_Number, "a number"},
                 {cJSON_True | cJSON_False, "true or false"},
                 {cJSON_Object, "an object"},
                 {cJSON_Array, "an array"}};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (v->type & want) {
        *out = v;
        return 0;
    }
    const char *n = "?";
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (names[i].t & want)
            n = names[i].name;
    *error = xasprintf("bad request: \"%s\" must be %s", key, n);
    return -1;
}

/* An optional string member, copied into *dst. */
static int opt_string(const cJSON *req, const char *key, char **dst, char **error)
{
    const cJSON *v;
    if (member(req, key, cJSON_String, &v, error))
        return -1;
    *dst = v ? xstrdup(v->valuestring) : NULL;
    return 0;
}

static int required_string(const cJSON *req, const char *key, char **dst, char **error)
{
    if (opt_string(req, key, dst, error))
        return -1;
    if (!*dst || !**dst) {
        free(*dst);
        *dst = NULL;
        *error = xasprintf("bad request: \"%s\" (a string) is required", key);
        return -1;
    }
    return 0;
}

static int opt_bool(const cJSON *req, const char *key, int *dst, char **error)
{
    const cJSON *v;
    if (member(req, key, cJSON_True | cJSON_False, &v, error))
        return -1;
    *dst = v && cJSON_IsTrue(v);
    return 0;
}

static int opt_context(const cJSON *req, char **dst, char **error)
{
    const cJSON *v;
    if (member(req, "context", cJSON_Object, &v, error))
        return -1;
    *dst = v ? cJSON_PrintUnformatted(v) : NULL;
    return 0;
}

/* seed wait_for_completion(timeout): an id, and how long to wait at most. */
static int parse_wait(const cJSON *j, request *r, char **error)
{
    const cJSON *t;
    if (required_string(j, "id", &r->id, error) || member(j, "timeout", cJSON_Number, &t, error))
        return -1;
    r->timeout = t ? t->valuedouble : -1;
    if (t && !(r->timeout >= 0 && r->timeout <= SECONDS_MAX)) {
        *error = xstrdup("bad request: \"timeout\" must be from 0 to " SECONDS_MAX_TEXT " seconds");
        return -1;
    }
    return 0;
}

static int parse_run(const cJSON *j, request *r, char **error)
{
    const cJSON *t;
    if (required_string(j, "pattern", &r->pattern, error) || opt_context(j, &r->context, error) ||
        member(j, "timeout", cJSON_Number, &t, error) || opt_bool(j, "force", &r->force, error) ||
        opt_bool(j, "async", &r->async, error) || opt_string(j, "fallback", &r->fallback, error))
        return -1;
    r->timeout = t ? t->valuedouble : 0;
    if (t && !(r->timeout >= 0 && r->timeout <= SECONDS_MAX)) {
        *error = xstrdup("bad request: \"timeout\" must be from 0 to " SECONDS_MAX_TEXT " seconds");
        return -1;
    }
    if (r->fallback && r->async) {
        *error = xstrdup("bad request: \"fallback\" cannot be \"async\"");
        return -1;
    }
    return 0;
}

/* An optional whole number member from 0 to `max` into *out (*has set). */
static int opt_whole(const cJSON *j, const char *key, double max, int *has,
                     unsigned long long *out, char **error)
{
    const cJSON *v;
    if (member(j, key, cJSON_Number, &v, error))
        return -1;
    *has = v != NULL;
    if (!v)
        return 0;
    double x = v->valuedouble;
    if (!(x >= 0 && x <= max && x == floor(x))) {
        *error = xasprintf("bad request: \"%s\" must be a whole number from 0 to %.0f", key, max);
        return -1;
    }
    *out = (unsigned long long)x;
    return 0;
}

static int parse_delegate(const cJSON *j, request *r, char **error)
{
    const cJSON *t;
    unsigned long long mf = 0;
    if (opt_context(j, &r->context, error) || member(j, "timeout", cJSON_Number, &t, error) ||
        opt_string(j, "policy", &r->policy, error) || opt_bool(j, "explain", &r->explain, error) ||
        opt_whole(j, "seed", 9007199254740992.0, &r->has_seed, &r->seed, error) ||
        opt_whole(j, "max_fallbacks", 1000000, &r->has_max_fallbacks, &mf, error))
        return -1;
    r->max_fallbacks = (unsigned)mf;
    r->timeout = t ? t->valuedouble : 0;
    if (t && !(r->timeout >= 0 && r->timeout <= SECONDS_MAX)) {
        *error = xstrdup("bad request: \"timeout\" must be from 0 to " SECONDS_MAX_TEXT " seconds");
        return -1;
    }
    return 0;
}

static int parse_command(const cJSON *j, request *r, char **error)
{
    const cJSON *args, *e;
    if (member(j, "args", cJSON_Array, &args, error) || opt_context(j, &r->context, error))
        return -1;
    int n = args ? cJSON_GetArraySize(args) : 0;
    if (n > PROTOCOL_MAX_ARGS) {
        *error = xasprintf("bad request: \"args\" has more than %d elements", PROTOCOL_MAX_ARGS);
        return -1;
    }
    r->args = xcalloc((size_t)n + 1, sizeof *r->args);
    cJSON_ArrayForEach(e, args)
    {
        if (!cJSON_IsString(e)) {
            *error = xstrdup("bad request: \"args\" must be an array of strings");
            return -1;
        }
        r->args[r->nargs++] = xstrdup(e->valuestring);
    }
    return 0;
}

/* The rollback levels of the seed's trigger_rollback, long and short. */
static int rollback_level_valid(const char *s)
{
    static const char *const levels[] = {"pattern", "pattern_level", "phase", "phase_level",
                                         "complete"};
    for (size_t i = 0; i < ARRAY_SIZE(levels); i++)
        if (strcmp(s, levels[i]) == 0)
            return 1;
    return 0;
}

/* The members each kind takes, "cmd" aside (NULL-terminated). */
static const char *const *members_of(request_kind k)
{
    static const char *const run[] = {"pattern", "context", "timeout", "force",
                                      "async",   "fallback", NULL};
    static const char *const delegate[] = {"context", "timeout",       "policy", "explain",
                                           "seed",    "max_fallbacks", NULL};
    static const char *const id[] = {"id", NULL};
    static const char *const rollback[] = {"id", "level", "target", NULL};
    static const char *const wait[] = {"id", "timeout", NULL};
    static const char *const command[] = {"args", "context", NULL};
    static const char *const none[] = {NULL};
    switch (k) {
    case REQ_RUN: return run;
    case REQ_DELEGATE: return delegate;
    case REQ_STATUS:
    case REQ_CANCEL: return id;
    case REQ_ROLLBACK: return rollback;
    case REQ_WAIT: return wait;
    case REQ_COMMAND: return command;
    default: return none;
    }
}

/* A member the request's kind does not take, or one given twice, is
 * refused: ignored, a misplaced option (a "timeout" beside a command's
 * "args") would run the request without it. */
static int known_members(const cJSON *j, const request *r, char **error)
{
    const char *const *allowed = members_of(r->kind);
    const cJSON *m;
    cJSON_ArrayForEach(m, j)
    {
        const char *key = m->string ? m->string : "";
        size_t i = 0;
        if (strcmp(key, "cmd") != 0)
            while (allowed[i] && strcmp(allowed[i], key) != 0)
                i++;
        if (strcmp(key, "cmd") != 0 && !allowed[i]) {
            *error = xasprintf("bad request: \"%s\" takes no member \"%.64s\"", r->cmd, key);
            return -1;
        }
        for (const cJSON *o = m->next; o; o = o->next)
            if (o->string && strcmp(o->string, key) == 0) {
                *error = xasprintf("bad request: member \"%.64s\" is given twice", key);
                return -1;
            }
    }
    return 0;
}

static int parse_members(const cJSON *j, request *r, char **error)
{
    if (required_string(j, "cmd", &r->cmd, error))
        return -1;
    r->kind = REQ_COMMAND;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (strcmp(r->cmd, kinds[i].name) == 0)
            r->kind = kinds[i].kind;
    if (known_members(j, r, error))
        return -1;
    switch (r->kind) {
    case REQ_RUN: return parse_run(j, r, error);
    case REQ_DELEGATE: return parse_delegate(j, r, error);
    case REQ_STATUS: return opt_string(j, "id", &r->id, error);
    case REQ_CANCEL: return required_string(j, "id", &r->id, error);
    case REQ_ROLLBACK:
        if (required_string(j, "id", &r->id, error) || opt_string(j, "level", &r->level, error) ||
            opt_string(j, "target", &r->target, error))
            return -1;
        if (r->level && !rollback_level_valid(r->level)) {
            /* a pattern type may ignore the level: an unknown one must not
             * pass as a rollback done at some default level */
            *error = xstrdup("bad request: \"level\" must be pattern, phase or complete "
                             "(or pattern_level, phase_level)");
            return -1;
        }
        return 0;
    case REQ_COMMAND: return parse_command(j, r, error);
    case REQ_WAIT: return parse_wait(j, r, error);
    default: return 0;
    }
}

int protocol_parse(const char *text, size_t len, request *req, char **error)
{
    memset(req, 0, sizeof *req);
    *error = NULL;
    if (memchr(text, '\0', len)) {
        *error = xstrdup("malformed request: the line holds a NUL byte");
        return -1;
    }
    if (!utf8_valid(text, len)) {
        *error = xstrdup("malformed request: not valid UTF-8");
        return -1;
    }
    if (json_nul_escape(text, len)) {
        *error = xstrdup("bad request: a string holds \\u0000 (NUL), which no name, argument "
                         "or context may");
        return -1;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        *error = xstrdup("malformed request: not valid JSON (one JSON object per line is "
                         "expected)");
        return -1;
    }
    while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\r'))
        end++;
    int rc = -1;
    if (end && end < text + len)
        *error = xstrdup("malformed request: text after the JSON value (one JSON object per "
                         "line is expected)");
    else if (!cJSON_IsObject(j))
        *error = xstrdup("malformed request: a JSON object is expected");
    else
        rc = parse_members(j, req, error);
    cJSON_Delete(j);
    if (rc)
        request_free(req);
    return rc;
}

void request_free(request *req)
{
    free(req->cmd);
    free(req->pattern);
    free(req->fallback);
    free(req->id);
    free(req->level);
    free(req->target);
    free(req->policy);
    cJSON_free(req->context);
    for (size_t i = 0; i < req->nargs; i++)
        free(req->args[i]);
    free(req->args);
    memset(req, 0, sizeof *req);
}

/* ---- answers ---- */

static void str_member(strbuf *sb, const char *key, const char *value)
{
    if (!value)
        return;
    sb_printf(sb, ",\"%s\":", key);
    sb_json_str(sb, value);
}

static void num_member(strbuf *sb, const char *key, unsigned long value)
{
    sb_printf(sb, ",\"%s\":%lu", key, value);
}

/* JSON that ndf rendered (a record), inserted as it is but on one line. */
static void raw_member(strbuf *sb, const char *key, const char *json)
{
    if (!json)
        return;
    sb_printf(sb, ",\"%s\":", key);
    size_t start = sb->len;
    sb_puts(sb, json);
    for (size_t i = start; i < sb->len; i++)
        if (sb->buf[i] == '\n')
            sb->buf[i] = ' ';
}

/* The store's health, as ping and status answer it ("store"). */
static void store_member(strbuf *sb, const protocol_ping *p)
{
    if (!p->store_path)
        return;
    sb_puts(sb, ",\"store\":{\"path\":");
    sb_json_str(sb, p->store_path);
    sb_printf(sb, ",\"backend\":\"%s\",\"schema\":%d,\"state\":\"%s\",\"last_error\":",
              p->store_backend ? p->store_backend : "sqlite", p->store_schema,
              p->store_degraded ? "degraded" : "ok");
    sb_json_str(sb, p->store_last_error && *p->store_last_error ? p->store_last_error : NULL);
    sb_puts(sb, ",\"last_error_time\":");
    if (p->store_last_error && *p->store_last_error)
        sb_json_num(sb, p->store_last_error_time, 0);
    else
        sb_puts(sb, "null");
    num_member(sb, "transactions", p->store_transactions);
    num_member(sb, "executions", p->store_executions);
    num_member(sb, "queued", p->store_queued);
    sb_puts(sb, "}");
}

static void ping_members(strbuf *sb, const protocol_ping *p)
{
    num_member(sb, "old_generations", p->old_generations);
    sb_printf(sb, ",\"pid\":%ld", p->pid);
    num_member(sb, "plugins_retired", p->plugins_retired);
    num_member(sb, "plugins_unloaded", p->plugins_unloaded);
    num_member(sb, "plugins_not_unloadable", p->plugins_not_unloadable);
    num_member(sb, "reloads", p->reloads);
    num_member(sb, "reloads_failed", p->reloads_failed);
    store_member(sb, p);
    num_member(sb, "workers", p->workers);
    num_member(sb, "workers_active", p->workers_active);
    num_member(sb, "workers_abandoned", p->workers_abandoned);
    num_member(sb, "workers_replaced", p->workers_replaced);
    num_member(sb, "workers_unreplaced", p->workers_unreplaced);
}

char *protocol_response(const response *r)
{
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, r->ok ? "{\"ok\":true" : "{\"ok\":false");
    str_member(&sb, "error", r->error);
    str_member(&sb, "id", r->id);
    if (r->has & RESP_STATUS)
        str_member(&sb, "status", ndf_status_name(r->status));
    if (r->has & RESP_EXIT)
        sb_printf(&sb, ",\"exit\":%d", r->exit);
    if (r->has & RESP_GENERATION)
        num_member(&sb, "generation", r->generation);
    if (r->ping)
        ping_members(&sb, r->ping);
    if (r->workers) {
        store_member(&sb, r->workers);
        sb_printf(&sb, ",\"workers\":{\"threads\":%lu", r->workers->workers);
        num_member(&sb, "active", r->workers->workers_active);
        num_member(&sb, "abandoned", r->workers->workers_abandoned);
        num_member(&sb, "replaced", r->workers->workers_replaced);
        num_member(&sb, "unreplaced", r->workers->workers_unreplaced);
        sb_puts(&sb, "}");
    }
    if (r->has & RESP_PLUGINS_CHANGED)
        num_member(&sb, "plugins_changed", r->plugins_changed);
    str_member(&sb, "config", r->config);
    str_member(&sb, "used", r->used);
    if (r->out) {
        sb_puts(&sb, ",\"stdout\":");
        sb_json_strn(&sb, r->out, r->out_len);
    }
    if (r->err) {
        sb_puts(&sb, ",\"stderr\":");
        sb_json_strn(&sb, r->err, r->err_len);
    }
    raw_member(&sb, "record", r->record);
    str_member(&sb, "text", r->text);
    str_member(&sb, "fallback_cause", r->fallback_cause);
    str_member(&sb, "primary_error", r->primary_error);
    raw_member(&sb, "primary", r->primary);
    raw_member(&sb, "delegation", r->delegation);
    sb_puts(&sb, "}\n");
    return sb_steal(&sb);
}

char *protocol_error(int status, int exit_code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    response r = {
        .has = RESP_STATUS | RESP_EXIT, .error = msg, .status = status, .exit = exit_code};
    char *text = protocol_response(&r);
    free(msg);
    return text;
}
