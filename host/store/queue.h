/* The shared work queue of a PostgreSQL store: executions submitted by any
 * host and run by workers.  Workers claim queued executions in priority
 * order (then submission order) with FOR UPDATE SKIP LOCKED, so that they
 * never wait for each other; each claim is a lease, renewed by heartbeat,
 * with a generation that grows at every claim.  A worker records the end
 * of a claimed execution only while its generation is current: the
 * store_finish() of an execution bound to a claim (queue_bind()) checks the
 * generation and marks the item DONE in the same transaction, so an item
 * ends exactly once, whoever held it before.
 *
 * Times are the database server's clock, so hosts need not agree on theirs.
 * Every function returns NDF_OK or a negative ndf_status with err_msg()
 * set; on a store without a queue (SQLite) NDF_ERR_INVALID, saying so. */
#ifndef NDF_QUEUE_H
#define NDF_QUEUE_H

#include <stddef.h>

#include "store/store.h"

typedef enum queue_state {
    QUEUE_QUEUED = 0,  /* waiting for a worker (or its lease expired) */
    QUEUE_CLAIMED = 1, /* a worker holds its lease */
    QUEUE_DONE = 2     /* its execution was recorded */
} queue_state;

/* "QUEUED", "CLAIMED", "DONE". */
const char *queue_state_name(queue_state s);

/* One item.  All strings owned; free with queue_item_free(). */
typedef struct queue_item {
    char *id;
    char *pattern;
    char *context; /* JSON, or NULL */
    int priority;  /* higher first */
    double timeout; /* seconds, 0: the worker's default */
    queue_state state;
    char *worker;           /* the last claimant, or NULL */
    double submitted;       /* server time, seconds */
    double lease_until;     /* CLAIMED: when its lease ends (server time) */
    long long generation;   /* claims so far: the fencing token of the latest */
    int attempts;           /* claims so far */
    char *exec_id;          /* DONE: the execution that ran it */
    store_status status;    /* DONE: how it ended */
    double now;             /* the server's clock when read */
    long long seq;          /* submission order */
    char *message;          /* DONE without an execution: why it could not start */
} queue_item;

void queue_item_free(queue_item *q);
/* queue_item_free() on each, then free(v). */
void queue_items_free(queue_item *v, size_t n);

/* Queues pattern `pattern` in context `context` (JSON text or NULL) with
 * `priority` and `timeout` (s, 0: none given).  *id (caller frees) gets
 * the new item's id. */
int queue_submit(store *s, const char *pattern, const char *context, int priority,
                 double timeout, char **id);

/* Claims up to `max` items whose pattern is one of `patterns` (`n`
 * names), queued or with an expired lease, highest priority first, for
 * worker `worker`, with a lease of `lease_s` seconds.  Items other workers
 * are claiming at the same moment are skipped, not waited for.  *out (free
 * with queue_items_free()) gets the claimed items with their new
 * generation. */
int queue_claim(store *s, const char *worker, const char *const *patterns, size_t n, size_t max,
                double lease_s, queue_item **out, size_t *nout);

/* Extends the lease of item `id` held at `generation` by `lease_s`
 * seconds from now.  NDF_ERR_CANCELLED when the lease was lost (expired
 * and claimed again, or the item ended): the holder must stop. */
int queue_renew(store *s, const char *id, long long generation, double lease_s);

/* Binds execution `exec_id` (before its store_finish()) to item `id`
 * claimed at `generation`: its store_finish() then marks the item DONE in
 * the same transaction, and fails with NDF_ERR_CANCELLED, recording
 * nothing, when the generation is no longer current.  The binding ends
 * with that store_finish(), or with queue_unbind(). */
int queue_bind(store *s, const char *exec_id, const char *id, long long generation);
void queue_unbind(store *s, const char *exec_id);

/* Item `id` into *out (free with queue_item_free()); NDF_ERR_NOT_FOUND
 * when there is none. */
int queue_get(store *s, const char *id, queue_item *out);

/* Notes on item `id`, claimed at `generation`, that it runs as execution
 * `exec_id` (its exec_id until it ends), so that a worker taking it over
 * after the lease expired finds what ran so far.  NDF_ERR_CANCELLED when
 * the lease was lost.  (An execution bound with queue_bind() before its
 * store_begin() needs no call: its RUNNING row's transaction notes it, and
 * its store_begin() fails with NDF_ERR_CANCELLED, recording nothing, when
 * the lease was lost.) */
int queue_start(store *s, const char *id, long long generation, const char *exec_id);

/* Ends item `id`, claimed at `generation`, without an execution: it
 * cannot start (its pattern's type refuses the context, the confidence
 * gate refuses it...).  DONE with `status` and `message`.
 * NDF_ERR_CANCELLED when the lease was lost. */
int queue_fail(store *s, const char *id, long long generation, store_status status,
               const char *message);
/* Gives item `id`, claimed at `generation` and not started, back to the
 * queue for any worker (this one is stopping).  Nothing when the lease was
 * lost meanwhile. */
int queue_release(store *s, const char *id, long long generation);

/* Ends execution `exec_id`, left RUNNING by the worker that lost the lease
 * of item `id`, as CRASHED (its end: the newest time recorded in it), so
 * that it can be redriven; nothing when it is no longer RUNNING.  Called by
 * the worker that claimed the item since: the lost holder can no longer
 * record it (fencing), so nobody else would. */
int queue_abandon(store *s, const char *exec_id, const char *id);

/* A worker as the workers table knows it.  Strings owned; free with
 * queue_workers_free(). */
typedef struct queue_worker {
    char *name;      /* unique: "HOST:PID:START" */
    char *host;
    long pid;
    int capacity;    /* executions it runs at once */
    int load;        /* executions it holds now */
    int draining;    /* 1: it claims nothing more */
    double lease;    /* its leases' length (s): a heartbeat older than that is stale */
    char *patterns;  /* what it can run: JSON array of pattern names */
    char *plugins;   /* its loaded plugins: JSON array of {"name", "version", "hash"} */
    double started;  /* server time */
    double heartbeat; /* server time of its last heartbeat */
    double age;      /* seconds since then (server clock) */
} queue_worker;

void queue_workers_free(queue_worker *v, size_t n);

/* Inserts or updates worker w->name with a heartbeat of now (server time);
 * started, heartbeat and age are ignored, and so are patterns and plugins
 * when NULL (the row keeps what it had: a heartbeat that only says the
 * load). */
int queue_worker_beat(store *s, const queue_worker *w);
/* Every registered worker, freshest heartbeat first, into *out. */
int queue_workers(store *s, queue_worker **out, size_t *n);
/* Removes worker `name` (its clean exit). */
int queue_worker_remove(store *s, const char *name);

/* Waits up to `timeout_s` seconds for a submission (or an item given
 * back) to be committed by any host, on a connection of its own that
 * LISTENs for them: 1 when one was (or had been since the last call), 0
 * when the time ran out or `wake_fd` (may be -1) became readable (the
 * caller drains it), or the status of a database failure (the connection
 * is opened again at the next call).  That connection is opened without
 * blocking, as far as each call's time allows (a call never waits past
 * it, whatever the network does): what is committed before it listens
 * sends it nothing, and is found by the caller's poll.  Items whose lease expired send
 * nothing: a worker still claims every poll interval.  One thread at a
 * time waits; a `timeout_s` of 0 only reads what arrived. */
int queue_wait(store *s, int wake_fd, double timeout_s);

#endif
