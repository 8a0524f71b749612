/* A pattern as the host holds it (the generic half of the seed's
 * DelegationPattern): its definition, the type instance built from it, and
 * its learning state.  Patterns are reference counted: an execution, the
 * registry and a pending configuration each hold a reference. */
#ifndef NDF_HOST_PATTERN_H
#define NDF_HOST_PATTERN_H

#include <pthread.h>
#include <ndf/sdk.h>
#include "base/learning.h"
#include "base/value.h"

struct provided;
struct loader;

/* The seam to the storage backend, through which learning state of patterns
 * beyond the registry's cache_size is paged out and back in, and restored
 * when a pattern is built.  All may be NULL. */
typedef struct registry_store {
    void *opaque;
    /* Saves a pattern's learning state; returns an ndf_status. */
    int (*save)(void *opaque, const char *name, const learning_state *st);
    /* Loads it; NDF_ERR_NOT_FOUND when there is none. */
    int (*load)(void *opaque, const char *name, learning_state *st);
    /* Optional (NULL: load() per pattern): calls `each` once per stored
     * pattern with its state (which `each` takes), in one read of the
     * whole table, so that building a registry of many patterns costs one
     * query, not one per pattern.  Returns an ndf_status. */
    int (*load_all)(void *opaque, void (*each)(void *arg, const char *name, learning_state *st),
                    void *arg);
} registry_store;

typedef struct pattern {
    char *name;
    char *type_name;
    char *description;
    char **domains; /* globs; none means "any domain" */
    size_t ndomains;
    char **agent_types; /* globs; none means "any agent type" */
    size_t nagent_types;
    ndf_value *attributes; /* GROUP used for matching; never NULL */
    char **tags;
    size_t ntags;
    double threshold;  /* own confidence threshold, or < 0 for the global */
    int gate;          /* own confidence_gate, or < 0 for the global */
    double timeout;    /* seconds, or <= 0 for the configured default */
    /* The key `timeout` came from: "timeout", or "params.timeout_seconds"
     * (the whole-run budget the seed's types take) when the definition has
     * no `timeout`; NULL when neither is set.  Static text. */
    const char *timeout_key;
    ndf_value *def;    /* the whole definition as read (owned) */
    ndf_value *params; /* the type's parameters, validated (inside def) */
    const char *file;  /* where it was defined */
    int line;

    const struct provided *type; /* the pattern type, from the loader */
    const ndf_host *host;        /* the services table `type` was handed */
    void *instance;              /* the type's instance (type->def->create) */

    pthread_mutex_t lock; /* guards `learn`, `resident`, `store` */
    learning_state learn;
    /* Paging (see registry.h, cache_size): when `resident` is 0 the
     * variable-size part of `learn` (the per-domain counts) lives only in
     * `store`; the fixed-size summary (counts, score, posterior, times)
     * always stays, so sorting by confidence never pages anything in. */
    int resident;
    const struct registry_store *store;
    int refs; /* atomic */
} pattern;

/* A bare pattern named `name` (not checked) with no type, no instance, no
 * domains or agent types (so it serves any), empty attributes, the global
 * threshold, fresh learning state and one reference.  For programs and tests
 * that build patterns without a definition (the registry benchmark). */
pattern *pattern_new(const char *name, const learning_params *lp);
/* Append a domain / agent-type glob (copied) to a pattern not yet shared. */
void pattern_add_domain(pattern *p, const char *glob);
void pattern_add_agent_type(pattern *p, const char *glob);

/* Builds a pattern from its definition group (ownership of `def` passes,
 * even on failure): checks the generic keys, looks up the type among the
 * plugins of `ld` (NULL: none loaded), validates the type's parameters
 * against its schema, and calls the type's create().  Errors name
 * file:line.  Returns NDF_OK and
 * *out with one reference, or an ndf_status with err_msg() set. */
int pattern_build(struct loader *ld, ndf_value *def, const learning_params *lp, pattern **out);

/* Replaces the learning state of `to` with a copy of `from`'s (a rebuilt
 * pattern keeps what its predecessor learned). */
void pattern_adopt_learning(pattern *to, pattern *from);

/* Takes a reference (thread-safe) and returns `p`. */
pattern *pattern_ref(pattern *p);
/* Drops a reference; the last one destroys the instance and frees it. */
void pattern_unref(pattern *p);

/* Learning, under the pattern's lock. */
void pattern_record(pattern *p, const learning_params *lp, int success, const char *domain);
void pattern_reset_stats(pattern *p, const learning_params *lp);
/* Adds an execution's duration to the statistics. */
void pattern_record_duration(pattern *p, double seconds);
/* A consistent copy of the learning state; learning_free() it.  A paged-out
 * pattern's per-domain counts are read from its store (not made resident). */
void pattern_stats(pattern *p, learning_state *out);
/* The current confidence score. */
double pattern_score(pattern *p);
/* Sets the pattern's own threshold (0..1), or < 0 to follow the global one. */
void pattern_set_threshold(pattern *p, double threshold);
/* The threshold in effect: the pattern's own, else `global`. */
double pattern_threshold(const pattern *p, double global);
/* The confidence gate in effect: the pattern's own, else `global`. */
confidence_gate pattern_gate(const pattern *p, confidence_gate global);

/* Paging, called by the registry.  page_out saves the learning state through
 * `p->store` and drops its per-domain counts from memory: NDF_OK, or the
 * store's status (then the state stays resident).  page_in reads them back
 * (a store without them leaves the summary and no domain counts). */
int pattern_page_out(pattern *p);
void pattern_page_in(pattern *p);

/* 1 when the pattern serves the context's domain and agent type (its globs)
 * and the type's own matches() agrees (seed DelegationPattern.matches). */
int pattern_matches(const pattern *p, const ndf_context *ctx);
/* The type's own matches() alone (meta's complexity_threshold, say): 1 when
 * it accepts `ctx` or has no opinion; 0 when it refuses, with err_msg()
 * saying why (the type's reason when it gave one through fail()). */
int pattern_type_accepts(const pattern *p, const ndf_context *ctx);

#endif
