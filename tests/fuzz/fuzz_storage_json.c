/* libFuzzer harness: storage_from_json, the reader of the stored-state
 * documents (what a damaged or hostile file in the storage directory
 * reaches).  Invariants: no crash, leak or UB; a refused document leaves a
 * message; an accepted one survives storage_to_json -> storage_from_json
 * with the same counts, and exports as JSON, CSV and YAML. */
#include "build-config.h"

#include "fuzz_common.h"
#include "store/storage.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exactly `size` bytes, not terminated: the reader takes a length */
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    if (size)
        memcpy(text, data, size);
    stored_pattern sp;
    int rc = storage_from_json(text, size, &sp);
    free(text);
    if (rc != NDF_OK) {
        FUZZ_CHECK(err_msg() && *err_msg(), "a refused document left no message");
        return 0;
    }
    char *json = storage_to_json(&sp, 0);
    stored_pattern back;
    rc = storage_from_json(json, strlen(json), &back);
    FUZZ_CHECK(rc == NDF_OK, "storage_to_json output does not re-parse: %s", err_msg());
    FUZZ_CHECK(back.nhistory == sp.nhistory && back.learn.executions == sp.learn.executions &&
                   back.learn.ndomains == sp.learn.ndomains,
               "the round trip changed the record");
    stored_pattern_free(&back);
    free(json);
    for (int f = EXPORT_JSON; f <= EXPORT_YAML; f++) {
        strbuf sb;
        sb_init(&sb);
        rc = storage_export_record(&sp, (export_format)f, &sb);
        FUZZ_CHECK(rc == NDF_OK, "export %d failed: %s", f, err_msg());
        sb_free(&sb);
    }
    stored_pattern_free(&sp);
    return 0;
}
