/* The pattern registry (seed PatternRegistry): registration, lookup by name
 * (hash table) and by domain (index), similarity search, cleanup and the
 * analytics accessor.  Safe for concurrent use from executor threads. */
#ifndef NDF_REGISTRY_H
#define NDF_REGISTRY_H

#include <stddef.h>
#include "context.h"
#include "learning.h"
#include "pattern.h"

typedef struct registry registry;

/* The seam to the storage backend, through which learning state of patterns
 * beyond cache_size is paged out and back in.  All may be NULL. */
typedef struct registry_store {
    void *opaque;
    /* Saves a pattern's learning state; returns an ndf_status. */
    int (*save)(void *opaque, const char *name, const learning_state *st);
    /* Loads it; NDF_ERR_NOT_FOUND when there is none. */
    int (*load)(void *opaque, const char *name, learning_state *st);
} registry_store;

typedef struct registry_opts {
    size_t cache_size;        /* patterns whose learning state stays in memory */
    int enable_learning;
    learning_params learning;
    const registry_store *store; /* may be NULL */
} registry_opts;

registry *registry_new(const registry_opts *opts);
void registry_free(registry *r);

/* seed register_pattern.  Takes a reference on success.  NDF_ERR_EXISTS or
 * NDF_ERR_INVALID with err_msg() set. */
int registry_register(registry *r, pattern *p);
/* Removes by name; NDF_ERR_NOT_FOUND. */
int registry_unregister(registry *r, const char *name);
/* seed get_pattern: a new reference in *out, or NDF_ERR_NOT_FOUND. */
int registry_get(registry *r, const char *name, pattern **out);
size_t registry_count(registry *r);

/* A list of pattern references; free with pattern_list_free(). */
typedef struct pattern_list {
    pattern **items;
    double *scores;           /* similarity, for registry_find_similar */
    size_t count;
} pattern_list;
void pattern_list_free(pattern_list *l);

/* seed find_patterns_by_domain: patterns whose domain globs match `domain`,
 * by confidence descending, ties by name. */
int registry_find_by_domain(registry *r, const char *domain, pattern_list *out);
/* seed find_similar_patterns: (pattern, score) with score >= threshold,
 * by score descending, ties by name.  The score is documented in ndf(1). */
int registry_find_similar(registry *r, const ndf_context *ctx, double threshold,
                          pattern_list *out);
/* The similarity of a pattern to a context, 0..1. */
double registry_similarity(const pattern *p, const ndf_context *ctx);
/* All patterns by name (for `ndf list`). */
int registry_all(registry *r, pattern_list *out);

/* seed cleanup_unused_patterns: drops from memory the learning state of
 * patterns unused for max_age_hours (saved to the store first when there is
 * one), returning how many. */
size_t registry_cleanup(registry *r, double max_age_hours, double now);

/* Records an execution's outcome for learning (no-op with learning off). */
void registry_record(registry *r, pattern *p, int success, const char *domain,
                     double duration_s);

const learning_params *registry_learning(registry *r);

#endif
