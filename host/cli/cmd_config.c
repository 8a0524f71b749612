/* `ndf check-config` and `ndf config`: validate the configuration with
 * everything it names (plugins, pattern types, steps, parameters), and print
 * the settings in effect as JSON (the seed's PatternConfig.get_current_config). */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/runtime.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "conf/config.h"
#include "plugin/loader.h"
#include "model/registry.h"
#include "base/util.h"

static const char check_usage[] =
    "Usage: ndf check-config [--json]\n"
    "\n"
    "Reads the configuration file and its patterns_dir, loads the plugins, and\n"
    "builds every pattern, checking each against its type's parameter schema.\n"
    "Problems are printed as FILE:LINE: MESSAGE on standard error.\n"
    "\n"
    "  --json      print one JSON object instead: {\"ok\", \"file\", \"patterns\",\n"
    "              \"plugins\", \"errors\", \"warnings\"} (the problems as strings)\n"
    "\n"
    "Exit status: 0 when valid (one summary line on standard output), 2 when not.\n";

static const char config_usage[] =
    "Usage: ndf config [--json]\n"
    "\n"
    "Prints the configuration in effect (defaults, the configuration file,\n"
    "NDF_PLUGIN_PATH) as one JSON object; see ndf.conf(5) for its keys.\n";

/* Parses a command's only options: --help and `flag` (when not NULL).
 * Returns -1 to continue, else the exit code. */
static int parse_opts(cmd_ctx *c, int argc, char **argv, const char *flag, int *flag_set)
{
    opt_spec opts[3] = {{"help", 'h', OPT_NONE, 'h'}, {0}, {0}};
    if (flag)
        opts[1] = (opt_spec){flag, 0, OPT_NONE, 'f'};
    opt_parser p;
    opt_init(&p, argc, argv, opts, OPT_STOP, NULL);
    int o;
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'h': return cmd_help(c);
        case 'f':
            if (flag_set)
                *flag_set = 1;
            break;
        default:
            cmd_error(c, "unknown option '%s' (see 'ndf %s --help')\n", p.bad, argv[0]);
            return EXIT_USAGE;
        }
    }
    if (p.noperands) {
        cmd_error(c, "unexpected argument '%s' (see 'ndf %s --help')\n", p.operands[0], argv[0]);
        return EXIT_USAGE;
    }
    return -1;
}

/* check-config --json: the diagnostics, kept instead of printed. */
typedef struct diag_list {
    strbuf errors, warnings;
    size_t nerrors, nwarnings;
} diag_list;

static void diag_keep(void *opaque, runtime_diag sev, const char *msg)
{
    diag_list *d = opaque;
    strbuf *sb = sev == RT_DIAG_WARNING ? &d->warnings : &d->errors;
    size_t *n = sev == RT_DIAG_WARNING ? &d->nwarnings : &d->nerrors;
    sb_puts(sb, (*n)++ ? "," : "");
    sb_json_str(sb, msg);
}

static int cmd_check_config(cmd_ctx *c, int argc, char **argv)
{
    int json = 0;
    int rc = parse_opts(c, argc, argv, "json", &json);
    if (rc >= 0)
        return rc;
    runtime *a = c->rt;
    diag_list d = {0};
    sb_init(&d.errors);
    sb_init(&d.warnings);
    if (json) {
        a->report = diag_keep;
        a->report_opaque = &d;
    }
    rc = runtime_load(a, RT_PATTERNS | RT_NO_STORE);
    if (json) {
        /* {"ok", "file", "patterns", "plugins", "errors", "warnings"} */
        size_t loaded = 0;
        for (size_t i = 0; a->ld && i < loader_count(a->ld); i++) {
            plugin_info info;
            loader_plugin(a->ld, i, &info);
            loaded += info.loaded != 0;
        }
        strbuf sb;
        sb_init(&sb);
        sb_printf(&sb, "{\"ok\":%s,\"file\":", rc == NDF_OK ? "true" : "false");
        sb_json_str(&sb, a->config_path);
        sb_printf(&sb, ",\"patterns\":%zu,\"plugins\":%zu,\"errors\":[%s],\"warnings\":[%s]}\n",
                  a->reg ? registry_count(a->reg) : 0, loaded, d.errors.buf ? d.errors.buf : "",
                  d.warnings.buf ? d.warnings.buf : "");
        fwrite(sb.buf, 1, sb.len, c->out);
        sb_free(&sb);
        a->report = cmd_report;
        a->report_opaque = c;
    }
    sb_free(&d.errors);
    sb_free(&d.warnings);
    if (rc != NDF_OK)
        return exit_code_for(rc);
    if (json)
        return EXIT_OK;
    size_t loaded = 0;
    for (size_t i = 0; a->ld && i < loader_count(a->ld); i++) {
        plugin_info info;
        loader_plugin(a->ld, i, &info);
        loaded += info.loaded != 0;
    }
    size_t npatterns = a->reg ? registry_count(a->reg) : 0;
    const char *base = strrchr(a->config_path, '/');
    base = base ? base + 1 : a->config_path;
    if (c->verbosity >= 0)
        fprintf(c->out, "%s: OK, %zu pattern%s, %zu plugin%s\n", base, npatterns,
                npatterns == 1 ? "" : "s", loaded, loaded == 1 ? "" : "s");
    return EXIT_OK;
}

static int cmd_config(cmd_ctx *c, int argc, char **argv)
{
    int json = 0;
    int rc = parse_opts(c, argc, argv, "json", &json);
    if (rc >= 0)
        return rc;
    runtime *a = c->rt;
    rc = runtime_load(a, RT_CONFIG);
    if (rc != NDF_OK)
        return exit_code_for(rc);

    /* What is in effect, not just what the file says: NDF_PLUGIN_PATH
     * replaces the configured plugin directories. */
    settings eff = a->cfg->set;
    eff.plugin_dirs = (char **)runtime_plugin_dirs(a, &a->cfg->set, &eff.nplugin_dirs);

    strbuf sb;
    sb_init(&sb);
    settings_to_json(&eff, &sb);
    /* Splice the pattern names in before the closing brace. */
    if (sb.len && sb.buf[sb.len - 1] == '}')
        sb.len--;
    sb_puts(&sb, ",\"patterns\":[");
    for (size_t i = 0; i < a->cfg->npatterns; i++) {
        const ndf_value *def = a->cfg->patterns[i];
        if (!def)
            continue;
        if (sb.buf[sb.len - 1] != '[')
            sb_puts(&sb, ",");
        sb_puts(&sb, "{\"name\":");
        value_to_json(value_get(def, "name"), &sb);
        sb_puts(&sb, ",\"type\":");
        value_to_json(value_get(def, "type"), &sb);
        sb_puts(&sb, ",\"file\":");
        ndf_value *f = value_new_string(NULL, def->file ? def->file : "");
        value_to_json(f, &sb);
        value_free(f);
        sb_printf(&sb, ",\"line\":%d}", def->line);
    }
    sb_puts(&sb, "]}\n");
    fputs(sb.buf, c->out);
    sb_free(&sb);
    return EXIT_OK;
}

const cmd_entry cmd_check_config_entry = {
    .name = "check-config",
    .summary = "validate the configuration and patterns",
    .usage = check_usage,
    .exec = cmd_check_config,
};

const cmd_entry cmd_config_entry = {
    .name = "config",
    .summary = "print the effective configuration as JSON",
    .usage = config_usage,
    .flags = CMD_SERVABLE,
    .exec = cmd_config,
};
