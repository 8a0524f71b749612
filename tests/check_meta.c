/* Check suite for the meta pattern type plugin (plugins/meta): phases in
 * order, success criteria (rate, error count, response time), the three
 * rollback strategies, trigger_rollback on a finished execution, the
 * complexity rule of matches(), required sub-patterns, and meta -> parallel
 * -> sequential nesting on one worker thread. */
#include "build-config.h"

#include "plugin_harness.h"

/* Sub-patterns: a sequential pattern of one step that appends `w` to
 * @DIR@/log, with an undo that appends u<w>. */
#define SUB(name, w)                                                                          \
    "{ name = \"" name "\"; type = \"sequential\"; params = { steps = ( { name = \"s\"; "     \
    "step = \"exec\"; params = { argv = [\"/bin/sh\", \"-c\", \"echo " w " >> @DIR@/log\"]; " \
    "undo = [\"/bin/sh\", \"-c\", \"echo u" w " >> @DIR@/log\"]; }; } ); }; }"
/* Completes one undoable step (w), then fails; does not roll itself back. */
#define SUB_FAILING(name, w)                                                                  \
    "{ name = \"" name "\"; type = \"sequential\"; params = { rollback_enabled = false; "      \
    "steps = ( { name = \"s\"; step = \"exec\"; params = { argv = [\"/bin/sh\", \"-c\", "     \
    "\"echo " w " >> @DIR@/log\"]; undo = [\"/bin/sh\", \"-c\", \"echo u" w                  \
    " >> @DIR@/log\"]; }; }, { name = \"f\"; step = \"fail\"; } ); }; }"
#define SUB_SLOW(name)                                                                      \
    "{ name = \"" name "\"; type = \"sequential\"; params = { steps = ( { name = \"s\"; " \
    "step = \"sleep\"; params = { seconds = 0.05; }; } ); }; }"

static char *log_of(harness *h)
{
    return h_file(h, "log");
}

START_TEST(test_phases_in_order)
{
    harness h;
    h_open_ok(&h, 2,
              SUB("s1", "1") ",\n" SUB("s2", "2") ",\n" SUB("s3", "3") ",\n"
              "{ name = \"m\"; type = \"meta\"; params = { phases = ( "
              "{ name = \"prep\"; patterns = [\"s1\"]; }, "
              "{ name = \"go\"; patterns = [\"s2\", \"s3\"]; coordination = \"parallel\"; "
              "  resource_allocation = { cpu = 1.0; memory = 1.0; }; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "m", NULL, 0, &r, &msg), NDF_OK);
    char *log = log_of(&h);
    ck_assert_msg(!strcmp(log, "1\n2\n3\n") || !strcmp(log, "1\n3\n2\n"), "%s", log);
    ck_assert_state(r, "m", NDF_STATE_COMPLETED);
    ck_assert_state(r, "m/prep", NDF_STATE_COMPLETED);
    ck_assert_state(r, "m/go/s3", NDF_STATE_COMPLETED);
    ck_assert_double_eq(node_progress(r->root), 100.0);
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_resource_wait_says_what_it_saw)
{
    harness h;
    /* Memory use never drops to 0: the wait runs into the deadline, and
     * the failure says what the phase needs (not the cpu it never set)
     * and what was measured. */
    h_open_ok(
        &h, 2,
        SUB("s1",
            "1") ",\n"
                 "{ name = \"m\"; type = \"meta\"; params = { timeout_seconds = 0.3; phases = ( "
                 "{ name = \"big\"; patterns = [\"s1\"]; "
                 "  resource_allocation = { memory = 0.0; }; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_ne(h_run(&h, "m", NULL, 0, &r, &msg), NDF_OK);
    const char *m = h_message(r, "m/big");
    ck_assert_msg(strstr(m, "waiting for resources (the phase needs memory <= 0): ") != NULL, "%s",
                  m);
    ck_assert_msg(strstr(m, "(waits for <= 0%)") != NULL, "%s", m);
    ck_assert_msg(strstr(m, "cpu -1") == NULL, "%s", m);
    ck_assert_msg(strstr(msg, "the phase needs memory <= 0") != NULL, "%s", msg);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_success_rate)
{
    harness h;
    h_open_ok(&h, 2,
              SUB("a", "a") ",\n" SUB("b", "b") ",\n" SUB_FAILING("bad", "x") ",\n"
              "{ name = \"lenient\"; type = \"meta\"; params = { phases = ( { name = \"p\"; "
              "  patterns = [\"a\", \"bad\", \"b\"]; success_criteria = { min_success_rate = 0.6; "
              "}; } ); }; },\n"
              "{ name = \"strict\"; type = \"meta\"; params = { phases = ( { name = \"p\"; "
              "  patterns = [\"a\", \"bad\", \"b\"]; success_criteria = { min_success_rate = 0.7; "
              "}; } ); }; },\n"
              "{ name = \"counted\"; type = \"meta\"; params = { phases = ( { name = \"p\"; "
              "  patterns = [\"a\", \"bad\", \"b\"]; success_criteria = { min_success_rate = 0.0; "
              "  max_error_count = 0; }; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "lenient", NULL, 0, &r, &msg), NDF_OK);
    ck_assert_state(r, "lenient", NDF_STATE_DEGRADED);
    ck_assert_str_eq(h_message(r, "lenient"), "succeeded with 1 tolerated failure(s)");
    ck_assert_state(r, "lenient/p", NDF_STATE_DEGRADED);
    record_unref(r);
    free(msg);

    ck_assert_int_eq(h_run(&h, "strict", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(msg, "phase 'p' failed: 1 of 3 sub-pattern(s) succeeded; "
                              "min_success_rate 0.7 needs 3") != NULL,
                  "%s", msg);
    /* Stopped early: once 'bad' failed the phase could not succeed. */
    ck_assert_state(r, "strict/p/b", NDF_STATE_SKIPPED);
    ck_assert_state(r, "strict/p", NDF_STATE_FAILED);
    record_unref(r);
    free(msg);

    ck_assert_int_eq(h_run(&h, "counted", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(msg, "1 error(s), over max_error_count 0") != NULL, "%s", msg);
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_response_time)
{
    harness h;
    h_open_ok(&h, 1,
              SUB_SLOW("slow") ",\n"
              "{ name = \"m\"; type = \"meta\"; params = { phases = ( { name = \"p\"; "
              "  patterns = [\"slow\"]; success_criteria = { response_time_threshold = 1.0; }; "
              "} ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "m", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_msg(strstr(msg, "0 of 1 sub-pattern(s) succeeded in time") != NULL, "%s", msg);
    ndf_exec *n = h_find(r->root, "p/slow");
    ck_assert_msg(n->out[REC_LOG].buf && strstr(n->out[REC_LOG].buf, "response_time_threshold"),
                  "slowness not logged");
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

/* Phase 1 runs s1; phase 2 runs s2 then the failing one. */
#define ROLLBACK_CASE(strategy)                                                               \
    SUB("s1", "1") ",\n" SUB("s2", "2") ",\n" SUB_FAILING("bad", "x") ",\n"                   \
    "{ name = \"m\"; type = \"meta\"; params = { rollback_strategy = \"" strategy "\"; "       \
    "phases = ( { name = \"one\"; patterns = [\"s1\"]; }, "                                    \
    "{ name = \"two\"; patterns = [\"s2\", \"bad\"]; } ); }; }"

START_TEST(test_rollback_phase_level)
{
    harness h;
    h_open_ok(&h, 1, ROLLBACK_CASE("phase_level"));
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "m", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    char *log = log_of(&h);
    ck_assert_str_eq(log, "1\n2\nx\nu2\n");
    ck_assert_msg(strstr(msg, "rolled back 1 sub-pattern(s) (phase_level)") != NULL, "%s", msg);
    ck_assert_state(r, "m/two/s2", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "m/one", NDF_STATE_COMPLETED);
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_rollback_pattern_level)
{
    harness h;
    h_open_ok(&h, 1, ROLLBACK_CASE("pattern_level"));
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "m", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    char *log = log_of(&h);
    ck_assert_str_eq(log, "1\n2\nx\nux\n");
    ck_assert_state(r, "m/two/s2", NDF_STATE_COMPLETED);
    ck_assert_state(r, "m/two/bad", NDF_STATE_ROLLED_BACK);
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_rollback_complete)
{
    harness h;
    h_open_ok(&h, 1, ROLLBACK_CASE("complete"));
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "m", NULL, 0, &r, &msg), NDF_ERR_EXECUTION);
    char *log = log_of(&h);
    ck_assert_str_eq(log, "1\n2\nx\nu2\nu1\n");
    ck_assert_state(r, "m/one", NDF_STATE_ROLLED_BACK);
    ck_assert_msg(strstr(msg, "rolled back 2 sub-pattern(s) (complete)") != NULL, "%s", msg);
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_trigger_rollback)
{
    harness h;
    h_open_ok(&h, 1,
              SUB("s1", "1") ",\n" SUB("s2", "2") ",\n" SUB("s3", "3") ",\n"
              "{ name = \"m\"; type = \"meta\"; params = { phases = ( "
              "{ name = \"p1\"; patterns = [\"s1\"]; }, { name = \"p2\"; patterns = [\"s2\"]; }, "
              "{ name = \"p3\"; patterns = [\"s3\"]; } ); }; }");
    record *r;
    ck_assert_int_eq(h_run(&h, "m", NULL, 0, &r, NULL), NDF_OK);
    /* Phases after p1, newest first. */
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "phase", "p1"), NDF_OK);
    char *log = log_of(&h);
    ck_assert_str_eq(log, "1\n2\n3\nu3\nu2\n");
    free(log);
    ck_assert_state(r, "m/p2", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "m/p1", NDF_STATE_COMPLETED);
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "complete", NULL), NDF_OK);
    log = log_of(&h);
    ck_assert_str_eq(log, "1\n2\n3\nu3\nu2\nu1\n");
    free(log);
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "phase", "nope"), NDF_ERR_NOT_FOUND);
    ck_assert_str_eq(err_msg(), "no phase 'nope' in this pattern");
    ck_assert_int_eq(host_services.rollback_pattern(r->root, "sideways", NULL), NDF_ERR_INVALID);
    record_unref(r);
    h_close(&h);
}
END_TEST

static int matches_with(pattern *p, ndf_value *complexity)
{
    ndf_context *c = context_new("d", "a", 1);
    if (complexity)
        context_set_attr(c, "complexity", complexity);
    int m = pattern_matches(p, c);
    context_free(c);
    return m;
}

START_TEST(test_complexity_matching)
{
    harness h;
    h_open_ok(&h, 1,
              SUB("s1", "1") ",\n"
              "{ name = \"m\"; type = \"meta\"; params = { complexity_threshold = 5; "
              "phases = ( { name = \"p\"; patterns = [\"s1\"]; } ); }; }");
    pattern *p;
    ck_assert_int_eq(registry_get(h.reg, "m", &p), NDF_OK);
    ck_assert_int_eq(matches_with(p, NULL), 1);
    ck_assert_int_eq(matches_with(p, value_new_int("complexity", 5)), 1);
    ck_assert_int_eq(matches_with(p, value_new_int("complexity", 4)), 0);
    ck_assert_int_eq(matches_with(p, value_new_number("complexity", 4.9)), 0);
    ck_assert_int_eq(matches_with(p, value_new_string("complexity", "low")), 0);
    ck_assert_int_eq(matches_with(p, value_new_string("complexity", "medium")), 1);
    ck_assert_int_eq(matches_with(p, value_new_string("complexity", "High")), 1);
    ck_assert_int_eq(matches_with(p, value_new_string("complexity", "enterprise")), 1);
    ck_assert_int_eq(matches_with(p, value_new_string("complexity", "8")), 1);
    ck_assert_int_eq(matches_with(p, value_new_string("complexity", "huge")), 0);
    ck_assert_int_eq(matches_with(p, value_new_bool("complexity", 1)), 0);
    pattern_unref(p);
    h_close(&h);
}
END_TEST

START_TEST(test_definition_errors)
{
    harness h;
    h_open(&h, 1,
           "{ name = \"m1\"; type = \"meta\"; params = { phases = (\n"
           "  { name = \"p\"; patterns = [\"ghost\"]; } ); }; },\n"
           "{ name = \"m2\"; type = \"meta\"; params = { phases = (\n"
           "  { name = \"p\"; patterns = [\"m1\"]; coordination = \"sideways\"; } ); }; },\n"
           "{ name = \"m3\"; type = \"meta\"; params = { rollback_strategy = \"phase\"; phases = (\n"
           "  { name = \"p\"; patterns = [\"m1\"]; } ); }; },\n"
           "{ name = \"m4\"; type = \"meta\"; params = { phases = (\n"
           "  { name = \"p\"; patterns = [\"m1\"]; }, { name = \"p\"; patterns = [\"m1\"]; } ); }; }");
    const char *e = h_errors(&h);
    ck_assert_int_eq(h.nerrors, 4);
    ck_assert_msg(strstr(e, "ndf.conf:6: unknown pattern 'ghost'"), "%s", e);
    ck_assert_msg(strstr(e, "coordination 'sideways' is neither"), "%s", e);
    ck_assert_msg(strstr(e, "rollback_strategy 'phase' is not one of pattern_level, phase_level, "
                            "complete"),
                  "%s", e);
    ck_assert_msg(strstr(e, "duplicate phase name 'p'"), "%s", e);
    h_close(&h);
}
END_TEST

START_TEST(test_nested_on_one_thread)
{
    harness h;
    /* meta -> (parallel phase) -> parallel pattern whose tasks run
     * sequential patterns, and a sequential pattern beside it. */
    h_open_ok(&h, 1,
              SUB("leaf1", "l1") ",\n" SUB("leaf2", "l2") ",\n" SUB("leaf3", "l3") ",\n"
              "{ name = \"fan\"; type = \"parallel\"; params = { tasks = ( "
              "{ name = \"t1\"; step = \"pattern\"; params = { pattern = \"leaf1\"; }; }, "
              "{ name = \"t2\"; step = \"pattern\"; params = { pattern = \"leaf2\"; }; }, "
              "{ name = \"t3\"; step = \"noop\"; depends_on = [\"t1\", \"t2\"]; } ); }; },\n"
              "{ name = \"m\"; type = \"meta\"; params = { phases = ( "
              "{ name = \"p\"; coordination = \"parallel\"; patterns = [\"fan\", \"leaf3\"]; }, "
              "{ name = \"q\"; patterns = [\"fan\"]; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "m", NULL, 20, &r, &msg), NDF_OK);
    ck_assert_state(r, "m/p", NDF_STATE_COMPLETED);
    ck_assert_state(r, "m/q", NDF_STATE_COMPLETED);
    char *log = log_of(&h);
    ck_assert_int_eq(strlen(log), strlen("l1\nl2\nl3\nl1\nl2\n"));
    free(log);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_resource_wait_timeout_seconds)
{
    harness h;
    /* Memory use never drops to 0: only the pattern's timeout_seconds (not
     * the harness's 30 s execution default) can end the phase's wait. */
    h_open_ok(&h, 2,
              SUB("s1", "1") ",\n"
              "{ name = \"m\"; type = \"meta\"; params = { timeout_seconds = 0.3; phases = ( "
              "{ name = \"p\"; patterns = [\"s1\"]; "
              "  resource_allocation = { memory = 0.0; }; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(h_run(&h, "m", NULL, 0, &r, &msg), NDF_ERR_RESOURCE);
    ck_assert_msg(strstr(msg, "phase 'p' failed: waiting for resources (the phase needs "
                              "memory <= 0): ") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "cpu -1") == NULL, "%s", msg);
    ck_assert_state(r, "m/p", NDF_STATE_FAILED);
    ck_assert_state(r, "m/p/s1", NDF_STATE_SKIPPED);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

static Suite *meta_suite(void)
{
    Suite *s = suite_create("meta");
    /* Short: a resource wait that ignored timeout_seconds would run to the
     * harness's 30 s execution default and fail here. */
    TCase *tw = tcase_create("timeout_seconds");
    tcase_set_timeout(tw, 10);
    tcase_add_test(tw, test_resource_wait_timeout_seconds);
    suite_add_tcase(s, tw);
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_phases_in_order);
    tcase_add_test(tc, test_success_rate);
    tcase_add_test(tc, test_resource_wait_says_what_it_saw);
    tcase_add_test(tc, test_response_time);
    tcase_add_test(tc, test_rollback_phase_level);
    tcase_add_test(tc, test_rollback_pattern_level);
    tcase_add_test(tc, test_rollback_complete);
    tcase_add_test(tc, test_trigger_rollback);
    tcase_add_test(tc, test_complexity_matching);
    tcase_add_test(tc, test_definition_errors);
    tcase_add_test(tc, test_nested_on_one_thread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(meta_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
