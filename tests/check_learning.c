/* Check suite for host/learning.c: ConfidenceLevel, the three confidence
 * algorithms against hand-computed values (the formulas of ndf.conf(5)),
 * per-domain counts, min_samples, convergence and reset. */
#include "build-config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/learning.h"
#include "base/util.h"

#define EPS 1e-12

static learning_params params(confidence_algorithm a)
{
    learning_params p;
    learning_params_default(&p);
    p.algorithm = a;
    return p;
}

START_TEST(test_levels)
{
    /* The seed's examples, and the edges: 0.5 and 0.8 are MEDIUM. */
    ck_assert_int_eq(confidence_level_from_score(0.85), CONFIDENCE_HIGH);
    ck_assert_int_eq(confidence_level_from_score(0.6), CONFIDENCE_MEDIUM);
    ck_assert_int_eq(confidence_level_from_score(0.3), CONFIDENCE_LOW);
    ck_assert_int_eq(confidence_level_from_score(0.5), CONFIDENCE_MEDIUM);
    ck_assert_int_eq(confidence_level_from_score(0.8), CONFIDENCE_MEDIUM);
    ck_assert_int_eq(confidence_level_from_score(0.8000001), CONFIDENCE_HIGH);
    ck_assert_int_eq(confidence_level_from_score(0.4999999), CONFIDENCE_LOW);
    ck_assert_int_eq(confidence_level_from_score(NAN), CONFIDENCE_LOW);
    ck_assert_str_eq(confidence_level_name(CONFIDENCE_LOW), "LOW");
    ck_assert_str_eq(confidence_level_name(CONFIDENCE_MEDIUM), "MEDIUM");
    ck_assert_str_eq(confidence_level_name(CONFIDENCE_HIGH), "HIGH");
    /* __lt__, __le__, __gt__, __ge__ */
    ck_assert_int_lt(confidence_level_compare(CONFIDENCE_LOW, CONFIDENCE_MEDIUM), 0);
    ck_assert_int_lt(confidence_level_compare(CONFIDENCE_MEDIUM, CONFIDENCE_HIGH), 0);
    ck_assert_int_gt(confidence_level_compare(CONFIDENCE_HIGH, CONFIDENCE_LOW), 0);
    ck_assert_int_eq(confidence_level_compare(CONFIDENCE_MEDIUM, CONFIDENCE_MEDIUM), 0);
}
END_TEST

START_TEST(test_algorithm_names)
{
    confidence_algorithm a;
    ck_assert_int_eq(confidence_algorithm_parse("simple_average", &a), 0);
    ck_assert_int_eq(a, ALGO_SIMPLE_AVERAGE);
    ck_assert_int_eq(confidence_algorithm_parse("weighted_average", &a), 0);
    ck_assert_int_eq(a, ALGO_WEIGHTED_AVERAGE);
    ck_assert_int_eq(confidence_algorithm_parse("adaptive_bayes", &a), 0);
    ck_assert_int_eq(a, ALGO_ADAPTIVE_BAYES);
    ck_assert_int_eq(confidence_algorithm_parse("bayes", &a), -1);
    ck_assert_int_eq(confidence_algorithm_parse(NULL, &a), -1);
    ck_assert_str_eq(confidence_algorithm_name(ALGO_WEIGHTED_AVERAGE), "weighted_average");
    ck_assert_str_eq(confidence_algorithm_name((confidence_algorithm)9), "unknown");

    learning_params p;
    learning_params_default(&p);
    ck_assert_int_eq(p.algorithm, ALGO_ADAPTIVE_BAYES);
    ck_assert_double_eq_tol(p.learning_rate, 0.1, EPS);
    ck_assert_int_eq(p.min_samples, 5);
    ck_assert_double_eq_tol(p.convergence_threshold, 0.95, EPS);
    ck_assert_double_eq_tol(learning_prior_mean(&p), 0.5, EPS);
    /* A zeroed prior counts as Beta(1, 1) rather than dividing by zero. */
    p.prior_alpha = p.prior_beta = 0;
    ck_assert_double_eq_tol(learning_prior_mean(&p), 0.5, EPS);
    p.prior_alpha = 3;
    p.prior_beta = 1;
    ck_assert_double_eq_tol(learning_prior_mean(&p), 0.75, EPS);
}
END_TEST

START_TEST(test_simple_average)
{
    learning_params p = params(ALGO_SIMPLE_AVERAGE);
    learning_state st;
    learning_init(&st, &p);
    ck_assert_double_eq_tol(st.score, 0.5, EPS);
    ck_assert_double_eq_tol(learning_success_rate(&st), 0.0, EPS);
    int outcomes[] = {1, 1, 0, 1};
    for (size_t i = 0; i < 4; i++)
        learning_record(&st, &p, outcomes[i], "web", 100.0 + (double)i);
    ck_assert_uint_eq(st.executions, 4);
    ck_assert_uint_eq(st.successes, 3);
    ck_assert_double_eq_tol(st.score, 0.75, EPS);
    ck_assert_double_eq_tol(learning_success_rate(&st), 0.75, EPS);
    ck_assert_double_eq_tol(st.last_used, 103.0, EPS);
    learning_free(&st);
}
END_TEST

START_TEST(test_weighted_average)
{
    /* s0 = 0.5; s <- s + 0.1 (x - s): 1 -> 0.55, 1 -> 0.595, 0 -> 0.5355 */
    learning_params p = params(ALGO_WEIGHTED_AVERAGE);
    learning_state st;
    learning_init(&st, &p);
    learning_record(&st, &p, 1, NULL, 0);
    ck_assert_double_eq_tol(st.score, 0.55, EPS);
    learning_record(&st, &p, 1, NULL, 0);
    ck_assert_double_eq_tol(st.score, 0.595, EPS);
    learning_record(&st, &p, 0, NULL, 0);
    ck_assert_double_eq_tol(st.score, 0.5355, EPS);
    ck_assert_double_eq_tol(st.last_used, 0.0, EPS); /* when 0: not recorded */
    /* learning_rate 1: the last outcome alone. */
    p.learning_rate = 1;
    learning_record(&st, &p, 1, NULL, 0);
    ck_assert_double_eq_tol(st.score, 1.0, EPS);
    learning_free(&st);
}
END_TEST

START_TEST(test_adaptive_bayes)
{
    /* Beta(1,1) + 8 successes, 2 failures: Beta(9,3), mean 0.75,
     * sd = sqrt(27 / (144 * 13)) = 0.1200961154, certainty 0.7598077693. */
    learning_params p = params(ALGO_ADAPTIVE_BAYES);
    learning_state st;
    learning_init(&st, &p);
    for (int i = 0; i < 10; i++)
        learning_record(&st, &p, i < 8, "data", 0);
    ck_assert_double_eq_tol(st.alpha, 9.0, EPS);
    ck_assert_double_eq_tol(st.beta, 3.0, EPS);
    ck_assert_double_eq_tol(st.score, 0.75, EPS);
    ck_assert_double_eq_tol(learning_certainty(9, 3), 0.7598077692923693, 1e-12);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_double_eq_tol(learning_certainty(0, 3), 0.0, EPS);
    learning_free(&st);

    /* A stronger prior pulls the mean: Beta(3,1) + 1 failure = 3/5. */
    p.prior_alpha = 3;
    learning_init(&st, &p);
    ck_assert_double_eq_tol(st.score, 0.75, EPS);
    learning_record(&st, &p, 0, NULL, 0);
    ck_assert_double_eq_tol(st.score, 0.6, EPS);
    learning_free(&st);
}
END_TEST

START_TEST(test_convergence)
{
    /* All successes from Beta(1,1): after n, Beta(n+1, 1) with
     * var = (n+1) / ((n+2)^2 (n+3)).  n=6: certainty 0.77951, n=7: 0.80124.
     * With threshold 0.8 it converges at the 7th execution and the posterior
     * stops moving; the counts keep going. */
    learning_params p = params(ALGO_ADAPTIVE_BAYES);
    p.convergence_threshold = 0.8;
    learning_state st;
    learning_init(&st, &p);
    for (int i = 0; i < 6; i++)
        learning_record(&st, &p, 1, NULL, 0);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_double_eq_tol(learning_certainty(7, 1), 1 - 2 * sqrt(7.0 / (64 * 9)), 1e-12);
    learning_record(&st, &p, 1, NULL, 0);
    ck_assert_int_eq(st.converged, 1);
    ck_assert_double_eq_tol(st.score, 8.0 / 9.0, EPS);
    learning_record(&st, &p, 0, NULL, 0);
    learning_record(&st, &p, 0, NULL, 0);
    ck_assert_double_eq_tol(st.score, 8.0 / 9.0, EPS);
    ck_assert_double_eq_tol(st.alpha, 8.0, EPS);
    ck_assert_uint_eq(st.executions, 9);
    ck_assert_uint_eq(st.successes, 7);
    /* reset_stats unfreezes. */
    learning_reset(&st, &p);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_uint_eq(st.executions, 0);
    ck_assert_double_eq_tol(st.score, 0.5, EPS);
    learning_free(&st);

    /* min_samples holds convergence back even when certain enough. */
    p.convergence_threshold = 0.1;
    p.min_samples = 3;
    learning_init(&st, &p);
    learning_record(&st, &p, 1, NULL, 0);
    learning_record(&st, &p, 1, NULL, 0);
    ck_assert_int_eq(st.converged, 0);
    ck_assert_int_eq(learning_trusted(&st, &p), 0);
    learning_record(&st, &p, 1, NULL, 0);
    ck_assert_int_eq(st.converged, 1);
    ck_assert_int_eq(learning_trusted(&st, &p), 1);
    learning_free(&st);
}
END_TEST

START_TEST(test_domains_copy_reset)
{
    learning_params p = params(ALGO_SIMPLE_AVERAGE);
    learning_state st, cp;
    learning_init(&st, &p);
    st.created = 42;
    learning_record(&st, &p, 1, "web", 0);
    learning_record(&st, &p, 0, "data", 0);
    learning_record(&st, &p, 1, "web", 0);
    learning_record(&st, &p, 1, "", 0); /* empty: no per-domain entry */
    learning_record(&st, &p, 1, "api", 0);
    ck_assert_uint_eq(st.ndomains, 3);
    ck_assert_str_eq(st.domains[0].domain, "api");
    ck_assert_str_eq(st.domains[1].domain, "data");
    ck_assert_str_eq(st.domains[2].domain, "web");
    ck_assert_uint_eq(st.domains[2].executions, 2);
    ck_assert_uint_eq(st.domains[2].successes, 2);
    ck_assert_uint_eq(st.domains[1].successes, 0);
    learning_add_duration(&st, 1.5);
    learning_add_duration(&st, 0.5);
    learning_add_duration(&st, -1); /* ignored */
    ck_assert_double_eq_tol(st.duration_total, 2.0, EPS);
    ck_assert_uint_eq(st.timed, 2);

    learning_copy(&cp, &st);
    ck_assert_uint_eq(cp.ndomains, 3);
    ck_assert_ptr_ne(cp.domains, st.domains);
    ck_assert_str_eq(cp.domains[0].domain, "api");
    learning_reset(&st, &p);
    ck_assert_uint_eq(st.ndomains, 0);
    ck_assert_uint_eq(st.executions, 0);
    ck_assert_double_eq_tol(st.created, 42, EPS);
    ck_assert_uint_eq(cp.executions, 5);
    learning_free(&st);
    learning_free(&cp);
}
END_TEST

static Suite *learning_suite(void)
{
    Suite *s = suite_create("learning");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_levels);
    tcase_add_test(tc, test_algorithm_names);
    tcase_add_test(tc, test_simple_average);
    tcase_add_test(tc, test_weighted_average);
    tcase_add_test(tc, test_adaptive_bayes);
    tcase_add_test(tc, test_convergence);
    tcase_add_test(tc, test_domains_copy_reset);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(learning_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
