/* The pattern registry (seed PatternRegistry): registration, lookup by name
 * (hash table) and by domain (index), similarity search, cleanup and the
 * analytics accessor.  Safe for concurrent use from executor threads. */
#ifndef NDF_REGISTRY_H
#define NDF_REGISTRY_H

#include <stddef.h>
#include "model/context.h"
#include "base/learning.h"
#include "model/pattern.h"

typedef struct registry registry;

/* Paging: the registry keeps the learning state of at most `cache_size`
 * patterns resident (least recently recorded first out).  With a store, the
 * state of the others is saved through it and their per-domain counts are
 * dropped from memory (their summary, see pattern.h, stays); recording for
 * such a pattern reads it back.  With no store nothing can be paged, and
 * every pattern's state stays resident whatever cache_size says. */
typedef struct registry_opts {
    size_t cache_size;        /* patterns whose learning state stays in memory; 0: no limit */
    int enable_learning;
    learning_params learning;
    const registry_store *store; /* may be NULL */
} registry_opts;

/* A new empty registry with a copy of `opts` (the store it points at must
 * outlive the registry).  Never NULL. */
registry *registry_new(const registry_opts *opts);
/* Drops the registry's references on its patterns and frees it; NULL is a
 * no-op.  No other thread may use it any more. */
void registry_free(registry *r);

/* seed register_pattern.  Takes a reference on success.  NDF_ERR_EXISTS (the
 * name is taken; the message names both definitions when known) or
 * NDF_ERR_INVALID (bad name, empty domain or agent-type glob, threshold out
 * of 0..1) with err_msg() set. */
int registry_register(registry *r, pattern *p);
/* Removes by name; NDF_ERR_NOT_FOUND. */
int registry_unregister(registry *r, const char *name);
/* seed get_pattern: a new reference in *out, or NDF_ERR_NOT_FOUND. */
int registry_get(registry *r, const char *name, pattern **out);
/* Number of registered patterns. */
size_t registry_count(registry *r);

/* A list of pattern references; free with pattern_list_free(). */
typedef struct pattern_list {
    pattern **items;
    double *scores;           /* similarity, for registry_find_similar */
    size_t count;
} pattern_list;
void pattern_list_free(pattern_list *l);

/* seed find_patterns_by_domain: patterns whose domain globs match `domain`
 * (context_glob_match; a pattern without domains serves every domain), by
 * confidence descending, ties by name; out->scores holds the confidences.
 * Indexed: exact domains in a hash map, wildcard globs by the first token of
 * their literal prefix, so the cost depends on the patterns that can match,
 * not on the registry's size.  Returns NDF_OK. */
int registry_find_by_domain(registry *r, const char *domain, pattern_list *out);
/* seed find_similar_patterns: (pattern, score) with score >= threshold,
 * by score descending, ties by name.  The score is documented in ndf(1).
 * With threshold > 0.5 only patterns whose domain score is above 0 can
 * qualify, and they are found through the indexes (domain, wildcard
 * prefix, token); a lower threshold scans every pattern.  NDF_OK, or
 * NDF_ERR_INVALID for a threshold outside 0..1. */
int registry_find_similar(registry *r, const ndf_context *ctx, double threshold,
                          pattern_list *out);
/* The similarity of a pattern to a context, 0..1. */
double registry_similarity(const pattern *p, const ndf_context *ctx);
/* All patterns by name (for `ndf list`). */
int registry_all(registry *r, pattern_list *out);

/* seed cleanup_unused_patterns: pages out (saves, then drops from memory)
 * the learning state of resident patterns whose last execution (or
 * registration, if never run) is more than max_age_hours before `now`
 * (wall-clock seconds), returning how many.  Patterns stay registered.
 * Without a store nothing can be dropped safely and it returns 0. */
size_t registry_cleanup(registry *r, double max_age_hours, double now);

/* Records an execution's outcome for learning (no-op with learning off):
 * the pattern's statistics, its duration (when >= 0), and its place in the
 * cache (which may page out the least recently used). */
void registry_record(registry *r, pattern *p, int success, const char *domain,
                     double duration_s);

/* The learning parameters the registry was made with; owned by it. */
const learning_params *registry_learning(registry *r);
/* Patterns whose learning state is resident (bounded by cache_size when
 * there is a store). */
size_t registry_resident(registry *r);

#endif
