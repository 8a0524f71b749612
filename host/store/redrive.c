/* The redrive rules (redrive.h), moved here from `ndf redrive` so that a
 * queue worker taking an execution over applies the same ones. */
#include "build-config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ndf/sdk.h>

#include "base/util.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "model/context.h"
#include "store/redrive.h"

/* 1 when node `n`'s state is a success (the outcome a redrive reuses). */
static int succeeded(int state)
{
    return state == NDF_STATE_COMPLETED || state == NDF_STATE_DEGRADED;
}

/* 1 when every PHASE above the node at `path` succeeded: a phase that
 * failed runs again whole (its completed sub-patterns too), since its
 * success criteria judge the phase as one. */
static int phases_succeeded(const hashmap *by_path, const char *path)
{
    for (const char *q = strchr(path, '/'); q; q = strchr(q + 1, '/')) {
        const store_node *a = hashmap_getn(by_path, path, (size_t)(q - path));
        if (a && a->kind == NDF_NODE_PHASE && !succeeded(a->state))
            return 0;
    }
    return 1;
}

/* Execution `e`'s nodes by path; the values point into `e`. */
static hashmap *nodes_by_path(const store_exec *e)
{
    hashmap *m = hashmap_new();
    for (size_t i = 0; i < e->nnodes; i++)
        hashmap_put(m, e->nodes[i].path, &e->nodes[i]);
    return m;
}

/* The reuse set of execution `e`: the paths of its nodes that succeeded,
 * outside failed phases, each with its message ("" when none).  *n gets
 * the count. */
static hashmap *reuse_set(const store_exec *e, const hashmap *by_path, size_t *n)
{
    hashmap *reuse = hashmap_new();
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *nd = &e->nodes[i];
        if (!*nd->path || !succeeded(nd->state) || !phases_succeeded(by_path, nd->path))
            continue;
        hashmap_put(reuse, nd->path, xstrdup(nd->message ? nd->message : ""));
    }
    *n = hashmap_count(reuse);
    return reuse;
}

/* Nodes of `e` undone by a rollback whose work a redrive would build on:
 * those outside a failed phase (a failed phase runs again whole, so what
 * was undone inside it is simply redone). */
static size_t rolled_back(const store_exec *e, const hashmap *by_path)
{
    size_t k = 0;
    for (size_t i = 0; i < e->nnodes; i++)
        k += e->nodes[i].state == NDF_STATE_ROLLED_BACK &&
             phases_succeeded(by_path, e->nodes[i].path);
    return k;
}

/* NDF_OK when `e` may be redriven (from_start: rerun whole), else a
 * status with err_msg() saying why and what to do. */
static int redrivable(const store_exec *e, const hashmap *by_path, int from_start)
{
    if (e->parent_id)
        return err_set(NDF_ERR_INVALID,
                       "execution %s ran as a sub-pattern of %s: redrive that one instead", e->id,
                       e->parent_id);
    switch (e->status) {
    case STORE_FAILED:
    case STORE_TIMED_OUT:
    case STORE_CANCELLED:
    case STORE_CRASHED: break;
    case STORE_RUNNING:
        return err_set(NDF_ERR_INVALID,
                       "execution %s is still running (cancel it first, or wait for it)", e->id);
    case STORE_ROLLED_BACK:
        /* a claim: the undo actions still run, and may yet fail */
        if (e->message && strncmp(e->message, "being rolled back by ", 21) == 0)
            return err_set(NDF_ERR_INVALID,
                           "execution %s is %s: it cannot be redriven while its undo actions "
                           "run (from the start or not); wait for that rollback to end",
                           e->id, e->message);
        if (from_start)
            return NDF_OK;
        return err_set(NDF_ERR_INVALID,
                       "execution %s was rolled back: its completed work was undone, so there is "
                       "nothing to resume (--from-start runs all of it again)",
                       e->id);
    default:
        return err_set(NDF_ERR_INVALID,
                       "execution %s %s: only a FAILED, TIMED_OUT, CANCELLED or CRASHED execution "
                       "can be redriven (ndf run %s runs the pattern again)",
                       e->id, e->status == STORE_SUCCEEDED ? "succeeded" : "never ran", e->pattern);
    }
    /* a rollback that died recorded none of what it undid: resuming would
     * build on work that may be gone */
    if (!from_start && e->status == STORE_FAILED && e->message &&
        strncmp(e->message, "rollback interrupted", 20) == 0)
        return err_set(NDF_ERR_INVALID,
                       "execution %s: its rollback was interrupted, so its completed work may be "
                       "partly undone: 'ndf rollback %s' finishes the rollback (--from-start "
                       "runs all of it again)",
                       e->id, e->id);
    size_t undone = rolled_back(e, by_path);
    if (undone && !from_start)
        return err_set(NDF_ERR_INVALID,
                       "execution %s was rolled back (%zu node(s) undone): its completed work is "
                       "gone, so there is nothing to resume (--from-start runs all of it again)",
                       e->id, undone);
    return NDF_OK;
}

int redrive_check(const store_exec *e, int from_start)
{
    hashmap *by_path = nodes_by_path(e);
    int rc = redrivable(e, by_path, from_start);
    hashmap_free(by_path, NULL);
    return rc;
}

hashmap *redrive_reuse(const store_exec *e, size_t *n)
{
    hashmap *by_path = nodes_by_path(e);
    hashmap *reuse = reuse_set(e, by_path, n);
    hashmap_free(by_path, NULL);
    return reuse;
}

/* ---- rollback ---- */

/* 1 when the work of stored node `nd` is still there for a rollback to
 * undo: it completed, or an undo of it failed. */
static int undoable(const store_node *nd)
{
    if (!*nd->path)
        return 0;
    if (succeeded(nd->state))
        return 1;
    return nd->state == NDF_STATE_FAILED && nd->message &&
           strncmp(nd->message, RECORD_UNDO_FAILED, strlen(RECORD_UNDO_FAILED)) == 0;
}

int rollback_check(const store_exec *e, int replay)
{
    if (e->parent_id)
        return err_set(NDF_ERR_INVALID,
                       "execution %s ran as a sub-pattern of %s: roll that one back (its rollback "
                       "undoes this one's steps)",
                       e->id, e->parent_id);
    switch (e->status) {
    case STORE_SUCCEEDED:
    case STORE_FAILED:
    case STORE_TIMED_OUT:
    case STORE_CANCELLED:
    case STORE_CRASHED: break;
    case STORE_RUNNING:
        return err_set(NDF_ERR_INVALID,
                       "execution %s is still running (process %ld on %s): wait for it to end, "
                       "or cancel it",
                       e->id, e->pid, e->host ? e->host : "?");
    case STORE_ROLLED_BACK:
        /* as the claim says it (store_rollback_refused) */
        if (e->message && strncmp(e->message, "being rolled back by ", 21) == 0)
            return err_set(NDF_ERR_INVALID,
                           "execution %s is %s: one rollback of it runs at a time (if that "
                           "process is gone, the next ndf to open the store on its host "
                           "recovers it)",
                           e->id, e->message);
        return err_set(NDF_ERR_INVALID, "execution %s is already rolled back%s%s", e->id,
                       e->message ? ": " : "", e->message ? e->message : "");
    default:
        return err_set(NDF_ERR_INVALID, "execution %s never ran (%s): nothing to undo", e->id,
                       store_status_name(e->status));
    }
    size_t k = 0;
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *nd = &e->nodes[i];
        if (!undoable(nd))
            continue;
        k++;
        /* ${steps.NAME.result} in an undo must see what the step answered,
         * not the part of it the store kept */
        /* A step that ran a sub-pattern (the core `pattern` step): the
         * replay cannot take its outcome whole (its sub-pattern's run
         * data would be missing) and must not run it, which is work. */
        size_t pl = strlen(nd->path);
        if (replay && nd->kind == NDF_NODE_STEP && i + 1 < e->nnodes &&
            strncmp(e->nodes[i + 1].path, nd->path, pl) == 0 && e->nodes[i + 1].path[pl] == '/')
            return err_set(NDF_ERR_INVALID,
                           "execution %s: step '%s' ran a sub-pattern: it cannot be rolled back "
                           "from the store ('ndf ctl rollback %s' on the server that ran it can)",
                           e->id, nd->path, e->id);
        if (replay && nd->result && nd->result_len > strlen(nd->result))
            return err_set(NDF_ERR_INVALID,
                           "execution %s: the result of '%s' was kept cut (%zu of %zu bytes): an "
                           "undo that reads it would not see what the step answered, so it "
                           "cannot be rolled back from the store",
                           e->id, nd->path, strlen(nd->result), nd->result_len);
    }
    if (!k)
        return err_set(NDF_ERR_INVALID,
                       "execution %s: nothing to undo (no step of it completed, or its completed "
                       "work was already undone when it %s)",
                       e->id, e->status == STORE_SUCCEEDED ? "ended" : "failed");
    return NDF_OK;
}

/* 1 when stored node `nd` completed and was undone by a rollback since:
 * a replay passes it as completed (a sequence goes on to what is left)
 * without undoing it again. */
static int undone_since(const store_node *nd)
{
    return *nd->path && nd->state == NDF_STATE_ROLLED_BACK;
}

hashmap *rollback_reuse(const store_exec *e, size_t *n)
{
    hashmap *reuse = hashmap_new();
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *nd = &e->nodes[i];
        int gone = undone_since(nd);
        if (gone || undoable(nd))
            free(hashmap_put(reuse, nd->path, record_reuse_new(nd->message, nd->result, gone)));
    }
    *n = hashmap_count(reuse);
    return reuse;
}

/* Adds the nodes below `n` (whose path is sb's text) to `m` by path, named
 * as record_node_path() names them. */
static void index_nodes(ndf_exec *n, strbuf *sb, hashmap *m)
{
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    hashmap *seen = nk > 1 ? hashmap_new() : NULL;
    size_t base = sb->len;
    for (size_t i = 0; i < nk; i++) {
        ndf_exec *k = kids[i];
        sb->len = base;
        if (base)
            sb_add(sb, "/", 1);
        sb_puts(sb, k->name);
        if (seen) {
            size_t dup = (size_t)hashmap_get(seen, k->name);
            hashmap_put(seen, k->name, (void *)(dup + 1));
            if (dup)
                sb_printf(sb, "#%zu", dup + 1);
        }
        hashmap_put(m, sb->buf, k);
        index_nodes(k, sb, m);
    }
    sb->len = base;
    if (sb->buf)
        sb->buf[base] = '\0';
    hashmap_free(seen, NULL);
}

static hashmap *replay_nodes(record *r)
{
    hashmap *m = hashmap_new();
    strbuf sb;
    sb_init(&sb);
    index_nodes(r->root, &sb, m);
    sb_free(&sb);
    return m;
}

/* A replay's node that exists but never started: its pattern stopped
 * (a sibling that did not complete then fails at once in the replay, and
 * may do so before this one's turn), which is no change of definition. */
static int unreached(int st)
{
    return st == NDF_STATE_PENDING || st == NDF_STATE_SKIPPED || st == NDF_STATE_CANCELLED;
}

/* The stored completed nodes of `e` the replay `r` did not reach: work a
 * rollback of it cannot undo this time. */
static size_t unreached_done(const store_exec *e, record *r)
{
    hashmap *m = replay_nodes(r);
    size_t k = 0;
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *nd = &e->nodes[i];
        ndf_exec *x = undoable(nd) ? hashmap_get(m, nd->path) : NULL;
        k += x && unreached(atomic_load(&x->state));
    }
    hashmap_free(m, NULL);
    return k;
}

int rollback_matches(const store_exec *e, record *r)
{
    hashmap *m = replay_nodes(r);
    int rc = NDF_OK;
    for (size_t i = 0; i < e->nnodes && !rc; i++) {
        const store_node *nd = &e->nodes[i];
        if (!undoable(nd) && !undone_since(nd))
            continue;
        ndf_exec *x = hashmap_get(m, nd->path);
        int st = x ? atomic_load(&x->state) : -1;
        if (!x || (!succeeded(st) && !unreached(st)))
            rc = err_set(NDF_ERR_VALIDATION,
                         "execution %s: '%s' %s in the current definition of '%s': the pattern "
                         "changed since it ran, so its undo actions are not the ones that ran "
                         "(nothing was undone)",
                         e->id, nd->path, x ? "does not complete again" : "is not",
                         e->pattern);
    }
    hashmap_free(m, NULL);
    return rc;
}

size_t rollback_changes(const store_exec *e, record *r, store_node **out,
                        const char **first_failed)
{
    hashmap *m = replay_nodes(r);
    store_node *v = NULL;
    size_t n = 0;
    if (first_failed)
        *first_failed = NULL;
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *nd = &e->nodes[i];
        /* only work the store says is there can have been undone */
        ndf_exec *x = undoable(nd) ? hashmap_get(m, nd->path) : NULL;
        if (!x)
            continue;
        int st = atomic_load(&x->state);
        pthread_mutex_lock(&r->lock);
        char *msg = x->message ? xstrdup(x->message) : NULL;
        pthread_mutex_unlock(&r->lock);
        /* still COMPLETED: not undone (another level, or a target) */
        if (st != NDF_STATE_ROLLED_BACK && st != NDF_STATE_FAILED) {
            free(msg);
            continue;
        }
        v = xrealloc(v, (n + 1) * sizeof *v);
        memset(&v[n], 0, sizeof v[n]);
        v[n].path = xstrdup(nd->path);
        v[n].kind = nd->kind;
        v[n].state = st;
        /* the replay's own note is not what happened to the node */
        if (msg && strncmp(msg, REPLAY_NOTE, strlen(REPLAY_NOTE)) == 0) {
            free(msg);
            msg = NULL;
        }
        v[n].message = msg ? msg : xstrdup(st == NDF_STATE_ROLLED_BACK ? "undone by a rollback"
                                                                      : "undo failed");
        if (first_failed && !*first_failed && st == NDF_STATE_FAILED)
            *first_failed = v[n].path;
        n++;
    }
    hashmap_free(m, NULL);
    *out = v;
    return n;
}

void rollback_changes_free(store_node *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].path);
        free(v[i].message);
    }
    free(v);
}

/* What a claimed execution's message says while it is rolled back: who
 * does it, so that one left so by a rollback that died can be told. */
static char *claim_message(void)
{
    char host[256] = "?";
    if (gethostname(host, sizeof host - 1))
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    return xasprintf("being rolled back by ndf process %ld on %s", (long)getpid(), host);
}

/* Gives the claim on `id` back: the status and message it had. */
static void release(store *st, const char *id, int rc, store_status was, const char *was_msg)
{
    char *why = xstrdup(err_msg());
    if (store_rollback_end(st, id, was, was_msg, NULL, 0))
        log_msg(NDF_LOG_ERROR, "execution %s: cannot give its rollback claim back: %s", id,
                err_msg());
    err_set(rc, "%s", why);
    free(why);
}

/* The reused steps of the replay `r` that have an undo action and are
 * still COMPLETED after its rollback: work the level left done. */
static size_t still_done(ndf_exec *n)
{
    int s = atomic_load(&n->state);
    size_t k = n->replay_has_undo && (s == NDF_STATE_COMPLETED || s == NDF_STATE_DEGRADED);
    size_t nk;
    ndf_exec *const *kids = node_kids(n, &nk);
    for (size_t i = 0; i < nk; i++)
        k += still_done(kids[i]);
    return k;
}

/* Records the end of the rollback `r` of `e` (status `rc`; `stopped`:
 * what stopped it on request, "signal" or "the server's shutdown", NULL
 * when nothing did); returns `rc`, or the store's error when the end
 * could not be written. */
static int record_end(store *st, const store_exec *e, record *r, int rc, const char *stopped,
                      store_status was, const char *was_msg, const char *level)
{
    int rolled = 0; /* the root is to say so */
    char *why = rc ? xstrdup(*err_msg() ? err_msg() : ndf_status_name(rc)) : NULL;
    store_node *v;
    const char *ff;
    size_t n = rollback_changes(e, r, &v, &ff), undone = 0;
    for (size_t i = 0; i < n; i++)
        undone += v[i].state == NDF_STATE_ROLLED_BACK;
    /* ROLLED_BACK only when no completed work with an undo is left: a
     * level that leaves some keeps the status it had, says so, and a
     * rollback again may undo the rest */
    size_t left = !rc && undone ? still_done(r->root) + unreached_done(e, r) : 0;
    if (!rc && undone && !left) {
        /* the root says so too, as a run that rolled itself back does */
        v = xrealloc(v, (n + 1) * sizeof *v);
        memset(&v[n], 0, sizeof v[n]);
        v[n].path = xstrdup("");
        v[n].kind = NDF_NODE_PATTERN;
        v[n].state = NDF_STATE_ROLLED_BACK;
        v[n].message = xstrdup("rolled back");
        n++;
        rolled = 1;
    }
    int wrc;
    if (!n) {
        /* nothing changed (the level and target chose nothing to undo,
         * or the type refused them): the claim goes back as it was */
        wrc = store_rollback_end(st, e->id, was, was_msg, NULL, 0);
    } else if (left) {
        char *msg = xasprintf("partly rolled back at level %s: %zu node(s) undone, %zu completed "
                              "step(s) with an undo left (it had ended %s)",
                              level ? level : "pattern", undone, left, store_status_name(was));
        wrc = store_rollback_end(st, e->id, was, msg, v, n);
        free(msg);
    } else {
        char *msg = stopped && ff
                        ? xasprintf("rollback interrupted by %s at '%s'; 'ndf rollback %s' "
                                    "runs the undo actions again",
                                    stopped, ff, e->id)
                    : stopped ? xasprintf("rollback interrupted by %s after %zu undo(s); 'ndf "
                                          "rollback %s' runs the undo actions again",
                                          stopped, undone, e->id)
                    : rc ? xasprintf("rollback failed at '%s': %s", ff ? ff : "?", why)
                         : xasprintf("rolled back: %zu node(s) undone (it had ended %s)", undone,
                                     store_status_name(was));
        wrc = store_rollback_end(st, e->id, rc ? STORE_FAILED : STORE_ROLLED_BACK, msg, v, n);
        free(msg);
    }
    char *failed_at = xstrdup(ff ? ff : "?");
    rollback_changes_free(v, n);
    if (wrc) {
        char *m = xstrdup(err_msg());
        /* Give the claim up all the same, as a rollback that died: its
         * nodes unrecorded, the undo actions to run again.  When that
         * cannot be written either, the claim stays with this process,
         * and crash recovery does it once the process has exited. */
        char *gone = xasprintf("rollback interrupted: its end could not be recorded (%s); 'ndf "
                               "rollback %s' runs the undo actions again",
                               m, e->id);
        if (store_rollback_end(st, e->id, STORE_FAILED, gone, NULL, 0))
            log_msg(NDF_LOG_ERROR,
                    "execution %s: cannot give its rollback claim up (%s): it is recovered as "
                    "interrupted once this process has exited",
                    e->id, err_msg());
        free(gone);
        rc = err_set(wrc, "execution %s: the rollback %s, but its end could not be recorded: %s",
                     e->id, rc ? "failed" : "ran", m);
        free(m);
    } else if (stopped && !n) {
        rc = err_set(rc ? rc : NDF_ERR_CANCELLED,
                     "execution %s: rollback interrupted by %s before any undo ran (nothing "
                     "was undone; it is left %s)",
                     e->id, stopped, store_status_name(was));
    } else if (stopped) {
        rc = err_set(rc ? rc : NDF_ERR_CANCELLED,
                     "execution %s: rollback interrupted by %s%s%s%s; it is FAILED and 'ndf "
                     "rollback %s' runs the undo actions again",
                     e->id, stopped, ff ? " at '" : "", ff ? failed_at : "", ff ? "'" : "",
                     e->id);
    } else if (!rc && !n) {
        rc = err_set(NDF_ERR_INVALID, "execution %s: nothing to undo at level %s (it is left %s)",
                     e->id, level ? level : "pattern", store_status_name(was));
    } else if (rc && !n) {
        err_set(rc, "execution %s: %s (nothing was undone)", e->id, why);
    } else if (rc) {
        err_set(rc, "execution %s: rollback failed at '%s': %s (it is FAILED; a rollback again "
                    "undoes what is left)",
                e->id, failed_at, why);
    }
    free(failed_at);
    free(why);
    if (!wrc && rolled)
        node_set_state(r->root, NDF_STATE_ROLLED_BACK, "rolled back");
    return rc;
}

int rollback_stored(executor *ex, store *st, const char *id, const char *level,
                    const char *target, rollback_watch_fn watch, void *watch_arg, record **out)
{
    *out = NULL;
    store_exec e;
    int rc = store_get(st, id, &e);
    if (rc)
        return rc;
    ndf_context *ctx = NULL;
    record *r = NULL;
    store_status was;
    char *was_msg = NULL;
    if ((rc = rollback_check(&e, 1)))
        goto out;
    char *claim = claim_message();
    rc = store_rollback_claim(st, id, claim, &was, &was_msg);
    free(claim);
    if (rc)
        goto out;
    /* what is left to undo, read under the claim (another rollback may
     * have undone part of it since the first read) */
    store_exec_free(&e);
    if ((rc = store_get(st, id, &e))) {
        release(st, id, rc, was, was_msg);
        goto out;
    }
    e.status = was;
    if ((rc = rollback_check(&e, 1)))
        goto give_back;
    if (e.context && *e.context) {
        char *where = xasprintf("the context of execution %s", e.id);
        rc = context_from_json(e.context, where, &ctx);
        free(where);
        if (rc)
            goto give_back;
    }
    size_t n;
    hashmap *reuse = rollback_reuse(&e, &n);
    rc = executor_start_redrive(ex, e.pattern, ctx, 0, EXEC_REPLAY, e.id, reuse, NULL, NULL, &r);
    if (rc) {
        char *m = xstrdup(err_msg());
        err_set(rc, "execution %s: cannot rebuild it from the store: %s", e.id, m);
        free(m);
        goto give_back;
    }
    executor_wait(ex, r, -1);
    *out = record_ref(r);
    if ((rc = rollback_matches(&e, r)))
        goto give_back;
    if (!atomic_load(&r->replay_undoable)) {
        rc = err_set(NDF_ERR_INVALID,
                     "execution %s: nothing to undo: none of its steps that completed has an "
                     "undo action",
                     e.id);
        goto give_back;
    }
    if (watch)
        watch(watch_arg, r);
    rc = executor_rollback(r, level, target);
    if (watch)
        watch(watch_arg, NULL);
    /* stopped: a hard cancel that came once they had all run stopped
     * nothing */
    rc = record_end(st, &e, r, rc, rc && atomic_load(&r->hard_cancel) ? "signal" : NULL, was,
                    was_msg, level);
    if (!rc) {
        /* what the caller prints is the rollback, which went well, not
         * the replay's run, which failed where the execution had */
        pthread_mutex_lock(&r->lock);
        r->status = NDF_OK;
        free(r->error);
        r->error = NULL;
        pthread_mutex_unlock(&r->lock);
    }
    goto out;
give_back:
    release(st, id, rc, was, was_msg);
out:
    record_unref(r);
    context_free(ctx);
    free(was_msg);
    store_exec_free(&e);
    return rc;
}

/* 1 when every stored node of `e` has the state live record `r` gives
 * it: nothing of it was rolled back by anyone else since it ended. */
static int in_sync(const store_exec *e, record *r)
{
    hashmap *m = replay_nodes(r);
    int ok = 1;
    for (size_t i = 0; i < e->nnodes && ok; i++) {
        if (!*e->nodes[i].path)
            continue;
        ndf_exec *x = hashmap_get(m, e->nodes[i].path);
        ok = x && atomic_load(&x->state) == e->nodes[i].state;
    }
    hashmap_free(m, NULL);
    return ok;
}

int rollback_live(store *st, record *r, const char *level, const char *target)
{
    store_exec e;
    int rc = store_get(st, r->id, &e);
    if (rc)
        return rc;
    store_status was;
    char *was_msg = NULL;
    if ((rc = rollback_check(&e, 0)))
        goto out;
    char *claim = claim_message();
    rc = store_rollback_claim(st, r->id, claim, &was, &was_msg);
    free(claim);
    if (rc)
        goto out;
    store_exec_free(&e);
    if ((rc = store_get(st, r->id, &e))) {
        release(st, r->id, rc, was, was_msg);
        goto out;
    }
    if (!in_sync(&e, r)) {
        rc = err_set(NDF_ERR_INVALID,
                     "execution %s was partly rolled back by another process since it ran here: "
                     "'ndf rollback %s' undoes what is left, from the store",
                     r->id, r->id);
        release(st, r->id, rc, was, was_msg);
        goto out;
    }
    size_t before = atomic_load(&r->undos_run);
    /* a hard cancel from before (the run's own) is not a stop of this */
    int hard_before = atomic_load(&r->hard_cancel);
    rc = executor_rollback(r, level, target);
    int stopped = rc && !hard_before && atomic_load(&r->hard_cancel);
    if (!rc && atomic_load(&r->undos_run) == before) {
        /* as a one-shot refuses it (replay_undoable) */
        rc = err_set(NDF_ERR_INVALID,
                     "execution %s: nothing to undo: none of its steps that completed has an "
                     "undo action",
                     r->id);
        release(st, r->id, rc, was, was_msg);
        goto out;
    }
    rc = record_end(st, &e, r, rc, stopped ? "the server's shutdown" : NULL, was, was_msg, level);
out:
    free(was_msg);
    store_exec_free(&e);
    return rc;
}
