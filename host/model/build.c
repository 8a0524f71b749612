/* The configuration -> registry pipeline shared by `ndf run` and friends
 * and by each generation of `ndf serve`, so a fix lands in both. */
#include "build-config.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/build.h"
#include "model/pattern.h"

static void report(const build_opts *o, const char *msg)
{
    if (o->report)
        o->report(o->opaque, msg);
    else
        log_msg(NDF_LOG_WARN, "%s", msg);
}

/* Learning goes on across runs and reloads: from the previous generation's
 * pattern of the same name, else from the store.  A bad stored record is
 * reported by the store and the pattern starts afresh. */
static void carry_learning(const build_opts *o, pattern *p)
{
    pattern *old = NULL;
    if (o->prev && registry_get(o->prev, p->name, &old) == NDF_OK) {
        pattern_adopt_learning(p, old);
        pattern_unref(old);
        return;
    }
    if (!o->store || !o->store->load)
        return;
    learning_state st;
    memset(&st, 0, sizeof st);
    int rc = o->store->load(o->store->opaque, p->name, &st);
    if (rc == NDF_OK) {
        pthread_mutex_lock(&p->lock);
        learning_free(&p->learn);
        p->learn = st;
        pthread_mutex_unlock(&p->lock);
    } else if (rc != NDF_ERR_NOT_FOUND) {
        log_msg(NDF_LOG_WARN, "%s", err_msg());
    }
}

static size_t check_requirements(const build_opts *o, registry *reg)
{
    loader_requirement *req;
    size_t nreq, errors = 0;
    loader_take_requirements(&req, &nreq);
    for (size_t i = 0; i < nreq; i++) {
        pattern *p;
        if (registry_get(reg, req[i].name, &p) == NDF_OK) {
            pattern_unref(p);
            continue;
        }
        char *m = xasprintf("%s:%d: unknown pattern '%s'", req[i].file ? req[i].file : "?",
                            req[i].line, req[i].name);
        report(o, m);
        free(m);
        errors++;
    }
    loader_free_requirements(req, nreq);
    return errors;
}

registry *build_registry(const build_opts *o, ndf_value *const *defs, size_t ndefs, size_t *nerrors)
{
    const settings *set = o->set;
    registry_opts ro = {
        .cache_size = (size_t)set->cache_size,
        .enable_learning = set->learning_enabled,
        .learning = set->learning,
        .store = o->store,
    };
    registry *reg = registry_new(&ro);
    size_t errors = 0;
    /* Requirements left by an earlier, abandoned build on this thread are
     * not this build's. */
    loader_requirement *stale;
    size_t nstale;
    loader_take_requirements(&stale, &nstale);
    loader_free_requirements(stale, nstale);
    for (size_t i = 0; i < ndefs; i++) {
        pattern *p;
        int rc = pattern_build(o->ld, value_dup(defs[i]), &set->learning, &p);
        if (rc == NDF_OK) {
            carry_learning(o, p);
            rc = registry_register(reg, p);
            pattern_unref(p);
        }
        if (rc) {
            report(o, err_msg());
            errors++;
        }
    }
    errors += check_requirements(o, reg);
    *nerrors = errors;
    return reg;
}
