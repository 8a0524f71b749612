/* ndf list, ndf show and ndf similar: the registry's patterns with their
 * confidence, one pattern's definition and statistics, and the similarity
 * search.  Human output is aligned tables; --json output is documented in
 * ndf(1) and stable. */
#include "build-config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/runtime.h"
#include "cli/commands.h"
#include "app/define.h"
#include "model/context.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "cli/plan.h"
#include "exec/executor.h"
#include "model/delegate.h"
#include "model/registry.h"
#include "store/history.h"
#include "base/util.h"

/* ---- JSON helpers ---- */

static void json_strs(strbuf *sb, char *const *a, size_t n)
{
    sb_puts(sb, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_puts(sb, ",");
        sb_json_str(sb, a[i]);
    }
    sb_puts(sb, "]");
}

/* Writes `sb` and a newline to `out`, and frees it: JSON as it is (its
 * strings are escaped), text through term_safe, since it quotes the
 * configuration (descriptions, domains, tags, attributes). */
static void emit(FILE *out, strbuf *sb, int json)
{
    sb_puts(sb, "\n");
    if (json)
        fwrite(sb->buf, 1, sb->len, out);
    else
        cmd_write_safe(out, sb->buf, sb->len);
    sb_free(sb);
}

/* ---- shared ---- */

static double global_threshold(const runtime *a)
{
    return a->cfg ? a->cfg->set.confidence_threshold : 0.75;
}

static confidence_gate global_gate(const runtime *a)
{
    return a->cfg ? (confidence_gate)a->cfg->set.confidence_gate : GATE_WARN;
}

/* What the confidence threshold does to a pattern now: whether an explicit
 * run meets its gate (refused: gate enforce; warned: gate warn), and
 * whether delegation holds it back (its pattern-wide posterior confidently
 * below the threshold, as model/delegate.h decides). */
typedef struct gate_view {
    double threshold;
    confidence_gate gate;
    int below;     /* trusted score below the threshold */
    int held_back; /* chosen by exploration only */
} gate_view;

static gate_view gate_of(const pattern *p, const learning_state *st, const learning_params *lp,
                         double global_thr, confidence_gate global_g)
{
    gate_view g;
    g.threshold = pattern_threshold(p, global_thr);
    g.gate = pattern_gate(p, global_g);
    g.below = learning_trusted(st, lp) && st->score < g.threshold;
    g.held_back = delegate_confidently_below(lp->prior_alpha + (double)st->successes,
                                             lp->prior_beta +
                                                 (double)(st->executions - st->successes),
                                             g.threshold);
    return g;
}

/* Loads the patterns; a definition that failed is reported by the runtime
 * and makes the command exit 2 at the end, but the others are still shown. */
static int load(runtime *a, int *deferred)
{
    int rc = runtime_load(a, RT_PATTERNS);
    *deferred = exit_code_for(rc);
    return rc && !a->reg ? *deferred : EXIT_OK;
}

static char *joined(char *const *a, size_t n, const char *none)
{
    strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < n; i++)
        sb_printf(&sb, "%s%s", i ? ", " : "", a[i]);
    if (!n)
        sb_puts(&sb, none);
    return sb_steal(&sb);
}

/* ---- ndf list ---- */

static const char list_usage[] =
    "Usage: ndf list [--domain GLOB] [--json]\n"
    "\n"
    "Lists the patterns by name with their type, confidence score and level,\n"
    "executions and success rate.\n"
    "\n"
    "  --domain GLOB   only patterns that serve GLOB as a domain or have a\n"
    "                  domain that GLOB matches, most confident first\n"
    "  --json          print JSON (see ndf(1))\n"
    "  -h, --help      show this help\n";

static int domain_filter(const pattern *p, const char *glob)
{
    if (!p->ndomains)
        return 1;
    for (size_t i = 0; i < p->ndomains; i++)
        if (context_glob_match(p->domains[i], glob) || context_glob_match(glob, p->domains[i]))
            return 1;
    return 0;
}

static void list_json(strbuf *sb, const pattern *p, const learning_state *st,
                      const learning_params *lp, size_t shown)
{
    sb_puts(sb, shown ? ",{\"name\":" : "{\"name\":");
    sb_json_str(sb, p->name);
    sb_puts(sb, ",\"type\":");
    sb_json_str(sb, p->type_name);
    sb_puts(sb, ",\"description\":");
    sb_json_str(sb, p->description);
    sb_puts(sb, ",\"domains\":");
    json_strs(sb, p->domains, p->ndomains);
    sb_puts(sb, ",\"confidence\":");
    sb_json_num(sb, st->score, 6);
    sb_printf(sb, ",\"level\":\"%s\",\"trusted\":%s",
              confidence_level_name(confidence_level_from_score(st->score)),
              learning_trusted(st, lp) ? "true" : "false");
    sb_printf(sb, ",\"executions\":%llu,\"successes\":%llu,\"success_rate\":",
              (unsigned long long)st->executions, (unsigned long long)st->successes);
    sb_json_num(sb, learning_success_rate(st), 6);
    sb_printf(sb, ",\"origin\":\"%s\"}", define_is_runtime(p->file) ? "run-time" : "file");
}

static void list_text(strbuf *sb, const pattern *p, const learning_state *st, int wname, int wtype)
{
    char rate[16];
    if (st->executions)
        snprintf(rate, sizeof rate, "%.1f%%", 100 * learning_success_rate(st));
    else
        snprintf(rate, sizeof rate, "-");
    sb_printf(sb, "%-*s  %-*s  %10.3f  %-6s  %10llu  %7s  %s\n", wname, p->name, wtype,
              p->type_name, st->score,
              confidence_level_name(confidence_level_from_score(st->score)),
              (unsigned long long)st->executions, rate,
              define_is_runtime(p->file) ? "run-time" : "file");
}

typedef struct ranked {
    pattern *p;
    double score;
} ranked;

/* Confidence descending, ties by name, as the seed's find_patterns_by_domain. */
static int by_confidence(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return strcmp(x->p->name, y->p->name);
}

/* Keeps the patterns that serve `domain`, most confident first.  The scores
 * are read once, so a pattern that learns meanwhile cannot upset qsort. */
static void list_rank(pattern_list *l, const char *domain)
{
    ranked *v = xmalloc((l->count ? l->count : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (!domain_filter(l->items[i], domain)) {
            pattern_unref(l->items[i]);
            continue;
        }
        v[n].p = l->items[i];
        v[n++].score = pattern_score(l->items[i]);
    }
    qsort(v, n, sizeof *v, by_confidence);
    for (size_t i = 0; i < n; i++) {
        l->items[i] = v[i].p;
        if (l->scores)
            l->scores[i] = v[i].score;
    }
    l->count = n;
    free(v);
}

/* The patterns as a table or JSON: all by name, or those that serve
 * `domain` (when not NULL) by confidence. */
static void list_render(strbuf *sb, registry *reg, const char *domain, int json)
{
    pattern_list l;
    registry_all(reg, &l);
    if (domain)
        list_rank(&l, domain);
    const learning_params *lp = registry_learning(reg);
    size_t wname = 4, wtype = 4;
    for (size_t i = 0; i < l.count; i++) {
        if (domain && !domain_filter(l.items[i], domain))
            continue;
        size_t n = strlen(l.items[i]->name), t = strlen(l.items[i]->type_name);
        wname = n > wname ? n : wname;
        wtype = t > wtype ? t : wtype;
    }
    if (json)
        sb_puts(sb, "{\"patterns\":[");
    else
        sb_printf(sb, "%-*s  %-*s  %10s  %-6s  %10s  %7s  %s\n", (int)wname, "NAME", (int)wtype,
                  "TYPE", "CONFIDENCE", "LEVEL", "EXECUTIONS", "SUCCESS", "ORIGIN");
    size_t shown = 0;
    for (size_t i = 0; i < l.count; i++) {
        pattern *p = l.items[i];
        if (domain && !domain_filter(p, domain))
            continue;
        learning_state st;
        pattern_stats(p, &st);
        if (json)
            list_json(sb, p, &st, lp, shown);
        else
            list_text(sb, p, &st, (int)wname, (int)wtype);
        learning_free(&st);
        shown++;
    }
    if (json)
        sb_puts(sb, "]}");
    else if (sb->len && sb->buf[sb->len - 1] == '\n')
        sb->len--, sb->buf[sb->len] = '\0';
    pattern_list_free(&l);
}

static int cmd_list(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"domain", 0, OPT_REQUIRED, 'd'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    const char *domain = NULL;
    int json = 0, o;
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'd': domain = p.arg; break;
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands) {
        cmd_error(c, "unexpected argument '%s'\n", p.operands[0]);
        return EXIT_USAGE;
    }
    int deferred, rc = load(c->rt, &deferred);
    if (rc)
        return rc;
    strbuf sb;
    sb_init(&sb);
    list_render(&sb, c->rt->reg, domain, json);
    emit(c->out, &sb, json);
    return deferred;
}

/* ---- ndf show ---- */

static const char show_usage[] = "Usage: ndf show PATTERN [--json]\n"
                                 "\n"
                                 "Shows a pattern's definition and its statistics.\n"
                                 "Exits with 3 when there is no such pattern.\n"
                                 "\n"
                                 "  --json      print JSON (see ndf(1))\n"
                                 "  -h, --help  show this help\n";

static void fmt_time(char *buf, size_t n, double t)
{
    if (t <= 0) {
        snprintf(buf, n, "never");
        return;
    }
    if (!(t < 1e12)) { /* a stored time past year 33000: no time_t overflow */
        snprintf(buf, n, "(invalid time)");
        return;
    }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void show_json(strbuf *sb, const pattern *p, const learning_state *st,
                      const learning_params *lp, double global, confidence_gate global_g)
{
    gate_view gv = gate_of(p, st, lp, global, global_g);
    sb_puts(sb, "{\"name\":");
    sb_json_str(sb, p->name);
    sb_puts(sb, ",\"type\":");
    sb_json_str(sb, p->type_name);
    sb_puts(sb, ",\"description\":");
    sb_json_str(sb, p->description);
    sb_puts(sb, ",\"file\":");
    if (p->file)
        sb_json_str(sb, p->file);
    else
        sb_puts(sb, "null");
    sb_printf(sb, ",\"line\":%d,\"domains\":", p->line);
    json_strs(sb, p->domains, p->ndomains);
    sb_puts(sb, ",\"agent_types\":");
    json_strs(sb, p->agent_types, p->nagent_types);
    sb_puts(sb, ",\"tags\":");
    json_strs(sb, p->tags, p->ntags);
    sb_puts(sb, ",\"attributes\":");
    value_to_json(p->attributes, sb);
    sb_puts(sb, ",\"confidence_threshold\":");
    sb_json_num(sb, pattern_threshold(p, global), 6);
    sb_printf(sb, ",\"threshold_source\":\"%s\"", p->threshold >= 0 ? "pattern" : "global");
    sb_printf(sb,
              ",\"confidence_gate\":\"%s\",\"gate_source\":\"%s\",\"below_threshold\":%s,"
              "\"refused_by_run\":%s,\"held_back_by_delegation\":%s,\"timeout\":",
              confidence_gate_name(gv.gate), p->gate >= 0 ? "pattern" : "global",
              gv.below ? "true" : "false",
              gv.below && gv.gate == GATE_ENFORCE ? "true" : "false",
              gv.held_back ? "true" : "false");
    if (p->timeout > 0)
        sb_json_num(sb, p->timeout, 6);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"params\":");
    if (p->params)
        value_to_json(p->params, sb);
    else
        sb_puts(sb, "{}");
    sb_printf(sb, ",\"statistics\":{\"executions\":%llu,\"successes\":%llu,\"success_rate\":",
              (unsigned long long)st->executions, (unsigned long long)st->successes);
    sb_json_num(sb, learning_success_rate(st), 6);
    sb_puts(sb, ",\"confidence\":");
    sb_json_num(sb, st->score, 6);
    sb_printf(sb, ",\"level\":\"%s\",\"trusted\":%s,\"algorithm\":\"%s\",\"alpha\":",
              confidence_level_name(confidence_level_from_score(st->score)),
              learning_trusted(st, lp) ? "true" : "false",
              confidence_algorithm_name(lp->algorithm));
    sb_json_num(sb, st->alpha, 6);
    sb_puts(sb, ",\"beta\":");
    sb_json_num(sb, st->beta, 6);
    sb_printf(sb, ",\"converged\":%s,\"last_used\":", st->converged ? "true" : "false");
    if (st->last_used > 0)
        sb_json_num(sb, st->last_used, 0);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"avg_duration\":");
    if (st->timed)
        sb_json_num(sb, st->duration_total / (double)st->timed, 6);
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"domains\":[");
    for (size_t i = 0; i < st->ndomains; i++) {
        sb_puts(sb, i ? ",{\"domain\":" : "{\"domain\":");
        sb_json_str(sb, st->domains[i].domain);
        sb_printf(sb, ",\"executions\":%llu,\"successes\":%llu}",
                  (unsigned long long)st->domains[i].executions,
                  (unsigned long long)st->domains[i].successes);
    }
    sb_puts(sb, "]}}");
}

static void show_text(strbuf *sb, const pattern *p, const learning_state *st,
                      const executor_opts *eo, const learning_params *lp, double global,
                      confidence_gate global_g)
{
    gate_view gv = gate_of(p, st, lp, global, global_g);
    char *d = joined(p->domains, p->ndomains, "(any)");
    char *at = joined(p->agent_types, p->nagent_types, "(any)");
    char *tags = joined(p->tags, p->ntags, "(none)");
    char when[64];
    fmt_time(when, sizeof when, st->last_used);
    sb_printf(sb, "name:         %s\n", p->name);
    sb_printf(sb, "type:         %s\n", p->type_name);
    if (*p->description)
        sb_printf(sb, "description:  %s\n", p->description);
    if (p->file)
        sb_printf(sb, "defined at:   %s:%d%s\n", p->file, p->line,
                  define_is_runtime(p->file) ? " (run-time definition: ndf definitions, ndf undefine)"
                                             : "");
    sb_printf(sb, "domains:      %s\n", d);
    sb_printf(sb, "agent types:  %s\n", at);
    sb_printf(sb, "tags:         %s\n", tags);
    sb_puts(sb, "attributes:   ");
    value_to_json(p->attributes, sb);
    sb_printf(sb, "\nthreshold:    %.3f (%s)\n", pattern_threshold(p, global),
              p->threshold >= 0 ? "pattern" : "global");
    sb_printf(sb, "gate:         %s (%s)", confidence_gate_name(gv.gate),
              p->gate >= 0 ? "pattern" : "global");
    if (gv.below)
        sb_printf(sb, ": the confidence %.3f is below the threshold, so 'ndf run' %s", st->score,
                  gv.gate == GATE_ENFORCE ? "refuses it (exit 4) unless --force"
                  : gv.gate == GATE_WARN  ? "runs it with a warning"
                                          : "runs it");
    sb_puts(sb, "\n");
    if (gv.held_back)
        sb_printf(sb, "delegation:   held back: even the upper end of its 90%% credible interval "
                      "is below the threshold %.3f; only exploration (thompson, ucb, "
                      "epsilon_greedy) chooses it, never greedy or fixed\n",
                  gv.threshold);
    if (eo) {
        /* what the executor will apply, by the same rule (see ndf plan) */
        timeout_source src;
        int capped;
        double t = executor_timeout(eo, p, 0, 1, &src, &capped);
        if (isfinite(t))
            sb_printf(sb, "timeout:      %g s (%s%s)\n", t, timeout_source_name(src, p),
                      capped ? ", capped by executor.max_timeout" : "");
        else
            sb_puts(sb, "timeout:      none\n");
    } else if (p->timeout > 0) {
        sb_printf(sb, "timeout:      %g s\n", p->timeout);
    }
    sb_printf(sb, "confidence:   %.3f %s", st->score,
              confidence_level_name(confidence_level_from_score(st->score)));
    if (!learning_trusted(st, lp))
        sb_printf(sb, " (not trusted yet: %llu of %d executions)",
                  (unsigned long long)st->executions, lp->min_samples);
    sb_printf(sb, "\nalgorithm:    %s", confidence_algorithm_name(lp->algorithm));
    if (lp->algorithm == ALGO_ADAPTIVE_BAYES)
        sb_printf(sb, " (posterior Beta(%g, %g)%s)", st->alpha, st->beta,
                  st->converged ? ", converged" : "");
    sb_printf(sb, "\nexecutions:   %llu", (unsigned long long)st->executions);
    if (st->executions)
        sb_printf(sb, " (%llu succeeded, %.1f%%)", (unsigned long long)st->successes,
                  100 * learning_success_rate(st));
    if (st->timed)
        sb_printf(sb, "\navg duration: %.3f s", st->duration_total / (double)st->timed);
    sb_printf(sb, "\nlast used:    %s\n", when);
    if (st->ndomains) {
        size_t w = 6;
        for (size_t i = 0; i < st->ndomains; i++)
            if (strlen(st->domains[i].domain) > w)
                w = strlen(st->domains[i].domain);
        sb_printf(sb, "\n%-*s  %10s  %7s\n", (int)w, "DOMAIN", "EXECUTIONS", "SUCCESS");
        for (size_t i = 0; i < st->ndomains; i++) {
            const domain_count *dc = &st->domains[i];
            sb_printf(sb, "%-*s  %10llu  %6.1f%%\n", (int)w, dc->domain,
                      (unsigned long long)dc->executions,
                      dc->executions ? 100.0 * (double)dc->successes / (double)dc->executions
                                     : 0.0);
        }
    }
    sb_puts(sb, "\nparams:       ");
    if (p->params)
        value_to_json(p->params, sb);
    else
        sb_puts(sb, "{}");
    free(d);
    free(at);
    free(tags);
}

/* The last stored execution of the pattern, step by step (the seed's
 * get_step_status / get_task_status_all / get_phase_progress after the
 * fact), appended to the text or JSON of `show`.  Nothing when there is no
 * stored history. */
static void show_last_execution(runtime *a, const char *name, strbuf *sb, int json)
{
    store *s = runtime_store(a);
    stored_pattern sp;
    if (!s || history_load(s, name, 1, &sp) != NDF_OK)
        return;
    if (sp.nhistory) {
        const history_entry *h = &sp.history[sp.nhistory - 1];
        if (json) {
            sb->len--; /* reopen the object: drop its closing brace */
            sb_printf(sb,
                      ",\"last_execution\":{\"time\":%.3f,\"duration\":%.6f,\"outcome\":", h->time,
                      h->duration_s);
            sb_json_str(sb, h->outcome);
            sb_puts(sb, ",\"domain\":");
            sb_json_str(sb, h->domain);
            sb_puts(sb, ",\"error\":");
            sb_json_str(sb, h->error);
            sb_puts(sb, ",\"steps\":[");
            for (size_t i = 0; i < h->nsteps; i++) {
                sb_puts(sb, i ? ",{\"name\":" : "{\"name\":");
                sb_json_str(sb, h->steps[i].name);
                sb_puts(sb, ",\"outcome\":");
                sb_json_str(sb, h->steps[i].outcome);
                sb_printf(sb, ",\"duration\":%.6f}", h->steps[i].duration_s);
            }
            sb_puts(sb, "]}}");
        } else {
            char when[40];
            fmt_time(when, sizeof when, h->time);
            sb_printf(sb, "\nlast execution: %s, %s in %.3fs%s%s\n", when,
                      h->outcome ? h->outcome : "?", h->duration_s, h->domain ? ", domain " : "",
                      h->domain ? h->domain : "");
            if (h->error)
                sb_printf(sb, "  error: %s\n", h->error);
            for (size_t i = 0; i < h->nsteps; i++)
                sb_printf(sb, "  %-12s %-32s %8.3fs\n", h->steps[i].outcome, h->steps[i].name,
                          h->steps[i].duration_s);
        }
    }
    stored_pattern_free(&sp);
}

static int cmd_show(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"json", 0, OPT_NONE, 'j'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    int json = 0, o;
    opt_parser op;
    opt_init(&op, argc, argv, opts, OPT_PERMUTE, c->err);
    while ((o = opt_next(&op)) != OPT_END) {
        switch (o) {
        case 'j': json = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    const char *name = cmd_pattern_arg(c, &op);
    if (!name)
        return EXIT_USAGE;
    runtime *a = c->rt;
    int deferred, rc = load(a, &deferred);
    if (rc)
        return rc;
    pattern *p;
    if (registry_get(a->reg, name, &p) != NDF_OK) {
        int st = plan_missing(a, name);
        cmd_error(c, "%s\n", err_msg());
        return exit_code_for(st);
    }
    /* The store is the system of record: a server's in-memory state does
     * not see what other processes ran since it loaded the pattern. */
    learning_state st;
    store *s = runtime_store(a);
    if (!s || store_learning(s, name, &st) != NDF_OK)
        pattern_stats(p, &st);
    strbuf sb;
    sb_init(&sb);
    if (json)
        show_json(&sb, p, &st, registry_learning(a->reg), global_threshold(a), global_gate(a));
    else {
        executor_opts eo = {0};
        if (a->cfg) {
            eo.default_timeout = a->cfg->set.default_timeout;
            eo.pattern_timeout = a->cfg->set.pattern_timeout;
            eo.max_timeout = a->cfg->set.max_timeout;
        }
        show_text(&sb, p, &st, a->cfg ? &eo : NULL, registry_learning(a->reg), global_threshold(a),
                  global_gate(a));
    }
    show_last_execution(a, name, &sb, json);
    emit(c->out, &sb, json);
    learning_free(&st);
    pattern_unref(p);
    return deferred;
}

/* ---- ndf similar ---- */

static const char similar_usage[] =
    "Usage: ndf similar [CONTEXT OPTIONS] [--threshold X] [--json]\n"
    "\n"
    "Lists the patterns whose similarity to the context is at least X\n"
    "(default 0.7), most similar first.  ndf(1) gives the formula.\n"
    "\n"
    "  --threshold X   0 to 1\n"
    "  --json          print JSON (see ndf(1))\n"
    "  -h, --help      show this help\n"
    "\n" CTXOPT_HELP;

static void similar_render(strbuf *sb, const pattern_list *l, const ndf_context *ctx,
                           double threshold, int json)
{
    if (json) {
        sb_puts(sb, "{\"context\":");
        context_to_json(ctx, sb);
        sb_puts(sb, ",\"threshold\":");
        sb_json_num(sb, threshold, 6);
        sb_puts(sb, ",\"results\":[");
        for (size_t i = 0; i < l->count; i++) {
            sb_puts(sb, i ? ",{\"name\":" : "{\"name\":");
            sb_json_str(sb, l->items[i]->name);
            sb_puts(sb, ",\"type\":");
            sb_json_str(sb, l->items[i]->type_name);
            sb_puts(sb, ",\"score\":");
            sb_json_num(sb, l->scores[i], 6);
            sb_puts(sb, ",\"matches\":");
            sb_puts(sb, pattern_matches(l->items[i], ctx) ? "true" : "false");
            sb_puts(sb, "}");
        }
        sb_puts(sb, "]}");
    } else if (l->count) {
        size_t w = 4, wt = 4;
        for (size_t i = 0; i < l->count; i++) {
            size_t n = strlen(l->items[i]->name), t = strlen(l->items[i]->type_name);
            w = n > w ? n : w;
            wt = t > wt ? t : wt;
        }
        sb_printf(sb, "%6s  %-*s  %-*s  %s\n", "SCORE", (int)w, "NAME", (int)wt, "TYPE", "MATCHES");
        for (size_t i = 0; i < l->count; i++)
            sb_printf(sb, "%6.4f  %-*s  %-*s  %s%s", l->scores[i], (int)w, l->items[i]->name,
                      (int)wt, l->items[i]->type_name,
                      pattern_matches(l->items[i], ctx) ? "yes" : "no",
                      i + 1 < l->count ? "\n" : "");
    } else {
        sb_printf(sb, "no pattern is at least %g similar", threshold);
    }
}

/* Parses similar's command line.  Returns EXIT_OK with *ctx set (to free)
 * to go on; otherwise *ctx is NULL and the return is the command's. */
static int similar_parse(cmd_ctx *c, int argc, char **argv, ndf_context **ctx, double *threshold,
                         int *json)
{
    static const opt_spec opts[] = {{"threshold", 0, OPT_REQUIRED, 't'},
                                    {"json", 0, OPT_NONE, 'j'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    CTXOPT_OPTIONS,
                                    {0}};
    ctxopt co;
    ctxopt_init(&co);
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, rc = EXIT_OK, done = 0;
    while (!done && (o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc)) {
            done = rc != EXIT_OK;
            continue;
        }
        done = 1;
        switch (o) {
        case 't': {
            char *end;
            *threshold = strtod(p.arg, &end);
            done = !*p.arg || *end || !(*threshold >= 0 && *threshold <= 1);
            if (done) {
                cmd_error(c, "--threshold '%s': must be a number from 0 to 1\n", p.arg);
                rc = EXIT_USAGE;
            }
            break;
        }
        case 'j': *json = 1, done = 0; break;
        case 'h': rc = cmd_help(c); break;
        default: rc = cmd_bad_usage(c); break;
        }
    }
    if (!done && p.noperands) {
        cmd_error(c, "unexpected argument '%s'\n", p.operands[0]);
        rc = EXIT_USAGE;
        done = 1;
    }
    if (!done)
        rc = cmd_context_finish(c, &co, ctx);
    ctxopt_free(&co);
    return rc;
}

static int cmd_similar(cmd_ctx *c, int argc, char **argv)
{
    ndf_context *ctx = NULL;
    double threshold = 0.7;
    int json = 0;
    int rc = similar_parse(c, argc, argv, &ctx, &threshold, &json);
    if (!ctx)
        return rc;
    int deferred;
    rc = load(c->rt, &deferred);
    if (rc) {
        context_free(ctx);
        return rc;
    }
    pattern_list l;
    registry_find_similar(c->rt->reg, ctx, threshold, &l);
    strbuf sb;
    sb_init(&sb);
    similar_render(&sb, &l, ctx, threshold, json);
    emit(c->out, &sb, json);
    pattern_list_free(&l);
    context_free(ctx);
    return deferred;
}

const cmd_entry cmd_list_entry = {
    .name = "list",
    .summary = "list patterns with their confidence",
    .usage = list_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_list,
};

const cmd_entry cmd_show_entry = {
    .name = "show",
    .summary = "show a pattern's definition and statistics",
    .usage = show_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_show,
};

const cmd_entry cmd_similar_entry = {
    .name = "similar",
    .summary = "find patterns similar to a context",
    .usage = similar_usage,
    .flags = CMD_SERVABLE | CMD_CONTEXT,
    .exec = cmd_similar,
};
