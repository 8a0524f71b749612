/* A delegation from start to end (see delegation.h): the choice, the
 * attempt loop with its fallback links, and the JSON that `ndf delegate
 * --json`, the server and `ndf batch` print. */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/delegation.h"
#include "base/util.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "model/context.h"
#include "store/history.h"

void delegation_opts_from(const runtime *rt, delegate_opts *o)
{
    settings dflt;
    const settings *s = rt->cfg ? &rt->cfg->set : NULL;
    if (!s) {
        settings_default(&dflt);
        s = &dflt;
    }
    o->threshold = s->confidence_threshold;
    o->prior_strength = s->delegation_prior_strength;
    o->epsilon = s->delegation_epsilon;
    if (o->max_fallbacks == DELEGATION_FALLBACKS_CONFIGURED)
        o->max_fallbacks = (unsigned)s->delegation_max_fallbacks;
    if (s == &dflt)
        settings_free(&dflt);
}

/* The fallback cause recorded with the attempt after one that ended in
 * `status` (the words of `ndf run --fallback`). */
static const char *cause_of(int status)
{
    switch (status) {
    case NDF_ERR_TIMEOUT: return "timeout";
    case NDF_ERR_CONFIDENCE: return "confidence";
    case NDF_ERR_NOT_FOUND: return "not_found";
    default: return "failure";
    }
}

int delegation_run_quiet(void *opaque, size_t k, const delegation_attempt *a,
                         const ndf_context *ctx, const char *fb_from, const char *fb_cause,
                         record **out)
{
    (void)k;
    delegation_quiet *q = opaque;
    runtime *rt = q->rt;
    record *r = NULL;
    /* The threshold has governed the selection (delegate_rank): a
     * candidate confidently below it runs only when exploration chose it,
     * so the executor's gate does not judge it again. */
    int rc = executor_start_fallback(rt->ex, a->pattern, ctx, q->timeout,
                                     EXEC_FORCE | EXEC_ORIGIN(q->origin), fb_from, fb_cause, &r);
    *out = NULL;
    if (rc)
        return rc;
    if (q->track)
        q->track(q->track_opaque, r);
    executor_wait(rt->ex, r, -1);
    rc = r->status;
    if (rc)
        err_set(rc, "%s", r->error ? r->error : ndf_status_name(rc));
    *out = r;
    return rc;
}

int delegation_run(runtime *rt, const ndf_context *ctx, const delegate_opts *o, double timeout,
                   store_origin origin, delegation_run_fn run, void *opaque, delegation *out)
{
    memset(out, 0, sizeof *out);
    delegation_quiet q = {.rt = rt, .origin = origin, .timeout = timeout};
    if (!run) {
        run = delegation_run_quiet;
        opaque = &q;
    }
    int st = delegate_choose(rt->reg, ctx, o, &out->res);
    out->attempts = xcalloc(out->res.norder ? out->res.norder : 1, sizeof *out->attempts);
    if (st != NDF_OK) {
        out->status = st;
        out->error = xstrdup(err_msg());
        return st;
    }
    out->chosen = 1;
    for (size_t k = 0; k < out->res.norder; k++) {
        const delegate_candidate *cand = &out->res.cands[out->res.order[k]];
        delegation_attempt *a = &out->attempts[out->nattempts++];
        a->pattern = cand->name;
        a->reason = delegate_reason(&out->res, k);
        ndf_context *actx = context_dup(ctx);
        context_set_attr(actx, DELEGATION_REASON_ATTR,
                         value_new_string(DELEGATION_REASON_ATTR, a->reason));
        const delegation_attempt *prev = k ? &out->attempts[k - 1] : NULL;
        record *r = NULL;
        st = run(opaque, k, a, actx, prev ? prev->pattern : NULL,
                 prev ? cause_of(prev->status) : NULL, &r);
        context_free(actx);
        a->status = st;
        a->outcome = delegate_outcome_of(st);
        if (st)
            a->error = xstrdup(err_msg());
        if (r) {
            snprintf(a->id, sizeof a->id, "%s", r->id);
            record_unref(r);
        }
        if (!delegate_outcome_falls_back(a->outcome))
            break;
    }
    out->status = st;
    if (st && out->nattempts)
        out->error = xstrdup(out->attempts[out->nattempts - 1].error);
    if (st)
        err_set(st, "%s", out->error);
    return st;
}

void delegation_to_json(const delegation *d, strbuf *sb)
{
    sb_puts(sb, "{\"delegation\":");
    delegate_result_to_json(&d->res, sb);
    sb_puts(sb, ",\"attempts\":[");
    for (size_t i = 0; i < d->nattempts; i++) {
        const delegation_attempt *a = &d->attempts[i];
        sb_puts(sb, i ? ",{\"pattern\":" : "{\"pattern\":");
        sb_json_str(sb, a->pattern);
        sb_puts(sb, ",\"id\":");
        if (a->id[0])
            sb_json_str(sb, a->id);
        else
            sb_puts(sb, "null");
        sb_puts(sb, ",\"reason\":");
        sb_json_str(sb, a->reason);
        sb_printf(sb, ",\"status\":\"%s\",\"outcome\":", ndf_status_name(a->status));
        sb_json_str(sb, delegate_outcome_name(a->outcome));
        if (a->error) {
            sb_puts(sb, ",\"error\":");
            sb_json_str(sb, a->error);
        }
        sb_puts(sb, "}");
    }
    sb_printf(sb, "],\"success\":%s,\"status\":\"%s\",\"pattern\":", d->status ? "false" : "true",
              ndf_status_name(d->status));
    if (!d->status && d->nattempts)
        sb_json_str(sb, d->attempts[d->nattempts - 1].pattern);
    else
        sb_puts(sb, "null");
    if (d->status && d->error) {
        sb_puts(sb, ",\"error\":");
        sb_json_str(sb, d->error);
    }
    sb_puts(sb, "}");
}

void delegation_free(delegation *d)
{
    for (size_t i = 0; i < d->nattempts; i++) {
        free(d->attempts[i].reason);
        free(d->attempts[i].error);
    }
    free(d->attempts);
    free(d->error);
    delegate_result_free(&d->res);
    memset(d, 0, sizeof *d);
}
