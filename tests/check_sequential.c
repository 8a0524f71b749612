/* Check suite for the sequential pattern type plugin (plugins/sequential):
 * order, skipped steps, rollback order with a failing undo, retries with
 * backoff, the sequence timeout, rollback() on a finished execution, and
 * the definition errors of create(). */
#include "build-config.h"

#include "plugin_harness.h"

/* A step that appends `word` to @DIR@/log, and whose undo appends "u<word>"
 * (or fails, with undo_fails). */
#define STEP(name, word) \
    "{ name = \"" name "\"; step = \"exec\"; params = { argv = [\"/bin/sh\", \"-c\", " \
    "\"echo " word " >> @DIR@/log\"]; undo = [\"/bin/sh\", \"-c\", \"echo u" word     \
    " >> @DIR@/log\"]; }; }"
#define STEP_BADUNDO(name, word) \
    "{ name = \"" name "\"; step = \"exec\"; params = { argv = [\"/bin/sh\", \"-c\", " \
    "\"echo " word " >> @DIR@/log\"]; undo = [\"false\"]; }; }"
#define FAIL(name) "{ name = \"" name "\"; step = \"fail\"; params = { message = \"boom\"; }; }"

START_TEST(test_order_and_success)
{
    harness h;
    h_open_ok(&h, 2,
              "{ name = \"seq\"; type = \"sequential\"; params = { steps = ( " STEP("a", "a") ", "
              STEP("b", "b") ", " STEP("c", "c") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, &msg), NDF_OK);
    char *log = h_file(&h, "log");
    ck_assert_str_eq(log, "a\nb\nc\n");
    ck_assert_state(r, "seq/a", NDF_STATE_COMPLETED);
    ck_assert_state(r, "seq/c", NDF_STATE_COMPLETED);
    ck_assert_int_eq(r->root->nkids, 3);
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_rollback_reverse_with_failing_undo)
{
    harness h;
    h_open_ok(&h, 2,
              "{ name = \"seq\"; type = \"sequential\"; params = { steps = ( " STEP("a", "a") ", "
              STEP_BADUNDO("b", "b") ", " STEP("c", "c") ", " FAIL("d") ", " STEP("e", "e")
              " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    char *log = h_file(&h, "log");
    /* c undone, b's undo fails, a still undone: newest first. */
    ck_assert_str_eq(log, "a\nb\nc\nuc\nua\n");
    ck_assert_msg(strstr(msg, "step 'd' (4 of 5) failed") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "rollback: 1 of 3 undo action(s) failed") != NULL, "%s", msg);
    ck_assert_state(r, "seq/a", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "seq/b", NDF_STATE_FAILED);
    ck_assert_msg(strstr(h_message(r, "seq/b"), "undo failed") != NULL, "%s",
                  h_message(r, "seq/b"));
    ck_assert_state(r, "seq/c", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "seq/d", NDF_STATE_FAILED);
    ck_assert_msg(strstr(h_message(r, "seq/d"), "boom") != NULL, "%s", h_message(r, "seq/d"));
    ck_assert_state(r, "seq/e", NDF_STATE_SKIPPED);
    ck_assert_msg(strstr(h_message(r, "seq/e"), "not run: step 'd' failed") != NULL, "%s",
                  h_message(r, "seq/e"));
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_rollback_disabled)
{
    harness h;
    h_open_ok(&h, 1,
              "{ name = \"seq\"; type = \"sequential\"; params = { rollback_enabled = false; "
              "steps = ( " STEP("a", "a") ", " FAIL("b") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    char *log = h_file(&h, "log");
    ck_assert_str_eq(log, "a\n");
    ck_assert_state(r, "seq/a", NDF_STATE_COMPLETED);
    ck_assert_str_eq(msg, "step 'b' (2 of 2) failed");
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_rollback_after_the_run)
{
    harness h;
    h_open_ok(&h, 1,
              "{ name = \"seq\"; type = \"sequential\"; params = { steps = ( " STEP("a", "a") ", "
              STEP("b", "b") ", " STEP("c", "c") " ); }; }");
    record *r;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, NULL), NDF_OK);
    /* Only what follows 'a'; then the rest; then nothing is left to undo. */
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "pattern", "a"), NDF_OK);
    char *log = h_file(&h, "log");
    ck_assert_str_eq(log, "a\nb\nc\nuc\nub\n");
    free(log);
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "complete", NULL), NDF_OK);
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "complete", NULL), NDF_OK);
    log = h_file(&h, "log");
    ck_assert_str_eq(log, "a\nb\nc\nuc\nub\nua\n");
    free(log);
    ck_assert_state(r, "seq/a", NDF_STATE_ROLLED_BACK);
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "pattern", "nosuch"),
                     NDF_ERR_NOT_FOUND);
    ck_assert_str_eq(err_msg(), "no step 'nosuch' in this sequence");
    record_unref(r);
    h_close(&h);
}
END_TEST

/* Fails until its third attempt (a counter in @DIR@/n). */
#define FLAKY(retries)                                                                           \
    "{ name = \"seq\"; type = \"sequential\"; params = { steps = ( { name = \"flaky\"; "          \
    "step = \"exec\"; retries = " retries "; backoff = 0.01; backoff_max = 0.02; params = { "     \
    "shell = true; command = \"n=$(cat @DIR@/n 2>/dev/null || echo 0); n=$((n+1)); "             \
    "echo $n > @DIR@/n; test $n -ge 3\"; }; } ); }; }"

START_TEST(test_retries_succeed)
{
    harness h;
    h_open_ok(&h, 1, FLAKY("2"));
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, &msg), NDF_OK);
    char *n = h_file(&h, "n");
    ck_assert_str_eq(n, "3\n");
    ck_assert_state(r, "seq/flaky", NDF_STATE_COMPLETED);
    ndf_exec *node = h_find(r->root, "flaky");
    ck_assert_msg(node->out[REC_LOG].buf && strstr(node->out[REC_LOG].buf, "attempt 2 of 3 failed"),
                  "retry not logged");
    free(n);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_retries_exhausted)
{
    harness h;
    h_open_ok(&h, 1, FLAKY("1"));
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    char *n = h_file(&h, "n");
    ck_assert_str_eq(n, "2\n");
    ck_assert_state(r, "seq/flaky", NDF_STATE_FAILED);
    free(n);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_sequence_timeout)
{
    harness h;
    h_open_ok(&h, 1,
              "{ name = \"seq\"; type = \"sequential\"; params = { timeout_seconds = 0.2; "
              "steps = ( " STEP("a", "a") ", { name = \"nap\"; step = \"sleep\"; "
              "params = { seconds = 30.0; }; }, " STEP("z", "z") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, &msg), NDF_ERR_TIMEOUT);
    ck_assert_msg(strstr(msg, "sequence timed out after 0.2s in step 'nap'") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "rolled back 1 completed step(s)") != NULL, "%s", msg);
    ck_assert_state(r, "seq/nap", NDF_STATE_TIMED_OUT);
    ck_assert_state(r, "seq/z", NDF_STATE_SKIPPED);
    ck_assert_state(r, "seq/a", NDF_STATE_ROLLED_BACK);
    char *log = h_file(&h, "log");
    ck_assert_str_eq(log, "a\nua\n");
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_empty_sequence)
{
    harness h;
    h_open_ok(&h, 1, "{ name = \"seq\"; type = \"sequential\"; params = { steps = ( ); }; }");
    record *r;
    ck_assert_int_eq(h_run(&h, "seq", NULL, 0, &r, NULL), NDF_OK);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_duplicate_step_name)
{
    harness h;
    h_open(&h, 1,
           "{ name = \"seq\"; type = \"sequential\"; params = { steps = (\n"
           "  { name = \"a\"; step = \"noop\"; },\n"
           "  { name = \"a\"; step = \"noop\"; } ); }; }");
    ck_assert_int_eq(h.nerrors, 1);
    ck_assert_msg(strstr(h_errors(&h), "ndf.conf:7: sequential: duplicate step name 'a' "
                                       "(first defined at line 6)") != NULL,
                  "%s", h_errors(&h));
    h_close(&h);
}
END_TEST

START_TEST(test_unknown_step_and_bad_params)
{
    harness h;
    h_open(&h, 1,
           "{ name = \"s1\"; type = \"sequential\"; params = { steps = (\n"
           "  { name = \"a\"; step = \"nosuch\"; } ); }; },\n"
           "{ name = \"s2\"; type = \"sequential\"; params = { steps = (\n"
           "  { name = \"a\"; step = \"sleep\"; params = { second = 1; }; } ); }; },\n"
           "{ name = \"s3\"; type = \"sequential\"; params = { steps = (\n"
           "  { name = \"a\"; step = \"noop\"; retries = 101; } ); }; }");
    ck_assert_int_eq(h.nerrors, 3);
    const char *e = h_errors(&h);
    ck_assert_msg(strstr(e, "unknown step 'nosuch'") != NULL, "%s", e);
    ck_assert_msg(strstr(e, "step 'sleep': missing required parameter 'seconds'") != NULL, "%s", e);
    ck_assert_msg(strstr(e, "retries") != NULL, "%s", e);
    h_close(&h);
}
END_TEST

static Suite *sequential_suite(void)
{
    Suite *s = suite_create("sequential");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_order_and_success);
    tcase_add_test(tc, test_rollback_reverse_with_failing_undo);
    tcase_add_test(tc, test_rollback_disabled);
    tcase_add_test(tc, test_rollback_after_the_run);
    tcase_add_test(tc, test_retries_succeed);
    tcase_add_test(tc, test_retries_exhausted);
    tcase_add_test(tc, test_sequence_timeout);
    tcase_add_test(tc, test_empty_sequence);
    tcase_add_test(tc, test_duplicate_step_name);
    tcase_add_test(tc, test_unknown_step_and_bad_params);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sequential_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
