/* ndf define, undefine, edit, setting and definitions: patterns and
 * global settings changed at run time (the reference's register_pattern,
 * add_step, set_step_timeout, add_task_dependency, add_phase,
 * set_confidence_threshold, the PatternConfig setters...), kept in the
 * store (app/define).  One-shot, the change is checked by building the
 * patterns with it and then stored; through `ndf ctl` the server makes it
 * as a reload: a new generation serves once the change is stored, and
 * running executions keep the definition they started with. */
#include "build-config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opt.h"
#include "app/define.h"
#include "serve/generation.h"
#include "store/defs.h"
#include "base/util.h"

static const char define_usage[] =
    "Usage: ndf define [--replace] FILE|-\n"
    "       ndf define [--replace] --text DEFINITION\n"
    "\n"
    "Registers a pattern at run time (register_pattern): FILE (or standard\n"
    "input, or --text) holds one definition in the syntax of a patterns_dir\n"
    "file ('patterns = ( { ... } );' or the group '{ ... }' alone) or its JSON\n"
    "form (an object with the same members).  It is checked as a configuration\n"
    "file is (messages say request:LINE), the patterns are built with it, and\n"
    "it is kept in the store: every later command, and a server after a\n"
    "restart, sees it.  A pattern of that name that exists (in a file or at\n"
    "run time) is an error (exit 12) unless --replace: the run-time definition\n"
    "then shadows the file's until 'ndf undefine'.  Through 'ndf ctl define'\n"
    "the client reads FILE and the server serves the change at once.\n"
    "\n"
    "  --replace        replace (or shadow) a pattern of the same name\n"
    "  --text TEXT      the definition itself instead of a file\n"
    "  -h, --help       show this help\n";

static const char undefine_usage[] =
    "Usage: ndf undefine PATTERN\n"
    "\n"
    "Drops the run-time definition of PATTERN: a pattern defined only at run\n"
    "time is gone; one that shadowed a configuration file's definition is\n"
    "served from the file again.  Learning state and history stay.\n";

static const char edit_usage[] =
    "Usage: ndf edit PATTERN set PATH VALUE\n"
    "       ndf edit PATTERN unset PATH\n"
    "       ndf edit PATTERN insert PATH VALUE [--at N]\n"
    "\n"
    "Changes one member of PATTERN's definition at run time: its run-time\n"
    "definition, or a copy of its file's definition that then shadows it\n"
    "(see ndf define).  PATH names members joined by '.', a list element by\n"
    "[INDEX] or [NAME] (the element whose 'name' is NAME); VALUE is written\n"
    "in the configuration's syntax (30, \"text\", true, { ... }, ( ... )).\n"
    "The definition is checked and built as a file's would be.  Examples:\n"
    "  ndf edit deploy set confidence_threshold 0.8   (set_confidence_threshold)\n"
    "  ndf edit deploy set params.steps[build].timeout 30       (set_step_timeout)\n"
    "  ndf edit deploy insert params.steps '{ name = \"lint\"; step = \"exec\";\n"
    "      params = { command = \"true\"; }; }' --at 0                   (add_step)\n"
    "  ndf edit deploy unset params.steps[lint]                      (remove_step)\n"
    "  ndf edit ms insert params.tasks[notify].depends_on '\"db\"' (add_task_dependency)\n"
    "  ndf edit ms set params.tasks[db].cpu 0.5      (set_task_resource_requirement)\n"
    "  ndf edit mig insert params.phases '{ name = \"verify\"; ... }'      (add_phase)\n"
    "  ndf edit mig set params.phases[verify].success_criteria\n"
    "      '{ min_success_rate = 0.9; }'                (set_phase_success_criteria)\n"
    "\n"
    "  --at N           insert: position in the list (default: the end)\n"
    "  -h, --help       show this help\n";

static const char setting_usage[] =
    "Usage: ndf setting KEY VALUE\n"
    "       ndf setting --unset KEY\n"
    "\n"
    "Sets a global setting at run time (the PatternConfig setters), kept in the\n"
    "store over the configuration file's value: the keys of the confidence,\n"
    "executor and delegation sections, e.g.\n"
    "  ndf setting confidence.threshold 0.8      (set_global_confidence_threshold)\n"
    "  ndf setting confidence.learning_rate 0.2  (set_learning_rate)\n"
    "  ndf setting executor.pattern_timeout 60   (set_pattern_timeout)\n"
    "  ndf setting confidence.algorithm '\"weighted_average\"'\n"
    "                                           (configure_confidence_calculation)\n"
    "VALUE is written in the configuration's syntax (strings in quotes).\n"
    "--unset drops the run-time value: the file's (or the default) applies.\n";

static const char definitions_usage[] =
    "Usage: ndf definitions [--json | --export]\n"
    "\n"
    "Lists the run-time definitions kept in the store: patterns (from ndf\n"
    "define and ndf edit) and settings (from ndf setting), with when and by\n"
    "which uid each was made.  --export writes them as a configuration file\n"
    "(settings sections, then the patterns) that can replace them.\n";

/* What a change needs on either side. */
typedef struct change_ctx {
    cmd_ctx *c;
    define_request rq;
    store *st;
    define_change chg;
    int prepared;
} change_ctx;

static void print_lines(cmd_ctx *c, const char *text, int warning)
{
    char *dup = xstrdup(text ? text : "");
    for (char *line = dup, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (warning)
            cmd_warn(c, "%s\n", strncmp(line, "warning: ", 9) == 0 ? line + 9 : line);
        else
            cmd_error(c, "%s\n", line);
    }
    free(dup);
}

/* Computes the change on `cfg` (the files' definitions) and lays every
 * row over it.  Under the server's reload lock when served. */
static int prepare(void *opaque, config *cfg, strbuf *why)
{
    change_ctx *x = opaque;
    store_def *rows;
    size_t n;
    int rc = store_defs(x->st, &rows, &n);
    if (rc) {
        sb_puts(why, err_msg());
        return rc;
    }
    rc = define_prepare(cfg, rows, n, &x->rq, &x->chg, why);
    if (rc == NDF_OK) {
        x->prepared = 1;
        /* the server's generation serves on: it must carry the origin a
         * registry built from the stored row has */
        x->chg.as_stored = x->c->served;
        if (define_overlay(cfg, rows, n, &x->chg, why))
            rc = NDF_ERR_VALIDATION;
    }
    store_defs_free(rows, n);
    return rc;
}

static int commit(void *opaque, strbuf *why)
{
    change_ctx *x = opaque;
    int rc = define_commit(x->st, &x->chg);
    if (rc)
        sb_printf(why, "%s%s (nothing changed)", why->len ? "\n" : "", err_msg());
    return rc;
}

/* Makes the change: on the server (a new generation), or one-shot. */
static int apply(change_ctx *x)
{
    cmd_ctx *c = x->c;
    x->rq.uid = c->served ? c->uid : (long)getuid();
    int rc;
    char *why = NULL;
    unsigned long generation = 0;
    if (c->served) {
        x->st = c->rt->st;
        if (!x->st) {
            cmd_error(c, "the server has no store: run-time definitions are kept there\n");
            return EXIT_IO;
        }
        rc = genset_apply(c->gs, prepare, commit, x, &generation, &why);
    } else {
        rc = runtime_load(c->rt, RT_CONFIG);
        if (rc)
            return exit_code_for(rc);
        x->st = runtime_store(c->rt);
        if (!x->st) {
            cmd_error(c, "run-time definitions are kept in the store, which cannot be "
                         "opened: %s\n",
                      err_msg());
            return EXIT_IO;
        }
        strbuf w;
        sb_init(&w);
        rc = prepare(x, c->rt->cfg, &w);
        if (rc == NDF_OK) {
            /* the one path from definitions to patterns; its errors are
             * reported as they are found */
            runtime_load(c->rt, RT_PATTERNS);
            if (c->rt->pattern_errors) {
                rc = NDF_ERR_VALIDATION;
                sb_printf(&w, "%zu pattern definition(s) do not build with this change",
                          c->rt->pattern_errors);
            } else {
                rc = commit(x, &w);
            }
        }
        why = w.len ? sb_steal(&w) : NULL;
        sb_free(&w);
    }
    if (rc) {
        print_lines(c, why ? why : err_msg(), 0);
        if (!strstr(why ? why : "", "nothing changed"))
            cmd_error(c, "nothing changed\n");
        free(why);
        define_change_free(&x->chg);
        return exit_code_for(rc);
    }
    free(why);
    if (x->chg.warnings)
        print_lines(c, x->chg.warnings, 1);
    if (c->served)
        fprintf(c->out, "%s (generation %lu serves)\n", x->chg.summary, generation);
    else
        fprintf(c->out, "%s\n", x->chg.summary);
    define_change_free(&x->chg);
    return EXIT_OK;
}

/* Reads all of `f` (at most 16 MiB, as a configuration file). */
static char *slurp(FILE *f, size_t *len)
{
    strbuf sb;
    sb_init(&sb);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (sb.len + n > ((size_t)16 << 20)) {
            sb_free(&sb);
            errno = EFBIG;
            return NULL;
        }
        sb_add(&sb, buf, n);
    }
    if (ferror(f)) {
        sb_free(&sb);
        return NULL;
    }
    *len = sb.len;
    char *s = sb_steal(&sb);
    return s ? s : xstrdup("");
}

static int cmd_define(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"replace", 0, OPT_NONE, 'r'},
                                    {"text", 0, OPT_REQUIRED, 't'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    change_ctx x = {.c = c, .rq = {.verb = DEFINE_PATTERN}};
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o;
    const char *text = NULL;
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'r': x.rq.replace = 1; break;
        case 't': text = p.arg; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if ((text && p.noperands) || (!text && p.noperands != 1)) {
        cmd_error(c, "%s\n", text || p.noperands > 1 ? "one definition: a FILE, - or --text"
                                                      : "which definition? name a FILE, - "
                                                        "(standard input) or --text");
        return EXIT_USAGE;
    }
    char *owned = NULL;
    size_t len = text ? strlen(text) : 0;
    if (!text) {
        if (cmd_refuse_served(c, "ndf ctl define reads FILE and sends its text"))
            return CMD_REFUSED;
        const char *path = p.operands[0];
        FILE *f = strcmp(path, "-") == 0 ? c->in : fopen(path, "r");
        if (!f || !(owned = slurp(f, &len))) {
            cmd_error(c, "cannot read %s: %s\n", strcmp(path, "-") ? path : "standard input",
                      strerror(errno));
            if (f && f != c->in)
                fclose(f);
            return EXIT_USAGE;
        }
        if (f != c->in)
            fclose(f);
        text = owned;
    }
    x.rq.text = text;
    x.rq.len = len;
    int rc = apply(&x);
    free(owned);
    return rc;
}

static int one_operand_cmd(cmd_ctx *c, int argc, char **argv, int *unset, int nwant,
                           opt_parser *p)
{
    static const opt_spec opts[] = {
        {"unset", 0, OPT_NONE, 'u'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    opt_init(p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o;
    while ((o = opt_next(p)) != OPT_END) {
        switch (o) {
        case 'u':
            if (!unset)
                return cmd_bad_usage(c);
            *unset = 1;
            break;
        case 'h': return cmd_help(c) == EXIT_OK ? -1 : EXIT_USAGE;
        default: return cmd_bad_usage(c);
        }
    }
    if (unset && *unset)
        nwant = 1;
    if ((int)p->noperands != nwant) {
        cmd_error(c, "expected %d argument%s (see --help)\n", nwant, nwant == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int cmd_undefine(cmd_ctx *c, int argc, char **argv)
{
    opt_parser p;
    int rc = one_operand_cmd(c, argc, argv, NULL, 1, &p);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    change_ctx x = {.c = c, .rq = {.verb = DEFINE_UNDEFINE, .name = p.operands[0]}};
    return apply(&x);
}

static int cmd_setting(cmd_ctx *c, int argc, char **argv)
{
    opt_parser p;
    int unset = 0;
    int rc = one_operand_cmd(c, argc, argv, &unset, 2, &p);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    change_ctx x = {.c = c,
                    .rq = {.verb = unset ? DEFINE_UNSETTING : DEFINE_SETTING,
                           .name = p.operands[0],
                           .literal = unset ? NULL : p.operands[1]}};
    return apply(&x);
}

static int cmd_edit(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {
        {"at", 0, OPT_REQUIRED, 'a'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o;
    long at = -1;
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'a': {
            char *end;
            errno = 0;
            at = strtol(p.arg, &end, 10);
            if (errno || end == p.arg || *end || at < 0 || at > 1000000) {
                cmd_error(c, "--at %s: expected a position from 0\n", p.arg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands < 3) {
        cmd_error(c, "expected PATTERN set|unset|insert PATH [VALUE] (see --help)\n");
        return EXIT_USAGE;
    }
    const char *op = p.operands[1];
    int want = strcmp(op, "unset") == 0 ? 3 : 4;
    if (strcmp(op, "set") && strcmp(op, "unset") && strcmp(op, "insert")) {
        cmd_error(c, "'%s': expected set, unset or insert\n", op);
        return EXIT_USAGE;
    }
    if ((int)p.noperands != want) {
        cmd_error(c, "%s takes %s\n", op, want == 3 ? "a PATH" : "a PATH and a VALUE");
        return EXIT_USAGE;
    }
    if (at >= 0 && strcmp(op, "insert") != 0) {
        cmd_error(c, "--at goes with insert\n");
        return EXIT_USAGE;
    }
    change_ctx x = {.c = c,
                    .rq = {.verb = DEFINE_EDIT,
                           .name = p.operands[0],
                           .op = op,
                           .path = p.operands[2],
                           .literal = want == 4 ? p.operands[3] : NULL,
                           .at = at}};
    return apply(&x);
}

static int cmd_definitions(cmd_ctx *c, int argc, char **argv)
{
    static const opt_spec opts[] = {{"json", 0, OPT_NONE, 'j'},
                                    {"export", 0, OPT_NONE, 'c'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_PERMUTE, c->err);
    int o, json = 0, conf = 0;
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'j': json = 1; break;
        case 'c': conf = 1; break;
        case 'h': return cmd_help(c);
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands || (json && conf)) {
        cmd_error(c, "%s\n", p.noperands ? "takes no arguments" : "--json or --export, not both");
        return EXIT_USAGE;
    }
    int rc;
    store *st = cmd_open_store(c, RT_CONFIG, &rc);
    if (!st)
        return rc;
    store_def *rows;
    size_t n;
    if (store_defs(st, &rows, &n) != NDF_OK) {
        cmd_error(c, "%s\n", err_msg());
        return EXIT_IO;
    }
    strbuf sb;
    sb_init(&sb);
    if (json)
        sb_puts(&sb, "[");
    if (conf)
        sb_puts(&sb, "# ndf definitions --export: the run-time definitions as a file\n");
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const store_def *d = &rows[i];
            if ((strcmp(d->kind, STORE_DEF_SETTING) == 0) != (pass == 0))
                continue;
            const char *origin = define_origin(d);
            if (json) {
                sb_puts(&sb, sb.len > 1 ? "," : "");
                sb_puts(&sb, "{\"kind\":");
                sb_json_str(&sb, d->kind);
                sb_puts(&sb, ",\"name\":");
                sb_json_str(&sb, d->name);
                sb_puts(&sb, ",\"time\":");
                sb_json_num(&sb, d->time, 0);
                sb_printf(&sb, ",\"uid\":%ld,\"origin\":", d->uid);
                sb_json_str(&sb, origin);
                sb_puts(&sb, ",\"text\":");
                sb_json_str(&sb, d->text);
                sb_puts(&sb, "}");
            } else if (conf) {
                sb_printf(&sb, "# %s\n", origin);
                if (pass == 0) {
                    const char *dot = strchr(d->name, '.');
                    sb_printf(&sb, "%.*s = { %s = %s; };\n", (int)(dot ? dot - d->name : 0),
                              d->name, dot ? dot + 1 : d->name, d->text);
                } else {
                    sb_puts(&sb, d->text);
                }
            } else {
                char *safe = term_safe(d->name);
                sb_printf(&sb, "%-8s %-40s %s\n", d->kind, safe, origin);
                free(safe);
            }
        }
    }
    if (json)
        sb_puts(&sb, "]\n");
    if (!json && !conf && !n)
        sb_puts(&sb, "no run-time definitions\n");
    fwrite(sb.buf ? sb.buf : "", 1, sb.len, c->out);
    sb_free(&sb);
    store_defs_free(rows, n);
    return EXIT_OK;
}

const cmd_entry cmd_define_entry = {
    .name = "define",
    .summary = "register or replace a pattern at run time (register_pattern)",
    .usage = define_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_define,
};

const cmd_entry cmd_undefine_entry = {
    .name = "undefine",
    .summary = "drop a pattern's run-time definition",
    .usage = undefine_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_undefine,
};

const cmd_entry cmd_edit_entry = {
    .name = "edit",
    .summary = "change one member of a pattern at run time (add_step, set_step_timeout, ...)",
    .usage = edit_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_edit,
};

const cmd_entry cmd_setting_entry = {
    .name = "setting",
    .summary = "set a global setting at run time (the PatternConfig setters)",
    .usage = setting_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_setting,
};

const cmd_entry cmd_definitions_entry = {
    .name = "definitions",
    .summary = "list the run-time definitions (or write them as a configuration file)",
    .usage = definitions_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_definitions,
};
