/* Check suite for host/base/beta.c: the CDF against closed forms and the
 * binomial identity I_x(a, b) = P(Binomial(a+b-1, x) >= a) for integer
 * parameters (summed here independently), symmetry, the quantile as its
 * inverse, and the edges. */
#include "build-config.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "base/beta.h"

/* P(Binomial(n, x) >= k), by summing the terms in long double. */
static double binom_tail(int n, double x, int k)
{
    long double sum = 0;
    for (int j = k; j <= n; j++) {
        long double lc = lgammal(n + 1.0L) - lgammal(j + 1.0L) - lgammal(n - j + 1.0L);
        sum += expl(lc + j * logl(x) + (n - j) * log1pl(-x));
    }
    return (double)sum;
}

START_TEST(test_cdf_closed_forms)
{
    const double xs[] = {1e-6, 0.01, 0.2, 0.5, 0.77, 0.99, 1 - 1e-9};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        double x = xs[i];
        ck_assert_double_eq_tol(beta_cdf(x, 1, 1), x, 1e-14);
        ck_assert_double_eq_tol(beta_cdf(x, 3.5, 1), pow(x, 3.5), 1e-13);
        ck_assert_double_eq_tol(beta_cdf(x, 1, 2), 1 - (1 - x) * (1 - x), 1e-13);
        /* Arcsine law: Beta(1/2, 1/2), written near 1 so that asin() is
         * well conditioned. */
        double arcsine = x < 0.5 ? 2 / M_PI * asin(sqrt(x)) : 1 - 2 / M_PI * asin(sqrt(1 - x));
        ck_assert_double_eq_tol(beta_cdf(x, 0.5, 0.5), arcsine, 1e-13);
    }
}
END_TEST

START_TEST(test_cdf_binomial_identity)
{
    const int ab[][2] = {{9, 3}, {2, 2}, {1, 30}, {40, 60}, {200, 50}, {900, 100}};
    const double xs[] = {0.05, 0.3, 0.5, 0.7, 0.75, 0.9, 0.95};
    for (size_t i = 0; i < sizeof ab / sizeof *ab; i++)
        for (size_t j = 0; j < sizeof xs / sizeof *xs; j++) {
            int a = ab[i][0], b = ab[i][1];
            double want = binom_tail(a + b - 1, xs[j], a), got = beta_cdf(xs[j], a, b);
            ck_assert_msg(fabs(got - want) <= 1e-11 + 1e-9 * want,
                          "I_%g(%d, %d) = %.17g, expected %.17g", xs[j], a, b, got, want);
        }
    /* A value worked by hand: I_0.75(9, 3) = P(Bin(11, 0.75) >= 9)
     * = (55 * 0.75^9 * 0.25^2 + 11 * 0.75^10 * 0.25 + 0.75^11). */
    double hand = 55 * pow(0.75, 9) * 0.0625 + 11 * pow(0.75, 10) * 0.25 + pow(0.75, 11);
    ck_assert_double_eq_tol(beta_cdf(0.75, 9, 3), hand, 1e-14);
    ck_assert_double_eq_tol(hand, 0.45520091056823730, 1e-15);
}
END_TEST

START_TEST(test_cdf_symmetry_and_edges)
{
    for (double x = 0.01; x < 1; x += 0.07)
        ck_assert_double_eq_tol(beta_cdf(x, 2.7, 11.3), 1 - beta_cdf(1 - x, 11.3, 2.7), 1e-13);
    ck_assert(beta_cdf(0, 2, 3) == 0);
    ck_assert(beta_cdf(-1, 2, 3) == 0);
    ck_assert(beta_cdf(1, 2, 3) == 1);
    ck_assert(beta_cdf(7, 2, 3) == 1);
    ck_assert(isnan(beta_cdf(0.5, 0, 3)));
    ck_assert(isnan(beta_cdf(0.5, 2, -3)));
    ck_assert(isnan(beta_cdf(NAN, 2, 3)));
    ck_assert(isnan(beta_cdf(0.5, INFINITY, 3)));
    /* Large counts stay accurate: the median of Beta(5001, 5001) is 1/2. */
    ck_assert_double_eq_tol(beta_cdf(0.5, 5001, 5001), 0.5, 1e-12);
}
END_TEST

START_TEST(test_quantile)
{
    /* Closed forms: Beta(1, 1) is uniform; Beta(1, 2)'s q is 1 - sqrt(1 - p);
     * Beta(2, 1)'s is sqrt(p). */
    ck_assert_double_eq_tol(beta_quantile(0.95, 1, 1), 0.95, 1e-12);
    ck_assert_double_eq_tol(beta_quantile(0.95, 1, 2), 1 - sqrt(0.05), 1e-12);
    ck_assert_double_eq_tol(beta_quantile(0.05, 2, 1), sqrt(0.05), 1e-12);
    const double ab[][2] = {{1, 1},    {0.5, 0.5}, {9, 3},       {3, 9},     {0.05, 2},
                            {2, 0.05}, {120, 30},  {9000, 1000}, {12.4, 7.7}};
    const double ps[] = {1e-6, 0.05, 0.5, 0.95, 1 - 1e-6};
    for (size_t i = 0; i < sizeof ab / sizeof *ab; i++)
        for (size_t j = 0; j < sizeof ps / sizeof *ps; j++) {
            double a = ab[i][0], b = ab[i][1];
            double q = beta_quantile(ps[j], a, b);
            ck_assert_msg(q >= 0 && q <= 1, "q(%g; %g, %g) = %g", ps[j], a, b, q);
            if (q == 1) {
                /* Closer to 1 than a double can be (q(0.95; 2, 0.05) is
                 * 1 - 4e-27): the largest double below 1 is still below. */
                ck_assert_msg(beta_cdf(1 - DBL_EPSILON / 2, a, b) < ps[j], "q(%g; %g, %g) = 1",
                              ps[j], a, b);
                continue;
            }
            double back = beta_cdf(q, a, b);
            ck_assert_msg(fabs(back - ps[j]) < 1e-9, "I(q(%g; %g, %g) = %.17g) = %.17g", ps[j], a,
                          b, q, back);
        }
    /* Monotone in p. */
    double prev = 0;
    for (double p = 0.01; p < 1; p += 0.01) {
        double q = beta_quantile(p, 4, 6);
        ck_assert(q > prev);
        prev = q;
    }
    ck_assert(beta_quantile(0, 2, 3) == 0);
    ck_assert(beta_quantile(1, 2, 3) == 1);
    ck_assert(isnan(beta_quantile(0.5, 0, 3)));
    ck_assert(isnan(beta_quantile(NAN, 2, 3)));
}
END_TEST

static Suite *beta_suite(void)
{
    Suite *s = suite_create("beta");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cdf_closed_forms);
    tcase_add_test(tc, test_cdf_binomial_identity);
    tcase_add_test(tc, test_cdf_symmetry_and_edges);
    tcase_add_test(tc, test_quantile);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(beta_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
