/* Check suite for host/base/rng.c: the xoshiro256** stream against values
 * computed independently, reproducibility, and the moments of the uniform,
 * normal, gamma and Beta variates (fixed seeds, so never flaky; the
 * tolerances are five standard errors). */
#include "build-config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

/* A passing ck_assert() sends the parent process a message (Check's mark
 * point): in a loop over a hundred thousand draws that is a write and a
 * context switch per draw, which made this suite outlast its timeout on a
 * busy machine.  Checks inside loops use this instead: silent until the
 * condition fails, then the same failure with the expression. */
#define ck_assert_quiet(expr) \
    do { \
        if (!(expr)) \
            ck_abort_msg("Assertion '%s' failed", #expr); \
    } while (0)

START_TEST(test_reference_stream)
{
    /* From a separate Python transcription of splitmix64 + xoshiro256**. */
    rng g;
    rng_seed(&g, 0);
    ck_assert_uint_eq(rng_next(&g), 0x99ec5f36cb75f2b4ull);
    ck_assert_uint_eq(rng_next(&g), 0xbf6e1f784956452aull);
    ck_assert_uint_eq(rng_next(&g), 0x1a5f849d4933e6e0ull);
    rng_seed(&g, 42);
    ck_assert_uint_eq(rng_next(&g), 0x15780b2e0c2ec716ull);
    ck_assert_uint_eq(rng_next(&g), 0x6104d9866d113a7eull);
    ck_assert_uint_eq(rng_next(&g), 0xae17533239e499a1ull);
}
END_TEST

START_TEST(test_reproducible_and_forkable)
{
    rng a, b, c;
    rng_seed(&a, 7);
    rng_seed(&b, 7);
    rng_seed(&c, 8);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        double x = rng_beta(&a, 2.5, 0.7);
        ck_assert_quiet(x == rng_beta(&b, 2.5, 0.7));
        differ += x != rng_beta(&c, 2.5, 0.7);
    }
    ck_assert_int_gt(differ, 990);
    /* A copy of the state (spare normal included) continues identically. */
    rng_normal(&a);
    rng d = a;
    for (int i = 0; i < 100; i++)
        ck_assert_quiet(rng_normal(&a) == rng_normal(&d));
    ck_assert_uint_ne(rng_seed_fresh(), rng_seed_fresh());
}
END_TEST

START_TEST(test_uniform_and_below)
{
    rng g;
    rng_seed(&g, 1);
    const int n = 200000;
    double sum = 0, lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&g);
        sum += u;
        lo = fmin(lo, u);
        hi = fmax(hi, u);
    }
    ck_assert(lo > 0 && hi < 1);
    ck_assert_double_eq_tol(sum / n, 0.5, 5 * sqrt(1.0 / 12 / n));
    size_t counts[3] = {0, 0, 0};
    for (int i = 0; i < 30000; i++) {
        uint64_t k = rng_below(&g, 3);
        ck_assert_quiet(k < 3);
        counts[k]++;
    }
    for (int k = 0; k < 3; k++)
        ck_assert_double_eq_tol((double)counts[k], 10000, 5 * sqrt(30000 * (1.0 / 3) * (2.0 / 3)));
    ck_assert_uint_eq(rng_below(&g, 1), 0);
    /* A bound just above 2^63: the rejection zone is almost half. */
    uint64_t big = (1ull << 63) + 1;
    for (int i = 0; i < 1000; i++)
        ck_assert_quiet(rng_below(&g, big) < big);
}
END_TEST

/* Sample mean and variance of `n` draws of `draw`. */
typedef double (*drawfn)(rng *g, double a, double b);

static void moments(drawfn f, double a, double b, int n, double *mean, double *var)
{
    rng g;
    rng_seed(&g, 12345);
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double x = f(&g, a, b);
        if (!isfinite(x))
            ck_abort_msg("draw %d is not finite", i);
        s += x;
        s2 += x * x;
    }
    *mean = s / n;
    *var = s2 / n - *mean * *mean;
}

static double draw_normal(rng *g, double a, double b)
{
    return rng_normal(g);
}

static double draw_gamma(rng *g, double a, double b)
{
    return rng_gamma(g, a);
}

static double draw_beta(rng *g, double a, double b)
{
    double x = rng_beta(g, a, b);
    ck_assert_quiet(x >= 0 && x <= 1);
    return x;
}

START_TEST(test_normal_moments)
{
    double m, v;
    const int n = 200000;
    moments(draw_normal, 0, 0, n, &m, &v);
    ck_assert_double_eq_tol(m, 0, 5 / sqrt(n));
    ck_assert_double_eq_tol(v, 1, 5 * sqrt(2.0 / n));
}
END_TEST

START_TEST(test_gamma_moments)
{
    const double shapes[] = {0.3, 1, 2.5, 100};
    const int n = 100000;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        double k = shapes[i], m, v;
        moments(draw_gamma, k, 0, n, &m, &v);
        /* Gamma(k): mean k, variance k; the variance's estimator has
         * variance (mu4 - k^2)/n with mu4 = 3k^2 + 6k. */
        ck_assert_msg(fabs(m - k) < 5 * sqrt(k / n), "shape %g: mean %g", k, m);
        ck_assert_msg(fabs(v - k) < 5 * sqrt((2 * k * k + 6 * k) / n), "shape %g: var %g", k, v);
    }
    rng g;
    rng_seed(&g, 3);
    ck_assert(isnan(rng_gamma(&g, 0)));
    ck_assert(isnan(rng_gamma(&g, -1)));
    ck_assert(isnan(rng_gamma(&g, NAN)));
}
END_TEST

START_TEST(test_beta_moments)
{
    const double ab[][2] = {{2, 5}, {0.5, 0.5}, {1, 1}, {90, 10}, {3000, 7000}};
    const int n = 100000;
    for (size_t i = 0; i < sizeof ab / sizeof *ab; i++) {
        double a = ab[i][0], b = ab[i][1], m, v;
        double mu = a / (a + b), var = a * b / ((a + b) * (a + b) * (a + b + 1));
        moments(draw_beta, a, b, n, &m, &v);
        ck_assert_msg(fabs(m - mu) < 5 * sqrt(var / n), "Beta(%g, %g): mean %g", a, b, m);
        /* The variance of a bounded variable's sample variance is below
         * var/n (values in [0, 1]). */
        ck_assert_msg(fabs(v - var) < 5 * sqrt(var / n), "Beta(%g, %g): var %g", a, b, v);
    }
    rng g;
    rng_seed(&g, 4);
    /* Parameters far below 1: both gammas underflow, the limit is 0 or 1. */
    int ones = 0;
    for (int i = 0; i < 2000; i++) {
        double x = rng_beta(&g, 1e-3, 1e-3);
        ck_assert_quiet(x >= 0 && x <= 1);
        ones += x > 0.5;
    }
    ck_assert_int_gt(ones, 800);
    ck_assert_int_lt(ones, 1200);
    ck_assert(isnan(rng_beta(&g, 0, 1)));
    ck_assert(isnan(rng_beta(&g, 1, -2)));
}
END_TEST

static Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_reference_stream);
    tcase_add_test(tc, test_reproducible_and_forkable);
    tcase_add_test(tc, test_uniform_and_below);
    tcase_add_test(tc, test_normal_moments);
    tcase_add_test(tc, test_gamma_moments);
    tcase_add_test(tc, test_beta_moments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rng_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
