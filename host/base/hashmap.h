/* The host's one hash map: string keys (copied) to pointer values, open
 * addressing with linear probing, constant-time lookups on average.
 *
 * Not thread-safe: the module that owns a map holds the lock around it.
 * Keys are arbitrary bytes up to their length; the *n forms take a key that
 * is not NUL-terminated (a token inside a longer string). */
#ifndef NDF_HASHMAP_H
#define NDF_HASHMAP_H

#include <stddef.h>

typedef struct hashmap hashmap;

/* Returns a new empty map; never NULL (out of memory aborts, as x*alloc). */
hashmap *hashmap_new(void);
/* Frees the map and its key copies; calls `free_val` (may be NULL) on every
 * value first.  NULL is a no-op. */
void hashmap_free(hashmap *m, void (*free_val)(void *));
/* Removes every entry, calling `free_val` (may be NULL) on each value; the
 * map stays usable. */
void hashmap_clear(hashmap *m, void (*free_val)(void *));

/* The value under `key`, or NULL when absent (a stored NULL value reads the
 * same as absent: use hashmap_key() to tell them apart). */
void *hashmap_get(const hashmap *m, const char *key);
void *hashmap_getn(const hashmap *m, const char *key, size_t len);
/* The map's own copy of `key`, or NULL when absent.  It stays valid, at the
 * same address, until the key is removed or the map is cleared or freed,
 * which makes the map usable as an interning set. */
const char *hashmap_key(const hashmap *m, const char *key);

/* Sets `key` to `val`, copying the key when it is new.  Returns the value
 * replaced (NULL when the key was new), which the caller frees if it owns
 * it. */
void *hashmap_put(hashmap *m, const char *key, void *val);
void *hashmap_putn(hashmap *m, const char *key, size_t len, void *val);

/* Removes `key` and returns its value (NULL when absent); the caller frees
 * the value if it owns it. */
void *hashmap_remove(hashmap *m, const char *key);
void *hashmap_removen(hashmap *m, const char *key, size_t len);

/* Number of entries. */
size_t hashmap_count(const hashmap *m);

/* Walks the entries in no particular order:
 *     size_t pos = 0; const char *k; void *v;
 *     while (hashmap_next(m, &pos, &k, &v)) ...
 * Returns 1 with *key and *val set (either may be NULL to skip it), 0 at the
 * end.  The map must not be changed during the walk. */
int hashmap_next(const hashmap *m, size_t *pos, const char **key, void **val);

#endif
