/* The redrive rules (redrive.h), moved here from `ndf redrive` so that a
 * queue worker taking an execution over applies the same ones. */
#include "build-config.h"

#include <stdlib.h>
#include <string.h>

#include <ndf/sdk.h>

#include "base/util.h"
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
