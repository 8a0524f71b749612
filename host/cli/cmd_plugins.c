/* `ndf plugins` (what the configured directories hold, loaded or refused)
 * and `ndf inspect FILE` (one plugin file: descriptor, ABI verdict and the
 * full parameter schema of everything it provides), as text or JSON. */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/runtime.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "plugin/loader.h"
#include "exec/services.h"
#include "base/util.h"

static const char plugins_usage[] =
    "Usage: ndf plugins [--json]\n"
    "\n"
    "Loads the plugins of the configured directories (NDF_PLUGIN_PATH replaces\n"
    "them) and lists every file tried: the loaded ones with their name,\n"
    "version, ABI, file, SHA-256 and the pattern types and steps they provide;\n"
    "the refused ones with the reason.\n"
    "\n"
    "Options:\n"
    "  --json      print one JSON object (see ndf(1))\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0, even when some files were refused (their count is printed\n"
    "on standard error); 2 on a bad command line or configuration.\n";

static const char inspect_usage[] =
    "Usage: ndf inspect [--json] FILE\n"
    "\n"
    "Checks one plugin file exactly as the loader would (ownership and mode,\n"
    "ELF, descriptor, ABI version, init) and prints its descriptor, the ABI\n"
    "verdict, and every pattern type and step it provides with its parameter\n"
    "schema.  Runs the plugin's init and fini; needs no configuration.\n"
    "\n"
    "Options:\n"
    "  --json      print one JSON object (see ndf(1))\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 valid plugin; 7 not a valid plugin (the reason is printed\n"
    "on standard error); 3 no such file; 8 system error; 2 bad command line.\n";

/* Parses --json and --help, up to the first operand.  Returns -1 to go on,
 * else the exit code; the operands are left in *p. */
static int parse_opts(cmd_ctx *c, opt_parser *p, int argc, char **argv, int *json)
{
    static const opt_spec opts[] = {{"json", 0, OPT_NONE, 'j'}, {"help", 'h', OPT_NONE, 'h'}, {0}};
    opt_init(p, argc, argv, opts, OPT_STOP, NULL);
    int o;
    while ((o = opt_next(p)) != OPT_END) {
        switch (o) {
        case 'j': *json = 1; break;
        case 'h': return cmd_help(c);
        default:
            fprintf(c->err, "ndf %s: unknown option '%s' (see 'ndf %s --help')\n", argv[0], p->bad,
                    argv[0]);
            return EXIT_USAGE;
        }
    }
    return -1;
}

/* ---- JSON ---- */

/* Stable names (documented in ndf(1)); independent of any message text. */
static const char *type_name(ndf_value_type t)
{
    switch (t) {
    case NDF_VALUE_STRING: return "string";
    case NDF_VALUE_INT: return "int";
    case NDF_VALUE_NUMBER: return "number";
    case NDF_VALUE_BOOL: return "bool";
    case NDF_VALUE_LIST: return "list";
    case NDF_VALUE_GROUP: return "group";
    case NDF_VALUE_ANY: return "any";
    default: return "none";
    }
}

static int has_children(const ndf_param_spec *s)
{
    return s->children && (s->type == NDF_VALUE_GROUP ||
                           (s->type == NDF_VALUE_LIST && s->elem_type == NDF_VALUE_GROUP));
}

static void json_params(strbuf *sb, const ndf_param_spec *spec)
{
    sb_puts(sb, "[");
    for (size_t i = 0; spec && spec[i].name; i++) {
        const ndf_param_spec *s = &spec[i];
        if (i)
            sb_puts(sb, ",");
        sb_puts(sb, "{\"name\":");
        sb_json_str(sb, s->name);
        sb_printf(sb, ",\"type\":\"%s\",\"required\":%s,\"default\":", type_name(s->type),
                  (s->flags & NDF_PARAM_REQUIRED) ? "true" : "false");
        sb_json_str(sb, (s->flags & NDF_PARAM_REQUIRED) ? NULL : s->def);
        sb_puts(sb, ",\"range\":");
        if (s->flags & NDF_PARAM_RANGE) {
            sb_puts(sb, "{\"min\":");
            sb_json_num(sb, s->min, 0);
            sb_puts(sb, ",\"max\":");
            sb_json_num(sb, s->max, 0);
            sb_puts(sb, "}");
        } else {
            sb_puts(sb, "null");
        }
        sb_puts(sb, ",\"element_type\":");
        if (s->type == NDF_VALUE_LIST)
            sb_printf(sb, "\"%s\"", type_name(s->elem_type ? s->elem_type : NDF_VALUE_ANY));
        else
            sb_puts(sb, "null");
        sb_printf(sb, ",\"open\":%s,\"doc\":", (s->flags & NDF_PARAM_OPEN) ? "true" : "false");
        sb_json_str(sb, s->doc);
        sb_puts(sb, ",\"children\":");
        if (has_children(s))
            json_params(sb, s->children);
        else
            sb_puts(sb, "[]");
        sb_puts(sb, "}");
    }
    sb_puts(sb, "]");
}

/* Appends `"pattern_types":[...],"steps":[...]`; with `full`, each entry is
 * an object with its schema, else just the name. */
static void json_provides(strbuf *sb, const plugin_info *pi, int full)
{
    for (int k = 0; k < 2; k++) {
        provided_kind kind = k == 0 ? PROVIDED_PATTERN_TYPE : PROVIDED_STEP;
        sb_puts(sb, k == 0 ? "\"pattern_types\":[" : ",\"steps\":[");
        int n = 0;
        for (size_t i = 0; i < pi->nprovides; i++) {
            const provided *p = pi->provides[i];
            if (p->kind != kind)
                continue;
            if (n++)
                sb_puts(sb, ",");
            if (!full) {
                sb_json_str(sb, p->name);
                continue;
            }
            sb_puts(sb, "{\"name\":");
            sb_json_str(sb, p->name);
            sb_puts(sb, ",\"description\":");
            if (kind == PROVIDED_PATTERN_TYPE) {
                const ndf_pattern_type_def *d = p->def.ptype;
                sb_json_str(sb, d->description);
                sb_printf(sb, ",\"rollback\":%s,\"matches\":%s", d->rollback ? "true" : "false",
                          d->matches ? "true" : "false");
                sb_puts(sb, ",\"params\":");
                json_params(sb, d->params);
            } else {
                const ndf_step_def *d = p->def.step;
                sb_json_str(sb, d->description);
                sb_printf(sb, ",\"blocking\":%s,\"undo\":%s",
                          (d->flags & NDF_STEP_BLOCKING) ? "true" : "false",
                          d->undo ? "true" : "false");
                sb_puts(sb, ",\"params\":");
                json_params(sb, d->params);
            }
            sb_puts(sb, "}");
        }
        sb_puts(sb, "]");
    }
}

static void json_plugin_common(strbuf *sb, const plugin_info *pi)
{
    sb_puts(sb, "\"file\":");
    sb_json_str(sb, pi->path);
    sb_puts(sb, ",\"cached\":");
    sb_json_str(sb, pi->cached);
    sb_puts(sb, ",\"sha256\":");
    sb_json_str(sb, pi->hash[0] ? pi->hash : NULL);
    sb_printf(sb, ",\"loaded\":%s,\"reason\":", pi->loaded ? "true" : "false");
    sb_json_str(sb, pi->reason);
    sb_puts(sb, ",\"name\":");
    sb_json_str(sb, pi->name);
    sb_puts(sb, ",\"version\":");
    sb_json_str(sb, pi->version);
    sb_puts(sb, ",\"license\":");
    sb_json_str(sb, pi->license);
    sb_puts(sb, ",\"description\":");
    sb_json_str(sb, pi->description);
    sb_puts(sb, ",\"abi\":");
    if (pi->desc_size)
        sb_printf(sb, "{\"major\":%u,\"minor\":%u}", pi->abi_major, pi->abi_minor);
    else
        sb_puts(sb, "null");
    sb_printf(sb, ",\"descriptor_size\":%zu,", pi->desc_size);
}

/* ---- text ---- */

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

static void print_names(FILE *out, const plugin_info *pi, provided_kind kind, const char *label)
{
    int n = 0;
    for (size_t i = 0; i < pi->nprovides; i++) {
        if (pi->provides[i]->kind != kind)
            continue;
        fprintf(out, "%s%s", n++ ? ", " : label, pi->provides[i]->name);
    }
    if (n)
        fprintf(out, "\n");
}

static void print_params(FILE *out, const ndf_param_spec *spec, int indent, int depth)
{
    for (size_t i = 0; spec && spec[i].name; i++) {
        const ndf_param_spec *s = &spec[i];
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, type_name(s->type));
        if (s->type == NDF_VALUE_LIST)
            sb_printf(&sb, " of %s", type_name(s->elem_type ? s->elem_type : NDF_VALUE_ANY));
        if (s->flags & NDF_PARAM_REQUIRED)
            sb_puts(&sb, ", required");
        else if (s->def)
            sb_printf(&sb, ", default %s", s->def);
        if (s->flags & NDF_PARAM_RANGE) {
            int len = s->type == NDF_VALUE_STRING || s->type == NDF_VALUE_LIST;
            sb_printf(&sb, ", %s %.15g..%.15g", len ? "length" : "range", s->min, s->max);
        }
        if (s->flags & NDF_PARAM_OPEN)
            sb_puts(&sb, ", open");
        fprintf(out, "%*s%s (%s)%s%s\n", indent, "", s->name, sb.buf, s->doc ? ": " : "",
                s->doc ? s->doc : "");
        sb_free(&sb);
        if (has_children(s) && depth < 16)
            print_params(out, s->children, indent + 2, depth + 1);
    }
}

static void print_provided(FILE *out, const provided *p)
{
    const char *desc;
    const ndf_param_spec *params;
    strbuf extra;
    sb_init(&extra);
    if (p->kind == PROVIDED_PATTERN_TYPE) {
        const ndf_pattern_type_def *d = p->def.ptype;
        desc = d->description;
        params = d->params;
        if (d->rollback)
            sb_puts(&extra, ", rollback");
        if (d->matches)
            sb_puts(&extra, ", matches");
    } else {
        const ndf_step_def *d = p->def.step;
        desc = d->description;
        params = d->params;
        if (d->flags & NDF_STEP_BLOCKING)
            sb_puts(&extra, ", blocking");
        if (d->undo)
            sb_puts(&extra, ", undo");
    }
    fprintf(out, "\n%s %s%s%s\n", p->kind == PROVIDED_PATTERN_TYPE ? "pattern type" : "step",
            p->name, desc ? ": " : "", desc ? desc : "");
    if (extra.len)
        fprintf(out, "  supports: %s\n", extra.buf + 2);
    sb_free(&extra);
    if (params && params[0].name) {
        fprintf(out, "  parameters:\n");
        print_params(out, params, 4, 0);
    } else {
        fprintf(out, "  parameters: none\n");
    }
}

/* ---- ndf plugins ---- */

static void plugins_text(FILE *out, size_t i, const plugin_info *pi)
{
    if (!pi->loaded) {
        fprintf(out, "%srefused: %s\n", i ? "\n" : "", pi->reason);
        return;
    }
    fprintf(out, "%s%s %s (ABI %u.%u)\n", i ? "\n" : "", pi->name, or_dash(pi->version),
            pi->abi_major, pi->abi_minor);
    fprintf(out, "  file: %s\n  sha256: %.16s\n", pi->path, pi->hash);
    if (pi->description)
        fprintf(out, "  description: %s\n", pi->description);
    print_names(out, pi, PROVIDED_PATTERN_TYPE, "  pattern types: ");
    print_names(out, pi, PROVIDED_STEP, "  steps: ");
}

static int cmd_plugins(cmd_ctx *c, int argc, char **argv)
{
    int json = 0;
    opt_parser p;
    int rc = parse_opts(c, &p, argc, argv, &json);
    if (rc >= 0)
        return rc;
    if (p.noperands) {
        fprintf(c->err, "ndf plugins: unexpected argument '%s' (see 'ndf plugins --help')\n",
                p.operands[0]);
        return EXIT_USAGE;
    }
    runtime *a = c->rt;
    rc = runtime_load(a, RT_PLUGINS);
    if (rc != NDF_OK)
        return exit_code_for(rc);

    size_t n = loader_count(a->ld), refused = 0;
    strbuf sb;
    sb_init(&sb);
    if (json)
        sb_puts(&sb, "{\"plugins\":[");
    for (size_t i = 0; i < n; i++) {
        plugin_info pi;
        loader_plugin(a->ld, i, &pi);
        refused += !pi.loaded;
        if (json) {
            sb_puts(&sb, i ? ",{" : "{");
            json_plugin_common(&sb, &pi);
            json_provides(&sb, &pi, 0);
            sb_puts(&sb, "}");
        } else {
            plugins_text(c->out, i, &pi);
        }
    }
    if (json) {
        sb_printf(&sb,
                  "],\"loaded\":%zu,\"refused\":%zu,\"host_abi\":{\"major\":%d,\"minor\":%d}}\n",
                  n - refused, refused, NDF_ABI_MAJOR, NDF_ABI_MINOR);
        fputs(sb.buf, c->out);
    } else if (n == 0) {
        size_t nd;
        char *const *dirs = runtime_plugin_dirs(a, &a->cfg->set, &nd);
        fprintf(c->out, "no plugin files found in");
        for (size_t i = 0; i < nd; i++)
            fprintf(c->out, " %s", dirs[i]);
        fprintf(c->out, "\n");
    }
    sb_free(&sb);
    if (refused)
        fprintf(c->err, "ndf plugins: %zu of %zu plugin file%s refused\n", refused, n,
                n == 1 ? "" : "s");
    return EXIT_OK;
}

/* ---- ndf inspect ---- */

static void inspect_text(FILE *out, const plugin_info *pi, int status)
{
    fprintf(out, "file: %s\n", pi->path);
    if (pi->hash[0])
        fprintf(out, "sha256: %s\n", pi->hash);
    if (pi->name)
        fprintf(out, "name: %s\nversion: %s\nlicense: %s\ndescription: %s\n", pi->name,
                or_dash(pi->version), or_dash(pi->license), or_dash(pi->description));
    if (pi->desc_size)
        fprintf(out, "abi: %u.%u (descriptor %zu bytes; this ndf supports %d.%d)\n", pi->abi_major,
                pi->abi_minor, pi->desc_size, NDF_ABI_MAJOR, NDF_ABI_MINOR);
    fprintf(out, "verdict: %s\n", status == NDF_OK ? "compatible" : "refused");
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < pi->nprovides; i++)
            if (pi->provides[i]->kind == (k ? PROVIDED_STEP : PROVIDED_PATTERN_TYPE))
                print_provided(out, pi->provides[i]);
}

static int cmd_inspect(cmd_ctx *c, int argc, char **argv)
{
    int json = 0;
    opt_parser p;
    int rc = parse_opts(c, &p, argc, argv, &json);
    if (rc >= 0)
        return rc;
    if (p.noperands != 1) {
        fprintf(c->err, "ndf inspect: %s (see 'ndf inspect --help')\n",
                !p.noperands ? "expected one plugin FILE" : "expected only one FILE");
        return EXIT_USAGE;
    }
    const char *path = p.operands[0];

    /* A private loader: inspecting must not touch the configured plugins,
     * and the same checks apply, so an insecure file gets that verdict. */
    loader_opts lo = {.host = &host_services, .quiet = 1};
    loader *ld = loader_new(&lo);
    if (!ld) {
        fprintf(c->err, "ndf inspect: %s\n", err_msg());
        return EXIT_IO;
    }
    int status = loader_load(ld, path);
    plugin_info pi;
    loader_plugin(ld, 0, &pi);
    int code = status == NDF_OK              ? EXIT_OK
               : status == NDF_ERR_NOT_FOUND ? EXIT_NOT_FOUND
               : status == NDF_ERR_IO        ? EXIT_IO
                                             : EXIT_PLUGIN;
    const char *verdict = status == NDF_OK ? "compatible" : pi.reason;

    if (json) {
        strbuf sb;
        sb_init(&sb);
        sb_printf(&sb, "{\"valid\":%s,\"verdict\":", status == NDF_OK ? "true" : "false");
        sb_json_str(&sb, verdict);
        sb_printf(&sb, ",\"host_abi\":{\"major\":%d,\"minor\":%d},", NDF_ABI_MAJOR, NDF_ABI_MINOR);
        json_plugin_common(&sb, &pi);
        json_provides(&sb, &pi, 1);
        sb_puts(&sb, "}\n");
        fputs(sb.buf, c->out);
        sb_free(&sb);
    } else if (code != EXIT_NOT_FOUND) {
        inspect_text(c->out, &pi, status);
    }
    if (status != NDF_OK)
        fprintf(c->err, "ndf inspect: %s\n", pi.reason);
    /* out first: the plugin's fini may write to the terminal too */
    fflush(c->out);
    loader_free(ld);
    return code;
}

const cmd_entry cmd_plugins_entry = {
    .name = "plugins",
    .summary = "list loaded and refused plugins",
    .usage = plugins_usage,
    .flags = CMD_SERVABLE | CMD_LOADER,
    .exec = cmd_plugins,
};

const cmd_entry cmd_inspect_entry = {
    .name = "inspect",
    .summary = "check a plugin file and print what it provides",
    .usage = inspect_usage,
    .exec = cmd_inspect,
};
