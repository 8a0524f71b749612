/* The plugin scanner's parent side: spawns `ndf __scan-plugin FILE`, reads
 * its report with a deadline, turns a crash, exit or hang into a quarantine
 * verdict, and keeps verdicts by content hash in a directory.  The child's
 * side is loader_scan_child() (loader.c), which writes the report. */
#include "build-config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ndf/sdk.h>

#include "plugin/scanner.h"
#include "base/fsutil.h"
#include "base/util.h"

extern char **environ;

/* A report larger than this is no report: the rest is read and dropped. */
#define REPORT_MAX 65536

static const char *scan_program;
static scanner_hooks scan_hooks;

void scanner_set_program(const char *program, const scanner_hooks *hooks)
{
    scan_program = program;
    if (hooks)
        scan_hooks = *hooks;
    else
        memset(&scan_hooks, 0, sizeof scan_hooks);
}

const char *scanner_program(void)
{
    return scan_program;
}

char *scanner_verdict_path(const char *verdict_dir, const char *hash)
{
    return xasprintf("%s/%s", verdict_dir, hash);
}

int scanner_report(int fd, const char *key, const char *value)
{
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "%s %s\n", key, value ? value : "");
    for (size_t i = 0; i + 1 < sb.len; i++)
        if (sb.buf[i] == '\n' || sb.buf[i] == '\r')
            sb.buf[i] = ' ';
    int rc = fs_write_all(fd, sb.buf, sb.len);
    sb_free(&sb);
    return rc;
}

/* ---- the verdict directory ----
 *
 * One file per build, named by its sha-256: a first line
 *   ok|quarantined UID GID MODE NDF-VERSION ABI-MAJOR.ABI-MINOR STATUS
 * and, for a quarantine, the message on the second.  The owner and mode of
 * the installed file are part of the key: an operator who fixes them, or a
 * different ndf, scans again. */

static void verdict_key(strbuf *sb, const struct stat *st)
{
    sb_printf(sb, "%lu %lu %o %s %d.%d", (unsigned long)st->st_uid, (unsigned long)st->st_gid,
              (unsigned)(st->st_mode & 07777), PACKAGE_VERSION, NDF_ABI_MAJOR, NDF_ABI_MINOR);
}

/* What a quarantine message ends with when it is shown: built from the
 * directory in use, never kept in the file (a copied or moved directory
 * would name the old one). */
#define DELETE_HINT " (to scan this build again, delete "

static void add_delete_hint(scan_result *r, const char *dir, const char *hash)
{
    if (r->verdict != SCAN_QUARANTINED || !r->message || !dir || !hash || !*hash)
        return;
    char *vp = scanner_verdict_path(dir, hash);
    char *m = xasprintf("%s%s%s)", r->message, DELETE_HINT, vp);
    free(vp);
    free(r->message);
    r->message = m;
}

/* An "ok" verdict skips the scan, so a file the directory's owner did not
 * write is no verdict: the directory is checked once (the loader), each
 * file as it is opened, since a file can be linked or left in a directory
 * that was once looser.  Returns NULL or why it is refused. */
static const char *verdict_file_refusal(const struct stat *vst)
{
    if (!S_ISREG(vst->st_mode))
        return "not a regular file";
    if (vst->st_uid != geteuid())
        return "not owned by the user running ndf";
    if (vst->st_mode & 022)
        return "writable by group or others";
    return NULL;
}

static int verdict_read(const char *dir, const char *hash, const struct stat *st,
                        scan_result *out)
{
    char *path = scanner_verdict_path(dir, hash);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP)
            log_msg(NDF_LOG_WARN,
                    "plugin scan verdict %s ignored (a symbolic link); scanning "
                    "again",
                    path);
        free(path);
        return 0;
    }
    struct stat vst;
    const char *bad = fstat(fd, &vst) != 0 ? strerror(errno) : verdict_file_refusal(&vst);
    if (bad) {
        log_msg(NDF_LOG_WARN, "plugin scan verdict %s ignored (%s); scanning again", path, bad);
        free(path);
        close(fd);
        return 0;
    }
    free(path);
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    char *nl = strchr(buf, '\n');
    if (!nl)
        return 0;
    *nl = '\0';
    strbuf key;
    sb_init(&key);
    verdict_key(&key, st);
    int found = 0;
    const char *rest = NULL;
    int status = 0;
    if (strncmp(buf, "ok ", 3) == 0)
        rest = buf + 3;
    else if (strncmp(buf, "quarantined ", 12) == 0)
        rest = buf + 12;
    size_t klen = key.len;
    if (rest && strncmp(rest, key.buf, klen) == 0 && rest[klen] == ' ' &&
        sscanf(rest + klen + 1, "%d", &status) == 1) {
        found = 1;
        out->cached = 1;
        if (buf[0] == 'o') {
            out->verdict = SCAN_OK;
            out->status = 0;
        } else {
            char *end = strchr(nl + 1, '\n');
            if (end)
                *end = '\0';
            out->verdict = SCAN_QUARANTINED;
            out->status = status < 0 ? status : NDF_ERR_EXECUTION;
            /* verdicts written by earlier builds kept the hint, path and all */
            char *hint = strstr(nl + 1, DELETE_HINT);
            if (hint)
                *hint = '\0';
            out->message = xstrdup(nl[1] ? nl + 1 : "quarantined (no reason kept)");
        }
    }
    sb_free(&key);
    return found;
}

static void verdict_write(const char *dir, const char *hash, const struct stat *st,
                          const scan_result *r)
{
    /* The loader made and checked `dir`. */
    strbuf sb;
    sb_init(&sb);
    sb_puts(&sb, r->verdict == SCAN_OK ? "ok " : "quarantined ");
    verdict_key(&sb, st);
    sb_printf(&sb, " %d\n", r->status);
    if (r->verdict == SCAN_QUARANTINED)
        sb_printf(&sb, "%s\n", r->message);
    if (fs_replace(dir, hash, sb.buf, sb.len, 0600) != NDF_OK) {
        /* A full disk costs every later command a scan: say it, once. */
        static atomic_int warned;
        if (!atomic_exchange(&warned, 1))
            log_msg(NDF_LOG_WARN,
                    "plugin scan verdicts are not kept, so every command scans each plugin "
                    "again: %s",
                    err_msg());
        else
            log_msg(NDF_LOG_DEBUG, "plugin scan verdict not kept: %s", err_msg());
    }
    sb_free(&sb);
}

/* A temporary file this old belongs to no live write (a write takes
 * milliseconds): its writer was killed between create and rename. */
#define STALE_TMP_SECONDS 60

void scanner_sweep_verdicts(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        /* fs_atomic's names: ".HASH.tmp-XXXXXXXX" */
        const char *t = e->d_name[0] == '.' ? strstr(e->d_name, ".tmp-") : NULL;
        if (!t || t == e->d_name || strlen(t) != 13)
            continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && now - st.st_mtime > STALE_TMP_SECONDS)
            unlinkat(dfd, e->d_name, 0);
    }
    closedir(d);
}

/* ---- one scan ---- */

static double scan_timeout(double timeout)
{
    if (timeout > 0)
        return timeout;
    const char *e = getenv("NDF_SCAN_TIMEOUT");
    if (e && *e) {
        char *end;
        double v = strtod(e, &end);
        if (*end == '\0' && v > 0 && v < 86400)
            return v;
    }
    return SCANNER_DEFAULT_TIMEOUT;
}

static const char *sig_name(int sig)
{
    const char *n = sigabbrev_np(sig);
    return n ? n : "?";
}

/* The value of the last line "KEY VALUE" in `report`, or NULL. */
static const char *report_get(const char *report, const char *key, char *buf, size_t cap)
{
    size_t klen = strlen(key);
    const char *found = NULL;
    for (const char *s = report; s && *s;) {
        const char *eol = strchr(s, '\n');
        if (!eol)
            break; /* a line cut short by a crash is no line */
        if ((size_t)(eol - s) >= klen && strncmp(s, key, klen) == 0 &&
            (s[klen] == ' ' || s + klen == eol)) {
            const char *v = s[klen] == ' ' ? s + klen + 1 : s + klen;
            size_t n = (size_t)(eol - v) < cap - 1 ? (size_t)(eol - v) : cap - 1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            found = buf;
        }
        s = eol + 1;
    }
    return found;
}

static void fail_start(scan_result *out, const char *program, int e)
{
    out->verdict = SCAN_REFUSED;
    out->status = NDF_ERR_EXECUTION;
    out->message = xasprintf("the plugin scanner (%s) could not be started: %s; it is not "
                             "loaded unscanned (set plugins.scan = false to load plugins "
                             "without scanning)",
                             program, strerror(e));
}

/* Moves `fd` above the descriptors the child's file actions write, so that
 * dup2 onto SCANNER_FD never meets one of the pipe's own ends. */
static int lift_fd(int fd)
{
    if (fd > SCANNER_FD)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, SCANNER_FD + 1);
    close(fd);
    return n;
}

int scanner_spawn(char *const argv[], const int *fds, int nfds, int quiet, pid_t *pid)
{
    return scanner_spawn_env(argv, fds, nfds, quiet, environ, pid);
}

char **scanner_env_token(const char *token, char **var)
{
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = xcalloc(nenv + 2, sizeof *envp);
    size_t m = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "NDF_STEP=", 9) != 0)
            envp[m++] = environ[i];
    *var = xasprintf("NDF_STEP=%s", token);
    envp[m++] = *var;
    envp[m] = NULL;
    return envp;
}

int scanner_spawn_env(char *const argv[], const int *fds, int nfds, int quiet, char *const envp[],
                      pid_t *pid)
{
    return scanner_spawn_err(argv, fds, nfds, quiet, -1, envp, pid);
}

int scanner_spawn_err(char *const argv[], const int *fds, int nfds, int quiet, int err_fd,
                      char *const envp[], pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    /* What a plugin prints while it is scanned would be printed again when
     * the host loads it: the scan's own output goes nowhere. */
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (err_fd >= 0)
            posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
        else
            posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    } else {
        /* The host's stdout is its report (ndf run --json): never the child's. */
        posix_spawn_file_actions_adddup2(&fa, 2, 1);
    }
    for (int i = 0; i < nfds; i++)
        posix_spawn_file_actions_adddup2(&fa, fds[i], SCANNER_FD + i);
    posix_spawnattr_init(&attr);
    sigset_t sigs;
    sigemptyset(&sigs);
    posix_spawnattr_setsigmask(&attr, &sigs);
    sigfillset(&sigs);
    sigdelset(&sigs, SIGKILL);
    sigdelset(&sigs, SIGSTOP);
    posix_spawnattr_setsigdefault(&attr, &sigs);
    /* Its own group: whatever the plugin forks is killed with it. */
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    *pid = 0;
    if (scan_hooks.begin)
        scan_hooks.begin();
    int e = posix_spawn(pid, argv[0], &fa, &attr, argv, envp);
    if (scan_hooks.end)
        scan_hooks.end(e ? 0 : *pid);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return e;
}

void scanner_reaped(pid_t pid)
{
    if (scan_hooks.reaped)
        scan_hooks.reaped(pid);
}

int scanner_lift_fd(int fd)
{
    return lift_fd(fd);
}

scan_verdict scanner_scan(const char *file, const char *hash, const struct stat *st,
                          const char *verdict_dir, double timeout, scan_result *out)
{
    memset(out, 0, sizeof *out);
    if (verdict_dir && hash && *hash && verdict_read(verdict_dir, hash, st, out)) {
        add_delete_hint(out, verdict_dir, hash);
        return out->verdict;
    }
    const char *program = scan_program;
    timeout = scan_timeout(timeout);
    double t0 = now_mono();

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        fail_start(out, program, errno);
        return out->verdict;
    }
    pfd[0] = lift_fd(pfd[0]);
    pfd[1] = lift_fd(pfd[1]);
    if (pfd[0] < 0 || pfd[1] < 0) {
        int e = errno;
        if (pfd[0] >= 0)
            close(pfd[0]);
        if (pfd[1] >= 0)
            close(pfd[1]);
        fail_start(out, program, e);
        return out->verdict;
    }
    char *argv[] = {(char *)program, (char *)SCANNER_ARG, (char *)file, NULL};
    /* The scanner's environment carries a token of its own, which whatever
     * init starts inherits: how what left its process group is found. */
    static atomic_ulong scans;
    char token[48];
    snprintf(token, sizeof token, "%ld.s%lu", (long)getpid(), atomic_fetch_add(&scans, 1) + 1);
    char *tokvar;
    char **envp = scanner_env_token(token, &tokvar);
    pid_t pid = 0;
    int e = scanner_spawn_env(argv, &pfd[1], 1, 1, envp, &pid);
    free(tokvar);
    free(envp);
    close(pfd[1]);
    if (e) {
        close(pfd[0]);
        fail_start(out, program, e);
        return out->verdict;
    }

    strbuf rep;
    sb_init(&rep);
    int timed_out = 0;
    double deadline = t0 + timeout;
    for (;;) {
        double left = deadline - now_mono();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        /* A tick: a process init started may hold the pipe open after the
         * scanner itself ended, so the end of the scanner is looked for
         * too (its report is whole by then). */
        int n = poll(&p, 1, left > 0.05 ? 50 : (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            siginfo_t si0;
            memset(&si0, 0, sizeof si0);
            if (waitid(P_PID, (id_t)pid, &si0, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                si0.si_pid == pid) {
                struct pollfd q = {.fd = pfd[0], .events = POLLIN};
                char buf[4096];
                ssize_t r;
                while (poll(&q, 1, 0) > 0 && (r = read(pfd[0], buf, sizeof buf)) > 0)
                    if (rep.len + (size_t)r <= REPORT_MAX)
                        sb_add(&rep, buf, (size_t)r);
                break;
            }
        }
        if (n <= 0)
            continue;
        char buf[4096];
        ssize_t r = read(pfd[0], buf, sizeof buf);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        if (rep.len + (size_t)r <= REPORT_MAX)
            sb_add(&rep, buf, (size_t)r);
    }
    close(pfd[0]);
    /* The pipe may close before the child ends (a plugin can close any
     * descriptor): its exit is waited for within the same deadline.
     * WNOWAIT keeps the pid (and so the group's id) ours until the group
     * is killed: nothing init started outlives its scan. */
    siginfo_t si;
    for (;;) {
        if (timed_out) {
            kill(-pid, SIGKILL);
            break;
        }
        memset(&si, 0, sizeof si);
        int wr = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if ((wr == 0 && si.si_pid == pid) || (wr < 0 && errno == ECHILD))
            break;
        if (now_mono() >= deadline) {
            timed_out = 1;
            continue;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
        ;
    kill(-pid, SIGKILL);
    int wst = 0;
    pid_t w;
    while ((w = waitpid(pid, &wst, 0)) < 0 && errno == EINTR)
        ;
    scanner_reaped(pid);
    if (scan_hooks.kill_token)
        scan_hooks.kill_token(token);
    out->seconds = now_mono() - t0;

    char stage[64], loaded[16], status[32], reason[2048], end[8];
    const char *r = rep.buf ? rep.buf : "";
    const char *stg = report_get(r, "stage", stage, sizeof stage);
    const char *ld = report_get(r, "loaded", loaded, sizeof loaded);
    const char *stt = report_get(r, "status", status, sizeof status);
    const char *why = report_get(r, "reason", reason, sizeof reason);
    int ended = report_get(r, "end", end, sizeof end) != NULL;
    const char *what = !stg                      ? "start-up"
                       : strcmp(stg, "load") == 0 ? "loading (its constructors)"
                       : strcmp(stg, "init") == 0 ? "init"
                       : strcmp(stg, "fini") == 0 ? "fini"
                                                  : "unloading (its destructors)";
    char abi[64], text[1024];
    unsigned amaj, amin;
    size_t dsize;
    if (report_get(r, "abi", abi, sizeof abi) &&
        sscanf(abi, "%u %u %zu", &amaj, &amin, &dsize) == 3) {
        out->abi_major = amaj;
        out->abi_minor = amin;
        out->desc_size = dsize;
    }
    if (report_get(r, "name", text, sizeof text))
        out->name = xstrdup(text);
    if (report_get(r, "version", text, sizeof text))
        out->version = xstrdup(text);
    if (report_get(r, "license", text, sizeof text))
        out->license = xstrdup(text);
    if (report_get(r, "description", text, sizeof text))
        out->description = xstrdup(text);
    strbuf msg;
    sb_init(&msg);
    if (timed_out) {
        sb_printf(&msg, "its %s did not return within %.3g s in the plugin scanner (pid %ld, "
                        "killed)",
                  what, timeout, (long)pid);
    } else if (w == pid && WIFSIGNALED(wst)) {
        sb_printf(&msg, "its %s crashed the plugin scanner (pid %ld) with signal %d (SIG%s)",
                  what, (long)pid, WTERMSIG(wst), sig_name(WTERMSIG(wst)));
    } else if (w == pid && WIFEXITED(wst) && (!ended || WEXITSTATUS(wst) != 0)) {
        sb_printf(&msg, "its %s ended the plugin scanner (pid %ld) with exit status %d (a plugin "
                        "must never exit the process)",
                  what, (long)pid, WEXITSTATUS(wst));
    } else if (w != pid && !ended) {
        sb_printf(&msg, "the plugin scanner (pid %ld) ended during its %s without a report "
                        "(its exit status was lost: %s)",
                  (long)pid, what, strerror(errno));
    }
    if (msg.len) {
        out->verdict = SCAN_QUARANTINED;
        out->status = NDF_ERR_EXECUTION;
        sb_printf(&msg,
                  ", so this build (sha256 %.16s) is never loaded: fix the plugin and "
                  "install a new build, or remove the file",
                  hash ? hash : "?");
        out->message = sb_steal(&msg);
    } else if (!ld || strcmp(ld, "1") != 0) {
        out->verdict = SCAN_REFUSED;
        out->status = stt ? atoi(stt) : NDF_ERR_INVALID;
        if (out->status >= 0)
            out->status = NDF_ERR_INVALID;
        out->message = xstrdup(why ? why : "refused by the plugin scanner (no reason given)");
    } else {
        out->verdict = SCAN_OK;
    }
    sb_free(&msg);
    sb_free(&rep);
    /* A refusal is not kept: it names a cause (a missing file, the
     * environment) that may be fixed without a new build. */
    if (verdict_dir && hash && *hash && out->verdict != SCAN_REFUSED) {
        verdict_write(verdict_dir, hash, st, out);
        add_delete_hint(out, verdict_dir, hash);
    }
    return out->verdict;
}
