/* Reading the configuration: libconfig files become plain C settings and
 * ndf_value pattern definitions that remember their file:line.  This is the
 * only file in ndf that includes <libconfig.h>. */
#include "build-config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "conf/config.h"
#include "conf/agents.h"
#include "conf/conftext.h"
#include "base/hashmap.h"
#include "base/learning.h"
#include "base/util.h"
#include "base/value.h"

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/ndf"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/usr/local/var"
#endif

/* ---- paths ---- */

static char *path_absolute(const char *path)
{
    if (path[0] == '/')
        return xstrdup(path);
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return xstrdup(path); /* cannot do better; relative paths still work */
    while (path[0] == '.' && path[1] == '/') {
        path += 2;
        while (*path == '/')
            path++;
    }
    char *r = xasprintf("%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path);
    free(cwd);
    return r;
}

/* The directory part of an absolute file name ("/" for "/x"). */
static char *path_dir(const char *file)
{
    const char *slash = strrchr(file, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == file)
        return xstrdup("/");
    return xstrndup(file, (size_t)(slash - file));
}

/* `p` when absolute, else `p` relative to the directory of `file`. */
static char *path_resolve(const char *file, const char *p)
{
    if (p[0] == '/' || !file)
        return xstrdup(p);
    char *dir = path_dir(file);
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (*p == '/')
            p++;
    }
    if (strcmp(p, ".") == 0)
        p = "";
    char *r = *p ? xasprintf("%s%s%s", dir, strcmp(dir, "/") ? "/" : "", p)
                 : xstrdup(dir); /* "." or "./" is the directory itself */
    free(dir);
    return r;
}

/* ---- defaults ---- */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* XDG variables must hold absolute paths; others are ignored (XDG spec). */
static const char *env_abs(const char *name)
{
    const char *v = env_nonempty(name);
    return v && v[0] == '/' ? v : NULL;
}

static char *default_storage_path(void)
{
    const char *v;
    if ((v = env_nonempty("NDF_STATE_DIR")))
        return xstrdup(v);
    if ((v = env_abs("XDG_STATE_HOME")))
        return xasprintf("%s/ndf", v);
    if ((v = env_nonempty("HOME")))
        return xasprintf("%s/.local/state/ndf", v);
    return xstrdup(LOCALSTATEDIR "/lib/ndf");
}

char *settings_default_state_dir(void)
{
    return default_storage_path();
}

static char *default_socket_path(void)
{
    const char *v;
    if ((v = env_nonempty("NDF_RUNTIME_DIR")))
        return xasprintf("%s/ndf.sock", v);
    if ((v = env_abs("XDG_RUNTIME_DIR")))
        return xasprintf("%s/ndf/ndf.sock", v);
    return xasprintf("/tmp/ndf-%lu/ndf.sock", (unsigned long)getuid());
}

void settings_default(settings *s)
{
    memset(s, 0, sizeof *s);
    s->confidence_threshold = 0.75;
    s->confidence_gate = GATE_WARN;
    s->delegation_max_fallbacks = 2;
    s->delegation_prior_strength = 10;
    s->delegation_epsilon = 0.1;
    learning_params_default(&s->learning);
    /* The documented defaults (ndf.conf(5)) are stated here, so the page and
     * `ndf config` agree whatever the learning module's own defaults are. */
    s->learning.algorithm = ALGO_ADAPTIVE_BAYES;
    s->learning.learning_rate = 0.1;
    s->learning.min_samples = 5;
    s->learning.convergence_threshold = 0.95;
    s->cache_size = 1000;
    s->learning_enabled = 1;
    s->threads = 4;
    s->default_timeout = 60.0;
    s->pattern_timeout = 120.0;
    s->kill_grace = 2.0;
    s->storage_path = default_storage_path();
    s->backups = 5;
    s->compression = 1;
    s->compression_level = 6;
    s->history_limit = 1000;
    s->plugin_dirs = xmalloc(sizeof *s->plugin_dirs);
    s->plugin_dirs[0] = xstrdup(PLUGINDIR);
    s->nplugin_dirs = 1;
    s->allow_insecure = 0;
    s->cache_dir = NULL;
    s->scan_plugins = 1;
    s->scan_timeout = 0;
    s->verdict_dir = NULL;
    s->isolation = 0;
    s->isolate = s->trust = NULL;
    s->nisolate = s->ntrust = 0;
    s->worker_memory_mb = 1024;
    s->worker_cpu_s = 0;
    s->socket_path = default_socket_path();
    s->socket_group = NULL;
    s->idle_timeout = 60.0;
    s->max_conns_per_uid = 128;
    s->worker = 0;
    s->worker_capacity = 0;
    s->worker_lease = 30;
    s->worker_poll = 0.5;
    s->patterns_dir = NULL;
}

static void free_dirs(settings *s)
{
    for (size_t i = 0; i < s->nplugin_dirs; i++)
        free(s->plugin_dirs[i]);
    free(s->plugin_dirs);
    s->plugin_dirs = NULL;
    s->nplugin_dirs = 0;
}

static void free_names(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

void settings_free(settings *s)
{
    if (!s)
        return;
    free(s->file);
    free(s->storage_path);
    free(s->storage_conninfo);
    free_dirs(s);
    free_names(&s->isolate, &s->nisolate);
    free_names(&s->trust, &s->ntrust);
    free(s->cache_dir);
    free(s->verdict_dir);
    free(s->socket_path);
    free(s->socket_group);
    free(s->patterns_dir);
    value_free(s->agents);
    memset(s, 0, sizeof *s);
}

/* ---- diagnostics ---- */

static void diag_add(config *c, int is_error, const char *file, int line, const char *fmt, ...)
    ATTR_PRINTF(5, 6);

static void diag_add(config *c, int is_error, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    if ((c->ndiags & (c->ndiags - 1)) == 0) /* 0, 1, 2, 4, ...: double, stay linear */
        c->diags = xrealloc(c->diags, (c->ndiags ? 2 * c->ndiags : 1) * sizeof *c->diags);
    c->diags[c->ndiags].is_error = is_error;
    char *text = file ? xasprintf("%s:%d: %s", file, line, msg) : xstrdup(msg);
    /* a diagnostic quotes the configuration (keys, names, values, libconfig's
     * words about them) and its file names: a hostile file must not put an
     * escape sequence on the operator's terminal, the service's log or a
     * ctl client's screen */
    c->diags[c->ndiags].text = term_safe(text);
    free(text);
    c->ndiags++;
    if (is_error)
        c->nerrors++;
    free(msg);
}

/* Levenshtein distance, capped: names are short. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest of `names` (NULL-terminated) to `key` when it is close enough
 * to be a likely typo, else NULL. */
static const char *suggest(const char *key, const char *const *names)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (size_t i = 0; names[i]; i++) {
        size_t d = edit_distance(key, names[i]);
        if (d < bestd) {
            bestd = d;
            best = names[i];
        }
    }
    size_t len = strlen(key);
    size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    return bestd <= limit ? best : NULL;
}

static void warn_unknown(config *c, const char *file, int line, const char *what, const char *key,
                         const char *const *names)
{
    const char *s = suggest(key, names);
    if (s)
        diag_add(c, 0, file, line, "unknown key '%s'%s (did you mean '%s'?)", key, what, s);
    else
        diag_add(c, 0, file, line, "unknown key '%s'%s", key, what);
}

/* ---- libconfig to plain values ---- */

/* Everything a read needs to know besides the config itself. */
typedef struct reader {
    config *c;
    const char *file; /* interned absolute name of the file being read */
    char *incdir;     /* its directory: where libconfig 1.5 resolves @include */
    conftext *txt;    /* the expanded text being parsed: its line map */
    hashmap *seen;    /* pattern name -> its first definition (struct seen) */
} reader;

struct seen {
    const char *file; /* interned */
    int line;
};

/* libconfig parses the expanded text (conftext), so its lines are lines of
 * that text: the line map turns them back into the file and line they came
 * from. */
static void setting_pos(const reader *r, const config_setting_t *s, const char **file, int *line)
{
    int l = (int)config_setting_source_line(s);
    if (l <= 0 || !r->txt) {
        *file = r->file;
        *line = l;
        return;
    }
    conftext_where(r->txt, l, file, line);
    if (!*file)
        *file = r->file;
}

static const char *setting_file(const reader *r, const config_setting_t *s)
{
    const char *f;
    int l;
    setting_pos(r, s, &f, &l);
    return f;
}

static int setting_line(const reader *r, const config_setting_t *s)
{
    const char *f;
    int l;
    setting_pos(r, s, &f, &l);
    return l;
}

static const char *lc_type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a bool";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    case CONFIG_TYPE_GROUP: return "a group";
    default: return "nothing";
    }
}

/* Converts a setting and everything below it; each node gets its own
 * file:line (a member without a line of its own inherits its parent's). */
static ndf_value *to_value(const reader *r, const config_setting_t *s, const char *name,
                           const char *pfile, int pline)
{
    ndf_value *v;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: v = value_new_int(name, (int64_t)config_setting_get_int64(s)); break;
    case CONFIG_TYPE_FLOAT: v = value_new_number(name, config_setting_get_float(s)); break;
    case CONFIG_TYPE_STRING: v = value_new_string(name, config_setting_get_string(s)); break;
    case CONFIG_TYPE_BOOL: v = value_new_bool(name, config_setting_get_bool(s)); break;
    case CONFIG_TYPE_GROUP: v = value_new_group(name); break;
    default: v = value_new_list(name); break;
    }
    const char *file = setting_file(r, s);
    int line = setting_line(r, s);
    if (line <= 0) {
        file = pfile;
        line = pline;
    }
    value_set_pos(v, file, line);
    if (v->type == NDF_VALUE_GROUP || v->type == NDF_VALUE_LIST) {
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            value_append(v, to_value(r, e, v->type == NDF_VALUE_GROUP ? config_setting_name(e)
                                                                      : NULL,
                                     file, line));
        }
    }
    return v;
}

/* ---- global settings ---- */

typedef enum key_type {
    KT_INT,   /* int */
    KT_LONG,  /* long */
    KT_NUM,   /* double; integers accepted */
    KT_BOOL,  /* int 0/1 */
    KT_STR,   /* char *, "" means NULL */
    KT_PATH,  /* char *, resolved against the file's directory */
    KT_PATHS, /* plugin_dirs: list of paths (or one string) */
    KT_ALGO,  /* confidence_algorithm */
    KT_GATE,  /* int: confidence_gate, "warn", "enforce" or "off" */
    KT_SYNC,   /* int: storage.sync, "normal" 0 or "full" 1 */
    KT_SCOPE,  /* int: resources.scope, "ndf" 0 or "system" 1 */
    KT_BACKEND, /* int: storage.backend, "sqlite" 0 or "postgresql" 1 */
    KT_ISOLATION, /* int: plugins.isolation, "auto" 0, "none" 1, "process" 2 */
    KT_NAMES      /* plugins.isolate / plugins.trust: a list of names */
} key_type;

typedef struct key_def {
    const char *name;
    key_type type;
    double min, max;
    int min_open; /* the minimum itself is excluded (> min) */
    size_t off;
} key_def;

#define OFF(f) offsetof(settings, f)
#define NOMAX HUGE_VAL

static const key_def confidence_keys[] = {
    {"threshold", KT_NUM, 0, 1, 0, OFF(confidence_threshold)},
    {"algorithm", KT_ALGO, 0, 0, 0, OFF(learning.algorithm)},
    {"gate", KT_GATE, 0, 0, 0, OFF(confidence_gate)},
    {"learning_rate", KT_NUM, 0, 1, 0, OFF(learning.learning_rate)},
    {"min_samples", KT_INT, 0, 1e6, 0, OFF(learning.min_samples)},
    {"convergence_threshold", KT_NUM, 0, 1, 0, OFF(learning.convergence_threshold)},
    {NULL, 0, 0, 0, 0, 0}};
static const key_def registry_keys[] = {
    {"cache_size", KT_LONG, 1, 1e8, 0, OFF(cache_size)},
    {"learning", KT_BOOL, 0, 0, 0, OFF(learning_enabled)},
    {NULL, 0, 0, 0, 0, 0}};
static const key_def executor_keys[] = {
    {"threads", KT_INT, 1, 256, 0, OFF(threads)},
    {"default_timeout", KT_NUM, 0, NOMAX, 1, OFF(default_timeout)},
    {"pattern_timeout", KT_NUM, 0, NOMAX, 1, OFF(pattern_timeout)},
    {"max_timeout", KT_NUM, 0, NOMAX, 1, OFF(max_timeout)},
    {"kill_grace", KT_NUM, 0, 60, 0, OFF(kill_grace)},
    {NULL, 0, 0, 0, 0, 0}};
static const key_def storage_keys[] = {
    {"path", KT_PATH, 0, 0, 0, OFF(storage_path)},
    {"backups", KT_INT, 0, 100, 0, OFF(backups)},
    {"compression", KT_BOOL, 0, 0, 0, OFF(compression)},
    {"level", KT_INT, 1, 9, 0, OFF(compression_level)},
    {"history_limit", KT_LONG, 1, 1e6, 0, OFF(history_limit)},
    {"sync", KT_SYNC, 0, 0, 0, OFF(storage_sync)},
    {"retention", KT_NUM, 0, NOMAX, 0, OFF(retention_days)},
    {"backup_interval", KT_NUM, 0, NOMAX, 0, OFF(backup_interval)},
    {"backend", KT_BACKEND, 0, 0, 0, OFF(storage_backend)},
    {"conninfo", KT_STR, 0, 0, 0, OFF(storage_conninfo)},
    {NULL, 0, 0, 0, 0, 0}};
static const key_def plugins_keys[] = {
    {"dirs", KT_PATHS, 0, 0, 0, 0},
    {"allow_insecure", KT_BOOL, 0, 0, 0, OFF(allow_insecure)},
    {"cache_dir", KT_PATH, 0, 0, 0, OFF(cache_dir)},
    {"scan", KT_BOOL, 0, 0, 0, OFF(scan_plugins)},
    {"scan_timeout", KT_NUM, 0, 3600, 1, OFF(scan_timeout)},
    {"verdict_dir", KT_PATH, 0, 0, 0, OFF(verdict_dir)},
    {"isolation", KT_ISOLATION, 0, 0, 0, OFF(isolation)},
    {"isolate", KT_NAMES, 0, 0, 0, OFF(isolate)},
    {"trust", KT_NAMES, 0, 0, 0, OFF(trust)},
    {"memory_limit", KT_NUM, 0, 1048576, 0, OFF(worker_memory_mb)},
    {"cpu_limit", KT_NUM, 0, 86400, 0, OFF(worker_cpu_s)},
    {NULL, 0, 0, 0, 0, 0}};
static const key_def server_keys[] = {
    {"socket", KT_PATH, 0, 0, 0, OFF(socket_path)},
    {"group", KT_STR, 0, 0, 0, OFF(socket_group)},
    {"idle_timeout", KT_NUM, 0, 86400, 1, OFF(idle_timeout)},
    {"max_connections_per_uid", KT_INT, 1, 512, 0, OFF(max_conns_per_uid)},
    {"worker", KT_BOOL, 0, 0, 0, OFF(worker)},
    {"worker_capacity", KT_INT, 0, 4096, 0, OFF(worker_capacity)},
    {"worker_lease", KT_NUM, 1, 86400, 0, OFF(worker_lease)},
    {"worker_poll", KT_NUM, 0.01, 60, 0, OFF(worker_poll)},
    {NULL, 0, 0, 0, 0, 0}};

static const key_def delegation_keys[] = {
    {"max_fallbacks", KT_INT, 0, 1e6, 0, OFF(delegation_max_fallbacks)},
    {"prior_strength", KT_NUM, 0, 1e6, 0, OFF(delegation_prior_strength)},
    {"epsilon", KT_NUM, 0, 1, 0, OFF(delegation_epsilon)},
    {NULL, 0, 0, 0, 0, 0}};

static const key_def resources_keys[] = {
    {"scope", KT_SCOPE, 0, 0, 0, OFF(resources_system)},
    {NULL, 0, 0, 0, 0, 0}};

static const struct section {
    const char *name;
    const key_def *keys;
} sections[] = {
    {"confidence", confidence_keys}, {"registry", registry_keys}, {"executor", executor_keys},
    {"storage", storage_keys},       {"plugins", plugins_keys},   {"server", server_keys},
    {"resources", resources_keys},   {"delegation", delegation_keys},
};

static const char *const top_names[] = {"confidence", "registry",     "executor",  "storage",
                                        "plugins",    "server",       "resources", "delegation",
                                        "agents",     "patterns_dir", "patterns",  NULL};

static int is_int_type(int t)
{
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static void type_error(reader *r, const config_setting_t *s, const char *key, const char *want)
{
    diag_add(r->c, 1, setting_file(r, s), setting_line(r, s), "'%s' must be %s, not %s", key, want,
             lc_type_name(config_setting_type(s)));
}

/* Integers in full ("1000001", not "1e+06"), other numbers with %g. */
static const char *fmt_num(char *buf, size_t n, double x)
{
    if (x == floor(x) && fabs(x) < 1e15)
        snprintf(buf, n, "%.0f", x);
    else
        snprintf(buf, n, "%g", x);
    return buf;
}

/* Checks `x` against the key's range; reports and returns -1 when outside.
 * `exact`: the integer itself, quoted in full (a double rounds 2^63 - 1). */
static int check_key_range(reader *r, const config_setting_t *s, const char *key,
                           const key_def *k, double x, const long long *exact)
{
    int ok = k->min_open ? x > k->min : x >= k->min;
    if (ok && x <= k->max && isfinite(x))
        return 0;
    char bx[32], blo[32], bhi[32];
    if (exact)
        snprintf(bx, sizeof bx, "%lld", *exact);
    else
        fmt_num(bx, sizeof bx, x);
    fmt_num(blo, sizeof blo, k->min);
    if (isinf(k->max) && k->min_open)
        diag_add(r->c, 1, setting_file(r, s), setting_line(r, s), "'%s' is %s, must be greater than %s",
                 key, bx, blo);
    else
        diag_add(r->c, 1, setting_file(r, s), setting_line(r, s), "'%s' is %s, out of range [%s, %s]",
                 key, bx, blo, fmt_num(bhi, sizeof bhi, k->max));
    return -1;
}

static void set_string(char **slot, char *v)
{
    free(*slot);
    *slot = v;
}

static void read_plugin_dirs(reader *r, const config_setting_t *s, const char *key)
{
    settings *set = &r->c->set;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_STRING) {
        free_dirs(set);
        set->plugin_dirs = xmalloc(sizeof *set->plugin_dirs);
        set->plugin_dirs[0] = path_resolve(setting_file(r, s), config_setting_get_string(s));
        set->nplugin_dirs = 1;
        return;
    }
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        type_error(r, s, key, "a list of strings");
        return;
    }
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            int line = setting_line(r, e) > 0 ? setting_line(r, e) : setting_line(r, s);
            diag_add(r->c, 1, setting_file(r, s), line, "'%s[%d]' must be a string, not %s", key,
                     i, lc_type_name(config_setting_type(e)));
            return;
        }
    }
    free_dirs(set);
    set->plugin_dirs = xcalloc((size_t)n + 1, sizeof *set->plugin_dirs);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        set->plugin_dirs[i] = path_resolve(setting_file(r, s), config_setting_get_string(e));
    }
    set->nplugin_dirs = (size_t)n;
}

/* A list of plugin or step names ([a-z0-9_]+), or one string. */
static void read_names(reader *r, const config_setting_t *s, const char *key, char ***v,
                       size_t *nv)
{
    int t = config_setting_type(s);
    int one = t == CONFIG_TYPE_STRING;
    if (!one && t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        type_error(r, s, key, "a list of plugin or step names");
        return;
    }
    int n = one ? 1 : config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = one ? s : config_setting_get_elem(s, (unsigned)i);
        int line = setting_line(r, e) > 0 ? setting_line(r, e) : setting_line(r, s);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            diag_add(r->c, 1, setting_file(r, s), line, "'%s[%d]' must be a string, not %s", key,
                     i, lc_type_name(config_setting_type(e)));
            return;
        }
        const char *name = config_setting_get_string(e);
        size_t len = strlen(name);
        if (len == 0 || len > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != len) {
            diag_add(r->c, 1, setting_file(r, s), line,
                     "'%s[%d]' is not a plugin or step name (lower-case letters, digits, '_', "
                     "'-' and '.')",
                     key, i);
            return;
        }
    }
    free_names(v, nv);
    *v = xcalloc((size_t)n + 1, sizeof **v);
    for (int i = 0; i < n; i++)
        (*v)[i] = xstrdup(config_setting_get_string(one ? s : config_setting_get_elem(s, (unsigned)i)));
    *nv = (size_t)n;
}

static void read_key(reader *r, const config_setting_t *s, const char *key, const key_def *k)
{
    char *base = (char *)&r->c->set;
    int t = config_setting_type(s);
    switch (k->type) {
    case KT_INT:
    case KT_LONG: {
        if (!is_int_type(t)) {
            type_error(r, s, key, "an integer");
            return;
        }
        long long x = config_setting_get_int64(s);
        if (check_key_range(r, s, key, k, (double)x, &x))
            return;
        if (k->type == KT_INT)
            *(int *)(base + k->off) = (int)x;
        else
            *(long *)(base + k->off) = (long)x;
        return;
    }
    case KT_NUM: {
        double x;
        long long ix = 0;
        if (is_int_type(t))
            x = (double)(ix = config_setting_get_int64(s));
        else if (t == CONFIG_TYPE_FLOAT)
            x = config_setting_get_float(s);
        else {
            type_error(r, s, key, "a number");
            return;
        }
        if (check_key_range(r, s, key, k, x, is_int_type(t) ? &ix : NULL))
            return;
        *(double *)(base + k->off) = x;
        return;
    }
    case KT_BOOL:
        if (t != CONFIG_TYPE_BOOL) {
            type_error(r, s, key, "a bool (true or false)");
            return;
        }
        *(int *)(base + k->off) = config_setting_get_bool(s) != 0;
        return;
    case KT_STR:
    case KT_PATH: {
        if (t != CONFIG_TYPE_STRING) {
            type_error(r, s, key, "a string");
            return;
        }
        const char *v = config_setting_get_string(s);
        char *val = NULL;
        if (*v)
            val = k->type == KT_PATH ? path_resolve(setting_file(r, s), v) : xstrdup(v);
        set_string((char **)(base + k->off), val);
        return;
    }
    case KT_PATHS: read_plugin_dirs(r, s, key); return;
    case KT_ALGO: {
        if (t != CONFIG_TYPE_STRING) {
            type_error(r, s, key, "a string");
            return;
        }
        const char *v = config_setting_get_string(s);
        confidence_algorithm a;
        if (confidence_algorithm_parse(v, &a) != 0) {
            diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                     "'%s' is '%s', expected simple_average, weighted_average or adaptive_bayes",
                     key, v);
            return;
        }
        *(confidence_algorithm *)(base + k->off) = a;
        return;
    }
    case KT_GATE: {
        if (t != CONFIG_TYPE_STRING) {
            type_error(r, s, key, "a string");
            return;
        }
        const char *v = config_setting_get_string(s);
        confidence_gate g;
        if (confidence_gate_parse(v, &g) != 0) {
            diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                     "'%s' is '%s', expected warn, enforce or off", key, v);
            return;
        }
        *(int *)(base + k->off) = (int)g;
        return;
    }
    case KT_SYNC: {
        if (t != CONFIG_TYPE_STRING) {
            type_error(r, s, key, "a string");
            return;
        }
        const char *v = config_setting_get_string(s);
        if (strcmp(v, "normal") != 0 && strcmp(v, "full") != 0) {
            diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                     "'%s' is '%s', expected normal or full", key, v);
            return;
        }
        *(int *)(base + k->off) = strcmp(v, "full") == 0;
        return;
    }
    case KT_SCOPE: {
        if (t != CONFIG_TYPE_STRING) {
            type_error(r, s, key, "a string");
            return;
        }
        const char *v = config_setting_get_string(s);
        if (strcmp(v, "ndf") != 0 && strcmp(v, "system") != 0) {
            diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                     "'%s' is '%s', expected ndf or system", key, v);
            return;
        }
        *(int *)(base + k->off) = strcmp(v, "system") == 0;
        return;
    }
    case KT_BACKEND: {
        if (t != CONFIG_TYPE_STRING) {
            type_error(r, s, key, "a string");
            return;
        }
        const char *v = config_setting_get_string(s);
        if (strcmp(v, "sqlite") != 0 && strcmp(v, "postgresql") != 0) {
            diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                     "'%s' is '%s', expected sqlite or postgresql", key, v);
            return;
        }
#ifndef HAVE_LIBPQ
        /* said here, with the line, rather than at the first open */
        if (strcmp(v, "postgresql") == 0) {
            diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                     "'%s' is 'postgresql', but this ndf was built without PostgreSQL "
                     "support; rebuild it with libpq (Debian: apt-get install libpq-dev, then "
                     "configure --with-postgresql), or use 'sqlite'",
                     key);
            return;
        }
#endif
        *(int *)(base + k->off) = strcmp(v, "postgresql") == 0;
        return;
    }
    case KT_ISOLATION: {
        if (t != CONFIG_TYPE_STRING) {
            type_error(r, s, key, "a string");
            return;
        }
        const char *v = config_setting_get_string(s);
        int m = strcmp(v, "auto") == 0 ? 0 : strcmp(v, "none") == 0 ? 1
                : strcmp(v, "process") == 0 ? 2 : -1;
        if (m < 0) {
            diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                     "'%s' is '%s', expected auto, none or process", key, v);
            return;
        }
        *(int *)(base + k->off) = m;
        return;
    }
    case KT_NAMES: {
        char ***v = (char ***)(base + k->off);
        size_t *nv = k->off == OFF(isolate) ? &r->c->set.nisolate : &r->c->set.ntrust;
        read_names(r, s, key, v, nv);
        return;
    }
    }
}

static void read_section(reader *r, const config_setting_t *grp, const struct section *sec)
{
    const char *names[16];
    size_t nn = 0;
    for (const key_def *k = sec->keys; k->name && nn < ARRAY_SIZE(names) - 1; k++)
        names[nn++] = k->name;
    names[nn] = NULL;

    int n = config_setting_length(grp);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
        const char *name = config_setting_name(s);
        char key[128];
        snprintf(key, sizeof key, "%s.%s", sec->name, name);
        const key_def *k = sec->keys;
        while (k->name && strcmp(k->name, name) != 0)
            k++;
        if (!k->name) {
            char what[64];
            snprintf(what, sizeof what, " in '%s'", sec->name);
            warn_unknown(r->c, setting_file(r, s), setting_line(r, s), what, name, names);
            continue;
        }
        read_key(r, s, key, k);
    }
    /* The reference's set_learning_rate; in ndf only weighted_average weighs
     * outcomes by it.  adaptive_bayes counts every outcome alike (decaying
     * old evidence would make the stored counts disagree with the
     * execution rows), so a rate set for it is said to do nothing. */
    const config_setting_t *lr;
    if (sec->keys == confidence_keys && (lr = config_setting_get_member(grp, "learning_rate")) &&
        r->c->set.learning.algorithm != ALGO_WEIGHTED_AVERAGE)
        diag_add(r->c, 0, setting_file(r, lr), setting_line(r, lr),
                 "'confidence.learning_rate' has no effect with algorithm '%s' (only "
                 "weighted_average uses it)",
                 confidence_algorithm_name(r->c->set.learning.algorithm));
}

/* ---- agents ---- */

static void agents_diag(void *arg, const char *file, int line, const char *msg)
{
    diag_add(arg, 1, file, line, "%s", msg);
}

/* The agents section, kept as a value tree (agents.c checks and applies
 * it); a second one replaces the first, as libconfig keeps only one. */
static void read_agents(reader *r, const config_setting_t *s)
{
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        type_error(r, s, "agents", "a group { NAME = { argv = [...]; ... }; ... }");
        return;
    }
    ndf_value *v = to_value(r, s, "agents", r->file, 0);
    if (agents_check(v, agents_diag, r->c)) {
        value_free(v);
        return;
    }
    value_free(r->c->set.agents);
    r->c->set.agents = v;
}

/* ---- pattern definitions ---- */

static const char *const pattern_keys[] = {"name",        "type",       "description",
                                           "domains",     "agent_types", "attributes",
                                           "tags",        "confidence_threshold",
                                           "confidence_gate", "timeout",
                                           "params",      NULL};

/* Returns the earlier definition of `name`, or records this one and returns
 * NULL. */
static const struct seen *seen_add(reader *r, const char *name, const char *file, int line)
{
    const struct seen *first = hashmap_get(r->seen, name);
    if (first)
        return first;
    struct seen *e = xmalloc(sizeof *e);
    e->file = file;
    e->line = line;
    hashmap_put(r->seen, name, e);
    return NULL;
}

static const char *vtype_name(const ndf_value *v)
{
    switch (v->type) {
    case NDF_VALUE_INT: return "an integer";
    case NDF_VALUE_NUMBER: return "a float";
    case NDF_VALUE_STRING: return "a string";
    case NDF_VALUE_BOOL: return "a bool";
    case NDF_VALUE_LIST: return "a list";
    case NDF_VALUE_GROUP: return "a group";
    default: return "nothing";
    }
}

/* Reports an error about member `v` of pattern `pname` (may be NULL). */
static void pattern_error(reader *r, const ndf_value *at, const char *pname, const char *fmt, ...)
    ATTR_PRINTF(4, 5);

static void pattern_error(reader *r, const ndf_value *at, const char *pname, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (pname)
        diag_add(r->c, 1, at->file, at->line, "pattern '%s': %s", pname, msg);
    else
        diag_add(r->c, 1, at->file, at->line, "pattern: %s", msg);
    r->c->npattern_errors++;
    free(msg);
}

static int check_string_list(reader *r, const ndf_value *v, const char *pname)
{
    if (v->type != NDF_VALUE_LIST) {
        pattern_error(r, v, pname, "'%s' must be a list of strings, not %s", v->name,
                      vtype_name(v));
        return -1;
    }
    for (size_t i = 0; i < value_count(v); i++) {
        const ndf_value *e = value_at(v, i);
        if (e->type != NDF_VALUE_STRING) {
            pattern_error(r, e, pname, "'%s[%zu]' must be a string, not %s", v->name, i,
                          vtype_name(e));
            return -1;
        }
    }
    return 0;
}

/* Checks the generic keys the host owns; the type's params are checked
 * against its schema later (pattern_build).  Returns the number of errors. */
static int check_generic(reader *r, const ndf_value *def, const char *pname)
{
    int bad = 0;
    for (size_t i = 0; i < value_count(def); i++) {
        const ndf_value *m = value_at(def, i);
        const char *k = m->name;
        if (strcmp(k, "description") == 0 || strcmp(k, "type") == 0) {
            if (m->type != NDF_VALUE_STRING) {
                pattern_error(r, m, pname, "'%s' must be a string, not %s", k, vtype_name(m));
                bad++;
            } else if (strcmp(k, "type") == 0 && !*m->u.s) {
                pattern_error(r, m, pname, "'type' is empty");
                bad++;
            }
        } else if (strcmp(k, "domains") == 0 || strcmp(k, "agent_types") == 0 ||
                   strcmp(k, "tags") == 0) {
            bad += check_string_list(r, m, pname) != 0;
        } else if (strcmp(k, "attributes") == 0 || strcmp(k, "params") == 0) {
            if (m->type != NDF_VALUE_GROUP) {
                pattern_error(r, m, pname, "'%s' must be a group, not %s", k, vtype_name(m));
                bad++;
            }
        } else if (strcmp(k, "confidence_gate") == 0) {
            confidence_gate g;
            if (m->type != NDF_VALUE_STRING) {
                pattern_error(r, m, pname, "'%s' must be a string, not %s", k, vtype_name(m));
                bad++;
            } else if (confidence_gate_parse(m->u.s, &g) != 0) {
                pattern_error(r, m, pname, "'%s' is '%s', expected warn, enforce or off", k,
                              m->u.s);
                bad++;
            }
        } else if (strcmp(k, "confidence_threshold") == 0 || strcmp(k, "timeout") == 0) {
            if (m->type != NDF_VALUE_INT && m->type != NDF_VALUE_NUMBER) {
                pattern_error(r, m, pname, "'%s' must be a number, not %s", k, vtype_name(m));
                bad++;
                continue;
            }
            double x = value_number(m);
            if (k[0] == 'c' && !(x >= 0 && x <= 1)) {
                pattern_error(r, m, pname, "'%s' is %g, out of range [0, 1]", k, x);
                bad++;
            } else if (k[0] == 't' && !(x > 0 && isfinite(x))) {
                pattern_error(r, m, pname, "'%s' is %g, must be greater than 0", k, x);
                bad++;
            }
        }
    }
    return bad;
}

/* Checks definition `def` (taken over) and adds it to the patterns, or
 * frees it after the diagnostics. */
static void read_definition(reader *r, ndf_value *def)
{
    /* Unknown keys are warnings: drop them so nothing later trips on them. */
    for (size_t i = 0; i < value_count(def);) {
        const ndf_value *m = value_at(def, i);
        size_t k = 0;
        while (pattern_keys[k] && strcmp(pattern_keys[k], m->name) != 0)
            k++;
        if (pattern_keys[k]) {
            i++;
            continue;
        }
        warn_unknown(r->c, m->file, m->line, " in a pattern definition", m->name, pattern_keys);
        value_remove(def, i);
    }

    int bad = 0;
    const char *pname = NULL;
    const ndf_value *name = value_get(def, "name");
    if (!name) {
        pattern_error(r, def, NULL, "missing 'name'");
        bad++;
    } else if (name->type != NDF_VALUE_STRING) {
        pattern_error(r, name, NULL, "'name' must be a string, not %s", vtype_name(name));
        bad++;
    } else if (!name_valid(name->u.s)) {
        pattern_error(r, name, NULL,
                      "invalid name '%s' (use A-Z a-z 0-9 _ . -, 1 to 128 characters, "
                      "no leading dot)",
                      name->u.s);
        bad++;
    } else {
        pname = name->u.s;
        const struct seen *first = seen_add(r, pname, name->file, name->line);
        if (first) {
            diag_add(r->c, 1, name->file, name->line,
                     "duplicate pattern '%s' (first defined at %s:%d)", pname, first->file,
                     first->line);
            r->c->nduplicates++;
            r->c->npattern_errors++;
            value_free(def);
            return;
        }
    }
    if (!value_get(def, "type")) {
        pattern_error(r, def, pname, "missing 'type'");
        bad++;
    }
    bad += check_generic(r, def, pname);
    if (bad) {
        value_free(def);
        return;
    }
    config *c = r->c;
    if ((c->npatterns & (c->npatterns - 1)) == 0) /* 0, 1, 2, 4, ...: double */
        c->patterns =
            xrealloc(c->patterns, (c->npatterns ? 2 * c->npatterns : 1) * sizeof *c->patterns);
    c->patterns[c->npatterns++] = def;
}

static void read_pattern(reader *r, const config_setting_t *s)
{
    read_definition(r, to_value(r, s, NULL, r->file, 0));
}

int config_check_definition(config *c, ndf_value *def)
{
    size_t before = c->nerrors, nd = c->ndiags;
    reader r = {.c = c, .seen = hashmap_new()};
    read_definition(&r, def);
    hashmap_free(r.seen, free);
    for (size_t i = nd; c->nerrors > before && i < c->ndiags; i++)
        if (c->diags[i].is_error)
            return err_set(NDF_ERR_VALIDATION, "%s", c->diags[i].text);
    return NDF_OK;
}

static void read_patterns(reader *r, const config_setting_t *s)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
        diag_add(r->c, 1, setting_file(r, s), setting_line(r, s),
                 "'patterns' must be a list of groups ( { ... }, ... ), not %s", lc_type_name(t));
        return;
    }
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
            int line = setting_line(r, e) > 0 ? setting_line(r, e) : setting_line(r, s);
            diag_add(r->c, 1, setting_file(r, e), line,
                     "patterns[%d]: a pattern definition must be a group { ... }, not %s", i,
                     lc_type_name(config_setting_type(e)));
            r->c->npattern_errors++;
            continue;
        }
        read_pattern(r, e);
    }
}

/* ---- files ---- */

/* Reads `file` (absolute) into `cf`: conftext expands its includes from
 * the descriptors it checked (regular file or /dev/null, at most 16 MiB, an
 * include owned by root, us or the main file's owner) and checks its
 * literals, and libconfig parses that one text.  A FIFO or a device is
 * refused before anything blocks on it.  `txt` must stay alive while the
 * settings are read (it maps their lines back to files).  Reports and
 * returns -1 on failure. */
static int read_file(reader *r, config_t *cf, const char *file, conftext *txt)
{
    free(r->incdir);
    r->incdir = path_dir(file);
    r->txt = txt;
    if (conftext_read(txt, file, r->incdir) != 0) {
        diag_add(r->c, 1, txt->err_file, txt->err_line, "%s", txt->err);
        return -1;
    }
    if (config_read_string(cf, txt->text) != CONFIG_TRUE) {
        const char *ef;
        int el;
        conftext_where(txt, config_error_line(cf), &ef, &el);
        diag_add(r->c, 1, ef ? ef : file, el, "%s", config_error_text(cf));
        return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void read_patterns_file(reader *r, const char *path)
{
    config_t cf;
    config_init(&cf);
    const char *saved = r->file;
    char *saved_dir = r->incdir;
    conftext *saved_txt = r->txt;
    conftext txt;
    r->incdir = NULL;
    r->file = value_intern_file(path);
    if (read_file(r, &cf, path, &txt) == 0) {
        config_setting_t *root = config_root_setting(&cf);
        int n = config_setting_length(root);
        for (int i = 0; i < n; i++) {
            const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
            const char *name = config_setting_name(s);
            if (strcmp(name, "patterns") == 0) {
                read_patterns(r, s);
            } else {
                static const char *const only[] = {"patterns", NULL};
                warn_unknown(r->c, setting_file(r, s), setting_line(r, s),
                             " in a patterns_dir file (only 'patterns' is read there)", name,
                             only);
            }
        }
    }
    config_destroy(&cf);
    conftext_free(&txt);
    free(r->incdir);
    r->incdir = saved_dir;
    r->txt = saved_txt;
    r->file = saved;
}

static void read_patterns_dir(reader *r, const char *dir, const char *from, int line)
{
    DIR *d = opendir(dir);
    if (!d) {
        diag_add(r->c, 1, from, line, "cannot read patterns_dir %s: %s", dir, strerror(errno));
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *path = xasprintf("%s%s%s", dir, strcmp(dir, "/") ? "/" : "", names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            free(path);
            free(names[i]);
            continue;
        }
        read_patterns_file(r, path);
        free(path);
        free(names[i]);
    }
    free(names);
}

int config_load(const char *path, config **out)
{
    config *c = xcalloc(1, sizeof *c);
    *out = c;
    settings_default(&c->set);
    c->set.file = path_absolute(path);

    reader r = {.c = c, .file = value_intern_file(c->set.file), .seen = hashmap_new()};
    config_t cf;
    config_init(&cf);
    const char *pdir_file = NULL;
    int pdir_line = 0;
    conftext txt;
    if (read_file(&r, &cf, c->set.file, &txt) == 0) {
        config_setting_t *root = config_root_setting(&cf);
        const config_setting_t *patterns = NULL;
        int n = config_setting_length(root);
        for (int i = 0; i < n; i++) {
            const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
            const char *name = config_setting_name(s);
            if (strcmp(name, "patterns") == 0) {
                patterns = s;
                continue;
            }
            if (strcmp(name, "agents") == 0) {
                read_agents(&r, s);
                continue;
            }
            if (strcmp(name, "patterns_dir") == 0) {
                static const key_def k = {"patterns_dir", KT_PATH, 0, 0, 0, OFF(patterns_dir)};
                read_key(&r, s, "patterns_dir", &k);
                pdir_file = setting_file(&r, s);
                pdir_line = setting_line(&r, s);
                continue;
            }
            size_t j = 0;
            while (j < ARRAY_SIZE(sections) && strcmp(sections[j].name, name) != 0)
                j++;
            if (j == ARRAY_SIZE(sections)) {
                warn_unknown(c, setting_file(&r, s), setting_line(&r, s), "", name, top_names);
                continue;
            }
            if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
                type_error(&r, s, name, "a group { ... }");
                continue;
            }
            read_section(&r, s, &sections[j]);
        }
        /* Inline patterns come first, then patterns_dir, wherever the keys
         * stand in the file: the order duplicates are reported in. */
        if (patterns)
            read_patterns(&r, patterns);
        if (c->set.patterns_dir)
            read_patterns_dir(&r, c->set.patterns_dir, pdir_file, pdir_line);
    }
    config_destroy(&cf);
    conftext_free(&txt);

    hashmap_free(r.seen, free);
    free(r.incdir);

    for (size_t i = 0; i < c->ndiags; i++)
        if (c->diags[i].is_error)
            return err_set(c->nduplicates == c->nerrors ? NDF_ERR_EXISTS : NDF_ERR_VALIDATION,
                           "%s", c->diags[i].text);
    return NDF_OK;
}

void config_free(config *c)
{
    if (!c)
        return;
    settings_free(&c->set);
    for (size_t i = 0; i < c->npatterns; i++)
        value_free(c->patterns[i]); /* NULL when app.c took it */
    free(c->patterns);
    for (size_t i = 0; i < c->ndiags; i++)
        free(c->diags[i].text);
    free(c->diags);
    free(c);
}

/* ---- definitions sent as text (run-time definitions) ---- */

/* The first byte of `s` that is neither blank nor in a comment, or NUL. */
static const char *first_token(const char *s, const char *end)
{
    while (s < end) {
        if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
            s++;
        } else if (*s == '#' || (*s == '/' && s + 1 < end && s[1] == '/')) {
            while (s < end && *s != '\n')
                s++;
        } else if (*s == '/' && s + 1 < end && s[1] == '*') {
            const char *e = s + 2;
            while (e + 1 < end && !(e[0] == '*' && e[1] == '/'))
                e++;
            s = e + 2 <= end ? e + 2 : end;
        } else {
            return s;
        }
    }
    return end;
}

/* JSON to libconfig, token by token, keeping every newline where it was
 * so that a message's line is the line of the JSON text: keys lose their
 * quotes and their ':' becomes '=', arrays become lists, strings are
 * written again with libconfig's escapes.  Numbers, true and false are
 * the same in both; null has no libconfig form and is refused. */
typedef struct jconv {
    const char *p, *end;
    int line;
    strbuf out;
    char err[256];
} jconv;

static int jfail(jconv *j, const char *fmt, ...) ATTR_PRINTF(2, 3);
static int jfail(jconv *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof j->err, fmt, ap);
    va_end(ap);
    return -1;
}

static void jskip(jconv *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')) {
        if (*j->p == '\n')
            j->line++;
        sb_add(&j->out, j->p, 1);
        j->p++;
    }
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int j4hex(jconv *j, unsigned *u)
{
    *u = 0;
    for (int i = 0; i < 4; i++) {
        int h = j->p < j->end ? hexval(*j->p) : -1;
        if (h < 0)
            return jfail(j, "a \\u escape needs four hex digits");
        *u = *u * 16 + (unsigned)h;
        j->p++;
    }
    return 0;
}

/* Reads a JSON string at j->p (its opening quote) into `sb`, decoded. */
static int jstring(jconv *j, strbuf *sb)
{
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20)
            return jfail(j, "a control character in a string (JSON needs an escape)");
        if (c != '\\') {
            sb_add(sb, j->p++, 1);
            continue;
        }
        if (++j->p >= j->end)
            break;
        char e = *j->p++;
        const char *map = strchr("\"\"\\\\//b\bf\fn\nr\rt\t", e);
        if (e != 'u' && map && ((map - "\"\"\\\\//b\bf\fn\nr\rt\t") % 2) == 0) {
            sb_add(sb, map + 1, 1);
            continue;
        }
        if (e != 'u')
            return jfail(j, "unknown escape '\\%c' in a string", e);
        unsigned u, lo;
        if (j4hex(j, &u))
            return -1;
        if (u >= 0xd800 && u < 0xdc00) {
            if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                return jfail(j, "a lone surrogate in a \\u escape");
            j->p += 2;
            if (j4hex(j, &lo))
                return -1;
            if (lo < 0xdc00 || lo >= 0xe000)
                return jfail(j, "a lone surrogate in a \\u escape");
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        } else if (u >= 0xdc00 && u < 0xe000) {
            return jfail(j, "a lone surrogate in a \\u escape");
        }
        if (u == 0)
            return jfail(j, "\\u0000 in a string (a definition is text)");
        char b[4];
        size_t n;
        if (u < 0x80)
            b[0] = (char)u, n = 1;
        else if (u < 0x800)
            b[0] = (char)(0xc0 | (u >> 6)), b[1] = (char)(0x80 | (u & 0x3f)), n = 2;
        else if (u < 0x10000)
            b[0] = (char)(0xe0 | (u >> 12)), b[1] = (char)(0x80 | ((u >> 6) & 0x3f)),
            b[2] = (char)(0x80 | (u & 0x3f)), n = 3;
        else
            b[0] = (char)(0xf0 | (u >> 18)), b[1] = (char)(0x80 | ((u >> 12) & 0x3f)),
            b[2] = (char)(0x80 | ((u >> 6) & 0x3f)), b[3] = (char)(0x80 | (u & 0x3f)), n = 4;
        sb_add(sb, b, n);
    }
    if (j->p >= j->end)
        return jfail(j, "a string is not closed");
    j->p++;
    return 0;
}

/* Writes `s` as a libconfig string literal. */
static void lc_string(strbuf *sb, const char *s)
{
    sb_add(sb, "\"", 1);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        switch (*q) {
        case '"': sb_puts(sb, "\\\""); break;
        case '\\': sb_puts(sb, "\\\\"); break;
        case '\n': sb_puts(sb, "\\n"); break;
        case '\r': sb_puts(sb, "\\r"); break;
        case '\t': sb_puts(sb, "\\t"); break;
        case '\f': sb_puts(sb, "\\f"); break;
        default:
            if (*q < 0x20 || *q == 0x7f)
                sb_printf(sb, "\\x%02x", *q);
            else
                sb_add(sb, (const char *)q, 1);
        }
    }
    sb_add(sb, "\"", 1);
}

/* libconfig's names: [A-Za-z*][-A-Za-z0-9_*]* */
static int lc_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '*'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '*'))
            return 0;
    return 1;
}

static int jvalue(jconv *j, int depth);

static int jcontainer(jconv *j, int depth, int object)
{
    if (depth > 64)
        return jfail(j, "nested deeper than 64 levels");
    sb_add(&j->out, object ? "{" : "(", 1);
    j->p++;
    jskip(j);
    if (j->p < j->end && *j->p == (object ? '}' : ']')) {
        sb_add(&j->out, object ? "}" : ")", 1);
        j->p++;
        return 0;
    }
    for (;;) {
        if (object) {
            if (j->p >= j->end || *j->p != '"')
                return jfail(j, "expected a member name in quotes");
            strbuf key;
            sb_init(&key);
            if (jstring(j, &key)) {
                sb_free(&key);
                return -1;
            }
            const char *k = key.buf ? key.buf : "";
            if (!lc_name_ok(k)) {
                jfail(j, "member name '%.64s' is not a configuration key (A-Z a-z 0-9 - _ *, "
                         "starting with a letter)",
                      k);
                sb_free(&key);
                return -1;
            }
            sb_puts(&j->out, k);
            sb_free(&key);
            jskip(j);
            if (j->p >= j->end || *j->p != ':')
                return jfail(j, "expected ':' after a member name");
            sb_add(&j->out, " =", 2);
            j->p++;
            jskip(j);
        }
        if (jvalue(j, depth + 1))
            return -1;
        jskip(j);
        if (j->p < j->end && *j->p == ',') {
            sb_add(&j->out, object ? ";" : ",", 1);
            j->p++;
            jskip(j);
            continue;
        }
        if (j->p < j->end && *j->p == (object ? '}' : ']')) {
            sb_add(&j->out, object ? ";}" : ")", object ? 2 : 1);
            j->p++;
            return 0;
        }
        return jfail(j, "expected ',' or '%c'", object ? '}' : ']');
    }
}

static int jvalue(jconv *j, int depth)
{
    if (j->p >= j->end)
        return jfail(j, "the text ends where a value was expected");
    char c = *j->p;
    if (c == '{' || c == '[')
        return jcontainer(j, depth, c == '{');
    if (c == '"') {
        strbuf v;
        sb_init(&v);
        int rc = jstring(j, &v);
        if (!rc)
            lc_string(&j->out, v.buf ? v.buf : "");
        sb_free(&v);
        return rc;
    }
    const char *s = j->p;
    while (j->p < j->end && (isalnum((unsigned char)*j->p) || *j->p == '-' || *j->p == '+' ||
                             *j->p == '.'))
        j->p++;
    size_t n = (size_t)(j->p - s);
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
        (n && (isdigit((unsigned char)*s) || *s == '-'))) {
        sb_add(&j->out, s, n);
        return 0;
    }
    if (n == 4 && memcmp(s, "null", 4) == 0)
        return jfail(j, "null is not a value a definition can hold (leave the member out)");
    return jfail(j, "unexpected '%.*s'", n ? (int)(n > 20 ? 20 : n) : 1, s);
}

/* Converts JSON `text` into libconfig text in j->out (a top-level object
 * or array of objects becomes a `patterns` list).  0, or -1 with j->err. */
static int json_to_lc(jconv *j, const char *text, size_t len)
{
    j->p = text;
    j->end = text + len;
    j->line = 1;
    sb_init(&j->out);
    jskip(j);
    int list = j->p < j->end && *j->p == '[';
    sb_puts(&j->out, list ? "patterns = " : "patterns = (");
    if (jvalue(j, 0))
        return -1;
    jskip(j);
    if (j->p < j->end)
        return jfail(j, "text after the definition");
    sb_puts(&j->out, list ? ";\n" : ");\n");
    return 0;
}

/* 1 when `text` is JSON rather than libconfig: an array, or an object
 * whose first member name is quoted (a libconfig group's is bare). */
static int looks_json(const char *text, size_t len)
{
    const char *end = text + len, *p = first_token(text, end);
    if (p >= end)
        return 0;
    if (*p == '[')
        return 1;
    if (*p != '{')
        return 0;
    p++;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p < end && (*p == '"' || *p == '}');
}

/* Parses libconfig `text` (already a complete file) as `origin` would be
 * read: returns the libconfig root in `cf` (to destroy) or -1 after a
 * diagnostic.  `txt` keeps the line map alive. */
static int parse_text(reader *r, config_t *cf, const char *origin, const char *text, size_t len,
                      conftext *txt)
{
    r->file = value_intern_file(origin);
    r->txt = txt;
    if (conftext_from_string(txt, origin, text, len) != 0) {
        diag_add(r->c, 1, txt->err_file, txt->err_line, "%s", txt->err);
        return -1;
    }
    if (config_read_string(cf, txt->text) != CONFIG_TRUE) {
        const char *ef;
        int el;
        conftext_where(txt, config_error_line(cf), &ef, &el);
        diag_add(r->c, 1, ef ? ef : r->file, el, "%s", config_error_text(cf));
        return -1;
    }
    return 0;
}

int config_parse_definitions(const char *origin, const char *text, size_t len, config **out)
{
    config *c = xcalloc(1, sizeof *c);
    *out = c;
    settings_default(&c->set);
    reader r = {.c = c, .seen = hashmap_new()};
    strbuf src;
    sb_init(&src);
    const char *at = first_token(text, text + len);
    if (looks_json(text, len)) {
        jconv j;
        memset(&j, 0, sizeof j);
        if (json_to_lc(&j, text, len) != 0) {
            diag_add(c, 1, value_intern_file(origin), j.line, "JSON: %s", j.err);
            sb_free(&j.out);
            goto done;
        }
        src = j.out;
    } else if (at < text + len && *at == '{') {
        /* a bare group: the definition alone, as in a patterns list; the
         * wrapping stays on the first and last lines */
        sb_puts(&src, "patterns = (");
        sb_add(&src, text, len);
        sb_puts(&src, "\n);\n");
    } else {
        sb_add(&src, text, len);
    }
    config_t cf;
    config_init(&cf);
    conftext txt;
    if (parse_text(&r, &cf, origin, src.buf ? src.buf : "", src.len, &txt) == 0) {
        config_setting_t *root = config_root_setting(&cf);
        int n = config_setting_length(root);
        for (int i = 0; i < n; i++) {
            const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
            if (strcmp(config_setting_name(s), "patterns") == 0)
                read_patterns(&r, s);
            else
                diag_add(c, 1, setting_file(&r, s), setting_line(&r, s),
                         "'%s': only pattern definitions ('patterns = ( ... )', or one "
                         "{ ... }) are read here",
                         config_setting_name(s));
        }
        if (!n)
            diag_add(c, 1, r.file, 1, "no pattern definition in the text");
    }
    config_destroy(&cf);
    conftext_free(&txt);
done:
    sb_free(&src);
    hashmap_free(r.seen, free);
    free(r.incdir);
    for (size_t i = 0; i < c->ndiags; i++)
        if (c->diags[i].is_error)
            return err_set(c->nduplicates == c->nerrors ? NDF_ERR_EXISTS : NDF_ERR_VALIDATION,
                           "%s", c->diags[i].text);
    return NDF_OK;
}

/* The settings a running server may take from a run-time change: those a
 * new generation reads (the pattern gate and learning, the executor's
 * limits, delegation).  The others are read once at start or name files. */
static const struct section *runtime_section(const char *name)
{
    static const char *const ok[] = {"confidence", "executor", "delegation", NULL};
    for (size_t i = 0; ok[i]; i++)
        if (strcmp(ok[i], name) == 0)
            for (size_t j = 0; j < ARRAY_SIZE(sections); j++)
                if (strcmp(sections[j].name, name) == 0)
                    return &sections[j];
    return NULL;
}

int config_apply_setting(config *c, const char *origin, const char *key, const char *literal)
{
    const char *dot = strchr(key, '.');
    char sec[32];
    if (!dot || (size_t)(dot - key) >= sizeof sec || strchr(dot + 1, '.'))
        return err_set(NDF_ERR_INVALID, "setting '%s': expected SECTION.KEY (e.g. "
                       "confidence.threshold)", key);
    memcpy(sec, key, (size_t)(dot - key));
    sec[dot - key] = 0;
    const struct section *s = runtime_section(sec);
    const key_def *k = s ? s->keys : NULL;
    while (k && k->name && strcmp(k->name, dot + 1) != 0)
        k++;
    if (!k || !k->name)
        return err_set(NDF_ERR_INVALID,
                       "setting '%s' cannot be changed at run time (only the keys of "
                       "confidence, executor and delegation; the others are read at start: "
                       "change them in the configuration file)",
                       key);
    /* one line, so that a message's line is the value's */
    char *text = xasprintf("%s = { %s = %s; };\n", sec, dot + 1, literal);
    reader r = {.c = c, .seen = hashmap_new()};
    size_t before = c->nerrors, nd = c->ndiags;
    config_t cf;
    config_init(&cf);
    conftext txt;
    if (strchr(literal, '\n') || strchr(literal, ';')) {
        diag_add(c, 1, value_intern_file(origin), 1, "setting '%s': '%s' is not one value", key,
                 literal);
    } else if (parse_text(&r, &cf, origin, text, strlen(text), &txt) == 0) {
        config_setting_t *g = config_setting_get_member(config_root_setting(&cf), sec);
        if (g && config_setting_length(g) == 1)
            read_section(&r, g, s);
        else
            diag_add(c, 1, r.file, 1, "setting '%s': '%s' is not one value", key, literal);
    }
    if (r.txt)
        conftext_free(&txt);
    config_destroy(&cf);
    hashmap_free(r.seen, free);
    free(text);
    if (c->nerrors > before) {
        for (size_t i = nd; i < c->ndiags; i++)
            if (c->diags[i].is_error)
                return err_set(NDF_ERR_VALIDATION, "%s", c->diags[i].text);
    }
    return NDF_OK;
}

ndf_value *config_parse_value(const char *origin, const char *literal, char **error)
{
    *error = NULL;
    config *c = xcalloc(1, sizeof *c);
    char *text = xasprintf("v = %s;\n", literal);
    reader r = {.c = c, .seen = hashmap_new()};
    config_t cf;
    config_init(&cf);
    conftext txt;
    ndf_value *v = NULL;
    if (parse_text(&r, &cf, origin, text, strlen(text), &txt) == 0) {
        config_setting_t *root = config_root_setting(&cf);
        const config_setting_t *s = config_setting_get_member(root, "v");
        if (s && config_setting_length(root) == 1)
            v = to_value(&r, s, NULL, r.file, 1);
        else
            diag_add(c, 1, r.file, 1, "'%s' is not one value", literal);
    }
    if (r.txt)
        conftext_free(&txt);
    config_destroy(&cf);
    hashmap_free(r.seen, free);
    free(text);
    if (!v)
        *error = xstrdup(c->ndiags ? c->diags[0].text : "not a value");
    config_free(c);
    return v;
}

/* Writes value `v` in libconfig syntax at `indent` levels. */
static void lc_value(strbuf *sb, const ndf_value *v, int indent)
{
    switch (v->type) {
    case NDF_VALUE_STRING: lc_string(sb, v->u.s); break;
    case NDF_VALUE_INT:
        /* 'L' beyond 32 bits: without it libconfig 1.5 truncates */
        sb_printf(sb, "%lld%s", (long long)v->u.i,
                  v->u.i > INT32_MAX || v->u.i < INT32_MIN ? "L" : "");
        break;
    case NDF_VALUE_NUMBER: {
        char b[40];
        /* the shortest form that reads back the same */
        snprintf(b, sizeof b, "%.15g", v->u.n);
        if (strtod(b, NULL) != v->u.n)
            snprintf(b, sizeof b, "%.17g", v->u.n);
        if (!strpbrk(b, ".eEn"))
            strcat(b, ".0");
        sb_puts(sb, b);
        break;
    }
    case NDF_VALUE_BOOL: sb_puts(sb, v->u.b ? "true" : "false"); break;
    case NDF_VALUE_GROUP:
    case NDF_VALUE_LIST: {
        int group = v->type == NDF_VALUE_GROUP;
        size_t n = value_count(v);
        sb_puts(sb, group ? "{" : "(");
        for (size_t i = 0; i < n; i++) {
            const ndf_value *m = value_at(v, i);
            sb_printf(sb, "\n%*s", (indent + 1) * 4, "");
            if (group)
                sb_printf(sb, "%s = ", m->name);
            lc_value(sb, m, indent + 1);
            sb_puts(sb, group ? ";" : i + 1 < n ? "," : "");
        }
        if (n)
            sb_printf(sb, "\n%*s", indent * 4, "");
        sb_puts(sb, group ? "}" : ")");
        break;
    }
    default: sb_puts(sb, "()"); break;
    }
}

void config_definition_text(const ndf_value *def, strbuf *sb)
{
    sb_puts(sb, "patterns = (\n    ");
    lc_value(sb, def, 1);
    sb_puts(sb, "\n);\n");
}

void config_value_text(const ndf_value *v, strbuf *sb)
{
    lc_value(sb, v, 0);
}

ndf_value *config_take_definition(config *c, const char *name)
{
    for (size_t i = 0; i < c->npatterns; i++) {
        const char *n = value_string(value_get(c->patterns[i], "name"));
        if (n && strcmp(n, name) == 0) {
            ndf_value *d = c->patterns[i];
            memmove(&c->patterns[i], &c->patterns[i + 1],
                    (c->npatterns - i - 1) * sizeof *c->patterns);
            c->npatterns--;
            return d;
        }
    }
    return NULL;
}

const ndf_value *config_find_definition(const config *c, const char *name)
{
    for (size_t i = 0; i < c->npatterns; i++) {
        const char *n = value_string(value_get(c->patterns[i], "name"));
        if (n && strcmp(n, name) == 0)
            return c->patterns[i];
    }
    return NULL;
}

void config_put_definition(config *c, ndf_value *def)
{
    const char *name = value_string(value_get(def, "name"));
    if (name)
        value_free(config_take_definition(c, name));
    if ((c->npatterns & (c->npatterns - 1)) == 0)
        c->patterns =
            xrealloc(c->patterns, (c->npatterns ? 2 * c->npatterns : 1) * sizeof *c->patterns);
    c->patterns[c->npatterns++] = def;
}

/* ---- JSON ---- */

/* 1 when a connection string may carry a password (a password= keyword, or
 * user:password@ in a URI), which `ndf config` must not print. */
static int conninfo_has_password(const char *c)
{
    if (!c)
        return 0;
    if (strcasestr(c, "password"))
        return 1;
    const char *u = strstr(c, "://");
    if (!u)
        return 0;
    u += 3;
    size_t auth = strcspn(u, "/?@");
    return u[auth] == '@' && memchr(u, ':', auth) != NULL;
}

void settings_to_json(const settings *s, strbuf *sb)
{
    sb_puts(sb, "{\"file\":");
    sb_json_str(sb, s->file);
    sb_puts(sb, ",\"confidence\":{\"threshold\":");
    sb_json_num(sb, s->confidence_threshold, 0);
    sb_puts(sb, ",\"gate\":");
    sb_json_str(sb, confidence_gate_name((confidence_gate)s->confidence_gate));
    sb_puts(sb, ",\"algorithm\":");
    sb_json_str(sb, confidence_algorithm_name(s->learning.algorithm));
    sb_puts(sb, ",\"learning_rate\":");
    sb_json_num(sb, s->learning.learning_rate, 0);
    sb_printf(sb, ",\"min_samples\":%d", s->learning.min_samples);
    sb_puts(sb, ",\"convergence_threshold\":");
    sb_json_num(sb, s->learning.convergence_threshold, 0);
    sb_puts(sb, ",\"prior_alpha\":");
    sb_json_num(sb, s->learning.prior_alpha, 0);
    sb_puts(sb, ",\"prior_beta\":");
    sb_json_num(sb, s->learning.prior_beta, 0);
    sb_printf(sb, "},\"registry\":{\"cache_size\":%ld,\"learning\":%s}", s->cache_size,
              s->learning_enabled ? "true" : "false");
    sb_printf(sb, ",\"executor\":{\"threads\":%d,\"default_timeout\":", s->threads);
    sb_json_num(sb, s->default_timeout, 0);
    sb_puts(sb, ",\"pattern_timeout\":");
    sb_json_num(sb, s->pattern_timeout, 0);
    if (s->max_timeout > 0) {
        sb_puts(sb, ",\"max_timeout\":");
        sb_json_num(sb, s->max_timeout, 0);
    }
    sb_puts(sb, ",\"kill_grace\":");
    sb_json_num(sb, s->kill_grace, 0);
    sb_puts(sb, "},\"storage\":{\"path\":");
    sb_json_str(sb, s->storage_path);
    sb_printf(sb, ",\"backups\":%d,\"compression\":%s,\"level\":%d,\"history_limit\":%ld",
              s->backups, s->compression ? "true" : "false", s->compression_level,
              s->history_limit);
    sb_printf(sb, ",\"sync\":\"%s\",\"retention\":", s->storage_sync ? "full" : "normal");
    sb_json_num(sb, s->retention_days, 0);
    sb_puts(sb, ",\"backup_interval\":");
    sb_json_num(sb, s->backup_interval, 0);
    sb_printf(sb, ",\"backend\":\"%s\",\"conninfo\":",
              s->storage_backend ? "postgresql" : "sqlite");
    if (conninfo_has_password(s->storage_conninfo))
        sb_json_str(sb, "(hidden: it holds a password)");
    else
        sb_json_str(sb, s->storage_conninfo);
    sb_puts(sb, "}");
    sb_puts(sb, ",\"plugins\":{\"dirs\":[");
    for (size_t i = 0; i < s->nplugin_dirs; i++) {
        if (i)
            sb_puts(sb, ",");
        sb_json_str(sb, s->plugin_dirs[i]);
    }
    sb_printf(sb, "],\"allow_insecure\":%s,\"cache_dir\":", s->allow_insecure ? "true" : "false");
    sb_json_str(sb, s->cache_dir);
    sb_printf(sb, ",\"scan\":%s,\"scan_timeout\":", s->scan_plugins ? "true" : "false");
    sb_json_num(sb, s->scan_timeout, 0);
    sb_puts(sb, ",\"verdict_dir\":");
    sb_json_str(sb, s->verdict_dir);
    sb_printf(sb, ",\"isolation\":\"%s\",\"isolate\":[",
              s->isolation == 1 ? "none" : s->isolation == 2 ? "process" : "auto");
    for (size_t i = 0; i < s->nisolate; i++) {
        if (i)
            sb_puts(sb, ",");
        sb_json_str(sb, s->isolate[i]);
    }
    sb_puts(sb, "],\"trust\":[");
    for (size_t i = 0; i < s->ntrust; i++) {
        if (i)
            sb_puts(sb, ",");
        sb_json_str(sb, s->trust[i]);
    }
    sb_puts(sb, "],\"memory_limit\":");
    sb_json_num(sb, s->worker_memory_mb, 0);
    sb_puts(sb, ",\"cpu_limit\":");
    sb_json_num(sb, s->worker_cpu_s, 0);
    sb_puts(sb, "},\"server\":{\"socket\":");
    sb_json_str(sb, s->socket_path);
    sb_puts(sb, ",\"group\":");
    sb_json_str(sb, s->socket_group);
    sb_puts(sb, ",\"idle_timeout\":");
    sb_json_num(sb, s->idle_timeout, 0);
    sb_printf(sb, ",\"max_connections_per_uid\":%d", s->max_conns_per_uid);
    sb_printf(sb, ",\"worker\":%s,\"worker_capacity\":%d,\"worker_lease\":",
              s->worker ? "true" : "false", s->worker_capacity);
    sb_json_num(sb, s->worker_lease, 0);
    sb_puts(sb, ",\"worker_poll\":");
    sb_json_num(sb, s->worker_poll, 0);
    sb_printf(sb, "},\"resources\":{\"scope\":\"%s\"", s->resources_system ? "system" : "ndf");
    sb_printf(sb, "},\"delegation\":{\"max_fallbacks\":%d,\"prior_strength\":",
              s->delegation_max_fallbacks);
    sb_json_num(sb, s->delegation_prior_strength, 0);
    sb_puts(sb, ",\"epsilon\":");
    sb_json_num(sb, s->delegation_epsilon, 0);
    /* env values stay out: they may hold an agent's credentials */
    sb_puts(sb, "},\"agents\":{");
    for (size_t a = 0; a < value_count(s->agents); a++) {
        const ndf_value *ag = value_at(s->agents, a);
        sb_puts(sb, a ? "," : "");
        sb_json_str(sb, ag->name);
        sb_puts(sb, ":{");
        for (size_t i = 0; i < value_count(ag); i++) {
            const ndf_value *m = value_at(ag, i);
            sb_puts(sb, i ? "," : "");
            sb_json_str(sb, m->name);
            sb_puts(sb, ":");
            if (m->type == NDF_VALUE_GROUP) {
                sb_puts(sb, "[");
                for (size_t j = 0; j < value_count(m); j++) {
                    sb_puts(sb, j ? "," : "");
                    sb_json_str(sb, value_at(m, j)->name);
                }
                sb_puts(sb, "]");
            } else {
                value_to_json(m, sb);
            }
        }
        sb_puts(sb, "}");
    }
    sb_puts(sb, "},\"patterns_dir\":");
    sb_json_str(sb, s->patterns_dir);
    sb_puts(sb, "}");
}
