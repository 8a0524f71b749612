/* The one path from configuration to registry: builds a configuration's
 * pattern definitions against a plugin loader, carries learning state over,
 * and checks the sub-pattern references.  One-shot commands and every
 * generation of `ndf serve` build through here. */
#ifndef NDF_BUILD_H
#define NDF_BUILD_H

#include <stddef.h>
#include "base/value.h"
#include "conf/config.h"
#include "model/registry.h"
#include "plugin/loader.h"

typedef struct build_opts {
    loader *ld;                  /* the plugins the patterns are built against */
    const settings *set;         /* registry options and learning parameters */
    const registry_store *store; /* learning state: paged through and restored
                                    from here; may be NULL */
    /* A pattern that `prev` holds under the same name hands its learning
     * state over (a reload keeps what was learned); NULL: none. */
    registry *prev;
    /* Each problem, as "file:line: message"; `strict` says whether it
     * fails the build.  NULL: logged as warnings. */
    void (*report)(void *opaque, const char *msg);
    void *opaque;
} build_opts;

/* Builds a registry from `defs` (duplicated; the caller keeps them): each
 * definition through pattern_build(), its learning state from `prev` or
 * the store, then every pattern some definition requires must exist.  A
 * definition that fails is reported and left out; *nerrors counts the
 * problems.  Returns the registry (free with registry_free()); never NULL. */
registry *build_registry(const build_opts *o, ndf_value *const *defs, size_t ndefs,
                         size_t *nerrors);

#endif
