/* The older part of a bounded output tail, kept compressed (see ztail.h).
 *
 * Segments are cut from one raw deflate stream by Z_FULL_FLUSH, which
 * aligns the output to a byte and forgets the history, so any run of
 * whole segments is a valid deflate body on its own: dropping the oldest
 * costs nothing, and finishing is a concatenation, with only the first
 * kept segment (which starts inside) inflated and deflated again.  Their
 * checksums are joined with adler32_combine(), so the kept bytes are
 * never read back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/util.h"
#include "base/ztail.h"

typedef struct seg {
    unsigned char *z; /* raw deflate data, ending at a full flush once closed */
    size_t zlen, zcap;
    size_t raw;    /* bytes it holds uncompressed */
    uLong adler;   /* adler32 of those bytes */
} seg;

struct ztail {
    size_t limit;
    z_stream zs;
    int zs_ready;
    int open; /* the last segment is still being written */
    seg *segs;
    size_t nsegs, cap;
    size_t raw;   /* raw bytes in all segments, skip included */
    size_t skip;  /* bytes of segs[0] dropped already */
    uint64_t dropped;
};

/* Bytes deflate writes per segment while the step runs: speed matters more
 * than size there (the stored stream keeps this level for all but its
 * first segment and the newest bytes). */
#define STREAM_LEVEL Z_BEST_SPEED

/* deflateInit2 with valid arguments fails only for memory: handled as
 * x*alloc handle it. */
static void ATTR_NORETURN zlib_nomem(void)
{
    fputs("ndf: out of memory (zlib)\n", stderr);
    abort();
}

ztail *ztail_new(size_t limit)
{
    ztail *z = xcalloc(1, sizeof *z);
    z->limit = limit ? limit : 1;
    return z;
}

void ztail_free(ztail *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->nsegs; i++)
        free(z->segs[i].z);
    free(z->segs);
    if (z->zs_ready)
        deflateEnd(&z->zs);
    free(z);
}

/* Runs deflate with `flush` until it needs more input (or, flushing, until
 * it has written everything), appending its output to `s`. */
static void pump(z_stream *zs, seg *s, int flush)
{
    for (;;) {
        if (s->zcap - s->zlen < 4096) {
            s->zcap = s->zcap ? s->zcap * 2 : 16384;
            s->z = xrealloc(s->z, s->zcap);
        }
        zs->next_out = s->z + s->zlen;
        zs->avail_out = (uInt)(s->zcap - s->zlen);
        int rc = deflate(zs, flush);
        s->zlen = s->zcap - zs->avail_out;
        /* Z_BUF_ERROR: no progress possible, i.e. nothing left to do */
        if (rc == Z_STREAM_END || rc == Z_BUF_ERROR)
            return;
        if (rc != Z_OK)
            abort(); /* a broken stream state: a bug, not input */
        if (zs->avail_out != 0 && zs->avail_in == 0)
            return;
    }
}

static void close_seg(ztail *z)
{
    pump(&z->zs, &z->segs[z->nsegs - 1], Z_FULL_FLUSH);
    z->open = 0;
}

/* Drops what is past the limit: an offset into the first segment, and the
 * first segment itself once the offset passes its end (a closed one). */
static void trim(ztail *z)
{
    if (z->raw - z->skip > z->limit) {
        size_t excess = z->raw - z->skip - z->limit;
        z->skip += excess;
        z->dropped += excess;
    }
    size_t gone = 0;
    while (gone < z->nsegs && (gone + 1 < z->nsegs || !z->open) &&
           z->skip >= z->segs[gone].raw) {
        z->skip -= z->segs[gone].raw;
        z->raw -= z->segs[gone].raw;
        free(z->segs[gone].z);
        gone++;
    }
    if (gone) {
        memmove(z->segs, z->segs + gone, (z->nsegs - gone) * sizeof *z->segs);
        z->nsegs -= gone;
    }
}

void ztail_add(ztail *z, const char *buf, size_t len)
{
    while (len) {
        if (!z->open) {
            if (!z->zs_ready) {
                if (deflateInit2(&z->zs, STREAM_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
                    Z_OK)
                    zlib_nomem();
                z->zs_ready = 1;
            }
            if (z->nsegs == z->cap) {
                z->cap = z->cap ? z->cap * 2 : 8;
                z->segs = xrealloc(z->segs, z->cap * sizeof *z->segs);
            }
            z->segs[z->nsegs++] = (seg){.adler = adler32(0, Z_NULL, 0)};
            z->open = 1;
        }
        seg *s = &z->segs[z->nsegs - 1];
        size_t n = ZTAIL_SEGMENT - s->raw < len ? ZTAIL_SEGMENT - s->raw : len;
        z->zs.next_in = (Bytef *)(uintptr_t)buf;
        z->zs.avail_in = (uInt)n;
        pump(&z->zs, s, Z_NO_FLUSH);
        s->adler = adler32_z(s->adler, (const Bytef *)buf, n);
        s->raw += n;
        z->raw += n;
        buf += n;
        len -= n;
        if (s->raw == ZTAIL_SEGMENT)
            close_seg(z);
        trim(z);
    }
}

size_t ztail_kept(const ztail *z)
{
    return z->raw - z->skip;
}

uint64_t ztail_dropped(const ztail *z)
{
    return z->dropped;
}

static void put(seg *o, const void *p, size_t n)
{
    if (o->zcap - o->zlen < n) {
        while (o->zcap - o->zlen < n)
            o->zcap = o->zcap ? o->zcap * 2 : 65536;
        o->z = xrealloc(o->z, o->zcap);
    }
    memcpy(o->z + o->zlen, p, n);
    o->zlen += n;
}

/* Deflates `n` bytes at `p` as a raw deflate body onto `o`, ending with a
 * full flush (more follows) or the final block. */
static int deflate_onto(seg *o, const unsigned char *p, size_t n, int level, int last)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    pump(&zs, o, last ? Z_FINISH : Z_FULL_FLUSH);
    deflateEnd(&zs);
    return 0;
}

/* The kept bytes of segs[0] (from skip on) inflated into *out. */
static int inflate_first(const ztail *z, unsigned char **out, size_t *n)
{
    const seg *s = &z->segs[0];
    unsigned char *b = xmalloc(s->raw ? s->raw : 1);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK) {
        free(b);
        return -1;
    }
    zs.next_in = s->z;
    zs.avail_in = (uInt)s->zlen;
    zs.next_out = b;
    zs.avail_out = (uInt)s->raw;
    int rc = inflate(&zs, Z_SYNC_FLUSH);
    size_t got = s->raw - zs.avail_out;
    inflateEnd(&zs);
    if ((rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) || got != s->raw) {
        free(b);
        return -1;
    }
    memmove(b, b + z->skip, s->raw - z->skip);
    *out = b;
    *n = s->raw - z->skip;
    return 0;
}

int ztail_finish(ztail *z, const char *tail, size_t taillen, int level, unsigned char **out,
                 size_t *outlen)
{
    if (z->open) {
        if (z->segs[z->nsegs - 1].raw)
            close_seg(z);
        else
            free(z->segs[--z->nsegs].z), z->open = 0;
    }
    seg o = {0};
    static const unsigned char hdr[2] = {0x78, 0x9c};
    put(&o, hdr, sizeof hdr);
    uLong adler = adler32(0, Z_NULL, 0);
    for (size_t i = 0; i < z->nsegs; i++) {
        const seg *s = &z->segs[i];
        if (i == 0 && z->skip) {
            unsigned char *b;
            size_t n;
            if (inflate_first(z, &b, &n) != 0 || deflate_onto(&o, b, n, level, 0) != 0) {
                free(o.z);
                return -1;
            }
            adler = adler32_z(adler, b, n);
            free(b);
        } else {
            put(&o, s->z, s->zlen);
            adler = adler32_combine(adler, s->adler, (z_off_t)s->raw);
        }
    }
    if (deflate_onto(&o, (const unsigned char *)tail, taillen, level, 1) != 0) {
        free(o.z);
        return -1;
    }
    if (taillen) /* adler32_z of a NULL buffer is the initial value, not a no-op */
        adler = adler32_z(adler, (const Bytef *)tail, taillen);
    unsigned char be[4] = {(unsigned char)(adler >> 24), (unsigned char)(adler >> 16),
                           (unsigned char)(adler >> 8), (unsigned char)adler};
    put(&o, be, sizeof be);
    *out = o.z;
    *outlen = o.zlen;
    return 0;
}
