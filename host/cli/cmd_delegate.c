/* `ndf delegate`: chooses the pattern for a context (model/delegate), runs
 * it as `ndf run` does (cmd_run_one), and falls back through the attempt
 * order while the outcome says so (delegate_outcome_falls_back).  Every
 * attempt is recorded with origin "delegate" and, in its stored context,
 * why it was chosen. */
#include "build-config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/runtime.h"
#include "base/util.h"
#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "model/context.h"
#include "model/delegate.h"

/* The context attribute that carries an attempt's reason into its record
 * (the stored context), so that `ndf status ID --json` shows it. */
#define DELEGATE_REASON_ATTR "delegate_reason"

static const char delegate_usage[] =
    "Usage: ndf delegate [context options] [--explain] [--policy P] [--seed N]\n"
    "                    [--max-fallbacks K] [--timeout S] [--json]\n"
    "\n"
    "Chooses the pattern that suits the context by its learned posterior, runs\n"
    "it, learns from the outcome, and falls back to the next candidate when it\n"
    "fails.  Exits as 'ndf run' does, or 11 when no pattern suits the context.\n"
    "\n"
    "Options:\n"
    "  --policy P          thompson (default), greedy, ucb, fixed or\n"
    "                      epsilon_greedy\n"
    "  --seed N            seed of the draws (0 to 2^53): the same seed and\n"
    "                      history give the same choice\n"
    "  --max-fallbacks K   candidates tried after the first (default 2)\n"
    "  --timeout S         each attempt's deadline in seconds\n"
    "  --explain           print the candidate table before running\n"
    "  --json              print the choice and the attempts as one JSON\n"
    "                      object on stdout\n"
    "\n" CTXOPT_HELP;

typedef struct deleg_args {
    ndf_context *ctx;
    delegate_opts o;
    double timeout;
    int explain, json;
} deleg_args;

/* Parses a whole unsigned number no greater than `max` into *out. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parses the command line into *da.  Returns EXIT_OK with da->ctx set (to
 * free) to go on; otherwise da->ctx is NULL and the return is the
 * command's. */
static int delegate_parse(cmd_ctx *c, int argc, char **argv, deleg_args *da)
{
    enum { OPT_POLICY = 1, OPT_SEED, OPT_MAXFB, OPT_TIMEOUT, OPT_EXPLAIN, OPT_JSON };
    static const opt_spec opts[] = {CTXOPT_OPTIONS,
                                    {"policy", 0, OPT_REQUIRED, OPT_POLICY},
                                    {"seed", 0, OPT_REQUIRED, OPT_SEED},
                                    {"max-fallbacks", 0, OPT_REQUIRED, OPT_MAXFB},
                                    {"timeout", 0, OPT_REQUIRED, OPT_TIMEOUT},
                                    {"explain", 0, OPT_NONE, OPT_EXPLAIN},
                                    {"json", 0, OPT_NONE, OPT_JSON},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    ctxopt co;
    ctxopt_init(&co);
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, rc = EXIT_OK, done = 0;
    uint64_t v;
    while (!done && (o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc)) {
            done = rc != EXIT_OK;
            continue;
        }
        switch (o) {
        case OPT_POLICY:
            if (delegate_policy_parse(p.arg, &da->o.policy) != 0) {
                cmd_error(c,
                          "--policy %s: expected thompson, greedy, ucb, fixed or "
                          "epsilon_greedy\n",
                          p.arg);
                rc = EXIT_USAGE, done = 1;
            }
            break;
        case OPT_SEED:
            if (parse_uint(p.arg, (uint64_t)1 << 53, &v) != 0) {
                cmd_error(c, "--seed %s: expected a whole number from 0 to 2^53\n", p.arg);
                rc = EXIT_USAGE, done = 1;
            } else {
                da->o.has_seed = 1;
                da->o.seed = v;
            }
            break;
        case OPT_MAXFB:
            if (parse_uint(p.arg, 1000000, &v) != 0) {
                cmd_error(c, "--max-fallbacks %s: expected a whole number from 0\n", p.arg);
                rc = EXIT_USAGE, done = 1;
            } else {
                da->o.max_fallbacks = (unsigned)v;
            }
            break;
        case OPT_TIMEOUT:
            if (cmd_parse_seconds(c, "--timeout", p.arg, &da->timeout) != 0)
                rc = EXIT_USAGE, done = 1;
            break;
        case OPT_EXPLAIN: da->explain = 1; break;
        case OPT_JSON: da->json = 1; break;
        case 'h': rc = cmd_help(c), done = 1; break;
        default: rc = cmd_bad_usage(c), done = 1; break;
        }
    }
    if (!done && p.noperands != 0) {
        cmd_error(c, "takes no operands (see 'ndf delegate --help')\n");
        rc = EXIT_USAGE, done = 1;
    }
    if (!done)
        rc = cmd_context_finish(c, &co, &da->ctx);
    ctxopt_free(&co);
    return rc;
}

static void print_num(FILE *out, const char *fmt, double v, int width)
{
    if (isfinite(v))
        fprintf(out, fmt, width, v);
    else
        fprintf(out, "%-*s", width, "-");
}

/* The candidate table of --explain on `out`. */
static void explain_print(FILE *out, const delegate_result *res)
{
    fprintf(out, "delegation: policy %s, seed %llu, domain %s%s%s, %zu candidate%s",
            delegate_policy_name(res->policy), (unsigned long long)res->seed,
            res->domain ? "'" : "", res->domain ? res->domain : "(none)", res->domain ? "'" : "",
            res->ncands, res->ncands == 1 ? "" : "s");
    if (res->policy == DELEGATE_EPSILON)
        fprintf(out, ", coin: %s", res->coin ? "explore" : "exploit");
    fputc('\n', out);
    if (!res->ncands)
        return;
    size_t w = strlen("PATTERN");
    for (size_t i = 0; i < res->ncands; i++)
        if (strlen(res->cands[i].name) > w)
            w = strlen(res->cands[i].name);
    fprintf(out, "%-*s  %-5s  %-5s  %-13s  %-11s  %-6s  %s\n", (int)w, "PATTERN", "SIM", "MEAN",
            "90% INTERVAL", "SAMPLES d/n", "SCORE", "VERDICT");
    for (size_t i = 0; i < res->ncands; i++) {
        const delegate_candidate *k = &res->cands[i];
        char iv[40], smp[48];
        if (isfinite(k->lo) && isfinite(k->hi))
            snprintf(iv, sizeof iv, "[%.3f %.3f]", k->lo, k->hi);
        else
            snprintf(iv, sizeof iv, "-");
        snprintf(smp, sizeof smp, "%llu/%llu", (unsigned long long)k->nd, (unsigned long long)k->n);
        fprintf(out, "%-*s  %.3f  %.3f  %-13s  %-11s  ", (int)w, k->name, k->similarity, k->mean,
                iv, smp);
        print_num(out, "%-*.3f", k->score, 6);
        fprintf(out, "  %s%s\n", delegate_verdict_name(k->verdict),
                k->explored ? " (explored)" : "");
    }
}

typedef struct attempt {
    const char *pattern; /* borrowed from the result */
    char *reason;
    char id[48]; /* empty when it did not start */
    int status;
    delegate_outcome outcome;
    char *error;
} attempt;

static void json_print(FILE *out, const delegate_result *res, const attempt *a, size_t na, int st)
{
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, "{\"delegation\":");
    delegate_result_to_json(res, &sb);
    sb_puts(&sb, ",\"attempts\":[");
    for (size_t i = 0; i < na; i++) {
        sb_puts(&sb, i ? ",{\"pattern\":" : "{\"pattern\":");
        sb_json_str(&sb, a[i].pattern);
        sb_puts(&sb, ",\"id\":");
        if (a[i].id[0])
            sb_json_str(&sb, a[i].id);
        else
            sb_puts(&sb, "null");
        sb_puts(&sb, ",\"reason\":");
        sb_json_str(&sb, a[i].reason);
        sb_printf(&sb, ",\"status\":\"%s\",\"outcome\":", ndf_status_name(a[i].status));
        sb_json_str(&sb, delegate_outcome_name(a[i].outcome));
        if (a[i].error) {
            sb_puts(&sb, ",\"error\":");
            sb_json_str(&sb, a[i].error);
        }
        sb_puts(&sb, "}");
    }
    sb_printf(&sb, "],\"success\":%s,\"status\":\"%s\",\"pattern\":", st ? "false" : "true",
              ndf_status_name(st));
    if (!st && na)
        sb_json_str(&sb, a[na - 1].pattern);
    else
        sb_puts(&sb, "null");
    sb_puts(&sb, "}");
    fprintf(out, "%s\n", sb.buf);
    sb_free(&sb);
}

/* Runs the attempt order of `res` with da->ctx until an outcome does not
 * fall back; fills a[] (room for res->norder) and *na.  Returns the
 * status of the last attempt. */
static int run_attempts(cmd_ctx *c, const deleg_args *da, const delegate_result *res, attempt *a,
                        size_t *na)
{
    int show = c->verbosity >= 0 && !da->json;
    int st = NDF_OK;
    *na = 0;
    for (size_t k = 0; k < res->norder; k++) {
        const delegate_candidate *cand = &res->cands[res->order[k]];
        attempt *t = &a[(*na)++];
        t->pattern = cand->name;
        t->reason = delegate_reason(res, k);
        if (show && k == 0)
            fprintf(c->err, "delegate: chose '%s' (%s; seed %llu)\n", cand->name, t->reason,
                    (unsigned long long)res->seed);
        else if (show)
            fprintf(c->err, "delegate: falling back to '%s' (%s)\n", cand->name, t->reason);
        ndf_context *ctx = context_dup(da->ctx);
        context_set_attr(ctx, DELEGATE_REASON_ATTR,
                         value_new_string(DELEGATE_REASON_ATTR, t->reason));
        if (k) {
            /* the hook writes the link into the record before it is stored */
            c->rt->hook.fallback_from = a[k - 1].pattern;
            c->rt->hook.fallback_cause = a[k - 1].status == NDF_ERR_TIMEOUT      ? "timeout"
                                         : a[k - 1].status == NDF_ERR_CONFIDENCE ? "confidence"
                                         : a[k - 1].status == NDF_ERR_NOT_FOUND  ? "not_found"
                                                                                 : "failure";
        }
        record *r = NULL;
        /* The threshold has governed the selection (delegate_rank): a
         * candidate confidently below it runs only when exploration chose
         * it, so the executor's gate does not refuse it again. */
        st = cmd_run_one(c, cand->name, ctx, da->timeout, EXEC_FORCE, show, &r);
        c->rt->hook.fallback_from = c->rt->hook.fallback_cause = NULL;
        context_free(ctx);
        t->status = st;
        t->outcome = delegate_outcome_of(st);
        if (st)
            t->error = xstrdup(err_msg());
        if (r) {
            snprintf(t->id, sizeof t->id, "%s", r->id);
            if (show)
                cmd_run_summary(c, r, st);
            record_unref(r);
        } else if (st && c->verbosity >= 0) {
            cmd_error(c, "%s\n", t->error);
        }
        if (!delegate_outcome_falls_back(t->outcome))
            break;
        if (k + 1 == res->norder && st && show && res->norder < res->ncands)
            fprintf(c->err, "delegate: no fallback left (--max-fallbacks %zu)\n", res->norder - 1);
    }
    return st;
}

static int cmd_delegate(cmd_ctx *c, int argc, char **argv)
{
    deleg_args da;
    memset(&da, 0, sizeof da);
    delegate_opts_default(&da.o);
    int rc = delegate_parse(c, argc, argv, &da);
    if (!da.ctx)
        return rc;
    if ((rc = cmd_start_executor(c, STORE_ORIGIN_DELEGATE))) {
        context_free(da.ctx);
        return rc;
    }
    if (c->rt->cfg)
        da.o.threshold = c->rt->cfg->set.confidence_threshold;
    da.o.explain = da.explain || da.json;
    delegate_result res;
    int st = delegate_choose(c->rt->reg, da.ctx, &da.o, &res);
    if (da.explain && !da.json) {
        explain_print(c->out, &res);
        fflush(c->out); /* before the attempts' progress on c->err */
    }
    attempt *a = xcalloc(res.norder ? res.norder : 1, sizeof *a);
    size_t na = 0;
    if (st == NDF_OK) {
        st = run_attempts(c, &da, &res, a, &na);
        rc = exit_code_for(st);
    } else {
        char *why = xstrdup(err_msg());
        if (c->verbosity >= 0 || !da.json)
            cmd_error(c, "%s\n", why);
        free(why);
        rc = st == NDF_ERR_NOT_FOUND ? EXIT_NO_CANDIDATE : exit_code_for(st);
    }
    if (da.json)
        json_print(c->out, &res, a, na, st);
    for (size_t i = 0; i < na; i++) {
        free(a[i].reason);
        free(a[i].error);
    }
    free(a);
    delegate_result_free(&res);
    context_free(da.ctx);
    return rc;
}

const cmd_entry cmd_delegate_entry = {
    .name = "delegate",
    .summary = "choose the pattern for a context by learned confidence, run it, fall back",
    .usage = delegate_usage,
    .exec = cmd_delegate,
};
