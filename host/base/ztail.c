/* The older part of a bounded output tail, kept compressed (see ztail.h).
 *
 * Segments are cut from one raw deflate stream by Z_FULL_FLUSH, which
 * aligns the output to a byte and forgets the history, so any run of
 * whole segments is a valid deflate body on its own: dropping the oldest
 * costs nothing, and reading is a concatenation, with only the first kept
 * segment (which starts inside) inflated and deflated again.  Their
 * checksums are joined with adler32_combine(), so the kept bytes are
 * never read back to checksum them.
 *
 * A closed segment is appended to the tail's spill file and its memory
 * freed.  Data once written to a file is never overwritten: when the
 * dropped part of the file outgrows the kept part, the kept segments are
 * copied into a new file and the old one is let go when the last reader
 * of it is done.  So a reader needs no lock, only a reference to the
 * files its segments are in, and the disk a tail takes stays within about
 * twice its kept compressed bytes (plus a segment), with each byte copied
 * about once. */
#define _GNU_SOURCE /* O_TMPFILE, mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "base/util.h"
#include "base/ztail.h"

/* An unlinked temporary file, shared by a tail and its readers. */
typedef struct spill {
    _Atomic int refs;
    int fd;
} spill;

typedef struct seg {
    unsigned char *z; /* raw deflate data, ending at a full flush once closed;
                         NULL once written to `f` */
    size_t zlen, zcap;
    spill *f;      /* the file it is in (the tail's current one), or NULL */
    uint64_t off;  /* where in f */
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
    spill *f;       /* the spill file new segments go to; NULL: none yet */
    uint64_t fend;  /* bytes written to f */
    uint64_t flive; /* of which kept segments' */
    int nofile;     /* a spill file could not be made or written: keep in memory */
    int dir_full;   /* the spill directory could not take a write: $TMPDIR only */
};

/* Bytes deflate writes per segment while the step runs: speed matters more
 * than size there (the stored stream keeps this level for all but its
 * first segment and the newest bytes). */
#define STREAM_LEVEL Z_BEST_SPEED

static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static char *spill_dir_path;

void ztail_spill_dir(const char *dir)
{
    char *d = dir ? xstrdup(dir) : NULL;
    pthread_mutex_lock(&dir_lock);
    free(spill_dir_path);
    spill_dir_path = d;
    pthread_mutex_unlock(&dir_lock);
}

/* A new unlinked file in `dir`, or -1 (errno set). */
static int tmpfile_in(const char *dir)
{
    int fd = -1;
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (fd < 0) {
        /* no O_TMPFILE on this file system: a named file, unlinked at once */
        char *path = xasprintf("%s/.ndf-output-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
        free(path);
    }
    return fd;
}

/* A new unlinked file in the spill directory (unless `tmp_only`: it
 * could not take a write), else in $TMPDIR or /tmp (a storage directory
 * not made yet, or full), or NULL (errno set). */
static spill *spill_new(int tmp_only)
{
    char *dir = NULL;
    if (!tmp_only) {
        pthread_mutex_lock(&dir_lock);
        dir = spill_dir_path ? xstrdup(spill_dir_path) : NULL;
        pthread_mutex_unlock(&dir_lock);
    }
    int fd = dir ? tmpfile_in(dir) : -1;
    free(dir);
    if (fd < 0) {
        const char *t = getenv("TMPDIR");
        fd = tmpfile_in(t && *t == '/' ? t : "/tmp");
    }
    if (fd < 0)
        return NULL;
    spill *f = xcalloc(1, sizeof *f);
    atomic_init(&f->refs, 1);
    f->fd = fd;
    return f;
}

static spill *spill_ref(spill *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

static void spill_unref(spill *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        close(f->fd);
        free(f);
    }
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t w = pwrite(fd, b, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        b += w, n -= (size_t)w, off += (uint64_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n, uint64_t off)
{
    unsigned char *b = p;
    while (n) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO; /* shorter than written: the file was tampered with */
            return -1;
        }
        b += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

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
    spill_unref(z->f);
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

static int move_to(ztail *z, spill *nf);

/* Writes closed segment `s` to the spill file and frees its memory.  When
 * the file cannot take it (its directory is full), the kept segments move
 * to a new file in $TMPDIR and the write is tried there; when that fails
 * too it stays in memory, and so do all later ones (a full disk everywhere
 * costs memory up to the limit, as before there were files, not output). */
static void spill_seg(ztail *z, seg *s)
{
    if (z->nofile || !s->zlen)
        return;
    if (!z->f && !(z->f = spill_new(z->dir_full))) {
        z->nofile = 1;
        return;
    }
    if (write_all(z->f->fd, s->z, s->zlen, z->fend) != 0) {
        spill *nf = z->dir_full ? NULL : spill_new(1);
        z->dir_full = 1;
        if (!nf || move_to(z, nf) != 0 ||
            write_all(z->f->fd, s->z, s->zlen, z->fend) != 0) {
            z->nofile = 1;
            return;
        }
    }
    s->f = z->f;
    s->off = z->fend;
    z->fend += s->zlen;
    z->flive += s->zlen;
    free(s->z);
    s->z = NULL;
    s->zcap = 0;
}

static void close_seg(ztail *z)
{
    seg *s = &z->segs[z->nsegs - 1];
    pump(&z->zs, s, Z_FULL_FLUSH);
    z->open = 0;
    spill_seg(z, s);
}

/* Copies the kept segments of the spill file into a new one once the
 * dropped part outgrows them; a failure keeps the old file (tried again
 * as it grows). */
static void compact(ztail *z)
{
    if (!z->f || z->fend - z->flive <= z->flive + ZTAIL_SEGMENT)
        return;
    spill *nf = spill_new(z->dir_full);
    if (nf && move_to(z, nf) != 0)
        z->dir_full = 1; /* tried again as it grows, in $TMPDIR */
}

/* Copies the kept segments of the current spill file into `nf` (taken
 * over) and makes it the current one; 0, or -1 with the old file kept and
 * `nf` let go. */
static int move_to(ztail *z, spill *nf)
{
    enum { CHUNK = 64 * 1024 };
    unsigned char *buf = xmalloc(CHUNK);
    uint64_t at = 0;
    int ok = 1;
    for (size_t i = 0; ok && i < z->nsegs; i++) {
        const seg *s = &z->segs[i];
        if (s->f != z->f)
            continue;
        for (size_t done = 0; ok && done < s->zlen;) {
            size_t n = s->zlen - done < CHUNK ? s->zlen - done : CHUNK;
            ok = read_all(z->f->fd, buf, n, s->off + done) == 0 &&
                 write_all(nf->fd, buf, n, at + done) == 0;
            done += n;
        }
        at += s->zlen;
    }
    free(buf);
    if (!ok) {
        spill_unref(nf);
        return -1;
    }
    at = 0;
    for (size_t i = 0; i < z->nsegs; i++) {
        seg *s = &z->segs[i];
        if (s->f != z->f)
            continue;
        s->f = nf;
        s->off = at;
        at += s->zlen;
    }
    spill_unref(z->f);
    z->f = nf;
    z->fend = z->flive = at;
    return 0;
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
        seg *s = &z->segs[gone];
        z->skip -= s->raw;
        z->raw -= s->raw;
        if (s->f)
            z->flive -= s->zlen;
        free(s->z);
        gone++;
    }
    if (gone) {
        memmove(z->segs, z->segs + gone, (z->nsegs - gone) * sizeof *z->segs);
        z->nsegs -= gone;
        compact(z);
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

void ztail_grow(ztail *z, size_t limit)
{
    if (limit > z->limit)
        z->limit = limit;
}

void ztail_seal(ztail *z)
{
    if (z->open) {
        if (z->segs[z->nsegs - 1].raw)
            close_seg(z);
        else
            free(z->segs[--z->nsegs].z), z->open = 0;
    }
    /* each segment ends at a full flush, so the next one may come from a
     * new compressor: readers join raw deflate data, not streams */
    if (z->zs_ready) {
        deflateEnd(&z->zs);
        z->zs_ready = 0;
    }
    trim(z);
}

size_t ztail_kept(const ztail *z)
{
    return z->raw - z->skip;
}

uint64_t ztail_dropped(const ztail *z)
{
    return z->dropped;
}

size_t ztail_mem_bytes(const ztail *z)
{
    size_t n = 0;
    for (size_t i = 0; i < z->nsegs; i++)
        if (!z->segs[i].f && !(z->open && i + 1 == z->nsegs))
            n += z->segs[i].zlen;
    return n;
}

uint64_t ztail_file_bytes(const ztail *z)
{
    return z->f ? z->fend : 0;
}

/* ---- readers ---- */

/* One run of the stream: bytes in memory (owned) or in a spill file. */
typedef struct piece {
    unsigned char *mem;
    spill *f;
    uint64_t off;
    size_t len;
} piece;

struct ztail_reader {
    piece *p;
    size_t np, cap;
    uint64_t size, raw;
};

static void add_piece(ztail_reader *r, piece pc)
{
    if (!pc.len) {
        free(pc.mem);
        return;
    }
    if (r->np == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->p = xrealloc(r->p, r->cap * sizeof *r->p);
    }
    r->p[r->np++] = pc;
    r->size += pc.len;
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
    unsigned char *in = s->z;
    if (s->f) {
        in = xmalloc(s->zlen ? s->zlen : 1);
        if (read_all(s->f->fd, in, s->zlen, s->off) != 0) {
            free(in);
            return -1;
        }
    }
    unsigned char *b = xmalloc(s->raw ? s->raw : 1);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int rc = Z_MEM_ERROR;
    size_t got = 0;
    if (inflateInit2(&zs, -15) == Z_OK) {
        zs.next_in = in;
        zs.avail_in = (uInt)s->zlen;
        zs.next_out = b;
        zs.avail_out = (uInt)s->raw;
        rc = inflate(&zs, Z_SYNC_FLUSH);
        got = s->raw - zs.avail_out;
        inflateEnd(&zs);
    }
    if (in != s->z)
        free(in);
    if ((rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) || got != s->raw) {
        free(b);
        return -1;
    }
    memmove(b, b + z->skip, s->raw - z->skip);
    *out = b;
    *n = s->raw - z->skip;
    return 0;
}

int ztail_reader_open(ztail *z, const char *tail, size_t taillen, int level, ztail_reader **out)
{
    *out = NULL;
    if (z->open) {
        if (z->segs[z->nsegs - 1].raw)
            close_seg(z);
        else
            free(z->segs[--z->nsegs].z), z->open = 0;
    }
    ztail_reader *r = xcalloc(1, sizeof *r);
    seg head = {0};
    static const unsigned char hdr[2] = {0x78, 0x9c};
    head.z = xmalloc(sizeof hdr);
    head.zcap = head.zlen = sizeof hdr;
    memcpy(head.z, hdr, sizeof hdr);
    uLong adler = adler32(0, Z_NULL, 0);
    for (size_t i = 0; i < z->nsegs; i++) {
        const seg *s = &z->segs[i];
        if (i == 0 && z->skip) {
            unsigned char *b;
            size_t n;
            if (inflate_first(z, &b, &n) != 0)
                goto fail;
            int rc = deflate_onto(&head, b, n, level, 0);
            if (rc == 0)
                adler = adler32_z(adler, b, n);
            free(b);
            if (rc != 0)
                goto fail;
        } else {
            if (i == 0 || (i == 1 && z->skip)) {
                add_piece(r, (piece){.mem = head.z, .len = head.zlen});
                head.z = NULL;
            }
            if (s->f) {
                add_piece(r, (piece){.f = spill_ref(s->f), .off = s->off, .len = s->zlen});
            } else {
                unsigned char *c = xmalloc(s->zlen ? s->zlen : 1);
                memcpy(c, s->z, s->zlen);
                add_piece(r, (piece){.mem = c, .len = s->zlen});
            }
            adler = adler32_combine(adler, s->adler, (z_off_t)s->raw);
        }
    }
    /* the header (and the first segment) when no segment followed them */
    seg last = head.z ? head : (seg){0};
    head.z = NULL;
    if (deflate_onto(&last, (const unsigned char *)tail, taillen, level, 1) != 0) {
        free(last.z);
        goto fail;
    }
    if (taillen) /* adler32_z of a NULL buffer is the initial value, not a no-op */
        adler = adler32_z(adler, (const Bytef *)tail, taillen);
    unsigned char be[4] = {(unsigned char)(adler >> 24), (unsigned char)(adler >> 16),
                           (unsigned char)(adler >> 8), (unsigned char)adler};
    if (last.zcap - last.zlen < sizeof be)
        last.z = xrealloc(last.z, last.zcap = last.zlen + sizeof be);
    memcpy(last.z + last.zlen, be, sizeof be);
    last.zlen += sizeof be;
    add_piece(r, (piece){.mem = last.z, .len = last.zlen});
    r->raw = (uint64_t)ztail_kept(z) + taillen;
    *out = r;
    return 0;
fail:
    free(head.z);
    ztail_reader_free(r);
    return -1;
}

uint64_t ztail_reader_size(const ztail_reader *r)
{
    return r->size;
}

uint64_t ztail_reader_raw(const ztail_reader *r)
{
    return r->raw;
}

long ztail_reader_read(const ztail_reader *r, uint64_t off, void *buf, size_t n)
{
    if (n > (size_t)LONG_MAX)
        n = (size_t)LONG_MAX;
    unsigned char *b = buf;
    size_t done = 0;
    uint64_t at = 0;
    for (size_t i = 0; i < r->np && done < n; i++) {
        const piece *pc = &r->p[i];
        if (off >= at + pc->len) {
            at += pc->len;
            continue;
        }
        size_t from = (size_t)(off - at);
        size_t k = pc->len - from < n - done ? pc->len - from : n - done;
        if (pc->mem)
            memcpy(b + done, pc->mem + from, k);
        else if (read_all(pc->f->fd, b + done, k, pc->off + from) != 0)
            return -1;
        done += k;
        off += k;
        at += pc->len;
    }
    return (long)done;
}

void ztail_reader_free(ztail_reader *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->np; i++) {
        free(r->p[i].mem);
        spill_unref(r->p[i].f);
    }
    free(r->p);
    free(r);
}

int ztail_finish(ztail *z, const char *tail, size_t taillen, int level, unsigned char **out,
                 size_t *outlen)
{
    ztail_reader *r;
    if (ztail_reader_open(z, tail, taillen, level, &r) != 0)
        return -1;
    size_t n = (size_t)r->size;
    unsigned char *b = xmalloc(n ? n : 1);
    if (ztail_reader_read(r, 0, b, n) != (long)n) {
        free(b);
        ztail_reader_free(r);
        return -1;
    }
    ztail_reader_free(r);
    *out = b;
    *outlen = n;
    return 0;
}
