/* Check suite for host/base/ztail.c: what finishing yields is exactly the
 * newest `limit` bytes fed plus the caller's raw tail, as one zlib stream
 * that uncompress() reads, for limits inside a segment, on a segment's
 * edge and across many, fed in pieces of every size; kept and dropped add
 * up to what was fed. */
#include "build-config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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
    unsigned char *out = xmalloc(got);
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

START_TEST(test_free_null)
{
    ztail_free(NULL);
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
    tcase_add_test(tc, test_free_null);
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
