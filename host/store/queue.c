/* The work queue's front: hands each call to the store's backend, or says
 * that the backend has no queue. */
#include "build-config.h"

#include <stdlib.h>
#include <string.h>

#include <ndf/sdk.h>

#include "store/queue.h"
#include "store/store_backend.h"

static const store_ops *ops_of(const store *s)
{
    return ((const store_head *)(const void *)s)->ops;
}

static int no_queue(const store *s)
{
    return err_set(NDF_ERR_INVALID,
                   "%s: the work queue needs a shared store: storage.backend = \"postgresql\" "
                   "(this one is %s)",
                   store_path(s), store_backend_name(store_get_backend(s)));
}

static const char *const state_names[] = {"QUEUED", "CLAIMED", "DONE"};

const char *queue_state_name(queue_state s)
{
    return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "UNKNOWN";
}

void queue_item_free(queue_item *q)
{
    if (!q)
        return;
    free(q->id);
    free(q->pattern);
    free(q->context);
    free(q->worker);
    free(q->exec_id);
    free(q->message);
    memset(q, 0, sizeof *q);
}

void queue_items_free(queue_item *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        queue_item_free(&v[i]);
    free(v);
}

int queue_submit(store *s, const char *pattern, const char *context, int priority,
                 double timeout, char **id)
{
    *id = NULL;
    if (!pattern || !*pattern)
        return err_set(NDF_ERR_INVALID, "a queued execution needs a pattern");
    const store_ops *o = ops_of(s);
    return o->q_submit ? o->q_submit(s, pattern, context, priority, timeout, id) : no_queue(s);
}

int queue_claim(store *s, const char *worker, const char *const *patterns, size_t n, size_t max,
                double lease_s, queue_item **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!worker || !*worker || lease_s <= 0)
        return err_set(NDF_ERR_INVALID, "a claim needs a worker and a lease");
    const store_ops *o = ops_of(s);
    if (!o->q_claim)
        return no_queue(s);
    if (!n || !max)
        return NDF_OK;
    return o->q_claim(s, worker, patterns, n, max, lease_s, out, nout);
}

int queue_renew(store *s, const char *id, long long generation, double lease_s)
{
    const store_ops *o = ops_of(s);
    return o->q_renew ? o->q_renew(s, id, generation, lease_s) : no_queue(s);
}

int queue_bind(store *s, const char *exec_id, const char *id, long long generation)
{
    const store_ops *o = ops_of(s);
    return o->q_bind ? o->q_bind(s, exec_id, id, generation) : no_queue(s);
}

void queue_unbind(store *s, const char *exec_id)
{
    const store_ops *o = ops_of(s);
    if (o->q_unbind)
        o->q_unbind(s, exec_id);
}

int queue_get(store *s, const char *id, queue_item *out)
{
    memset(out, 0, sizeof *out);
    const store_ops *o = ops_of(s);
    return o->q_get ? o->q_get(s, id, out) : no_queue(s);
}

int queue_start(store *s, const char *id, long long generation, const char *exec_id)
{
    const store_ops *o = ops_of(s);
    return o->q_start ? o->q_start(s, id, generation, exec_id) : no_queue(s);
}

int queue_fail(store *s, const char *id, long long generation, store_status status,
               const char *message)
{
    const store_ops *o = ops_of(s);
    return o->q_fail ? o->q_fail(s, id, generation, (int)status, message) : no_queue(s);
}

int queue_release(store *s, const char *id, long long generation)
{
    const store_ops *o = ops_of(s);
    return o->q_release ? o->q_release(s, id, generation) : no_queue(s);
}

int queue_abandon(store *s, const char *exec_id, const char *id)
{
    const store_ops *o = ops_of(s);
    return o->q_abandon ? o->q_abandon(s, exec_id, id) : no_queue(s);
}

void queue_workers_free(queue_worker *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].host);
        free(v[i].patterns);
        free(v[i].plugins);
    }
    free(v);
}

int queue_worker_beat(store *s, const queue_worker *w)
{
    if (!w->name || !*w->name)
        return err_set(NDF_ERR_INVALID, "a worker needs a name");
    const store_ops *o = ops_of(s);
    return o->q_worker_beat ? o->q_worker_beat(s, w) : no_queue(s);
}

int queue_workers(store *s, queue_worker **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const store_ops *o = ops_of(s);
    return o->q_workers ? o->q_workers(s, out, n) : no_queue(s);
}

int queue_worker_remove(store *s, const char *name)
{
    const store_ops *o = ops_of(s);
    return o->q_worker_remove ? o->q_worker_remove(s, name) : no_queue(s);
}

int queue_wait(store *s, int wake_fd, double timeout_s)
{
    const store_ops *o = ops_of(s);
    return o->q_wait ? o->q_wait(s, wake_fd, timeout_s) : no_queue(s);
}
