/* libFuzzer harness: config_load on a file holding the input (libconfig
 * syntax, the global settings, pattern definitions).  The file lives in a
 * private directory made once per process, so relative @include and
 * patterns_dir paths stay inside it.  Invariants: no crash, leak, hang or
 * UB; a failed load has at least one error diagnostic and err_msg(); the
 * effective settings serialize. */
#include "build-config.h"

#include <stdio.h>
#include <unistd.h>

#include "conf/config.h"
#include "fuzz_common.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *conf_path;

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = xasprintf("%s/ndf-fuzz-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    /* one fixed name: file names are interned for the life of the process */
    conf_path = xasprintf("%s/fuzz.conf", dir);
    free(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!conf_path)
        setup();
    FILE *f = fopen(conf_path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    if (fclose(f) != 0)
        abort();
    config *c = NULL;
    int rc = config_load(conf_path, &c);
    FUZZ_CHECK(c != NULL, "config_load returned no config");
    if (rc != NDF_OK) {
        FUZZ_CHECK(c->nerrors > 0, "a failed load has no error diagnostic");
        FUZZ_CHECK(err_msg() && *err_msg(), "a failed load left no message");
    } else {
        FUZZ_CHECK(c->nerrors == 0, "a good load has error diagnostics");
    }
    for (size_t i = 0; i < c->ndiags; i++)
        FUZZ_CHECK(c->diags[i].text && *c->diags[i].text, "empty diagnostic");
    strbuf sb;
    sb_init(&sb);
    settings_to_json(&c->set, &sb);
    for (size_t i = 0; i < c->npatterns; i++)
        value_to_json(c->patterns[i], &sb);
    sb_free(&sb);
    config_free(c);
    return 0;
}
