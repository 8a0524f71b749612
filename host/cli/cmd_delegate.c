/* `ndf delegate`: the delegation loop (app/delegation) with each attempt
 * run as `ndf run` runs it (cmd_run_one), progress and all.  Every attempt
 * is recorded with origin "delegate" and, in its stored context, why it
 * was chosen. */
#include "build-config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/delegation.h"
#include "app/runtime.h"
#include "base/util.h"
#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "exec/executor.h"
#include "exec/record.h"
#include "model/context.h"
#include "model/delegate.h"
#include "store/queue.h"

static const char delegate_usage[] =
    "Usage: ndf delegate [context options] [--explain] [--policy P] [--seed N]\n"
    "                    [--max-fallbacks K] [--timeout S] [--submit] [--json]\n"
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
    "  --max-fallbacks K   candidates tried after the first (default\n"
    "                      delegation.max_fallbacks, 2)\n"
    "  --timeout S         each attempt's deadline in seconds\n"
    "  --explain           print the candidate table before running\n"
    "  --submit            queue the chosen pattern in the shared store's work\n"
    "                      queue (as 'ndf submit') instead of running it, and\n"
    "                      print the queued id; no fallback then\n"
    "  --json              print the choice and the attempts as one JSON\n"
    "                      object on stdout\n"
    "\n" CTXOPT_HELP;

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

int cmd_delegate_parse(cmd_ctx *c, int argc, char **argv, cmd_delegate_args *da)
{
    memset(da, 0, sizeof *da);
    delegate_opts_default(&da->o);
    da->o.max_fallbacks = DELEGATION_FALLBACKS_CONFIGURED;
    enum { OPT_POLICY = 1, OPT_SEED, OPT_MAXFB, OPT_TIMEOUT, OPT_EXPLAIN, OPT_JSON, OPT_SUBMIT };
    static const opt_spec opts[] = {CTXOPT_OPTIONS,
                                    {"policy", 0, OPT_REQUIRED, OPT_POLICY},
                                    {"seed", 0, OPT_REQUIRED, OPT_SEED},
                                    {"max-fallbacks", 0, OPT_REQUIRED, OPT_MAXFB},
                                    {"timeout", 0, OPT_REQUIRED, OPT_TIMEOUT},
                                    {"explain", 0, OPT_NONE, OPT_EXPLAIN},
                                    {"json", 0, OPT_NONE, OPT_JSON},
                                    {"submit", 0, OPT_NONE, OPT_SUBMIT},
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
            if (cmd_parse_interval(c, "--timeout", p.arg, &da->timeout) != 0)
                rc = EXIT_USAGE, done = 1;
            break;
        case OPT_EXPLAIN: da->explain = 1; break;
        case OPT_JSON: da->json = 1; break;
        case OPT_SUBMIT: da->submit = 1; break;
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

/* The command's runner: the attempt runs as `ndf run` runs it (plan
 * check, progress, summary on stderr), linked to the attempt before it. */
typedef struct cli_run {
    cmd_ctx *c;
    double timeout;
    int show;
    int explain; /* the table is still to be printed */
    const delegate_result *res;
} cli_run;

static int run_attempt(void *opaque, size_t k, const delegation_attempt *a,
                       const ndf_context *ctx, const char *fb_from, const char *fb_cause,
                       record **out)
{
    cli_run *cr = opaque;
    cmd_ctx *c = cr->c;
    if (k == 0 && cr->explain) {
        /* the table before the attempts' progress on c->err */
        explain_print(c->out, cr->res);
        fflush(c->out);
        cr->explain = 0;
    }
    if (cr->show && k == 0)
        fprintf(c->err, "delegate: chose '%s' (%s; seed %llu)\n", a->pattern, a->reason,
                (unsigned long long)cr->res->seed);
    else if (cr->show)
        fprintf(c->err, "delegate: falling back to '%s' (%s)\n", a->pattern, a->reason);
    /* one command, one thread: the hook writes the link into the record
     * before it is stored */
    c->rt->hook.fallback_from = fb_from;
    c->rt->hook.fallback_cause = fb_cause;
    /* The threshold has governed the selection (delegate_rank): a
     * candidate confidently below it runs only when exploration chose it,
     * so the executor's gate does not refuse it again. */
    int st = cmd_run_one(c, a->pattern, ctx, cr->timeout, EXEC_FORCE, cr->show, out);
    c->rt->hook.fallback_from = c->rt->hook.fallback_cause = NULL;
    if (*out && cr->show)
        cmd_run_summary(c, *out, st);
    else if (!*out && st && c->verbosity >= 0)
        cmd_error(c, "%s\n", err_msg());
    return st;
}

/* --submit: the choice made here, from the shared counts, and queued for
 * a worker with the reason in its context (the worker then runs it past
 * the confidence gate, as a delegation's attempt runs: the threshold
 * governed the choice). */
static int delegate_submit(cmd_ctx *c, cmd_delegate_args *da)
{
    /* the queue is checked first: a store without one refuses before the
     * choice is made (and before an SQLite store is created to refuse) */
    int rc = cmd_queue_check(c, "--submit: ");
    if (rc != EXIT_OK)
        return rc;
    if (!cmd_open_store(c, RT_PATTERNS, &rc))
        return rc;
    delegation_opts_from(c->rt, &da->o);
    da->o.explain = da->explain || da->json;
    delegate_result res;
    int st = delegate_choose(c->rt->reg, da->ctx, &da->o, &res);
    if (da->explain && !da->json)
        explain_print(c->out, &res);
    if (st) {
        cmd_error(c, "%s\n", err_msg());
        delegate_result_free(&res);
        return st == NDF_ERR_NOT_FOUND ? EXIT_NO_CANDIDATE : exit_code_for(st);
    }
    const char *pat = res.cands[res.order[0]].name;
    char *reason = delegate_reason(&res, 0);
    ndf_context *actx = context_dup(da->ctx);
    context_set_attr(actx, DELEGATION_REASON_ATTR,
                     value_new_string(DELEGATION_REASON_ATTR, reason));
    char *id = NULL;
    rc = cmd_queue_submit(c, RT_PATTERNS, pat, actx, 0, da->timeout, &id);
    context_free(actx);
    if (rc != EXIT_OK) {
        /* said */
    } else if (da->json) {
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, "{\"id\":");
        sb_json_str(&sb, id);
        sb_puts(&sb, ",\"pattern\":");
        sb_json_str(&sb, pat);
        sb_puts(&sb, ",\"reason\":");
        sb_json_str(&sb, reason);
        sb_puts(&sb, ",\"state\":\"QUEUED\",\"delegation\":");
        delegate_result_to_json(&res, &sb);
        sb_puts(&sb, "}\n");
        fwrite(sb.buf, 1, sb.len, c->out);
        sb_free(&sb);
        rc = EXIT_OK;
    } else {
        if (c->verbosity >= 0)
            fprintf(c->err, "delegate: chose '%s' (%s; seed %llu): queued\n", pat, reason,
                    (unsigned long long)res.seed);
        fprintf(c->out, "%s\n", id);
        rc = EXIT_OK;
    }
    free(id);
    free(reason);
    delegate_result_free(&res);
    return rc;
}

static int cmd_delegate(cmd_ctx *c, int argc, char **argv)
{
    cmd_delegate_args da;
    int rc = cmd_delegate_parse(c, argc, argv, &da);
    if (!da.ctx)
        return rc;
    if (da.submit) {
        rc = delegate_submit(c, &da);
        context_free(da.ctx);
        return rc;
    }
    if ((rc = cmd_start_executor(c, STORE_ORIGIN_DELEGATE))) {
        context_free(da.ctx);
        return rc;
    }
    delegation_opts_from(c->rt, &da.o);
    da.o.explain = da.explain || da.json;
    delegation d;
    cli_run cr = {c, da.timeout, c->verbosity >= 0 && !da.json, da.explain && !da.json, &d.res};
    int st = delegation_run(c->rt, da.ctx, &da.o, da.timeout, STORE_ORIGIN_DELEGATE, run_attempt,
                            &cr, &d);
    if (cr.explain) /* nothing ran: the table says why */
        explain_print(c->out, &d.res);
    if (!d.chosen) {
        if (c->verbosity >= 0 || !da.json)
            cmd_error(c, "%s\n", d.error);
        rc = st == NDF_ERR_NOT_FOUND ? EXIT_NO_CANDIDATE : exit_code_for(st);
    } else {
        rc = exit_code_for(st);
        if (st && cr.show && d.nattempts == d.res.norder && d.res.norder < d.res.ncands &&
            delegate_outcome_falls_back(d.attempts[d.nattempts - 1].outcome))
            fprintf(c->err, "delegate: no fallback left (--max-fallbacks %zu)\n",
                    d.res.norder - 1);
    }
    if (da.json) {
        strbuf sb;
        sb_init(&sb);
        delegation_to_json(&d, &sb);
        fprintf(c->out, "%s\n", sb.buf);
        sb_free(&sb);
    }
    delegation_free(&d);
    context_free(da.ctx);
    return rc;
}

/* ---- a delegation's answer from the server (ndf ctl delegate) ---- */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* explain_print's table from the JSON of delegate_result_to_json. */
static void explain_print_json(FILE *out, const cJSON *d)
{
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(d, "candidates");
    const char *domain = jstr(d, "domain");
    int n = cJSON_GetArraySize(cands);
    char *dom = domain ? term_safe(domain) : NULL;
    fprintf(out, "delegation: policy %s, seed %.0f, domain %s%s%s, %d candidate%s",
            jstr(d, "policy") ? jstr(d, "policy") : "?", jnum(d, "seed"), dom ? "'" : "",
            dom ? dom : "(none)", dom ? "'" : "", n, n == 1 ? "" : "s");
    free(dom);
    if (jstr(d, "policy") && strcmp(jstr(d, "policy"), "epsilon_greedy") == 0)
        fprintf(out, ", coin: %s",
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "coin")) ? "explore" : "exploit");
    fputc('\n', out);
    if (!n)
        return;
    size_t w = strlen("PATTERN");
    const cJSON *k;
    cJSON_ArrayForEach(k, cands)
    {
        const char *name = jstr(k, "pattern");
        if (name && strlen(name) > w)
            w = strlen(name);
    }
    fprintf(out, "%-*s  %-5s  %-5s  %-13s  %-11s  %-6s  %s\n", (int)w, "PATTERN", "SIM", "MEAN",
            "90% INTERVAL", "SAMPLES d/n", "SCORE", "VERDICT");
    cJSON_ArrayForEach(k, cands)
    {
        char iv[40], smp[48];
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(k, "interval");
        if (cJSON_GetArraySize(in) == 2)
            snprintf(iv, sizeof iv, "[%.3f %.3f]", cJSON_GetArrayItem(in, 0)->valuedouble,
                     cJSON_GetArrayItem(in, 1)->valuedouble);
        else
            snprintf(iv, sizeof iv, "-");
        snprintf(smp, sizeof smp, "%.0f/%.0f", jnum(k, "domain_executions"),
                 jnum(k, "executions"));
        const char *name = jstr(k, "pattern");
        fprintf(out, "%-*s  %.3f  %.3f  %-13s  %-11s  ", (int)w, name ? name : "?",
                jnum(k, "similarity"), jnum(k, "mean"), iv, smp);
        print_num(out, "%-*.3f", jnum(k, "score"), 6);
        fprintf(out, "  %s%s\n", jstr(k, "verdict") ? jstr(k, "verdict") : "?",
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "explored")) ? " (explored)"
                                                                              : "");
    }
}

int cmd_delegate_answer(cmd_ctx *c, const cJSON *resp, int json, int explain)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp, "delegation");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "exit");
    int rc = cJSON_IsNumber(e) ? e->valueint : EXIT_FAILED;
    if (json) {
        char *t = cJSON_PrintUnformatted(d);
        if (t)
            fprintf(c->out, "%s\n", t);
        cJSON_free(t);
        return rc;
    }
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(d, "delegation");
    if (explain && choice) {
        explain_print_json(c->out, choice);
        fflush(c->out);
    }
    if (c->verbosity < 0)
        return rc;
    const cJSON *a;
    int k = 0;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(d, "attempts"))
    {
        char *reason = term_safe(jstr(a, "reason") ? jstr(a, "reason") : "");
        const char *pat = jstr(a, "pattern") ? jstr(a, "pattern") : "?";
        if (k++ == 0)
            fprintf(c->err, "delegate: chose '%s' (%s; seed %.0f)\n", pat, reason,
                    jnum(choice, "seed"));
        else
            fprintf(c->err, "delegate: falling back to '%s' (%s)\n", pat, reason);
        free(reason);
        const char *id = jstr(a, "id");
        fprintf(c->err, "pattern %s: %s (execution %s)\n", pat,
                jstr(a, "status") ? jstr(a, "status") : "?", id ? id : "not started");
        if (jstr(a, "error")) {
            char *m = term_safe(jstr(a, "error"));
            cmd_error(c, "%s\n", m);
            free(m);
        }
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok"))) {
        const char *err = jstr(resp, "error");
        char *m = term_safe(err ? err : "failed");
        cmd_error(c, "%s\n", m);
        free(m);
    }
    return rc;
}

const cmd_entry cmd_delegate_entry = {
    .name = "delegate",
    .summary = "choose the pattern for a context by learned confidence, run it, fall back",
    .usage = delegate_usage,
    .exec = cmd_delegate,
};
