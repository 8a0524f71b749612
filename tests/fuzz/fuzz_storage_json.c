/* libFuzzer harness: storage_from_json, the reader of the previous
 * release's documents that the store imports (what a damaged or hostile
 * file in the storage directory reaches).  Invariants: no crash, leak or
 * UB; a refused document leaves a message; an accepted one has a name,
 * successes <= executions, and an outcome for every history entry. */
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
    /* what the import relies on */
    FUZZ_CHECK(sp.name && sp.learn.successes <= sp.learn.executions,
               "an accepted document breaks the record's invariants");
    for (size_t i = 0; i < sp.nhistory; i++)
        FUZZ_CHECK(sp.history[i].outcome != NULL, "an accepted entry has no outcome");
    stored_pattern_free(&sp);
    return 0;
}
