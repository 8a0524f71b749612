/* ndf: the host program.  Parses the global options, prepares the runtime
 * and hands the rest of the command line to one command of the table. */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <ndf/version.h>

#include "app/runtime.h"
#include "exec/isolate.h"
#include "exec/pool.h"
#include "exec/process.h"
#include "exec/services.h"
#include "plugin/loader.h"
#include "plugin/scanner.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "base/util.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: ndf [-c FILE] [-v|-q] COMMAND [ARGS]\n"
            "       (the options may also follow COMMAND, before any '--')\n"
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
    for (size_t i = 0; cmd_table[i]; i++)
        fprintf(f, "  %-14s %s\n", cmd_table[i]->name, cmd_table[i]->summary);
    fprintf(f, "\n'ndf COMMAND --help' describes a command; ndf(1) has the details.\n");
}

/* Runs `e` on argv (argv[0] its name) with the process's stdio. */
static int run(const cmd_entry *e, const char *config_path, int config_explicit, int verbosity,
               int argc, char **argv)
{
    cmd_ctx c = {
        .entry = e,
        .in = stdin,
        .out = stdout,
        .err = stderr,
        .verbosity = verbosity,
    };
    runtime rt;
    runtime_init(&rt, config_path, config_explicit, cmd_report, &c);
    c.rt = &rt;
    /* the server's log is a service's: its lines name no command */
    if (strcmp(e->name, "serve") != 0)
        log_set_command(e->name);
    int rc = e->exec(&c, argc, argv);
    cmd_signals_watch(NULL);
    /* Interrupted: the executions were cancelled and recorded; the exit
     * status says which signal ended the command, as a shell expects. */
    int sig = cmd_signal_received();
    if (sig && !cmd_signals_kept())
        rc = 128 + sig;
    runtime_free(&rt);
    fflush(stdout);
    if (ferror(stdout)) {
        cmd_diag(stderr, e->name, DIAG_ERR, "error writing to standard output\n");
        rc = rc ? rc : EXIT_IO;
    }
    /* A thread stuck in a step's code (abandoned) would crash in exit()'s
     * destructors and unloading: the store is closed and the output
     * flushed, so leave at once. */
    if (pool_stuck_threads() > 0) {
        fflush(stderr);
        _exit(rc);
    }
    /* The idle step workers are killed and reaped here, not left to see
     * their socket close after ndf is gone (where nobody may reap them:
     * a container whose first process does not) */
    isolate_shutdown();
    return rc;
}

/* Takes the global options out of a command's arguments (argv[0] is the
 * command's name), so that "ndf list -q" means "ndf -q list": -v, -vv...,
 * --verbose, -q, --quiet, -c FILE, -cFILE, --config FILE, --config=FILE,
 * up to a "--".  No command has an option of its own by these names.
 * Compacts argv in place and returns the new argc, or -1 after saying what
 * is wrong (-c with no FILE). */
static int take_globals(int argc, char **argv, const char **config_path, int *config_explicit,
                        int *verbosity)
{
    int out = 1, i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--verbose") == 0) {
            (*verbosity)++;
        } else if (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
            *verbosity += (int)strlen(a + 1);
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            *verbosity = -1;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                cmd_diag(stderr, argv[0], DIAG_ERR, "option '%s' requires a FILE\n", a);
                return -1;
            }
            *config_path = argv[++i];
            *config_explicit = 1;
        } else if (strncmp(a, "--config=", 9) == 0 || (strncmp(a, "-c", 2) == 0 && a[2])) {
            *config_path = a + (a[1] == '-' ? 9 : 2);
            *config_explicit = 1;
        } else {
            argv[out++] = argv[i];
        }
    }
    for (; i < argc; i++)
        argv[out++] = argv[i];
    argv[out] = NULL;
    return out;
}

/* What a plugin's init left running after its scan (a setsid'd daemon):
 * found among ndf's descendants (it is a child subreaper, so they are
 * reparented to it), killed and reaped. */
static void scan_kill_token(const char *token)
{
    if (process_kill_token_below(token) > 0) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        process_reap_orphans();
    }
}

int main(int argc, char **argv)
{
    static const opt_spec opts[] = {
        {"config", 'c', OPT_REQUIRED, 'c'}, {"verbose", 'v', OPT_NONE, 'v'},
        {"quiet", 'q', OPT_NONE, 'q'},      {"help", 'h', OPT_NONE, 'h'},
        {"version", 'V', OPT_NONE, 'V'},    {0}};
    const char *config_path = NULL;
    int config_explicit = 0, verbosity = 0, c;
    opt_parser p;

    /* The plugin scanner's child: never a command (its report goes to a
     * pipe its parent made), and it leaves without running exit handlers,
     * which are the host's, not the scan's. */
    if (argc >= 2 && strcmp(argv[1], ISOLATE_WORKER_ARG) == 0) {
        int rc = isolate_worker_main(argc, argv, &host_services);
        fflush(stderr);
        _exit(rc);
    }
    if (argc == 3 && strcmp(argv[1], SCANNER_ARG) == 0) {
        /* A parent killed while it waits (Ctrl-C at start-up) takes a
         * hanging scan with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        int rc = loader_scan_child(&host_services, argv[2], SCANNER_FD);
        if (rc == 2)
            fprintf(stderr, "ndf: %s is the plugin scanner's mode, started by ndf itself "
                            "(use 'ndf inspect FILE')\n",
                    SCANNER_ARG);
        fflush(stderr);
        _exit(rc);
    }
    /* Plugins are scanned by this very program, whatever its name or
     * installed path (and even if it was replaced since it started). */
    static const scanner_hooks hooks = {
        .begin = process_child_begin,
        .end = process_child_end,
        .reaped = process_child_reaped,
        .kill_token = scan_kill_token,
    };
    if (access("/proc/self/exe", X_OK) == 0) {
        /* what an init leaves behind comes to ndf (scan_kill_token) */
        process_become_subreaper();
        scanner_set_program("/proc/self/exe", &hooks);
    }

    /* OPT_STOP ends at the command name: each command parses its own. */
    opt_init(&p, argc, argv, opts, OPT_STOP, stderr);
    p.program = 1;
    while ((c = opt_next(&p)) != OPT_END) {
        switch (c) {
        case 'c':
            config_path = p.arg;
            config_explicit = 1;
            break;
        case 'v': verbosity++; break;
        case 'q': verbosity = -1; break;
        case 'h': usage(stdout); return EXIT_OK;
        case 'V':
            printf("ndf %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, NDF_ABI_MAJOR, NDF_ABI_MINOR);
            return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    const cmd_entry *e = p.ind < argc ? cmd_find(argv[p.ind]) : NULL;
    int cargc = argc - p.ind;
    if (e && (cargc = take_globals(cargc, argv + p.ind, &config_path, &config_explicit,
                                   &verbosity)) < 0)
        return EXIT_USAGE;
    log_set_level(verbosity < 0 ? 0 : verbosity == 0 ? 1 : verbosity == 1 ? 2 : 3);
    if (!config_path) {
        const char *env = getenv("NDF_CONFIG");
        if (env && *env) {
            config_path = env;
            config_explicit = 1;
        } else {
            config_path = SYSCONFDIR "/ndf/ndf.conf";
        }
    }
    if (p.ind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!e) {
        cmd_diag(stderr, NULL, DIAG_ERR, "unknown command '%s' (see 'ndf --help')\n", argv[p.ind]);
        return EXIT_USAGE;
    }
    return run(e, config_path, config_explicit, verbosity, cargc, argv + p.ind);
}
