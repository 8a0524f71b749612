/* Check suite for host/base/ztail.c: what finishing yields is exactly the
 * newest `limit` bytes fed plus the caller's raw tail, as one zlib stream
 * that uncompress() reads, for limits inside a segment, on a segment's
 * edge and across many, fed in pieces of every size; kept and dropped add
 * up to what was fed. */
#include "build-config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "base/util.h"
#include "base/ztail.h"

/* Text-like bytes, compressible but not constant, from a seed. */
static unsigned char *stream_bytes(size_t n, unsigned seed)
{
    unsigned char *b = xmalloc(n ? n : 1);
    uint64_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (x % 5 == 0) ? (unsigned char)(x >> 40) : (unsigned char)("ndf output\n"[i % 11]);
    }
    return b;
}

/* Feeds `n` bytes in pieces of 1..maxpiece, finishes with a tail of `tn`
 * and checks the stream against the model. */
static void run_case(size_t limit, size_t n, size_t maxpiece, size_t tn, unsigned seed)
{
    unsigned char *in = stream_bytes(n, seed);
    unsigned char *tail = stream_bytes(tn, seed + 1);
    ztail *z = ztail_new(limit);
    uint64_t x = seed + 7;
    for (size_t off = 0; off < n;) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        size_t piece = 1 + (size_t)(x >> 33) % maxpiece;
        if (piece > n - off)
            piece = n - off;
        ztail_add(z, (const char *)in + off, piece);
        off += piece;
    }
    size_t want = n < limit ? n : limit;
    ck_assert_uint_eq(ztail_kept(z), want);
    ck_assert_uint_eq(ztail_dropped(z), n - want);
    unsigned char *zb;
    size_t zn;
    ck_assert_int_eq(ztail_finish(z, (const char *)tail, tn, 6, &zb, &zn), 0);
    uLongf got = (uLongf)(want + tn + 1);
    /* room for the second finish below too: want + 4 can exceed want + tn
     * (nothing fed, no tail), and zlib writes past a short buffer unchecked */
    unsigned char *out = xmalloc(want + tn + 4 + 1);
    ck_assert_int_eq(uncompress(out, &got, zb, (uLong)zn), Z_OK);
    ck_assert_uint_eq(got, want + tn);
    ck_assert(memcmp(out, in + (n - want), want) == 0);
    ck_assert(memcmp(out + want, tail, tn) == 0);
    /* finishing closed the open segment: more can be fed, and finished again */
    ztail_add(z, "more", 4);
    free(zb);
    ck_assert_int_eq(ztail_finish(z, NULL, 0, 1, &zb, &zn), 0);
    size_t want2 = want + 4 < limit ? want + 4 : limit;
    got = (uLongf)want2 + 1;
    ck_assert_int_eq(uncompress(out, &got, zb, (uLong)zn), Z_OK);
    ck_assert_uint_eq(got, want2);
    ck_assert(memcmp(out + want2 - 4, "more", 4) == 0);
    free(zb);
    free(out);
    ztail_free(z);
    free(in);
    free(tail);
}

/* Sealing mid-segment (the compressor freed, a new one for what follows)
 * and growing the limit keep the stream exact: the model is the newest
 * `limit` bytes of everything fed, whatever the limit was before. */
START_TEST(test_seal_and_grow)
{
    size_t n = 3 * ZTAIL_SEGMENT + 1234;
    unsigned char *in = stream_bytes(n, 42);
    ztail *z = ztail_new(ZTAIL_SEGMENT / 2);
    size_t cuts[] = {1000, ZTAIL_SEGMENT / 3, ZTAIL_SEGMENT + 5, 2 * ZTAIL_SEGMENT, n};
    size_t off = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        ztail_add(z, (const char *)in + off, cuts[i] - off);
        off = cuts[i];
        ztail_seal(z);
        ztail_seal(z); /* twice: nothing open, nothing to free */
        if (i == 1)
            ztail_grow(z, 2 * ZTAIL_SEGMENT); /* from here on, twice the segment */
        if (i == 2)
            ztail_grow(z, 10); /* smaller: ignored */
    }
    size_t want = 2 * ZTAIL_SEGMENT;
    ck_assert_uint_eq(ztail_kept(z), want);
    ck_assert_uint_eq(ztail_dropped(z), n - want);
    unsigned char *zb;
    size_t zn;
    ck_assert_int_eq(ztail_finish(z, "tail", 4, 6, &zb, &zn), 0);
    uLongf got = (uLongf)(want + 5);
    unsigned char *out = xmalloc(got);
    ck_assert_int_eq(uncompress(out, &got, zb, (uLong)zn), Z_OK);
    ck_assert_uint_eq(got, want + 4);
    ck_assert(memcmp(out, in + (n - want), want) == 0);
    ck_assert(memcmp(out + want, "tail", 4) == 0);
    free(zb);
    free(out);
    ztail_free(z);
    free(in);
}
END_TEST

START_TEST(test_nothing_fed)
{
    run_case(1000, 0, 1, 0, 1);
    run_case(1000, 0, 1, 500, 2);
}
END_TEST

START_TEST(test_within_limit)
{
    run_case(1u << 20, 1000, 100, 10, 3);
    run_case(3 * ZTAIL_SEGMENT, 3 * ZTAIL_SEGMENT, 70000, 0, 4); /* exactly the limit */
}
END_TEST

START_TEST(test_limit_inside_one_segment)
{
    /* the kept bytes start inside the segment still open */
    run_case(10, 5 * ZTAIL_SEGMENT + 17, 90000, 100, 5);
    run_case(ZTAIL_SEGMENT + 10, 4 * ZTAIL_SEGMENT + 3, 1, 0, 6);
}
END_TEST

START_TEST(test_segment_edges)
{
    run_case(ZTAIL_SEGMENT, 2 * ZTAIL_SEGMENT, ZTAIL_SEGMENT, 1, 7);
    run_case(ZTAIL_SEGMENT, 2 * ZTAIL_SEGMENT + 1, ZTAIL_SEGMENT, 1, 8);
    run_case(2 * ZTAIL_SEGMENT - 1, 6 * ZTAIL_SEGMENT, 3 * ZTAIL_SEGMENT, 7, 9);
}
END_TEST

START_TEST(test_many_segments)
{
    run_case(5u << 20, 12u << 20, 200000, 1u << 20, 10);
}
END_TEST

/* Random bytes: what deflate cannot shrink, the costly case for memory. */
static unsigned char *random_bytes(size_t n, unsigned seed)
{
    unsigned char *b = xmalloc(n ? n : 1);
    uint64_t x = seed * 0x9E3779B97F4A7C15u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (unsigned char)(x >> 24);
    }
    return b;
}

/* The whole stream of reader `r`, read in pieces of `piece` bytes. */
static unsigned char *read_whole(const ztail_reader *r, size_t piece, size_t *n)
{
    *n = (size_t)ztail_reader_size(r);
    unsigned char *b = xmalloc(*n + 1);
    for (size_t off = 0; off < *n;) {
        long got = ztail_reader_read(r, off, b + off, piece);
        ck_assert_int_gt(got, 0);
        off += (size_t)got;
    }
    ck_assert_int_eq(ztail_reader_read(r, *n, b, 1), 0);
    return b;
}

static void check_stream(const unsigned char *zb, size_t zn, const unsigned char *want, size_t n)
{
    uLongf got = (uLongf)n + 1;
    unsigned char *out = xmalloc(n + 1);
    ck_assert_int_eq(uncompress(out, &got, zb, (uLong)zn), Z_OK);
    ck_assert_uint_eq(got, n);
    ck_assert(memcmp(out, want, n) == 0);
    free(out);
}

/* Incompressible output far past the limit: the closed segments live in
 * the spill file, not in memory; the file stays within about twice what
 * is kept (compacted as the dropped part grows); a reader opened on it
 * yields the newest bytes even when read after the tail was fed on,
 * compacted into a new file and freed. */
START_TEST(test_spill_bounded)
{
    ztail_spill_dir(NULL);
    size_t limit = 3 * ZTAIL_SEGMENT + 5, n = 40 * ZTAIL_SEGMENT + 77;
    unsigned char *in = random_bytes(n, 21);
    ztail *z = ztail_new(limit);
    uint64_t worst = 0;
    for (size_t off = 0; off < n; off += 65536) {
        ztail_add(z, (const char *)in + off, n - off < 65536 ? n - off : 65536);
        ck_assert_uint_eq(ztail_mem_bytes(z), 0);
        if (ztail_file_bytes(z) > worst)
            worst = ztail_file_bytes(z);
    }
    ck_assert_uint_gt(worst, 0);
    /* kept compressed: the limit and a segment (random bytes grow a little) */
    ck_assert_uint_le(worst, 2 * (limit + 2 * ZTAIL_SEGMENT) + ZTAIL_SEGMENT);
    ztail_reader *r;
    ck_assert_int_eq(ztail_reader_open(z, "tail!", 5, 6, &r), 0);
    ck_assert_uint_eq(ztail_reader_raw(r), limit + 5);
    unsigned char *want = xmalloc(limit + 5);
    memcpy(want, in + n - limit, limit);
    memcpy(want + limit, "tail!", 5);
    /* fed on past another compaction, then freed: the reader is unmoved */
    unsigned char *more = random_bytes(20 * ZTAIL_SEGMENT, 22);
    ztail_add(z, (const char *)more, 20 * ZTAIL_SEGMENT);
    ztail_free(z);
    size_t zn;
    unsigned char *zb = read_whole(r, 1000, &zn);
    check_stream(zb, zn, want, limit + 5);
    free(zb);
    zb = read_whole(r, 1u << 20, &zn); /* read again: a replayed transaction does */
    check_stream(zb, zn, want, limit + 5);
    free(zb);
    ztail_reader_free(r);
    free(more);
    free(want);
    free(in);
}
END_TEST

/* A spill directory that cannot take files falls back to $TMPDIR, and
 * when that cannot either, to memory: slower to the limit, never wrong. */
START_TEST(test_spill_unwritable)
{
    char *save = getenv("TMPDIR") ? xstrdup(getenv("TMPDIR")) : NULL;
    ztail_spill_dir("/nonexistent/ndf-spill");
    setenv("TMPDIR", "/nonexistent/ndf-tmp", 1);
    size_t limit = 2 * ZTAIL_SEGMENT, n = 9 * ZTAIL_SEGMENT + 3;
    unsigned char *in = random_bytes(n, 23);
    ztail *z = ztail_new(limit);
    ztail_add(z, (const char *)in, n);
    ck_assert_uint_gt(ztail_mem_bytes(z), 0);
    ck_assert_uint_eq(ztail_file_bytes(z), 0);
    unsigned char *zb;
    size_t zn;
    ck_assert_int_eq(ztail_finish(z, NULL, 0, 6, &zb, &zn), 0);
    check_stream(zb, zn, in + n - limit, limit);
    free(zb);
    ztail_free(z);
    /* the configured directory gone, $TMPDIR still works */
    if (save)
        setenv("TMPDIR", save, 1);
    else
        unsetenv("TMPDIR");
    z = ztail_new(limit);
    ztail_add(z, (const char *)in, n);
    ck_assert_uint_eq(ztail_mem_bytes(z), 0);
    ck_assert_uint_gt(ztail_file_bytes(z), 0);
    ck_assert_int_eq(ztail_finish(z, NULL, 0, 6, &zb, &zn), 0);
    check_stream(zb, zn, in + n - limit, limit);
    free(zb);
    ztail_free(z);
    ztail_spill_dir(NULL);
    free(save);
    free(in);
}
END_TEST

START_TEST(test_free_null)
{
    ztail_free(NULL);
    ztail_reader_free(NULL);
}
END_TEST

static Suite *ztail_suite(void)
{
    Suite *s = suite_create("ztail");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nothing_fed);
    tcase_add_test(tc, test_within_limit);
    tcase_add_test(tc, test_limit_inside_one_segment);
    tcase_add_test(tc, test_segment_edges);
    tcase_add_test(tc, test_many_segments);
    tcase_add_test(tc, test_spill_bounded);
    tcase_add_test(tc, test_spill_unwritable);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_seal_and_grow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ztail_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
