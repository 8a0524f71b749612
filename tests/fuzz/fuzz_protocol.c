/* libFuzzer harness: the wire protocol of `ndf serve` (serve/protocol.c).
 * The input is one request line as a client sends it.  Invariants: no
 * crash, leak or UB; a parsed request has its kind's required members,
 * every string of it is valid UTF-8 without NUL, its context is a JSON
 * object, its level one the server knows; a refused one has a message; and
 * every answer built from what a client sent (the refusal quoting the
 * input, a command's output holding the raw bytes) is one line of valid
 * UTF-8 JSON with "ok". */
#include "build-config.h"

#include <cJSON.h>
#include <math.h>

#include <ndf/status.h>

#include "serve/protocol.h"
#include "fuzz_common.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int strict_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                                : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!k || (size_t)(end - p) < k)
            return 0;
        unsigned v = k == 1 ? c : c & (0x7F >> k);
        for (size_t i = 1; i < k; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            v = (v << 6) | (p[i] & 0x3F);
        }
        if ((k == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
            (k == 4 && (v < 0x10000 || v > 0x10FFFF)))
            return 0;
        p += k;
    }
    return 1;
}

static void check_str(const char *what, const char *s)
{
    if (!s)
        return;
    FUZZ_CHECK(strict_utf8(s, strlen(s)), "%s is not valid UTF-8", what);
}

/* An answer line: one line, valid UTF-8, a JSON object with "ok". */
static void check_answer(char *text)
{
    FUZZ_CHECK(text != NULL, "no answer");
    size_t n = strlen(text);
    FUZZ_CHECK(n >= 2 && text[n - 1] == '\n', "an answer does not end its line");
    FUZZ_CHECK(memchr(text, '\n', n - 1) == NULL, "an answer spans lines");
    FUZZ_CHECK(strict_utf8(text, n), "an answer is not valid UTF-8");
    cJSON *j = cJSON_Parse(text);
    FUZZ_CHECK(cJSON_IsObject(j), "an answer is not a JSON object: %.200s", text);
    FUZZ_CHECK(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "ok")), "an answer has no ok");
    cJSON_Delete(j);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    request rq;
    char *error = NULL;
    int rc = protocol_parse((const char *)data, size, &rq, &error);
    if (rc == 0) {
        FUZZ_CHECK(error == NULL, "a parsed request left an error");
        FUZZ_CHECK(rq.cmd && *rq.cmd, "a parsed request has no cmd");
        check_str("cmd", rq.cmd);
        check_str("pattern", rq.pattern);
        check_str("fallback", rq.fallback);
        check_str("id", rq.id);
        check_str("level", rq.level);
        check_str("target", rq.target);
        FUZZ_CHECK(rq.nargs <= PROTOCOL_MAX_ARGS, "%zu args", rq.nargs);
        for (size_t i = 0; i < rq.nargs; i++) {
            FUZZ_CHECK(rq.args[i] != NULL, "a NULL arg");
            check_str("an arg", rq.args[i]);
        }
        switch (rq.kind) {
        case REQ_RUN:
            FUZZ_CHECK(rq.pattern && *rq.pattern, "run without a pattern");
            FUZZ_CHECK(rq.timeout >= 0 && isfinite(rq.timeout), "timeout %g", rq.timeout);
            break;
        case REQ_CANCEL: FUZZ_CHECK(rq.id && *rq.id, "cancel without an id"); break;
        case REQ_ROLLBACK:
            FUZZ_CHECK(rq.id && *rq.id, "rollback without an id");
            FUZZ_CHECK(!rq.level || !strcmp(rq.level, "pattern") ||
                           !strcmp(rq.level, "pattern_level") || !strcmp(rq.level, "phase") ||
                           !strcmp(rq.level, "phase_level") || !strcmp(rq.level, "complete"),
                       "rollback level '%s'", rq.level);
            break;
        default: break;
        }
        if (rq.context) {
            cJSON *c = cJSON_Parse(rq.context);
            FUZZ_CHECK(cJSON_IsObject(c), "context is not an object: %.200s", rq.context);
            cJSON_Delete(c);
        }
        request_free(&rq);
    } else {
        FUZZ_CHECK(error && *error, "a refused request has no message");
        check_answer(protocol_error(NDF_ERR_INVALID, 2, "%s", error));
        free(error);
    }
    /* Whatever a client sent may come back quoted in an answer: as a
     * message (up to a NUL) and as a command's raw output. */
    char *s = fuzz_cstr(data, size);
    response a = {.ok = 0,
                  .has = RESP_STATUS | RESP_EXIT,
                  .error = s,
                  .id = s,
                  .status = NDF_ERR_NOT_FOUND,
                  .exit = 3,
                  .out = (const char *)data,
                  .out_len = size,
                  .err = (const char *)data,
                  .err_len = size};
    check_answer(protocol_response(&a));
    free(s);
    return 0;
}
