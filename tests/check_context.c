/* Check suite for host/context.c: the seed's PatternContext methods, the
 * domain glob rules, --attr parsing and JSON contexts with their errors. */
#include "build-config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/context.h"
#include "base/util.h"

START_TEST(test_new_free_dup)
{
    ndf_context *c = context_new(NULL, "frontend", 3);
    ck_assert_str_eq(c->domain, "");
    ck_assert_str_eq(c->agent_type, "frontend");
    ck_assert_int_eq(c->priority, 3);
    ck_assert_uint_eq(value_count(c->attrs), 0);
    context_set_attr(c, "k", value_new_int(NULL, 7));
    ndf_context *d = context_dup(c);
    context_set_attr(c, "k", value_new_int("other-name", 8)); /* replaces, renamed */
    ck_assert_uint_eq(value_count(c->attrs), 1);
    ck_assert_int_eq(value_int(value_get(c->attrs, "k")), 8);
    ck_assert_int_eq(value_int(value_get(d->attrs, "k")), 7);
    context_free(c);
    context_free(d);
    context_free(NULL);
}
END_TEST

START_TEST(test_matches_domain)
{
    /* The seed's examples. */
    ndf_context *c = context_new("web_development.frontend", "", 1);
    ck_assert(context_matches_domain(c, "web_development.*"));
    ck_assert(context_matches_domain(c, "web_*"));
    ck_assert(!context_matches_domain(c, "data_*"));
    ck_assert(context_matches_domain(c, "*"));
    ck_assert(context_matches_domain(c, "web_development.frontend"));
    ck_assert(context_matches_domain(c, "*.frontend"));
    ck_assert(context_matches_domain(c, "web_development.fr?ntend"));
    ck_assert(!context_matches_domain(c, "web_development"));
    context_free(c);

    /* A glob ending in ".*" also matches its bare parent. */
    c = context_new("web_development", "", 1);
    ck_assert(context_matches_domain(c, "web_development.*"));
    ck_assert(!context_matches_domain(c, "web.*"));
    ck_assert(context_matches_domain(c, "web_*.*"));
    ck_assert(!context_matches_domain(c, "web_development_x.*"));
    ck_assert(!context_matches_domain(c, "web_developmen.*"));
    context_free(c);

    ck_assert(context_glob_match(".*", ""));
    ck_assert(!context_glob_match("a.*", "ab"));
    ck_assert(context_glob_match("a.*", "a.b.c"));
}
END_TEST

START_TEST(test_has_attribute)
{
    /* The seed's example. */
    ndf_context *c = context_new("web_dev", "frontend", 1);
    context_set_attr(c, "framework", value_new_string(NULL, "react"));
    context_set_attr(c, "complexity", value_new_string(NULL, "medium"));
    ndf_value *react = value_new_string(NULL, "react"), *vue = value_new_string(NULL, "vue");
    ck_assert(context_has_attribute(c, "framework", NULL));
    ck_assert(context_has_attribute(c, "framework", react));
    ck_assert(!context_has_attribute(c, "framework", vue));
    ck_assert(!context_has_attribute(c, "language", NULL));

    /* Lists contain; numbers compare by value across int and number. */
    ndf_value *l = value_new_list(NULL);
    value_append(l, value_new_string(NULL, "SOX"));
    value_append(l, value_new_string(NULL, "GDPR"));
    context_set_attr(c, "compliance", l);
    context_set_attr(c, "replicas", value_new_int(NULL, 3));
    ndf_value *sox = value_new_string(NULL, "SOX"), *three = value_new_number(NULL, 3.0);
    ndf_value *other = value_new_list(NULL);
    value_append(other, value_new_string(NULL, "HIPAA"));
    ck_assert(context_has_attribute(c, "compliance", sox));
    ck_assert(!context_has_attribute(c, "compliance", other));
    value_append(other, value_new_string(NULL, "GDPR"));
    ck_assert(context_has_attribute(c, "compliance", other));
    ck_assert(context_has_attribute(c, "replicas", three));
    ck_assert(!context_has_attribute(c, "replicas", sox));
    ck_assert(context_value_matches(sox, value_get(c->attrs, "compliance")));
    ck_assert(!context_value_matches(NULL, sox));
    value_free(react);
    value_free(vue);
    value_free(sox);
    value_free(three);
    value_free(other);
    context_free(c);
}
END_TEST

START_TEST(test_merge_attributes)
{
    ndf_context *c = context_new("devops", "deployment_engineer", 2);
    context_set_attr(c, "environment", value_new_string(NULL, "staging"));
    ndf_value *extra = value_new_group(NULL);
    value_append(extra, value_new_string("deployment_env", "production"));
    value_append(extra, value_new_string("scaling", "auto"));
    value_append(extra, value_new_string("environment", "production"));
    ndf_context *m = context_merge_attributes(c, extra);
    ck_assert_ptr_ne(m, c);
    ck_assert_str_eq(m->domain, "devops");
    ck_assert_int_eq(m->priority, 2);
    ck_assert_uint_eq(value_count(m->attrs), 3);
    ck_assert_str_eq(value_string(value_get(m->attrs, "scaling")), "auto");
    ck_assert_str_eq(value_string(value_get(m->attrs, "environment")), "production");
    /* The original is untouched. */
    ck_assert_uint_eq(value_count(c->attrs), 1);
    ck_assert_str_eq(value_string(value_get(c->attrs, "environment")), "staging");
    value_free(extra);
    context_free(m);
    context_free(c);
}
END_TEST

START_TEST(test_parse_attr)
{
    ndf_context *c = context_new("d", "a", 1);
    ck_assert_int_eq(context_parse_attr(c, "s=stream"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "i=42"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "n=0.5"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "b=true"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "f=false"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "l=[SOX, GDPR, 3]"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "e="), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "eq=a=b"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "empty=[]"), NDF_OK);
    ck_assert_int_eq(context_parse_attr(c, "word=inf"), NDF_OK);
    const ndf_value *a = c->attrs;
    ck_assert_int_eq(value_get(a, "s")->type, NDF_VALUE_STRING);
    ck_assert_int_eq(value_get(a, "i")->type, NDF_VALUE_INT);
    ck_assert_int_eq(value_int(value_get(a, "i")), 42);
    ck_assert_int_eq(value_get(a, "n")->type, NDF_VALUE_NUMBER);
    ck_assert_int_eq(value_get(a, "b")->type, NDF_VALUE_BOOL);
    ck_assert_int_eq(value_bool(value_get(a, "b")), 1);
    ck_assert_int_eq(value_bool(value_get(a, "f")), 0);
    const ndf_value *l = value_get(a, "l");
    ck_assert_int_eq(l->type, NDF_VALUE_LIST);
    ck_assert_uint_eq(value_count(l), 3);
    ck_assert_str_eq(value_string(value_at(l, 1)), "GDPR");
    ck_assert_int_eq(value_int(value_at(l, 2)), 3);
    ck_assert_str_eq(value_string(value_get(a, "e")), "");
    ck_assert_str_eq(value_string(value_get(a, "eq")), "a=b");
    ck_assert_uint_eq(value_count(value_get(a, "empty")), 0);
    ck_assert_str_eq(value_string(value_get(a, "word")), "inf");

    ck_assert_int_eq(context_parse_attr(c, "novalue"), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "--attr 'novalue': expected KEY=VALUE");
    ck_assert_int_eq(context_parse_attr(c, "=x"), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "--attr '=x': the key is empty");
    ck_assert_int_eq(context_parse_attr(c, "l=[a,,b]"), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "--attr 'l=[a,,b]': empty list element");
    context_free(c);
}
END_TEST

START_TEST(test_validate)
{
    ndf_context *c = context_new("d", "a", 9);
    ck_assert_int_eq(context_validate(c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "priority 9 is out of range (1 highest .. 5 lowest)");
    c->priority = 0;
    ck_assert_int_eq(context_validate(c), NDF_ERR_INVALID);
    c->priority = 5;
    ck_assert_int_eq(context_validate(c), NDF_OK);
    context_set_attr(c, "g", value_new_group(NULL));
    ck_assert_int_eq(context_validate(c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "attribute 'g' must be a string, number, boolean or list");
    context_free(c);
}
END_TEST

START_TEST(test_json)
{
    ndf_context *c;
    const char *text = "{\"domain\": \"enterprise_architecture\", \"agent_type\": "
                       "\"solution_architect\", \"priority\": 5, \"attributes\": "
                       "{\"migration_type\": \"cloud_native\", \"complexity\": \"enterprise\", "
                       "\"compliance\": [\"SOX\", \"GDPR\"], \"nodes\": 12, \"ratio\": 0.5, "
                       "\"ok\": true}}";
    ck_assert_int_eq(context_from_json(text, "ctx.json", &c), NDF_OK);
    ck_assert_str_eq(c->domain, "enterprise_architecture");
    ck_assert_str_eq(c->agent_type, "solution_architect");
    ck_assert_int_eq(c->priority, 5);
    ck_assert_uint_eq(value_count(c->attrs), 6);
    ck_assert_int_eq(value_get(c->attrs, "nodes")->type, NDF_VALUE_INT);
    ck_assert_int_eq(value_get(c->attrs, "ratio")->type, NDF_VALUE_NUMBER);
    strbuf sb;
    sb_init(&sb);
    context_to_json(c, &sb);
    ck_assert_str_eq(sb.buf, "{\"domain\":\"enterprise_architecture\",\"agent_type\":"
                             "\"solution_architect\",\"priority\":5,\"attributes\":{"
                             "\"migration_type\":\"cloud_native\",\"complexity\":\"enterprise\","
                             "\"compliance\":[\"SOX\",\"GDPR\"],\"nodes\":12,\"ratio\":0.5,"
                             "\"ok\":true}}");
    /* Round trip. */
    ndf_context *d;
    ck_assert_int_eq(context_from_json(sb.buf, "again", &d), NDF_OK);
    ck_assert(value_equal(c->attrs, d->attrs));
    sb_free(&sb);
    context_free(c);
    context_free(d);

    /* Defaults: priority 1, empty strings. */
    ck_assert_int_eq(context_from_json("{}", "x", &c), NDF_OK);
    ck_assert_int_eq(c->priority, 1);
    ck_assert_str_eq(c->domain, "");
    context_free(c);
}
END_TEST

START_TEST(test_json_errors)
{
    ndf_context *c = (ndf_context *)1;
    ck_assert_int_eq(context_from_json("{\"domain\": \"x\",\n  \"priority\": }", "ctx.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err_msg(), "ctx.json: invalid JSON at line 2, column 15");
    ck_assert_int_eq(context_from_json("[1]", "a.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: a context must be a JSON object");
    ck_assert_int_eq(context_from_json("{\"priority\": 9}", "a.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(),
                     "a.json: 'priority' must be an integer from 1 (highest) to 5 (lowest)");
    ck_assert_int_eq(context_from_json("{\"priority\": 2.5}", "a.json", &c), NDF_ERR_INVALID);
    ck_assert_int_eq(context_from_json("{\"domain\": 3}", "a.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: 'domain' must be a string");
    ck_assert_int_eq(context_from_json("{\"Domain\": \"x\"}", "a.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: unknown key 'Domain' (expected domain, agent_type, "
                                "priority, attributes)");
    ck_assert_int_eq(context_from_json("{\"attributes\": []}", "a.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: 'attributes' must be an object");
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"x\": null}}", "a.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(),
                     "a.json: attribute 'x' must be a string, number, boolean or list");
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"x\": [{}]}}", "a.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(),
                     "a.json: attribute 'x': list elements must be strings, numbers or booleans");
    ck_assert_int_eq(context_from_json("{} trailing", "t.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "t.json: invalid JSON at line 1, column 4");
}
END_TEST

START_TEST(test_json_file)
{
    ndf_context *c;
    ck_assert_int_eq(context_from_json_file("/nonexistent/ctx.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "/nonexistent/ctx.json: cannot read context: No such file or "
                                "directory");
    char path[] = "/tmp/check_context.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "{\"domain\": \"data_processing\", \"agent_type\": \"data_analyst\", "
                       "\"attributes\": {\"processing_type\": \"stream\"}}\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(context_from_json_file(path, &c), NDF_OK);
    ck_assert_str_eq(c->domain, "data_processing");
    ck_assert_str_eq(value_string(value_get(c->attrs, "processing_type")), "stream");
    context_free(c);
    unlink(path);

    /* /dev/zero read until memory ran out (abort in xrealloc) */
    ck_assert_int_eq(context_from_json_file("/dev/zero", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "/dev/zero: invalid JSON: contains a NUL byte");
    /* as did any huge file */
    strcpy(path, "/tmp/check_context.XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputc('{', f);
    for (size_t i = 0; i < CONTEXT_MAX_FILE; i++)
        fputc(' ', f);
    fputc('}', f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(context_from_json_file(path, &c), NDF_ERR_INVALID);
    char *want = xasprintf("%s: larger than 16 MiB; refusing to read it", path);
    ck_assert_str_eq(err_msg(), want);
    free(want);
    unlink(path);
}
END_TEST

/* Found by tests/fuzz/fuzz_context_json: text that JSON cannot write back. */
START_TEST(test_json_hostile)
{
    ndf_context *c = (ndf_context *)1;
    /* a number that overflows a double reads as infinity and wrote back as null */
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"e\": 1e999}}", "a.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err_msg(), "a.json: attribute 'e': the number is out of range");
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"l\": [1, -1e400]}}", "a.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: attribute 'l': a list element is out of range");
    /* invalid UTF-8 came back as U+FFFD, a different name or value */
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"re\xb8ions\": 1}}", "a.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: an attribute name is not valid UTF-8");
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"x\": \"\xc0\xaf\"}}", "a.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: attribute 'x': the string is not valid UTF-8");
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"x\": [\"ok\", \"\xff\"]}}", "a.json",
                                       &c),
                     NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: attribute 'x': a list element is not valid UTF-8");
    ck_assert_int_eq(context_from_json("{\"domain\": \"web\xed\xa0\x80\"}", "a.json", &c),
                     NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: 'domain' is not valid UTF-8");
    ck_assert_int_eq(context_from_json("{\"\xfe\": 1}", "a.json", &c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "a.json: a key is not valid UTF-8");
    /* escaped and literal UTF-8 are fine, and survive the round trip */
    ck_assert_int_eq(context_from_json("{\"domain\": \"caf\xc3\xa9\", \"attributes\": "
                                       "{\"u\": \"\\u00e9\\ud83d\\ude00\", \"big\": 1e308}}",
                                       "a.json", &c),
                     NDF_OK);
    strbuf sb;
    sb_init(&sb);
    context_to_json(c, &sb);
    ndf_context *back;
    ck_assert_int_eq(context_from_json(sb.buf, "back", &back), NDF_OK);
    ck_assert(value_equal(back->attrs, c->attrs));
    ck_assert_str_eq(back->domain, "caf\xc3\xa9");
    context_free(back);
    context_free(c);
    sb_free(&sb);
    /* nesting beyond cJSON's limit (1000) is a parse error, not a stack overflow */
    size_t depth = 100000;
    char *deep = xmalloc(2 * depth + 32);
    char *p = deep + sprintf(deep, "{\"attributes\": {\"x\": ");
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    strcpy(p + 2 * depth, "}}");
    ck_assert_int_eq(context_from_json(deep, "deep.json", &c), NDF_ERR_INVALID);
    ck_assert(strncmp(err_msg(), "deep.json: invalid JSON at line 1, column ", 42) == 0);
    free(deep);
    /* at most CONTEXT_MAX_ATTRS attributes: each one added checks the
     * names before it, so a hostile count would cost its square; the count
     * is refused before any is added */
    strbuf many;
    sb_init(&many);
    sb_puts(&many, "{\"attributes\": {");
    for (int i = 0; i <= CONTEXT_MAX_ATTRS; i++)
        sb_printf(&many, "%s\"k%d\": %d", i ? ", " : "", i, i);
    sb_puts(&many, "}}");
    c = (ndf_context *)1;
    ck_assert_int_eq(context_from_json(many.buf, "many.json", &c), NDF_ERR_INVALID);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err_msg(), "many.json: 10001 attributes; a context holds at most 10000");
    sb_free(&many);
    /* the bound itself is read, a later duplicate replacing the earlier
     * member in its place */
    sb_init(&many);
    sb_puts(&many, "{\"attributes\": {");
    for (int i = 0; i < CONTEXT_MAX_ATTRS - 1; i++)
        sb_printf(&many, "\"k%d\": %d, ", i, i);
    sb_puts(&many, "\"k7\": \"again\"}}");
    ck_assert_int_eq(context_from_json(many.buf, "many.json", &c), NDF_OK);
    ck_assert_uint_eq(value_count(c->attrs), CONTEXT_MAX_ATTRS - 1);
    ck_assert_str_eq(value_at(c->attrs, 7)->name, "k7");
    ck_assert_str_eq(value_string(value_at(c->attrs, 7)), "again");
    ck_assert_int_eq(value_int(value_get(c->attrs, "k9998")), 9998);
    context_free(c);
    sb_free(&many);
}
END_TEST

/* cJSON decodes \u0000 into a NUL that ends the C string: "abc\u0000def"
 * would be "abc" without a word.  Refused in a value, a name, a list
 * element, a domain; an escaped backslash before "u0000" is no escape. */
START_TEST(test_json_nul)
{
    static const char *const bad[] = {
        "{\"attributes\": {\"v\": \"abc\\u0000def\"}}",
        "{\"attributes\": {\"a\\u0000b\": 1}}",
        "{\"attributes\": {\"l\": [\"x\", \"\\u0000\"]}}",
        "{\"domain\": \"d\\u0000\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ndf_context *c = (ndf_context *)1;
        ck_assert_int_eq(context_from_json(bad[i], "nul.json", &c), NDF_ERR_INVALID);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(err_msg(), "nul.json: line 1, column ") == err_msg() &&
                          strstr(err_msg(), "a string holds \\u0000 (NUL), which no attribute "
                                            "name or value may hold"),
                      "%s", err_msg());
    }
    ndf_context *c;
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"v\": \"a\\\\u0000b\"}}", "ok", &c),
                     NDF_OK);
    ck_assert_str_eq(value_string(value_get(c->attrs, "v")), "a\\u0000b");
    context_free(c);
    ck_assert_int_eq(context_from_json("{\"attributes\": {\"v\": \"a\\u0001b\"}}", "ok", &c),
                     NDF_OK);
    ck_assert_str_eq(value_string(value_get(c->attrs, "v")), "a\001b");
    context_free(c);
}
END_TEST

/* Found by tests/fuzz/fuzz_ctxopt_attr review: --attr text goes out as JSON. */
START_TEST(test_parse_attr_hostile)
{
    ndf_context *c = context_new(NULL, NULL, 1);
    ck_assert_int_eq(context_parse_attr(c, "k=\xff\xfe"), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "--attr: the argument is not valid UTF-8");
    ck_assert_int_eq(context_parse_attr(c, "k\x80=v"), NDF_ERR_INVALID);
    ck_assert_int_eq(value_count(c->attrs), 0);
    /* overflowing numbers stay strings, which JSON can carry */
    ck_assert_int_eq(context_parse_attr(c, "big=1e999"), NDF_OK);
    ck_assert_str_eq(value_string(value_get(c->attrs, "big")), "1e999");
    ck_assert_int_eq(context_parse_attr(c, "huge=99999999999999999999"), NDF_OK);
    ck_assert_int_eq(value_get(c->attrs, "huge")->type, NDF_VALUE_NUMBER);
    ck_assert_int_eq(context_parse_attr(c, "l=[,]"), NDF_ERR_INVALID);
    ck_assert_int_eq(context_parse_attr(c, "e=[]"), NDF_OK);
    ck_assert_int_eq(value_count(value_get(c->attrs, "e")), 0);
    free(c->domain);
    c->domain = xstrdup("bad\xc3");
    ck_assert_int_eq(context_validate(c), NDF_ERR_INVALID);
    ck_assert_str_eq(err_msg(), "the domain is not valid UTF-8");
    context_free(c);
}
END_TEST

static Suite *context_suite(void)
{
    Suite *s = suite_create("context");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_new_free_dup);
    tcase_add_test(tc, test_matches_domain);
    tcase_add_test(tc, test_has_attribute);
    tcase_add_test(tc, test_merge_attributes);
    tcase_add_test(tc, test_parse_attr);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_json_errors);
    tcase_add_test(tc, test_json_file);
    tcase_add_test(tc, test_json_hostile);
    tcase_add_test(tc, test_json_nul);
    tcase_add_test(tc, test_parse_attr_hostile);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(context_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
