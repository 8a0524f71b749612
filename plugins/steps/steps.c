/* The core step types: exec (run a process), sleep, log, fail, noop and
 * pattern (run another pattern as a step).  A plugin like any other: built
 * only against the SDK, reaching the host through the services table. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ndf/sdk.h>

/* ---- exec ---- */

static const ndf_param_spec exec_params[] = {
    NDF_PARAM_LIST("argv", NDF_VALUE_STRING, 0, NULL,
                   "program and arguments, run without a shell; argv[0] is looked up in PATH"),
    NDF_PARAM("shell", NDF_VALUE_BOOL, 0, "false", "run `command` with /bin/sh -c"),
    NDF_PARAM("command", NDF_VALUE_STRING, 0, NULL, "shell command line (needs shell = true)"),
    NDF_PARAM_GROUP("env", 0, NULL, "extra environment: NAME = \"value\" members, values expanded"),
    NDF_PARAM("cwd", NDF_VALUE_STRING, 0, NULL, "working directory (expanded)"),
    NDF_PARAM("stdin", NDF_VALUE_STRING, 0, NULL, "text fed to standard input (expanded)"),
    NDF_PARAM("undo", NDF_VALUE_ANY, 0, NULL,
              "rollback action: an argv list, or a command string (needs shell = true)"),
    /* 64 MiB: at 1 GiB one step's output took gigabytes of memory to keep */
    NDF_PARAM_RANGED("output_limit", NDF_VALUE_INT, 0, NULL, 0, 67108864.0,
                     "bytes of stdout and of stderr kept in the record (0: host default; at "
                     "most 64 MiB)"),
    NDF_PARAM_END};

static int env_name_ok(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

static void warn_quoted_refs(const ndf_host *host, const ndf_value *cmd);

/* Checks one command (`argv` list or `command` string) against the shell
 * rule; `what` names the parameter in messages. */
static int check_command(const ndf_host *host, const ndf_value *cmd, int shell, const char *what)
{
    ndf_value_type t = host->value_type(cmd);
    if (t == NDF_VALUE_LIST) {
        size_t n = host->value_count(cmd);
        if (n == 0)
            return host->fail_at(cmd, NDF_ERR_VALIDATION, "step exec: '%s' is an empty list", what);
        for (size_t i = 0; i < n; i++)
            if (host->value_type(host->value_at(cmd, i)) != NDF_VALUE_STRING)
                return host->fail_at(cmd, NDF_ERR_VALIDATION,
                                     "step exec: '%s[%zu]' must be a string", what, i);
        return NDF_OK;
    }
    if (t == NDF_VALUE_STRING) {
        if (!shell)
            return host->fail_at(cmd, NDF_ERR_VALIDATION,
                                 "step exec: '%s' is a shell command string, which needs "
                                 "shell = true (or give an argv list)",
                                 what);
        warn_quoted_refs(host, cmd);
        return NDF_OK;
    }
    return host->fail_at(cmd, NDF_ERR_VALIDATION,
                         "step exec: '%s' must be a list of strings or a command string", what);
}

/* Cross-field rules the schema cannot say.  No instance: run() reads the
 * validated parameters directly. */
static int exec_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    const ndf_value *argv = host->value_get(params, "argv");
    const ndf_value *command = host->value_get(params, "command");
    int shell = host->value_bool(host->value_get(params, "shell"));
    if (argv && command)
        return host->fail_at(command, NDF_ERR_VALIDATION,
                             "step exec: give either 'argv' or 'command', not both");
    if (!argv && !command)
        return host->fail_at(params, NDF_ERR_VALIDATION,
                             "step exec: needs 'argv' (a list) or 'command' (with shell = true)");
    if (argv && shell)
        return host->fail_at(argv, NDF_ERR_VALIDATION,
                             "step exec: shell = true runs 'command', not 'argv'");
    int rc = check_command(host, argv ? argv : command, shell, argv ? "argv" : "command");
    if (rc)
        return rc;
    const ndf_value *undo = host->value_get(params, "undo");
    if (undo && (rc = check_command(host, undo, shell, "undo")))
        return rc;
    const ndf_value *env = host->value_get(params, "env");
    for (size_t i = 0; i < host->value_count(env); i++) {
        const ndf_value *e = host->value_at(env, i);
        if (!env_name_ok(host->value_name(e)))
            return host->fail_at(e, NDF_ERR_VALIDATION,
                                 "step exec: 'env.%s' is not a valid environment variable name",
                                 host->value_name(e));
        if (host->value_type(e) != NDF_VALUE_STRING)
            return host->fail_at(e, NDF_ERR_VALIDATION, "step exec: 'env.%s' must be a string",
                                 host->value_name(e));
    }
    return NDF_OK;
}

/* Every string handed to spawn, expanded, in this plugin's own memory
 * (strings the host expanded are copied in: what the host hands out is
 * freed with host->free, what the plugin allocates with free, and the two
 * never mix in one list). */
typedef struct strings {
    char **v;
    size_t n, cap;
} strings;

static void strings_free(strings *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* Appends `p` (owned, may be NULL as an argv terminator). */
static int strings_push(const ndf_host *host, strings *s, char *p)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(p);
            return host->fail(NDF_ERR_NOMEM, "step exec: out of memory");
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return NDF_OK;
}

/* Expands `tmpl` in the node's context; the host sets the message of an
 * unknown variable (NDF_ERR_VALIDATION), which becomes the step's. */
static int expand(const ndf_host *host, ndf_exec *node, const char *tmpl, char **out)
{
    return host->expand(node, tmpl, out);
}

static int expand_push(const ndf_host *host, ndf_exec *node, strings *s, const char *tmpl)
{
    char *x = NULL;
    int rc = expand(host, node, tmpl, &x);
    if (rc)
        return rc;
    char *own = strdup(x);
    host->free(x);
    if (!own)
        return host->fail(NDF_ERR_NOMEM, "step exec: out of memory");
    return strings_push(host, s, own);
}

/* ---- shell command lines ----
 *
 * In a `shell = true` command every ${...} becomes exactly its value as
 * one piece of one shell word, never code: the value is single-quoted
 * (embedded quotes as '\''), and when the reference sits inside quotes of
 * the command line, those are closed around it and reopened.  Scripts that
 * want the raw text read it from NDF_ATTR_*. */

typedef enum { SH_PLAIN, SH_SINGLE, SH_DOUBLE } sh_state;

/* Appends `n` bytes to a growing buffer; 0, or -1 out of memory. */
static int buf_add(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        while (*len + n + 1 > c)
            c *= 2;
        char *nb = realloc(*b, c);
        if (!nb)
            return -1;
        *b = nb;
        *cap = c;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = 0;
    return 0;
}

static int buf_quoted(char **b, size_t *len, size_t *cap, const char *v)
{
    if (buf_add(b, len, cap, "'", 1))
        return -1;
    for (const char *q; (q = strchr(v, '\'')); v = q + 1)
        if (buf_add(b, len, cap, v, (size_t)(q - v)) || buf_add(b, len, cap, "'\\''", 4))
            return -1;
    return buf_add(b, len, cap, v, strlen(v)) || buf_add(b, len, cap, "'", 1) ? -1 : 0;
}

/* Tracks the shell's quoting over the literal byte `c`; `*esc` is set when
 * a backslash makes the next byte literal. */
static void sh_track(sh_state *st, int *esc, char c)
{
    if (*esc) {
        *esc = 0;
        return;
    }
    if (*st == SH_SINGLE) {
        if (c == '\'')
            *st = SH_PLAIN;
    } else if (c == '\\') {
        *esc = 1;
    } else if (c == '\'' && *st == SH_PLAIN) {
        *st = SH_SINGLE;
    } else if (c == '"') {
        *st = *st == SH_DOUBLE ? SH_PLAIN : SH_DOUBLE;
    }
}

/* Expands the shell command line `tmpl` as described above, into *out
 * (this plugin's memory: freed with free()). */
static int shell_expand(const ndf_host *host, ndf_exec *node, const char *tmpl, char **out)
{
    char *b = NULL;
    size_t len = 0, cap = 0;
    sh_state st = SH_PLAIN;
    int esc = 0, rc = NDF_OK;
    *out = NULL;
    for (const char *p = tmpl; *p && rc == NDF_OK;) {
        if (p[0] == '$' && p[1] == '$') { /* "$$" is a literal "$" */
            if (buf_add(&b, &len, &cap, "$", 1))
                goto nomem;
            sh_track(&st, &esc, '$');
            p += 2;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            if (buf_add(&b, &len, &cap, p, 1))
                goto nomem;
            sh_track(&st, &esc, *p++);
            continue;
        }
        const char *end = strchr(p + 2, '}');
        if (esc && end) {
            free(b);
            return host->fail(NDF_ERR_VALIDATION,
                              "step exec: a backslash before ${...} in a shell command would "
                              "unquote the value; write $${ for a literal ${");
        }
        /* the host expands one reference (and reports an unknown or
         * unterminated one with the whole template's message) */
        char *ref = end ? strndup(p, (size_t)(end - p + 1)) : strdup(tmpl);
        char *val = NULL;
        if (!ref)
            goto nomem;
        rc = host->expand(node, ref, &val);
        free(ref);
        if (rc)
            break;
        const char *close = st == SH_SINGLE ? "'" : st == SH_DOUBLE ? "\"" : "";
        int bad = buf_add(&b, &len, &cap, close, strlen(close)) ||
                  buf_quoted(&b, &len, &cap, val) || buf_add(&b, &len, &cap, close, strlen(close));
        host->free(val);
        if (bad)
            goto nomem;
        p = end + 1;
    }
    if (rc) {
        free(b);
        return rc;
    }
    if (!b && buf_add(&b, &len, &cap, "", 0))
        goto nomem;
    *out = b;
    return NDF_OK;
nomem:
    free(b);
    return host->fail(NDF_ERR_NOMEM, "step exec: out of memory");
}

/* check-config's hint: a reference inside quotes of a shell command is
 * still inserted literally (the quotes are closed around it), which can
 * surprise who wrote the quotes to get the shell's expansion of it. */
static void warn_quoted_refs(const ndf_host *host, const ndf_value *cmd)
{
    const char *t = host->value_string(cmd);
    sh_state st = SH_PLAIN;
    int esc = 0;
    for (const char *p = t; p && *p; p++) {
        if (p[0] == '$' && p[1] == '$') {
            p++;
            continue;
        }
        if (p[0] == '$' && p[1] == '{' && st != SH_PLAIN) {
            const char *f = host->value_file(cmd);
            host->log(NDF_LOG_WARN,
                      "%s:%d: step exec: ${...} inside %s quotes of a shell command is inserted "
                      "as one literal value (ndf closes the quotes around it); drop the quotes",
                      f ? f : "?", host->value_line(cmd), st == SH_SINGLE ? "single" : "double");
            return;
        }
        sh_track(&st, &esc, *p);
    }
}

static int dup_push(const ndf_host *host, strings *s, const char *text)
{
    char *p = strdup(text);
    if (!p)
        return host->fail(NDF_ERR_NOMEM, "step exec: out of memory");
    return strings_push(host, s, p);
}

/* Runs `cmd` (an argv list or a shell command string) with the step's env,
 * cwd and stdin. */
static int exec_command(const ndf_host *host, ndf_exec *node, const ndf_value *params,
                        const ndf_value *cmd)
{
    strings argv = {0}, env = {0};
    char *cwd = NULL, *input = NULL;
    int rc = NDF_OK;

    if (host->value_type(cmd) == NDF_VALUE_STRING) {
        rc = dup_push(host, &argv, "/bin/sh");
        if (!rc)
            rc = dup_push(host, &argv, "-c");
        char *line = NULL;
        if (!rc && !(rc = shell_expand(host, node, host->value_string(cmd), &line)))
            rc = strings_push(host, &argv, line);
    } else {
        size_t n = host->value_count(cmd);
        for (size_t i = 0; i < n && !rc; i++)
            rc = expand_push(host, node, &argv, host->value_string(host->value_at(cmd, i)));
    }
    if (!rc)
        rc = strings_push(host, &argv, NULL);

    const ndf_value *envg = host->value_get(params, "env");
    size_t nenv = host->value_count(envg);
    for (size_t i = 0; i < nenv && !rc; i++) {
        const ndf_value *e = host->value_at(envg, i);
        char *val = NULL;
        rc = expand(host, node, host->value_string(e), &val);
        if (rc)
            break;
        const char *name = host->value_name(e);
        size_t len = strlen(name) + 1 + strlen(val) + 1;
        char *kv = malloc(len);
        if (!kv) {
            host->free(val);
            rc = host->fail(NDF_ERR_NOMEM, "step exec: out of memory");
            break;
        }
        snprintf(kv, len, "%s=%s", name, val);
        host->free(val);
        rc = strings_push(host, &env, kv);
    }
    if (!rc && nenv)
        rc = strings_push(host, &env, NULL);

    const char *s;
    if (!rc && (s = host->value_string(host->value_get(params, "cwd"))))
        rc = expand(host, node, s, &cwd);
    if (!rc && (s = host->value_string(host->value_get(params, "stdin"))))
        rc = expand(host, node, s, &input);

    if (!rc) {
        ndf_spawn opts;
        memset(&opts, 0, sizeof opts);
        opts.size = sizeof opts;
        opts.argv = (const char *const *)argv.v;
        opts.env = nenv ? (const char *const *)env.v : NULL;
        opts.cwd = cwd;
        opts.input = input;
        opts.input_len = input ? strlen(input) : 0;
        opts.output_limit = (size_t)host->value_int(host->value_get(params, "output_limit"));
        rc = host->spawn(node, &opts, NULL);
    }
    strings_free(&argv);
    strings_free(&env);
    host->free(cwd);
    host->free(input);
    return rc;
}

static int exec_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    const ndf_value *cmd = host->value_get(params, "argv");
    return exec_command(host, node, params, cmd ? cmd : host->value_get(params, "command"));
}

static int exec_undo(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    const ndf_value *undo = host->value_get(params, "undo");
    if (!undo) {
        host->node_log(node, NDF_LOG_DEBUG, "no undo action: nothing to roll back");
        return NDF_OK;
    }
    return exec_command(host, node, params, undo);
}

/* ---- sleep ---- */

static const ndf_param_spec sleep_params[] = {
    NDF_PARAM_RANGED("seconds", NDF_VALUE_NUMBER, NDF_PARAM_REQUIRED, NULL, 0, 1e9,
                     "how long to sleep; cut short by the deadline or cancellation"),
    NDF_PARAM_END};

static int sleep_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    return host->sleep(node, host->value_number(host->value_get(params, "seconds")));
}

/* ---- log ---- */

static const ndf_param_spec log_params[] = {
    NDF_PARAM("message", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
              "the line to write to the record and the log (expanded)"),
    NDF_PARAM("level", NDF_VALUE_STRING, 0, "\"info\"", "error, warning, info or debug"),
    NDF_PARAM_END};

/* -1 for a name that is not a level. */
static int log_level(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"error", NDF_LOG_ERROR},
                  {"warning", NDF_LOG_WARN},
                  {"warn", NDF_LOG_WARN},
                  {"info", NDF_LOG_INFO},
                  {"debug", NDF_LOG_DEBUG}};
    for (size_t i = 0; s && i < sizeof levels / sizeof levels[0]; i++)
        if (strcasecmp(s, levels[i].name) == 0)
            return levels[i].level;
    return -1;
}

static int log_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    const ndf_value *lv = host->value_get(params, "level");
    if (log_level(host->value_string(lv)) < 0)
        return host->fail_at(lv, NDF_ERR_VALIDATION,
                             "step log: unknown level '%s' (error, warning, info or debug)",
                             host->value_string(lv));
    return NDF_OK;
}

static int log_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    char *msg = NULL;
    int rc = expand(host, node, host->value_string(host->value_get(params, "message")), &msg);
    if (rc)
        return rc;
    host->node_log(node, log_level(host->value_string(host->value_get(params, "level"))), "%s",
                   msg);
    host->free(msg);
    return NDF_OK;
}

/* ---- fail ---- */

static const ndf_param_spec fail_params[] = {
    NDF_PARAM("message", NDF_VALUE_STRING, 0, "\"failed as configured\"",
              "the failure message (expanded)"),
    NDF_PARAM_RANGED("after", NDF_VALUE_NUMBER, 0, "0", 0, 1e9,
                     "seconds to wait before failing (cut short by the deadline)"),
    NDF_PARAM("status", NDF_VALUE_STRING, 0, "\"execution failed\"",
              "the status to fail with, by its name in ndf_status_name() (\"not found\", "
              "\"validation failed\", \"timed out\", ...): for testing pattern types"),
    NDF_PARAM_END};

/* The status named `name` (ndf_status_name), or 0 when none is. */
static int status_named(const char *name)
{
    for (int st = -1; st >= NDF_STATUS_MIN; st--)
        if (strcmp(ndf_status_name(st), name) == 0)
            return st;
    return 0;
}

static int fail_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    const ndf_value *v = host->value_get(params, "status");
    int st = status_named(host->value_string(v));
    if (!st)
        return host->fail_at(v, NDF_ERR_VALIDATION,
                             "step fail: unknown status '%s' (\"execution failed\", \"not "
                             "found\", \"timed out\", ...: see ndf-plugin(7))",
                             host->value_string(v));
    *instance = (void *)(intptr_t)st;
    return NDF_OK;
}

static int fail_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    double after = host->value_number(host->value_get(params, "after"));
    int rc;
    if (after > 0 && (rc = host->sleep(node, after)))
        return rc;
    char *msg = NULL;
    if ((rc = expand(host, node, host->value_string(host->value_get(params, "message")), &msg)))
        return rc;
    rc = host->fail((int)(intptr_t)inst, "%s", msg);
    host->free(msg);
    return rc;
}

/* ---- noop ---- */

/* The dispatch benchmark runs a million of these: no parameters, no
 * instance, nothing but the return. */
static const ndf_param_spec noop_params[] = {NDF_PARAM_END};

static int noop_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    return NDF_OK;
}

/* ---- pattern ---- */

static const ndf_param_spec pattern_params[] = {
    NDF_PARAM("pattern", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL,
              "name of the pattern to run as this step (checked once all are loaded)"),
    NDF_PARAM_END};

static int pattern_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    const ndf_value *p = host->value_get(params, "pattern");
    const char *name = host->value_string(p);
    if (!name || !*name)
        return host->fail_at(p, NDF_ERR_VALIDATION, "step pattern: 'pattern' is empty");
    return host->require_pattern(p, name);
}

static int pattern_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    return host->run_pattern(node, host->value_string(host->value_get(params, "pattern")), 0);
}

/* Undoing a sub-pattern rolls back all it completed. */
static int pattern_undo(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    return host->rollback_pattern(node, "complete", NULL);
}

/* ---- registration ---- */

static const ndf_step_def step_defs[] = {
    {.size = sizeof(ndf_step_def),
     .name = "exec",
     .description = "run a process (argv, or a shell command with shell = true)",
     .params = exec_params,
     .flags = NDF_STEP_BLOCKING,
     .create = exec_create,
     .run = exec_run,
     .undo = exec_undo},
    {.size = sizeof(ndf_step_def),
     .name = "sleep",
     .description = "wait a number of seconds",
     .params = sleep_params,
     .flags = NDF_STEP_BLOCKING,
     .run = sleep_run},
    {.size = sizeof(ndf_step_def),
     .name = "log",
     .description = "write a message to the record and the log",
     .params = log_params,
     .create = log_create,
     .run = log_run},
    /* Blocking because `after` sleeps.  Its instance is the status, not a
     * pointer: nothing to destroy. */
    {.size = sizeof(ndf_step_def),
     .name = "fail",
     .description = "fail with a message (and a status), optionally after a delay",
     .params = fail_params,
     .flags = NDF_STEP_BLOCKING,
     .create = fail_create,
     .run = fail_run},
    {.size = sizeof(ndf_step_def),
     .name = "noop",
     .description = "do nothing and succeed",
     .params = noop_params,
     .run = noop_run},
    {.size = sizeof(ndf_step_def),
     .name = "pattern",
     .description = "run another pattern as a step",
     .params = pattern_params,
     .create = pattern_create,
     .run = pattern_run,
     .undo = pattern_undo},
};

static int steps_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = NULL;
    for (size_t i = 0; i < sizeof step_defs / sizeof step_defs[0]; i++) {
        int rc = host->register_step(reg, &step_defs[i]);
        if (rc)
            return rc;
    }
    return NDF_OK;
}

NDF_PLUGIN_DEFINE("steps", "1.0.0", "MIT", "core steps: exec, sleep, log, fail, noop, pattern",
                  steps_init, NULL);
