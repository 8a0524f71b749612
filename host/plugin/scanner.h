/* The plugin scanner: before a build of a plugin is first loaded into the
 * host, a child process (the ndf program itself, started with posix_spawn,
 * never a fork of the threaded host) loads it, runs its init and fini, and
 * reports on a pipe.  A build whose scan crashes, exits or hangs is
 * quarantined by its content hash and never dlopen'd in the host; verdicts
 * are kept in a directory so a known build is scanned once. */
#ifndef NDF_SCANNER_H
#define NDF_SCANNER_H

#include <sys/stat.h>
#include <sys/types.h>

/* Hooks into the host's bookkeeping of its children: a child subreaper
 * reaps zombies that are none of its own, and must not take the scanner's
 * exit status.  `begin` is called before posix_spawn, `end` after it with
 * the pid (0: it failed), `reaped` once the pid is waited for.  Any may be
 * NULL. */
typedef struct scanner_hooks {
    void (*begin)(void);
    void (*end)(pid_t pid);
    void (*reaped)(pid_t pid);
    /* Kills (SIGKILL) and reaps what a scan left outside the scanner's
     * process group (an init that double-forks and calls setsid): every
     * process carrying NDF_STEP=`token`, the scanner's.  May be NULL. */
    void (*kill_token)(const char *token);
} scanner_hooks;

/* Turns scanning on for every loader made afterwards (loader_opts can still
 * turn it off): `program` is what to spawn (the ndf binary, e.g.
 * "/proc/self/exe"), run as `program SCANNER_ARG FILE` with the report pipe
 * on descriptor SCANNER_FD.  NULL turns scanning off (the default: test
 * programs that are not ndf load in process as before).  Not thread-safe:
 * call it at start-up. */
void scanner_set_program(const char *program, const scanner_hooks *hooks);
/* The program set, or NULL. */
const char *scanner_program(void);

#define SCANNER_ARG "__scan-plugin"
#define SCANNER_FD 3
/* Seconds a scan may take when neither the configuration nor
 * $NDF_SCAN_TIMEOUT says. */
#define SCANNER_DEFAULT_TIMEOUT 10.0

typedef enum scan_verdict {
    SCAN_OK = 0,      /* init and fini returned; load it */
    SCAN_REFUSED,     /* the scanner's loader refused it: `status`, `message` */
    SCAN_QUARANTINED, /* crashed, exited or hung: never load this build */
} scan_verdict;

typedef struct scan_result {
    scan_verdict verdict;
    int status;    /* an ndf_status for SCAN_REFUSED/QUARANTINED */
    char *message; /* why (no file name), for SCAN_REFUSED/QUARANTINED; caller frees */
    int cached;    /* the verdict came from the verdict directory */
    double seconds; /* how long the scan took (0 when cached) */
    /* What the child read of the descriptor (0 and NULL when it did not
     * get that far); the strings are the caller's to free. */
    unsigned abi_major, abi_minor;
    size_t desc_size;
    char *name, *version, *license, *description;
} scan_result;

/* Scans `file` (the private copy about to be loaded, whose sha-256 is
 * `hash`; `st` is the stat of the file as installed, whose owner and mode
 * are part of the verdict's key).  `verdict_dir` (may be NULL: nothing is
 * cached) must exist and have been checked by the caller; a verdict file in
 * it is used only when it is a regular file owned by the
 * effective user and writable by nobody else (else it is scanned again, with
 * a warning).  `timeout` <= 0 means the default.
 * Fills `out`; returns its verdict.  Never fails: a scanner that cannot be
 * started refuses the build with that reason (not quarantined). */
scan_verdict scanner_scan(const char *file, const char *hash, const struct stat *st,
                          const char *verdict_dir, double timeout, scan_result *out);

/* Removes the temporary files that writers killed mid-write left in
 * `verdict_dir` (those older than a minute).  Best effort, silent. */
void scanner_sweep_verdicts(const char *verdict_dir);

/* The verdict file of `hash` in `verdict_dir`; caller frees. */
char *scanner_verdict_path(const char *verdict_dir, const char *hash);

/* environ without its NDF_STEP, plus "NDF_STEP=token" (in *var): the
 * token a child carries and whatever it starts inherits.  The caller frees
 * the array and *var, not the strings of environ. */
char **scanner_env_token(const char *token, char **var);

/* Starts `argv` (argv[0] is the program) the way the scanner starts its
 * child, for the other helpers that run the ndf program itself (the step
 * workers): stdin from /dev/null, stdout and stderr to /dev/null when
 * `quiet` (else both to the host's stderr), fds[i] as SCANNER_FD + i,
 * default signal dispositions and an empty mask, its own process group,
 * and the hooks of scanner_set_program() around it.  Returns 0 with *pid,
 * or an errno value.  Every fds[i] must be above SCANNER_FD + nfds - 1
 * (scanner_lift_fd does it for one). */
int scanner_spawn(char *const argv[], const int *fds, int nfds, int quiet, pid_t *pid);
/* scanner_spawn with the environment `envp` instead of the host's. */
int scanner_spawn_env(char *const argv[], const int *fds, int nfds, int quiet, char *const envp[],
                      pid_t *pid);
/* scanner_spawn_env with, when `quiet` and `err_fd` >= 0, the child's
 * stderr on `err_fd` (above SCANNER_FD + nfds - 1, like fds) instead of
 * /dev/null. */
int scanner_spawn_err(char *const argv[], const int *fds, int nfds, int quiet, int err_fd,
                      char *const envp[], pid_t *pid);
/* Tells the hooks that `pid` (from scanner_spawn) was waited for. */
void scanner_reaped(pid_t pid);
/* Moves `fd` above SCANNER_FD (close-on-exec); returns the new one, or -1
 * with errno (the old one is closed either way). */
int scanner_lift_fd(int fd);

/* ---- the child's side ---- */

/* Writes one report line "KEY VALUE\n" to `fd` (newlines in the value are
 * replaced by spaces).  Returns 0 or -1. */
int scanner_report(int fd, const char *key, const char *value);

#endif
