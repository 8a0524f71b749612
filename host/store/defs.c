/* Run-time definitions (see defs.h): the calls, handed to the backend. */
#include "build-config.h"

#include <stdlib.h>
#include <string.h>

#include "store/defs.h"
#include "store/store_backend.h"
#include "base/util.h"

static const store_ops *ops_of(const store *s)
{
    return ((const store_head *)(const void *)s)->ops;
}

int store_defs(store *s, store_def **out, size_t *n)
{
    return ops_of(s)->defs(s, out, n);
}

int store_def_put(store *s, const store_def *d, int remove)
{
    if (!utf8_valid(d->text ? d->text : "", d->text ? strlen(d->text) : 0) ||
        !utf8_valid(d->name, strlen(d->name)))
        return err_set(NDF_ERR_VALIDATION,
                       "a run-time definition must be UTF-8 text (%s '%s' is not)", d->kind,
                       d->name);
    return ops_of(s)->def_put(s, d, remove);
}

int store_defs_version(store *s, uint64_t *out)
{
    return ops_of(s)->defs_version(s, out);
}

void store_defs_free(store_def *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].kind);
        free(d[i].name);
        free(d[i].text);
    }
    free(d);
}
