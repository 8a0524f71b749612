/* Loads libpq on first use (see pqload.h for why it is not linked). */
#include "build-config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <ndf/sdk.h>

#include "base/util.h"
#define PQLOAD_NO_MACROS
#include "store/pqload.h"

pq_api pq_fn;

int pq_load_from(const char *soname, pq_api *api)
{
    dlerror();
    /* RTLD_NOW: a libpq missing one of its own dependencies fails here,
     * with the loader's reason, not at the first call */
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return err_set(NDF_ERR_IO,
                       "PostgreSQL store: cannot load %s: %s (on Debian: apt-get install libpq5)",
                       soname, why ? why : "unknown reason");
    }
    pq_api a;
    memset(&a, 0, sizeof a);
    const char *missing = NULL;
    /* a function pointer's bits from dlsym()'s void *: POSIX guarantees
     * the conversion, ISO C does not name it, hence the memcpy */
#define PQLOAD_SYM(f)                                                                              \
    if (!missing) {                                                                                \
        void *p = dlsym(h, #f);                                                                    \
        if (p)                                                                                     \
            memcpy(&a.f, &p, sizeof p);                                                            \
        else                                                                                       \
            missing = #f;                                                                          \
    }
    PQLOAD_FUNCS(PQLOAD_SYM)
#undef PQLOAD_SYM
    if (missing) {
        dlclose(h);
        return err_set(NDF_ERR_IO, "PostgreSQL store: %s has no %s (libpq 10 or newer is needed)",
                       soname, missing);
    }
    *api = a;
    return NDF_OK;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_msg[512];

static void load_once(void)
{
    load_rc = pq_load_from(NDF_LIBPQ_SONAME, &pq_fn);
    if (load_rc)
        snprintf(load_msg, sizeof load_msg, "%s", err_msg());
}

int pq_load(void)
{
    pthread_once(&once, load_once);
    if (load_rc)
        return err_set(load_rc, "%s", load_msg);
    return NDF_OK;
}
