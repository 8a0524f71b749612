/* The older part of a bounded output tail, kept compressed while the step
 * runs: bytes fed in oldest first are deflated into independent segments,
 * whole segments are dropped from the front to stay within a limit, and
 * ztail_finish() joins what is kept (plus the newest bytes, still raw at
 * the caller) into one zlib stream without ever holding the kept output
 * uncompressed.  zlib stays inside ztail.c.
 *
 * Not thread-safe: the owner (the live record) holds its lock around it. */
#ifndef NDF_ZTAIL_H
#define NDF_ZTAIL_H

#include <stddef.h>
#include <stdint.h>

/* Raw bytes per segment: what finishing may have to inflate and deflate
 * again (the first kept segment starts inside it), and how much more than
 * the limit is held compressed at worst. */
#define ZTAIL_SEGMENT (256u * 1024u)

typedef struct ztail ztail;

/* A new empty tail keeping at most `limit` raw bytes (> 0).  Never NULL
 * (out of memory aborts, as x*alloc). */
ztail *ztail_new(size_t limit);
/* Frees it; NULL is a no-op. */
void ztail_free(ztail *z);

/* Appends `len` bytes; the oldest bytes past the limit are dropped (in
 * whole segments, the rest counted by an offset into the first). */
void ztail_add(ztail *z, const char *buf, size_t len);

/* Raw bytes kept (at most the limit), and bytes dropped before them. */
size_t ztail_kept(const ztail *z);
uint64_t ztail_dropped(const ztail *z);

/* One zlib stream (RFC 1950, what uncompress() reads) of the kept bytes
 * followed by `tail` (`taillen` bytes, the caller's newest), into *out
 * (*outlen bytes; caller frees).  Ends the open segment, so later
 * additions start a new one.  Returns 0, or -1 when zlib fails (nothing
 * allocated). */
int ztail_finish(ztail *z, const char *tail, size_t taillen, int level, unsigned char **out,
                 size_t *outlen);

#endif
