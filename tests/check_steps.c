/* Check suite for the core steps plugin (plugins/steps): exec with argv,
 * shell, env, cwd, stdin, exit status and undo; templating from the
 * context and its errors; the cross-field rules of exec's create(); sleep,
 * log, fail, noop and pattern (with its undo). */
#include "build-config.h"

#include "plugin_harness.h"

/* A one-step sequential pattern named `name` running step `type`. */
#define ONE(name, type, params)                                                                    \
    "{ name = \"" name "\"; type = \"sequential\"; params = { steps = ( { name = \"s\"; "          \
    "step = \"" type "\"; params = { " params " }; } ); }; }"

static int run_ctx(harness *h, const char *name, record **r, char **msg)
{
    ndf_context *c = context_new("payments.eu", "deployer", 2);
    context_set_attr(c, "user", value_new_string("user", "ada"));
    int rc = h_run(h, name, c, 0, r, msg);
    context_free(c);
    return rc;
}

START_TEST(test_exec_argv_env_cwd_stdin)
{
    harness h;
    h_open_ok(&h, 1,
              ONE("argv", "exec", "argv = [\"touch\", \"@DIR@/touched-${attr.user}\"];") ",\n" ONE(
                  "shell", "exec",
                  "shell = true; command = \"echo $GREETING $NDF_DOMAIN > "
                  "@DIR@/shell\"; env = { GREETING = \"hi ${agent_type}\"; };") ",\n" ONE("cwd",
                                                                                          "exec",
                                                                                          "argv = "
                                                                                          "[\"/bin/"
                                                                                          "sh\", "
                                                                                          "\"-c\", "
                                                                                          "\"pwd > "
                                                                                          "out\"]; "
                                                                                          "cwd = "
                                                                                          "\"@DIR@"
                                                                                          "\";") ","
                                                                                                 "\n" ONE("stdin",
                                                                                                          "exec",
                                                                                                          "argv = [\"/bin/sh\", \"-c\", \"cat > @DIR@/in\"]; "
                                                                                                          "stdin = \"priority ${priority}, $$5\";"));
    record *r;
    char *msg;
    const char *names[] = {"argv", "shell", "cwd", "stdin"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_msg(run_ctx(&h, names[i], &r, &msg) == NDF_OK, "%s: %s", names[i], msg);
        record_unref(r);
        free(msg);
    }
    char *p = h_path(&h, "touched-ada");
    ck_assert_int_eq(access(p, F_OK), 0);
    free(p);
    char *s = h_file(&h, "shell");
    ck_assert_str_eq(s, "hi deployer payments.eu\n");
    free(s);
    s = h_file(&h, "out");
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(h.dir, real));
    ck_assert_msg(strncmp(s, real, strlen(real)) == 0, "pwd said %s", s);
    free(s);
    s = h_file(&h, "in");
    ck_assert_str_eq(s, "priority 2, $5");
    free(s);
    h_close(&h);
}
END_TEST

START_TEST(test_exec_exit_status_and_output)
{
    harness h;
    h_open_ok(
        &h, 1,
        ONE("bad", "exec", "argv = [\"/bin/sh\", \"-c\", \"echo oops >&2; exit 3\"];") ",\n" ONE(
            "missing", "exec", "argv = [\"/nonexistent/program\"];"));
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "bad", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_state(r, "bad/s", NDF_STATE_FAILED);
    ndf_exec *n = h_find(r->root, "s");
    ck_assert_msg(n->out[REC_STDERR].buf && strstr(n->out[REC_STDERR].buf, "oops"),
                  "stderr not captured");
    ck_assert_msg(strstr(h_message(r, "bad/s"), "3") != NULL, "%s", h_message(r, "bad/s"));
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run_ctx(&h, "missing", &r, &msg), NDF_ERR_EXECUTION);
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_templating_errors)
{
    harness h;
    h_open_ok(
        &h, 1,
        ONE("argv", "exec", "argv = [\"echo\", \"${nope}\"];") ",\n" ONE(
            "env", "exec",
            "argv = [\"true\"]; env = { X = \"${attr.missing}\"; };") ",\n" ONE("log", "log",
                                                                                "message = \"hello "
                                                                                "${attr.user\";"));
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "argv", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_state(r, "argv/s", NDF_STATE_FAILED);
    ck_assert_msg(strstr(h_message(r, "argv/s"), "unknown variable ${nope}") != NULL, "%s",
                  h_message(r, "argv/s"));
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run_ctx(&h, "env", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_msg(strstr(h_message(r, "env/s"), "unknown variable ${attr.missing}") != NULL, "%s",
                  h_message(r, "env/s"));
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run_ctx(&h, "log", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_msg(strstr(h_message(r, "log/s"), "unterminated") != NULL, "%s",
                  h_message(r, "log/s"));
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_exec_definition_errors)
{
    harness h;
    h_open(
        &h, 1,
        ONE("a", "exec", "command = \"ls\";") ",\n" ONE("b", "exec", "argv = [\"ls\"]; command = \"ls\"; shell = true;") ",\n" ONE("c", "exec", "cwd = \"/\";") ",\n" ONE("d", "exec", "argv = [\"ls\"]; shell = true;") ",\n" ONE(
            "e", "exec",
            "argv = [];") ",\n" ONE("f", "exec",
                                    "argv = [\"ls\"]; env = { X-Y = \"y\"; };") ",\n" ONE("g",
                                                                                          "exec",
                                                                                          "argv = "
                                                                                          "[\"ls\"]"
                                                                                          "; undo "
                                                                                          "= \"rm "
                                                                                          "-rf "
                                                                                          "x\";") ",\n" ONE("h",
                                                                                                            "exec",
                                                                                                            "argv = [\"ls\"]; env = { X = 1; };") ",\n" ONE("i",
                                                                                                                                                            "log",
                                                                                                                                                            "message = \"m\"; level = \"loud\";") ",\n" ONE("j",
                                                                                                                                                                                                            "exec",
                                                                                                                                                                                                            "argv = [\"ls\"]; undo = 5;"));
    const char *e = h_errors(&h);
    ck_assert_msg(strstr(e, "'command' is a shell command string, which needs shell = true"), "%s",
                  e);
    ck_assert_msg(strstr(e, "give either 'argv' or 'command', not both"), "%s", e);
    ck_assert_msg(strstr(e, "needs 'argv' (a list) or 'command' (with shell = true)"), "%s", e);
    ck_assert_msg(strstr(e, "shell = true runs 'command', not 'argv'"), "%s", e);
    ck_assert_msg(strstr(e, "'argv' is an empty list"), "%s", e);
    ck_assert_msg(strstr(e, "'undo' is a shell command string"), "%s", e);
    ck_assert_msg(strstr(e, "'env.X' must be a string"), "%s", e);
    ck_assert_msg(strstr(e, "unknown level 'loud'"), "%s", e);
    ck_assert_msg(strstr(e, "'undo' must be a list of strings or a command string"), "%s", e);
    ck_assert_msg(strstr(e, "'env.X-Y' is not a valid environment variable name"), "%s", e);
    ck_assert_msg(h.nerrors == 10, "%zu errors:\n%s", h.nerrors, e);
    h_close(&h);
}
END_TEST

START_TEST(test_exec_undo_and_shell_undo)
{
    harness h;
    h_open_ok(&h, 1,
              "{ name = \"seq\"; type = \"sequential\"; params = { steps = ( "
              "{ name = \"a\"; step = \"exec\"; params = { argv = [\"touch\", \"@DIR@/a\"]; "
              "  undo = [\"rm\", \"@DIR@/a\"]; }; }, "
              "{ name = \"b\"; step = \"exec\"; params = { shell = true; command = \"touch "
              "@DIR@/b\"; undo = \"rm @DIR@/b && touch @DIR@/b-undone-${attr.user}\"; }; }, "
              "{ name = \"c\"; step = \"fail\"; params = { message = \"stop ${domain}\"; }; } ); "
              "}; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "seq", &r, &msg), NDF_ERR_EXECUTION);
    char *a = h_path(&h, "a"), *b = h_path(&h, "b"), *bu = h_path(&h, "b-undone-ada");
    ck_assert_int_ne(access(a, F_OK), 0);
    ck_assert_int_ne(access(b, F_OK), 0);
    ck_assert_int_eq(access(bu, F_OK), 0);
    ck_assert_str_eq(h_message(r, "seq/c"), "stop payments.eu");
    ck_assert_state(r, "seq/b", NDF_STATE_ROLLED_BACK);
    free(a);
    free(b);
    free(bu);
    free(msg);
    record_unref(r);
    h_close(&h);
}
END_TEST

START_TEST(test_sleep_log_fail_noop)
{
    harness h;
    h_open_ok(
        &h, 1,
        ONE("nap", "sleep", "seconds = 0.01;") ",\n" ONE(
            "long", "sleep",
            "seconds = 30.0;") ",\n" ONE("say", "log",
                                         "message = \"user ${attr.user} in ${domain}\"; level = "
                                         "\"warning\";") ",\n" ONE("late", "fail",
                                                                   "after = 0.01;") ",\n" ONE("noth"
                                                                                              "ing",
                                                                                              "noo"
                                                                                              "p",
                                                                                              ""));
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "nap", &r, &msg), NDF_OK);
    record_unref(r);
    free(msg);

    ndf_context *c = context_new("d", "a", 1);
    ck_assert_int_eq(h_run(&h, "long", c, 0.2, &r, &msg), NDF_ERR_TIMEOUT);
    ck_assert_state(r, "long/s", NDF_STATE_TIMED_OUT);
    context_free(c);
    record_unref(r);
    free(msg);

    ck_assert_int_eq(run_ctx(&h, "say", &r, &msg), NDF_OK);
    ndf_exec *n = h_find(r->root, "s");
    ck_assert_msg(n->out[REC_LOG].buf && strstr(n->out[REC_LOG].buf, "user ada in payments.eu"),
                  "log line missing");
    record_unref(r);
    free(msg);

    ck_assert_int_eq(run_ctx(&h, "late", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_str_eq(h_message(r, "late/s"), "failed as configured");
    record_unref(r);
    free(msg);

    ck_assert_int_eq(run_ctx(&h, "nothing", &r, &msg), NDF_OK);
    ck_assert_state(r, "nothing/s", NDF_STATE_COMPLETED);
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_pattern_step)
{
    harness h;
    h_open_ok(&h, 1,
              "{ name = \"inner\"; type = \"sequential\"; params = { steps = ( "
              "{ name = \"i\"; step = \"exec\"; params = { argv = [\"touch\", \"@DIR@/inner\"]; "
              "  undo = [\"rm\", \"@DIR@/inner\"]; }; } ); }; },\n"
              "{ name = \"outer\"; type = \"sequential\"; params = { steps = ( "
              "{ name = \"run-inner\"; step = \"pattern\"; params = { pattern = \"inner\"; }; }, "
              "{ name = \"boom\"; step = \"fail\"; } ); }; }");
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "outer", &r, &msg), NDF_ERR_EXECUTION);
    /* The sub-pattern ran, then its step was undone by the outer rollback. */
    char *p = h_path(&h, "inner");
    ck_assert_int_ne(access(p, F_OK), 0);
    free(p);
    ck_assert_state(r, "outer/run-inner", NDF_STATE_ROLLED_BACK);
    ck_assert_state(r, "outer/run-inner/inner/i", NDF_STATE_ROLLED_BACK);
    record_unref(r);
    free(msg);
    h_close(&h);

    h_open(&h, 1, ONE("lost", "pattern", "pattern = \"ghost\";"));
    ck_assert_int_eq(h.nerrors, 1);
    ck_assert_msg(strstr(h_errors(&h), "unknown pattern 'ghost'"), "%s", h_errors(&h));
    h_close(&h);
}
END_TEST

/* A ${...} in a shell command is one literal value wherever it sits:
 * unquoted, in double quotes, in single quotes.  Hostile values (command
 * separators, substitutions, backquotes, newlines, both quotes, a leading
 * dash, a trailing backslash) come out as text and run nothing. */
START_TEST(test_shell_values_are_data)
{
    static const char *const hostile[] = {
        "x; touch @DIR@/PWNED",
        "$(touch @DIR@/PWNED)",
        "`touch @DIR@/PWNED`",
        "a\ntouch @DIR@/PWNED",
        "it's \"quoted\" 'twice'",
        "'; touch @DIR@/PWNED; echo '",
        "\"; touch @DIR@/PWNED; echo \"",
        "-n",
        "back\\",
        "$HOME ${HOME} $$",
        "",
    };
    harness h;
    h_open_ok(&h, 1,
              ONE("q", "exec",
                  "shell = true; command = \"printf '[%s]' ${attr.v} >@DIR@/plain; "
                  "printf '[%s]' \\\"dq ${attr.v}\\\" >@DIR@/dq; "
                  "printf '[%s]' 'sq ${attr.v}' >@DIR@/sq\";"));
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        char *v = h_subst(&h, hostile[i]);
        ndf_context *c = context_new("d", "a", 1);
        context_set_attr(c, "v", value_new_string("v", v));
        record *r;
        char *msg;
        int rc = h_run(&h, "q", c, 0, &r, &msg);
        ck_assert_msg(rc == NDF_OK, "value %zu: %s", i, msg);
        record_unref(r);
        free(msg);
        context_free(c);
        char *want = xasprintf("[%s]", v);
        char *got = h_file(&h, "plain");
        ck_assert_msg(strcmp(got, want) == 0, "unquoted: value %zu: got %s", i, got);
        free(got);
        free(want);
        want = xasprintf("[dq %s]", v);
        got = h_file(&h, "dq");
        ck_assert_msg(strcmp(got, want) == 0, "double quotes: value %zu: got %s", i, got);
        free(got);
        free(want);
        want = xasprintf("[sq %s]", v);
        got = h_file(&h, "sq");
        ck_assert_msg(strcmp(got, want) == 0, "single quotes: value %zu: got %s", i, got);
        free(got);
        free(want);
        char *pwned = h_path(&h, "PWNED");
        ck_assert_msg(access(pwned, F_OK) != 0, "value %zu ran code", i);
        free(pwned);
        free(v);
    }
    h_close(&h);
}
END_TEST

/* A backslash right before ${...} would escape the opening quote: refused. */
START_TEST(test_shell_backslash_before_ref)
{
    harness h;
    h_open_ok(&h, 1, ONE("b", "exec", "shell = true; command = \"echo \\\\${attr.user}\";"));
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "b", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_msg(strstr(h_message(r, "b/s"), "backslash before ${...}") != NULL, "%s",
                  h_message(r, "b/s"));
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

static Suite *steps_suite(void)
{
    Suite *s = suite_create("steps");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_exec_argv_env_cwd_stdin);
    tcase_add_test(tc, test_exec_exit_status_and_output);
    tcase_add_test(tc, test_templating_errors);
    tcase_add_test(tc, test_shell_values_are_data);
    tcase_add_test(tc, test_shell_backslash_before_ref);
    tcase_add_test(tc, test_exec_definition_errors);
    tcase_add_test(tc, test_exec_undo_and_shell_undo);
    tcase_add_test(tc, test_sleep_log_fail_noop);
    tcase_add_test(tc, test_pattern_step);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(steps_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
