/* libFuzzer harness: context_parse_attr (--attr KEY=VALUE) through the
 * ctxopt layer.  Each input line is one --attr argument; the attributes are
 * then merged and validated as ctxopt_finish() does for a command.
 * Invariants: no crash, leak or UB; a refused argument leaves a message; an
 * accepted set of attributes validates and survives a JSON round trip. */
#include "build-config.h"

#include <stdio.h>

#include "cli/commands.h"
#include "model/context.h"
#include "cli/ctxopt.h"
#include "fuzz_common.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    ctxopt o;
    ctxopt_init(&o);
    o.attrs = context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
    int ok = 1;
    char *line = text;
    for (int i = 0; line && i < 64; i++) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (context_parse_attr(o.attrs, line) != NDF_OK) {
            FUZZ_CHECK(err_msg() && *err_msg(), "a refused --attr left no message");
            ok = 0;
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (ok) {
        ndf_context *c = NULL;
        int rc = ctxopt_finish(&o, &c);
        FUZZ_CHECK(rc == EXIT_OK, "accepted --attr values do not validate: %s", err_msg());
        strbuf sb;
        sb_init(&sb);
        context_to_json(c, &sb);
        char *json = sb_steal(&sb);
        ndf_context *back = NULL;
        rc = context_from_json(json, "round-trip", &back);
        FUZZ_CHECK(rc == NDF_OK, "--attr context does not re-parse as JSON: %s (%s)", err_msg(),
                   json);
        context_free(back);
        free(json);
        context_free(c);
    }
    ctxopt_free(&o);
    free(text);
    return 0;
}
