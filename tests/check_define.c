/* Check suite for host/app/define.c (and the text side of conf/config.c it
 * uses): definitions as libconfig, a bare group or JSON, with their
 * request:line errors; edits by path; the rows laid over a configuration
 * (shadowing, undefine bringing the file's back, settings); the stored text
 * reading back as what was checked. */
#include "build-config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <ndf/status.h>

#include "app/define.h"
#include "conf/config.h"
#include "base/util.h"
#include "base/value.h"

static const char seq[] = "{ name = \"p\"; type = \"sequential\";\n"
                          "  params = { steps = ( { name = \"a\"; step = \"noop\"; } ); }; }";

/* A configuration of "files" holding definition `text`. */
static config *files_with(const char *text)
{
    config *c;
    ck_assert_int_eq(config_parse_definitions("file.conf", text, strlen(text), &c), NDF_OK);
    return c;
}

static int prepare(const config *files, const store_def *rows, size_t n, define_request *rq,
                   define_change *out, char **why)
{
    strbuf w;
    sb_init(&w);
    int rc = define_prepare(files, rows, n, rq, out, &w);
    *why = w.len ? sb_steal(&w) : NULL;
    sb_free(&w);
    return rc;
}

START_TEST(test_forms)
{
    const char *forms[] = {
        seq,
        "patterns = ( { name = \"p\"; type = \"sequential\"; } );",
        "{\"name\": \"p\", \"type\": \"sequential\", \"tags\": [\"a\\u00e9\", \"b\"],\n"
        " \"params\": {\"n\": 5000000000, \"x\": 0.25, \"on\": true}}",
        "[{\"name\": \"p\", \"type\": \"sequential\"}]",
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        config *c;
        int rc = config_parse_definitions("request", forms[i], strlen(forms[i]), &c);
        ck_assert_msg(rc == NDF_OK, "form %zu: %s", i, c->ndiags ? c->diags[0].text : "?");
        ck_assert_uint_eq(c->npatterns, 1);
        ck_assert_str_eq(value_string(value_get(c->patterns[0], "name")), "p");
        if (i == 2) {
            const ndf_value *pr = value_get(c->patterns[0], "params");
            ck_assert_int_eq(value_get(pr, "n")->type, NDF_VALUE_INT);
            ck_assert(value_int(value_get(pr, "n")) == 5000000000LL);
            ck_assert(value_number(value_get(pr, "x")) == 0.25);
            ck_assert_str_eq(value_string(value_at(value_get(c->patterns[0], "tags"), 0)),
                             "a\xc3\xa9");
            ck_assert_int_eq(value_get(pr, "x")->line, 2);
        }
        /* written and read back, it is the same tree */
        strbuf t;
        sb_init(&t);
        config_definition_text(c->patterns[0], &t);
        config *b;
        ck_assert_int_eq(config_parse_definitions("x", t.buf, t.len, &b), NDF_OK);
        ck_assert(value_equal(b->patterns[0], c->patterns[0]));
        config_free(b);
        sb_free(&t);
        config_free(c);
    }
}
END_TEST

START_TEST(test_errors_name_request_line)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{ name = \"p\";\n type = ; }", "request:2: syntax error"},
        {"{\"name\": \"p\",\n \"type\": null}", "request:2: JSON: null is not a value"},
        {"{\"name\": \"p\", \"bad key\": 1}", "request:1: JSON: member name 'bad key'"},
        {"@include \"/etc/passwd\"\n", "request:1: @include is not allowed here"},
        {"{ name = \"p\"; type = \"s\";\n confidence_threshold = 3; }",
         "request:2: pattern 'p': 'confidence_threshold' is 3, out of range [0, 1]"},
        {"{ name = \"p\"; type = \"s\"; n = 99999999999; }", "request:1:"},
        {"other = 1;", "request:1: 'other': only pattern definitions"},
        {"", "request:1: no pattern definition in the text"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
         "nested deeper than 64 levels"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        config *c;
        int rc = config_parse_definitions("request", bad[i].text, strlen(bad[i].text), &c);
        ck_assert_msg(rc != NDF_OK || c->ndiags, "accepted: %s", bad[i].text);
        int found = 0;
        for (size_t k = 0; k < c->ndiags; k++)
            found |= strstr(c->diags[k].text, bad[i].want) != NULL;
        ck_assert_msg(found, "%s: wanted '%s', got '%s'", bad[i].text, bad[i].want,
                      c->ndiags ? c->diags[0].text : "nothing");
        config_free(c);
    }
}
END_TEST

/* Applies edit (op, path, literal) to files' pattern p: the status, and
 * the new definition in *out on NDF_OK. */
static int edit(const char *op, const char *path, const char *literal, long at,
                define_change *out, char **why)
{
    config *files = files_with(seq);
    define_request rq = {.verb = DEFINE_EDIT, .name = "p", .op = op, .path = path,
                         .literal = literal, .at = at};
    int rc = prepare(files, NULL, 0, &rq, out, why);
    config_free(files);
    return rc;
}

START_TEST(test_edits)
{
    define_change ch;
    char *why;
    ck_assert_int_eq(edit("insert", "params.steps", "{ name = \"b\"; step = \"noop\"; }", 0, &ch,
                          &why),
                     NDF_OK);
    const ndf_value *steps = value_get(value_get(ch.def, "params"), "steps");
    ck_assert_uint_eq(value_count(steps), 2);
    ck_assert_str_eq(value_string(value_get(value_at(steps, 0), "name")), "b");
    ck_assert_str_eq(value_at(steps, 0)->file, "request");
    ck_assert_ptr_nonnull(strstr(ch.row.text, "name = \"b\""));
    define_change_free(&ch);

    ck_assert_int_eq(edit("set", "params.steps[a].timeout", "7", -1, &ch, &why), NDF_OK);
    steps = value_get(value_get(ch.def, "params"), "steps");
    ck_assert_int_eq(value_int(value_get(value_at(steps, 0), "timeout")), 7);
    define_change_free(&ch);

    ck_assert_int_eq(edit("unset", "params.steps[0]", NULL, -1, &ch, &why), NDF_OK);
    ck_assert_uint_eq(value_count(value_get(value_get(ch.def, "params"), "steps")), 0);
    define_change_free(&ch);

    /* the first dependency: the list is made */
    ck_assert_int_eq(edit("insert", "params.steps[a].depends_on", "\"x\"", -1, &ch, &why), NDF_OK);
    define_change_free(&ch);

    static const struct {
        const char *op, *path, *lit;
        int rc;
        const char *want;
    } bad[] = {
        {"set", "params.steps[zz].timeout", "1", NDF_ERR_NOT_FOUND, "no element [zz]"},
        {"set", "params..x", "1", NDF_ERR_INVALID, "bad path"},
        {"set", "params.steps[", "1", NDF_ERR_INVALID, "bad path"},
        {"set", "name", "\"q\"", NDF_ERR_INVALID, "identity"},
        {"set", "confidence_threshold", "2", NDF_ERR_VALIDATION, "out of range"},
        {"set", "confidence_threshold", "1; x = 2", NDF_ERR_VALIDATION, "not one value"},
        {"insert", "type", "1", NDF_ERR_INVALID, "not a list"},
        {"insert", "params.steps", "1", NDF_OK, NULL}, /* the type's schema refuses it later */
        {"unset", "params.nothing", NULL, NDF_ERR_NOT_FOUND, "no member 'nothing'"},
        {"set", "params.bad key", "1", NDF_ERR_VALIDATION, "member name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = edit(bad[i].op, bad[i].path, bad[i].lit, -1, &ch, &why);
        ck_assert_msg(rc == bad[i].rc, "%s %s: %d (%s)", bad[i].op, bad[i].path, rc,
                      why ? why : "");
        if (bad[i].want)
            ck_assert_msg(why && strstr(why, bad[i].want), "%s %s: '%s'", bad[i].op, bad[i].path,
                          why ? why : "");
        free(why);
        if (rc == NDF_OK)
            define_change_free(&ch);
    }
}
END_TEST

START_TEST(test_overlay)
{
    config *files = files_with(seq);
    /* a define of a file's name: exists, unless replace */
    define_request rq = {.verb = DEFINE_PATTERN,
                         .text = "{ name = \"p\"; type = \"parallel\"; }",
                         .len = strlen("{ name = \"p\"; type = \"parallel\"; }")};
    define_change ch;
    char *why;
    ck_assert_int_eq(prepare(files, NULL, 0, &rq, &ch, &why), NDF_ERR_EXISTS);
    ck_assert_ptr_nonnull(strstr(why, "already exists (defined at file.conf:1"));
    free(why);
    rq.replace = 1;
    ck_assert_int_eq(prepare(files, NULL, 0, &rq, &ch, &why), NDF_OK);
    /* stored, laid over the files: it shadows the file's */
    store_def row = ch.row;
    row.time = 1e9;
    row.uid = 42;
    store_def set = {(char *)STORE_DEF_SETTING, (char *)"confidence.threshold", (char *)"0.75",
                     1e9, 42};
    store_def rows[2] = {row, set};
    config *c = files_with(seq);
    strbuf w;
    sb_init(&w);
    ck_assert_uint_eq(define_overlay(c, rows, 2, NULL, &w), 0);
    ck_assert(c->overlaid);
    ck_assert_uint_eq(c->npatterns, 1);
    ck_assert_str_eq(value_string(value_get(c->patterns[0], "type")), "parallel");
    ck_assert(define_is_runtime(c->patterns[0]->file));
    ck_assert_ptr_nonnull(strstr(c->patterns[0]->file, "uid 42]"));
    ck_assert(c->set.confidence_threshold == 0.75);
    config_free(c);
    /* undefine: the file's serves again */
    define_change un;
    define_request urq = {.verb = DEFINE_UNDEFINE, .name = "p"};
    ck_assert_int_eq(prepare(files, rows, 2, &urq, &un, &why), NDF_OK);
    c = files_with(seq);
    ck_assert_uint_eq(define_overlay(c, rows, 2, &un, &w), 0);
    ck_assert_str_eq(value_string(value_get(c->patterns[0], "type")), "sequential");
    ck_assert(!define_is_runtime(c->patterns[0]->file));
    config_free(c);
    define_change_free(&un);
    /* undefine of what has no row; a setting of a key read at start */
    urq.name = "nosuch";
    ck_assert_int_eq(prepare(files, rows, 2, &urq, &un, &why), NDF_ERR_NOT_FOUND);
    free(why);
    define_request srq = {.verb = DEFINE_SETTING, .name = "storage.path", .literal = "\"/x\""};
    ck_assert_int_eq(prepare(files, rows, 2, &srq, &un, &why), NDF_ERR_INVALID);
    free(why);
    srq.name = "confidence.threshold";
    srq.literal = "\"high\"";
    ck_assert_int_eq(prepare(files, rows, 2, &srq, &un, &why), NDF_ERR_VALIDATION);
    free(why);
    /* a stored row that no longer reads is left out, with its reason */
    store_def broken = {(char *)STORE_DEF_PATTERN, (char *)"q", (char *)"patterns = ( {", 1, 0};
    c = files_with(seq);
    ck_assert_uint_eq(define_overlay(c, &broken, 1, NULL, &w), 1);
    ck_assert_ptr_nonnull(strstr(w.buf, "run-time definition of pattern 'q' left out"));
    config_free(c);
    sb_free(&w);
    define_change_free(&ch);
    config_free(files);
}
END_TEST

static Suite *define_suite(void)
{
    Suite *s = suite_create("define");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_forms);
    tcase_add_test(tc, test_errors_name_request_line);
    tcase_add_test(tc, test_edits);
    tcase_add_test(tc, test_overlay);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(define_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
