/* History: finished execution records become store rows, committed
 * before anyone is answered; the committed learning state flows back into
 * the patterns.  Also the program's store and the registry's seam. */
#include "build-config.h"

#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <ndf/sdk.h>

#include "base/hashmap.h"
#include "base/util.h"
#include "base/ztail.h"
#include "exec/executor.h"
#include "conf/config.h"
#include "exec/record.h"
#include "model/context.h"
#include "model/delegate.h"
#include "model/pattern.h"
#include "plugin/loader.h"
#include "store/history.h"
#include "store/store_backend.h"

/* Set by a server (history_log_errors()). */
static _Atomic int log_errors;

void history_opts(const settings *set, store_opts *o)
{
    store_opts_default(o);
    o->sync = set->storage_sync ? STORE_SYNC_FULL : STORE_SYNC_NORMAL;
    o->history_limit = set->history_limit;
    o->retention_s = set->retention_days * 86400.0;
    o->backups = set->backups;
    o->compression_level = set->compression_level;
    o->enable_learning = set->learning_enabled;
    o->learning = set->learning;
    o->backend = set->storage_backend ? STORE_BACKEND_POSTGRESQL : STORE_BACKEND_SQLITE;
    o->conninfo = set->storage_conninfo;
    /* the record bounds each stream already (a step's output_limit, at
     * most RECORD_OUTPUT_MAX): the store keeps what it is handed */
    o->output_limit = RECORD_OUTPUT_MAX;
    /* a server logs what fails as it happens; a one-shot command says a
     * full disk once, in the error that decides its exit status */
    o->hold_progress_errors = !atomic_load(&log_errors);
}

/* ---- the registry's seam ---- */

static int seam_load(void *opaque, const char *name, learning_state *st)
{
    return store_learning(opaque, name, st);
}

static int seam_load_all(void *opaque, void (*each)(void *, const char *, learning_state *),
                         void *arg)
{
    return store_learning_all(opaque, each, arg);
}

static int seam_save(void *opaque, const char *name, const learning_state *st)
{
    (void)opaque;
    (void)name;
    (void)st;
    return NDF_OK;
}

void history_registry_seam(store *s, registry_store *out)
{
    out->opaque = s;
    out->load = seam_load;
    out->save = seam_save;
    out->load_all = seam_load_all;
}

/* ---- records to rows ---- */

static store_status status_of_node(int state)
{
    switch (state) {
    case NDF_STATE_COMPLETED:
    case NDF_STATE_DEGRADED: return STORE_SUCCEEDED;
    case NDF_STATE_TIMED_OUT: return STORE_TIMED_OUT;
    case NDF_STATE_CANCELLED: return STORE_CANCELLED;
    case NDF_STATE_ROLLED_BACK: return STORE_ROLLED_BACK;
    case NDF_STATE_SKIPPED: return STORE_REFUSED;
    case NDF_STATE_PENDING:
    case NDF_STATE_RUNNING: return STORE_RUNNING;
    default: return STORE_FAILED;
    }
}

static store_status status_of_record(int status, int root_state)
{
    switch (status) {
    case NDF_OK: return STORE_SUCCEEDED;
    case NDF_ERR_TIMEOUT: return STORE_TIMED_OUT;
    case NDF_ERR_CANCELLED: return STORE_CANCELLED;
    case NDF_ERR_CONFIDENCE: return STORE_REFUSED;
    default: return root_state == NDF_STATE_ROLLED_BACK ? STORE_ROLLED_BACK : STORE_FAILED;
    }
}

static double node_wall_end(const ndf_exec *n)
{
    return n->start > 0 && n->end >= n->start ? n->start_wall + (n->end - n->start) : 0;
}

/* The path of child `i` of `parent` below `path`. */
static char *child_path(const ndf_exec *parent, size_t i, const char *path)
{
    const char *name = parent->kids[i]->name;
    int dup = 0;
    for (size_t k = 0; k < i; k++)
        dup += strcmp(parent->kids[k]->name, name) == 0;
    if (dup)
        return *path ? xasprintf("%s/%s#%d", path, name, dup + 1)
                     : xasprintf("%s#%d", name, dup + 1);
    return *path ? xasprintf("%s/%s", path, name) : xstrdup(name);
}

/* The node's result (its first STORE_RESULT_LIMIT bytes, cut on a UTF-8
 * character boundary) and its metrics as a JSON object.  Caller holds the
 * record lock. */
static void fill_result(store_node *d, const ndf_exec *n)
{
    if (n->result) {
        size_t len = strlen(n->result), keep = len;
        if (keep > STORE_RESULT_LIMIT) {
            keep = STORE_RESULT_LIMIT;
            while (keep && ((unsigned char)n->result[keep] & 0xc0) == 0x80)
                keep--;
        }
        d->result = xmalloc(keep + 1);
        memcpy(d->result, n->result, keep);
        d->result[keep] = '\0';
        d->result_len = len;
    }
    const node_usage *u = &n->usage;
    if (n->nmetrics || u->sources) {
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, "{");
        for (size_t i = 0; i < n->nmetrics; i++) {
            if (i)
                sb_puts(&sb, ",");
            sb_json_str(&sb, n->metrics[i].name);
            sb_puts(&sb, ":");
            sb_json_num(&sb, n->metrics[i].value, 0);
        }
        /* The host's measurements sit beside the step's own metrics, under
         * names a step cannot set (svc_node_set_metric refuses "ndf."):
         * one home on both store backends and in every export. */
        int first = n->nmetrics == 0;
#define USAGE_FIG(name, v, digits)                                                                 \
    do {                                                                                           \
        sb_puts(&sb, first ? "\"" name "\":" : ",\"" name "\":");                                  \
        sb_json_num(&sb, (v), (digits));                                                           \
        first = 0;                                                                                 \
    } while (0)
        if (u->sources & USAGE_THREAD)
            USAGE_FIG("ndf.thread_cpu_s", u->thread_cpu_s, 6);
        if (u->sources & USAGE_CHILD) {
            USAGE_FIG("ndf.proc_user_s", u->child_user_s, 6);
            USAGE_FIG("ndf.proc_sys_s", u->child_sys_s, 6);
            USAGE_FIG("ndf.proc_maxrss_kb", (double)u->child_maxrss_kb, 0);
        }
        if (u->sources & USAGE_WORKER) {
            USAGE_FIG("ndf.worker_user_s", u->worker_user_s, 6);
            USAGE_FIG("ndf.worker_sys_s", u->worker_sys_s, 6);
            USAGE_FIG("ndf.worker_maxrss_kb", (double)u->worker_maxrss_kb, 0);
        }
#undef USAGE_FIG
        sb_puts(&sb, "}");
        d->metrics = sb_steal(&sb);
    }
}

/* Fills `d` from node `n` at `path` (taken), without its children.
 * `limit` is the enclosing execution's deadline: a node's own timeout is
 * kept only when tighter.  `final`: all the output kept, its older part
 * handed over as a reader of the compressed stream (zsrc), which the
 * store copies from the spill file piece by piece; else, for
 * progress, only the newest STORE_OUTPUT_LIMIT bytes of each stream, the
 * rest counted as dropped (what `logs --follow` needs, at the cost it had
 * before any limit was raised).  Caller holds the record lock (messages
 * and outputs). */
static void fill_node(store_node *d, const ndf_exec *n, char *path, double limit, int final)
{
    memset(d, 0, sizeof *d);
    d->path = path;
    d->kind = n->kind;
    d->state = atomic_load(&n->state);
    d->start = n->start > 0 ? n->start_wall : 0;
    d->end = node_wall_end(n);
    d->attempt = 1;
    d->exit_status = -1;
    d->message = n->message && *n->message ? xstrdup(n->message) : NULL;
    if (isfinite(n->deadline) && n->start > 0 && n->deadline > n->start &&
        (!isfinite(limit) || n->deadline < limit))
        d->timeout = n->deadline - n->start;
    if (n->out && n->out != record_no_output) {
        for (int k = 0; k < STORE_NSTREAMS; k++) {
            const tailbuf *t = &n->out[k];
            if (final && t->z &&
                ztail_reader_open(t->z, t->buf, t->len, 6, &d->zsrc[k]) == 0) {
                size_t zk = ztail_kept(t->z);
                d->outlen[k] = zk + t->len;
                d->dropped[k] = t->dropped - zk;
                continue;
            }
            /* zlib failing to finish leaves the raw newest bytes */
            size_t skip = !final && t->len > STORE_OUTPUT_LIMIT ? t->len - STORE_OUTPUT_LIMIT : 0;
            if (t->len - skip) {
                d->out[k] = xmalloc(t->len - skip);
                memcpy(d->out[k], t->buf + skip, t->len - skip);
                d->outlen[k] = t->len - skip;
            }
            d->dropped[k] = t->dropped + skip;
        }
    }
    if (final)
        fill_result(d, n);
}

/* Appends `n` and its subtree to e's nodes, paths below `path` (taken).
 * Caller holds the record lock. */
static void add_nodes(store_exec *e, size_t *cap, const ndf_exec *n, char *path, double limit)
{
    if (e->nnodes == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        e->nodes = xrealloc(e->nodes, *cap * sizeof *e->nodes);
    }
    store_node *d = &e->nodes[e->nnodes];
    fill_node(d, n, path, limit, 1);
    d->seq = (int)e->nnodes;
    e->nnodes++;
    size_t nk = __atomic_load_n(&n->nkids, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < nk; i++)
        add_nodes(e, cap, n->kids[i], child_path(n, i, path), limit);
}

/* The step implementations that ran below `n`, each once, appended to
 * *v (*n entries, *cap allocated). */
static void collect_steps(const ndf_exec *n, const provided ***v, size_t *len, size_t *cap)
{
    if (n->step) {
        size_t i = 0;
        while (i < *len && (*v)[i] != n->step)
            i++;
        if (i == *len) {
            if (*len == *cap) {
                *cap = *cap ? *cap * 2 : 4;
                *v = xrealloc(*v, *cap * sizeof **v);
            }
            (*v)[(*len)++] = n->step;
        }
    }
    size_t nk = __atomic_load_n(&n->nkids, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < nk; i++)
        collect_steps(n->kids[i], v, len, cap);
}

/* "plugin":..,"version":..,"sha256":.. of provided thing `p`'s plugin. */
static void plugin_members(strbuf *sb, const provided *p)
{
    plugin_info pi;
    loader_plugin_describe(p->owner, &pi);
    sb_puts(sb, ",\"plugin\":");
    sb_json_str(sb, pi.name);
    sb_puts(sb, ",\"version\":");
    sb_json_str(sb, pi.version);
    sb_puts(sb, ",\"sha256\":");
    sb_json_str(sb, *pi.hash ? pi.hash : NULL);
}

/* What ran: the pattern type of `p` and the plugin file that provided it
 * (name, version, sha-256), and the same of every step implementation
 * that ran below node `n` ("steps"), as JSON for the executions' plugins
 * column, so a run can be tied to the exact builds it ran on.  NULL when
 * unknown. */
static char *plugins_json(const pattern *p, const ndf_exec *n)
{
    if (!p || !p->type || !p->type->owner)
        return NULL;
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "{\"type\":");
    sb_json_str(&sb, p->type->name);
    plugin_members(&sb, p->type);
    const provided **steps = NULL;
    size_t nsteps = 0, cap = 0;
    if (n)
        collect_steps(n, &steps, &nsteps, &cap);
    sb_puts(&sb, ",\"steps\":[");
    for (size_t i = 0, k = 0; i < nsteps; i++) {
        if (!steps[i]->owner)
            continue;
        sb_puts(&sb, k++ ? ",{\"step\":" : "{\"step\":");
        sb_json_str(&sb, steps[i]->name);
        plugin_members(&sb, steps[i]);
        sb_puts(&sb, "}");
    }
    free(steps);
    sb_puts(&sb, "]}");
    return sb_steal(&sb);
}

typedef struct builder {
    store_exec *v;
    pattern **pats;
    size_t n, cap;
} builder;

static store_exec *new_exec(builder *b, pattern *p)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
        b->pats = xrealloc(b->pats, b->cap * sizeof *b->pats);
    }
    b->pats[b->n] = p;
    store_exec *e = &b->v[b->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Sub-pattern executions below `n` (at `path`) whose nearest enclosing
 * execution is `parent_id` (an id string, which stays put when b->v moves). */
static void find_subs(builder *b, const ndf_exec *n, const char *path, const char *parent_id)
{
    size_t nk = __atomic_load_n(&n->nkids, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < nk; i++) {
        const ndf_exec *k = n->kids[i];
        char *kp = child_path(n, i, path);
        const char *inner = parent_id;
        /* a sub-pattern a redrive reused did not run: no execution */
        if (k->kind == NDF_NODE_PATTERN && k->pat && !k->reused) {
            store_exec *e = new_exec(b, k->pat);
            const store_exec *top = &b->v[0];
            e->id = xasprintf("%s/%s", top->id, kp);
            e->pattern = xstrdup(k->pat->name);
            e->parent_id = xstrdup(parent_id);
            e->origin = top->origin;
            int st = atomic_load(&k->state);
            e->status = status_of_node(st);
            if (e->status == STORE_RUNNING)
                e->status = STORE_FAILED;
            e->context = top->context ? xstrdup(top->context) : NULL;
            e->domain = top->domain ? xstrdup(top->domain) : NULL;
            e->start = k->start > 0 ? k->start_wall : top->start;
            e->end = node_wall_end(k);
            if (e->end <= 0)
                e->end = top->end;
            e->duration = k->start > 0 && k->end >= k->start ? k->end - k->start : 0;
            e->message = k->message && *k->message && e->status != STORE_SUCCEEDED
                             ? xstrdup(k->message)
                             : NULL;
            /* a sub-pattern the confidence gate refused never ran */
            e->learn = st != NDF_STATE_SKIPPED;
            e->plugins = plugins_json(k->pat, k);
            node_usage_total(k, &e->cpu, &e->peak_rss_kb);
            size_t cap = 0;
            add_nodes(e, &cap, k, xstrdup(""), k->deadline);
            inner = e->id;
        }
        find_subs(b, k, kp, inner);
        free(kp);
    }
}

void history_from_record(const record *rc, store_origin origin, store_exec **out, size_t *n,
                         pattern ***pats)
{
    record *r = (record *)rc; /* the lock is taken, nothing is changed */
    builder b = {0};
    store_exec *e = new_exec(&b, r->root->pat);
    e->id = xstrdup(r->id);
    e->pattern = xstrdup(r->root->name);
    /* a queued execution keeps its origin when it resumes another (a
     * takeover): its redrive_of says what it resumed */
    e->origin = r->redrive_of && origin != STORE_ORIGIN_QUEUE ? STORE_ORIGIN_REDRIVE : origin;
    e->redrive_of = r->redrive_of ? xstrdup(r->redrive_of) : NULL;
    strbuf sb;
    sb_init(&sb);
    context_to_json(r->ctx, &sb);
    e->context = sb_steal(&sb);
    e->domain = r->ctx && r->ctx->domain && *r->ctx->domain ? xstrdup(r->ctx->domain) : NULL;
    e->start = r->start_wall;
    double mono_end = r->end > 0 ? r->end : now_mono();
    e->end = r->start_wall + (mono_end > r->start ? mono_end - r->start : 0);
    double rs = r->root->start > 0 ? r->root->start : r->start;
    e->duration = r->end > 0 && r->end >= rs ? r->end - rs : 0;
    pthread_mutex_lock(&r->lock);
    int done = atomic_load(&r->done) || atomic_load(&r->claimed);
    e->status = done ? status_of_record(r->status, atomic_load(&r->root->state)) : STORE_RUNNING;
    /* the outcome table (ndf.conf(5), DELEGATION): a cancellation, a
     * validation error, a storage error... says nothing about the pattern */
    e->learn = delegate_outcome_counts(delegate_outcome_of(r->status));
    e->message = done && r->status && r->error ? xstrdup(r->error) : NULL;
    e->fallback_from = r->fallback_from ? xstrdup(r->fallback_from) : NULL;
    e->fallback_cause = r->fallback_cause ? xstrdup(r->fallback_cause) : NULL;
    if (isfinite(r->root->deadline) && r->root->start > 0 && r->root->deadline > r->root->start)
        e->timeout = r->root->deadline - r->root->start;
    /* What its steps were measured to use (node_add_usage), not the
     * process's figures, which include every other execution's. */
    e->cpu = 0;
    e->peak_rss_kb = 0;
    node_usage_total(r->root, &e->cpu, &e->peak_rss_kb);
    e->plugins = plugins_json(r->root->pat, r->root);
    size_t cap = 0;
    add_nodes(e, &cap, r->root, xstrdup(""), r->root->deadline);
    find_subs(&b, r->root, "", b.v[0].id);
    pthread_mutex_unlock(&r->lock);
    *out = b.v;
    *n = b.n;
    if (pats)
        *pats = b.pats;
    else
        free(b.pats);
}

/* Puts the committed state into `p`; takes `st`. */
static void set_learning(pattern *p, learning_state *st)
{
    pthread_mutex_lock(&p->lock);
    learning_free(&p->learn);
    p->learn = *st;
    /* a paged-out pattern keeps only the fixed-size summary in memory */
    if (!p->resident)
        learning_free(&p->learn);
    pthread_mutex_unlock(&p->lock);
    memset(st, 0, sizeof *st);
}

/* The record's end could not be committed: its status becomes the
 * storage error (whatever its outcome), logged once. */

void history_log_errors(int on)
{
    atomic_store(&log_errors, on);
}

static void mark_unrecorded(record *r, const char *why)
{
    if (atomic_load(&log_errors))
        log_msg(NDF_LOG_ERROR, "execution %s of pattern '%s' not recorded: %s", r->id,
                r->root->name, why);
    pthread_mutex_lock(&r->lock);
    r->status = NDF_ERR_IO;
    atomic_store(&r->unrecorded, 1);
    free(r->error);
    r->error = xasprintf("not recorded: %s", why);
    pthread_mutex_unlock(&r->lock);
}

/* mark_unrecorded() from the writer's thread, for an execution that may
 * have ended and been read meanwhile: its status and message are left to
 * whoever settles it (finish(), or the command after store_flush()). */
static void mark_unrecorded_later(record *r, const char *why)
{
    if (atomic_load(&log_errors))
        log_msg(NDF_LOG_ERROR, "execution %s of pattern '%s' not recorded: %s", r->id,
                r->root->name, why);
    pthread_mutex_lock(&r->lock);
    if (!r->unrecorded_why)
        r->unrecorded_why = xasprintf("not recorded: %s", why);
    atomic_store(&r->unrecorded, 1);
    pthread_mutex_unlock(&r->lock);
}

int history_record(store *s, record *r, store_origin origin, pattern *target)
{
    /* refused at its start (history_on_start): nothing ran, nothing to record */
    if (atomic_load(&r->unrecorded))
        return err_set(NDF_ERR_IO, "%s", r->error ? r->error : "not recorded");
    store_exec *v;
    size_t n;
    pattern **pats;
    history_from_record(r, origin, &v, &n, &pats);
    learning_state *after = xcalloc(n, sizeof *after);
    int rc = store_finish_all(s, v, n, after);
    if (rc == NDF_OK) {
        for (size_t i = 0; i < n; i++) {
            pattern *p = i == 0 && target ? target : pats[i];
            if (p && v[i].learn)
                set_learning(p, &after[i]);
            learning_free(&after[i]);
        }
    } else if (rc == NDF_ERR_CANCELLED || atomic_load(&r->lease_lapsed)) {
        /* fenced: the lease of its queued item was lost (the store refused
         * an end bound to a generation no longer current, or the worker
         * that took it over ended it as CRASHED already); its end is the
         * next holder's, not an error of this one */
        log_msg(rc == NDF_ERR_CANCELLED || rc == NDF_ERR_EXISTS ? NDF_LOG_DEBUG : NDF_LOG_WARN,
                "execution %s: not recorded: %s", r->id, err_msg());
        atomic_store(&r->lease_lapsed, 1);
        pthread_mutex_lock(&r->lock);
        r->status = NDF_ERR_CANCELLED;
        free(r->error);
        r->error = xstrdup(LEASE_LOST_MSG);
        pthread_mutex_unlock(&r->lock);
    } else {
        char *why = xstrdup(err_msg());
        mark_unrecorded(r, why);
        err_set(rc, "%s", why);
        free(why);
    }
    free(after);
    free(pats);
    store_exec_array_free(v, n);
    return rc;
}

/* store_begin() of `r`'s RUNNING row, or store_begin_async() when `done`
 * is given. */
static int begin_row(store *s, const record *r, store_origin origin, store_done_fn done,
                     void *arg)
{
    store_exec e;
    memset(&e, 0, sizeof e);
    e.id = (char *)(uintptr_t)r->id;
    e.pattern = r->root->name;
    e.origin = r->redrive_of && origin != STORE_ORIGIN_QUEUE ? STORE_ORIGIN_REDRIVE : origin;
    e.redrive_of = r->redrive_of;
    e.resumes = r->redrive_of && r->reuse;
    e.status = STORE_RUNNING;
    strbuf sb;
    sb_init(&sb);
    context_to_json(r->ctx, &sb);
    e.context = sb.buf;
    e.domain = r->ctx ? r->ctx->domain : NULL;
    e.start = r->start_wall;
    store_node root;
    memset(&root, 0, sizeof root);
    char empty[1] = "";
    root.path = empty;
    root.kind = NDF_NODE_PATTERN;
    root.state = NDF_STATE_RUNNING;
    root.start = r->start_wall;
    root.exit_status = -1;
    e.nodes = &root;
    e.nnodes = 1;
    int rc = done ? store_begin_async(s, &e, done, arg) : store_begin(s, &e);
    sb_free(&sb);
    if (done)
        return rc;
    if (rc == NDF_ERR_EXISTS)
        rc = NDF_OK; /* it ended first: the final row is there */
    if (rc == NDF_OK)
        atomic_store(&((record *)(uintptr_t)r)->stored, 1);
    return rc;
}

int history_begin(store *s, const record *r, store_origin origin)
{
    return begin_row(s, r, origin, NULL, NULL);
}

/* ---- progress while executions run ---- */

/* What was last written of one node. */
typedef struct seen_node {
    int state;
    uint64_t written; /* bytes ever appended to its streams (kept + dropped) */
} seen_node;

/* One running execution being watched. */
typedef struct watched {
    hashmap *nodes; /* node address ("%p") -> seen_node */
    unsigned mark;  /* the sample that last saw it running */
    double beat;    /* now_mono() of its last write (progress or heartbeat) */
} watched;

struct history_progress {
    store *s;
    executor *ex;
    double interval;
    pthread_t thread;
    int started;    /* the thread runs (set by its starter, before it runs) */
    int sample_now; /* started late: the first sample is taken at once */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int stopping;
    hashmap *watched; /* execution id -> watched (the thread's own) */
    unsigned mark;
};

static void watched_free(void *p)
{
    watched *w = p;
    hashmap_free(w->nodes, free);
    free(w);
}

static uint64_t bytes_written(const ndf_exec *n)
{
    uint64_t b = 0;
    if (n->out && n->out != record_no_output)
        for (int k = 0; k < STORE_NSTREAMS; k++)
            b += n->out[k].len + n->out[k].dropped;
    return b;
}

/* Writes the nodes of `n`'s subtree that changed since the last sample,
 * at most *budget of them.  Caller holds the record lock. */
static void sample_nodes(history_progress *hp, record *r, watched *w, const ndf_exec *n,
                         int *budget)
{
    if (*budget <= 0)
        return;
    int state = atomic_load(&n->state);
    uint64_t written = bytes_written(n);
    /* the node's address as text: the map copies keys as strings */
    char key[2 * sizeof(void *) + 3];
    snprintf(key, sizeof key, "%p", (const void *)n);
    seen_node *sn = hashmap_get(w->nodes, key);
    int was = sn ? sn->state : NDF_STATE_PENDING;
    uint64_t had = sn ? sn->written : 0;
    if (state != was || written != had) {
        store_node d;
        fill_node(&d, n, record_node_path(n), r->root->deadline, 0);
        store_progress(hp->s, r->id, &d);
        free(d.path);
        free(d.message);
        for (int k = 0; k < STORE_NSTREAMS; k++)
            free(d.out[k]);
        if (!sn) {
            sn = xmalloc(sizeof *sn);
            hashmap_put(w->nodes, key, sn);
        }
        sn->state = state;
        sn->written = written;
        (*budget)--;
    }
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    for (size_t i = 0; i < nk && *budget > 0; i++)
        sample_nodes(hp, r, w, kids[i], budget);
}

/* Nodes written per execution and sample at most: progress of a huge
 * execution trickles in over several samples instead of flooding the
 * writer (its final record has every node anyway). */
#define PROGRESS_BUDGET 512

static void sample(history_progress *hp)
{
    record **v;
    size_t n = executor_running(hp->ex, &v);
    hp->mark++;
    for (size_t i = 0; i < n; i++) {
        record *r = v[i];
        if (atomic_load(&r->stored)) {
            watched *w = hashmap_get(hp->watched, r->id);
            double now = now_mono();
            if (!w) {
                w = xcalloc(1, sizeof *w);
                w->nodes = hashmap_new();
                w->beat = now;
                hashmap_put(hp->watched, r->id, w);
            }
            w->mark = hp->mark;
            int budget = PROGRESS_BUDGET;
            pthread_mutex_lock(&r->lock);
            sample_nodes(hp, r, w, r->root, &budget);
            pthread_mutex_unlock(&r->lock);
            /* a step that runs long writes nothing: the heartbeat says it
             * still ran, so that a crash ends it near when it died */
            if (budget < PROGRESS_BUDGET) {
                w->beat = now;
            } else if (now - w->beat >= HISTORY_HEARTBEAT) {
                store_progress(hp->s, r->id, NULL);
                w->beat = now;
            }
        }
        record_unref(r);
    }
    free(v);
    /* forget the executions that ended */
    size_t pos = 0;
    const char *id;
    void *val;
    char **gone = NULL;
    size_t ngone = 0;
    while (hashmap_next(hp->watched, &pos, &id, &val))
        if (((watched *)val)->mark != hp->mark) {
            gone = xrealloc(gone, (ngone + 1) * sizeof *gone);
            gone[ngone++] = xstrdup(id);
        }
    for (size_t i = 0; i < ngone; i++) {
        watched_free(hashmap_remove(hp->watched, gone[i]));
        free(gone[i]);
    }
    free(gone);
}

static void *progress_main(void *arg)
{
    history_progress *hp = arg;
    pthread_mutex_lock(&hp->lock);
    int now = hp->sample_now;
    while (!hp->stopping) {
        if (!now) {
            struct timespec ts = record_timespec(now_mono() + hp->interval);
            pthread_cond_timedwait(&hp->cv, &hp->lock, &ts);
        }
        now = 0;
        if (hp->stopping)
            break;
        pthread_mutex_unlock(&hp->lock);
        sample(hp);
        pthread_mutex_lock(&hp->lock);
    }
    pthread_mutex_unlock(&hp->lock);
    return NULL;
}

history_progress *history_progress_new(store *s, executor *ex, double interval_s)
{
    history_progress *hp = xcalloc(1, sizeof *hp);
    hp->s = s;
    hp->ex = ex;
    hp->interval = interval_s > 0 ? interval_s : HISTORY_PROGRESS_INTERVAL;
    hp->watched = hashmap_new();
    pthread_mutex_init(&hp->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&hp->cv, &ca);
    pthread_condattr_destroy(&ca);
    return hp;
}

int history_progress_kick(history_progress *hp)
{
    if (!hp || hp->started)
        return NDF_OK;
    hp->sample_now = 1;
    int e = pthread_create(&hp->thread, NULL, progress_main, hp);
    if (e)
        return err_set(NDF_ERR_RESOURCE, "cannot start the progress thread: %s", strerror(e));
    hp->started = 1;
    return NDF_OK;
}

history_progress *history_progress_start(store *s, executor *ex, double interval_s)
{
    history_progress *hp = history_progress_new(s, ex, interval_s);
    int e = pthread_create(&hp->thread, NULL, progress_main, hp);
    if (e) {
        err_set(NDF_ERR_RESOURCE, "cannot start the progress thread: %s", strerror(e));
        history_progress_stop(hp);
        return NULL;
    }
    hp->started = 1;
    return hp;
}

void history_progress_stop(history_progress *hp)
{
    if (!hp)
        return;
    pthread_mutex_lock(&hp->lock);
    hp->stopping = 1;
    pthread_cond_broadcast(&hp->cv);
    pthread_mutex_unlock(&hp->lock);
    if (hp->started)
        pthread_join(hp->thread, NULL);
    hashmap_free(hp->watched, watched_free);
    pthread_mutex_destroy(&hp->lock);
    pthread_cond_destroy(&hp->cv);
    free(hp);
}

void history_on_spawn(void *arg, const record *r, long pgid, const char *token)
{
    /* a failure is the writer's to log; the step runs anyway */
    if (arg)
        store_process(arg, r->id, pgid, store_pid_start_time(pgid), token);
}

void history_on_complete(void *opaque, pattern *p, const record *r)
{
    history_hook *h = opaque;
    record *w = (record *)(uintptr_t)r;
    if (h && h->fallback_from) {
        pthread_mutex_lock(&w->lock);
        if (!w->fallback_from) {
            w->fallback_from = xstrdup(h->fallback_from);
            w->fallback_cause = h->fallback_cause ? xstrdup(h->fallback_cause) : NULL;
        }
        pthread_mutex_unlock(&w->lock);
    }
    if (!h || !h->s)
        return;
    store_origin o = w->origin >= 0 ? (store_origin)w->origin : h->origin;
    if (h->async)
        history_record_async(h->s, w, o, p);
    else
        history_record(h->s, w, o, p);
}

/* The outcome of a RUNNING row handed to the writer (ndf batch): a row
 * that could not be written makes the execution a storage error, and
 * cancels what is left of it. */
static void begin_done(void *arg, int rc, const char *msg, learning_state *after, size_t n)
{
    (void)after;
    (void)n;
    record *r = arg;
    if (rc != NDF_OK && rc != NDF_ERR_EXISTS) {
        mark_unrecorded_later(r, msg && *msg ? msg : "write failed");
        if (r->ex)
            executor_cancel(r->ex, r->id);
    }
    record_unref(r);
}

int history_on_start(void *arg, record *r)
{
    history_hook *h = arg;
    /* a redrive's claim wrote it already */
    if (!h || !h->s || atomic_load(&r->stored))
        return NDF_OK;
    store_origin o = r->origin >= 0 ? (store_origin)r->origin : h->origin;
    if (h->async) {
        /* Queued, not waited for: the writer commits it before the
         * step groups and the end of this execution, so crash recovery
         * still finds them; a failure is the execution's (begin_done). */
        record_ref(r);
        if (begin_row(h->s, r, o, begin_done, r) == NDF_OK) {
            atomic_store(&r->stored, 1);
            /* a backend that wrote it at once has said how it went */
            if (!atomic_load(&r->unrecorded))
                return NDF_OK;
            pthread_mutex_lock(&r->lock);
            err_set(NDF_ERR_IO, "pattern '%s' not started: cannot record it: %s",
                    r->root->name, r->unrecorded_why ? r->unrecorded_why : "write failed");
            free(r->unrecorded_why); /* the refusal's message is the one */
            r->unrecorded_why = NULL;
            pthread_mutex_unlock(&r->lock);
            return NDF_ERR_IO;
        }
        record_unref(r);
    }
    int rc = history_begin(h->s, r, o);
    if (rc == NDF_OK)
        return NDF_OK;
    /* Not run, since it could not be recorded: a step that runs
     * unrecorded is one crash recovery cannot stop and `ndf runs` never
     * shows.  The caller's answer carries the message; a server's log
     * has it too, at error priority (history_log_errors()). */
    char *why = xstrdup(err_msg());
    if (atomic_load(&log_errors))
        log_msg(NDF_LOG_ERROR, "execution %s of pattern '%s' not started: cannot record it: %s",
                r->id, r->root->name, why);
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->unrecorded, 1);
    pthread_mutex_unlock(&r->lock);
    err_set(NDF_ERR_IO, "pattern '%s' not started: cannot record it: %s", r->root->name, why);
    free(why);
    return NDF_ERR_IO;
}

/* ---- handing the end to the writer without waiting ---- */

typedef struct async_rec {
    record *r;
    pattern *target; /* a reference, or NULL */
    pattern **pats;  /* borrowed from the record (it holds them) */
    int *learn;      /* per execution: its outcome is counted */
} async_rec;

static void async_done(void *arg, int rc, const char *msg, learning_state *after, size_t n)
{
    async_rec *a = arg;
    if (rc == NDF_OK) {
        for (size_t i = 0; i < n; i++) {
            pattern *p = i == 0 && a->target ? a->target : a->pats[i];
            if (p && a->learn[i])
                set_learning(p, &after[i]);
        }
    } else {
        mark_unrecorded_later(a->r, msg && *msg ? msg : "write failed");
    }
    record_unref(a->r);
    pattern_unref(a->target);
    free(a->pats);
    free(a->learn);
    free(a);
}

int history_record_async(store *s, record *r, store_origin origin, pattern *target)
{
    if (atomic_load(&r->unrecorded))
        return NDF_ERR_IO; /* its message is the record's */
    store_exec *v;
    size_t n;
    async_rec *a = xcalloc(1, sizeof *a);
    history_from_record(r, origin, &v, &n, &a->pats);
    a->r = record_ref(r);
    a->target = target ? pattern_ref(target) : NULL;
    a->learn = xcalloc(n ? n : 1, sizeof *a->learn);
    for (size_t i = 0; i < n; i++)
        a->learn[i] = v[i].learn;
    int rc = store_finish_async(s, v, n, async_done, a);
    if (rc) {
        char *why = xstrdup(err_msg());
        async_done(a, rc, why, NULL, 0);
        err_set(rc, "%s", why);
        free(why);
    }
    return rc;
}

/* ---- the kept history as the old record, for analytics ---- */

static const char *outcome_of(store_status s)
{
    switch (s) {
    case STORE_SUCCEEDED: return "succeeded";
    case STORE_TIMED_OUT: return "timeout";
    case STORE_CANCELLED: return "cancelled";
    case STORE_REFUSED: return "refused";
    case STORE_CRASHED: return "crashed";
    case STORE_ROLLED_BACK: return "rolled_back";
    case STORE_RUNNING: return "running";
    default: return "failed";
    }
}

static const char *step_outcome(int state)
{
    static const char *const names[] = {"pending",   "running", "succeeded",
                                        "failed",    "skipped", "rolled_back",
                                        "cancelled", "timeout", "degraded"};
    return (unsigned)state < ARRAY_SIZE(names) ? names[state] : "failed";
}

int history_load(store *s, const char *name, size_t limit, stored_pattern *out)
{
    memset(out, 0, sizeof *out);
    int rc = store_learning(s, name, &out->learn);
    int have_learning = rc == NDF_OK;
    if (rc && rc != NDF_ERR_NOT_FOUND)
        return rc;
    store_exec *v;
    size_t n;
    store_query q = {name, -1, 0, limit ? limit : 1000, 0, NULL};
    if ((rc = store_runs(s, &q, &v, &n))) {
        learning_free(&out->learn);
        return rc;
    }
    if (!have_learning && !n) {
        free(v);
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    }
    out->name = xstrdup(name);
    out->history = n ? xcalloc(n, sizeof *out->history) : NULL;
    /* oldest first, running ones left out */
    for (size_t i = n; i-- > 0 && !rc;) {
        const store_exec *e = &v[i];
        if (e->status == STORE_RUNNING)
            continue;
        history_entry *h = &out->history[out->nhistory++];
        h->time = e->start;
        h->duration_s = e->duration;
        h->success = e->status == STORE_SUCCEEDED;
        h->outcome = xstrdup(outcome_of(e->status));
        h->domain = e->domain ? xstrdup(e->domain) : NULL;
        h->error = e->message ? xstrdup(e->message) : NULL;
        h->confidence = e->confidence;
        h->timeout_s = e->timeout;
        h->cpu_s = e->cpu;
        h->peak_rss_kb = e->peak_rss_kb;
        store_exec full;
        if ((rc = store_get(s, e->id, &full)))
            break;
        /* the root's children: the steps, tasks or phases */
        for (size_t k = 0; k < full.nnodes; k++) {
            const store_node *nd = &full.nodes[k];
            if (!*nd->path || strchr(nd->path, '/'))
                continue;
            h->steps = xrealloc(h->steps, (h->nsteps + 1) * sizeof *h->steps);
            history_step *st = &h->steps[h->nsteps++];
            st->name = xstrdup(nd->path);
            st->outcome = xstrdup(step_outcome(nd->state));
            st->duration_s = nd->start > 0 && nd->end >= nd->start ? nd->end - nd->start : 0;
            st->timeout_s = nd->timeout;
        }
        store_exec_free(&full);
    }
    store_exec_array_free(v, n);
    if (rc)
        stored_pattern_free(out);
    return rc;
}

/* ---- counts from the store, for a long-running process ---- */

typedef struct refresh_arg {
    registry *reg;
} refresh_arg;

static void refresh_one(void *arg, const char *name, learning_state *st)
{
    refresh_arg *a = arg;
    pattern *p;
    if (registry_get(a->reg, name, &p) != NDF_OK)
        return; /* stored, but not defined in this configuration */
    set_learning(p, st);
    pattern_unref(p);
}

int history_refresh(store *s, registry *reg, const char *name)
{
    refresh_arg a = {reg};
    if (!name)
        return store_learning_all(s, refresh_one, &a);
    learning_state st;
    int rc = store_learning(s, name, &st);
    if (rc == NDF_ERR_NOT_FOUND)
        return NDF_OK; /* never ran anywhere: nothing to learn */
    if (rc)
        return rc;
    refresh_one(&a, name, &st);
    learning_free(&st);
    return NDF_OK;
}
