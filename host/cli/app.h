/* The program's state shared by its commands: options, the configuration,
 * the plugin loader and the registry, each loaded on demand. */
#ifndef NDF_APP_H
#define NDF_APP_H

#include "conf/config.h"
#include "plugin/loader.h"
#include "model/registry.h"

typedef struct app {
    const char *config_path;   /* -c, NDF_CONFIG, or the compiled-in default */
    int config_explicit;       /* given by -c or NDF_CONFIG */
    int verbosity;             /* -1 quiet, 0 normal, 1+ verbose */
    config *cfg;
    loader *ld;
    registry *reg;
    size_t pattern_errors;     /* definitions that failed to build */
} app;

enum {
    APP_CONFIG = 1,   /* read the configuration file */
    APP_PLUGINS = 2,  /* and load the plugins (implies APP_CONFIG) */
    APP_PATTERNS = 4  /* and build the patterns into the registry (implies both) */
};

/* Loads what `what` asks for, printing diagnostics ("file:line: message")
 * to stderr.  Returns EXIT_OK, or the exit code to stop with. */
int app_load(app *a, unsigned what);
void app_free(app *a);

/* The one PATTERN operand a command takes (argv[optind] after getopt), or
 * NULL after telling the user on stderr what is wrong ("ndf CMD: which
 * pattern?..." / "too many arguments"); the caller then exits EXIT_USAGE. */
const char *app_pattern_arg(const char *cmd, int argc, char **argv);

/* The plugin directories in effect: NDF_PLUGIN_PATH (colon-separated) when
 * set, else the configuration's, else the compiled-in one. */
char **app_plugin_dirs(app *a, size_t *n);

#endif
