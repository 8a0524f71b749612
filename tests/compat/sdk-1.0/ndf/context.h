/* ndf SDK: the execution context (the seed's PatternContext) as plugins see it.
 *
 * A context is owned by the host and read-only to plugins; its fields are read
 * through ndf_host.ctx_*().  Attribute values are ndf_value handles. */
#ifndef NDF_CONTEXT_H
#define NDF_CONTEXT_H

typedef struct ndf_context ndf_context;

/* Priorities run from 1 (highest) to 5 (lowest). */
#define NDF_PRIORITY_HIGHEST 1
#define NDF_PRIORITY_LOWEST 5

#endif
