/* The seam between store.c (the store_* functions callers use) and the
 * backends behind it (store_sqlite.c, store_pg.c).  Private to host/store.
 *
 * A backend's handle is its own struct whose first member is a pointer to
 * its store_ops table: store.c reads that pointer to find the backend, so
 * callers keep one opaque `store *` whatever holds the data.  Every entry
 * has the contract of the store.h function of the same name. */
#ifndef NDF_STORE_BACKEND_H
#define NDF_STORE_BACKEND_H

#include "store/store.h"

typedef struct store_ops {
    store_backend backend;
    void (*close)(store *s);
    const char *(*path)(const store *s);
    const char *(*dir)(const store *s);
    int (*begin)(store *s, const store_exec *e);
    int (*progress)(store *s, const char *id, const store_node *n);
    int (*finish_all)(store *s, const store_exec *v, size_t n, learning_state *after);
    void (*get_stats)(store *s, store_stats *out);
    int (*runs)(store *s, const store_query *q, store_exec **out, size_t *n);
    int (*get)(store *s, const char *id, store_exec *out);
    int (*children)(store *s, const char *id, store_exec **out, size_t *n);
    int (*output)(store *s, const char *id, const char *path, int stream, char **buf,
                  size_t *len, uint64_t *dropped);
    int (*learning)(store *s, const char *name, learning_state *out);
    int (*patterns)(store *s, char ***names, size_t *n);
    int (*reset_stats)(store *s, const char *name);
    int (*remove_pattern)(store *s, const char *name);
    int (*cleanup)(store *s, long history_limit, double max_age_s, double now,
                   store_cleanup_result *res);
    int (*backup)(store *s, char **path_out);
    int (*import_legacy)(store *s, const char *dir, size_t *imported);
    int (*recover)(store *s, size_t *n);
    int (*check)(store *s);
} store_ops;

/* What every handle starts with. */
typedef struct store_head {
    const store_ops *ops;
} store_head;

/* The backends' open functions; store_open() picks one by opts->backend.
 * `opts` is never NULL here. */
int store_sqlite_open(const char *dir, const store_opts *opts, store **out);
#ifdef HAVE_LIBPQ
int store_pg_open(const char *dir, const store_opts *opts, store **out);
#endif

/* Helpers the backends share (store.c). */

/* This machine's boot id (/proc/sys/kernel/random/boot_id), or "" into
 * `out` (n bytes). */
void store_read_boot_id(char *out, size_t n);
/* The start time of process `pid` in clock ticks after boot (field 22 of
 * /proc/PID/stat), which tells a live process from a later one given the
 * same pid; 0 when unknown. */
long long store_pid_start_time(long pid);
/* 0 when the process that recorded an execution (host, pid, boot id, start
 * time) is known to be dead from this machine (`myhost`, `myboot`): same
 * host, and another boot, no such pid, or the pid reused; 1 otherwise. */
int store_process_alive(const char *myhost, const char *myboot, const char *host, long pid,
                        const char *boot, long long started);

#endif
