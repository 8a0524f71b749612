/* Check suite for host/serve/protocol.c: request lines in (malformed,
 * mistyped, missing or extra members, NUL characters, invalid UTF-8, huge
 * arrays), answer lines out (escaping, order, one line), round trips. */
#include "build-config.h"

#include <cJSON.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ndf/status.h>

#include "serve/protocol.h"
#include "base/util.h"

/* Parses `line`; returns the error (caller frees) or NULL, *rq filled. */
static char *parse(const char *line, size_t len, request *rq)
{
    char *error = NULL;
    int rc = protocol_parse(line, len, rq, &error);
    ck_assert_int_eq(rc == 0, error == NULL);
    return error;
}

static void expect_refused(const char *line, const char *what)
{
    request rq;
    char *e = parse(line, strlen(line), &rq);
    ck_assert_msg(e != NULL, "accepted: %s", line);
    ck_assert_msg(strstr(e, what) != NULL, "%s: error '%s' lacks '%s'", line, e, what);
    ck_assert(utf8_valid(e, strlen(e)));
    free(e);
}

START_TEST(test_malformed)
{
    expect_refused("not json", "not valid JSON");
    expect_refused("{", "not valid JSON");
    expect_refused("{\"cmd\":\"ping\"", "not valid JSON");
    expect_refused("[1,2]", "a JSON object is expected");
    expect_refused("42", "a JSON object is expected");
    expect_refused("\"ping\"", "a JSON object is expected");
    expect_refused("{\"cmd\":\"ping\"} {\"cmd\":\"ping\"}", "text after the JSON value");
    expect_refused("{\"cmd\":\"ping\"} x", "text after the JSON value");
    /* nesting beyond cJSON's limit is refused, not a crash */
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "{\"cmd\":\"run\",\"pattern\":\"p\",\"context\":");
    for (int i = 0; i < 5000; i++)
        sb_puts(&sb, "[");
    expect_refused(sb.buf, "not valid JSON");
    sb_free(&sb);
    /* trailing blanks are fine */
    request rq;
    ck_assert_ptr_null(parse("{\"cmd\":\"ping\"} \t\r", 17, &rq));
    ck_assert_int_eq(rq.kind, REQ_PING);
    request_free(&rq);
}
END_TEST

START_TEST(test_wrong_types)
{
    expect_refused("{\"cmd\":42}", "\"cmd\" must be a string");
    expect_refused("{\"cmd\":\"run\",\"pattern\":7}", "\"pattern\" must be a string");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"timeout\":\"soon\"}",
                   "\"timeout\" must be a number");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"force\":\"yes\"}",
                   "\"force\" must be true or false");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"context\":\"x\"}",
                   "\"context\" must be an object");
    expect_refused("{\"cmd\":\"list\",\"args\":[1]}", "\"args\" must be an array of strings");
    expect_refused("{\"cmd\":\"list\",\"args\":\"--json\"}", "\"args\" must be an array");
    expect_refused("{\"cmd\":\"status\",\"id\":{}}", "\"id\" must be a string");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"timeout\":-1}", "must be from 0 to 1000000000 seconds");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"timeout\":1e999}", "must be from 0 to 1000000000 seconds");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"timeout\":1e300}", "must be from 0 to 1000000000 seconds");
    expect_refused("{\"cmd\":\"wait\",\"id\":\"x\",\"timeout\":1000000001}", "must be from 0 to 1000000000 seconds");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"fallback\":\"q\",\"async\":true}",
                   "cannot be \"async\"");
}
END_TEST

START_TEST(test_missing_and_extra)
{
    expect_refused("{}", "\"cmd\" (a string) is required");
    expect_refused("{\"cmd\":\"\"}", "\"cmd\" (a string) is required");
    expect_refused("{\"cmd\":\"run\"}", "\"pattern\" (a string) is required");
    expect_refused("{\"cmd\":\"cancel\"}", "\"id\" (a string) is required");
    expect_refused("{\"cmd\":\"rollback\",\"level\":\"phase\"}", "\"id\" (a string) is required");
    /* a member the verb does not take is refused, not ignored: a drain
     * whose "timeout" was dropped would drain for good */
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"x\":[1]}", "\"run\" takes no member \"x\"");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"Force\":true}",
                   "\"run\" takes no member \"Force\"");
    expect_refused("{\"cmd\":\"drain\",\"timeout\":1e300}", "\"drain\" takes no member \"timeout\"");
    expect_refused("{\"cmd\":\"drain\",\"timeout\":\"abc\"}", "\"drain\" takes no member \"timeout\"");
    expect_refused("{\"cmd\":\"drain\",\"args\":[],\"timeout\":null}", "takes no member \"timeout\"");
    expect_refused("{\"cmd\":\"ping\",\"id\":\"x\"}", "\"ping\" takes no member \"id\"");
    expect_refused("{\"cmd\":\"status\",\"timeout\":1}", "\"status\" takes no member \"timeout\"");
    expect_refused("{\"cmd\":\"cancel\",\"id\":\"x\",\"level\":\"phase\"}", "takes no member \"level\"");
    expect_refused("{\"cmd\":\"wait\",\"id\":\"x\",\"force\":true}", "takes no member \"force\"");
    expect_refused("{\"cmd\":\"delegate\",\"pattern\":\"p\"}", "takes no member \"pattern\"");
    expect_refused("{\"cmd\":\"rollback\",\"id\":\"x\",\"timeout\":1}", "takes no member \"timeout\"");
    expect_refused("{\"cmd\":\"list\",\"pattern\":\"p\"}", "\"list\" takes no member \"pattern\"");
    /* given twice: which one counts would be the parser's accident */
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"pattern\":\"q\"}", "\"pattern\" is given twice");
    expect_refused("{\"cmd\":\"run\",\"cmd\":\"ping\",\"pattern\":\"p\"}", "\"cmd\" is given twice");
    /* null is absent; keys are case-sensitive; every member of a verb passes */
    request rq;
    const char *l = "{\"cmd\":\"run\",\"pattern\":\"p\",\"timeout\":null,\"force\":null,\"async\":false,"
                    "\"context\":null,\"fallback\":null}";
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert_int_eq(rq.kind, REQ_RUN);
    ck_assert_str_eq(rq.pattern, "p");
    ck_assert(rq.timeout == 0);
    ck_assert_int_eq(rq.force, 0);
    ck_assert_ptr_null(rq.context);
    request_free(&rq);
    l = "{\"cmd\":\"status\"}";
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert_int_eq(rq.kind, REQ_STATUS);
    ck_assert_ptr_null(rq.id);
    request_free(&rq);
    static const char *const whole[] = {
        "{\"cmd\":\"delegate\",\"context\":{},\"timeout\":1,\"policy\":\"greedy\",\"explain\":true,"
        "\"seed\":1,\"max_fallbacks\":2}",
        "{\"cmd\":\"rollback\",\"id\":\"x\",\"level\":\"phase\",\"target\":\"t\"}",
        "{\"cmd\":\"wait\",\"id\":\"x\",\"timeout\":0}",
        "{\"cmd\":\"cancel\",\"id\":\"x\"}",
        "{\"cmd\":\"similar\",\"args\":[],\"context\":{}}",
        "{\"cmd\":\"drain\",\"args\":[\"--timeout\",\"5\"]}",
        "{\"cmd\":\"ping\"}"};
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
        char *e = parse(whole[i], strlen(whole[i]), &rq);
        ck_assert_msg(e == NULL, "%s: %s", whole[i], e ? e : "");
        request_free(&rq);
    }
    expect_refused("{\"cmd\":\"reload\",\"cmd\":null}", "\"cmd\" is given twice");
}
END_TEST

/* "p\u0000evil" decoded to a C string is "p": it must be refused, not run
 * as pattern p.  An escaped backslash before "u0000" is no NUL. */
START_TEST(test_nul)
{
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\\u0000evil\"}", "\\u0000 (NUL)");
    expect_refused("{\"cmd\":\"list\",\"args\":[\"--domain\",\"\\u0000\"]}", "NUL");
    expect_refused("{\"cmd\":\"run\",\"pattern\":\"p\",\"context\":{\"a\\u0000\":1}}", "NUL");
    static const char raw[] = "{\"cmd\":\"run\",\"pattern\":\"p\0evil\"}";
    request rq;
    char *e = parse(raw, sizeof raw - 1, &rq);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(strstr(e, "NUL byte"));
    free(e);
    const char *ok = "{\"cmd\":\"run\",\"pattern\":\"p\\\\u0000evil\"}";
    ck_assert_ptr_null(parse(ok, strlen(ok), &rq));
    ck_assert_str_eq(rq.pattern, "p\\u0000evil");
    request_free(&rq);
    /* other escapes pass */
    ok = "{\"cmd\":\"run\",\"pattern\":\"\\u00e9\\\"\\u0001\"}";
    ck_assert_ptr_null(parse(ok, strlen(ok), &rq));
    ck_assert_str_eq(rq.pattern, "\xc3\xa9\"\x01");
    request_free(&rq);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    static const char *const bad[] = {
        "{\"cmd\":\"run\",\"pattern\":\"\xff\"}",
        "{\"cmd\":\"\xc0\xaf\"}",
        "{\"cmd\":\"list\",\"args\":[\"\xed\xa0\x80\"]}",
        "{\"\xfe\":1,\"cmd\":\"ping\"}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        request rq;
        char *e = parse(bad[i], strlen(bad[i]), &rq);
        ck_assert_ptr_nonnull(e);
        ck_assert_ptr_nonnull(strstr(e, "not valid UTF-8"));
        /* never echoed back raw */
        ck_assert(utf8_valid(e, strlen(e)));
        char *ans = protocol_error(NDF_ERR_INVALID, 2, "%s", e);
        ck_assert(utf8_valid(ans, strlen(ans)));
        free(ans);
        free(e);
    }
    /* valid multibyte text passes */
    const char *ok = "{\"cmd\":\"run\",\"pattern\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}";
    request rq;
    ck_assert_ptr_null(parse(ok, strlen(ok), &rq));
    request_free(&rq);
}
END_TEST

static char *args_line(int n)
{
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "{\"cmd\":\"list\",\"args\":[");
    for (int i = 0; i < n; i++)
        sb_puts(&sb, i ? ",\"a\"" : "\"a\"");
    sb_puts(&sb, "]}");
    return sb_steal(&sb);
}

START_TEST(test_huge_arrays)
{
    char *l = args_line(PROTOCOL_MAX_ARGS);
    request rq;
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert_uint_eq(rq.nargs, PROTOCOL_MAX_ARGS);
    ck_assert_ptr_null(rq.args[rq.nargs]);
    request_free(&rq);
    free(l);
    l = args_line(200000);
    char *e = parse(l, strlen(l), &rq);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(strstr(e, "more than"));
    free(e);
    free(l);
}
END_TEST

/* wait_for_completion: an id, and a bounded wait or none. */
START_TEST(test_wait)
{
    expect_refused("{\"cmd\":\"wait\"}", "\"id\" (a string) is required");
    expect_refused("{\"cmd\":\"wait\",\"id\":\"x\",\"timeout\":-0.5}", "must be from 0 to 1000000000 seconds");
    expect_refused("{\"cmd\":\"wait\",\"id\":\"x\",\"timeout\":\"1\"}",
                   "\"timeout\" must be a number");
    request rq;
    const char *l = "{\"cmd\":\"wait\",\"id\":\"x\"}";
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert_int_eq(rq.kind, REQ_WAIT);
    ck_assert_str_eq(rq.id, "x");
    ck_assert(rq.timeout == -1); /* no bound */
    request_free(&rq);
    l = "{\"cmd\":\"wait\",\"id\":\"x\",\"timeout\":0}";
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert(rq.timeout == 0); /* a look, no wait */
    request_free(&rq);
}
END_TEST

START_TEST(test_kinds)
{
    static const struct {
        const char *line;
        request_kind kind;
    } cases[] = {
        {"{\"cmd\":\"run\",\"pattern\":\"p\"}", REQ_RUN},
        {"{\"cmd\":\"status\",\"id\":\"x\"}", REQ_STATUS},
        {"{\"cmd\":\"cancel\",\"id\":\"x\"}", REQ_CANCEL},
        {"{\"cmd\":\"rollback\",\"id\":\"x\",\"level\":\"phase\",\"target\":\"t\"}", REQ_ROLLBACK},
        {"{\"cmd\":\"reload\"}", REQ_RELOAD},
        {"{\"cmd\":\"ping\"}", REQ_PING},
        {"{\"cmd\":\"shutdown\"}", REQ_SHUTDOWN},
        {"{\"cmd\":\"delegate\"}", REQ_DELEGATE},
        {"{\"cmd\":\"wait\",\"id\":\"x\",\"timeout\":0.5}", REQ_WAIT},
        {"{\"cmd\":\"list\"}", REQ_COMMAND},
        {"{\"cmd\":\"anything\",\"args\":[]}", REQ_COMMAND},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        request rq;
        ck_assert_ptr_null(parse(cases[i].line, strlen(cases[i].line), &rq));
        ck_assert_int_eq(rq.kind, cases[i].kind);
        request_free(&rq);
    }
}
END_TEST

START_TEST(test_request_round_trip)
{
    const char *l = "{\"cmd\":\"similar\",\"args\":[\"--threshold\",\"0\",\"--json\"],"
                    "\"context\":{\"domain\":\"x\",\"attributes\":{\"n\":[1,2.5,\"s\"]}}}";
    request rq;
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert_int_eq(rq.kind, REQ_COMMAND);
    ck_assert_str_eq(rq.cmd, "similar");
    ck_assert_uint_eq(rq.nargs, 3);
    ck_assert_str_eq(rq.args[2], "--json");
    cJSON *ctx = cJSON_Parse(rq.context);
    ck_assert(cJSON_IsObject(ctx));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(ctx, "domain")->valuestring, "x");
    cJSON_Delete(ctx);
    request_free(&rq);
    l = "{\"cmd\":\"run\",\"pattern\":\"p\",\"timeout\":2.5,\"force\":true,\"async\":true}";
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert(rq.timeout == 2.5);
    ck_assert_int_eq(rq.force, 1);
    ck_assert_int_eq(rq.async, 1);
    request_free(&rq);
}
END_TEST

/* The delegate request: its options, their ranges, and what it refuses. */
START_TEST(test_delegate_request)
{
    const char *l = "{\"cmd\":\"delegate\",\"context\":{\"domain\":\"web\"},\"policy\":\"ucb\","
                    "\"seed\":9007199254740992,\"max_fallbacks\":0,\"timeout\":1.5,"
                    "\"explain\":true}";
    request rq;
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert_int_eq(rq.kind, REQ_DELEGATE);
    ck_assert_str_eq(rq.policy, "ucb");
    ck_assert_int_eq(rq.has_seed, 1);
    ck_assert(rq.seed == 9007199254740992ULL);
    ck_assert_int_eq(rq.has_max_fallbacks, 1);
    ck_assert_uint_eq(rq.max_fallbacks, 0);
    ck_assert(rq.timeout == 1.5);
    ck_assert_int_eq(rq.explain, 1);
    ck_assert_ptr_nonnull(strstr(rq.context, "\"web\""));
    request_free(&rq);
    l = "{\"cmd\":\"delegate\"}";
    ck_assert_ptr_null(parse(l, strlen(l), &rq));
    ck_assert_int_eq(rq.has_seed, 0);
    ck_assert_int_eq(rq.has_max_fallbacks, 0);
    ck_assert_ptr_null(rq.policy);
    ck_assert_ptr_null(rq.context);
    request_free(&rq);
    expect_refused("{\"cmd\":\"delegate\",\"seed\":-1}", "\"seed\" must be a whole number");
    expect_refused("{\"cmd\":\"delegate\",\"seed\":9007199254740994}",
                   "\"seed\" must be a whole number");
    expect_refused("{\"cmd\":\"delegate\",\"seed\":1.5}", "\"seed\" must be a whole number");
    expect_refused("{\"cmd\":\"delegate\",\"seed\":\"1\"}", "\"seed\" must be a number");
    expect_refused("{\"cmd\":\"delegate\",\"max_fallbacks\":1000001}",
                   "\"max_fallbacks\" must be a whole number");
    expect_refused("{\"cmd\":\"delegate\",\"policy\":3}", "\"policy\" must be a string");
    expect_refused("{\"cmd\":\"delegate\",\"context\":[]}", "\"context\" must be an object");
    expect_refused("{\"cmd\":\"delegate\",\"timeout\":-1}", "\"timeout\" must be from 0 to 1000000000");
    expect_refused("{\"cmd\":\"delegate\",\"explain\":1}", "\"explain\" must be true or false");
}
END_TEST

/* Every answer is one line of valid JSON, whatever its strings hold. */
START_TEST(test_response)
{
    protocol_ping p = {.old_generations = 2, .pid = 42, .reloads = 7};
    response r = {.ok = 1,
                  .has = RESP_STATUS | RESP_EXIT | RESP_GENERATION,
                  .id = "id\xff",
                  .status = NDF_ERR_TIMEOUT,
                  .exit = 5,
                  .generation = 3,
                  .ping = &p,
                  .out = "a\0b\n",
                  .out_len = 4,
                  .err = "",
                  .err_len = 0,
                  .record = "{\"id\":\"x\",\n\"n\":1}",
                  .text = "line 1\nline \"2\""};
    char *text = protocol_response(&r);
    size_t len = strlen(text);
    ck_assert(len > 0 && text[len - 1] == '\n');
    ck_assert_ptr_eq(strchr(text, '\n'), text + len - 1);
    ck_assert(utf8_valid(text, len));
    ck_assert_ptr_nonnull(strstr(text, "\"id\":\"id\\ufffd\""));
    ck_assert_ptr_nonnull(strstr(text, "\"stdout\":\"a\\u0000b\\n\""));
    ck_assert_ptr_nonnull(
        strstr(text, "{\"ok\":true,\"id\":\"id\\ufffd\",\"status\":\"timed out\",\"exit\":5,"
                     "\"generation\":3,\"old_generations\":2,\"pid\":42"));
    cJSON *j = cJSON_Parse(text);
    ck_assert(cJSON_IsObject(j));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "reloads")->valueint, 7);
    ck_assert_int_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "record"), "n")
            ->valueint,
        1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "text")->valuestring,
                     "line 1\nline \"2\"");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "error"));
    cJSON_Delete(j);
    free(text);
}
END_TEST

START_TEST(test_error_response)
{
    char *text = protocol_error(NDF_ERR_NOT_FOUND, 3, "no pattern named '%s'", "a\"b\x80");
    ck_assert(utf8_valid(text, strlen(text)));
    cJSON *j = cJSON_Parse(text);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "ok")));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "error")->valuestring,
                     "no pattern named 'a\"b\xef\xbf\xbd'");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "status")->valuestring,
                     ndf_status_name(NDF_ERR_NOT_FOUND));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "exit")->valueint, 3);
    /* the documented order: ok, error, status, exit */
    ck_assert_str_eq(j->child->string, "ok");
    ck_assert_str_eq(j->child->next->string, "error");
    ck_assert_str_eq(j->child->next->next->string, "status");
    ck_assert_str_eq(j->child->next->next->next->string, "exit");
    cJSON_Delete(j);
    free(text);
}
END_TEST

static Suite *protocol_suite(void)
{
    Suite *s = suite_create("protocol");
    TCase *tc = tcase_create("requests");
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_missing_and_extra);
    tcase_add_test(tc, test_nul);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_huge_arrays);
    tcase_add_test(tc, test_kinds);
    tcase_add_test(tc, test_wait);
    tcase_add_test(tc, test_request_round_trip);
    suite_add_tcase(s, tc);
    tc = tcase_create("answers");
    tcase_add_test(tc, test_response);
    tcase_add_test(tc, test_delegate_request);
    tcase_add_test(tc, test_error_response);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(protocol_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
