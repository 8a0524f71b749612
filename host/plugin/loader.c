/* The plugin loader: opens each plugin file once, checks it on that
 * descriptor, copies it from that descriptor into a private content-addressed
 * cache, loads the copy, checks its descriptor and runs its init. */
#include "build-config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin/loader.h"
#include "plugin/elfcheck.h"
#include "plugin/scanner.h"
#include "conf/config.h"
#include "base/fsutil.h"
#include "base/hashmap.h"
#include "base/sha256.h"
#include "base/util.h"
#include "base/value.h"

/* The v1.0 sizes of the definitions plugins register: a definition smaller
 * than this was not built from the v1.0 headers (or later ones). */
#define PTYPE_V1_0_SIZE (offsetof(ndf_pattern_type_def, matches) + sizeof(void (*)(void)))
#define STEP_V1_0_SIZE (offsetof(ndf_step_def, undo) + sizeof(void (*)(void)))

/* Schemas nest (groups in lists in groups); a deeper one is surely a cycle. */
#define SCHEMA_MAX_DEPTH 16
/* Entries in one schema array; more means a missing NDF_PARAM_END. */
#define SCHEMA_MAX_ENTRIES 1024
#define NAME_MAX_LEN 128

struct plugin {
    char *path;        /* as found */
    char *cached;      /* full path of the private copy, or NULL */
    char *cached_name; /* its name within the cache directory */
    char hash[65];
    char *name, *version, *license, *description;
    unsigned abi_major, abi_minor;
    size_t desc_size;
    int loaded;
    int status;
    char *reason;
    int quarantined; /* its scan crashed, exited or hung */
    int scanned;     /* plugin_info.scanned */
    void *handle;
    const ndf_plugin *desc;
    void *state; /* from init(), handed back to fini() */
    provided **prov;
    size_t nprov;
    /* Generations (hot reload): the loader holds one reference while the
     * plugin serves, and every pattern built on one of its types and every
     * step bound to one of its steps holds another (loader_pin), so code
     * that runs is never unloaded under it.  A replaced or removed plugin
     * is `retired`: out of the lookup table, finalized and unloaded by
     * loader_collect() once its count is zero. */
    _Atomic int refs;
    int retired;
    int seen;  /* loader_rescan: the file is still there */
    dev_t dev; /* what the file was when loaded, to notice a change */
    ino_t ino;
    off_t fsize;
    struct timespec mtim;
    struct timespec ctim; /* for the index only */
    mode_t mode; /* ... and its mode and owner: fixing them retries a refusal */
    uid_t uid;
    gid_t gid;
};

struct ndf_registrar {
    loader *l;
    plugin *p;
    provided **pending;
    size_t npending;
    int status;  /* of the first failed registration */
    char *error; /* its message, which refuses the plugin */
};

struct loader {
    const ndf_host *host; /* handed to every plugin entry point */
    char *cache_dir;
    int cache_fd;
    int allow_insecure;
    int quiet;          /* the caller reports refusals */
    int scan;           /* scan new builds out of process first (scanner.h) */
    char *verdict_dir;  /* where the scanner keeps its verdicts, or NULL */
    double scan_timeout;
    int child_fd;       /* >= 0: this is the scanner's child; its report goes here */
    int in_place;       /* load files where they are (a step worker) */
    plugin **files; /* every file tried, in order */
    size_t nfiles;
    hashmap *types; /* name -> provided, of what loaded plugins provide */
    hashmap *steps;
    /* Guards `types` and `steps`: lookups may come from executor threads while a
     * reload rebuilds the table (everything else is changed by one thread
     * at a time: the caller serializes loads, rescans and collections). */
    pthread_rwlock_t lock;
    plugin *replacing; /* loader_rescan: the plugin the file being loaded replaces */
    int retry_refused; /* loader_rescan_ex: load refused files again even unchanged */
    strbuf *refusals;  /* loader_rescan_ex: the refusals of this rescan, or NULL */
    size_t nrefusals;
    plugin **retired; /* replaced or removed, waiting for their last user */
    size_t nretired;
    unsigned long gen_seq;
    size_t unloaded, not_unloadable;
    int index;           /* loader_opts.index */
    int lazy;            /* loader_opts.lazy */
    struct deferred *defer; /* lazy: the files found, in scan order */
    size_t ndefer;
    _Atomic size_t nleft; /* of those, not loaded yet */
    pthread_mutex_t lazy_lock; /* recursive: an init may look a name up */
};

/* A file a lazy scan did not load, with what the index says it provides. */
typedef struct deferred {
    char *dir, *name, *path;
    char *plugin;       /* the plugin's name */
    char *types, *steps; /* ",a,b," */
    int done;           /* loaded or refused */
} deferred;

#define INDEX_NAME "plugins.index"
#define INDEX_MAGIC "ndf-plugin-index 1\n"
#define INDEX_MAX_BYTES (1 << 20)
#define INDEX_MAX_ENTRIES 512

/* The registrar of the init() running on this thread: registration is only
 * valid from inside init(), and a plugin that kept the pointer for later is
 * told so instead of writing into freed memory. */
static _Thread_local ndf_registrar *current_reg;

/* The loader whose build runs on this thread (see loader_scope_enter), and
 * the patterns its definitions said they run.  Per thread: configurations
 * are built on one thread at a time each, and a reload building a new one
 * must not mix with the old. */
static _Thread_local loader *scope_loader;
static _Thread_local loader_requirement *scope_reqs;
static _Thread_local size_t scope_nreqs;

/* ---- small helpers ---- */

static const char *kind_name(provided_kind kind)
{
    return kind == PROVIDED_PATTERN_TYPE ? "pattern type" : "step";
}

/* [a-z0-9_] (plus '-' when `dash`), 1..NAME_MAX_LEN characters. */
static int ident_valid(const char *s, int dash)
{
    size_t n = 0;
    if (!s || !*s)
        return 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= NAME_MAX_LEN)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (dash && c == '-')))
            return 0;
    }
    return 1;
}

/* Parameter names as a configuration writes them: [A-Za-z_][A-Za-z0-9_-]*. */
static int param_name_valid(const char *s)
{
    if (!s || !*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    for (size_t n = 0; s[n]; n++) {
        char c = s[n];
        if (n >= NAME_MAX_LEN)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* The table of what loaded plugins provide of `kind`, by name. */
static hashmap *table_for(const loader *l, provided_kind kind)
{
    return kind == PROVIDED_PATTERN_TYPE ? l->types : kind == PROVIDED_STEP ? l->steps : NULL;
}

/* Caller holds the write lock. */
static void table_add(loader *l, provided *p)
{
    hashmap_put(table_for(l, p->kind), p->name, p);
}

/* loader_find among the plugins loaded, never loading one. */
static const provided *find_loaded(const loader *l, provided_kind kind, const char *name)
{
    if (!l || !name)
        return NULL;
    pthread_rwlock_t *lk = (pthread_rwlock_t *)&l->lock;
    hashmap *m = table_for(l, kind);
    if (!m)
        return NULL;
    pthread_rwlock_rdlock(lk);
    const provided *p = hashmap_get(m, name);
    pthread_rwlock_unlock(lk);
    return p;
}

static const provided *lazy_find(loader *l, provided_kind kind, const char *name);

const provided *loader_find(const loader *l, provided_kind kind, const char *name)
{
    const provided *p = find_loaded(l, kind, name);
    if (p || !l || !name || !atomic_load(&l->nleft))
        return p;
    return lazy_find((loader *)(uintptr_t)l, kind, name);
}

/* Refills the tables from the plugins that serve, after a rescan replaced
 * or retired some, so that a retired plugin's names go with it. */
static void table_rebuild(loader *l)
{
    pthread_rwlock_wrlock(&l->lock);
    hashmap_clear(l->types, NULL);
    hashmap_clear(l->steps, NULL);
    for (size_t i = 0; i < l->nfiles; i++)
        if (l->files[i]->loaded)
            for (size_t j = 0; j < l->files[i]->nprov; j++)
                table_add(l, l->files[i]->prov[j]);
    pthread_rwlock_unlock(&l->lock);
}

void loader_pin(const provided *p)
{
    if (p && p->owner)
        atomic_fetch_add(&p->owner->refs, 1);
}

void loader_unpin(const provided *p)
{
    if (p && p->owner)
        atomic_fetch_sub(&p->owner->refs, 1);
}

/* ---- the cache directory ---- */

/* Opens `path` as a directory owned by us that no one else can write (and,
 * when `private_`, no one else can read or enter either). */
static int open_private_dir(const char *path, int private_, int *fd_out)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return err_set(NDF_ERR_IO, "cannot open the plugin cache directory %s: %s%s", path,
                       strerror(errno),
                       errno == ELOOP || errno == ENOTDIR
                           ? " (it must be a real directory, not a symbolic link)"
                           : "");
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(NDF_ERR_IO, "cannot stat the plugin cache directory %s: %s", path,
                       strerror(e));
    }
    mode_t bad = private_ ? 077 : 022;
    if (st.st_uid != geteuid() || (st.st_mode & bad)) {
        close(fd);
        return err_set(NDF_ERR_IO,
                       "plugin cache directory %s is owned by uid %u with mode %04o; it must "
                       "be owned by the user running ndf (uid %u) with mode %s: remove it, or "
                       "point plugins.cache_dir or NDF_RUNTIME_DIR elsewhere",
                       path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                       (unsigned)geteuid(), private_ ? "0700" : "0700 or 0755");
    }
    *fd_out = fd;
    return NDF_OK;
}

/* The pid in a copy's name ("NAME.HASH.pPID[.gN].so"), or 0 when the name
 * is not one of ours. */
static long copy_owner(const char *name)
{
    size_t len = strlen(name);
    if (len < 4 || strcmp(name + len - 3, ".so") != 0)
        return 0;
    const char *end = name + len - 3;
    const char *q = end;
    while (q > name && q[-1] >= '0' && q[-1] <= '9')
        q--;
    if (q < end && q - name >= 2 && q[-1] == 'g' && q[-2] == '.') {
        end = q - 2;
        q = end;
        while (q > name && q[-1] >= '0' && q[-1] <= '9')
            q--;
    }
    if (q == end || end - q > 10 || q - name < 2 || q[-1] != 'p' || q[-2] != '.')
        return 0;
    long pid = 0;
    for (; q < end; q++)
        pid = pid * 10 + (*q - '0');
    return pid;
}

/* Removes the copies left by processes that died without removing them
 * (SIGKILL, a crash): their pid no longer exists.  A reused pid keeps its
 * predecessor's copies until that process is gone too, which costs only
 * disk space. */
static void sweep_dead_copies(int cache_fd)
{
    int dfd = dup(cache_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    long self = (long)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = copy_owner(e->d_name);
        if (pid > 0 && pid != self && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlinkat(cache_fd, e->d_name, 0);
    }
    closedir(d);
}

static char *default_cache_dir(int *in_tmp)
{
    const char *e = getenv("NDF_RUNTIME_DIR");
    *in_tmp = 0;
    if (e && *e)
        return xasprintf("%s/plugins", e);
    e = getenv("XDG_RUNTIME_DIR");
    if (e && *e)
        return xasprintf("%s/ndf/plugins", e);
    *in_tmp = 1;
    return xasprintf("/tmp/ndf-%u/plugins", (unsigned)geteuid());
}

static int check_ancestors_of(const char *path, const char *what);

/* The scanner's verdict directory, made (with its parents, mode 0700) and
 * checked, or NULL: verdicts are not kept.  An "ok" verdict lets a build
 * skip its scan, so whoever can write one can get a crashing init loaded
 * into the host: the directory must be a real directory of the user running
 * ndf, writable by nobody else, under parents nobody else can swap.  A
 * failure costs every command a scan, not the command: one warning. */
static char *open_verdict_dir(const char *configured, int allow_insecure)
{
    char *dir;
    if (configured && *configured) {
        dir = xstrdup(configured);
    } else {
        char *state = settings_default_state_dir();
        dir = xasprintf("%s/plugin-verdicts", state);
        free(state);
    }
    int rc = fs_mkdir_p(dir, 0700, "the plugin verdict directory");
    if (rc == NDF_OK) {
        struct stat st;
        if (lstat(dir, &st) != 0)
            rc = err_set(NDF_ERR_IO, "cannot stat %s: %s", dir, strerror(errno));
        else if (!S_ISDIR(st.st_mode))
            rc = err_set(NDF_ERR_INVALID, "%s is not a directory%s", dir,
                         S_ISLNK(st.st_mode) ? " (a symbolic link is not accepted)" : "");
        else if (st.st_uid != geteuid() || (st.st_mode & 022))
            rc = err_set(NDF_ERR_INVALID,
                         "%s is owned by uid %u with mode %04o; it must be owned by the user "
                         "running ndf (uid %u) and writable by nobody else",
                         dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                         (unsigned)geteuid());
        else if (!allow_insecure)
            rc = check_ancestors_of(dir, "the plugin verdict directory");
    }
    if (rc == NDF_OK) {
        scanner_sweep_verdicts(dir);
        return dir;
    }
    static atomic_int warned;
    if (!atomic_exchange(&warned, 1))
        log_msg(NDF_LOG_WARN,
                "plugin scan verdicts are not kept, so every command scans each plugin again: "
                "%s (fix it, or set plugins.verdict_dir)",
                err_msg());
    free(dir);
    return NULL;
}

loader *loader_new(const loader_opts *opts)
{
    if (!opts || !opts->host) {
        err_set(NDF_ERR_INVALID, "plugin loader: no host services table");
        return NULL;
    }
    int in_tmp = 0;
    char *dir = opts && opts->cache_dir && *opts->cache_dir ? xstrdup(opts->cache_dir)
                                                            : default_cache_dir(&in_tmp);
    int fd = -1;
    if (fs_mkdir_p(dir, 0700, "the plugin cache directory") != NDF_OK)
        goto fail;
    if (in_tmp) {
        /* /tmp is shared: someone else could have made /tmp/ndf-UID first. */
        char *parent = xstrndup(dir, strlen(dir) - strlen("/plugins"));
        int pfd;
        int rc = open_private_dir(parent, 0, &pfd);
        free(parent);
        if (rc)
            goto fail;
        close(pfd);
    }
    if (open_private_dir(dir, 1, &fd) != NDF_OK)
        goto fail;
    if (!(opts && opts->allow_insecure) &&
        check_ancestors_of(dir, "the plugin cache directory") != NDF_OK) {
        close(fd);
        goto fail;
    }

    sweep_dead_copies(fd);

    loader *l = xcalloc(1, sizeof *l);
    l->types = hashmap_new();
    l->steps = hashmap_new();
    pthread_rwlock_init(&l->lock, NULL);
    l->host = opts->host;
    l->cache_dir = dir;
    l->cache_fd = fd;
    l->allow_insecure = opts && opts->allow_insecure;
    l->quiet = opts && opts->quiet;
    l->child_fd = -1;
    l->scan = scanner_program() && !opts->no_scan;
    l->index = opts->index || opts->lazy;
    l->lazy = opts->lazy;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&l->lazy_lock, &ma);
    pthread_mutexattr_destroy(&ma);
    l->scan_timeout = opts->scan_timeout;
    if (l->scan)
        l->verdict_dir = open_verdict_dir(opts->verdict_dir, l->allow_insecure);
    if (l->allow_insecure)
        log_msg(NDF_LOG_WARN, "plugin ownership checks are OFF (plugins.allow_insecure); do "
                              "not use this in production");
    return l;
fail:
    free(dir);
    return NULL;
}

const char *loader_cache_dir(const loader *l)
{
    return l->cache_dir;
}

/* ---- refusing ---- */

/* 1 when a retired plugin, still mapped, was loaded from cache name `name`. */
static int retired_uses(const loader *l, const char *name)
{
    for (size_t i = 0; i < l->nretired; i++)
        if (l->retired[i]->cached_name && strcmp(l->retired[i]->cached_name, name) == 0)
            return 1;
    return 0;
}

static void remove_copy(loader *l, plugin *p)
{
    if (!p->cached)
        return;
    /* Loading identical content twice resolves to the same copy (and the
     * same dlopen handle): keep it while a loaded plugin uses it. */
    int shared = 0;
    for (size_t i = 0; i < l->nfiles; i++)
        if (l->files[i] != p && l->files[i]->loaded && l->files[i]->cached &&
            strcmp(l->files[i]->cached, p->cached) == 0)
            shared = 1;
    if (retired_uses(l, p->cached_name))
        shared = 1;
    if (!shared)
        unlinkat(l->cache_fd, p->cached_name, 0);
    free(p->cached);
    free(p->cached_name);
    p->cached = p->cached_name = NULL;
}

/* Records why `p` is refused ("PATH: reason; what to do"), logs it, undoes
 * what was done for it, and returns `status` with err_msg() set. */
static int refuse(loader *l, plugin *p, int status, const char *fmt, ...) ATTR_PRINTF(4, 5);
static int refuse(loader *l, plugin *p, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *why = xvasprintf(fmt, ap);
    va_end(ap);
    free(p->reason);
    p->reason = xasprintf("%s: %s", p->path, why);
    free(why);
    p->status = status;
    p->loaded = 0;
    if (p->handle) {
        dlclose(p->handle);
        p->handle = NULL;
    }
    p->desc = NULL;
    remove_copy(l, p);
    /* A quarantine is an error, shown at every verbosity: the build is
     * never loaded, whatever the operator retries. */
    if (!l->quiet)
        log_msg(p->quarantined ? NDF_LOG_ERROR : NDF_LOG_WARN, "plugin %s", p->reason);
    return err_set(status, "%s", p->reason);
}

/* ---- registration ---- */

static int reg_fail(ndf_registrar *reg, int status, const char *fmt, ...) ATTR_PRINTF(3, 4);
static int reg_fail(ndf_registrar *reg, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    /* The first failure is the one that refuses the plugin. */
    int rc = err_set(status, "%s", msg);
    if (!reg->error) {
        reg->error = msg;
        reg->status = status;
    } else {
        free(msg);
    }
    return rc;
}

/* Checks one schema array; `path` is the dotted name of its parent ("" at
 * the top).  Returns NULL, or a malloc'ed description of the problem. */
static char *schema_check(const ndf_param_spec *spec, const char *path, int depth)
{
    if (!spec)
        return NULL;
    if (depth > SCHEMA_MAX_DEPTH)
        return xasprintf("parameter '%s' nests deeper than %d levels (a cycle in `children`?)",
                         path, SCHEMA_MAX_DEPTH);
    for (size_t i = 0; spec[i].name; i++) {
        const ndf_param_spec *s = &spec[i];
        if (i >= SCHEMA_MAX_ENTRIES)
            return xasprintf("parameters under '%s' exceed %d entries (missing NDF_PARAM_END?)",
                             *path ? path : "(top)", SCHEMA_MAX_ENTRIES);
        char *full = *path ? xasprintf("%s.%s", path, s->name) : xstrdup(s->name);
        char *err = NULL;
        if (!param_name_valid(s->name))
            err = xasprintf("parameter name '%s' is not valid (use [A-Za-z_][A-Za-z0-9_-]*)", full);
        for (size_t j = 0; !err && j < i; j++)
            if (strcmp(spec[j].name, s->name) == 0)
                err = xasprintf("parameter '%s' is declared twice", full);
        if (!err && (s->type < NDF_VALUE_STRING || s->type > NDF_VALUE_ANY))
            err = xasprintf("parameter '%s' has an unknown type (%d)", full, (int)s->type);
        if (!err && s->type == NDF_VALUE_LIST &&
            ((int)s->elem_type < NDF_VALUE_NONE || s->elem_type > NDF_VALUE_ANY))
            err = xasprintf("parameter '%s' has an unknown element type (%d)", full,
                            (int)s->elem_type);
        if (!err && (s->flags & NDF_PARAM_RANGE) &&
            (isnan(s->min) || isnan(s->max) || s->min > s->max))
            err = xasprintf("parameter '%s' has an empty range (%g..%g)", full, s->min, s->max);
        if (!err && s->def && !(s->flags & NDF_PARAM_REQUIRED)) {
            ndf_value *v = value_parse_default(s->name, s->def, s->type);
            if (!v)
                err = xasprintf("the default of parameter '%s' (%s) is not a valid %s", full,
                                s->def, value_type_name(s->type));
            value_free(v);
        }
        if (!err && (s->type == NDF_VALUE_GROUP || s->type == NDF_VALUE_LIST))
            err = schema_check(s->children, full, depth + 1);
        free(full);
        if (err)
            return err;
    }
    return NULL;
}

int loader_registrar_add(ndf_registrar *reg, provided_kind kind, const void *def)
{
    const char *what = kind_name(kind);
    if (!reg || reg != current_reg)
        return err_set(NDF_ERR_INVALID,
                       "a plugin registered a %s outside its init(); registration is only "
                       "possible during init()",
                       what);
    if (!def)
        return reg_fail(reg, NDF_ERR_INVALID, "init() registered a NULL %s definition", what);

    /* Read nothing but the size until it says the v1.0 members are there. */
    size_t size = *(const size_t *)def;
    size_t need = kind == PROVIDED_PATTERN_TYPE ? PTYPE_V1_0_SIZE : STEP_V1_0_SIZE;
    const char *name;
    const ndf_param_spec *params;
    if (size < need)
        return reg_fail(reg, NDF_ERR_INVALID,
                        "a %s definition is %zu bytes, smaller than the %zu bytes of ABI 1.0 "
                        "(size not set to sizeof(), or not built with the ndf SDK): rebuild "
                        "the plugin against the installed SDK",
                        what, size, need);
    if (kind == PROVIDED_PATTERN_TYPE) {
        const ndf_pattern_type_def *d = def;
        name = d->name;
        params = d->params;
        if (ident_valid(name, 0) && (!d->create || !d->destroy || !d->run))
            return reg_fail(reg, NDF_ERR_INVALID,
                            "pattern type '%s' lacks a%s%s%s callback (create, destroy and run "
                            "are required): fix the definition and rebuild",
                            name, d->create ? "" : " create", d->destroy ? "" : " destroy",
                            d->run ? "" : " run");
    } else {
        const ndf_step_def *d = def;
        name = d->name;
        params = d->params;
        if (ident_valid(name, 0) && !d->run)
            return reg_fail(reg, NDF_ERR_INVALID,
                            "step '%s' has no run callback (it is required): fix the "
                            "definition and rebuild",
                            name);
    }
    if (!ident_valid(name, 0))
        return reg_fail(reg, NDF_ERR_INVALID,
                        "%s name '%s' is not valid (use [a-z0-9_], 1 to %d characters): fix "
                        "the definition and rebuild",
                        what, name ? name : "(null)", NAME_MAX_LEN);

    char *bad = schema_check(params, "", 0);
    if (bad) {
        int rc = reg_fail(reg, NDF_ERR_INVALID, "%s '%s': %s: fix its parameter schema and rebuild",
                          what, name, bad);
        free(bad);
        return rc;
    }

    const provided *other = find_loaded(reg->l, kind, name);
    if (other && other->owner == reg->l->replacing)
        other = NULL; /* the new build of a plugin takes over its own names */
    if (other)
        return reg_fail(reg, NDF_ERR_EXISTS,
                        "%s '%s' is already registered by plugin '%s' (%s): remove one of the "
                        "two plugins, or rename the %s in one of them",
                        what, name, other->owner->name, other->owner->path, what);
    for (size_t i = 0; i < reg->npending; i++)
        if (reg->pending[i]->kind == kind && strcmp(reg->pending[i]->name, name) == 0)
            return reg_fail(reg, NDF_ERR_EXISTS,
                            "init() registered %s '%s' twice: register it once", what, name);

    provided *p = xcalloc(1, sizeof *p);
    p->kind = kind;
    p->name = name;
    if (kind == PROVIDED_PATTERN_TYPE)
        p->def.ptype = def;
    else
        p->def.step = def;
    p->owner = reg->p;
    reg->pending = xrealloc(reg->pending, (reg->npending + 1) * sizeof *reg->pending);
    reg->pending[reg->npending++] = p;
    return NDF_OK;
}

static void registrar_discard(ndf_registrar *reg)
{
    for (size_t i = 0; i < reg->npending; i++)
        free(reg->pending[i]);
    free(reg->pending);
    free(reg->error);
    reg->pending = NULL;
    reg->npending = 0;
    reg->error = NULL;
}

/* ---- loading one file ---- */

/* 1 when the ELF file `fd` of `size` bytes holds everything its headers
 * point at.  A file caught half-written (a `cp` over a plugin while a
 * reload reads it) would otherwise be mapped with pages past its end, and
 * touching them while relocating kills the host with SIGBUS. */
static int elf_complete(int fd, off_t size, const char **why)
{
    Elf64_Ehdr eh;
    *why = NULL;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh) {
        *why = "too short for an ELF header";
        return 0;
    }
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || sizeof(void *) != 8)
        return 1; /* not this host's class: dlopen says why */
    uint64_t sz = (uint64_t)size;
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > sz ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > sz - eh.e_phoff) {
        *why = "its program headers lie past its end (truncated, or still being written)";
        return 0;
    }
    if (eh.e_shoff &&
        (eh.e_shoff > sz || (uint64_t)eh.e_shnum * eh.e_shentsize > sz - eh.e_shoff)) {
        *why = "its section headers lie past its end (truncated, or still being written)";
        return 0;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph) {
            *why = "cannot read its program headers";
            return 0;
        }
        if (ph.p_type == PT_LOAD && (ph.p_offset > sz || ph.p_filesz > sz - ph.p_offset)) {
            *why = "a loadable segment lies past its end (truncated, or still being written)";
            return 0;
        }
    }
    return 1;
}

/* Copies the open plugin `fd` into the cache, hashing exactly the bytes
 * copied, so that what is loaded is what was checked. */
static int copy_to_cache(loader *l, plugin *p, int fd, const char *base)
{
    fs_atomic out;
    if (fs_atomic_begin(&out, l->cache_fd, l->cache_dir, "copy", 0600) != NDF_OK)
        return refuse(l, p, NDF_ERR_IO, "cannot create a copy in the plugin cache %s: %s",
                      l->cache_dir, strerror(errno));

    sha256_ctx h;
    sha256_init(&h);
    unsigned char *buf = xmalloc(65536);
    off_t off = 0;
    int err = 0;
    const char *op = "read";
    for (;;) {
        ssize_t n = pread(fd, buf, 65536, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        sha256_update(&h, buf, (size_t)n);
        if (fs_write_all(out.fd, buf, (size_t)n) != 0) {
            err = errno;
            op = "write";
            break;
        }
        off += n;
    }
    free(buf);
    if (!err && fchmod(out.fd, 0500) != 0) {
        err = errno;
        op = "chmod";
    }
    if (err) {
        fs_atomic_abort(&out);
        return refuse(l, p, NDF_ERR_IO, "cannot %s while copying into the plugin cache %s: %s", op,
                      l->cache_dir, strerror(err));
    }

    unsigned char digest[SHA256_DIGEST_SIZE];
    sha256_final(&h, digest);
    sha256_hex(digest, p->hash);
    size_t blen = strlen(base);
    if (blen > 3 && strcmp(base + blen - 3, ".so") == 0)
        blen -= 3;
    /* A new build replacing a plugin gets a name of its own even when its
     * content equals a retired build still mapped (v1 -> v2 -> v1): dlopen
     * would otherwise hand back that same instance, its statics and all. */
    /* The copy's name carries our pid: processes sharing the cache (a
     * server and the one-shot commands beside it) each own their copies,
     * so one leaving never removes a file another's isolated workers
     * still have to open by name. */
    long pid = (long)getpid();
    p->cached_name = xasprintf("%.*s.%.16s.p%ld.so", (int)blen, base, p->hash, pid);
    if (l->replacing || retired_uses(l, p->cached_name)) {
        free(p->cached_name);
        p->cached_name =
            xasprintf("%.*s.%.16s.p%ld.g%lu.so", (int)blen, base, p->hash, pid, ++l->gen_seq);
    }
    /* Not durable: the cache is rebuilt from the plugin files after a
     * crash, so an fsync per load would buy nothing. */
    if (fs_atomic_commit(&out, p->cached_name, 0) != NDF_OK) {
        int e = errno;
        free(p->cached_name);
        p->cached_name = NULL;
        return refuse(l, p, NDF_ERR_IO, "cannot store its copy in the plugin cache %s: %s",
                      l->cache_dir, strerror(e));
    }
    p->cached = xasprintf("%s/%s", l->cache_dir, p->cached_name);
    return NDF_OK;
}

/* Before dlopen(), which runs the constructors of any shared object:
 * the very copy about to be loaded (`cfd`) must export the descriptor, so
 * that the code of a shared object that is no plugin never runs. */
static int check_exports(loader *l, plugin *p, int cfd)
{
    const char *why = NULL;
    int r = elfcheck_exports(cfd, NDF_PLUGIN_SYMBOL, &why);
    if (r > 0)
        return NDF_OK;
    if (r == 0)
        return refuse(l, p, NDF_ERR_INVALID,
                      "does not export %s; was it built with NDF_PLUGIN_DEFINE()? (%s; a "
                      "shared object that is not an ndf plugin is not loaded, and none of its "
                      "code ran)",
                      NDF_PLUGIN_SYMBOL, why);
    return refuse(l, p, NDF_ERR_INVALID,
                  "is not a loadable shared object: %s; rebuild it against the ndf SDK, or "
                  "remove it (none of its code ran)",
                  why);
}

/* OpenSSH's StrictModes for the directories above `path` (absolute): each
 * must be owned by root or by the user running ndf and writable by no one
 * else, or whoever may write one could rename what is below it and put
 * other code in the plugin's place.  A sticky directory (/tmp) is accepted
 * from root or us: others may add entries there but not rename ours.  Both
 * the path as written and the path its symbolic links lead to are checked
 * (the directory holding a link decides where it points).  `what` names
 * the directory for the message.  Returns NDF_OK, or sets the error. */
static int check_ancestors_of(const char *path, const char *what)
{
    char *real = realpath(path, NULL);
    const char *paths[2] = {path, real};
    int rc = NDF_OK;
    for (int k = 0; k < 2 && rc == NDF_OK; k++) {
        const char *pth = paths[k];
        if (!pth || pth[0] != '/' || (k == 1 && strcmp(pth, path) == 0))
            continue;
        char *dir = xstrdup(pth);
        /* from the parent of `pth` up to "/" */
        for (;;) {
            char *slash = strrchr(dir, '/');
            if (!slash)
                break;
            if (slash == dir)
                slash[1] = '\0';
            else
                *slash = '\0';
            struct stat st;
            if (stat(dir, &st) != 0) {
                rc = err_set(NDF_ERR_IO, "%s %s: cannot check its parent directory %s: %s", what,
                             path, dir, strerror(errno));
                break;
            }
            int sticky = (st.st_mode & S_ISVTX) != 0;
            if (st.st_uid != 0 && st.st_uid != geteuid()) {
                rc = err_set(NDF_ERR_INVALID,
                             "%s %s: its parent directory %s is owned by uid %u, neither root "
                             "nor the user running ndf (uid %u), who could replace what is "
                             "below it: move the plugins, or chown %s",
                             what, path, dir, (unsigned)st.st_uid, (unsigned)geteuid(), dir);
                break;
            }
            if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !sticky) {
                rc = err_set(NDF_ERR_INVALID,
                             "%s %s: its parent directory %s is %s-writable (mode %04o), so "
                             "others could replace what is below it: run 'chmod go-w %s', or "
                             "move the plugins",
                             what, path, dir, (st.st_mode & S_IWOTH) ? "world" : "group",
                             (unsigned)(st.st_mode & 07777), dir);
                break;
            }
            if (strcmp(dir, "/") == 0)
                break;
        }
        free(dir);
    }
    free(real);
    return rc;
}

static int check_owner_mode(loader *l, plugin *p, const struct stat *st, const char *dir)
{
    const char *what = dir ? "its directory " : "the file";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return refuse(l, p, NDF_ERR_INVALID,
                      "%s%s is %s-writable (mode %04o), so others could change the code ndf "
                      "runs: run 'chmod go-w %s'%s",
                      what, dir ? dir : "", (st->st_mode & S_IWOTH) ? "world" : "group",
                      (unsigned)(st->st_mode & 07777), dir ? dir : p->path,
                      dir ? " or move the plugin to a directory only you or root can write" : "");
    if (st->st_uid != 0 && st->st_uid != geteuid())
        return refuse(l, p, NDF_ERR_INVALID,
                      "%s%s is owned by uid %u, neither root nor the user running ndf (uid %u): "
                      "chown it to root or to uid %u",
                      what, dir ? dir : "", (unsigned)st->st_uid, (unsigned)geteuid(),
                      (unsigned)geteuid());
    return NDF_OK;
}

/* check_ancestors_of() for the plugin directory `dir`, as a refusal of `p`;
 * a relative `dir` is taken from the working directory. */
static int check_ancestors(loader *l, plugin *p, const char *dir)
{
    char *abs = NULL;
    if (dir[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        if (cwd) {
            abs = xasprintf("%s/%s", cwd, dir);
            free(cwd);
        }
    }
    int rc = check_ancestors_of(abs ? abs : dir, "plugin directory");
    free(abs);
    if (rc == NDF_OK)
        return NDF_OK;
    char *msg = xstrdup(err_msg());
    rc = refuse(l, p, rc, "%s", msg);
    free(msg);
    return rc;
}

static void read_descriptor_strings(plugin *p, const ndf_plugin *d)
{
    p->name = dup_or_null(d->name);
    p->version = dup_or_null(d->version);
    p->license = dup_or_null(d->license);
    p->description = dup_or_null(d->description);
}

static plugin *find_loaded_name(const loader *l, const char *name)
{
    for (size_t i = 0; i < l->nfiles; i++)
        if (l->files[i]->loaded && strcmp(l->files[i]->name, name) == 0)
            return l->files[i];
    return NULL;
}

/* The scanner's child tells its parent what the descriptor says, so that a
 * refused or quarantined build is shown as if the host had read it. */
static void child_report_desc(const loader *l, const plugin *p)
{
    char num[64];
    if (!p->desc_size)
        return;
    snprintf(num, sizeof num, "%u %u %zu", p->abi_major, p->abi_minor, p->desc_size);
    scanner_report(l->child_fd, "abi", num);
    if (p->name)
        scanner_report(l->child_fd, "name", p->name);
    if (p->version)
        scanner_report(l->child_fd, "version", p->version);
    if (p->license)
        scanner_report(l->child_fd, "license", p->license);
    if (p->description)
        scanner_report(l->child_fd, "description", p->description);
}

/* ABI 1.1 state handoff from the build `l->replacing` to `p` (descriptor
 * `d`, initialized): the old build's state_save(), the new one's
 * state_restore().  Either side may lack its hook (then nothing is handed
 * over); each is read only when the descriptor's size covers it. */
static int handoff(loader *l, plugin *p, const ndf_plugin *d)
{
    plugin *old = l->replacing;
    const ndf_plugin *od = old->desc;
    if (!od || od->size < NDF_PLUGIN_V1_1_SIZE || !od->state_save ||
        d->size < NDF_PLUGIN_V1_1_SIZE || !d->state_restore)
        return NDF_OK;
    char *blob = NULL;
    size_t len = 0;
    err_clear();
    int rc = od->state_save(l->host, old->state, &blob, &len);
    if (rc != NDF_OK) {
        free(blob);
        return err_set(NDF_ERR_INVALID,
                       "the serving build (version %s) could not save its state for the new "
                       "one (%s): %s; it keeps serving",
                       old->version ? old->version : "?", ndf_status_name(rc),
                       *err_msg() ? err_msg() : "no message given");
    }
    err_clear();
    rc = d->state_restore(l->host, p->state, blob, len);
    free(blob);
    if (rc != NDF_OK)
        return err_set(NDF_ERR_INVALID,
                       "state_restore of the state saved by version %s failed (%s): %s; the "
                       "old build keeps serving",
                       old->version ? old->version : "?", ndf_status_name(rc),
                       *err_msg() ? err_msg() : "no message given");
    log_msg(NDF_LOG_INFO, "plugin %s: version %s took over the state of version %s (%zu bytes)",
            p->name, p->version ? p->version : "?", old->version ? old->version : "?", len);
    return NDF_OK;
}

/* Checks the loaded copy's descriptor, then runs init().  `p->handle` is
 * open. */
static int check_and_init(loader *l, plugin *p)
{
    dlerror();
    const ndf_plugin *d = dlsym(p->handle, NDF_PLUGIN_SYMBOL);
    if (!d)
        return refuse(l, p, NDF_ERR_INVALID,
                      "does not export %s; was it built with NDF_PLUGIN_DEFINE()? (a shared "
                      "object that is not an ndf plugin cannot be loaded)",
                      NDF_PLUGIN_SYMBOL);
    /* size and the ABI numbers are where every ABI version puts them;
     * nothing else may be read until they are checked. */
    p->desc_size = d->size;
    p->abi_major = d->abi_major;
    p->abi_minor = d->abi_minor;
    if (d->abi_major != NDF_ABI_MAJOR) {
        int newer = d->abi_major > NDF_ABI_MAJOR;
        return refuse(l, p, NDF_ERR_INVALID,
                      "built for plugin ABI %u.%u, this ndf supports %d.%d (major %u != %d, "
                      "the layouts are incompatible): %s",
                      p->abi_major, p->abi_minor, NDF_ABI_MAJOR, NDF_ABI_MINOR, p->abi_major,
                      NDF_ABI_MAJOR,
                      newer ? "upgrade ndf to a version with that ABI, or rebuild the plugin "
                              "against this ndf's SDK (pkg-config ndf-sdk)"
                            : "rebuild the plugin against the installed SDK (pkg-config ndf-sdk)");
    }
    /* Same major: a descriptor of at least the v1.0 size has the v1.0
     * layout, so its strings can be shown even if it is refused below. */
    if (d->size >= NDF_PLUGIN_V1_0_SIZE)
        read_descriptor_strings(p, d);
    if (d->abi_minor > NDF_ABI_MINOR)
        return refuse(l, p, NDF_ERR_INVALID,
                      "built for ABI %u.%u, this ndf supports %d.%d (major %u = %d, minor %u > "
                      "%d): rebuild the plugin against the installed SDK or upgrade ndf",
                      p->abi_major, p->abi_minor, NDF_ABI_MAJOR, NDF_ABI_MINOR, p->abi_major,
                      NDF_ABI_MAJOR, p->abi_minor, NDF_ABI_MINOR);
    if (d->size < NDF_PLUGIN_V1_0_SIZE)
        return refuse(l, p, NDF_ERR_INVALID,
                      "its descriptor is %zu bytes, smaller than the %zu bytes of an ABI %u.%u "
                      "descriptor, so it was not made by NDF_PLUGIN_DEFINE(): rebuild the "
                      "plugin with the ndf SDK",
                      p->desc_size, (size_t)NDF_PLUGIN_V1_0_SIZE, p->abi_major, p->abi_minor);
    if (!p->name)
        return refuse(l, p, NDF_ERR_INVALID,
                      "its descriptor has no name: give NDF_PLUGIN_DEFINE() a name and rebuild");
    if (!ident_valid(p->name, 1))
        return refuse(l, p, NDF_ERR_INVALID,
                      "its name '%s' is not valid (use [a-z0-9_-], 1 to %d characters): fix "
                      "NDF_PLUGIN_DEFINE() and rebuild",
                      p->name, NAME_MAX_LEN);
    if (!d->init)
        return refuse(l, p, NDF_ERR_INVALID,
                      "its descriptor has no init function: give NDF_PLUGIN_DEFINE() one and "
                      "rebuild");
    plugin *other = find_loaded_name(l, p->name);
    if (other == l->replacing)
        other = NULL;
    if (other)
        return refuse(l, p, NDF_ERR_EXISTS,
                      "plugin name '%s' is already loaded from %s: remove one of the two files "
                      "(or rename one plugin)",
                      p->name, other->path);

    if (l->child_fd >= 0) {
        child_report_desc(l, p);
        scanner_report(l->child_fd, "stage", "init");
    }
    ndf_registrar reg = {.l = l, .p = p};
    ndf_registrar *saved = current_reg;
    current_reg = &reg;
    err_clear();
    int rc = d->init(l->host, &reg, &p->state);
    current_reg = saved;
    if (rc != NDF_OK) {
        char *msg = xstrdup(reg.error ? reg.error : *err_msg() ? err_msg() : "no message given");
        registrar_discard(&reg);
        p->state = NULL;
        rc = refuse(l, p, NDF_ERR_INVALID,
                    "init failed (%s): %s; fix what it names, or remove the plugin",
                    ndf_status_name(rc), msg);
        free(msg);
        return rc;
    }
    if (reg.error) {
        /* init() succeeded, so it may hold state: let it release it. */
        char *msg = reg.error;
        int status = reg.status;
        reg.error = NULL;
        registrar_discard(&reg);
        if (d->fini)
            d->fini(l->host, p->state);
        p->state = NULL;
        rc = refuse(l, p, status, "%s", msg);
        free(msg);
        return rc;
    }
    if (l->replacing && (rc = handoff(l, p, d)) != NDF_OK) {
        char *msg = xstrdup(err_msg());
        registrar_discard(&reg);
        if (d->fini)
            d->fini(l->host, p->state);
        p->state = NULL;
        rc = refuse(l, p, NDF_ERR_INVALID, "%s", msg);
        free(msg);
        return rc;
    }
    p->desc = d;
    p->prov = reg.pending;
    p->nprov = reg.npending;
    pthread_rwlock_wrlock(&l->lock);
    for (size_t i = 0; i < p->nprov; i++)
        table_add(l, p->prov[i]);
    pthread_rwlock_unlock(&l->lock);
    atomic_store(&p->refs, 1);
    p->loaded = 1;
    p->status = NDF_OK;
    return NDF_OK;
}

/* Loads `name` within the open directory `dfd` (whose stat is `dst`). */
static int load_at(loader *l, int dfd, const struct stat *dst, const char *dirpath,
                   const char *name, const char *path)
{
    plugin *p = xcalloc(1, sizeof *p);
    p->path = xstrdup(path);
    l->files = xrealloc(l->files, (l->nfiles + 1) * sizeof *l->files);
    l->files[l->nfiles++] = p;

    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return refuse(l, p, NDF_ERR_INVALID,
                          "is a symbolic link; ndf loads only the regular file it opens (so "
                          "that the file checked is the file loaded): install or copy the "
                          "plugin there instead of linking it");
        if (e == ENOENT)
            return refuse(l, p, NDF_ERR_NOT_FOUND, "no such file");
        return refuse(l, p, e == EACCES ? NDF_ERR_IO : NDF_ERR_INVALID, "cannot open: %s",
                      strerror(e));
    }
    struct stat st;
    int rc;
    if (fstat(fd, &st) != 0) {
        rc = refuse(l, p, NDF_ERR_IO, "cannot stat: %s", strerror(errno));
        goto out;
    }
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->fsize = st.st_size;
    p->mtim = st.st_mtim;
    p->ctim = st.st_ctim;
    p->mode = st.st_mode;
    p->uid = st.st_uid;
    p->gid = st.st_gid;
    if (!S_ISREG(st.st_mode)) {
        rc = refuse(l, p, NDF_ERR_INVALID, "is not a regular file: a plugin is a shared object");
        goto out;
    }
    if (!l->allow_insecure && l->child_fd < 0) {
        if ((rc = check_ancestors(l, p, dirpath)) != NDF_OK)
            goto out;
        if ((rc = check_owner_mode(l, p, dst, dirpath)) != NDF_OK)
            goto out;
        if ((rc = check_owner_mode(l, p, &st, NULL)) != NDF_OK)
            goto out;
    }
    unsigned char magic[4];
    ssize_t n;
    do
        n = pread(fd, magic, sizeof magic, 0);
    while (n < 0 && errno == EINTR);
    if (n != 4 || memcmp(magic, "\177ELF", 4) != 0) {
        rc = refuse(l, p, NDF_ERR_INVALID,
                    "is not an ELF shared object (%s); a plugin is a .so built against the ndf "
                    "SDK: rebuild it, or remove the file",
                    n < 0   ? strerror(errno)
                    : n < 4 ? "too short"
                            : "no ELF magic");
        goto out;
    }
    if (l->child_fd >= 0 || l->in_place) {
        /* The scanner's child loads the parent's private copy in place:
         * the parent checked it and keeps it for its own dlopen. */
        close(fd);
        if (l->child_fd >= 0)
            scanner_report(l->child_fd, "stage", "load");
        p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!p->handle) {
            const char *e = dlerror();
            return refuse(l, p, NDF_ERR_INVALID,
                          "cannot be loaded: %s; rebuild it against the installed SDK and "
                          "libraries",
                          e ? e : "unknown dlopen error");
        }
        return check_and_init(l, p);
    }
    /* Another ndf sharing the cache may remove an identical copy (its own,
     * same name) between our rename and our dlopen; copy again then.  Once
     * loaded, the mapping outlives any removal. */
    for (int attempt = 0;; attempt++) {
        if ((rc = copy_to_cache(l, p, fd, name)) != NDF_OK)
            goto out;
        int cfd = openat(l->cache_fd, p->cached_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat cst;
        const char *why = NULL;
        if (cfd >= 0 && fstat(cfd, &cst) == 0 && !elf_complete(cfd, cst.st_size, &why)) {
            close(cfd);
            rc = refuse(l, p, NDF_ERR_INVALID,
                        "is not a complete shared object: %s; install it "
                        "whole (write a temporary file, then rename it over the plugin)",
                        why);
            goto out;
        }
        if (cfd >= 0 && (rc = check_exports(l, p, cfd)) != NDF_OK) {
            close(cfd);
            goto out;
        }
        if (cfd >= 0)
            close(cfd);
        /* The first load of a build in this process happens in the
         * scanner's child first: a crash, exit or hang there quarantines it
         * and costs the host nothing. */
        if (cfd >= 0 && l->scan && !p->scanned) {
            scan_result sr;
            scanner_scan(p->cached, p->hash, &st, l->verdict_dir, l->scan_timeout, &sr);
            p->scanned = sr.cached ? 2 : 1;
            /* Another ndf sharing the cache removed the copy while it was
             * scanned (its own, same name, at its exit): copy again.  The
             * copy may be back by now, made by a third ndf, so the
             * scanner's "not found" says it as well as a look does. */
            if (sr.verdict == SCAN_REFUSED && attempt < 3 &&
                (sr.status == NDF_ERR_NOT_FOUND ||
                 (faccessat(l->cache_fd, p->cached_name, F_OK, 0) != 0 && errno == ENOENT))) {
                free(sr.message);
                free(sr.name);
                free(sr.version);
                free(sr.license);
                free(sr.description);
                p->scanned = 0;
                free(p->cached);
                free(p->cached_name);
                p->cached = p->cached_name = NULL;
                continue;
            }
            if (sr.verdict != SCAN_OK) {
                p->quarantined = sr.verdict == SCAN_QUARANTINED;
                p->abi_major = sr.abi_major;
                p->abi_minor = sr.abi_minor;
                p->desc_size = sr.desc_size;
                p->name = sr.name;
                p->version = sr.version;
                p->license = sr.license;
                p->description = sr.description;
                rc = refuse(l, p, sr.status, "%s%s", p->quarantined ? "quarantined: " : "",
                            sr.message);
                free(sr.message);
                goto out;
            }
            /* the host reads the descriptor itself once loaded */
            free(sr.name);
            free(sr.version);
            free(sr.license);
            free(sr.description);
            if (!sr.cached)
                log_msg(NDF_LOG_DEBUG, "plugin %s: scanned in %.1f ms", path, sr.seconds * 1e3);
        }
        p->handle = dlopen(p->cached, RTLD_NOW | RTLD_LOCAL);
        if (p->handle)
            break;
        const char *e = dlerror();
        if (attempt < 3 && ((e && strstr(e, "No such file")) ||
                            (faccessat(l->cache_fd, p->cached_name, F_OK, 0) != 0 &&
                             errno == ENOENT))) {
            free(p->cached);
            free(p->cached_name);
            p->cached = p->cached_name = NULL;
            continue;
        }
        int noexec = e && strstr(e, "failed to map segment");
        rc = refuse(l, p, NDF_ERR_INVALID, "cannot be loaded: %s%s%s%s",
                    e ? e : "unknown dlopen error", noexec ? " (is the plugin cache " : "",
                    noexec ? l->cache_dir : "",
                    noexec ? " on a noexec mount? set plugins.cache_dir or NDF_RUNTIME_DIR)"
                           : "; rebuild it against the installed SDK and libraries");
        goto out;
    }
    close(fd);
    return check_and_init(l, p);
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int loader_load(loader *l, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? (slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path)))
                      : xstrdup(".");
    const char *base = slash ? slash + 1 : path;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat dst;
    int rc;
    if (dfd < 0 || fstat(dfd, &dst) != 0) {
        int e = errno;
        plugin *p = xcalloc(1, sizeof *p);
        p->path = xstrdup(path);
        l->files = xrealloc(l->files, (l->nfiles + 1) * sizeof *l->files);
        l->files[l->nfiles++] = p;
        rc = e == ENOENT || e == ENOTDIR
                 ? refuse(l, p, NDF_ERR_NOT_FOUND, "no such file")
                 : refuse(l, p, NDF_ERR_IO, "cannot open its directory %s: %s", dir, strerror(e));
    } else {
        rc = load_at(l, dfd, &dst, dir, base, path);
    }
    if (dfd >= 0)
        close(dfd);
    free(dir);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the "*.so" regular files and symbolic links in the open
 * directory `dfd`, sorted by strcmp; NULL with *n 0 when none or unreadable
 * (logged). */
static char **list_plugins(int dfd, const char *dir, size_t *n)
{
    *n = 0;
    int dfd2 = dup(dfd);
    DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!d) {
        log_msg(NDF_LOG_WARN, "plugin directory %s: %s (skipped)", dir, strerror(errno));
        if (dfd2 >= 0)
            close(dfd2);
        return NULL;
    }
    char **names = NULL;
    size_t nnames = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                continue;
            type = S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_DIR;
        }
        /* Symbolic links are tried so that their refusal is reported. */
        if (type != DT_REG && type != DT_LNK)
            continue;
        names = xrealloc(names, (nnames + 1) * sizeof *names);
        names[nnames++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (nnames)
        qsort(names, nnames, sizeof *names, cmp_str);
    *n = nnames;
    return names;
}

static int open_plugin_dir(const char *dir, int *dfd, struct stat *dst)
{
    *dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dfd < 0 || fstat(*dfd, dst) != 0) {
        log_msg(NDF_LOG_WARN, "plugin directory %s: %s (skipped)", dir, strerror(errno));
        if (*dfd >= 0)
            close(*dfd);
        *dfd = -1;
        return -1;
    }
    return 0;
}

static char *join_path(const char *dir, const char *name)
{
    int trailing = dir[0] && dir[strlen(dir) - 1] == '/';
    return xasprintf("%s%s%s", dir, trailing ? "" : "/", name);
}

/* ---- the index of what each file provides; lazy loading ---- */

/* What identifies a file's content without reading it: a change of any
 * of these (a new build renamed into place, written over, touched,
 * chmod'ed, chown'ed) invalidates its entry.  ctime cannot be set back by
 * anyone but root. */
static void file_ident(char *buf, size_t n, dev_t dev, ino_t ino, off_t size,
                       const struct timespec *mt, const struct timespec *ct, mode_t mode,
                       uid_t uid, gid_t gid)
{
    snprintf(buf, n, "%ju %ju %jd %jd.%09ld %jd.%09ld %o %u %u", (uintmax_t)dev, (uintmax_t)ino,
             (intmax_t)size, (intmax_t)mt->tv_sec, mt->tv_nsec, (intmax_t)ct->tv_sec,
             ct->tv_nsec, (unsigned)mode, (unsigned)uid, (unsigned)gid);
}

/* One line of the index: "PATH\tIDENT\tPLUGIN\t,TYPES,\t,STEPS,". */
typedef struct index_entry {
    char *line; /* owned; the fields below point into it */
    const char *ident, *plugin, *types, *steps;
} index_entry;

static void entry_free(void *v)
{
    index_entry *e = v;
    if (e) {
        free(e->line);
        free(e);
    }
}

/* ",a,b," names valid for `kind`'s table (or "," for none). */
static int names_valid(const char *list)
{
    size_t len = strlen(list);
    if (len < 1 || list[0] != ',' || list[len - 1] != ',')
        return 0;
    for (const char *q = list + 1; *q;) {
        const char *e = strchr(q, ',');
        if (e == q)
            break; /* the final comma */
        char name[NAME_MAX_LEN + 1];
        size_t nl = (size_t)(e - q);
        if (nl > NAME_MAX_LEN)
            return 0;
        memcpy(name, q, nl);
        name[nl] = 0;
        if (!ident_valid(name, 0))
            return 0;
        q = e + 1;
    }
    return 1;
}

/* The index's entries by path (an empty map when there is none, or it is
 * not ours, or not an index).  Malformed lines are skipped: the index is
 * a hint, checked by loading. */
static hashmap *index_read(const loader *l)
{
    hashmap *m = hashmap_new();
    int fd = openat(l->cache_fd, INDEX_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return m;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        st.st_size > INDEX_MAX_BYTES || st.st_size < (off_t)strlen(INDEX_MAGIC)) {
        close(fd);
        return m;
    }
    size_t len = (size_t)st.st_size;
    char *buf = xmalloc(len + 1);
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    if (got != len || strncmp(buf, INDEX_MAGIC, strlen(INDEX_MAGIC)) != 0) {
        free(buf);
        return m;
    }
    for (char *line = buf + strlen(INDEX_MAGIC), *next; *line; line = next) {
        next = strchr(line, '\n');
        if (!next)
            break; /* a last line without its newline was cut short */
        *next++ = 0;
        size_t tabs = 0;
        for (const char *q = line; *q; q++)
            tabs += *q == '\t';
        if (tabs != 4)
            continue;
        char *f[5];
        f[0] = line;
        for (int k = 1; k < 5; k++) {
            char *t = strchr(f[k - 1], '\t');
            *t = 0;
            f[k] = t + 1;
        }
        if (f[0][0] != '/' || !ident_valid(f[2], 1) || !names_valid(f[3]) || !names_valid(f[4]))
            continue;
        index_entry *e = xcalloc(1, sizeof *e);
        size_t total = (size_t)(f[4] - f[0]) + strlen(f[4]) + 1;
        e->line = xmalloc(total);
        memcpy(e->line, f[0], total);
        e->ident = e->line + (f[1] - f[0]);
        e->plugin = e->line + (f[2] - f[0]);
        e->types = e->line + (f[3] - f[0]);
        e->steps = e->line + (f[4] - f[0]);
        entry_free(hashmap_put(m, e->line, e));
    }
    free(buf);
    return m;
}

static void sb_names(strbuf *sb, const plugin *p, provided_kind kind)
{
    sb_puts(sb, ",");
    for (size_t i = 0; i < p->nprov; i++)
        if (p->prov[i]->kind == kind)
            sb_printf(sb, "%s,", p->prov[i]->name);
}

/* An absolute path, with nothing in it that would break a line. */
static int index_path_ok(const char *path)
{
    return path[0] == '/' && !strpbrk(path, "\t\n");
}

/* After an eager scan: writes the index of the plugins that loaded
 * (those refused have no entry: a lazy scan then sees a file it cannot
 * place and loads everything, saying again why it refuses one), keeping
 * the entries of files other configurations found elsewhere.  Written
 * only when it changed; not durable (it is a hint, rebuilt by any scan). */
static void index_update(loader *l)
{
    hashmap *old = index_read(l);
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, INDEX_MAGIC);
    size_t n = 0;
    for (size_t i = 0; i < l->nfiles; i++) {
        plugin *p = l->files[i];
        if (!index_path_ok(p->path))
            continue;
        entry_free(hashmap_remove(old, p->path));
        if (!p->loaded || p->retired || !p->name)
            continue;
        char ident[256];
        file_ident(ident, sizeof ident, p->dev, p->ino, p->fsize, &p->mtim, &p->ctim, p->mode,
                   p->uid, p->gid);
        sb_printf(&sb, "%s\t%s\t%s\t", p->path, ident, p->name);
        sb_names(&sb, p, PROVIDED_PATTERN_TYPE);
        sb_puts(&sb, "\t");
        sb_names(&sb, p, PROVIDED_STEP);
        sb_puts(&sb, "\n");
        n++;
    }
    size_t pos = 0;
    const char *key;
    void *val;
    while (n < INDEX_MAX_ENTRIES && hashmap_next(old, &pos, &key, &val)) {
        index_entry *e = val;
        sb_printf(&sb, "%s\t%s\t%s\t%s\t%s\n", e->line, e->ident, e->plugin, e->types,
                  e->steps);
        n++;
    }
    hashmap_free(old, entry_free);
    /* unchanged (the usual case): no write */
    int fd = openat(l->cache_fd, INDEX_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        char *cur = xmalloc(sb.len + 1);
        ssize_t got = pread(fd, cur, sb.len + 1, 0);
        close(fd);
        int same = got == (ssize_t)sb.len && memcmp(cur, sb.buf, sb.len) == 0;
        free(cur);
        if (same) {
            sb_free(&sb);
            return;
        }
    }
    fs_atomic a;
    if (fs_atomic_begin(&a, l->cache_fd, l->cache_dir, INDEX_NAME, 0600) == NDF_OK) {
        if (fs_write_all(a.fd, sb.buf, sb.len) == 0)
            fs_atomic_commit(&a, INDEX_NAME, 0);
        else
            fs_atomic_abort(&a);
    }
    sb_free(&sb);
}

/* ",a,b," holds `name`. */
static int list_has(const char *list, const char *name)
{
    size_t nl = strlen(name);
    for (const char *q = strstr(list, name); q; q = strstr(q + 1, name))
        if (q[-1] == ',' && q[nl] == ',')
            return 1;
    return 0;
}

/* The number of names in ",a,b," ("," holds none). */
static size_t list_len(const char *list)
{
    size_t commas = 0;
    for (const char *q = list; *q; q++)
        commas += *q == ',';
    return commas ? commas - 1 : 0;
}

/* Adds each name of ",a,b," to `seen` (prefixed by `kind`); 0 when one
 * was there already. */
static int names_unique(hashmap *seen, char kind, const char *list)
{
    for (const char *q = list + 1; *q;) {
        const char *e = strchr(q, ',');
        if (e == q)
            break;
        char key[NAME_MAX_LEN + 3];
        snprintf(key, sizeof key, "%c:%.*s", kind, (int)(e - q), q);
        if (hashmap_get(seen, key))
            return 0;
        hashmap_put(seen, key, (void *)1);
        q = e + 1;
    }
    return 1;
}

static void defer_free(deferred *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].dir);
        free(d[i].name);
        free(d[i].path);
        free(d[i].plugin);
        free(d[i].types);
        free(d[i].steps);
    }
    free(d);
}

/* A lazy scan: defers every file when the index describes each one as it
 * is now and no plugin name, type or step is provided twice (which file
 * would win, or be refused, depends on the order an eager scan loads
 * them in).  1 when deferred, 0 when the caller must load them all (the
 * messages of a directory that cannot be read are the eager scan's). */
static int lazy_scan(loader *l, char *const *dirs, size_t ndirs)
{
    hashmap *idx = index_read(l);
    hashmap *seen = hashmap_new();
    deferred *d = NULL;
    size_t nd = 0;
    int ok = hashmap_count(idx) > 0;
    for (size_t i = 0; ok && i < ndirs; i++) {
        /* not open_plugin_dir: the eager scan that follows a failure
         * says why, once */
        int dfd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            ok = 0;
            break;
        }
        size_t nnames = 0;
        char **names = list_plugins(dfd, dirs[i], &nnames);
        for (size_t j = 0; j < nnames; j++) {
            char *path = join_path(dirs[i], names[j]);
            struct stat st;
            index_entry *e = ok ? hashmap_get(idx, path) : NULL;
            char ident[256];
            if (e && fstatat(dfd, names[j], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(st.st_mode)) {
                file_ident(ident, sizeof ident, st.st_dev, st.st_ino, st.st_size, &st.st_mtim,
                           &st.st_ctim, st.st_mode, st.st_uid, st.st_gid);
                char pkey[NAME_MAX_LEN + 3];
                snprintf(pkey, sizeof pkey, "P:%s", e->plugin);
                ok = strcmp(ident, e->ident) == 0 && !hashmap_get(seen, pkey) &&
                     names_unique(seen, 't', e->types) && names_unique(seen, 's', e->steps);
                hashmap_put(seen, pkey, (void *)1);
            } else {
                ok = 0;
            }
            if (ok) {
                d = xrealloc(d, (nd + 1) * sizeof *d);
                d[nd++] = (deferred){.dir = xstrdup(dirs[i]),
                                     .name = xstrdup(names[j]),
                                     .path = path,
                                     .plugin = xstrdup(e->plugin),
                                     .types = xstrdup(e->types),
                                     .steps = xstrdup(e->steps)};
                path = NULL;
            }
            free(path);
            free(names[j]);
        }
        free(names);
        close(dfd);
    }
    hashmap_free(idx, entry_free);
    hashmap_free(seen, NULL);
    if (!ok || !nd) {
        defer_free(d, nd);
        return 0;
    }
    l->defer = d;
    l->ndefer = nd;
    atomic_store(&l->nleft, nd);
    return 1;
}

/* Loads deferred file `d` now.  Caller holds lazy_lock. */
/* Loads `d`; 0 when the file provides a name its entry left out (or is
 * another plugin): an entry that hides a name can hide a name provided
 * twice, which only loading every file finds.  A file never loaded is not
 * checked: see ndf(1) on what the index is trusted for. */
static int lazy_load(loader *l, deferred *d)
{
    if (d->done)
        return 1;
    d->done = 1;
    int dfd;
    struct stat dst;
    char *dir = d->dir;
    int kept = 1;
    if (open_plugin_dir(dir, &dfd, &dst) == 0) {
        size_t before = l->nfiles;
        load_at(l, dfd, &dst, dir, d->name, d->path);
        close(dfd);
        plugin *p = l->nfiles > before ? l->files[l->nfiles - 1] : NULL;
        if (p && p->loaded) {
            if (!p->name || strcmp(p->name, d->plugin) != 0)
                kept = 0;
            size_t ntypes = 0, nsteps = 0;
            for (size_t i = 0; kept && i < p->nprov; i++) {
                int type = p->prov[i]->kind == PROVIDED_PATTERN_TYPE;
                if (type)
                    ntypes++;
                else
                    nsteps++;
                kept = list_has(type ? d->types : d->steps, p->prov[i]->name);
            }
            /* every name provided is listed; as many as listed: exact */
            if (kept && (ntypes != list_len(d->types) || nsteps != list_len(d->steps)))
                kept = 0;
        }
    }
    atomic_fetch_sub(&l->nleft, 1);
    return kept;
}

/* Loads every file still deferred, in scan order. */
static void lazy_load_all(loader *l)
{
    if (!atomic_load(&l->nleft))
        return;
    pthread_mutex_lock(&l->lazy_lock);
    for (size_t i = 0; i < l->ndefer; i++)
        lazy_load(l, &l->defer[i]);
    pthread_mutex_unlock(&l->lazy_lock);
}

static const provided *lazy_find(loader *l, provided_kind kind, const char *name)
{
    const char *plugin_name = NULL;
    pthread_mutex_lock(&l->lazy_lock);
    const provided *p = find_loaded(l, kind, name);
    for (size_t i = 0; !p && i < l->ndefer; i++) {
        deferred *d = &l->defer[i];
        if (d->done || !list_has(kind == PROVIDED_PATTERN_TYPE ? d->types : d->steps, name))
            continue;
        plugin_name = d->plugin;
        int kept = lazy_load(l, d);
        p = find_loaded(l, kind, name);
        if (!kept)
            p = NULL;
        break;
    }
    /* The index promised it and the file did not keep the promise (or was
     * refused, or provides more than its entry said): everything, as an
     * eager scan would have. */
    if (!p && plugin_name) {
        for (size_t i = 0; i < l->ndefer; i++)
            lazy_load(l, &l->defer[i]);
        p = find_loaded(l, kind, name);
    }
    pthread_mutex_unlock(&l->lazy_lock);
    return p;
}

size_t loader_scan(loader *l, char *const *dirs, size_t ndirs)
{
    if (l->lazy && !l->nfiles && !l->ndefer && lazy_scan(l, dirs, ndirs))
        return 0;
    size_t loaded = 0;
    for (size_t i = 0; i < ndirs; i++) {
        const char *dir = dirs[i];
        int dfd;
        struct stat dst;
        if (open_plugin_dir(dir, &dfd, &dst) != 0)
            continue;
        size_t nnames;
        char **names = list_plugins(dfd, dir, &nnames);
        for (size_t j = 0; j < nnames; j++) {
            char *path = join_path(dir, names[j]);
            if (load_at(l, dfd, &dst, dir, names[j], path) == NDF_OK)
                loaded++;
            free(path);
            free(names[j]);
        }
        free(names);
        close(dfd);
    }
    if (l->index && l->cache_fd >= 0)
        index_update(l);
    return loaded;
}

/* ---- generations: rescan, retire, collect ---- */

static void plugin_free(plugin *p)
{
    for (size_t j = 0; j < p->nprov; j++)
        free(p->prov[j]);
    free(p->prov);
    free(p->path);
    free(p->cached);
    free(p->cached_name);
    free(p->name);
    free(p->version);
    free(p->license);
    free(p->description);
    free(p->reason);
    free(p);
}

static void files_remove(loader *l, plugin *p)
{
    for (size_t i = 0; i < l->nfiles; i++)
        if (l->files[i] == p) {
            memmove(&l->files[i], &l->files[i + 1], (l->nfiles - i - 1) * sizeof *l->files);
            l->nfiles--;
            return;
        }
}

/* Forgets a refused entry (its copy is already gone). */
static void drop_refused(loader *l, plugin *p)
{
    files_remove(l, p);
    plugin_free(p);
}

/* Takes a serving plugin out of service: lookups no longer find it (after
 * table_rebuild), and it is unloaded once its last user is gone. */
static void retire(loader *l, plugin *p)
{
    files_remove(l, p);
    p->retired = 1;
    l->retired = xrealloc(l->retired, (l->nretired + 1) * sizeof *l->retired);
    l->retired[l->nretired++] = p;
    atomic_fetch_sub(&p->refs, 1);
}

static plugin *find_entry(const loader *l, const char *path, int loaded)
{
    for (size_t i = 0; i < l->nfiles; i++)
        if (!l->files[i]->loaded == !loaded && strcmp(l->files[i]->path, path) == 0)
            return l->files[i];
    return NULL;
}

static int same_file(const plugin *p, const struct stat *st)
{
    return p->dev == st->st_dev && p->ino == st->st_ino && p->fsize == st->st_size &&
           p->mtim.tv_sec == st->st_mtim.tv_sec && p->mtim.tv_nsec == st->st_mtim.tv_nsec &&
           p->mode == st->st_mode && p->uid == st->st_uid && p->gid == st->st_gid;
}

/* The sha-256 of `name` in `dfd` (hex into `out`), or -1. */
static int hash_file(int dfd, const char *name, char out[65])
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    sha256_ctx h;
    sha256_init(&h);
    unsigned char *buf = xmalloc(65536);
    off_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, 65536, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -1;
        if (n <= 0)
            break;
        sha256_update(&h, buf, (size_t)n);
        off += n;
    }
    free(buf);
    close(fd);
    unsigned char digest[SHA256_DIGEST_SIZE];
    sha256_final(&h, digest);
    sha256_hex(digest, out);
    return rc;
}

static size_t loader_rescan_dirs(loader *l, char *const *dirs, size_t ndirs);

/* One file found by a rescan: new, changed, or as it was. */
static size_t rescan_file(loader *l, int dfd, const struct stat *dst, const char *dir,
                          const char *name, const char *path)
{
    plugin *cur = find_entry(l, path, 1), *bad = find_entry(l, path, 0);
    if (cur)
        cur->seen = 1;
    if (bad)
        bad->seen = 1;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0; /* gone again: the next rescan sees it missing */
    if (cur && same_file(cur, &st)) {
        if (bad)
            drop_refused(l, bad); /* the file went back to what serves */
        return 0;
    }
    /* A refused file is tried again only when something about it changed
     * (its bytes, mtime, mode or owner: a refusal for a group-writable file
     * is fixed by chmod alone), or when the operator asks (ctl reload). */
    if (bad && same_file(bad, &st) && !l->retry_refused)
        return 0;
    char hash[65] = "";
    if (S_ISREG(st.st_mode) && hash_file(dfd, name, hash) != 0)
        hash[0] = '\0';
    if (cur && hash[0] && strcmp(hash, cur->hash) == 0) {
        /* touched or rewritten with the same bytes: nothing to reload */
        cur->dev = st.st_dev;
        cur->ino = st.st_ino;
        cur->fsize = st.st_size;
        cur->mtim = st.st_mtim;
        cur->mode = st.st_mode;
        cur->uid = st.st_uid;
        cur->gid = st.st_gid;
        if (bad)
            drop_refused(l, bad);
        return 0;
    }
    if (bad)
        drop_refused(l, bad);

    l->replacing = cur;
    int quiet = l->quiet;
    l->quiet = 1; /* logged below, with what keeps serving */
    int rc = load_at(l, dfd, dst, dir, name, path);
    l->quiet = quiet;
    l->replacing = NULL;
    plugin *np = l->files[l->nfiles - 1];
    np->seen = 1;
    if (!np->hash[0])
        memcpy(np->hash, hash, sizeof np->hash);
    if (rc != NDF_OK) {
        if (cur) {
            char *r = xasprintf("%s [new file sha256 %.16s refused; version %s (sha256 %.16s) "
                                "keeps serving]",
                                np->reason, np->hash[0] ? np->hash : "unknown",
                                cur->version ? cur->version : "?", cur->hash);
            free(np->reason);
            np->reason = r;
        }
        if (!l->quiet)
            log_msg(np->quarantined ? NDF_LOG_ERROR : NDF_LOG_WARN, "plugin %s", np->reason);
        l->nrefusals++;
        if (l->refusals)
            sb_printf(l->refusals, "%splugin %s", l->refusals->len ? "; " : "", np->reason);
        return 0;
    }
    if (cur) {
        /* the new build takes the old one's place in the list */
        l->nfiles--;
        for (size_t i = 0; i < l->nfiles; i++)
            if (l->files[i] == cur)
                l->files[i] = np;
        l->files = xrealloc(l->files, (l->nfiles + 1) * sizeof *l->files);
        l->files[l->nfiles++] = cur;
        log_msg(NDF_LOG_INFO,
                "plugin %s reloaded from %s: version %s (sha256 %.16s) replaces "
                "%s (sha256 %.16s), which is unloaded once idle",
                np->name, path, np->version ? np->version : "?", np->hash,
                cur->version ? cur->version : "?", cur->hash);
        retire(l, cur);
    } else {
        log_msg(NDF_LOG_INFO, "plugin %s loaded from %s: version %s (sha256 %.16s)", np->name, path,
                np->version ? np->version : "?", np->hash);
    }
    return 1;
}

size_t loader_rescan(loader *l, char *const *dirs, size_t ndirs)
{
    return loader_rescan_ex(l, dirs, ndirs, 0, NULL, NULL);
}

size_t loader_rescan_ex(loader *l, char *const *dirs, size_t ndirs, int retry_refused,
                        size_t *refused, strbuf *why)
{
    l->retry_refused = retry_refused;
    l->refusals = why;
    l->nrefusals = 0;
    size_t changes = loader_rescan_dirs(l, dirs, ndirs);
    if (refused)
        *refused = l->nrefusals;
    l->retry_refused = 0;
    l->refusals = NULL;
    return changes;
}

static size_t loader_rescan_dirs(loader *l, char *const *dirs, size_t ndirs)
{
    size_t changes = 0;
    lazy_load_all(l);
    for (size_t i = 0; i < l->nfiles; i++)
        l->files[i]->seen = 0;
    for (size_t i = 0; i < ndirs; i++) {
        int dfd;
        struct stat dst;
        if (open_plugin_dir(dirs[i], &dfd, &dst) != 0)
            continue;
        size_t nnames;
        char **names = list_plugins(dfd, dirs[i], &nnames);
        for (size_t j = 0; j < nnames; j++) {
            char *path = join_path(dirs[i], names[j]);
            changes += rescan_file(l, dfd, &dst, dirs[i], names[j], path);
            free(path);
            free(names[j]);
        }
        free(names);
        close(dfd);
    }
    for (size_t i = l->nfiles; i-- > 0;) {
        plugin *p = l->files[i];
        if (p->seen)
            continue;
        if (p->loaded) {
            if (!l->quiet)
                log_msg(NDF_LOG_WARN,
                        "plugin %s: %s is gone; it is unloaded once idle, and patterns that "
                        "use what it provides no longer validate",
                        p->name, p->path);
            retire(l, p);
            changes++;
        } else {
            drop_refused(l, p);
        }
    }
    if (changes)
        table_rebuild(l);
    return changes;
}

/* Finalizes and unloads `p` (no users left), then checks that the code
 * really left the process. */
static void unload(loader *l, plugin *p)
{
    if (p->desc && p->desc->fini)
        p->desc->fini(l->host, p->state);
    int gone = 1;
    if (p->handle) {
        dlclose(p->handle);
        p->handle = NULL;
        void *h = p->cached ? dlopen(p->cached, RTLD_NOW | RTLD_NOLOAD) : NULL;
        if (h) {
            dlclose(h);
            gone = 0;
        }
    }
    if (gone) {
        l->unloaded++;
        log_msg(NDF_LOG_INFO, "plugin %s version %s (sha256 %.16s) unloaded", p->name,
                p->version ? p->version : "?", p->hash);
    } else {
        l->not_unloadable++;
        log_msg(NDF_LOG_WARN,
                "plugin %s version %s (sha256 %.16s) is not unloadable: its code is still "
                "mapped after dlclose (thread-local destructors, unique symbols or "
                "DF_1_NODELETE keep it); it stays in memory until ndf exits",
                p->name, p->version ? p->version : "?", p->hash);
    }
    if (p->cached_name)
        unlinkat(l->cache_fd, p->cached_name, 0);
    plugin_free(p);
}

size_t loader_collect(loader *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->nretired;) {
        plugin *p = l->retired[i];
        if (atomic_load(&p->refs) > 0) {
            i++;
            continue;
        }
        memmove(&l->retired[i], &l->retired[i + 1], (l->nretired - i - 1) * sizeof *l->retired);
        l->nretired--;
        unload(l, p);
        n++;
    }
    return n;
}

void loader_generations(const loader *l, loader_gen_stats *out)
{
    out->retired = l->nretired;
    out->unloaded = l->unloaded;
    out->not_unloadable = l->not_unloadable;
    out->pinned = 0;
    for (size_t i = 0; i < l->nfiles; i++)
        if (l->files[i]->loaded)
            out->pinned += (size_t)(atomic_load(&l->files[i]->refs) - 1);
    for (size_t i = 0; i < l->nretired; i++)
        out->pinned += (size_t)atomic_load(&l->retired[i]->refs);
}

size_t loader_count(const loader *l)
{
    lazy_load_all((loader *)(uintptr_t)l);
    return l->nfiles;
}

void loader_plugin(const loader *l, size_t i, plugin_info *info)
{
    loader_plugin_describe(l->files[i], info);
}

void loader_plugin_describe(const plugin *p, plugin_info *info)
{
    memset(info, 0, sizeof *info);
    info->path = p->path;
    info->cached = p->cached;
    memcpy(info->hash, p->hash, sizeof info->hash);
    info->name = p->name;
    info->version = p->version;
    info->license = p->license;
    info->description = p->description;
    info->abi_major = p->abi_major;
    info->abi_minor = p->abi_minor;
    info->loaded = p->loaded;
    info->reason = p->reason;
    info->provides = (const provided *const *)p->prov;
    info->nprovides = p->nprov;
    info->desc_size = p->desc_size;
    info->status = p->status;
    info->quarantined = p->quarantined;
    info->scanned = p->scanned;
}

loader *loader_scope_enter(loader *l)
{
    loader *prev = scope_loader;
    scope_loader = l;
    return prev;
}

void loader_scope_leave(loader *prev)
{
    scope_loader = prev;
}

loader *loader_scope(void)
{
    return scope_loader;
}

void loader_require(const char *name, const char *file, int line)
{
    scope_reqs = xrealloc(scope_reqs, (scope_nreqs + 1) * sizeof *scope_reqs);
    scope_reqs[scope_nreqs].name = xstrdup(name);
    scope_reqs[scope_nreqs].file = file;
    scope_reqs[scope_nreqs].line = line;
    scope_nreqs++;
}

void loader_take_requirements(loader_requirement **out, size_t *n)
{
    *out = scope_reqs;
    *n = scope_nreqs;
    scope_reqs = NULL;
    scope_nreqs = 0;
}

void loader_free_requirements(loader_requirement *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i].name);
    free(r);
}

const ndf_host *loader_host(const loader *l)
{
    return l->host;
}

loader *loader_new_in_place(const ndf_host *host, const char *file)
{
    loader *l = xcalloc(1, sizeof *l);
    l->types = hashmap_new();
    l->steps = hashmap_new();
    pthread_rwlock_init(&l->lock, NULL);
    pthread_mutex_init(&l->lazy_lock, NULL);
    l->host = host;
    l->cache_fd = -1;
    l->allow_insecure = 1; /* the host checked and scanned this very copy */
    l->quiet = 1;
    l->child_fd = -1;
    l->in_place = 1;
    if (loader_load(l, file) != NDF_OK) {
        char *why = xstrdup(err_msg());
        loader_free(l);
        err_set(NDF_ERR_EXECUTION, "%s", why);
        free(why);
        return NULL;
    }
    return l;
}

int loader_scan_child(const ndf_host *host, const char *file, int fd)
{
    struct stat fst;
    if (fstat(fd, &fst) != 0 || !S_ISFIFO(fst.st_mode))
        return 2;
    loader *l = xcalloc(1, sizeof *l);
    l->types = hashmap_new();
    l->steps = hashmap_new();
    pthread_rwlock_init(&l->lock, NULL);
    pthread_mutex_init(&l->lazy_lock, NULL);
    l->host = host;
    l->cache_fd = -1;
    l->allow_insecure = 1; /* the parent checked the installed file */
    l->quiet = 1;
    l->child_fd = fd;
    scanner_report(fd, "ndf-scan", "1");
    loader_load(l, file);
    plugin *p = l->files[0];
    char num[32];
    snprintf(num, sizeof num, "%d", p->status);
    scanner_report(fd, "status", num);
    if (p->reason) {
        /* the parent names the installed file, not this copy */
        size_t n = strlen(p->path);
        const char *why = p->reason;
        if (strncmp(why, p->path, n) == 0 && strncmp(why + n, ": ", 2) == 0)
            why += n + 2;
        scanner_report(fd, "reason", why);
    }
    child_report_desc(l, p);
    for (size_t i = 0; i < p->nprov; i++)
        scanner_report(fd, p->prov[i]->kind == PROVIDED_STEP ? "step" : "pattern-type",
                       p->prov[i]->name);
    scanner_report(fd, "loaded", p->loaded ? "1" : "0");
    if (p->loaded) {
        scanner_report(fd, "stage", "fini");
        if (p->desc->fini)
            p->desc->fini(host, p->state);
        p->loaded = 0;
    }
    if (p->handle) {
        scanner_report(fd, "stage", "unload");
        dlclose(p->handle);
        p->handle = NULL;
    }
    scanner_report(fd, "end", "");
    loader_free(l);
    return 0;
}

void loader_free(loader *l)
{
    if (!l)
        return;
    if (scope_loader == l)
        scope_loader = NULL;
    /* Retired generations first (they were loaded before their
     * replacements), then the serving ones in reverse load order. */
    while (l->nretired) {
        plugin *p = l->retired[--l->nretired];
        if (p->desc && p->desc->fini)
            p->desc->fini(l->host, p->state);
        if (p->handle)
            dlclose(p->handle);
        if (p->cached_name)
            unlinkat(l->cache_fd, p->cached_name, 0);
        plugin_free(p);
    }
    free(l->retired);
    for (size_t i = l->nfiles; i-- > 0;) {
        plugin *p = l->files[i];
        if (p->loaded && p->desc->fini)
            p->desc->fini(l->host, p->state);
        if (p->handle)
            dlclose(p->handle);
        if (p->cached_name)
            unlinkat(l->cache_fd, p->cached_name, 0);
        plugin_free(p);
    }
    free(l->files);
    defer_free(l->defer, l->ndefer);
    hashmap_free(l->types, NULL);
    hashmap_free(l->steps, NULL);
    pthread_rwlock_destroy(&l->lock);
    pthread_mutex_destroy(&l->lazy_lock);
    if (l->cache_fd >= 0)
        close(l->cache_fd);
    free(l->cache_dir);
    free(l->verdict_dir);
    free(l);
}

const char *loader_provided_plugin(const provided *p, const char **file)
{
    const plugin *pl = p ? p->owner : NULL;
    if (file)
        *file = pl ? pl->path : NULL;
    return pl ? pl->name : NULL;
}
