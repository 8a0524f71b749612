/* ndf: the host program.  Parses the global options and hands the rest of
 * the command line to one command. */
#include "build-config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ndf/version.h>

#include "cli/app.h"
#include "cli/commands.h"
#include "base/util.h"

static const struct command {
    const char *name;
    command_fn fn;
    const char *summary;
} commands[] = {
    {"plugins", cmd_plugins, "list loaded and refused plugins"},
    {"inspect", cmd_inspect, "check a plugin file and print what it provides"},
    {"check-config", cmd_check_config, "validate the configuration and patterns"},
    {"config", cmd_config, "print the effective configuration as JSON"},
    {"list", cmd_list, "list patterns with their confidence"},
    {"show", cmd_show, "show a pattern's definition and statistics"},
    {"similar", cmd_similar, "find patterns similar to a context"},
    {"run", cmd_run, "run a pattern, showing its progress"},
    {"batch", cmd_batch, "run patterns listed as JSON lines, results in input order"},
    {"runs", cmd_runs, "list kept executions, newest first"},
    {"status", cmd_status, "show an execution's steps, tasks and phases (the newest by default)"},
    {"logs", cmd_logs, "print the output captured from an execution's steps"},
    {"export", cmd_export, "export a pattern's learning data (json, csv, yaml)"},
    {"cleanup", cmd_cleanup, "prune the kept history and reclaim space"},
    {"reset-stats", cmd_reset_stats, "reset a pattern's learning state"},
    {"backup", cmd_backup, "write a compressed online backup of the store"},
    {"restore", cmd_restore, "replace the store with a backup"},
    {"analytics", cmd_analytics, "report a pattern's performance, trend and advice"},
    {"monitor", cmd_monitor, "print current cpu, memory and disk I/O usage"},
    {"serve", cmd_serve, "run as a service on a control socket, reloading plugins live"},
    {"ctl", cmd_ctl, "send a request to a running 'ndf serve'"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: ndf [-c FILE] [-v|-q] COMMAND [ARGS]\n"
            "\n"
            "Runs delegation patterns built from plugins.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE  configuration file (default: $NDF_CONFIG, else\n"
            "                     %s/ndf/ndf.conf)\n"
            "  -v, --verbose      say more (repeat for debug output)\n"
            "  -q, --quiet        errors only\n"
            "  -h, --help         show this help\n"
            "  -V, --version      show the version and the plugin ABI version\n"
            "\n"
            "Commands:\n",
            SYSCONFDIR);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'ndf COMMAND --help' describes a command; ndf(1) has the details.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    app a = {0};
    int c;

    /* "+" stops at the command name, so each command parses its own options. */
    while ((c = getopt_long(argc, argv, "+c:vqhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a.config_path = optarg;
            a.config_explicit = 1;
            break;
        case 'v': a.verbosity++; break;
        case 'q': a.verbosity = -1; break;
        case 'h': usage(stdout); return EXIT_OK;
        case 'V':
            printf("ndf %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, NDF_ABI_MAJOR, NDF_ABI_MINOR);
            return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    log_set_level(a.verbosity < 0 ? 0 : a.verbosity == 0 ? 1 : a.verbosity == 1 ? 2 : 3);
    if (!a.config_path) {
        const char *env = getenv("NDF_CONFIG");
        if (env && *env) {
            a.config_path = env;
            a.config_explicit = 1;
        } else {
            a.config_path = SYSCONFDIR "/ndf/ndf.conf";
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            optind = 0; /* let the command restart getopt from its argv[1] */
            int rc = commands[i].fn(&a, sub_argc, sub_argv);
            app_free(&a);
            fflush(stdout);
            if (ferror(stdout)) {
                fprintf(stderr, "ndf: error writing to standard output\n");
                return rc ? rc : EXIT_IO;
            }
            return rc;
        }
    }
    fprintf(stderr, "ndf: unknown command '%s' (see 'ndf --help')\n", name);
    return EXIT_USAGE;
}
