/* libFuzzer harness: context_from_json (the --context file and the wire's
 * context object).  Invariants: no crash, leak or UB; a parse error leaves a
 * message; a parsed context validates and survives context_to_json ->
 * context_from_json unchanged. */
#include "build-config.h"

#include "model/context.h"
#include "fuzz_common.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    ndf_context *c = NULL;
    int rc = context_from_json(text, "fuzz.json", &c);
    if (rc != NDF_OK) {
        FUZZ_CHECK(c == NULL, "a failed parse returned a context");
        FUZZ_CHECK(err_msg() && *err_msg(), "a failed parse left no message");
        free(text);
        return 0;
    }
    FUZZ_CHECK(context_validate(c) == NDF_OK, "parsed context does not validate: %s",
               err_msg());
    strbuf sb;
    sb_init(&sb);
    context_to_json(c, &sb);
    char *json = sb_steal(&sb);
    ndf_context *back = NULL;
    rc = context_from_json(json, "round-trip", &back);
    FUZZ_CHECK(rc == NDF_OK, "context_to_json output does not re-parse: %s (%s)", err_msg(),
               json);
    FUZZ_CHECK(back->priority == c->priority, "priority changed in the round trip");
    FUZZ_CHECK(value_equal(back->attrs, c->attrs), "attributes changed in the round trip: %s",
               json);
    ndf_context *d = context_dup(c);
    FUZZ_CHECK(value_equal(d->attrs, c->attrs), "context_dup differs");
    context_free(d);
    context_free(back);
    free(json);
    context_free(c);
    free(text);
    return 0;
}
