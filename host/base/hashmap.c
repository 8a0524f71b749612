/* The host's one hash map (see hashmap.h): open addressing, linear probing,
 * removal by backward shift so no tombstones ever slow the probes down. */
#include "build-config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/util.h"

#define MIN_CAP 16

typedef struct slot {
    char *key; /* NULL: empty */
    uint64_t hash;
    void *val;
} slot;

struct hashmap {
    slot *slots;
    size_t cap;     /* a power of two, or 0 before the first insertion */
    unsigned shift; /* 64 - log2(cap): the home slot is the hash's top bits */
    size_t count;
};

/* FNV-1a: short keys (names, domains, tokens) hash fast; the multiply in
 * home() spreads its weak low bits over the index. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t home(const hashmap *m, uint64_t h)
{
    return (size_t)((h * 0x9E3779B97F4A7C15ULL) >> m->shift);
}

static int key_eq(const slot *e, uint64_t h, const char *key, size_t len)
{
    return e->hash == h && strncmp(e->key, key, len) == 0 && e->key[len] == '\0';
}

/* The slot holding `key`, or the empty slot where it would go.  The map has
 * at least one empty slot (the load factor stays below 1). */
static size_t find(const hashmap *m, uint64_t h, const char *key, size_t len)
{
    size_t mask = m->cap - 1;
    size_t i = home(m, h);
    while (m->slots[i].key && !key_eq(&m->slots[i], h, key, len))
        i = (i + 1) & mask;
    return i;
}

static void resize(hashmap *m, size_t cap)
{
    slot *old = m->slots;
    size_t oldcap = m->cap;
    unsigned bits = 0;
    while (((size_t)1 << bits) < cap)
        bits++;
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->cap = cap;
    m->shift = 64 - bits;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].key)
            continue;
        size_t j = home(m, old[i].hash);
        while (m->slots[j].key)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

hashmap *hashmap_new(void)
{
    return xcalloc(1, sizeof(hashmap));
}

void hashmap_clear(hashmap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        if (free_val)
            free_val(m->slots[i].val);
        free(m->slots[i].key);
        m->slots[i].key = NULL;
    }
    m->count = 0;
}

void hashmap_free(hashmap *m, void (*free_val)(void *))
{
    if (!m)
        return;
    hashmap_clear(m, free_val);
    free(m->slots);
    free(m);
}

void *hashmap_getn(const hashmap *m, const char *key, size_t len)
{
    if (!m->count)
        return NULL;
    size_t i = find(m, hash_bytes(key, len), key, len);
    return m->slots[i].key ? m->slots[i].val : NULL;
}

void *hashmap_get(const hashmap *m, const char *key)
{
    return hashmap_getn(m, key, strlen(key));
}

const char *hashmap_key(const hashmap *m, const char *key)
{
    if (!m->count)
        return NULL;
    size_t len = strlen(key);
    return m->slots[find(m, hash_bytes(key, len), key, len)].key;
}

void *hashmap_putn(hashmap *m, const char *key, size_t len, void *val)
{
    /* At most 3/4 full: linear probing stays short and `find` always
     * meets an empty slot. */
    if ((m->count + 1) * 4 > m->cap * 3)
        resize(m, m->cap ? m->cap * 2 : MIN_CAP);
    uint64_t h = hash_bytes(key, len);
    slot *e = &m->slots[find(m, h, key, len)];
    if (e->key) {
        void *old = e->val;
        e->val = val;
        return old;
    }
    e->key = xstrndup(key, len);
    e->hash = h;
    e->val = val;
    m->count++;
    return NULL;
}

void *hashmap_put(hashmap *m, const char *key, void *val)
{
    return hashmap_putn(m, key, strlen(key), val);
}

void *hashmap_removen(hashmap *m, const char *key, size_t len)
{
    if (!m->count)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, hash_bytes(key, len), key, len);
    if (!m->slots[i].key)
        return NULL;
    void *val = m->slots[i].val;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward shift: pull later members of the probe run into the hole
     * when the hole lies between their home and where they sit, so every
     * key stays reachable from its home without a tombstone. */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t k = home(m, m->slots[j].hash);
        int movable = i <= j ? (k <= i || k > j) : (k <= i && k > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            i = j;
        }
    }
    return val;
}

void *hashmap_remove(hashmap *m, const char *key)
{
    return hashmap_removen(m, key, strlen(key));
}

size_t hashmap_count(const hashmap *m)
{
    return m->count;
}

int hashmap_next(const hashmap *m, size_t *pos, const char **key, void **val)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        if (key)
            *key = m->slots[i].key;
        if (val)
            *val = m->slots[i].val;
        *pos = i + 1;
        return 1;
    }
    *pos = m->cap;
    return 0;
}
