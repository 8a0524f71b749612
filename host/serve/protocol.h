/* The wire protocol of `ndf serve` (ndf(1), PROTOCOL), pure: a request
 * line in, a parsed request or a refusal out; an answer struct in, its
 * JSON line out.  No sockets, files or locks, so each rule is testable on
 * its own (tests/check_protocol.c).  Requests must be UTF-8 with no NUL
 * character in any string; answers are always valid UTF-8 and never echo a
 * client's bytes raw. */
#ifndef NDF_PROTOCOL_H
#define NDF_PROTOCOL_H

#include <stddef.h>

#include "base/util.h"

/* Elements of a command's "args" taken; more is a bad request. */
#define PROTOCOL_MAX_ARGS 4096

typedef enum request_kind {
    REQ_RUN,
    REQ_STATUS,
    REQ_CANCEL,
    REQ_ROLLBACK,
    REQ_RELOAD,
    REQ_PING,
    REQ_SHUTDOWN,
    REQ_DELEGATE,
    REQ_WAIT,
    /* Any other "cmd": a command with "args" (and maybe "context"); the
     * server decides whether it serves one of that name. */
    REQ_COMMAND
} request_kind;

/* A parsed request.  Absent members are NULL / 0; strings are owned. */
typedef struct request {
    request_kind kind;
    char *cmd;
    char *pattern;  /* run: required */
    char *fallback; /* run */
    char *id;       /* cancel, rollback, wait: required; status: optional */
    char *level;    /* rollback */
    char *target;   /* rollback */
    char *context;  /* run, commands: the "context" object as JSON text */
    double timeout; /* run: >= 0, 0 for none; wait: >= 0, -1 when absent */
    int force;      /* run */
    int async;      /* run */
    char **args;    /* commands: "args", each a string */
    size_t nargs;
    /* delegate (and "context", "timeout"): policy name (checked by the
     * server), seed 0..2^53, max_fallbacks 0..1000000, explain */
    char *policy;
    int has_seed, has_max_fallbacks, explain;
    unsigned long long seed;
    unsigned max_fallbacks;
} request;

/* Parses one request line (`len` bytes, its newline excluded).  Returns 0
 * with *req filled (free with request_free()), or -1 with *error set to
 * the message for the client (malloc'd; the caller frees it).  A member
 * other than those of the request's kind, or one given twice, is refused;
 * a member that is null counts as absent. */
int protocol_parse(const char *text, size_t len, request *req, char **error);
void request_free(request *req);

/* What ping answers. */
typedef struct protocol_ping {
    unsigned long old_generations;
    long pid;
    unsigned long plugins_retired, plugins_unloaded, plugins_not_unloadable;
    unsigned long reloads, reloads_failed;
    /* the store: NULL path when there is none */
    const char *store_path;
    int store_degraded; /* its last write failed (until one succeeds) */
    unsigned long store_transactions, store_executions, store_queued;
    const char *store_backend;    /* "sqlite", "postgresql" */
    int store_schema;             /* its schema version */
    const char *store_last_error; /* the last write that failed, or NULL */
    double store_last_error_time; /* wall-clock seconds */
    /* the current generation's executor (pool_stats) */
    unsigned long workers, workers_active, workers_abandoned, workers_replaced,
        workers_unreplaced;
} protocol_ping;

/* response.has */
enum {
    RESP_STATUS = 1,         /* status */
    RESP_EXIT = 2,           /* exit */
    RESP_GENERATION = 4,     /* generation */
    RESP_PLUGINS_CHANGED = 8 /* plugins_changed */
};

/* An answer.  Its members are written in one fixed order (that of ndf(1)):
 * ok, error, id, status, exit, generation, the ping counters, workers,
 * plugins_changed, config, used, stdout, stderr, record, text,
 * fallback_cause, primary_error, primary, delegation; NULL strings and members not in
 * `has` are left out.  Nothing is owned. */
typedef struct response {
    int ok;
    unsigned has;
    const char *error; /* the message of a failed answer */
    const char *id;
    int status; /* an ndf_status: written as its name */
    int exit;
    unsigned long generation;
    const protocol_ping *ping;
    /* status: only its worker counters, as "workers", and the store's
     * health (its store_* members), as "store" */
    const protocol_ping *workers;
    unsigned long plugins_changed;
    const char *config; /* reload: "reloaded", "kept" or "unchanged" */
    const char *used;   /* run with a fallback: the pattern that ran */
    const char *out;    /* a command's output, out_len bytes */
    size_t out_len;
    const char *err; /* its errors, err_len bytes */
    size_t err_len;
    const char *record; /* an execution record as JSON (record_to_json) */
    const char *text;   /* the same as text (record_to_text) */
    const char *fallback_cause;
    const char *primary_error;
    const char *primary; /* the primary's record as JSON */
    const char *delegation; /* delegate: the delegation as JSON (delegation_to_json) */
} response;

/* The answer as one line of JSON ending in "\n".  Strings are escaped and
 * any invalid UTF-8 replaced (U+FFFD); the record members, JSON that ndf
 * rendered, are inserted as they are, a newline in them made a space.
 * Returns the text; the caller frees it. */
char *protocol_response(const response *r);

/* A failed answer: status, its exit code and the message (printf-style).
 * The caller frees the text. */
char *protocol_error(int status, int exit_code, const char *fmt, ...) ATTR_PRINTF(3, 4);

#endif
