/* Processes started by steps: posix_spawn into a new process group, pipes
 * for stdin/stdout/stderr (all O_CLOEXEC, so concurrent spawns never leak
 * descriptors into each other's children), a poll loop that captures the
 * output and watches the deadline, and a group kill that leaves nothing
 * behind. */
#include "build-config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/context.h"
#include "exec/record.h"
#include "exec/process.h"
#include "base/util.h"

extern char **environ;

/* A member of an ndf_spawn the caller's build knows. */
#define OPT_HAS(o, member) ((o)->size >= offsetof(ndf_spawn, member) + sizeof((o)->member))
#define RES_HAS(r, member) \
    ((r)->size >= offsetof(ndf_spawn_result, member) + sizeof((r)->member))

char *spawn_attr_env_name(const char *key)
{
    size_t n = strlen(key);
    char *s = xmalloc(sizeof "NDF_ATTR_" + n);
    memcpy(s, "NDF_ATTR_", 9);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        s[9 + i] = isalnum(c) && c < 0x80 ? (char)toupper(c) : '_';
    }
    s[9 + n] = '\0';
    return s;
}

void spawn_value_text(const ndf_value *v, strbuf *sb)
{
    switch (v->type) {
    case NDF_VALUE_STRING: sb_puts(sb, v->u.s); break;
    case NDF_VALUE_INT: sb_printf(sb, "%" PRId64, v->u.i); break;
    case NDF_VALUE_NUMBER: sb_printf(sb, "%.17g", v->u.n); break;
    case NDF_VALUE_BOOL: sb_puts(sb, v->u.b ? "true" : "false"); break;
    case NDF_VALUE_LIST:
    case NDF_VALUE_GROUP:
        for (size_t i = 0; i < v->u.c.count; i++) {
            if (i)
                sb_add(sb, ",", 1);
            spawn_value_text(v->u.c.items[i], sb);
        }
        break;
    default: break;
    }
}

typedef struct envlist {
    char **v;
    size_t n, cap;
} envlist;

static void env_push(envlist *e, char *s)
{
    if (e->n + 2 > e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->v = xrealloc(e->v, e->cap * sizeof *e->v);
    }
    e->v[e->n++] = s;
    e->v[e->n] = NULL;
}

/* 1 when NAME=... entry `s` sets the same name as one of `set`. */
static int env_overridden(const char *s, char **set, size_t nset)
{
    const char *eq = strchr(s, '=');
    size_t len = eq ? (size_t)(eq - s) : strlen(s);
    for (size_t i = 0; i < nset; i++)
        if (strncmp(set[i], s, len) == 0 && set[i][len] == '=')
            return 1;
    return 0;
}

/* The child's environment: the host's, overridden by the context's NDF_*
 * variables, overridden by opts->env.  Every string is owned by the list
 * (freed with env_free); entries from `environ` are copied so a concurrent
 * change of the host's environment cannot pull them away. */
static void env_build(envlist *e, ndf_exec *node, const char *const *extra)
{
    envlist own = {0};
    record *r = node->rec;
    const ndf_context *c = r->ctx;
    env_push(&own, xasprintf("NDF_DOMAIN=%s", c->domain));
    env_push(&own, xasprintf("NDF_AGENT_TYPE=%s", c->agent_type));
    env_push(&own, xasprintf("NDF_PRIORITY=%d", c->priority));
    env_push(&own, xasprintf("NDF_EXECUTION_ID=%s", r->id));
    for (size_t i = 0; c->attrs && i < c->attrs->u.c.count; i++) {
        const ndf_value *a = c->attrs->u.c.items[i];
        if (!a->name)
            continue;
        strbuf sb;
        sb_init(&sb);
        char *name = spawn_attr_env_name(a->name);
        sb_printf(&sb, "%s=", name);
        free(name);
        spawn_value_text(a, &sb);
        env_push(&own, sb_steal(&sb));
    }
    size_t nextra = 0;
    while (extra && extra[nextra])
        nextra++;
    for (char **p = environ; p && *p; p++)
        if (!env_overridden(*p, own.v, own.n) && !env_overridden(*p, (char **)extra, nextra))
            env_push(e, xstrdup(*p));
    for (size_t i = 0; i < own.n; i++)
        if (!env_overridden(own.v[i], (char **)extra, nextra))
            env_push(e, own.v[i]);
        else
            free(own.v[i]);
    for (size_t i = 0; i < nextra; i++)
        if (strchr(extra[i], '='))
            env_push(e, xstrdup(extra[i]));
    free(own.v);
    if (!e->v)
        e->v = xcalloc(1, sizeof *e->v);
}

static void env_free(envlist *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Reads what is available from *fd into the node; closes it at EOF or on
 * error.  Returns 1 when something was read. */
static int pump_read(int *fd, ndf_exec *node, record_stream s, size_t limit)
{
    char buf[16384];
    int got = 0;
    for (;;) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) {
            node_append(node, s, buf, (size_t)n, limit);
            got = 1;
            if ((size_t)n < sizeof buf)
                return got;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return got;
        close_fd(fd);
        return got;
    }
}

/* Whether any member of the group still exists.  Members orphaned by the
 * leader's death are reparented to us (we are a child subreaper, see
 * become_subreaper) and their zombies reaped here, so a zombie never passes
 * for a live member. */
static int group_alive(pid_t pgid)
{
    while (waitpid(-pgid, NULL, WNOHANG) > 0)
        ;
    return kill(-pgid, 0) == 0 || errno == EPERM;
}

/* Orphans of a step's process tree are reparented to this process instead
 * of to init (which, in a container, may never reap them), so that the
 * group can be seen to be gone. */
static void become_subreaper(void)
{
#ifdef PR_SET_CHILD_SUBREAPER
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#endif
}

int spawn_run(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result)
{
    if (result && RES_HAS(result, exit_status)) {
        result->exit_status = -1;
        if (RES_HAS(result, term_signal))
            result->term_signal = 0;
        if (RES_HAS(result, wall_s))
            result->wall_s = 0;
    }
    if (!node || !opts || !OPT_HAS(opts, argv) || !opts->argv || !opts->argv[0] ||
        !*opts->argv[0])
        return err_set(NDF_ERR_INVALID, "spawn: no command given");
    const char *const *extra = OPT_HAS(opts, env) ? opts->env : NULL;
    const char *cwd = OPT_HAS(opts, cwd) ? opts->cwd : NULL;
    const char *input = OPT_HAS(opts, input_len) ? opts->input : NULL;
    size_t input_len = input ? opts->input_len : 0;
    double grace = OPT_HAS(opts, grace_s) && opts->grace_s > 0 ? opts->grace_s
                                                                : node->rec->kill_grace;
    size_t limit = OPT_HAS(opts, output_limit) && opts->output_limit ? opts->output_limit
                                                                      : RECORD_OUTPUT_LIMIT;
    const char *prog = opts->argv[0];
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, become_subreaper);

    int rc = 0, status = 0;
    int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1}, pidfd = -1;
    envlist env = {0};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t sigs, oldmask;
    int blocked_pipe = 0;

    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || (input && pipe2(in, O_CLOEXEC))) {
        rc = err_set(NDF_ERR_IO, "cannot run '%s': pipe: %s", prog, strerror(errno));
        close_fd(&out[0]), close_fd(&out[1]), close_fd(&err[0]), close_fd(&err[1]);
        close_fd(&in[0]), close_fd(&in[1]);
        return rc;
    }
    env_build(&env, node, extra);
    posix_spawn_file_actions_init(&fa);
    if (input)
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (cwd && *cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    posix_spawnattr_init(&attr);
    sigemptyset(&sigs);
    posix_spawnattr_setsigmask(&attr, &sigs);
    /* Signals the host ignores (SIGPIPE) must not stay ignored in the child. */
    sigfillset(&sigs);
    sigdelset(&sigs, SIGKILL);
    sigdelset(&sigs, SIGSTOP);
    posix_spawnattr_setsigdefault(&attr, &sigs);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);

    double t0 = now_mono();
    pid_t pid;
    int e = posix_spawnp(&pid, prog, &fa, &attr, (char *const *)opts->argv, env.v);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    env_free(&env);
    close_fd(&out[1]);
    close_fd(&err[1]);
    close_fd(&in[0]);
    if (e) {
        close_fd(&out[0]), close_fd(&err[0]), close_fd(&in[1]);
        if (cwd && *cwd && (e == ENOENT || e == ENOTDIR || e == EACCES) &&
            access(cwd, X_OK) != 0)
            return err_set(NDF_ERR_EXECUTION, "cannot run '%s': working directory '%s': %s",
                           prog, cwd, strerror(errno));
        return err_set(NDF_ERR_EXECUTION, "cannot run '%s': %s", prog, strerror(e));
    }
    pidfd = pidfd_open_(pid);
    set_nonblock(out[0]);
    set_nonblock(err[0]);
    if (input) {
        set_nonblock(in[1]);
        /* A child that exits without reading its input must cost this
         * thread an EPIPE, not the process a SIGPIPE. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &sigs, &oldmask);
        blocked_pipe = 1;
        if (input_len == 0)
            close_fd(&in[1]);
    }
    size_t in_off = 0;

    int reaped = 0, stop_cause = 0, term_sent = 0, kill_sent = 0, leftovers = 0;
    double kill_at = INFINITY, give_up = INFINITY;
    for (;;) {
        double now = now_mono();
        if (!stop_cause && !reaped) {
            stop_cause = node_stop_status(node);
        }
        if (stop_cause && !term_sent) {
            kill(-pid, SIGTERM);
            term_sent = 1;
            kill_at = now + grace;
        }
        if (term_sent && !kill_sent && now >= kill_at) {
            kill(-pid, SIGKILL);
            kill_sent = 1;
            /* Killed processes die at once; members still listed after this
             * are zombies their new parent has not reaped. */
            give_up = now + 1.0;
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                reaped = 1;
            } else if (w < 0 && errno != EINTR) {
                rc = err_set(NDF_ERR_IO, "waiting for '%s': %s", prog, strerror(errno));
                break;
            }
        }
        if (reaped) {
            close_fd(&pidfd);
            if (out[0] >= 0)
                pump_read(&out[0], node, REC_STDOUT, limit);
            if (err[0] >= 0)
                pump_read(&err[0], node, REC_STDERR, limit);
            if (!group_alive(pid) || now >= give_up)
                break;
            if (!term_sent) {
                /* The leader exited and left members of its group behind:
                 * they end with the step. */
                leftovers = 1;
                kill(-pid, SIGTERM);
                term_sent = 1;
                kill_at = now + grace;
            }
        }
        struct pollfd pf[4];
        int np = 0, i_out = -1, i_err = -1, i_in = -1;
        if (out[0] >= 0)
            i_out = np, pf[np++] = (struct pollfd){.fd = out[0], .events = POLLIN};
        if (err[0] >= 0)
            i_err = np, pf[np++] = (struct pollfd){.fd = err[0], .events = POLLIN};
        if (in[1] >= 0)
            i_in = np, pf[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
        if (pidfd >= 0)
            pf[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        double wake = INFINITY;
        if (!stop_cause)
            wake = node->deadline;
        if (term_sent && !kill_sent)
            wake = fmin(wake, kill_at);
        double ms;
        if (reaped || pidfd < 0)
            ms = 10; /* group members and children without a pidfd: poll */
        else
            ms = 100; /* cancellation is a flag, read this often */
        if (isfinite(wake))
            ms = fmin(ms, fmax(0, (wake - now) * 1000.0 + 1));
        int n = poll(pf, (nfds_t)np, (int)ms);
        if (n < 0 && errno != EINTR) {
            rc = err_set(NDF_ERR_IO, "waiting for '%s': poll: %s", prog, strerror(errno));
            break;
        }
        if (n <= 0)
            continue;
        if (i_out >= 0 && pf[i_out].revents)
            pump_read(&out[0], node, REC_STDOUT, limit);
        if (i_err >= 0 && pf[i_err].revents)
            pump_read(&err[0], node, REC_STDERR, limit);
        if (i_in >= 0 && pf[i_in].revents) {
            ssize_t w = write(in[1], input + in_off, input_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off >= input_len)
                close_fd(&in[1]);
        }
    }
    if (!reaped && rc) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        reaped = 1;
    }
    close_fd(&out[0]);
    close_fd(&err[0]);
    close_fd(&in[1]);
    close_fd(&pidfd);
    if (blocked_pipe) {
        struct timespec zero = {0, 0};
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGPIPE);
        while (sigtimedwait(&sigs, NULL, &zero) > 0)
            ;
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    }
    double wall = now_mono() - t0;
    if (rc)
        return rc;

    int code = -1, sig = 0;
    if (WIFEXITED(status))
        code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        sig = WTERMSIG(status);
    if (result) {
        if (RES_HAS(result, exit_status))
            result->exit_status = code;
        if (RES_HAS(result, term_signal))
            result->term_signal = sig;
        if (RES_HAS(result, wall_s))
            result->wall_s = wall;
    }
    if (leftovers)
        log_msg(2, "%s: '%s' left processes in its group; they were stopped", node->name,
                prog);
    if (stop_cause) {
        const char *why = stop_cause == NDF_ERR_CANCELLED ? "cancelled" : "timeout";
        if (sig)
            return err_set(stop_cause, "killed by signal %d (%s)", sig, why);
        return err_set(stop_cause, "exited with status %d (%s)", code, why);
    }
    if (sig)
        return err_set(NDF_ERR_EXECUTION, "killed by signal %d", sig);
    if (code != 0)
        return err_set(NDF_ERR_EXECUTION, "exited with status %d", code);
    return NDF_OK;
}
