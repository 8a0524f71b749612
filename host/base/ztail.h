/* The older part of a bounded output tail, kept compressed while the step
 * runs: bytes fed in oldest first are deflated into independent segments,
 * whole segments are dropped from the front to stay within a limit, and a
 * reader joins what is kept (plus the newest bytes, still raw at the
 * caller) into one zlib stream without ever holding the kept output, raw
 * or compressed.  Closed segments are written to an unlinked temporary
 * file (the spill directory), so memory stays a small constant per tail
 * whatever the limit; only when no such file can be written are they kept
 * in memory.  zlib stays inside ztail.c.
 *
 * Not thread-safe: the owner (the live record) holds its lock around
 * ztail_* calls.  A reader, once opened, is independent of its tail: it
 * may be read and freed without that lock while the tail is fed on. */
#ifndef NDF_ZTAIL_H
#define NDF_ZTAIL_H

#include <stddef.h>
#include <stdint.h>

/* Raw bytes per segment: what a reader may have to inflate and deflate
 * again (the first kept segment starts inside it), and how much more than
 * the limit is held compressed at worst. */
#define ZTAIL_SEGMENT (256u * 1024u)

typedef struct ztail ztail;
typedef struct ztail_reader ztail_reader;

/* Sets the directory new spill files are made in (copied; NULL: $TMPDIR,
 * else /tmp).  The files are unlinked at once (O_TMPFILE where the file
 * system has it), mode 0600, so nothing is left behind by a crash.
 * Thread-safe; tails that have a file keep it. */
void ztail_spill_dir(const char *dir);

/* A new empty tail keeping at most `limit` raw bytes (> 0).  Never NULL
 * (out of memory aborts, as x*alloc). */
ztail *ztail_new(size_t limit);
/* Frees it (readers opened on it stay valid); NULL is a no-op. */
void ztail_free(ztail *z);

/* Raises the limit to `limit` (a smaller one is ignored). */
void ztail_grow(ztail *z, size_t limit);
/* Ends the open segment and frees the compressor (about 256 KiB), for a
 * tail that is fed no more for now: what is kept stays, and a later
 * ztail_add starts a new segment with a new compressor. */
void ztail_seal(ztail *z);

/* Appends `len` bytes; the oldest bytes past the limit are dropped (in
 * whole segments, the rest counted by an offset into the first). */
void ztail_add(ztail *z, const char *buf, size_t len);

/* Raw bytes kept (at most the limit), and bytes dropped before them. */
size_t ztail_kept(const ztail *z);
uint64_t ztail_dropped(const ztail *z);
/* Compressed bytes of closed segments held in memory, not in a spill file
 * (0 unless no spill file could be written: what a test can look at). */
size_t ztail_mem_bytes(const ztail *z);
/* Bytes of its current spill file (kept segments and dropped ones not yet
 * compacted away): at most about twice the kept compressed bytes. */
uint64_t ztail_file_bytes(const ztail *z);

/* Opens a reader of one zlib stream (RFC 1950, what uncompress() reads)
 * of the bytes kept now followed by `tail` (`taillen` bytes, the
 * caller's newest, copied).  Ends the open segment, so later additions
 * start a new one.  Holds at most a segment and the deflated tail in
 * memory; the rest is read from the spill file when asked.  *out is the
 * reader (free with ztail_reader_free), or NULL with -1 when zlib fails. */
int ztail_reader_open(ztail *z, const char *tail, size_t taillen, int level,
                      ztail_reader **out);
/* Bytes of the zlib stream, and raw bytes it inflates to. */
uint64_t ztail_reader_size(const ztail_reader *r);
uint64_t ztail_reader_raw(const ztail_reader *r);
/* Copies up to `n` bytes of the stream from offset `off` into `buf`
 * (random access: a writer that starts over reads again from 0).
 * Returns the bytes copied (0 at the end), or -1 with errno when the
 * spill file cannot be read. */
long ztail_reader_read(const ztail_reader *r, uint64_t off, void *buf, size_t n);
/* Frees it; NULL is a no-op. */
void ztail_reader_free(ztail_reader *r);

/* The whole stream of ztail_reader_open() in one buffer, *out (*outlen
 * bytes; caller frees).  Returns 0, or -1 when zlib or the spill file
 * fails (nothing allocated).  For small tails and tests: it holds all of
 * the kept output compressed. */
int ztail_finish(ztail *z, const char *tail, size_t taillen, int level, unsigned char **out,
                 size_t *outlen);

#endif
