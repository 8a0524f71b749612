/* Check suite for host/base/util.c: names, globs, strbuf, JSON numbers,
 * error messages. */
#include "build-config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

START_TEST(test_name_valid)
{
    ck_assert(name_valid("data_processing_pipeline"));
    ck_assert(name_valid("a"));
    ck_assert(name_valid("v1.2-beta_3"));
    ck_assert(!name_valid(NULL));
    ck_assert(!name_valid(""));
    ck_assert(!name_valid(".hidden"));
    ck_assert(!name_valid("../etc/passwd"));
    ck_assert(!name_valid("a/b"));
    ck_assert(!name_valid("sp ace"));
    ck_assert(!name_valid("caf\xc3\xa9"));
    char buf[200];
    memset(buf, 'x', 128);
    buf[128] = '\0';
    ck_assert(name_valid(buf));
    buf[128] = 'x';
    buf[129] = '\0';
    ck_assert(!name_valid(buf));
}
END_TEST

START_TEST(test_glob)
{
    ck_assert(glob_match("*", ""));
    ck_assert(glob_match("*", "anything.at.all"));
    ck_assert(glob_match("web_*", "web_development.frontend"));
    ck_assert(glob_match("web_development.*", "web_development.frontend"));
    ck_assert(!glob_match("data_*", "web_development.frontend"));
    ck_assert(glob_match("d?ta", "data"));
    ck_assert(!glob_match("d?ta", "dta"));
    ck_assert(glob_match("*a*b*c", "xxaxxbxxc"));
    ck_assert(!glob_match("*a*b*c", "xxaxxbxx"));
    ck_assert(glob_match("exact", "exact"));
    ck_assert(!glob_match("exact", "exactly"));
    /* A hostile pattern must not take exponential time. */
    ck_assert(!glob_match("*a*a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

START_TEST(test_utf8)
{
    ck_assert(utf8_valid("", 0));
    ck_assert(utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    ck_assert(!utf8_valid("\xff", 1));
    ck_assert(!utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    ck_assert(!utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    ck_assert(!utf8_valid("\xc3", 1));             /* truncated */
    ck_assert(utf8_valid("a\0b", 3));              /* NUL is valid UTF-8 */
    char *r = utf8_repair("ok \xff\xc3 caf\xc3\xa9");
    ck_assert_str_eq(r, "ok \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9");
    ck_assert(utf8_valid(r, strlen(r)));
    free(r);
    r = utf8_repair("");
    ck_assert_str_eq(r, "");
    free(r);
}
END_TEST

/* Numbers as the options and requests give them: whole, in range, plain. */
START_TEST(test_parse_numbers)
{
    double d;
    ck_assert_int_eq(parse_seconds("0", &d), 0);
    ck_assert(d == 0);
    ck_assert_int_eq(parse_seconds("2.5", &d), 0);
    ck_assert(d == 2.5);
    ck_assert_int_eq(parse_seconds(".5", &d), 0);
    ck_assert_int_eq(parse_seconds("1e9", &d), 0);
    ck_assert(d == 1e9);
    static const char *const bad_s[] = {"",      " 5",         "5 ",  "+5",  "-1",
                                        "1e300", "1000000001", "nan", "inf", "infinity",
                                        "0x10",  "5s",         "1e",  "--1"};
    for (size_t i = 0; i < sizeof bad_s / sizeof *bad_s; i++)
        ck_assert_msg(parse_seconds(bad_s[i], &d) == -1, "'%s' taken", bad_s[i]);
    long v;
    ck_assert_int_eq(parse_long_in("-7", -10, 10, &v), 0);
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(parse_long_in("10", -10, 10, &v), 0);
    static const char *const bad_l[] = {"",    " 5",  "+5",  "5x", "11",
                                        "-11", "0x5", "5.0", "-",  "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_l / sizeof *bad_l; i++)
        ck_assert_msg(parse_long_in(bad_l[i], -10, 10, &v) == -1, "'%s' taken", bad_l[i]);
    const char *j = "{\"a\": \"x\\\\u0000\", \"b\\u0000\": 1}";
    ck_assert_ptr_eq(json_nul_escape(j, strlen(j)), strstr(j, "\\u0000\":"));
    ck_assert_ptr_null(json_nul_escape("{\"a\": \"\\\\u0000\"}", 13));
    ck_assert_ptr_null(json_nul_escape("\\u0000", 6)); /* outside a string */
}
END_TEST

START_TEST(test_strbuf)
{
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "a");
    sb_printf(&sb, "%d-%s", 42, "x");
    for (int i = 0; i < 1000; i++)
        sb_add(&sb, "y", 1);
    ck_assert_uint_eq(sb.len, 1 + 4 + 1000);
    char *s = sb_steal(&sb);
    ck_assert(strncmp(s, "a42-xy", 6) == 0);
    ck_assert_ptr_null(sb.buf);
    free(s);
    s = sb_steal(&sb);
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

START_TEST(test_err)
{
    err_clear();
    ck_assert_str_eq(err_msg(), "");
    ck_assert_int_eq(err_set(NDF_ERR_NOT_FOUND, "pattern '%s' not found", "x"), NDF_ERR_NOT_FOUND);
    ck_assert_str_eq(err_msg(), "pattern 'x' not found");
    ck_assert_int_eq(err_prefix(NDF_ERR_IO, "loading %s", "f"), NDF_ERR_IO);
    ck_assert_str_eq(err_msg(), "loading f: pattern 'x' not found");
    char *p = xasprintf("%s=%d", "k", 7);
    ck_assert_str_eq(p, "k=7");
    free(p);
    ck_assert_str_eq(ndf_status_name(NDF_ERR_CONFIDENCE), "confidence below threshold");
    ck_assert_str_eq(ndf_status_name(-999), "unknown error");
}
END_TEST

START_TEST(test_json_num)
{
    strbuf sb;
    sb_init(&sb);
    double third = 1.0 / 3.0, sum = 0.1 + 0.2;
    sb_json_num(&sb, 0.1, 0);
    sb_puts(&sb, " ");
    sb_json_num(&sb, sum, 0); /* needs all 17 digits */
    sb_puts(&sb, " ");
    sb_json_num(&sb, third, 6);
    sb_puts(&sb, " ");
    sb_json_num(&sb, 300, 0);
    sb_puts(&sb, " ");
    sb_json_num(&sb, -2.5e-7, 0);
    sb_puts(&sb, " ");
    sb_json_num(&sb, 0.0 / 0.0, 0);
    sb_puts(&sb, " ");
    sb_json_num(&sb, 1.0 / 0.0, 6);
    ck_assert_str_eq(sb.buf, "0.1 0.30000000000000004 0.333333 300 -2.5e-07 null null");
    sb_free(&sb);
    /* the shortest form always reads back exactly */
    double x = 1.0;
    for (int i = 0; i < 200; i++) {
        x = x * 1.37 + third;
        sb_json_num(&sb, x, 0);
        ck_assert(strtod(sb.buf, NULL) == x);
        sb_free(&sb);
    }
}
END_TEST

/* A message built from the current one: the arguments point into the very
 * buffer being written (err_set(..., err_msg()), and the SDK's
 * host->fail(rc, "%s", host->last_error())). */
START_TEST(test_err_from_itself)
{
    err_set(NDF_ERR_IO, "disk full");
    ck_assert_int_eq(err_set(NDF_ERR_EXECUTION, "saving state: %s", err_msg()), NDF_ERR_EXECUTION);
    ck_assert_str_eq(err_msg(), "saving state: disk full");
    err_set(NDF_ERR_IO, "%s; then %s", err_msg(), "gave up");
    ck_assert_str_eq(err_msg(), "saving state: disk full; then gave up");
    err_set(NDF_ERR_IO, "%s", err_msg());
    ck_assert_str_eq(err_msg(), "saving state: disk full; then gave up");
    err_set(NDF_ERR_IO, "x");
    err_prefix(NDF_ERR_IO, "%s", err_msg());
    ck_assert_str_eq(err_msg(), "x: x");
    /* a message at the size limit, quoted into a longer one, is cut, not
     * smeared */
    char big[4096];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    err_set(NDF_ERR_IO, "%s", big);
    size_t full = strlen(err_msg());
    ck_assert_uint_gt(full, 1000);
    err_set(NDF_ERR_IO, "pre %s", err_msg());
    ck_assert_uint_eq(strlen(err_msg()), full);
    ck_assert_int_eq(strncmp(err_msg(), "pre aaaa", 8), 0);
    ck_assert_ptr_null(strchr(err_msg() + 4, 'p'));
}
END_TEST

START_TEST(test_clocks)
{
    double a = now_mono(), b = now_mono();
    ck_assert(b >= a);
    ck_assert(now_wall() > 1.6e9);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_name_valid);
    tcase_add_test(tc, test_glob);
    tcase_add_test(tc, test_parse_numbers);
    tcase_add_test(tc, test_strbuf);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_err);
    tcase_add_test(tc, test_err_from_itself);
    tcase_add_test(tc, test_json_num);
    tcase_add_test(tc, test_clocks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(util_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
