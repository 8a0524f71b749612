/* The ndf program's commands as one table (tmux's cmd_entry is the model):
 * each entry has its name, help, flags and a handler that writes to the
 * sinks it is handed, never to the process's stdout or stderr, so that the
 * server runs the same handlers for its clients.  Also the documented exit
 * codes (ndf(1)): this layer alone knows them. */
#ifndef NDF_COMMANDS_H
#define NDF_COMMANDS_H

#include <stdio.h>

#include "app/runtime.h"
#include "model/context.h"
#include "model/delegate.h"
#include "cli/opt.h"

/* Exit codes: stable, documented in ndf(1). */
enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,       /* the pattern ran and failed */
    EXIT_USAGE = 2,        /* bad command line, configuration or context */
    EXIT_NOT_FOUND = 3,    /* no such pattern, plugin file, execution */
    EXIT_CONFIDENCE = 4,   /* confidence below the threshold (see --force) */
    EXIT_TIMEOUT = 5,      /* the deadline passed */
    EXIT_RESOURCE = 6,     /* resources exhausted */
    EXIT_PLUGIN = 7,       /* not a valid plugin (ndf inspect) */
    EXIT_IO = 8,           /* storage or system error */
    EXIT_UNAVAILABLE = 9,  /* no server listening (ndf ctl) */
    EXIT_CANCELLED = 10,   /* cancelled on request */
    EXIT_NO_CANDIDATE = 11, /* ndf delegate: no pattern suits the context */
    EXIT_EXISTS = 12        /* already exists (a pattern defined twice, ...) */
};

/* Maps an ndf_status to the exit code above. */
int exit_code_for(int status);
/* The exit code of a command that reports how stored execution status
 * `st` ended: as its run exited (0 succeeded, 4 refused, 5 timed out, 10
 * cancelled, 1 otherwise). */
int cmd_exit_of_stored(int st);
/* For a command that watches a RUNNING execution another process runs
 * (logs --follow, wait): once a second (*next, now_mono(); start it at 0)
 * runs the store's crash recovery, so an execution whose process died
 * (SIGKILL, a power cut on another boot) ends CRASHED, as the next
 * store_open() would end it, instead of being watched forever.  Recovery
 * looks at this host's processes only. */
void cmd_recover_tick(struct store *s, double *next);

/* cmd_entry.flags */
enum {
    CMD_SERVABLE = 1, /* `ndf ctl NAME` runs it on the server for a client */
    CMD_LOADER = 2,   /* reads the plugin loader (served under the reload lock) */
    CMD_CONTEXT = 4   /* takes a context (served: the request's "context") */
};

struct cmd_entry;

/* What a command runs with.  The sinks belong to the caller. */
typedef struct cmd_ctx {
    const struct cmd_entry *entry;
    runtime *rt;
    FILE *in; /* standard input, or NULL when served (a client has none here) */
    FILE *out, *err;
    int verbosity; /* -1 quiet, 0 normal, 1+ verbose */
    /* Served: the client's context, sent as data (the request's "context"
     * member); NULL when none was sent. */
    const ndf_context *context;
    int served; /* running for a socket client */
    /* What diagnostics call the command, "ctl: run" for a verb of ndf ctl;
     * NULL: entry->name (cmd_name()). */
    const char *name;
    struct genset *gs; /* served: the server's generations (a run-time change) */
    long uid;          /* served: the client's uid */
} cmd_ctx;

/* The command's name in its diagnostics: c->name, else c->entry->name. */
const char *cmd_name(const cmd_ctx *c);

/* A handler's return when it refuses a served request outright (it named
 * a file or standard input of the server's side): err_msg() says why, and
 * the client gets an error answer rather than an exit code. */
#define CMD_REFUSED (-1)

typedef struct cmd_entry {
    const char *name;
    const char *summary; /* one line for `ndf --help` */
    const char *usage;   /* all of `ndf NAME --help` */
    unsigned flags;      /* CMD_* */
    /* argv[0] is the command's name.  Returns an exit code (or CMD_REFUSED). */
    int (*exec)(cmd_ctx *c, int argc, char **argv);
} cmd_entry;

/* The commands, in the order `ndf --help` lists them; NULL-terminated. */
extern const cmd_entry *const cmd_table[];
/* The entry named `name`, or NULL. */
const cmd_entry *cmd_find(const char *name);

/* The report callback of a runtime that a command's context prints
 * (`opaque` is the cmd_ctx), on c->err in the diagnostics' one style:
 * "ndf: COMMAND: FILE:LINE: message" for located errors, "ndf: COMMAND:
 * warning: ..." (unless quiet) and "ndf: COMMAND: ..." for failures. */
void cmd_report(void *opaque, runtime_diag sev, const char *msg);

/* Syslog priorities of diagnostics (sd-daemon(3)): what prefixes a line
 * as "<N>" when it goes to the journal. */
enum { DIAG_ERR = 3, DIAG_WARNING = 4, DIAG_INFO = 6 };

/* Prints a diagnostic on `err` in the one style, "ndf: COMMAND: " and then
 * the formatted text (`fmt` brings its own newline); "<N>" (`prio`) goes
 * first when `err` is the process's stderr and that is the journal
 * (log_to_journal()), so that journald files it by level as it does the
 * log's lines.  `command` NULL: "ndf: " alone. */
void cmd_diag(FILE *err, const char *command, int prio, const char *fmt, ...) ATTR_PRINTF(4, 5);
/* cmd_diag() of an error for command `c` on c->err. */
void cmd_error(cmd_ctx *c, const char *fmt, ...) ATTR_PRINTF(2, 3);
/* cmd_diag() of a warning ("warning: " after the command) for `c` on
 * c->err; nothing when quiet (-q). */
void cmd_warn(cmd_ctx *c, const char *fmt, ...) ATTR_PRINTF(2, 3);

/* Prints the command's usage on c->out (for --help); returns EXIT_OK. */
int cmd_help(cmd_ctx *c);
/* Prints the command's usage on c->err (after a bad option); returns
 * EXIT_USAGE. */
int cmd_bad_usage(cmd_ctx *c);

/* The one PATTERN operand a command takes, or NULL after telling the user
 * on c->err what is wrong ("ndf CMD: which pattern?..." / "too many
 * arguments"); the caller then returns EXIT_USAGE. */
const char *cmd_pattern_arg(cmd_ctx *c, const opt_parser *p);

/* The configuration's store, after loading what `what` (RT_*) asks for;
 * NULL after saying why on c->err, with *rc the exit code to end with.  A
 * pattern definition that failed to build still lets the others be used
 * when RT_PATTERNS is asked for.  The runtime owns the store. */
struct store *cmd_open_store(cmd_ctx *c, unsigned what, int *rc);

/* Served commands take data, not paths: when c->served, refuses `what`
 * (sets err_msg() to "bad request: ..." with `instead`) and returns 1 (the
 * handler returns CMD_REFUSED); otherwise returns 0. */
int cmd_refuse_served(cmd_ctx *c, const char *instead);

/* The context options (cli/ctxopt.h) of a command: takes option `opt`
 * into `co` and returns 1 when it is one, 0 when it is not.  A bad value
 * is printed on c->err ("ndf: --priority ...") and *rc set to EXIT_USAGE;
 * --context when served is refused (*rc = CMD_REFUSED): a client sends its
 * context as data, and the server reads no file or stdin for it. */
struct ctxopt;
int cmd_context_option(cmd_ctx *c, struct ctxopt *co, int opt, const char *arg, int *rc);
/* Builds the context of the options (from c->context when served).
 * Returns EXIT_OK and *out (free with context_free()), or EXIT_USAGE after
 * printing why on c->err. */
int cmd_context_finish(cmd_ctx *c, struct ctxopt *co, ndf_context **out);

/* Parses `arg`, the value of option `opt`, as a number of seconds >= 0.
 * Returns 0, or -1 after saying why on c->err. */
int cmd_parse_seconds(cmd_ctx *c, const char *opt, const char *arg, double *out);
/* cmd_parse_seconds() for a period or deadline, which must be above 0
 * (--interval, --timeout of a run): one message for any bad value. */
int cmd_parse_interval(cmd_ctx *c, const char *opt, const char *arg, double *out);

/* Bounds of --queue-priority: wide enough for any scheme, narrow enough
 * that no arithmetic on it overflows. */
#define QUEUE_PRIORITY_MAX 1000000
/* --queue-priority ARG into *out: a whole number within the bounds, or -1
 * after saying so on c->err (the caller exits EXIT_USAGE). */
int cmd_parse_queue_priority(cmd_ctx *c, const char *arg, int *out);
/* EXIT_OK when the configured store has a work queue; else EXIT_USAGE
 * after saying which setting it needs, `what` ("--submit: " or NULL)
 * before it.  Asked before any store is opened: an SQLite store would
 * otherwise be created only to refuse. */
int cmd_queue_check(cmd_ctx *c, const char *what);
/* Queues `pat` in context `ctx` in the shared store's work queue (ndf
 * submit, ndf delegate --submit), after cmd_queue_check(); the store is
 * opened with runtime_load() flags `load`.  EXIT_OK with *id (caller
 * frees), or the exit code after the message. */
int cmd_queue_submit(cmd_ctx *c, unsigned load, const char *pat, const ndf_context *ctx,
                     int priority, double timeout, char **id);

/* ---- `ndf delegate`'s command line and answer (cmd_delegate.c), shared
 * with `ndf ctl delegate` ---- */

struct cJSON;

typedef struct cmd_delegate_args {
    ndf_context *ctx;
    delegate_opts o;
    double timeout;
    int explain, json;
    int submit; /* --submit: queue the choice instead of running it */
} cmd_delegate_args;

/* Parses `ndf delegate`'s options (argv[0] is the verb) into *da.  Returns
 * EXIT_OK with da->ctx set (to free) to go on; otherwise da->ctx is NULL
 * and the return is the command's. */
int cmd_delegate_parse(cmd_ctx *c, int argc, char **argv, cmd_delegate_args *da);

/* Prints the server's answer to a "delegate" request as `ndf delegate`
 * would (--json: the delegation object on c->out; else the table when
 * `explain`, and each attempt on c->err).  Returns the exit code. */
int cmd_delegate_answer(cmd_ctx *c, const struct cJSON *resp, int json, int explain);

/* ---- running a pattern as `ndf run` does (cmd_run.c; `ndf delegate`
 * runs its attempts through the same functions) ---- */

struct record;

/* The runtime's patterns and an executor on them that records each
 * execution in the store (with `origin`).  Returns EXIT_OK, or the exit
 * code after the runtime reported why (no store: exit 8; an executor that
 * cannot start otherwise is a failed run, exit 1). */
int cmd_load_executor(runtime *rt, store_origin origin);

/* cmd_load_executor for command `c`, which then runs patterns in the
 * foreground: unless served, SIGINT, SIGTERM and SIGHUP cancel its
 * executions from now on (cmd_signals_arm, cmd_signals_watch). */
int cmd_start_executor(cmd_ctx *c, store_origin origin);

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every
 * thread it starts later: call it before any) and takes them on a thread
 * of its own.  Once armed, the first signal cancels every execution of the
 * watched executor (rollback runs, processes get SIGTERM, the grace period,
 * SIGKILL) and refuses new ones, saying so as "ndf: COMMAND: SIGINT:
 * cancelling ..."; a second skips rollback and kills the processes at
 * once.  `command` NULL: the command runs nothing, and a signal only ends
 * it, without a word (cmd_signal_received()).  Idempotent. */
void cmd_signals_arm(const char *command);
/* The executor the signals cancel (NULL: none; before freeing it).  A
 * signal that came before is applied to it at once. */
struct executor;
void cmd_signals_watch(struct executor *ex);
/* The first signal received since cmd_signals_arm(), or 0. */
int cmd_signal_received(void);
/* Signals as `ndf rollback` takes them, from now on: the first lets the
 * undo actions finish (it cancels nothing), the second stops them (the
 * record told to cmd_signals_undo() is cancelled hard: the undo running
 * is killed, no other runs).  Call after cmd_signals_arm(). */
void cmd_signals_rollback(void);
/* A rollback_watch_fn (store/redrive.h): `r` is the record whose undo
 * actions run from now on, NULL when they have ended. */
struct record;
void cmd_signals_undo(void *arg, struct record *r);
/* The command ended as it would have without the signals it got (a
 * rollback that was let finish): main() keeps its exit status instead of
 * 128 + the signal. */
void cmd_signals_keep_status(void);
int cmd_signals_kept(void);

/* Starts pattern `name` on rt->ex with `ctx` (copied by the executor),
 * records it as RUNNING with rt->hook.origin, shows its progress on `err`
 * while it runs (when `show`; with the reasons of failed steps, and all
 * their output when `show` > 1), and returns its status after the store
 * recorded its end (err_msg() says why it failed).  *out gets the record
 * (release with record_unref()), or NULL when it did not start. */
int cmd_run_one(cmd_ctx *c, const char *name, const ndf_context *ctx, double timeout,
                unsigned flags, int show, struct record **out);

/* The check before pattern `name` starts in `ctx` (ndf run, each line of
 * ndf batch, ndf ctl run on the server): NDF_ERR_VALIDATION, with err_msg()
 * "pattern 'NAME' not started: ...", when a template of its plan cannot be
 * resolved; NDF_OK otherwise (an unknown pattern is left to the executor).
 * The runtime's patterns must be loaded; it only reads them. */
int cmd_plan_check(runtime *rt, const char *name, const ndf_context *ctx, double timeout);

/* cmd_run_one() once started: records `r` (a reference the caller keeps)
 * as RUNNING with `origin`, shows its progress on `err` (when `show`) and
 * returns its status after the store recorded its end. */
int cmd_run_follow(cmd_ctx *c, struct record *r, store_origin origin, int show);

/* The one-line summary of finished record `r` with status `rc` on `err`
 * ("pattern NAME: COMPLETED in 0.01s (execution ID): 1 COMPLETED"), and
 * the error on a line of its own when it failed. */
void cmd_run_summary(cmd_ctx *c, struct record *r, int rc);

/* How much of a failed step's captured stderr `ndf run` and `ndf status`
 * show under its FAILED line (all of it with -v). */
#define CMD_TAIL_LINES 5
#define CMD_TAIL_WIDTH 300

/* Prints captured output `text` (`len` bytes) under a failed node, each line
 * after `indent` spaces and "| ": the last CMD_TAIL_LINES lines cut at
 * CMD_TAIL_WIDTH bytes, with a line saying how many came before and
 * `more` (how to see them; may be NULL), or every line when `all`.
 * Control characters are shown as '?': a step's output never moves the
 * cursor or changes colours. */
void cmd_output_tail(FILE *out, int indent, const char *text, size_t len, int all,
                     const char *more);
/* cmd_output_tail() of a text that had `earlier` lines before it (the
 * newest part of a long output, which starts at a line's start), counted
 * with those it leaves out. */
/* 1 for the exit codes of an execution's own outcome (0, 1, 5, 10), which
 * `-q` leaves to the exit status; any other is an error to print. */
static inline int cmd_outcome_code(int code)
{
    return code == EXIT_OK || code == EXIT_FAILED || code == EXIT_TIMEOUT ||
           code == EXIT_CANCELLED;
}
void cmd_output_tail_after(FILE *out, int indent, const char *text, size_t len, uint64_t earlier,
                           const char *more);

/* Prints an execution record (record_to_json's object, parsed) on `out`
 * as `ndf status` does: the summary line, then every node indented. */
struct cJSON;
void status_print(FILE *out, const struct cJSON *record);

/* Writes `len` bytes of text to `out` line by line through term_safe()
 * (newlines kept): for the human output of commands that print
 * configuration text (names, descriptions, commands, parameters). */
void cmd_write_safe(FILE *out, const char *buf, size_t len);
/* Runs `print(out, arg)` into memory, then writes what it printed with
 * cmd_write_safe(). */
void cmd_print_safe(FILE *out, void (*print)(FILE *, const void *), const void *arg);

/* Prints the plan of pattern `name` in `ctx` (cli/plan.h) on c->out, as
 * text or JSON, after loading the patterns; problems go to c->err as
 * "ndf: COMMAND: ...".  Returns the exit code (2 when a template cannot be
 * resolved, 3 when there is no such pattern).  `ndf plan` and `ndf run
 * --dry-run`. */
int cmd_plan_show(cmd_ctx *c, const char *name, const ndf_context *ctx, double timeout, int json);

/* ---- metrics (cmd_metrics.c; `ndf ctl metrics` shares the writer) ---- */

typedef struct cmd_metrics_args {
    double window;        /* seconds of kept executions counted; 0: all */
    const char *textfile; /* NULL: standard output */
    double interval;      /* > 0: write the textfile again every this many seconds */
    int help;             /* --help was given and answered: do nothing more */
} cmd_metrics_args;

/* Parses `ndf metrics`'s options (also `ndf ctl metrics`'s) into *a.
 * Returns EXIT_OK, or the exit code after saying why (CMD_REFUSED for a
 * --textfile sent to a server). */
int cmd_metrics_options(cmd_ctx *c, int argc, char **argv, cmd_metrics_args *a);
/* EXIT_OK when `path`, the value of option `opt`, can be a textfile
 * collector's file (it ends in .prom), else EXIT_USAGE after saying why. */
int cmd_metrics_check_textfile(cmd_ctx *c, const char *opt, const char *path);
/* Writes the exposition `text` on c->out (`path` NULL) or atomically over
 * `path` (mode 0644, through a temporary file in its directory).  Returns
 * the exit code, after saying why it is not EXIT_OK. */
int cmd_metrics_write(cmd_ctx *c, const char *path, const char *text, size_t len);
/* Sleeps `seconds`; returns 0, or -1 as soon as a signal armed by
 * cmd_signals_arm() came. */
int cmd_metrics_sleep(double seconds);

/* `ndf ctl metrics`'s exposition (the served one and the server's
 * counters) from the server at `socket` into `sb` (cmd_ctl.c).  Returns
 * EXIT_OK or the served command's exit code; EXIT_UNAVAILABLE, with
 * ndf_server_up 0 alone in `sb`, when no server answers (said on c->err). */
int cmd_ctl_metrics(cmd_ctx *c, const char *socket, double window, strbuf *sb);
/* The socket `ndf ctl` reaches by default: server.socket of the
 * configuration (read even when it has errors).  NULL when none is set;
 * caller frees. */
char *cmd_ctl_socket(cmd_ctx *c);

/* The handlers' entries, each beside its handler in cmd_*.c. */
extern const cmd_entry cmd_plugins_entry, cmd_inspect_entry;              /* cmd_plugins.c */
extern const cmd_entry cmd_check_config_entry, cmd_config_entry;          /* cmd_config.c */
extern const cmd_entry cmd_list_entry, cmd_show_entry, cmd_similar_entry; /* cmd_patterns.c */
extern const cmd_entry cmd_run_entry, cmd_batch_entry;                    /* cmd_run.c */
extern const cmd_entry cmd_delegate_entry;                                /* cmd_delegate.c */
extern const cmd_entry cmd_redrive_entry;                                 /* cmd_redrive.c */
extern const cmd_entry cmd_rollback_entry;                                /* cmd_rollback.c */
extern const cmd_entry cmd_runs_entry, cmd_status_entry, cmd_logs_entry, cmd_backup_entry,
    cmd_restore_entry; /* cmd_history.c */
extern const cmd_entry cmd_record_entry; /* cmd_record.c */
extern const cmd_entry cmd_wait_entry;   /* cmd_wait.c */
extern const cmd_entry cmd_submit_entry;  /* cmd_submit.c */
extern const cmd_entry cmd_workers_entry; /* cmd_workers.c */
extern const cmd_entry cmd_define_entry, cmd_undefine_entry, cmd_edit_entry, cmd_setting_entry,
    cmd_definitions_entry; /* cmd_define.c */
extern const cmd_entry cmd_export_entry, cmd_cleanup_entry, cmd_reset_stats_entry,
    cmd_analytics_entry, cmd_monitor_entry;            /* cmd_storage.c */
extern const cmd_entry cmd_serve_entry, cmd_ctl_entry; /* cmd_serve.c */
extern const cmd_entry cmd_plan_entry;                 /* cmd_plan.c */
extern const cmd_entry cmd_graph_entry;                /* cmd_graph.c */
extern const cmd_entry cmd_test_step_entry;            /* cmd_teststep.c */
extern const cmd_entry cmd_new_plugin_entry;           /* cmd_newplugin.c */
extern const cmd_entry cmd_metrics_entry;              /* cmd_metrics.c */

#endif
