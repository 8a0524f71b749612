/* Check suite for the parallel pattern type plugin (plugins/parallel):
 * dependencies and their order, failure tolerance exactly at and just past
 * its boundary (as a share and as a count), early stop, skipped
 * dependents, rollback in reverse topological order, the resource wait
 * running into the deadline, and the definition errors (unknown
 * dependency, a cycle named in full). */
#include "build-config.h"

#include "plugin_harness.h"

/* A task that appends `word` to @DIR@/log and whose undo appends u<word>. */
#define TASK(name, word, deps)                                                               \
    "{ name = \"" name "\"; step = \"exec\"; depends_on = [" deps "]; params = { argv = "     \
    "[\"/bin/sh\", \"-c\", \"echo " word " >> @DIR@/log\"]; undo = [\"/bin/sh\", \"-c\", " \
    "\"echo u" word " >> @DIR@/log\"]; }; }"
#define OK(name) "{ name = \"" name "\"; step = \"noop\"; }"
#define BAD(name) "{ name = \"" name "\"; step = \"fail\"; params = { message = \"no\"; }; }"

static int run(harness *h, const char *name, record **r, char **msg)
{
    return h_run(h, name, NULL, 0, r, msg);
}

START_TEST(test_dependencies_order)
{
    harness h;
    /* c needs a and b; d needs c: a and b may run in either order. */
    h_open_ok(&h, 2,
              "{ name = \"par\"; type = \"parallel\"; params = { tasks = ( "
              TASK("d", "d", "\"c\"") ", " TASK("c", "c", "\"a\", \"b\"") ", "
              TASK("a", "a", "") ", " TASK("b", "b", "") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "par", &r, &msg), NDF_OK);
    char *log = h_file(&h, "log");
    ck_assert_msg(!strcmp(log, "a\nb\nc\nd\n") || !strcmp(log, "b\na\nc\nd\n"), "%s", log);
    ck_assert_state(r, "par", NDF_STATE_COMPLETED);
    ck_assert_state(r, "par/d", NDF_STATE_COMPLETED);
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_tolerance_at_boundary)
{
    harness h;
    h_open_ok(&h, 2,
              "{ name = \"par\"; type = \"parallel\"; params = { failure_tolerance = 0.2; "
              "tasks = ( " OK("a") ", " OK("b") ", " BAD("c") ", " OK("d") ", " OK("e") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "par", &r, &msg), NDF_OK);
    ck_assert_state(r, "par", NDF_STATE_DEGRADED);
    ck_assert_str_eq(h_message(r, "par"), "succeeded with 1 tolerated failure(s)");
    ck_assert_state(r, "par/c", NDF_STATE_FAILED);
    ck_assert_state(r, "par/e", NDF_STATE_COMPLETED);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_tolerance_past_boundary)
{
    harness h;
    h_open_ok(&h, 2,
              "{ name = \"par\"; type = \"parallel\"; params = { failure_tolerance = 0.2; "
              "max_concurrent = 1; rollback_enabled = false; "
              "tasks = ( " OK("a") ", " BAD("b") ", " BAD("c") ", " OK("d") ", " OK("e") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "par", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(msg, "2 of 5 task(s) failed, 2 skipped (failure_tolerance allows 1); "
                              "first: task 'b' (execution failed)") != NULL,
                  "%s", msg);
    /* One at a time: once c failed nothing more was started. */
    ck_assert_state(r, "par/a", NDF_STATE_COMPLETED);
    ck_assert_state(r, "par/d", NDF_STATE_SKIPPED);
    ck_assert_str_eq(h_message(r, "par/d"), "not started: the pattern can no longer succeed");
    ck_assert_state(r, "par/e", NDF_STATE_SKIPPED);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_max_failures_count)
{
    harness h;
    h_open_ok(&h, 2,
              "{ name = \"ok1\"; type = \"parallel\"; params = { failure_tolerance = 1.0; "
              "max_failures = 1; tasks = ( " BAD("a") ", " OK("b") ", " OK("c") " ); }; },\n"
              "{ name = \"bad2\"; type = \"parallel\"; params = { failure_tolerance = 1.0; "
              "max_failures = 1; tasks = ( " BAD("a") ", " BAD("b") ", " OK("c") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "ok1", &r, &msg), NDF_OK);
    ck_assert_state(r, "ok1", NDF_STATE_DEGRADED);
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run(&h, "bad2", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(msg, "(failure_tolerance allows 1)") != NULL, "%s", msg);
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_dependents_skipped)
{
    harness h;
    h_open_ok(&h, 2,
              "{ name = \"par\"; type = \"parallel\"; params = { failure_tolerance = 1.0; "
              "tasks = ( " BAD("a") ", { name = \"b\"; step = \"noop\"; depends_on = [\"a\"]; }, "
              "{ name = \"c\"; step = \"noop\"; depends_on = [\"b\"]; }, " OK("d") " ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "par", &r, &msg), NDF_OK);
    ck_assert_state(r, "par", NDF_STATE_DEGRADED);
    ck_assert_str_eq(h_message(r, "par"),
                     "succeeded with 1 tolerated failure(s) (2 dependent task(s) skipped)");
    ck_assert_state(r, "par/b", NDF_STATE_SKIPPED);
    ck_assert_str_eq(h_message(r, "par/b"), "not run: dependency 'a' failed");
    ck_assert_state(r, "par/c", NDF_STATE_SKIPPED);
    ck_assert_str_eq(h_message(r, "par/c"), "not run: dependency 'b' was skipped");
    ck_assert_state(r, "par/d", NDF_STATE_COMPLETED);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_rollback_reverse_topological)
{
    harness h;
    /* a -> b -> c complete, then z (after c) fails: undo c, b, a. */
    h_open_ok(&h, 2,
              "{ name = \"par\"; type = \"parallel\"; params = { failure_tolerance = 0.0; "
              "tasks = ( " TASK("c", "c", "\"b\"") ", " TASK("a", "a", "") ", "
              TASK("b", "b", "\"a\"") ", { name = \"z\"; step = \"fail\"; depends_on = [\"c\"]; "
              "} ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "par", &r, &msg), NDF_ERR_EXECUTION);
    char *log = h_file(&h, "log");
    ck_assert_str_eq(log, "a\nb\nc\nuc\nub\nua\n");
    ck_assert_msg(strstr(msg, "rolled back 3 completed task(s)") != NULL, "%s", msg);
    ck_assert_state(r, "par/a", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "par/z", NDF_STATE_FAILED);
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
              "{ name = \"par\"; type = \"parallel\"; params = { tasks = ( "
              TASK("a", "a", "") ", " TASK("b", "b", "\"a\"") ", " TASK("x", "x", "") " ); }; }");
    record *r;
    ck_assert_int_eq(run(&h, "par", &r, NULL), NDF_OK);
    /* With a target: only what depends on it. */
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "pattern", "a"), NDF_OK);
    ck_assert_state(r, "par/b", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "par/a", NDF_STATE_COMPLETED);
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "complete", NULL), NDF_OK);
    ck_assert_state(r, "par/a", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "par/x", NDF_STATE_ROLLED_BACK);
    char *log = h_file(&h, "log");
    ck_assert_msg(strstr(log, "ub\n") && strstr(log, "ua\n") && strstr(log, "ux\n"), "%s", log);
    ck_assert_msg(strstr(log, "ub\n") < strstr(log, "ua\n"), "%s", log);
    free(log);
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "pattern", "zz"), NDF_ERR_NOT_FOUND);
    ck_assert_str_eq(err_msg(), "no task 'zz' in this pattern");
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_resource_wait_deadline)
{
    harness h;
    /* Memory use can never drop to 0: the wait runs into the deadline. */
    h_open_ok(&h, 2,
              "{ name = \"par\"; type = \"parallel\"; timeout = 0.3; params = { "
              "resource_threshold = 0.5; failure_tolerance = 0.0; tasks = ( "
              "{ name = \"heavy\"; step = \"noop\"; memory = 0.5; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "par", &r, &msg), NDF_ERR_RESOURCE);
    ck_assert_msg(strstr(msg, "first: task 'heavy' (resources exhausted)") != NULL, "%s", msg);
    ck_assert_state(r, "par/heavy", NDF_STATE_FAILED);
    ck_assert_msg(strstr(h_message(r, "par/heavy"), "waiting for resources") != NULL, "%s",
                  h_message(r, "par/heavy"));
    /* what the task needs, and what the host measured against the limit */
    ck_assert_msg(strstr(h_message(r, "par/heavy"),
                         "the task needs cpu 0 and memory 0.5 under the pattern's threshold 0.5") !=
                      NULL,
                  "%s", h_message(r, "par/heavy"));
    ck_assert_msg(strstr(h_message(r, "par/heavy"), "(waits for <= 0%)") != NULL, "%s",
                  h_message(r, "par/heavy"));
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_resource_wait_timeout_seconds)
{
    harness h;
    /* The pattern's own timeout_seconds, not the execution's (30 s in the
     * harness, past this test case's limit), must end the wait. */
    h_open_ok(&h, 2,
              "{ name = \"par\"; type = \"parallel\"; params = { timeout_seconds = 0.3; "
              "resource_threshold = 0.5; failure_tolerance = 0.0; tasks = ( "
              "{ name = \"heavy\"; step = \"noop\"; memory = 0.5; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run(&h, "par", &r, &msg), NDF_ERR_RESOURCE);
    ck_assert_msg(strstr(msg, "first: task 'heavy' (resources exhausted)") != NULL, "%s", msg);
    ck_assert_state(r, "par/heavy", NDF_STATE_FAILED);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_resource_need_over_threshold)
{
    harness h;
    h_open(&h, 1,
           "{ name = \"par\"; type = \"parallel\"; params = { resource_threshold = 0.5; tasks = (\n"
           "  { name = \"big\"; step = \"noop\"; cpu = 0.7; } ); }; }");
    ck_assert_int_eq(h.nerrors, 1);
    ck_assert_msg(strstr(h_errors(&h), "ndf.conf:6: parallel: task 'big' needs cpu 0.7, more "
                                       "than resource_threshold 0.5: it could never start"),
                  "%s", h_errors(&h));
    h_close(&h);
}
END_TEST

START_TEST(test_cycle_named)
{
    harness h;
    h_open(&h, 1,
           "{ name = \"par\"; type = \"parallel\"; params = { tasks = (\n"
           "  { name = \"x\"; step = \"noop\"; },\n"
           "  { name = \"c\"; step = \"noop\"; depends_on = [\"a\"]; },\n"
           "  { name = \"a\"; step = \"noop\"; depends_on = [\"b\", \"x\"]; },\n"
           "  { name = \"b\"; step = \"noop\"; depends_on = [\"x\", \"c\"]; },\n"
           "  { name = \"y\"; step = \"noop\"; depends_on = [\"c\"]; } ); }; },\n"
           "{ name = \"self\"; type = \"parallel\"; params = { tasks = (\n"
           "  { name = \"s\"; step = \"noop\"; depends_on = [\"s\"]; } ); }; }");
    ck_assert_int_eq(h.nerrors, 2);
    const char *e = h_errors(&h);
    ck_assert_msg(strstr(e, "ndf.conf:7: parallel: dependency cycle: c -> a -> b -> c "
                            "(each task depends on the next)"),
                  "%s", e);
    ck_assert_msg(strstr(e, "parallel: dependency cycle: s -> s"), "%s", e);
    h_close(&h);
}
END_TEST

START_TEST(test_unknown_dependency_and_duplicates)
{
    harness h;
    h_open(&h, 1,
           "{ name = \"p1\"; type = \"parallel\"; params = { tasks = (\n"
           "  { name = \"a\"; step = \"noop\"; depends_on = [\"zz\"]; } ); }; },\n"
           "{ name = \"p2\"; type = \"parallel\"; params = { tasks = (\n"
           "  { name = \"a\"; step = \"noop\"; },\n"
           "  { name = \"a\"; step = \"noop\"; } ); }; }");
    ck_assert_int_eq(h.nerrors, 2);
    const char *e = h_errors(&h);
    ck_assert_msg(strstr(e, "parallel: task 'a' depends on unknown task 'zz'"), "%s", e);
    ck_assert_msg(strstr(e, "parallel: duplicate task name 'a' (first defined at line 8)"), "%s",
                  e);
    h_close(&h);
}
END_TEST

START_TEST(test_many_tasks)
{
    /* A wide fan-out and fan-in, on one worker: nothing may park it. */
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "{ name = \"wide\"; type = \"parallel\"; params = { max_concurrent = 64; "
                 "tasks = ( { name = \"root\"; step = \"noop\"; }");
    for (int i = 0; i < 500; i++)
        sb_printf(&sb, ", { name = \"t%d\"; step = \"noop\"; depends_on = [\"root\"]; }", i);
    sb_puts(&sb, ", { name = \"sink\"; step = \"noop\"; depends_on = [");
    for (int i = 0; i < 500; i++)
        sb_printf(&sb, "%s\"t%d\"", i ? ", " : "", i);
    sb_puts(&sb, "]; } ); }; }");
    harness h;
    h_open_ok(&h, 1, sb.buf);
    sb_free(&sb);
    record *r;
    ck_assert_int_eq(run(&h, "wide", &r, NULL), NDF_OK);
    ck_assert_state(r, "wide/sink", NDF_STATE_COMPLETED);
    ck_assert_int_eq(r->root->nkids, 502);
    record_unref(r);
    h_close(&h);
}
END_TEST

static Suite *parallel_suite(void)
{
    Suite *s = suite_create("parallel");
    /* Short: a resource wait that ignored timeout_seconds would run to the
     * harness's 30 s execution default and fail here. */
    TCase *tw = tcase_create("timeout_seconds");
    tcase_set_timeout(tw, 10);
    tcase_add_test(tw, test_resource_wait_timeout_seconds);
    suite_add_tcase(s, tw);
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_dependencies_order);
    tcase_add_test(tc, test_tolerance_at_boundary);
    tcase_add_test(tc, test_tolerance_past_boundary);
    tcase_add_test(tc, test_max_failures_count);
    tcase_add_test(tc, test_dependents_skipped);
    tcase_add_test(tc, test_rollback_reverse_topological);
    tcase_add_test(tc, test_rollback_after_the_run);
    tcase_add_test(tc, test_resource_wait_deadline);
    tcase_add_test(tc, test_resource_need_over_threshold);
    tcase_add_test(tc, test_cycle_named);
    tcase_add_test(tc, test_unknown_dependency_and_duplicates);
    tcase_add_test(tc, test_many_tasks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(parallel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
