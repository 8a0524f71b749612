/* The `agent` step: delegates a step to an agent program, any
 * program that reads a prompt on its standard input and answers on its
 * standard output.  The prompt is a template expanded from the context;
 * the answer is text, or JSON checked and picked from with a JSON pointer.
 * Built only against the SDK, like every plugin.
 *
 * The host's spawn service runs the agent (process group, deadline,
 * SIGTERM then SIGKILL, the prompt fed to stdin) and, with SDK 1.2's
 * NDF_SPAWN_CAPTURE_STDOUT, hands its standard output back bounded by
 * output_limit (an agent that writes more is stopped).  The answer becomes
 * the step's result (node_set_result), which later steps read as
 * ${steps.NAME.result}, and the numbers among the usage figures become the
 * step's metrics (node_set_metric).
 *
 * Agents configured in ndf.conf reach this plugin as ordinary parameters:
 * the host merges the agent a step names into its parameters before the
 * schema check, and for a step that names none and sets no argv fills
 * `agent_types` with one complete parameter set per agent type, of which
 * run() takes the context's (ndf-plugin(7)). */
#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ndf/sdk.h>

#define PROMPT_FILE_MAX ((size_t)1 << 20)

static const ndf_param_spec agent_params[] = {
    NDF_PARAM("agent", NDF_VALUE_STRING, 0, NULL,
              "an agent of ndf.conf's agents section: its settings fill the parameters the "
              "step leaves out"),
    NDF_PARAM_LIST_RANGED("argv", NDF_VALUE_STRING, 0, 1, 4096, NULL,
                          "agent program and arguments, run without a shell (expanded); "
                          "argv[0] is looked up in PATH; without it and without 'agent', the "
                          "agent is chosen by the context's agent type"),
    NDF_PARAM_GROUP("agent_types", NDF_PARAM_OPEN, NULL,
                    "filled in by the host (not written in a pattern): per agent type, the "
                    "step's parameters with that type's agent from ndf.conf"),
    NDF_PARAM_GROUP("env", 0, NULL, "extra environment: NAME = \"value\" members, values expanded"),
    NDF_PARAM("cwd", NDF_VALUE_STRING, 0, NULL, "working directory (expanded)"),
    NDF_PARAM("prompt", NDF_VALUE_STRING, 0, NULL,
              "the prompt template, expanded with ${...} and written to the agent's stdin"),
    NDF_PARAM("prompt_file", NDF_VALUE_STRING, 0, NULL,
              "a file holding the prompt template (relative to the defining file; read when "
              "the configuration is loaded, at most 1 MiB)"),
    NDF_PARAM("format", NDF_VALUE_STRING, 0, "\"text\"",
              "the answer on stdout: text, or json (checked)"),
    NDF_PARAM("result", NDF_VALUE_STRING, 0, "\"\"",
              "json: JSON pointer (RFC 6901) to the result in the answer; \"\" the whole answer"),
    NDF_PARAM("usage", NDF_VALUE_STRING, 0, NULL,
              "json: JSON pointer to usage figures the agent reports (tokens, cost), logged"),
    NDF_PARAM_RANGED("timeout", NDF_VALUE_NUMBER, 0, "0", 0, 1e9,
                     "seconds the agent may take (0: only the enclosing deadlines)"),
    NDF_PARAM_RANGED("output_limit", NDF_VALUE_INT, 0, "1048576", 1, 67108864.0,
                     "bytes of answer accepted; a longer answer fails the step (at most 64 MiB)"),
    NDF_PARAM_END};

/* What create() compiled from one set of parameters. */
typedef struct agent {
    char *prompt; /* the template, from prompt or prompt_file */
    int json;
} agent;

/* The step's instance: one agent, or one per agent type when the host
 * filled `agent_types` (the step named no agent and set no argv), chosen
 * when the step runs by the context's agent type. */
typedef struct agent_inst {
    agent one;
    size_t ntypes;
    const char **type;        /* borrowed from the parameters, like params */
    const ndf_value **params; /* that type's complete parameters */
    agent *a;
} agent_inst;

static int env_name_ok(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* RFC 6901: "" or "/" followed by reference tokens, "~" only as "~0" or
 * "~1". */
static int pointer_ok(const char *p)
{
    if (!*p)
        return 1;
    if (*p != '/')
        return 0;
    for (; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return 0;
    return 1;
}

/* Reads the template file named by `v`: relative to the directory of the
 * file that defines it, regular, at most PROMPT_FILE_MAX bytes, no NUL. */
static int read_prompt_file(const ndf_host *host, const ndf_value *v, char **out)
{
    const char *name = host->value_string(v), *def = host->value_file(v);
    char path[PATH_MAX];
    const char *slash = def ? strrchr(def, '/') : NULL;
    int n = name[0] != '/' && slash
                ? snprintf(path, sizeof path, "%.*s/%s", (int)(slash - def), def, name)
                : snprintf(path, sizeof path, "%s", name);
    if (n < 0 || (size_t)n >= sizeof path)
        return host->fail_at(v, NDF_ERR_VALIDATION, "step agent: prompt_file '%s': name too long",
                             name);
    /* O_NONBLOCK: a FIFO must not hang the load; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return host->fail_at(v, NDF_ERR_VALIDATION, "step agent: cannot read prompt_file '%s': %s",
                             path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > PROMPT_FILE_MAX) {
        close(fd);
        return host->fail_at(v, NDF_ERR_VALIDATION, "step agent: prompt_file '%s' is %s", path,
                             S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
    }
    char *buf = malloc(PROMPT_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, PROMPT_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return host->fail_at(v, NDF_ERR_VALIDATION, "step agent: reading prompt_file '%s': %s",
                                 path, strerror(e));
        }
        if (r == 0 || (len += (size_t)r) > PROMPT_FILE_MAX)
            break;
    }
    close(fd);
    if (len > PROMPT_FILE_MAX || memchr(buf, '\0', len)) {
        free(buf);
        return host->fail_at(v, NDF_ERR_VALIDATION, "step agent: prompt_file '%s' %s", path,
                             len > PROMPT_FILE_MAX ? "grew past 1 MiB while read"
                                                   : "contains a NUL byte");
    }
    buf[len] = '\0';
    *out = buf;
    return NDF_OK;
}

static void agent_destroy(const ndf_host *host, void *instance)
{
    (void)host;
    agent_inst *st = instance;
    if (!st)
        return;
    free(st->one.prompt);
    for (size_t i = 0; i < st->ntypes; i++)
        free(st->a[i].prompt);
    free(st->a);
    free(st->type);
    free(st->params);
    free(st);
}

/* Compiles one complete set of parameters into *a. */
static int agent_compile(const ndf_host *host, const ndf_value *params, agent *a)
{
    const ndf_value *argv = host->value_get(params, "argv");
    if (!argv)
        return host->fail_at(params, NDF_ERR_VALIDATION,
                             "step agent: no program: set 'argv', or name an agent of ndf.conf "
                             "with 'agent'");
    const char *prog = host->value_string(host->value_at(argv, 0));
    if (!prog || !*prog)
        return host->fail_at(argv, NDF_ERR_VALIDATION, "step agent: 'argv[0]' is empty");
    const ndf_value *env = host->value_get(params, "env");
    for (size_t i = 0; i < host->value_count(env); i++) {
        const ndf_value *e = host->value_at(env, i);
        if (!env_name_ok(host->value_name(e)))
            return host->fail_at(e, NDF_ERR_VALIDATION,
                                 "step agent: 'env.%s' is not a valid environment variable name",
                                 host->value_name(e));
        if (host->value_type(e) != NDF_VALUE_STRING)
            return host->fail_at(e, NDF_ERR_VALIDATION, "step agent: 'env.%s' must be a string",
                                 host->value_name(e));
    }
    const ndf_value *fmt = host->value_get(params, "format");
    const char *f = host->value_string(fmt);
    if (strcmp(f, "text") != 0 && strcmp(f, "json") != 0)
        return host->fail_at(fmt, NDF_ERR_VALIDATION,
                             "step agent: unknown format '%s' (text or json)", f);
    int json = strcmp(f, "json") == 0;
    const char *ptrs[] = {"result", "usage"};
    for (size_t i = 0; i < 2; i++) {
        const ndf_value *v = host->value_get(params, ptrs[i]);
        const char *p = host->value_string(v);
        if (!p || (!*p && i == 0))
            continue;
        if (!json)
            return host->fail_at(v, NDF_ERR_VALIDATION,
                                 "step agent: '%s' picks from a JSON answer: it needs format = "
                                 "\"json\"",
                                 ptrs[i]);
        if (!pointer_ok(p) || !*p)
            return host->fail_at(v, NDF_ERR_VALIDATION,
                                 "step agent: '%s' = \"%s\" is not a JSON pointer (\"/a/0/b\"; "
                                 "'~' only as ~0 or ~1)",
                                 ptrs[i], p);
    }
    const ndf_value *prompt = host->value_get(params, "prompt");
    const ndf_value *file = host->value_get(params, "prompt_file");
    if (!prompt == !file)
        return host->fail_at(prompt ? prompt : params, NDF_ERR_VALIDATION,
                             "step agent: give either 'prompt' or 'prompt_file'%s",
                             prompt ? ", not both" : "");
    double timeout = host->value_number(host->value_get(params, "timeout"));
    if (timeout > 0 && !NDF_HOST_HAS(host, node_set_timeout))
        return host->fail_at(params, NDF_ERR_VALIDATION,
                             "step agent: this host cannot limit a step's time (its services "
                             "table has no node_set_timeout); leave out 'timeout'");

    a->json = json;
    if (file)
        return read_prompt_file(host, file, &a->prompt);
    if (!(a->prompt = strdup(host->value_string(prompt))))
        return host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
    return NDF_OK;
}

static int agent_create(const ndf_host *host, const ndf_value *params, void **instance)
{
    *instance = NULL;
    agent_inst *st = calloc(1, sizeof *st);
    if (!st)
        return host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
    const ndf_value *map = host->value_get(params, "agent_types");
    int rc = NDF_OK;
    if (host->value_get(params, "argv") || !map) {
        rc = agent_compile(host, params, &st->one);
    } else {
        size_t n = host->value_count(map);
        st->type = calloc(n ? n : 1, sizeof *st->type);
        st->params = calloc(n ? n : 1, sizeof *st->params);
        st->a = calloc(n ? n : 1, sizeof *st->a);
        if (!st->type || !st->params || !st->a)
            rc = host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
        for (size_t i = 0; i < n && !rc; i++) {
            const ndf_value *v = host->value_at(map, i);
            st->type[i] = host->value_name(v);
            st->params[i] = v;
            st->ntypes = i + 1;
            rc = agent_compile(host, v, &st->a[i]);
        }
    }
    if (rc) {
        agent_destroy(host, st);
        return rc;
    }
    *instance = st;
    return NDF_OK;
}

/* ---- strings handed to spawn ---- */

typedef struct strings {
    char **v;
    size_t n, cap;
} strings;

/* Entries are this plugin's memory (freed with free()): strings the host
 * expanded are copied in, so the two allocators never mix in one list. */
static void strings_free(strings *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Appends `p` (owned; NULL terminates an argv). */
static int strings_push(const ndf_host *host, strings *s, char *p)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(p);
            return host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return NDF_OK;
}

/* ---- finding the program ---- */

static int is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Checks that `prog` can be run, as the trampoline's exec will look for it
 * (PATH from the step's env if it sets one, else the host's), so a missing
 * agent is a clear message rather than the shell's exit status 127. */
static int check_program(const ndf_host *host, const char *prog, const char *cwd,
                         const char *path_env)
{
    char buf[PATH_MAX];
    if (strchr(prog, '/')) {
        int n = prog[0] != '/' && cwd && *cwd ? snprintf(buf, sizeof buf, "%s/%s", cwd, prog)
                                              : snprintf(buf, sizeof buf, "%s", prog);
        if (n > 0 && (size_t)n < sizeof buf && is_executable(buf))
            return NDF_OK;
        return host->fail(NDF_ERR_EXECUTION, "step agent: cannot run '%s': %s", prog,
                          access(buf, F_OK) == 0 ? "not an executable file" : "no such file");
    }
    const char *path = path_env ? path_env : getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* An empty entry is the working directory; a relative one is
         * relative to it (the agent's, where the exec happens). */
        const char *base = cwd && *cwd ? cwd : ".";
        int n = !len          ? snprintf(buf, sizeof buf, "%s/%s", base, prog)
                : p[0] == '/' ? snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, prog)
                              : snprintf(buf, sizeof buf, "%s/%.*s/%s", base, (int)len, p, prog);
        if (n > 0 && (size_t)n < sizeof buf && is_executable(buf))
            return NDF_OK;
        if (!end)
            break;
        p = end;
    }
    return host->fail(NDF_ERR_EXECUTION, "step agent: cannot run '%s': not found in PATH", prog);
}

/* ---- the answer ---- */

/* The value at RFC 6901 pointer `ptr` in `root`, or NULL. */
static const cJSON *json_pointer(const cJSON *root, const char *ptr)
{
    const cJSON *cur = root;
    char token[1024];
    while (cur && *ptr == '/') {
        ptr++;
        size_t n = 0;
        for (; *ptr && *ptr != '/'; ptr++) {
            char ch = *ptr;
            if (ch == '~') {
                ch = ptr[1] == '1' ? '/' : '~';
                ptr++;
            }
            if (n + 1 >= sizeof token)
                return NULL;
            token[n++] = ch;
        }
        token[n] = '\0';
        if (cJSON_IsArray(cur)) {
            /* An index: digits, no leading zero. */
            char *end;
            if (!n || (n > 1 && token[0] == '0') || !isdigit((unsigned char)token[0]))
                return NULL;
            long i = strtol(token, &end, 10);
            if (*end || i < 0 || i >= cJSON_GetArraySize(cur))
                return NULL;
            cur = cJSON_GetArrayItem(cur, (int)i);
        } else if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, token);
        } else {
            return NULL;
        }
    }
    return cur;
}

/* A short excerpt of `s` at `off` for an error message: printable ASCII,
 * the rest as '?'. */
static void excerpt(const char *s, size_t len, size_t off, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = off; i < len && k + 1 < cap && i < off + 24; i++)
        out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[k] = '\0';
}

/* The captured answer. */
typedef struct answer {
    char *buf; /* NUL-terminated */
    size_t len;
} answer;

/* Records each number in `usage` as a metric named by its path ("tokens",
 * "usage.input_tokens" for nested objects); other values are only logged. */
static void usage_metrics(const ndf_host *host, ndf_exec *node, const cJSON *v, char *path,
                          size_t len, size_t cap)
{
    if (cJSON_IsNumber(v)) {
        if (len && host->node_set_metric(node, path, v->valuedouble) != NDF_OK)
            host->node_log(node, NDF_LOG_WARN, "usage figure '%s' not kept: %s", path,
                           host->last_error());
        return;
    }
    if (!cJSON_IsObject(v))
        return;
    const cJSON *c;
    cJSON_ArrayForEach(c, v)
    {
        int n = snprintf(path + len, cap - len, "%s%s", len ? "." : "", c->string);
        if (n > 0 && (size_t)n < cap - len)
            usage_metrics(host, node, c, path, len + (size_t)n, cap);
        path[len] = '\0';
    }
}

/* Sets the answer as the step's result (with the usage figures as its
 * metrics). */
static int take_answer(const ndf_host *host, ndf_exec *node, const ndf_value *params,
                       const agent *a, const char *prog, answer *r)
{
    if (r->len && memchr(r->buf, '\0', r->len))
        return host->fail(NDF_ERR_EXECUTION, "agent '%s': the answer contains a NUL byte", prog);
    if (!a->json) {
        size_t n = r->len;
        while (n && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r'))
            n--;
        r->buf[n] = '\0';
        return host->node_set_result(node, r->buf);
    }
    const char *end = NULL;
    cJSON *root = r->len ? cJSON_ParseWithLengthOpts(r->buf, r->len + 1, &end, 1) : NULL;
    if (!root) {
        size_t off = end && end >= r->buf ? (size_t)(end - r->buf) : 0;
        char near[32];
        excerpt(r->buf, r->len, off, near, sizeof near);
        if (!r->len)
            return host->fail(NDF_ERR_EXECUTION, "agent '%s': no answer (format = \"json\")", prog);
        return host->fail(NDF_ERR_EXECUTION,
                          "agent '%s': the answer is not valid JSON (at byte %zu of %zu: '%s')",
                          prog, off, r->len, near);
    }
    const char *rp = host->value_string(host->value_get(params, "result"));
    const cJSON *res = json_pointer(root, rp ? rp : "");
    int rc = NDF_OK;
    if (!res) {
        rc = host->fail(NDF_ERR_EXECUTION, "agent '%s': the answer has no value at '%s'", prog, rp);
    } else if (cJSON_IsString(res)) {
        rc = host->node_set_result(node, res->valuestring);
    } else {
        char *text = cJSON_PrintUnformatted(res);
        if (!text)
            rc = host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
        else
            rc = host->node_set_result(node, text);
        free(text);
    }
    const char *up = host->value_string(host->value_get(params, "usage"));
    const cJSON *usage = up && rc == NDF_OK ? json_pointer(root, up) : NULL;
    if (usage) {
        char *text = cJSON_PrintUnformatted(usage);
        if (text)
            host->node_log(node, NDF_LOG_INFO, "usage: %s", text);
        free(text);
        char path[256] = "";
        usage_metrics(host, node, usage, path, 0, sizeof path);
    } else if (up && rc == NDF_OK) {
        host->node_log(node, NDF_LOG_WARN, "no usage figures at '%s' in the answer", up);
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- running ---- */

/* Expands argv, env and cwd into `argv`, `env` and *cwd, and the prompt
 * into *prompt. */
static int build(const ndf_host *host, ndf_exec *node, const ndf_value *params, const agent *a,
                 strings *argv, strings *env, char **cwd, char **prompt, const char **path_env)
{
    int rc = NDF_OK;
    const ndf_value *av = host->value_get(params, "argv");
    for (size_t i = 0; i < host->value_count(av) && !rc; i++) {
        char *x = NULL;
        rc = host->expand(node, host->value_string(host->value_at(av, i)), &x);
        char *own = rc ? NULL : strdup(x);
        host->free(x);
        if (!rc && !own)
            rc = host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
        if (!rc)
            rc = strings_push(host, argv, own);
    }
    if (!rc)
        rc = strings_push(host, argv, NULL);

    const ndf_value *eg = host->value_get(params, "env");
    size_t nenv = host->value_count(eg);
    for (size_t i = 0; i < nenv && !rc; i++) {
        const ndf_value *e = host->value_at(eg, i);
        char *val = NULL;
        if ((rc = host->expand(node, host->value_string(e), &val)))
            break;
        const char *name = host->value_name(e);
        size_t len = strlen(name) + strlen(val) + 2;
        char *kv = malloc(len);
        if (!kv) {
            host->free(val);
            rc = host->fail(NDF_ERR_NOMEM, "step agent: out of memory");
            break;
        }
        snprintf(kv, len, "%s=%s", name, val);
        host->free(val);
        if (strcmp(name, "PATH") == 0)
            *path_env = kv + 5;
        rc = strings_push(host, env, kv);
    }
    if (!rc && nenv)
        rc = strings_push(host, env, NULL);
    const char *s = host->value_string(host->value_get(params, "cwd"));
    if (!rc && s)
        rc = host->expand(node, s, cwd);
    if (!rc)
        rc = host->expand(node, a->prompt, prompt);
    return rc;
}

static int run_agent(const ndf_host *host, ndf_exec *node, const ndf_value *params, const agent *a)
{
    const char *prog = host->value_string(host->value_at(host->value_get(params, "argv"), 0));
    strings argv = {0}, env = {0};
    char *cwd = NULL, *prompt = NULL;
    const char *path_env = NULL;
    size_t limit = (size_t)host->value_int(host->value_get(params, "output_limit"));
    double timeout = host->value_number(host->value_get(params, "timeout"));

    int rc = build(host, node, params, a, &argv, &env, &cwd, &prompt, &path_env);
    if (!rc) {
        prog = argv.v[0]; /* expanded: its name in messages */
        rc = check_program(host, prog, cwd, path_env);
    }
    ndf_spawn_result res = {.size = sizeof res};
    int started = 0;
    if (!rc) {
        if (timeout > 0)
            host->node_set_timeout(node, timeout);
        ndf_spawn opts = {
            .size = sizeof opts,
            .argv = (const char *const *)argv.v,
            .env = env.n ? (const char *const *)env.v : NULL,
            .cwd = cwd,
            .input = prompt,
            .input_len = strlen(prompt),
            .output_limit = limit,
            .flags = NDF_SPAWN_CAPTURE_STDOUT,
        };
        rc = host->spawn(node, &opts, &res);
        started = res.output != NULL;
    }

    /* What went wrong first is what the step says: stopped from outside,
     * then the answer's size, then the agent's own end. */
    if (rc == NDF_ERR_CANCELLED) {
        /* The host's message stands. */
    } else if (started && res.output_overflow) {
        rc = host->fail(NDF_ERR_EXECUTION,
                        "agent '%s': the answer is longer than output_limit (%zu bytes); the "
                        "agent was stopped",
                        prog, limit);
    } else if (started && rc == NDF_ERR_TIMEOUT) {
        char why[256];
        snprintf(why, sizeof why, "%s", host->last_error());
        rc = host->fail(NDF_ERR_TIMEOUT, "agent '%s' did not answer in time: %s", prog, why);
    } else if (started && rc) {
        char why[256];
        snprintf(why, sizeof why, "%s", host->last_error());
        rc = host->fail(rc, "agent '%s' failed: %s (its stderr is in the record)", prog, why);
    } else if (started) {
        host->node_log(node, NDF_LOG_INFO, "agent '%s' answered in %.3f s (%zu bytes)", prog,
                       res.wall_s, res.output_len);
        answer ans = {res.output, res.output_len};
        rc = take_answer(host, node, params, a, prog, &ans);
    }
    host->free(res.output);
    strings_free(&argv);
    strings_free(&env);
    host->free(cwd);
    host->free(prompt);
    return rc;
}

static int agent_run(const ndf_host *host, ndf_exec *node, const ndf_value *params, void *inst)
{
    const agent_inst *st = inst;
    if (!st->ntypes)
        return run_agent(host, node, params, &st->one);
    const char *type = host->ctx_agent_type(host->exec_context(node));
    if (!type)
        type = "";
    for (size_t i = 0; i < st->ntypes; i++)
        if (strcmp(st->type[i], type) == 0) {
            const char *name = host->value_string(host->value_get(st->params[i], "agent"));
            host->node_log(node, NDF_LOG_INFO, "agent '%s' serves agent type '%s'",
                           name ? name : "?", type);
            return run_agent(host, node, st->params[i], &st->a[i]);
        }
    /* The context names no type, or one no agent serves: not the
     * pattern's failure, so a validation error (not counted). */
    char served[512];
    size_t len = 0;
    served[0] = '\0';
    for (size_t i = 0; i < st->ntypes && len < sizeof served; i++) {
        int n = snprintf(served + len, sizeof served - len, "%s%s", i ? ", " : "", st->type[i]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (!*type)
        return host->fail(NDF_ERR_VALIDATION,
                          "step agent: the context has no agent type to choose an agent by "
                          "(agents serve: %s)",
                          served);
    return host->fail(NDF_ERR_VALIDATION,
                      "step agent: no agent of ndf.conf serves agent type '%s' (they serve: %s)",
                      type, served);
}

static const ndf_step_def agent_step = {
    .size = sizeof(ndf_step_def),
    .name = "agent",
    .description =
        "delegate to an agent program: a prompt on its stdin, the answer from its stdout",
    .params = agent_params,
    .flags = NDF_STEP_BLOCKING,
    .create = agent_create,
    .destroy = agent_destroy,
    .run = agent_run,
};

static int agent_init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = NULL;
    return host->register_step(reg, &agent_step);
}

NDF_PLUGIN_DEFINE("agent", "1.0.0", "MIT",
                  "the agent step: delegate a step to an agent program (prompt in, answer out)",
                  agent_init, NULL);
