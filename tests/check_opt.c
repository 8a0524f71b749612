/* Check suite for host/cli/opt.c: getopt_long's syntax without its global
 * state, exact long names only. */
#include "build-config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/opt.h"

enum { O_JSON = 0x100, O_CONFIG, O_CONTEXT, O_ATTR };

static const opt_spec specs[] = {
    {"json", 0, OPT_NONE, O_JSON},           {"config", 'c', OPT_REQUIRED, O_CONFIG},
    {"context", 0, OPT_REQUIRED, O_CONTEXT}, {"attr", 0, OPT_REQUIRED, O_ATTR},
    {"dry-run", 'n', OPT_NONE, 'n'},         {"help", 'h', OPT_NONE, 'h'},
    {NULL, 'f', OPT_REQUIRED, 'f'},          {0}};

/* Runs the parser over `args` (NULL-terminated, argv[0] "cmd"), writing
 * each result as "id[=arg]" and refusals as "?" into `trace`; the
 * messages go to `msgs` (both caller-freed). */
static opt_parser run(opt_mode mode, const char **args, char **trace, char **msgs)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"cmd";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    size_t tlen, mlen;
    FILE *t = open_memstream(trace, &tlen), *m = open_memstream(msgs, &mlen);
    opt_parser p;
    opt_init(&p, argc, argv, specs, mode, m);
    int o;
    while ((o = opt_next(&p)) != OPT_END) {
        if (o == OPT_BAD)
            fprintf(t, "?(%s) ", p.bad);
        else if (p.arg)
            fprintf(t, "%d=%s ", o, p.arg);
        else
            fprintf(t, "%d ", o);
    }
    fclose(t);
    fclose(m);
    /* argv was on this stack; its strings, literals, outlive it */
    p.argv = NULL;
    return p;
}

START_TEST(test_permute)
{
    char *t, *m;
    const char *a[] = {"a", "--json", "b", "-n", "--config=x", "c", NULL};
    opt_parser p = run(OPT_PERMUTE, a, &t, &m);
    ck_assert_str_eq(t, "256 110 257=x ");
    ck_assert_str_eq(m, "");
    ck_assert_int_eq(p.noperands, 3);
    ck_assert_str_eq(p.operands[0], "a");
    ck_assert_str_eq(p.operands[1], "b");
    ck_assert_str_eq(p.operands[2], "c");
    free(t);
    free(m);
}
END_TEST

START_TEST(test_stop)
{
    char *t, *m;
    const char *a[] = {"-n", "list", "--json", NULL};
    opt_parser p = run(OPT_STOP, a, &t, &m);
    ck_assert_str_eq(t, "110 ");
    ck_assert_int_eq(p.ind, 2);
    ck_assert_int_eq(p.noperands, 2);
    ck_assert_str_eq(p.operands[0], "list");
    ck_assert_str_eq(p.operands[1], "--json");
    free(t);
    free(m);
}
END_TEST

/* getopt_long took "--c" for --config or --context (whichever was unique),
 * so a served "--c /path" slipped past a filter on "--context". */
START_TEST(test_abbreviation_refused)
{
    char *t, *m;
    const char *a[] = {"--c", "/etc/shadow", "--jso", "--con=x", "--nope", NULL};
    opt_parser p = run(OPT_PERMUTE, a, &t, &m);
    ck_assert_str_eq(t, "?(--c) ?(--jso) ?(--con=x) ?(--nope) ");
    ck_assert_ptr_nonnull(strstr(m, "ndf: cmd: unrecognized option '--c' (abbreviations are not "
                                    "accepted; did you mean '--config' or '--context'?)\n"));
    ck_assert_ptr_nonnull(strstr(m, "did you mean '--json'?)"));
    ck_assert_ptr_nonnull(strstr(m, "cmd: unrecognized option '--nope'\n"));
    /* the value that followed the refused option is an operand, not read */
    ck_assert_int_eq(p.noperands, 1);
    ck_assert_str_eq(p.operands[0], "/etc/shadow");
    free(t);
    free(m);
}
END_TEST

START_TEST(test_values)
{
    char *t, *m;
    const char *a[] = {"--attr", "-x", "--context=", "--config", "--json",
                       "-fjson", "-f", "csv",        "-c=v",     NULL};
    opt_parser p = run(OPT_PERMUTE, a, &t, &m);
    /* a required value is the next argument whatever it looks like */
    ck_assert_str_eq(t, "259=-x 258= 257=--json 102=json 102=csv 257==v ");
    ck_assert_int_eq(p.noperands, 0);
    free(t);
    free(m);
}
END_TEST

START_TEST(test_refusals)
{
    char *t, *m;
    const char *a[] = {"--json=1", "-z", "-nz", "--config", NULL};
    opt_parser p = run(OPT_PERMUTE, a, &t, &m);
    ck_assert_str_eq(t, "?(--json=1) ?(-z) 110 ?(-nz) ?(--config) ");
    ck_assert_int_eq(p.noperands, 0);
    /* the diagnostics' one style: "ndf: COMMAND: message" */
    ck_assert_str_eq(m, "ndf: cmd: option '--json' doesn't allow an argument\n"
                        "ndf: cmd: invalid option -- 'z'\n"
                        "ndf: cmd: invalid option -- 'z'\n"
                        "ndf: cmd: option '--config' requires an argument\n");
    free(t);
    free(m);
    const char *b[] = {"-f", NULL};
    p = run(OPT_PERMUTE, b, &t, &m);
    ck_assert_str_eq(m, "ndf: cmd: option requires an argument -- 'f'\n");
    free(t);
    free(m);
}
END_TEST

START_TEST(test_clusters_and_ends)
{
    char *t, *m;
    const char *a[] = {"-nh", "-", "--", "--json", "-n", NULL};
    opt_parser p = run(OPT_PERMUTE, a, &t, &m);
    ck_assert_str_eq(t, "110 104 ");
    ck_assert_int_eq(p.noperands, 3);
    ck_assert_str_eq(p.operands[0], "-");
    ck_assert_str_eq(p.operands[1], "--json");
    ck_assert_str_eq(p.operands[2], "-n");
    free(t);
    free(m);
    const char *b[] = {"--", "x", NULL};
    p = run(OPT_STOP, b, &t, &m);
    ck_assert_int_eq(p.ind, 2);
    ck_assert_int_eq(p.noperands, 1);
    free(t);
    free(m);
}
END_TEST

START_TEST(test_many_operands)
{
    char *t, *m;
    const char *a[] = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", NULL};
    opt_parser p = run(OPT_PERMUTE, a, &t, &m);
    ck_assert_int_eq(p.noperands, 10);
    ck_assert_str_eq(p.operands[OPT_MAX_OPERANDS - 1], "8");
    free(t);
    free(m);
}
END_TEST

/* Two parsers at once (two served commands on two threads) do not see each
 * other's state; OPT_END stays OPT_END. */
START_TEST(test_reentrant)
{
    char x[] = "x", json[] = "--json", op1[] = "op1", y[] = "y", n[] = "-n", cfg[] = "--config",
         v[] = "v";
    char *a[] = {x, json, op1, NULL}, *b[] = {y, n, cfg, v, NULL};
    opt_parser p, q;
    opt_init(&p, 3, a, specs, OPT_PERMUTE, NULL);
    opt_init(&q, 4, b, specs, OPT_PERMUTE, NULL);
    ck_assert_int_eq(opt_next(&p), O_JSON);
    ck_assert_int_eq(opt_next(&q), 'n');
    ck_assert_int_eq(opt_next(&q), O_CONFIG);
    ck_assert_str_eq(q.arg, "v");
    ck_assert_int_eq(opt_next(&p), OPT_END);
    ck_assert_int_eq(opt_next(&p), OPT_END);
    ck_assert_int_eq(p.noperands, 1);
    ck_assert_int_eq(opt_next(&q), OPT_END);
    ck_assert_int_eq(q.noperands, 0);
    /* argv is left as it was */
    ck_assert_str_eq(a[1], "--json");
    ck_assert_str_eq(a[2], "op1");
}
END_TEST

static Suite *opt_suite(void)
{
    Suite *s = suite_create("opt");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_permute);
    tcase_add_test(tc, test_stop);
    tcase_add_test(tc, test_abbreviation_refused);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_clusters_and_ends);
    tcase_add_test(tc, test_many_operands);
    tcase_add_test(tc, test_reentrant);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(opt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
