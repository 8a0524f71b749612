/* Check suite for host/base/hashmap.c: put/get/replace/remove, keys given by
 * length, interning through hashmap_key, walking, and a randomized run
 * against a plain array model that exercises growth and backward-shift
 * removal across the wrap-around of the slot array. */
#include "build-config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/util.h"

START_TEST(test_basic)
{
    hashmap *m = hashmap_new();
    int a = 1, b = 2, c = 3;
    ck_assert_uint_eq(hashmap_count(m), 0);
    ck_assert_ptr_null(hashmap_get(m, "x"));
    ck_assert_ptr_null(hashmap_remove(m, "x"));
    ck_assert_ptr_null(hashmap_put(m, "alpha", &a));
    ck_assert_ptr_null(hashmap_put(m, "beta", &b));
    ck_assert_ptr_eq(hashmap_get(m, "alpha"), &a);
    ck_assert_ptr_eq(hashmap_get(m, "beta"), &b);
    ck_assert_ptr_null(hashmap_get(m, "alph"));
    ck_assert_ptr_null(hashmap_get(m, "alphaa"));
    /* replacing hands back the old value and keeps the count */
    ck_assert_ptr_eq(hashmap_put(m, "alpha", &c), &a);
    ck_assert_ptr_eq(hashmap_get(m, "alpha"), &c);
    ck_assert_uint_eq(hashmap_count(m), 2);
    ck_assert_ptr_eq(hashmap_remove(m, "alpha"), &c);
    ck_assert_ptr_null(hashmap_get(m, "alpha"));
    ck_assert_uint_eq(hashmap_count(m), 1);
    /* the empty string is a key like any other */
    ck_assert_ptr_null(hashmap_put(m, "", &a));
    ck_assert_ptr_eq(hashmap_get(m, ""), &a);
    hashmap_free(m, NULL);
    hashmap_free(NULL, NULL);
}
END_TEST

START_TEST(test_by_length)
{
    hashmap *m = hashmap_new();
    int a = 1;
    const char *text = "web.frontend";
    /* "web" as the first three bytes of a longer string */
    ck_assert_ptr_null(hashmap_putn(m, text, 3, &a));
    ck_assert_ptr_eq(hashmap_get(m, "web"), &a);
    ck_assert_ptr_eq(hashmap_getn(m, "webster", 3), &a);
    ck_assert_ptr_null(hashmap_getn(m, text, 4));
    ck_assert_ptr_null(hashmap_getn(m, text, 2));
    ck_assert_ptr_null(hashmap_get(m, text));
    ck_assert_ptr_eq(hashmap_removen(m, "web.x", 3), &a);
    ck_assert_uint_eq(hashmap_count(m), 0);
    hashmap_free(m, NULL);
}
END_TEST

START_TEST(test_key_interning)
{
    hashmap *m = hashmap_new();
    char buf[32];
    strcpy(buf, "conf/ndf.conf");
    ck_assert_ptr_null(hashmap_key(m, buf));
    hashmap_put(m, buf, NULL);
    const char *k = hashmap_key(m, buf);
    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_ne(k, buf); /* the map's own copy */
    ck_assert_str_eq(k, "conf/ndf.conf");
    /* a NULL value is present, though get() cannot tell */
    ck_assert_ptr_null(hashmap_get(m, buf));
    /* the copy stays at its address while the map grows around it */
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof buf, "file%d", i);
        hashmap_put(m, buf, NULL);
    }
    ck_assert_ptr_eq(hashmap_key(m, "conf/ndf.conf"), k);
    hashmap_free(m, NULL);
}
END_TEST

START_TEST(test_walk_and_free)
{
    hashmap *m = hashmap_new();
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        int *v = xmalloc(sizeof *v);
        *v = i;
        hashmap_put(m, key, v);
    }
    int seen[100] = {0};
    size_t pos = 0, n = 0;
    const char *k;
    void *v;
    while (hashmap_next(m, &pos, &k, &v)) {
        int i = *(int *)v;
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_str_eq(k, key);
        seen[i]++;
        n++;
    }
    ck_assert_uint_eq(n, 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert(!hashmap_next(m, &pos, NULL, NULL)); /* stays at the end */
    hashmap_clear(m, free);
    ck_assert_uint_eq(hashmap_count(m), 0);
    ck_assert_ptr_null(hashmap_get(m, "k1"));
    pos = 0;
    ck_assert(!hashmap_next(m, &pos, NULL, NULL));
    /* usable after clear; free() releases the values it still holds */
    hashmap_put(m, "again", xstrdup("v"));
    ck_assert_str_eq(hashmap_get(m, "again"), "v");
    hashmap_free(m, free);
}
END_TEST

/* Random operations over a small key space, checked after every step
 * against an array that maps key i to its value: many collisions, runs
 * that wrap around the end of the slot array, removals in their middle. */
START_TEST(test_random_against_model)
{
    enum { NKEYS = 600, STEPS = 60000 };
    static intptr_t model[NKEYS]; /* 0: absent, else the value */
    memset(model, 0, sizeof model);
    hashmap *m = hashmap_new();
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    size_t present = 0;
    char key[16];
    for (int step = 0; step < STEPS; step++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int i = (int)(rng % NKEYS);
        /* more removals than insertions in the second half, so the map
         * also drains */
        int put = (rng >> 20) % 100 < (step < STEPS / 2 ? 60 : 35);
        snprintf(key, sizeof key, "key-%d", i);
        if (put) {
            intptr_t val = step + 1;
            void *old = hashmap_put(m, key, (void *)val);
            ck_assert_ptr_eq(old, (void *)model[i]);
            present += model[i] == 0;
            model[i] = val;
        } else {
            void *old = hashmap_remove(m, key);
            ck_assert_ptr_eq(old, (void *)model[i]);
            present -= model[i] != 0;
            model[i] = 0;
        }
        ck_assert_uint_eq(hashmap_count(m), present);
        if (step % 997 == 0)
            for (int j = 0; j < NKEYS; j++) {
                snprintf(key, sizeof key, "key-%d", j);
                ck_assert_ptr_eq(hashmap_get(m, key), (void *)model[j]);
            }
    }
    for (int j = 0; j < NKEYS; j++) {
        snprintf(key, sizeof key, "key-%d", j);
        ck_assert_ptr_eq(hashmap_get(m, key), (void *)model[j]);
    }
    hashmap_free(m, NULL);
}
END_TEST

static Suite *hashmap_suite(void)
{
    Suite *s = suite_create("hashmap");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_basic);
    tcase_add_test(tc, test_by_length);
    tcase_add_test(tc, test_key_interning);
    tcase_add_test(tc, test_walk_and_free);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hashmap_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
