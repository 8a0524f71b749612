/* Check suite for host/value.c: the value tree, schema validation with
 * file:line messages, defaults, and JSON output. */
#include "build-config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "base/value.h"

static ndf_value *at(ndf_value *v, const char *file, int line)
{
    value_set_pos(v, value_intern_file(file), line);
    return v;
}

static const ndf_param_spec step_children[] = {
    NDF_PARAM("name", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, "step name"),
    NDF_PARAM_RANGED("retries", NDF_VALUE_INT, 0, "0", 0, 100, "retries"),
    NDF_PARAM_END,
};

static const ndf_param_spec schema[] = {
    NDF_PARAM_RANGED("timeout", NDF_VALUE_NUMBER, 0, "300", 0.001, 86400, "seconds"),
    NDF_PARAM("rollback", NDF_VALUE_BOOL, 0, "true", "undo on failure"),
    NDF_PARAM("mode", NDF_VALUE_STRING, 0, "fast", "a bare string default"),
    NDF_PARAM_RANGED("label", NDF_VALUE_STRING, 0, NULL, 1, 8, "1..8 characters"),
    NDF_PARAM_LIST("steps", NDF_VALUE_GROUP, NDF_PARAM_REQUIRED, step_children, "the steps"),
    NDF_PARAM_LIST("tags", NDF_VALUE_STRING, 0, NULL, "strings only"),
    NDF_PARAM("anything", NDF_VALUE_ANY, 0, NULL, "any type"),
    NDF_PARAM_END,
};

/* { steps = ( { name = "a"; } ); } at f.conf lines 10.. */
static ndf_value *good_params(void)
{
    ndf_value *g = at(value_new_group("params"), "f.conf", 10);
    ndf_value *steps = at(value_new_list("steps"), "f.conf", 11);
    ndf_value *s = at(value_new_group(NULL), "f.conf", 12);
    value_append(s, at(value_new_string("name", "a"), "f.conf", 12));
    value_append(steps, s);
    value_append(g, steps);
    return g;
}

START_TEST(test_construct_and_lookup)
{
    ndf_value *g = value_new_group(NULL);
    value_append(g, value_new_int("i", 7));
    value_append(g, value_new_number("n", 2.5));
    value_append(g, value_new_bool("b", 1));
    value_append(g, value_new_string("s", "x"));
    ck_assert_int_eq(value_int(value_get(g, "i")), 7);
    ck_assert(value_number(value_get(g, "i")) == 7.0);
    ck_assert(value_number(value_get(g, "n")) == 2.5);
    ck_assert_int_eq(value_int(value_get(g, "n")), 2);
    ck_assert(value_bool(value_get(g, "b")));
    ck_assert_str_eq(value_string(value_get(g, "s")), "x");
    ck_assert_ptr_null(value_string(value_get(g, "i")));
    ck_assert_ptr_null(value_get(g, "missing"));
    /* Same name replaces. */
    value_append(g, value_new_int("i", 8));
    ck_assert_uint_eq(value_count(g), 4);
    ck_assert_int_eq(value_int(value_get(g, "i")), 8);
    ndf_value *d = value_dup(g);
    ck_assert(value_equal(g, d));
    value_append(d, value_new_int("extra", 1));
    ck_assert(!value_equal(g, d));
    ck_assert_int_eq(value_remove(d, 4), 0);
    ck_assert(value_equal(g, d));
    ck_assert_int_eq(value_remove(d, 99), -1);
    value_insert(d, 0, value_new_string("first", "f"));
    ck_assert_str_eq(value_at(d, 0)->name, "first");
    value_free(d);
    value_free(g);
    ck_assert_ptr_eq(value_intern_file("a.conf"), value_intern_file("a.conf"));
}
END_TEST

START_TEST(test_validate_defaults)
{
    ndf_value *g = good_params();
    ck_assert_int_eq(value_validate(g, schema, "pattern 'p'"), NDF_OK);
    ck_assert(value_number(value_get(g, "timeout")) == 300.0);
    ck_assert_int_eq(value_get(g, "timeout")->type, NDF_VALUE_NUMBER);
    ck_assert(value_bool(value_get(g, "rollback")));
    ck_assert_str_eq(value_string(value_get(g, "mode")), "fast");
    ck_assert_ptr_null(value_get(g, "label"));
    /* Defaults reach nested groups too. */
    ndf_value *s0 = value_at(value_get(g, "steps"), 0);
    ck_assert_int_eq(value_int(value_get(s0, "retries")), 0);
    value_free(g);
}
END_TEST

static void expect_error(ndf_value *g, const char *msg)
{
    ck_assert_int_eq(value_validate(g, schema, "pattern 'p'"), NDF_ERR_VALIDATION);
    ck_assert_msg(strcmp(err_msg(), msg) == 0, "got '%s', wanted '%s'", err_msg(), msg);
    value_free(g);
}

START_TEST(test_validate_errors)
{
    ndf_value *g = at(value_new_group("params"), "f.conf", 3);
    expect_error(g, "f.conf:3: pattern 'p': missing required parameter 'steps'");

    g = good_params();
    value_append(g, at(value_new_string("timeout", "soon"), "f.conf", 14));
    expect_error(g, "f.conf:14: pattern 'p': 'timeout' must be a number, not string");

    g = good_params();
    value_append(g, at(value_new_int("timeout", 0), "f.conf", 15));
    expect_error(g, "f.conf:15: pattern 'p': 'timeout' is 0, out of range [0.001, 86400]");

    g = good_params();
    value_append(g, at(value_new_string("label", "much too long"), "f.conf", 16));
    expect_error(g, "f.conf:16: pattern 'p': 'label' is 13 characters, out of range [1, 8]");

    g = good_params();
    value_append(g, at(value_new_bool("colour", 1), "f.conf", 17));
    expect_error(g, "f.conf:17: pattern 'p': unknown parameter 'colour'");

    g = good_params();
    ndf_value *s0 = value_at(value_get(g, "steps"), 0);
    value_append(s0, at(value_new_int("retries", 101), "f.conf", 18));
    expect_error(g, "f.conf:18: pattern 'p': 'steps[0].retries' is 101, out of range [0, 100]");

    g = good_params();
    ndf_value *s1 = at(value_new_group(NULL), "f.conf", 19);
    value_append(value_get(g, "steps"), s1);
    expect_error(g, "f.conf:19: pattern 'p': missing required parameter 'steps[1].name'");

    /* the path of a member of a list element (written only for a message) */
    g = good_params();
    s0 = value_at(value_get(g, "steps"), 0);
    value_append(s0, at(value_new_bool("colour", 1), "f.conf", 23));
    expect_error(g, "f.conf:23: pattern 'p': unknown parameter 'steps[0].colour'");

    g = good_params();
    ndf_value *tags = at(value_new_list("tags"), "f.conf", 20);
    value_append(tags, at(value_new_string(NULL, "ok"), "f.conf", 20));
    value_append(tags, at(value_new_int(NULL, 3), "f.conf", 21));
    value_append(g, tags);
    expect_error(g, "f.conf:21: pattern 'p': 'tags[1]' must be a string, not integer");

    g = good_params();
    value_append(g, at(value_new_int("rollback", 1), "f.conf", 22));
    expect_error(g, "f.conf:22: pattern 'p': 'rollback' must be a bool, not integer");

    /* ANY accepts every type; an INT is a valid NUMBER. */
    g = good_params();
    value_append(g, value_new_list("anything"));
    value_append(g, value_new_int("timeout", 5));
    ck_assert_int_eq(value_validate(g, schema, "p"), NDF_OK);
    value_free(g);

    /* Not a group at all. */
    ndf_value *s = at(value_new_string("params", "x"), "f.conf", 30);
    ck_assert_int_eq(value_validate(s, schema, "pattern 'p'"), NDF_ERR_VALIDATION);
    ck_assert_str_eq(err_msg(), "f.conf:30: pattern 'p': parameters must be a group");
    value_free(s);
}
END_TEST

START_TEST(test_open_group)
{
    static const ndf_param_spec inner[] = {
        NDF_PARAM("known", NDF_VALUE_INT, 0, NULL, "known"),
        NDF_PARAM_END,
    };
    static const ndf_param_spec outer[] = {
        NDF_PARAM_GROUP("g", NDF_PARAM_OPEN, inner, "open group"),
        NDF_PARAM_END,
    };
    ndf_value *top = value_new_group(NULL);
    ndf_value *g = value_new_group("g");
    value_append(g, value_new_string("foreign", "kept"));
    value_append(top, g);
    ck_assert_int_eq(value_validate(top, outer, "x"), NDF_OK);
    ck_assert_str_eq(value_string(value_get(g, "foreign")), "kept");
    value_free(top);
}
END_TEST

START_TEST(test_bad_plugin_default)
{
    static const ndf_param_spec bad[] = {
        NDF_PARAM("n", NDF_VALUE_INT, 0, "twelve", "a default that is not an integer"),
        NDF_PARAM_END,
    };
    ndf_value *g = value_new_group(NULL);
    ck_assert_int_eq(value_validate(g, bad, "step 'x'"), NDF_ERR_INVALID);
    ck_assert(strstr(err_msg(), "the plugin's default for 'n' (twelve) is not a valid integer"));
    value_free(g);
}
END_TEST

START_TEST(test_parse_default)
{
    ndf_value *v = value_parse_default("x", "0.5", NDF_VALUE_NUMBER);
    ck_assert(v && v->type == NDF_VALUE_NUMBER && v->u.n == 0.5);
    value_free(v);
    v = value_parse_default("x", "3", NDF_VALUE_NUMBER);
    ck_assert(v && v->type == NDF_VALUE_NUMBER && v->u.n == 3.0);
    value_free(v);
    v = value_parse_default("x", "\"quoted \\\" text\"", NDF_VALUE_STRING);
    ck_assert_str_eq(value_string(v), "quoted \" text");
    value_free(v);
    v = value_parse_default("x", "[\"a\", \"b\"]", NDF_VALUE_LIST);
    ck_assert_uint_eq(value_count(v), 2);
    ck_assert_str_eq(value_string(value_at(v, 1)), "b");
    value_free(v);
    ck_assert_ptr_null(value_parse_default("x", "true", NDF_VALUE_INT));
    ck_assert_ptr_null(value_parse_default("x", "12abc", NDF_VALUE_INT));
    ck_assert_ptr_null(value_parse_default("x", "[1, 2", NDF_VALUE_LIST));
    v = value_parse_default("x", "0x10", NDF_VALUE_INT);
    ck_assert_int_eq(value_int(v), 16);
    value_free(v);
}
END_TEST

START_TEST(test_json)
{
    ndf_value *g = value_new_group(NULL);
    value_append(g, value_new_string("s", "a\"b\\c\n\x01"));
    value_append(g, value_new_int("i", -3));
    value_append(g, value_new_number("n", 0.25));
    value_append(g, value_new_number("inf", INFINITY));
    value_append(g, value_new_bool("b", 0));
    ndf_value *l = value_new_list("l");
    value_append(l, value_new_int(NULL, 1));
    value_append(g, l);
    strbuf sb;
    sb_init(&sb);
    value_to_json(g, &sb);
    ck_assert_str_eq(sb.buf, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"i\":-3,\"n\":0.25,\"inf\":null,"
                             "\"b\":false,\"l\":[1]}");
    sb_free(&sb);
    value_free(g);
}
END_TEST

static Suite *value_suite(void)
{
    Suite *s = suite_create("value");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_construct_and_lookup);
    tcase_add_test(tc, test_validate_defaults);
    tcase_add_test(tc, test_validate_errors);
    tcase_add_test(tc, test_open_group);
    tcase_add_test(tc, test_bad_plugin_default);
    tcase_add_test(tc, test_parse_default);
    tcase_add_test(tc, test_json);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(value_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
