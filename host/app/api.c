/* The reference's imperative calls that are neither a run nor a reload
 * (api.h).  record_execution builds the record an execution would have
 * left and hands it to the same history path, so an outside outcome is
 * counted exactly like one ndf ran. */
#include "build-config.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/util.h"
#include "model/context.h"
#include "exec/record.h"
#include "store/history.h"
#include "app/api.h"

int api_record(runtime *rt, const char *name, const api_outcome *o, char *id_out)
{
    if (!rt->reg)
        return err_set(NDF_ERR_INVALID, "record: no patterns are loaded");
    if (!name || !*name)
        return err_set(NDF_ERR_INVALID, "record: no pattern name given");
    if (!(isfinite(o->duration) && o->duration >= 0 && o->duration <= 1e9))
        return err_set(NDF_ERR_INVALID, "record: duration %g is not a number of seconds", o->duration);
    if (o->ctx && context_validate(o->ctx))
        return NDF_ERR_INVALID;
    pattern *p;
    if (registry_get(rt->reg, name, &p) != NDF_OK)
        return err_set(NDF_ERR_NOT_FOUND, "no pattern named '%s'", name);
    store *s = rt->no_store ? NULL : runtime_store(rt);

    /* The record an execution of that length, ending now, would leave:
     * its root alone, since ndf did not see the steps. */
    double dur = o->duration;
    record *r = record_new(name, o->ctx, INFINITY);
    r->root->pat = pattern_ref(p);
    r->start_wall -= dur;
    r->start -= dur;
    r->end = r->start + dur;
    ndf_exec *root = r->root;
    atomic_store(&root->start, r->start);
    atomic_store(&root->start_wall, r->start_wall);
    node_set_state_at(root, o->success ? NDF_STATE_COMPLETED : NDF_STATE_FAILED,
                      o->message && *o->message ? o->message : "recorded from outside ndf",
                      r->end);
    r->status = o->success ? NDF_OK : NDF_ERR_EXECUTION;
    r->error = o->success ? NULL
                          : xstrdup(o->message && *o->message ? o->message
                                                              : "failed outside ndf (recorded)");
    atomic_store(&r->claimed, 1);
    atomic_store(&r->done, 1);

    /* In memory first, as an execution's end does; the store's committed
     * state then replaces it (history_record), so another process's counts
     * are not lost. */
    registry_record(rt->reg, p, o->success, r->ctx->domain, dur);
    int rc = s ? history_record(s, r, STORE_ORIGIN_EXTERNAL, p) : NDF_OK;
    if (rc == NDF_OK && id_out)
        memcpy(id_out, r->id, sizeof r->id);
    record_unref(r);
    pattern_unref(p);
    return rc;
}
