/* The store's front: store_open() picks the backend that storage.backend
 * names, and every other store_* function hands the call to the backend
 * the handle belongs to (its store_ops, store_backend.h).  Also the few
 * helpers both backends need to tell a live process from a dead one. */
#include "build-config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <zlib.h>

#include <ndf/sdk.h>

#include "store/store.h"
#include "store/store_backend.h"

static const store_ops *ops_of(const store *s)
{
    return ((const store_head *)(const void *)s)->ops;
}

static const char *const backend_names[] = {"sqlite", "postgresql"};

const char *store_backend_name(store_backend b)
{
    return (unsigned)b < ARRAY_SIZE(backend_names) ? backend_names[b] : "unknown";
}

int store_backend_parse(const char *name, store_backend *out)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(backend_names); i++) {
        if (strcasecmp(name, backend_names[i]) == 0) {
            *out = (store_backend)i;
            return 0;
        }
    }
    return -1;
}

int store_backend_available(store_backend b)
{
    switch (b) {
    case STORE_BACKEND_SQLITE: return 1;
#ifdef HAVE_LIBPQ
    case STORE_BACKEND_POSTGRESQL: return 1;
#endif
    default: return 0;
    }
}

store_backend store_get_backend(const store *s)
{
    return ops_of(s)->backend;
}

int store_open(const char *dir, const store_opts *opts, store **out)
{
    *out = NULL;
    store_opts o;
    if (opts)
        o = *opts;
    else
        store_opts_default(&o);
    switch (o.backend) {
    case STORE_BACKEND_SQLITE: return store_sqlite_open(dir, &o, out);
    case STORE_BACKEND_POSTGRESQL:
#ifdef HAVE_LIBPQ
        return store_pg_open(dir, &o, out);
#else
        return err_set(NDF_ERR_INVALID,
                       "storage.backend is \"postgresql\", but this ndf was built without "
                       "PostgreSQL support; rebuild it with libpq (Debian: apt-get install "
                       "libpq-dev, then configure --with-postgresql), or use \"sqlite\"");
#endif
    }
    return err_set(NDF_ERR_INVALID, "unknown storage backend %d", (int)o.backend);
}

void store_close(store *s)
{
    if (s)
        ops_of(s)->close(s);
}

const char *store_path(const store *s)
{
    return ops_of(s)->path(s);
}

const char *store_dir(const store *s)
{
    return ops_of(s)->dir(s);
}

int store_begin(store *s, const store_exec *e)
{
    return ops_of(s)->begin(s, e);
}

int store_progress(store *s, const char *id, const store_node *n)
{
    return ops_of(s)->progress(s, id, n);
}

int store_finish_all(store *s, const store_exec *v, size_t n, learning_state *after)
{
    return ops_of(s)->finish_all(s, v, n, after);
}

int store_finish(store *s, const store_exec *e, learning_state *after)
{
    return ops_of(s)->finish_all(s, e, 1, after);
}

int store_finish_async(store *s, store_exec *v, size_t n, store_done_fn done, void *arg)
{
    const store_ops *o = ops_of(s);
    if (o->finish_async)
        return o->finish_async(s, v, n, done, arg);
    learning_state *after = xcalloc(n ? n : 1, sizeof *after);
    int rc = o->finish_all(s, v, n, after);
    char *msg = rc ? xstrdup(err_msg()) : NULL;
    done(arg, rc, msg, rc ? NULL : after, rc ? 0 : n);
    if (!rc)
        for (size_t i = 0; i < n; i++)
            learning_free(&after[i]);
    free(after);
    free(msg);
    store_exec_array_free(v, n);
    return NDF_OK;
}

static char *dup_or_null(const char *p)
{
    return p ? xstrdup(p) : NULL;
}

/* A heap copy of the execution as store_begin() reads it: its strings and
 * its nodes' paths and messages (not their outputs). */
static store_exec *begin_copy(const store_exec *e)
{
    store_exec *c = xcalloc(1, sizeof *c);
    *c = *e;
    c->id = dup_or_null(e->id);
    c->pattern = dup_or_null(e->pattern);
    c->parent_id = dup_or_null(e->parent_id);
    c->redrive_of = dup_or_null(e->redrive_of);
    c->context = dup_or_null(e->context);
    c->domain = dup_or_null(e->domain);
    c->host = dup_or_null(e->host);
    c->boot_id = dup_or_null(e->boot_id);
    c->message = dup_or_null(e->message);
    c->plugins = dup_or_null(e->plugins);
    c->fallback_from = dup_or_null(e->fallback_from);
    c->fallback_cause = dup_or_null(e->fallback_cause);
    c->nodes = e->nnodes ? xcalloc(e->nnodes, sizeof *c->nodes) : NULL;
    for (size_t i = 0; i < e->nnodes; i++) {
        store_node *n = &c->nodes[i];
        *n = e->nodes[i];
        n->path = dup_or_null(e->nodes[i].path);
        n->message = dup_or_null(e->nodes[i].message);
        for (int k = 0; k < STORE_NSTREAMS; k++) {
            n->out[k] = NULL;
            n->outlen[k] = 0;
            n->zout[k] = NULL;
            n->zoutlen[k] = 0;
        }
    }
    return c;
}

int store_begin_async(store *s, const store_exec *e, store_done_fn done, void *arg)
{
    const store_ops *o = ops_of(s);
    if (o->begin_async)
        return o->begin_async(s, begin_copy(e), done, arg);
    int rc = o->begin(s, e);
    char *msg = rc ? xstrdup(err_msg()) : NULL;
    done(arg, rc, msg, NULL, 0);
    free(msg);
    return NDF_OK;
}

void store_flush(store *s)
{
    if (ops_of(s)->flush)
        ops_of(s)->flush(s);
}

void store_get_stats(store *s, store_stats *out)
{
    ops_of(s)->get_stats(s, out);
}

int store_runs(store *s, const store_query *q, store_exec **out, size_t *n)
{
    return ops_of(s)->runs(s, q, out, n);
}

int store_get(store *s, const char *id, store_exec *out)
{
    return ops_of(s)->get(s, id, out);
}

int store_children(store *s, const char *id, store_exec **out, size_t *n)
{
    return ops_of(s)->children(s, id, out, n);
}

int store_output_each(store *s, const char *id, const char *path, int stream, int64_t from,
                      store_output_fn each, void *arg, size_t *len, uint64_t *dropped)
{
    size_t l = 0;
    uint64_t d = 0;
    if (stream < 0 || stream >= STORE_NSTREAMS)
        return err_set(NDF_ERR_INVALID, "no output stream %d", stream);
    int rc = ops_of(s)->output_each(s, id, path ? path : "", stream, from, each, arg, len ? len : &l,
                                    dropped ? dropped : &d);
    return rc;
}

typedef struct gather {
    char *buf;
    size_t len, cap;
    const size_t *want; /* set by the backend before the first piece */
} gather;

static int gather_piece(void *arg, const char *buf, size_t n)
{
    gather *g = arg;
    if (!g->buf) {
        g->cap = *g->want + 1;
        g->buf = xmalloc(g->cap);
    }
    if (n > g->cap - 1 - g->len)
        return err_set(NDF_ERR_IO, "an output grew while it was read");
    memcpy(g->buf + g->len, buf, n);
    g->len += n;
    return NDF_OK;
}

int store_output(store *s, const char *id, const char *path, int stream, char **buf, size_t *len,
                 uint64_t *dropped)
{
    size_t want = 0;
    gather g = {NULL, 0, 0, &want};
    *buf = NULL;
    *len = 0;
    int rc = store_output_each(s, id, path, stream, 0, gather_piece, &g, &want, dropped);
    if (rc) {
        free(g.buf);
        return rc;
    }
    if (!g.buf)
        g.buf = xmalloc(1);
    g.buf[g.len] = 0;
    *buf = g.buf;
    *len = g.len;
    return NDF_OK;
}

char *store_unrecorded_message(const store_exec *e, const char *why)
{
    store_status st = e->status == STORE_RUNNING ? STORE_FAILED : e->status;
    return store_unrecorded_text(why, store_status_name(st));
}

char *store_unrecorded_text(const char *why, const char *status)
{
    return xasprintf("not recorded: %s (the execution had ended %s)",
                     why && *why ? why : "write failed", status);
}

void store_perr_fail(store_perr *p, const char *msg)
{
    if (p->hold) {
        if (p->told)
            return; /* an end's failure since the last commit said it */
        if (!p->held)
            snprintf(p->msg, sizeof p->msg, "%s", msg ? msg : "write failed");
        p->held = 1;
        return;
    }
    if (!p->logged)
        log_msg(NDF_LOG_ERROR, "%s", msg ? msg : "write failed");
    p->logged = 1;
}

void store_perr_ok(store_perr *p)
{
    p->logged = 0;
    p->told = 0;
}

void store_perr_end_failed(store_perr *p)
{
    p->held = 0;
    p->told = 1;
}

void store_perr_close(store_perr *p)
{
    if (p->held)
        log_msg(NDF_LOG_WARN, "progress of a running execution not recorded: %s", p->msg);
    p->held = 0;
}

/* ---- inflating an output as it is read ---- */

struct store_unz {
    z_stream z;
    int ready, zrc;
    size_t len;    /* raw bytes the row says it holds */
    uint64_t from; /* the first raw byte to hand out */
    uint64_t out;  /* raw bytes inflated so far */
    int (*each)(void *, const char *, size_t);
    void *arg;
    unsigned char buf[STORE_OUTPUT_PIECE];
};

store_unz *store_unz_new(size_t len, int64_t from,
                         int (*each)(void *arg, const char *buf, size_t n), void *arg)
{
    store_unz *u = xcalloc(1, sizeof *u);
    u->len = len;
    uint64_t newest = 0 - (uint64_t)from; /* for a negative `from` */
    if (from < 0)
        u->from = newest >= len ? 0 : len - newest;
    else
        u->from = (uint64_t)from;
    u->each = each;
    u->arg = arg;
    u->zrc = inflateInit(&u->z);
    u->ready = u->zrc == Z_OK;
    return u;
}

/* Hands out what the window holds past `from`. */
static int unz_hand(store_unz *u, size_t have)
{
    uint64_t start = u->out;
    u->out += have;
    if (u->out > u->len)
        return STORE_UNZ_DAMAGED;
    if (u->out <= u->from || !have)
        return NDF_OK;
    size_t skip = start >= u->from ? 0 : (size_t)(u->from - start);
    return u->each(u->arg, (const char *)u->buf + skip, have - skip);
}

int store_unz_feed(store_unz *u, const void *z, size_t n)
{
    if (!u->ready)
        return STORE_UNZ_DAMAGED;
    u->z.next_in = (Bytef *)(uintptr_t)z;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        u->z.avail_in = chunk;
        n -= chunk;
        while (u->z.avail_in > 0) {
            if (u->zrc == Z_STREAM_END)
                return STORE_UNZ_DAMAGED; /* bytes after the end */
            u->z.next_out = u->buf;
            u->z.avail_out = sizeof u->buf;
            u->zrc = inflate(&u->z, Z_NO_FLUSH);
            if (u->zrc != Z_OK && u->zrc != Z_STREAM_END)
                return STORE_UNZ_DAMAGED;
            int rc = unz_hand(u, sizeof u->buf - u->z.avail_out);
            if (rc)
                return rc;
        }
    }
    /* what inflate keeps back once the input is used up */
    while (u->zrc == Z_OK) {
        u->z.next_out = u->buf;
        u->z.avail_out = sizeof u->buf;
        u->zrc = inflate(&u->z, Z_NO_FLUSH);
        if (u->zrc == Z_BUF_ERROR) { /* no progress possible: wants more input */
            u->zrc = Z_OK;
            break;
        }
        if (u->zrc != Z_OK && u->zrc != Z_STREAM_END)
            return STORE_UNZ_DAMAGED;
        size_t have = sizeof u->buf - u->z.avail_out;
        int rc = unz_hand(u, have);
        if (rc)
            return rc;
        if (!have)
            break;
    }
    return NDF_OK;
}

int store_unz_end(store_unz *u)
{
    if (!u->len && !u->out && u->z.total_in == 0)
        return NDF_OK; /* nothing stored, nothing fed */
    if (!u->ready || u->zrc != Z_STREAM_END || u->out != u->len) {
        if (u->zrc == Z_OK || u->zrc == Z_STREAM_END)
            u->zrc = Z_DATA_ERROR;
        return STORE_UNZ_DAMAGED;
    }
    return NDF_OK;
}

int store_unz_zrc(const store_unz *u)
{
    return u->zrc;
}

void store_unz_free(store_unz *u)
{
    if (!u)
        return;
    if (u->ready)
        inflateEnd(&u->z);
    free(u);
}

int store_learning(store *s, const char *name, learning_state *out)
{
    return ops_of(s)->learning(s, name, out);
}

int store_patterns(store *s, char ***names, size_t *n)
{
    return ops_of(s)->patterns(s, names, n);
}

int store_learning_all(store *s, store_learning_fn each, void *arg)
{
    const store_ops *o = ops_of(s);
    if (o->learning_all)
        return o->learning_all(s, each, arg);
    char **names;
    size_t n;
    int rc = o->patterns(s, &names, &n);
    for (size_t i = 0; i < n; i++) {
        learning_state st;
        int r = rc ? rc : o->learning(s, names[i], &st);
        if (r == NDF_OK) {
            each(arg, names[i], &st);
            learning_free(&st);
        } else if (r != NDF_ERR_NOT_FOUND) {
            rc = r; /* one read failed: the rest would too, or be inconsistent */
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int store_backup_every(store *s, double interval_s)
{
    const store_ops *o = ops_of(s);
    if (o->backup_every)
        return o->backup_every(s, interval_s);
    if (interval_s < 0)
        return err_set(NDF_ERR_INVALID, "backup interval %g: must be >= 0", interval_s);
    if (interval_s == 0)
        return NDF_OK;
    return err_set(NDF_ERR_INVALID,
                   "storage.backup_interval: the %s store takes no file backups "
                   "(back the database up with its own tools)",
                   store_backend_name((store_backend)o->backend));
}

int store_reset_stats(store *s, const char *name)
{
    return ops_of(s)->reset_stats(s, name);
}

int store_rollback_claim(store *s, const char *id, const char *message, store_status *was,
                         char **was_message)
{
    int st = STORE_RUNNING;
    char *msg = NULL;
    int rc = ops_of(s)->rollback_claim(s, id, message, &st, &msg);
    if (was)
        *was = (store_status)st;
    if (was_message)
        *was_message = msg;
    else
        free(msg);
    return rc;
}

int store_rollback_end(store *s, const char *id, store_status status, const char *message,
                       const store_node *nodes, size_t n)
{
    return ops_of(s)->rollback_end(s, id, (int)status, message, nodes, n);
}

int store_rollback_claimable(const char *status, const char *parent, int *out)
{
    store_status st;
    if (parent || store_status_parse(status, &st))
        return 0;
    switch (st) {
    case STORE_SUCCEEDED:
    case STORE_FAILED:
    case STORE_TIMED_OUT:
    case STORE_CANCELLED:
    case STORE_CRASHED: *out = (int)st; return 1;
    default: return 0;
    }
}

int store_rollback_refused(const char *id, int found, const char *status, const char *parent,
                           const char *message, const char *host, long pid)
{
    if (!found)
        return err_set(NDF_ERR_NOT_FOUND, "no execution with id '%s' is kept", id);
    if (parent)
        return err_set(NDF_ERR_INVALID,
                       "execution %s ran as a sub-pattern of %s: roll that one back (its rollback "
                       "undoes this one's steps)",
                       id, parent);
    if (strcmp(status, "RUNNING") == 0)
        return err_set(NDF_ERR_INVALID,
                       "execution %s is still running (process %ld on %s): wait for it to end, "
                       "or cancel it",
                       id, pid, host ? host : "?");
    if (strcmp(status, "ROLLED_BACK") == 0 && message &&
        strncmp(message, "being rolled back by ", 21) == 0)
        return err_set(NDF_ERR_INVALID,
                       "execution %s is %s: one rollback of it runs at a time (if that process "
                       "is gone, the next ndf to open the store on its host recovers it)",
                       id, message);
    if (strcmp(status, "ROLLED_BACK") == 0)
        return err_set(NDF_ERR_INVALID, "execution %s is already rolled back%s%s", id,
                       message ? ": " : "", message ? message : "");
    if (strcmp(status, "REFUSED") == 0)
        return err_set(NDF_ERR_INVALID, "execution %s never ran (refused): nothing to undo", id);
    return err_set(NDF_ERR_INVALID, "execution %s is %s: it cannot be rolled back", id, status);
}

int store_rollback_redriven(const char *id, const char *by)
{
    return err_set(NDF_ERR_INVALID, "execution %s was redriven as %s: roll back that one", id,
                   by ? by : "another execution");
}

int store_redrive_rolling_back(const char *id, const char *claimed)
{
    if (!claimed || strcmp(claimed, id) == 0)
        return err_set(NDF_ERR_INVALID, "execution %s is being rolled back: it cannot be redriven",
                       id);
    return err_set(NDF_ERR_INVALID,
                   "execution %s cannot be redriven: %s, of the same chain of redrives, is being "
                   "rolled back (its undo actions may be undoing the work a redrive would reuse)",
                   id, claimed);
}

int store_redrive_undone(const char *id, const char *by, const char *path)
{
    return err_set(NDF_ERR_INVALID,
                   "execution %s cannot be resumed: step '%s' it completed was undone since by "
                   "the rollback of %s, of the same chain of redrives, so its work is gone "
                   "(--from-start runs all of it again)",
                   id, path, by);
}

char *store_rollback_interrupted_message(const char *id, long pid, const char *host,
                                         const char *was_status, const char *was_message)
{
    /* The holder wrote nothing between its claim and its end: how far its
     * undo actions got is not known, and is not claimed. */
    if (was_message && strcmp(was_message, STORE_CLAIM_UNRECORDED) == 0)
        return xasprintf("rollback interrupted: process %ld on %s (an older ndf) died before "
                         "recording its end; its undo actions may have run in part, and the "
                         "status it had before was not recorded; 'ndf rollback %s' runs the "
                         "undo actions again",
                         pid, host ? host : "?", id);
    return xasprintf("rollback interrupted: process %ld on %s died before recording its end (it "
                     "had ended %s; its undo actions may have run in part); 'ndf rollback %s' "
                     "runs the undo actions again",
                     pid, host ? host : "?", was_status ? was_status : "?", id);
}

int store_remove_pattern(store *s, const char *name)
{
    return ops_of(s)->remove_pattern(s, name);
}

int store_cleanup(store *s, long history_limit, double max_age_s, double now,
                  store_cleanup_result *res)
{
    return ops_of(s)->cleanup(s, history_limit, max_age_s, now, res);
}

int store_backup(store *s, char **path_out)
{
    if (path_out)
        *path_out = NULL;
    return ops_of(s)->backup(s, path_out);
}

int store_import_legacy(store *s, const char *dir, size_t *imported)
{
    return ops_of(s)->import_legacy(s, dir, imported);
}

int store_recover(store *s, size_t *n)
{
    return ops_of(s)->recover(s, n);
}

int store_check(store *s)
{
    return ops_of(s)->check(s);
}

int store_process(store *s, const char *id, long pgid, long long start, const char *token)
{
    if (!id || !*id || pgid <= 1 || !token)
        return err_set(NDF_ERR_INVALID, "a step process needs an execution, a group and a token");
    return ops_of(s)->process(s, id, pgid, start, token);
}

/* ------------------------------------------------------------------ */
/* shared helpers */

void store_read_boot_id(char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (fgets(out, (int)n, f))
            out[strcspn(out, "\n")] = 0;
        fclose(f);
    }
}

long long store_pid_start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* the command name may hold spaces and parentheses: fields follow the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoll(p + 1, NULL, 10) : 0;
}

int store_pid_zombie(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* the state follows the command name, which may hold anything */
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

int store_process_alive(const char *myhost, const char *myboot, const char *host, long pid,
                        const char *boot, long long started)
{
    if (!host || strcmp(host, myhost) != 0)
        return 1; /* another machine: nothing to tell from here */
    if (boot && *boot && myboot[0] && strcmp(boot, myboot) != 0)
        return 0;
    if (pid <= 0)
        return 1;
    if (pid > INT_MAX)
        return 0; /* no process has it; cast, it would name a group */
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    if (started > 0 && store_pid_start_time(pid) != started)
        return 0; /* the pid was reused */
    if (store_pid_zombie(pid))
        return 0; /* it exited; its parent has not reaped it yet */
    return 1;
}

int store_claim_refused(const char *of, const char *holder, const char *status)
{
    if (status && strcmp(status, "SUCCEEDED") == 0)
        return err_set(NDF_ERR_INVALID,
                       "execution %s was already redriven by execution %s, which succeeded: "
                       "nothing is left to redrive",
                       of, holder);
    return err_set(NDF_ERR_INVALID,
                   "execution %s is already being redriven by execution %s (RUNNING); wait for "
                   "it, or cancel it",
                   of, holder);
}

/* Field `want` (1-based, as in proc(5)) of /proc/PID/stat as a number; -1
 * when the process is gone. */
static long long stat_field(long pid, int want)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold anything */
    if (!p)
        return -1;
    p++;
    for (int field = 3; field < want && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoll(p + 1, NULL, 10) : -1;
}

/* 1 when process `pid` has NDF_STEP=`token` in its environment, or a
 * token below it ("`token`/..."): a process a step started inside an
 * isolated plugin's worker, whose group the store does not know. */
static int carries_token(long pid, const char *token)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    strbuf sb;
    sb_init(&sb);
    char buf[8192];
    ssize_t n;
    while (sb.len < (1u << 20) && (n = read(fd, buf, sizeof buf)) > 0)
        sb_add(&sb, buf, (size_t)n);
    close(fd);
    sb_add(&sb, "", 1); /* the last entry ends even when cut */
    size_t tl = strlen(token);
    int found = 0;
    for (size_t i = 0; i < sb.len && !found; i += strlen(sb.buf + i) + 1)
        found = strncmp(sb.buf + i, "NDF_STEP=", 9) == 0 && strncmp(sb.buf + i + 9, token, tl) == 0 &&
                (sb.buf[i + 9 + tl] == 0 || sb.buf[i + 9 + tl] == '/');
    sb_free(&sb);
    return found;
}

int store_kill_step_group(long pgid, long long start, const char *token)
{
    if (pgid <= 1 || !token || !*token)
        return 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int found = 0, ours = 0;
    long self = (long)getpid();
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == self)
            continue;
        long long pgrp = stat_field(pid, 5);
        if (pgrp < 0)
            continue;
        /* never another user's, even when ndf runs as root: a row of a
         * shared store is no authority over them */
        char path[64];
        struct stat sb;
        snprintf(path, sizeof path, "/proc/%ld", pid);
        if (stat(path, &sb) != 0 || sb.st_uid != geteuid())
            continue;
        int leader = pid == pgid && start > 0 && stat_field(pid, 22) == start;
        int tok = carries_token(pid, token);
        if (pgrp == pgid && (leader || tok))
            ours = 1;
        if (tok && pgrp != pgid) {
            kill((pid_t)pid, SIGKILL); /* left the group (setsid): on its own */
            found++;
        } else if (pgrp == pgid) {
            found++;
        }
    }
    closedir(d);
    /* a pgid is not given to a new process while its group has members,
     * so a member proven ours makes the whole group ours */
    if (ours)
        kill(-(pid_t)pgid, SIGKILL);
    return ours ? found : 0;
}

void store_stop_groups(const char *where, const char *what, store_group *v, size_t n, int stop)
{
    for (size_t i = 0; i < n; i++) {
        int k = stop ? store_kill_step_group(v[i].pgid, v[i].start, v[i].token) : 0;
        if (k > 0)
            log_msg(NDF_LOG_WARN, "%s: killed %d leftover %sprocess(es) of group %ld", where, k,
                    what, v[i].pgid);
        free(v[i].token);
    }
    free(v);
}
