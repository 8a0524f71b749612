/* Loading what a command needs, in order: configuration, plugins, patterns.
 * Diagnostics go to stderr as "file:line: message". */
#include "build-config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/app.h"
#include "cli/commands.h"
#include "conf/config.h"
#include "plugin/loader.h"
#include "model/pattern.h"
#include "model/build.h"
#include "model/registry.h"
#include "exec/services.h"
#include "store/history.h"
#include "base/util.h"

int exit_code_for(int status)
{
    switch (status) {
    case NDF_OK: return EXIT_OK;
    case NDF_ERR_NOT_FOUND: return EXIT_NOT_FOUND;
    case NDF_ERR_EXISTS:
    case NDF_ERR_INVALID:
    case NDF_ERR_VALIDATION: return EXIT_USAGE;
    case NDF_ERR_CONFIDENCE: return EXIT_CONFIDENCE;
    case NDF_ERR_RESOURCE: return EXIT_RESOURCE;
    case NDF_ERR_TIMEOUT: return EXIT_TIMEOUT;
    case NDF_ERR_IO:
    case NDF_ERR_NOMEM: return EXIT_IO;
    case NDF_ERR_CANCELLED: return EXIT_CANCELLED;
    default: return EXIT_FAILED;
    }
}

void usage_print(const char *text)
{
    fputs(text, stdout);
}

const char *app_pattern_arg(const char *cmd, int argc, char **argv)
{
    if (argc - optind == 1)
        return argv[optind];
    fprintf(stderr, "ndf %s: %s\n", cmd,
            optind < argc ? "too many arguments" : "which pattern? (see 'ndf list')");
    return NULL;
}

static void split_path(const char *s, char ***dirs, size_t *n)
{
    *dirs = NULL;
    *n = 0;
    while (s && *s) {
        const char *e = strchr(s, ':');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len) {
            *dirs = xrealloc(*dirs, (*n + 1) * sizeof **dirs);
            (*dirs)[(*n)++] = xstrndup(s, len);
        }
        s = e ? e + 1 : NULL;
    }
}

static char **plugin_dirs_env;
static size_t nplugin_dirs_env;

char **app_plugin_dirs(app *a, size_t *n)
{
    const char *env = getenv("NDF_PLUGIN_PATH");
    if (env && *env) {
        if (!plugin_dirs_env)
            split_path(env, &plugin_dirs_env, &nplugin_dirs_env);
        *n = nplugin_dirs_env;
        return plugin_dirs_env;
    }
    if (a->cfg && a->cfg->set.nplugin_dirs) {
        *n = a->cfg->set.nplugin_dirs;
        return a->cfg->set.plugin_dirs;
    }
    static char *builtin[] = {(char *)PLUGINDIR};
    *n = 1;
    return builtin;
}

static int load_config(app *a)
{
    if (a->cfg)
        return EXIT_OK;
    if (!a->config_explicit && access(a->config_path, F_OK) != 0 && errno == ENOENT) {
        /* No system configuration: run on defaults, as documented. */
        a->cfg = xcalloc(1, sizeof *a->cfg);
        settings_default(&a->cfg->set);
        return EXIT_OK;
    }
    int rc = config_load(a->config_path, &a->cfg);
    for (size_t i = 0; a->cfg && i < a->cfg->ndiags; i++)
        if (a->cfg->diags[i].is_error || a->verbosity >= 0)
            fprintf(stderr, "%s%s\n",
                    a->cfg->diags[i].is_error ? "" : "warning: ", a->cfg->diags[i].text);
    if (rc && (!a->cfg || a->cfg->nerrors == 0))
        fprintf(stderr, "ndf: %s\n", err_msg());
    return rc ? exit_code_for(rc) : EXIT_OK;
}

static int load_plugins(app *a)
{
    if (a->ld)
        return EXIT_OK;
    loader_opts lo = {
        .host = &host_services,
        .cache_dir = a->cfg->set.cache_dir,
        .allow_insecure = a->cfg->set.allow_insecure,
    };
    a->ld = loader_new(&lo);
    if (!a->ld) {
        fprintf(stderr, "ndf: %s\n", err_msg());
        return EXIT_IO;
    }
    size_t n;
    char **dirs = app_plugin_dirs(a, &n);
    loader_scan(a->ld, dirs, n);
    return EXIT_OK;
}

static void report_stderr(void *opaque, const char *msg)
{
    (void)opaque;
    fprintf(stderr, "%s\n", msg);
}

static int load_patterns(app *a)
{
    if (a->reg)
        return EXIT_OK;
    build_opts bo = {
        .ld = a->ld,
        .set = &a->cfg->set,
        /* learning state is read from, and paged back in from, the store */
        .store = history_registry_store(&a->cfg->set),
        .report = report_stderr,
    };
    a->reg = build_registry(&bo, a->cfg->patterns, a->cfg->npatterns, &a->pattern_errors);
    return a->pattern_errors ? EXIT_USAGE : EXIT_OK;
}

int app_load(app *a, unsigned what)
{
    int rc = load_config(a);
    if (rc)
        return rc;
    if (what & (APP_PLUGINS | APP_PATTERNS)) {
        rc = load_plugins(a);
        if (rc)
            return rc;
    }
    if (what & APP_PATTERNS)
        rc = load_patterns(a);
    return rc;
}

void app_free(app *a)
{
    if (a->reg)
        registry_free(a->reg);
    if (a->ld)
        loader_free(a->ld);
    if (a->cfg)
        config_free(a->cfg);
    a->reg = NULL;
    a->ld = NULL;
    a->cfg = NULL;
}
