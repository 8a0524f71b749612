/* Run-time definitions in the store: the patterns and global settings
 * changed through `ndf define`, `ndf edit` and `ndf setting` (or their
 * socket verbs), one row each, so that they outlive the server and every
 * one-shot command sees them.  The store keeps text only; what the text
 * means is the configuration's business (conf/config.h). */
#ifndef NDF_STORE_DEFS_H
#define NDF_STORE_DEFS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* store_def.kind */
#define STORE_DEF_PATTERN "pattern"
#define STORE_DEF_SETTING "setting"

typedef struct store_def {
    char *kind; /* STORE_DEF_* */
    char *name; /* the pattern's name, or the setting's key ("confidence.threshold") */
    char *text; /* a patterns file holding the one definition, or the setting's value */
    double time; /* wall-clock seconds of the change */
    long uid;    /* who made it */
} store_def;

/* Every row, settings and patterns each in the order they were changed.
 * NDF_OK with *out (free with store_defs_free()), or the store's error. */
int store_defs(store *s, store_def **out, size_t *n);
/* Writes row `d` in place of any of the same kind and name, in its own
 * transaction; `remove`: deletes it instead (NDF_ERR_NOT_FOUND when there
 * is none).  NDF_OK or the store's error. */
int store_def_put(store *s, const store_def *d, int remove);
void store_defs_free(store_def *d, size_t n);
/* The count of changes made to the rows since the store was created
 * (store_def_put moves it in the same transaction): one read of one row,
 * so that a process holding a registry built from the rows can tell
 * cheaply that another process changed them.  NDF_OK with *out, or the
 * store's error. */
int store_defs_version(store *s, uint64_t *out);

#endif
