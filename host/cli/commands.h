/* The ndf program's commands and its documented exit codes (ndf(1)).
 * Each command is `int cmd_NAME(app *a, int argc, char **argv)`, called with
 * argv[0] being the command name, and returns an exit code. */
#ifndef NDF_COMMANDS_H
#define NDF_COMMANDS_H

#include "cli/app.h"

/* Exit codes: stable, documented in ndf(1). */
enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,      /* the pattern ran and failed */
    EXIT_USAGE = 2,       /* bad command line, configuration or context */
    EXIT_NOT_FOUND = 3,   /* no such pattern, plugin file, execution */
    EXIT_CONFIDENCE = 4,  /* confidence below the threshold (see --force) */
    EXIT_TIMEOUT = 5,     /* the deadline passed */
    EXIT_RESOURCE = 6,    /* resources exhausted */
    EXIT_PLUGIN = 7,      /* not a valid plugin (ndf inspect) */
    EXIT_IO = 8,          /* storage or system error */
    EXIT_UNAVAILABLE = 9, /* no server listening (ndf ctl) */
    EXIT_CANCELLED = 10   /* cancelled on request */
};

/* Maps an ndf_status to the exit code above. */
int exit_code_for(int status);

typedef int (*command_fn)(app *a, int argc, char **argv);

/* cmd_plugins.c */
int cmd_plugins(app *a, int argc, char **argv);
int cmd_inspect(app *a, int argc, char **argv);
/* cmd_config.c */
int cmd_check_config(app *a, int argc, char **argv);
int cmd_config(app *a, int argc, char **argv);
/* cmd_patterns.c */
int cmd_list(app *a, int argc, char **argv);
int cmd_show(app *a, int argc, char **argv);
int cmd_similar(app *a, int argc, char **argv);
/* cmd_storage.c */
int cmd_export(app *a, int argc, char **argv);
int cmd_cleanup(app *a, int argc, char **argv);
int cmd_reset_stats(app *a, int argc, char **argv);
int cmd_analytics(app *a, int argc, char **argv);
int cmd_monitor(app *a, int argc, char **argv);

/* cmd_run.c */
int cmd_run(app *a, int argc, char **argv);
int cmd_batch(app *a, int argc, char **argv);
/* cmd_history.c */
int cmd_runs(app *a, int argc, char **argv);
int cmd_status(app *a, int argc, char **argv);
int cmd_logs(app *a, int argc, char **argv);
int cmd_backup(app *a, int argc, char **argv);
int cmd_restore(app *a, int argc, char **argv);

/* cmd_serve.c */
int cmd_serve(app *a, int argc, char **argv);
int cmd_ctl(app *a, int argc, char **argv);

/* Prints an execution record (record_to_json's object, parsed) as
 * `ndf status` does: the summary line, then every node indented. */
struct cJSON;
void status_print(const struct cJSON *record);

/* Prints "Usage: ..." help for a command on stdout. */
void usage_print(const char *text);

#endif
