/* ndf graph: a pattern's structure (the chain of a sequence, the DAG of
 * parallel tasks, the phases of a meta pattern and the sub-patterns they
 * run) as Graphviz dot or a terminal tree; for an execution ID, the same
 * drawn from its record, coloured by the state each node ended in. */
#include "build-config.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/ctxopt.h"
#include "cli/opt.h"
#include "cli/plan.h"
#include "store/store.h"
#include "base/util.h"

/* One node of the drawing, from a plan or an execution record. */
typedef struct gnode {
    int id;
    char *kind; /* pattern, phase, step, task */
    char *name;
    char *detail; /* the pattern's type, the step's, a phase's coordination; or NULL */
    char *state;  /* the record's state, or NULL for a plan */
    char *message;
    int chain;   /* children run one after another, in order */
    char **deps; /* names of siblings it runs after */
    size_t ndeps;
    struct gnode **kids;
    size_t nkids;
} gnode;

static gnode *gnode_new(int *next, const char *kind, const char *name, const char *detail)
{
    gnode *g = xcalloc(1, sizeof *g);
    g->id = (*next)++;
    g->kind = xstrdup(kind ? kind : "?");
    g->name = xstrdup(name ? name : "?");
    g->detail = detail ? xstrdup(detail) : NULL;
    return g;
}

static void gnode_add(gnode *parent, gnode *kid)
{
    parent->kids = xrealloc(parent->kids, (parent->nkids + 1) * sizeof *parent->kids);
    parent->kids[parent->nkids++] = kid;
}

static void gnode_free(gnode *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nkids; i++)
        gnode_free(g->kids[i]);
    for (size_t i = 0; i < g->ndeps; i++)
        free(g->deps[i]);
    free(g->deps);
    free(g->kids);
    free(g->kind);
    free(g->name);
    free(g->detail);
    free(g->state);
    free(g->message);
    free(g);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- from a plan ---- */

static gnode *from_plan(const cJSON *n, int *next)
{
    const char *kind = jstr(n, "kind");
    const char *detail = jstr(n, "type");
    if (!detail)
        detail = jstr(n, "step");
    if (!detail)
        detail = jstr(n, "coordination");
    gnode *g = gnode_new(next, kind, jstr(n, "name"), detail);
    const char *order = jstr(n, "order");
    const char *coord = jstr(n, "coordination");
    g->chain = (order && strcmp(order, "chain") == 0) || (coord && strcmp(coord, "parallel") != 0);
    const cJSON *deps = cJSON_GetObjectItemCaseSensitive(n, "depends_on"), *v;
    cJSON_ArrayForEach(v, deps)
    {
        if (!cJSON_IsString(v))
            continue;
        g->deps = xrealloc(g->deps, (g->ndeps + 1) * sizeof *g->deps);
        g->deps[g->ndeps++] = xstrdup(v->valuestring);
    }
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(n, "children");
    cJSON_ArrayForEach(v, kids) gnode_add(g, from_plan(v, next));
    return g;
}

/* The plan node of kind `kind` named `name` anywhere under `n`, or NULL. */
static const cJSON *plan_find(const cJSON *n, const char *kind, const char *name)
{
    const char *k = jstr(n, "kind"), *nm = jstr(n, "name");
    if (k && nm && strcmp(k, kind) == 0 && strcmp(nm, name) == 0)
        return n;
    const cJSON *v, *kids = cJSON_GetObjectItemCaseSensitive(n, "children");
    cJSON_ArrayForEach(v, kids)
    {
        const cJSON *f = plan_find(v, kind, name);
        if (f)
            return f;
    }
    return NULL;
}

/* ---- from an execution record ---- */

static const char *kind_label(int kind)
{
    switch (kind) {
    case NDF_NODE_PATTERN: return "pattern";
    case NDF_NODE_PHASE: return "phase";
    case NDF_NODE_TASK: return "task";
    default: return "step";
    }
}

/* The node at `path` ("a/b/c") under root, or NULL. */
static gnode *by_path(gnode *root, const char *path)
{
    if (!*path)
        return root;
    gnode *g = root;
    const char *p = path;
    while (g && *p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        gnode *found = NULL;
        for (size_t i = 0; i < g->nkids && !found; i++)
            if (strlen(g->kids[i]->name) == len && strncmp(g->kids[i]->name, p, len) == 0)
                found = g->kids[i];
        g = found;
        p = slash ? slash + 1 : p + len;
    }
    return g;
}

/* Order and dependencies from the plan, where a node of the record has a
 * counterpart there (by kind and name). */
static void annotate(gnode *g, const cJSON *plan)
{
    const cJSON *pn =
        plan ? plan_find(plan, strcmp(g->kind, "task") == 0 ? "step" : g->kind, g->name) : NULL;
    if (pn) {
        const char *order = jstr(pn, "order");
        const char *coord = jstr(pn, "coordination");
        g->chain =
            (order && strcmp(order, "chain") == 0) || (coord && strcmp(coord, "parallel") != 0);
        if (!g->detail) {
            const char *d = jstr(pn, "type") ? jstr(pn, "type") : jstr(pn, "step");
            g->detail = d ? xstrdup(d) : coord ? xstrdup(coord) : NULL;
        }
        const cJSON *v, *deps = cJSON_GetObjectItemCaseSensitive(pn, "depends_on");
        cJSON_ArrayForEach(v, deps)
        {
            if (!cJSON_IsString(v))
                continue;
            g->deps = xrealloc(g->deps, (g->ndeps + 1) * sizeof *g->deps);
            g->deps[g->ndeps++] = xstrdup(v->valuestring);
        }
    }
    for (size_t i = 0; i < g->nkids; i++)
        annotate(g->kids[i], plan);
}

static gnode *from_record(const store_exec *e, const cJSON *plan, int *next)
{
    gnode *root = NULL;
    for (size_t i = 0; i < e->nnodes; i++) {
        const store_node *n = &e->nodes[i];
        gnode *g;
        if (!*n->path) {
            if (root)
                continue;
            g = root = gnode_new(next, "pattern", e->pattern, NULL);
        } else {
            const char *slash = strrchr(n->path, '/');
            char *parent = slash ? xstrndup(n->path, (size_t)(slash - n->path)) : xstrdup("");
            gnode *p = root ? by_path(root, parent) : NULL;
            free(parent);
            if (!p)
                continue; /* an orphan: its parent was not stored */
            g = gnode_new(next, kind_label(n->kind), slash ? slash + 1 : n->path, NULL);
            gnode_add(p, g);
        }
        g->state = xstrdup(state_name((ndf_state)n->state));
        if (n->message)
            g->message = xstrdup(n->message);
    }
    if (!root)
        root = gnode_new(next, "pattern", e->pattern, NULL);
    annotate(root, plan);
    return root;
}

/* ---- dot ---- */

static void dot_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static const char *state_colour(const char *st)
{
    static const struct {
        const char *state, *colour;
    } map[] = {{"COMPLETED", "#a5d6a7"}, {"FAILED", "#ef9a9a"},   {"TIMED_OUT", "#ffcc80"},
               {"CANCELLED", "#b0bec5"}, {"SKIPPED", "#e0e0e0"},  {"ROLLED_BACK", "#90caf9"},
               {"RUNNING", "#fff59d"},   {"DEGRADED", "#ffe082"}, {"PENDING", "#ffffff"}};
    for (size_t i = 0; st && i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i].state, st) == 0)
            return map[i].colour;
    return "#ffffff";
}

/* Names, details and messages come from the configuration and the store:
 * both outputs print them through term_safe (only the colours this file
 * writes itself stay escape sequences). */
static void put_safe(FILE *out, const char *fmt, const char *s)
{
    char *t = term_safe(s);
    fprintf(out, fmt, t);
    free(t);
}

static char *label_of(const gnode *g)
{
    strbuf sb;
    sb_init(&sb);
    char *name = term_safe(g->name);
    sb_printf(&sb, "%s %s", g->kind, name);
    free(name);
    if (g->detail) {
        char *d = term_safe(g->detail);
        sb_printf(&sb, " (%s)", d);
        free(d);
    }
    if (g->state)
        sb_printf(&sb, "\n%s", g->state);
    if (g->message && g->state && strcmp(g->state, "COMPLETED")) {
        char *m = term_safe(g->message);
        sb_printf(&sb, "\n%.80s", m);
        free(m);
    }
    return sb_steal(&sb);
}

/* The node edges attach to: a leaf itself, a container's anchor point. */
static void dot_node(FILE *out, const gnode *g, int depth)
{
    char *label = label_of(g);
    if (g->nkids) {
        fprintf(out, "%*ssubgraph cluster_%d {\n%*slabel=", depth * 2, "", g->id, depth * 2 + 2,
                "");
        dot_str(out, label);
        fprintf(out, ";\n%*sstyle=\"rounded,filled\"; fillcolor=\"%s\";\n", depth * 2 + 2, "",
                g->state ? state_colour(g->state) : "#f5f5f5");
        fprintf(out, "%*sn%d [shape=point, style=invis, width=0, label=\"\"];\n", depth * 2 + 2, "",
                g->id);
        for (size_t i = 0; i < g->nkids; i++)
            dot_node(out, g->kids[i], depth + 1);
        fprintf(out, "%*s}\n", depth * 2, "");
    } else {
        fprintf(out, "%*sn%d [label=", depth * 2, "", g->id);
        dot_str(out, label);
        fprintf(out, ", fillcolor=\"%s\"];\n", g->state ? state_colour(g->state) : "#ffffff");
    }
    free(label);
}

static void dot_edge(FILE *out, const gnode *a, const gnode *b)
{
    fprintf(out, "  n%d -> n%d", a->id, b->id);
    const char *sep = " [";
    if (a->nkids) {
        fprintf(out, "%sltail=cluster_%d", sep, a->id);
        sep = ", ";
    }
    if (b->nkids) {
        fprintf(out, "%slhead=cluster_%d", sep, b->id);
        sep = ", ";
    }
    fputs(*sep == ',' ? "];\n" : ";\n", out);
}

static void dot_edges(FILE *out, const gnode *g)
{
    for (size_t i = 0; i < g->nkids; i++) {
        const gnode *k = g->kids[i];
        if (g->chain && i > 0)
            dot_edge(out, g->kids[i - 1], k);
        for (size_t d = 0; d < k->ndeps; d++)
            for (size_t j = 0; j < g->nkids; j++)
                if (strcmp(g->kids[j]->name, k->deps[d]) == 0)
                    dot_edge(out, g->kids[j], k);
        dot_edges(out, k);
    }
}

static void print_dot(FILE *out, const gnode *root)
{
    fputs("digraph ndf {\n"
          "  graph [rankdir=LR, compound=true, fontname=\"sans-serif\", fontsize=10];\n"
          "  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\", fontsize=10];\n"
          "  edge [arrowsize=0.7];\n",
          out);
    dot_node(out, root, 1);
    dot_edges(out, root);
    fputs("}\n", out);
}

/* ---- text ---- */

typedef struct tstyle {
    int utf8, colour;
} tstyle;

static const char *ansi_for(const char *st)
{
    if (!st)
        return NULL;
    if (strcmp(st, "COMPLETED") == 0)
        return "32";
    if (strcmp(st, "FAILED") == 0 || strcmp(st, "TIMED_OUT") == 0)
        return "31";
    if (strcmp(st, "SKIPPED") == 0 || strcmp(st, "CANCELLED") == 0)
        return "2";
    if (strcmp(st, "ROLLED_BACK") == 0 || strcmp(st, "DEGRADED") == 0 || strcmp(st, "RUNNING") == 0)
        return "33";
    return NULL;
}

static void text_node(FILE *out, const gnode *g, const tstyle *ts, strbuf *prefix, int last,
                      int top, int step_no, const gnode *parent)
{
    size_t plen = prefix->len;
    if (!top) {
        fputs(prefix->buf ? prefix->buf : "", out);
        fputs(ts->utf8 ? (last ? "\u2514\u2500 " : "\u251c\u2500 ") : (last ? "`- " : "|- "), out);
        sb_puts(prefix, ts->utf8 ? (last ? "   " : "\u2502  ") : (last ? "   " : "|  "));
    }
    if (step_no)
        fprintf(out, "%d. ", step_no);
    fprintf(out, "%s ", g->kind);
    put_safe(out, "%s", g->name);
    if (g->detail)
        put_safe(out, " (%s)", g->detail);
    if (g->ndeps) {
        fputs(" after ", out);
        for (size_t i = 0; i < g->ndeps; i++)
            put_safe(out, i ? ", %s" : "%s", g->deps[i]);
    }
    if (g->state) {
        const char *c = ts->colour ? ansi_for(g->state) : NULL;
        if (c)
            fprintf(out, "  \033[%sm%s\033[0m", c, g->state);
        else
            fprintf(out, "  %s", g->state);
        if (g->message && strcmp(g->state, "COMPLETED"))
            put_safe(out, "  (%s)", g->message);
    } else if (!g->nkids && parent && !parent->chain && !g->ndeps && parent->nkids > 1) {
        fputs("  (concurrent)", out);
    }
    fputc('\n', out);
    for (size_t i = 0; i < g->nkids; i++)
        text_node(out, g->kids[i], ts, prefix, i + 1 == g->nkids, 0,
                  g->chain && g->nkids > 1 ? (int)i + 1 : 0, g);
    prefix->len = plen;
    if (prefix->buf)
        prefix->buf[plen] = '\0';
}

/* Colour and line drawing only on a terminal that can show them, and never
 * when NO_COLOR is set (https://no-color.org) or TERM is dumb. */
static tstyle text_style(FILE *out)
{
    tstyle ts = {0, 0};
    const char *term = getenv("TERM");
    int dumb = !term || !*term || strcmp(term, "dumb") == 0;
    const char *nc = getenv("NO_COLOR");
    int fd = fileno(out);
    int tty = fd >= 0 && isatty(fd);
    ts.colour = tty && !dumb && !(nc && *nc);
    /* the program never calls setlocale(): read the locale's charset from
     * the environment as setlocale would */
    const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            ts.utf8 = !dumb && (strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8") ||
                                strstr(v, "utf-8"));
            break;
        }
    }
    return ts;
}

static void print_text(FILE *out, const gnode *root)
{
    tstyle ts = text_style(out);
    strbuf prefix;
    sb_init(&prefix);
    sb_puts(&prefix, "");
    text_node(out, root, &ts, &prefix, 1, 1, 0, NULL);
    sb_free(&prefix);
}

/* ---- the command ---- */

static const char graph_usage[] =
    "Usage: ndf graph PATTERN|ID [--format dot|text] [context options]\n"
    "\n"
    "Draws a pattern: the chain of its steps, the DAG of its tasks, its phases\n"
    "and the sub-patterns they run.  Given an execution ID instead, draws what\n"
    "that execution ran, each node coloured by the state it ended in.\n"
    "\n"
    "Options:\n"
    "  --format dot   Graphviz dot on stdout (render: ndf graph P | dot -Tsvg)\n"
    "  --format text  an indented tree (the default)\n"
    "  -h, --help     show this help\n"
    "\n" CTXOPT_HELP;

static int cmd_graph(cmd_ctx *c, int argc, char **argv)
{
    enum { OPT_FORMAT = 1 };
    static const opt_spec opts[] = {CTXOPT_OPTIONS,
                                    {"format", 'f', OPT_REQUIRED, OPT_FORMAT},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    ctxopt co;
    ctxopt_init(&co);
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, rc = EXIT_OK, done = 0, dot = 0;
    while (!done && (o = opt_next(&p)) != OPT_END) {
        if (cmd_context_option(c, &co, o, p.arg, &rc)) {
            done = rc != EXIT_OK;
            continue;
        }
        switch (o) {
        case OPT_FORMAT:
            if (strcmp(p.arg, "dot") == 0) {
                dot = 1;
            } else if (strcmp(p.arg, "text") == 0) {
                dot = 0;
            } else {
                cmd_error(c, "--format %s: expected dot or text\n", p.arg);
                rc = EXIT_USAGE, done = 1;
            }
            break;
        case 'h': rc = cmd_help(c), done = 1; break;
        default: rc = cmd_bad_usage(c), done = 1; break;
        }
    }
    const char *name = NULL;
    if (!done && !(name = cmd_pattern_arg(c, &p)))
        rc = EXIT_USAGE, done = 1;
    ndf_context *ctx = NULL;
    if (!done && (rc = cmd_context_finish(c, &co, &ctx)) != EXIT_OK)
        done = 1;
    ctxopt_free(&co);
    if (done) {
        context_free(ctx);
        return rc;
    }

    int next = 0, deferred = exit_code_for(runtime_load(c->rt, RT_PATTERNS));
    gnode *root = NULL;
    cJSON *plan = NULL;
    /* A pattern by that name first; else an execution ID. */
    int pst = plan_build(c->rt, name, ctx, 0, &plan);
    if (!plan && pst == NDF_ERR_VALIDATION) {
        cmd_error(c, "%s\n", err_msg());
        context_free(ctx);
        return EXIT_USAGE;
    }
    if (plan) {
        root = from_plan(plan, &next);
    } else {
        store *s = runtime_store(c->rt);
        store_exec e;
        if (!s) {
            cmd_error(c,
                      "no pattern named '%s', and no store to look for an "
                      "execution: %s\n",
                      name, err_msg());
            context_free(ctx);
            return EXIT_NOT_FOUND;
        }
        int st = store_get(s, name, &e);
        if (st) {
            cmd_error(c, "no pattern named '%s' and no execution with id '%s'%s%s\n", name, name,
                      st == NDF_ERR_NOT_FOUND ? "" : ": ",
                      st == NDF_ERR_NOT_FOUND ? "" : err_msg());
            context_free(ctx);
            return st == NDF_ERR_NOT_FOUND ? EXIT_NOT_FOUND : exit_code_for(st);
        }
        /* the structure (order, dependencies) comes from the pattern's
         * plan when it is still defined */
        plan_build(c->rt, e.pattern, ctx, 0, &plan);
        root = from_record(&e, plan, &next);
        store_exec_free(&e);
    }
    if (dot)
        print_dot(c->out, root);
    else
        print_text(c->out, root);
    gnode_free(root);
    cJSON_Delete(plan);
    context_free(ctx);
    return deferred;
}

const cmd_entry cmd_graph_entry = {
    .name = "graph",
    .summary = "draw a pattern, or an execution by state, as a tree or Graphviz dot",
    .usage = graph_usage,
    .flags = CMD_CONTEXT | CMD_LOADER,
    .exec = cmd_graph,
};
