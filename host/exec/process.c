/* Processes started by steps: posix_spawn into a new process group, pipes
 * for stdin/stdout/stderr (all O_CLOEXEC, so concurrent spawns never leak
 * descriptors into each other's children), a poll loop that captures the
 * output and watches the deadline, and a group kill that leaves nothing
 * behind.  One run is a small state machine over a `child`: child_start,
 * then child_escalate / child_reap / child_pump until the group is gone,
 * then child_result. */
#include "build-config.h"

#include <ctype.h>
#include <dirent.h>
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/context.h"
#include "exec/cgroup.h"
#include "exec/record.h"
#include "exec/process.h"
#include "base/util.h"

extern char **environ;

/* A member of an ndf_spawn the caller's build knows. */
#define OPT_HAS(o, member) ((o)->size >= offsetof(ndf_spawn, member) + sizeof((o)->member))
#define RES_HAS(r, member) ((r)->size >= offsetof(ndf_spawn_result, member) + sizeof((r)->member))

char *process_attr_env_name(const char *key)
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

void process_value_text(const ndf_value *v, strbuf *sb)
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
            process_value_text(v->u.c.items[i], sb);
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
static void env_build(envlist *e, ndf_exec *node, const char *const *extra, const char *token)
{
    envlist own = {0};
    record *r = node->rec;
    const ndf_context *c = r->ctx;
    env_push(&own, xasprintf("NDF_STEP=%s", token));
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
        char *name = process_attr_env_name(a->name);
        sb_printf(&sb, "%s=", name);
        free(name);
        process_value_text(a, &sb);
        env_push(&own, sb_steal(&sb));
    }
    size_t nextra = 0;
    while (extra && extra[nextra])
        nextra++;
    for (char **p = environ; p && *p; p++)
        if (!env_overridden(*p, own.v, own.n) && !env_overridden(*p, (char **)extra, nextra))
            env_push(e, xstrdup(*p));
    /* NDF_STEP (the first) is how escaped processes are told apart: the
     * step's env cannot override it. */
    env_push(e, own.v[0]);
    for (size_t i = 1; i < own.n; i++)
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
 * group can be seen to be gone, and processes that left the group (setsid,
 * setpgid) can still be found and stopped (see escaped_stop). */
static void become_subreaper(void)
{
#ifdef PR_SET_CHILD_SUBREAPER
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#endif
}

/* ---- leaders and orphans ----
 *
 * As a subreaper this process is the parent of two kinds of children: the
 * leaders process_run started and waits for by pid, and orphans of step
 * trees reparented to it.  Orphans must be reaped by someone (else they
 * stay zombies), but never a leader, whose exit status its run needs.  So
 * leaders are listed while they live, and orphans are reaped only when no
 * spawn is between posix_spawn and the listing of its pid. */

static pthread_mutex_t kids_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *leaders; /* (kids_lock) */
static size_t nleaders, capleaders;
static int spawning; /* (kids_lock) spawns whose pid is not listed yet */

static int is_leader(pid_t pid)
{
    for (size_t i = 0; i < nleaders; i++)
        if (leaders[i] == pid)
            return 1;
    return 0;
}

static void spawn_begin(void)
{
    pthread_mutex_lock(&kids_lock);
    spawning++;
    pthread_mutex_unlock(&kids_lock);
}

/* `pid` 0: the spawn failed. */
static void spawn_end(pid_t pid)
{
    pthread_mutex_lock(&kids_lock);
    spawning--;
    if (pid > 0) {
        if (nleaders == capleaders) {
            capleaders = capleaders ? capleaders * 2 : 16;
            leaders = xrealloc(leaders, capleaders * sizeof *leaders);
        }
        leaders[nleaders++] = pid;
    }
    pthread_mutex_unlock(&kids_lock);
}

static void leader_reaped(pid_t pid)
{
    pthread_mutex_lock(&kids_lock);
    for (size_t i = 0; i < nleaders; i++)
        if (leaders[i] == pid) {
            leaders[i] = leaders[--nleaders];
            break;
        }
    pthread_mutex_unlock(&kids_lock);
}

void process_child_begin(void)
{
    spawn_begin();
}

void process_child_end(pid_t pid)
{
    spawn_end(pid);
}

void process_child_reaped(pid_t pid)
{
    leader_reaped(pid);
}

typedef struct pidlist {
    pid_t *v;
    size_t n, cap;
} pidlist;

static void pid_push(pidlist *l, pid_t p)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = p;
}

/* Appends the pids listed in `path` (a /proc/.../children file). */
static int read_pids(const char *path, pidlist *out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long p;
    while (fscanf(f, "%ld", &p) == 1)
        pid_push(out, (pid_t)p);
    fclose(f);
    return 0;
}

/* The orphans reparented to this process, and the children its main
 * thread started: the kernel hands orphans to a subreaper's first live
 * thread, its main thread, so that thread's children list has them all
 * (leaders started by other threads are in theirs, not read here).  On a
 * kernel without those lists, every child, from a scan of /proc. */
static void children_scan(pidlist *out);

static void children_of_self(pidlist *out)
{
    static int no_lists;
    if (!no_lists) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)getpid());
        if (read_pids(path, out) == 0)
            return;
        no_lists = 1;
    }
    children_scan(out);
}

/* Every child of this process (of any of its threads), from a scan of
 * /proc. */
static void children_scan(pidlist *out)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    pid_t self = getpid();
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')'); /* the name may hold anything */
        long ppid;
        char st;
        if (rp && sscanf(rp + 1, " %c %ld", &st, &ppid) == 2 && ppid == self)
            pid_push(out, (pid_t)atol(de->d_name));
    }
    closedir(d);
}

/* NDF_STEP as this process was started with, read once (a step's token
 * is made while other threads may be reading the environment). */
static char *outer_token;

static void outer_token_read(void)
{
    const char *t = getenv("NDF_STEP");
    if (t && *t)
        outer_token = xstrdup(t);
}

/* Whether process `pid` carries NDF_STEP=`token` in its environment
 * (read from /proc, the first MiB at most: a zombie's is empty). */
static int has_token(pid_t pid, const char *token)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    strbuf sb;
    sb_init(&sb);
    char buf[8192];
    ssize_t n;
    while (sb.len < (1u << 20) && (n = read(fd, buf, sizeof buf)) > 0)
        sb_add(&sb, buf, (size_t)n);
    close(fd);
    char want[PROCESS_TOKEN_MAX + 16];
    int wn = snprintf(want, sizeof want, "NDF_STEP=%s", token);
    int found = 0;
    if (wn < 0 || (size_t)wn >= sizeof want)
        sb.len = 0;
    sb_add(&sb, "", 1); /* the last entry ends even when cut */
    /* A token names the tokens below it as well ("T/..."): the processes
     * a step started inside a step worker (or a nested ndf) carry the
     * worker's token followed by their own. */
    for (size_t i = 0; i < sb.len && !found; i += strlen(sb.buf + i) + 1)
        found = strncmp(sb.buf + i, want, (size_t)wn) == 0 &&
                (sb.buf[i + (size_t)wn] == 0 || sb.buf[i + (size_t)wn] == '/');
    sb_free(&sb);
    return found;
}

int process_kill_token(const char *token)
{
    if (!token || !*token)
        return 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    pid_t self = getpid();
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        pid_t pid = (pid_t)atol(de->d_name);
        char path[64];
        struct stat sb;
        snprintf(path, sizeof path, "/proc/%ld", (long)pid);
        if (pid == self || stat(path, &sb) != 0 || sb.st_uid != geteuid())
            continue;
        if (has_token(pid, token) && kill(pid, SIGKILL) == 0)
            found++;
    }
    closedir(d);
    return found;
}

/* Appends the children of every thread of `pid` (0: this process) to
 * `out`.  -1 when the kernel keeps no children lists. */
static int children_all(pid_t pid, pidlist *out)
{
    char dir[64];
    if (pid)
        snprintf(dir, sizeof dir, "/proc/%ld/task", (long)pid);
    else
        snprintf(dir, sizeof dir, "/proc/self/task");
    DIR *d = opendir(dir);
    if (!d)
        return pid ? 0 : -1; /* a process that ended has none */
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[128];
        snprintf(path, sizeof path, "%s/%s/children", dir, de->d_name);
        if (read_pids(path, out) != 0 && errno == ENOENT && !pid) {
            rc = -1;
            break;
        }
    }
    closedir(d);
    return rc;
}

int process_kill_token_below(const char *token)
{
    if (!token || !*token)
        return 0;
    pidlist all = {0};
    if (children_all(0, &all) != 0) {
        free(all.v);
        return process_kill_token(token);
    }
    /* Breadth first over the descendants: the list grows as it is read;
     * bounded against a tree that forks faster than it is walked. */
    int found = 0;
    for (size_t i = 0; i < all.n && i < 65536; i++) {
        if (has_token(all.v[i], token) && kill(all.v[i], SIGKILL) == 0)
            found++;
        children_all(all.v[i], &all);
    }
    free(all.v);
    return found;
}

void process_become_subreaper(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, become_subreaper);
}

void process_kill_children(void)
{
    /* Killing a child hands its own children to this process (a
     * subreaper): rounds until none is left; bounded against a tree that
     * forks faster than it is killed (the caller is then replaced). */
    for (int round = 0; round < 200; round++) {
        /* No child at all, alive or not (any thread's: they share them
         * for wait): one system call instead of a scan of /proc, which is
         * what most calls of a step worker find. */
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD)
            return;
        pidlist kids = {0};
        children_scan(&kids);
        for (size_t i = 0; i < kids.n; i++) {
            kill(-kids.v[i], SIGKILL); /* a group it leads, if any */
            kill(kids.v[i], SIGKILL);
        }
        for (size_t i = 0; i < kids.n; i++)
            while (waitpid(kids.v[i], NULL, 0) < 0 && errno == EINTR)
                ;
        size_t n = kids.n;
        free(kids.v);
        if (!n)
            return;
    }
}

/* Reaps zombie children that are not leaders: orphans of step trees that
 * died after they were reparented here.  Skipped while a spawn's pid is
 * not listed yet (its leader could be taken for an orphan). */
void process_reap_orphans(void)
{
    pidlist kids = {0};
    pthread_mutex_lock(&kids_lock);
    if (!spawning) {
        children_of_self(&kids);
        for (size_t i = 0; i < kids.n; i++) {
            if (is_leader(kids.v[i]))
                continue;
            siginfo_t si;
            si.si_pid = 0;
            /* WNOWAIT first: only a zombie is reaped, a live orphan is
             * left to escaped_stop. */
            if (waitid(P_PID, (id_t)kids.v[i], &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                si.si_pid == kids.v[i])
                waitpid(kids.v[i], NULL, WNOHANG);
        }
    }
    pthread_mutex_unlock(&kids_lock);
    free(kids.v);
}

/* ---- one child, from start to result ---- */

/* How far stopping the child's group has gone. */
typedef enum child_phase {
    CHILD_RUNNING,     /* nothing sent */
    CHILD_TERMINATING, /* SIGTERM sent to the group; SIGKILL due at kill_at */
    CHILD_KILLED       /* SIGKILL sent; stragglers are given up at give_up */
} child_phase;

typedef struct child {
    ndf_exec *node;
    const char *prog;
    const char *input; /* for its stdin, or NULL (/dev/null) */
    size_t input_len, in_off;
    double grace;            /* SIGTERM -> SIGKILL, seconds */
    size_t limit;            /* output kept per stream */
    pid_t pid;               /* the leader, and the group's id */
    int out, err, in, pidfd; /* our ends; -1 once closed */
    int status;              /* wait status, once reaped */
    struct rusage ru;        /* the leader's (and what it waited for), once reaped */
    int reaped;              /* the leader is reaped (its group may live on) */
    int done;                /* the group is gone, or given up on */
    int stop_cause;          /* 0, NDF_ERR_TIMEOUT or NDF_ERR_CANCELLED */
    int leftovers;           /* the leader left members of its group behind */
    child_phase phase;
    double t0, kill_at, give_up;
    int blocked_pipe; /* SIGPIPE blocked in this thread; oldmask restores */
    sigset_t oldmask;
    size_t escaped;  /* processes that left the group, stopped at the end */
    struct rusage esc_ru; /* theirs, summed (maxrss: the largest), as reaped */
    int cg_left;     /* processes the cgroup still held at the end */
    cgroup *cg;      /* the step's cgroup, or NULL (see cgroup.h) */
    int cg_cpu;      /* 1: cg_user/cg_sys are the cgroup's use over the step */
    double cg_user, cg_sys;
    char token[PROCESS_TOKEN_MAX]; /* NDF_STEP of its processes: "hostpid.n" */
    int capture;  /* NDF_SPAWN_CAPTURE_STDOUT: stdout into `cap` */
    int overflow; /* it wrote more than `limit` to a captured stdout */
    strbuf cap;
} child;

static void child_signal(child *c, int sig, double now);

/* The child's settings from `opts`, read only as far as the caller's build
 * of ndf_spawn knows them. */
static void child_init(child *c, ndf_exec *node, const ndf_spawn *opts)
{
    memset(c, 0, sizeof *c);
    c->node = node;
    c->prog = opts->argv[0];
    c->input = OPT_HAS(opts, input_len) ? opts->input : NULL;
    c->input_len = c->input ? opts->input_len : 0;
    c->grace = OPT_HAS(opts, grace_s) && opts->grace_s > 0 ? opts->grace_s : node->rec->kill_grace;
    c->limit = OPT_HAS(opts, output_limit) && opts->output_limit ? opts->output_limit
                                                                 : RECORD_OUTPUT_LIMIT;
    if (c->limit > RECORD_OUTPUT_MAX)
        c->limit = RECORD_OUTPUT_MAX;
    c->capture = OPT_HAS(opts, flags) && (opts->flags & NDF_SPAWN_CAPTURE_STDOUT);
    sb_init(&c->cap);
    c->out = c->err = c->in = c->pidfd = -1;
    c->phase = CHILD_RUNNING;
    c->kill_at = c->give_up = INFINITY;
    static _Atomic unsigned long seq;
    unsigned long n = atomic_fetch_add(&seq, 1) + 1;
    /* Under a token of its own (a step worker's, or an ndf started by a
     * step), below it: whoever hunts by the outer token finds these too. */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, outer_token_read);
    const char *outer = outer_token;
    int w = -1;
    if (outer && *outer)
        w = snprintf(c->token, sizeof c->token, "%s/%ld.%lu", outer, (long)getpid(), n);
    if (w < 0 || (size_t)w >= sizeof c->token)
        snprintf(c->token, sizeof c->token, "%ld.%lu", (long)getpid(), n);
}

/* What posix_spawn does for the child: stdin from `in_r` (or /dev/null when
 * -1), stdout and stderr to the pipes, `cwd`, a new process group, no
 * blocked signals, and every signal at its default (the host ignores
 * SIGPIPE, which must not stay ignored in the child). */
static void spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, int in_r,
                        int out_w, int err_w, const char *cwd)
{
    posix_spawn_file_actions_init(fa);
    if (in_r >= 0)
        posix_spawn_file_actions_adddup2(fa, in_r, 0);
    else
        posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(fa, out_w, 1);
    posix_spawn_file_actions_adddup2(fa, err_w, 2);
    if (cwd && *cwd)
        posix_spawn_file_actions_addchdir_np(fa, cwd);
    posix_spawnattr_init(attr);
    sigset_t sigs;
    sigemptyset(&sigs);
    posix_spawnattr_setsigmask(attr, &sigs);
    sigfillset(&sigs);
    sigdelset(&sigs, SIGKILL);
    sigdelset(&sigs, SIGSTOP);
    posix_spawnattr_setsigdefault(attr, &sigs);
    posix_spawnattr_setpgroup(attr, 0);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                       POSIX_SPAWN_SETSIGDEF);
}

/* The message for a posix_spawnp failure `e`: a working directory that is
 * not there is named as such, since ENOENT alone would blame the program. */
static int spawn_failed(const child *c, int e, const char *cwd)
{
    if (cwd && *cwd && (e == ENOENT || e == ENOTDIR || e == EACCES) && access(cwd, X_OK) != 0)
        return err_set(NDF_ERR_EXECUTION, "cannot run '%s': working directory '%s': %s", c->prog,
                       cwd, strerror(errno));
    return err_set(NDF_ERR_EXECUTION, "cannot run '%s': %s", c->prog, strerror(e));
}

/* Our ends after a successful spawn: non-blocking, a pidfd to poll for the
 * leader's exit, and SIGPIPE blocked in this thread while we write its
 * input (a child that exits without reading must cost this thread an EPIPE,
 * not the process a SIGPIPE). */
static void child_started(child *c)
{
    c->pidfd = pidfd_open_(c->pid);
    set_nonblock(c->out);
    set_nonblock(c->err);
    if (!c->input)
        return;
    set_nonblock(c->in);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, &c->oldmask);
    c->blocked_pipe = 1;
    if (c->input_len == 0)
        close_fd(&c->in);
}

/* Starts the child.  NDF_OK, or the error with everything released. */
static int child_start(child *c, const ndf_spawn *opts)
{
    const char *const *extra = OPT_HAS(opts, env) ? opts->env : NULL;
    const char *cwd = OPT_HAS(opts, cwd) ? opts->cwd : NULL;
    int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || (c->input && pipe2(in, O_CLOEXEC))) {
        int rc = err_set(NDF_ERR_IO, "cannot run '%s': pipe: %s", c->prog, strerror(errno));
        close_fd(&out[0]), close_fd(&out[1]), close_fd(&err[0]), close_fd(&err[1]);
        close_fd(&in[0]), close_fd(&in[1]);
        return rc;
    }
    envlist env = {0};
    env_build(&env, c->node, extra, c->token);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    spawn_setup(&fa, &attr, c->input ? in[0] : -1, out[1], err[1], cwd);
    c->t0 = now_mono();
    c->cg = cgroup_new();
    spawn_begin();
    int e = posix_spawnp(&c->pid, c->prog, &fa, &attr, (char *const *)opts->argv, env.v);
    spawn_end(e ? 0 : c->pid);
    /* Moved right after the spawn; what it forks before the move stays
     * outside, left to the process group and NDF_STEP.  (Creating it
     * inside, clone3 with CLONE_INTO_CGROUP, closes that instant but is a
     * full fork of the host: measured 3 to 5 times slower per step.) */
    if (c->cg && (e || cgroup_attach(c->cg, c->pid) != 0)) {
        if (!e)
            log_msg(NDF_LOG_DEBUG, "cannot move '%s' into %s: %s", c->prog, cgroup_path(c->cg),
                    strerror(errno));
        cgroup_release(c->cg, e != 0); /* not kept when it refused a process */
        c->cg = NULL;
    }
    /* A kept cgroup's CPU count goes on from step to step: from here. */
    if (c->cg && cgroup_cpu(c->cg, &c->cg_user, &c->cg_sys) == 0)
        c->cg_cpu = 1;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    env_free(&env);
    close_fd(&out[1]);
    close_fd(&err[1]);
    close_fd(&in[0]);
    c->out = out[0];
    c->err = err[0];
    c->in = in[1];
    if (e) {
        close_fd(&c->out), close_fd(&c->err), close_fd(&c->in);
        return spawn_failed(c, e, cwd);
    }
    record *r = c->node->rec;
    if (r->on_spawn)
        r->on_spawn(r->spawn_arg, r, (long)c->pid, c->token);
    child_started(c);
    return NDF_OK;
}

/* Sends `sig` to the whole group and moves to the phase it starts. */
static void child_signal(child *c, int sig, double now)
{
    kill(-c->pid, sig);
    if (sig == SIGTERM) {
        c->phase = CHILD_TERMINATING;
        c->kill_at = now + c->grace;
    } else {
        c->phase = CHILD_KILLED;
        /* Killed processes die at once; members still listed after this
         * are zombies their new parent has not reaped. */
        c->give_up = now + 1.0;
    }
}

/* Reads the child's stdout: into the record, or for a capturing caller into
 * c->cap, bounded by c->limit; a child that writes more is stopped (its
 * answer is unusable anyway) and the pipe is closed, so it gets EPIPE
 * instead of blocking on a full pipe until its deadline. */
static void pump_stdout(child *c)
{
    if (!c->capture) {
        pump_read(&c->out, c->node, REC_STDOUT, c->limit);
        return;
    }
    char buf[16384];
    for (;;) {
        ssize_t n = read(c->out, buf, sizeof buf);
        if (n > 0) {
            if (c->cap.len + (size_t)n > c->limit) {
                c->overflow = 1;
                close_fd(&c->out);
                if (c->phase == CHILD_RUNNING && !c->reaped)
                    child_signal(c, SIGTERM, now_mono());
                return;
            }
            sb_add(&c->cap, buf, (size_t)n);
            if ((size_t)n < sizeof buf)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close_fd(&c->out);
        return;
    }
}

/* Stops the group when the node's deadline passed or its execution was
 * cancelled: SIGTERM, then SIGKILL once the grace period is over. */
static void child_escalate(child *c, double now)
{
    if (!c->stop_cause && !c->reaped)
        c->stop_cause = node_stop_status(c->node);
    if (c->stop_cause && c->phase == CHILD_RUNNING)
        child_signal(c, SIGTERM, now);
    if (c->phase == CHILD_TERMINATING && now >= c->kill_at)
        child_signal(c, SIGKILL, now);
    /* Cancelled twice: no grace any more. */
    if (c->stop_cause == NDF_ERR_CANCELLED && c->phase != CHILD_KILLED &&
        atomic_load(&c->node->rec->hard_cancel))
        child_signal(c, SIGKILL, now);
}

/* Reaps the leader if it exited.  Once it has, drains its output and sets
 * c->done when its group is gone too (or given up on); members it left
 * behind are stopped like the leader would have been.  NDF_OK, or an error
 * from waitpid. */
static int child_reap(child *c, double now)
{
    if (!c->reaped) {
        pid_t w = wait4(c->pid, &c->status, WNOHANG, &c->ru);
        if (w == c->pid) {
            c->reaped = 1;
            leader_reaped(c->pid);
        }
        else if (w < 0 && errno != EINTR)
            return err_set(NDF_ERR_IO, "waiting for '%s': %s", c->prog, strerror(errno));
    }
    if (!c->reaped)
        return NDF_OK;
    close_fd(&c->pidfd);
    if (c->out >= 0)
        pump_stdout(c);
    if (c->err >= 0)
        pump_read(&c->err, c->node, REC_STDERR, c->limit);
    if (!group_alive(c->pid) || now >= c->give_up) {
        c->done = 1;
        return NDF_OK;
    }
    if (c->phase == CHILD_RUNNING) {
        /* The leader exited and left members of its group behind: they end
         * with the step. */
        c->leftovers = 1;
        child_signal(c, SIGTERM, now);
    }
    return NDF_OK;
}

/* How long one poll may sleep, in ms: until the deadline or the SIGKILL,
 * and never long, since some changes are not seen by poll (cancellation is
 * a flag; group members and children without a pidfd are polled). */
static int pump_timeout(const child *c, double now)
{
    double wake = INFINITY;
    if (!c->stop_cause)
        wake = c->node->deadline;
    if (c->phase == CHILD_TERMINATING)
        wake = fmin(wake, c->kill_at);
    double ms = c->reaped || c->pidfd < 0 ? 10 : 100;
    if (isfinite(wake))
        ms = fmin(ms, fmax(0, (wake - now) * 1000.0 + 1));
    return (int)ms;
}

/* Writes what the child's stdin takes of the rest of its input; closes it
 * when all is written or the child stopped reading. */
static void pump_write(child *c)
{
    ssize_t w = write(c->in, c->input + c->in_off, c->input_len - c->in_off);
    if (w > 0)
        c->in_off += (size_t)w;
    if ((w < 0 && errno != EAGAIN && errno != EINTR) || c->in_off >= c->input_len)
        close_fd(&c->in);
}

/* One wait on the child's pipes and pidfd, then moves what is ready:
 * output into the record, input into the child.  NDF_OK, or a poll error. */
static int child_pump(child *c, double now)
{
    struct pollfd pf[4];
    int np = 0, i_out = -1, i_err = -1, i_in = -1;
    if (c->out >= 0)
        i_out = np, pf[np++] = (struct pollfd){.fd = c->out, .events = POLLIN};
    if (c->err >= 0)
        i_err = np, pf[np++] = (struct pollfd){.fd = c->err, .events = POLLIN};
    if (c->in >= 0)
        i_in = np, pf[np++] = (struct pollfd){.fd = c->in, .events = POLLOUT};
    if (c->pidfd >= 0)
        pf[np++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
    int n = poll(pf, (nfds_t)np, pump_timeout(c, now));
    if (n < 0 && errno != EINTR)
        return err_set(NDF_ERR_IO, "waiting for '%s': poll: %s", c->prog, strerror(errno));
    if (n <= 0)
        return NDF_OK;
    if (i_out >= 0 && pf[i_out].revents)
        pump_stdout(c);
    if (i_err >= 0 && pf[i_err].revents)
        pump_read(&c->err, c->node, REC_STDERR, c->limit);
    if (i_in >= 0 && pf[i_in].revents)
        pump_write(c);
    return NDF_OK;
}

/* Releases what the run held.  After an error (`rc`) a leader still running
 * is killed with its group and reaped, so no error path leaves it behind. */
static void child_close(child *c, int rc)
{
    if (!c->reaped && rc) {
        kill(-c->pid, SIGKILL);
        while (wait4(c->pid, &c->status, 0, &c->ru) < 0 && errno == EINTR)
            ;
        c->reaped = 1;
        leader_reaped(c->pid);
    }
    close_fd(&c->out);
    close_fd(&c->err);
    close_fd(&c->in);
    close_fd(&c->pidfd);
    if (c->blocked_pipe) {
        /* A SIGPIPE raised while it was blocked is pending: take it. */
        struct timespec zero = {0, 0};
        sigset_t sigs;
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGPIPE);
        while (sigtimedwait(&sigs, NULL, &zero) > 0)
            ;
        pthread_sigmask(SIG_SETMASK, &c->oldmask, NULL);
    }
}

/* Sends `sig` to each listed process and its group (pid -1: gone). */
static void signal_all(const pidlist *l, int sig)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] > 0) {
            kill(-l->v[i], sig);
            kill(l->v[i], sig);
        }
}

/* Adds `b`'s CPU times to `a`'s; the larger peak is kept (peaks of
 * processes that did not run at once are not a sum). */
static void rusage_add(struct rusage *a, const struct rusage *b)
{
    a->ru_utime.tv_sec += b->ru_utime.tv_sec;
    a->ru_utime.tv_usec += b->ru_utime.tv_usec;
    a->ru_stime.tv_sec += b->ru_stime.tv_sec;
    a->ru_stime.tv_usec += b->ru_stime.tv_usec;
    if (b->ru_maxrss > a->ru_maxrss)
        a->ru_maxrss = b->ru_maxrss;
}

/* Stops the processes of the step's tree that left its process group
 * (setsid, setpgid) and were reparented here when their parent died: told
 * apart by the step's NDF_STEP token in their environment, they get
 * SIGTERM with their own group, SIGKILL after the grace period (at once
 * after a second cancellation), and are reaped.  Repeated while stopping
 * them reparents more of their descendants.  A process that cleared its
 * environment is not found here (a cgroup would find it). */
static void escaped_stop(child *c)
{
    for (int round = 0; round < 64; round++) {
        pidlist kids = {0}, mine = {0};
        children_of_self(&kids);
        /* Leaders of running steps are children too: skipped without
         * reading their environment. */
        pthread_mutex_lock(&kids_lock);
        size_t k = 0;
        for (size_t i = 0; i < kids.n; i++)
            if (!is_leader(kids.v[i]))
                kids.v[k++] = kids.v[i];
        kids.n = k;
        pthread_mutex_unlock(&kids_lock);
        for (size_t i = 0; i < kids.n; i++)
            if (has_token(kids.v[i], c->token))
                pid_push(&mine, kids.v[i]);
        free(kids.v);
        if (!mine.n)
            return;
        c->escaped += mine.n;
        int hard = atomic_load(&c->node->rec->hard_cancel);
        signal_all(&mine, hard ? SIGKILL : SIGTERM);
        double kill_at = now_mono() + (hard ? 0 : c->grace), give_up = kill_at + 1.0;
        int killed = hard;
        for (;;) {
            size_t left = 0;
            for (size_t i = 0; i < mine.n; i++) {
                if (mine.v[i] <= 0)
                    continue;
                struct rusage ru;
                pid_t w = wait4(mine.v[i], NULL, WNOHANG, &ru);
                if (w == mine.v[i])
                    rusage_add(&c->esc_ru, &ru);
                if (w == mine.v[i] || (w < 0 && errno == ECHILD))
                    mine.v[i] = -1;
                else
                    left++;
            }
            double now = now_mono();
            if (!left || (killed && now >= give_up))
                break;
            if (!killed && now >= kill_at) {
                signal_all(&mine, SIGKILL);
                killed = 1;
            }
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        free(mine.v);
    }
}

/* Stops what is left in the step's cgroup once its group and the escaped
 * processes NDF_STEP found are gone (a process that cleared its
 * environment): SIGTERM, the grace period, then cgroup.kill; then reaps
 * and removes the cgroup. */
static void cgroup_stop(child *c)
{
    if (!c->cg)
        return;
    double u, s;
    if (cgroup_populated(c->cg)) {
        int hard = atomic_load(&c->node->rec->hard_cancel);
        c->cg_left = cgroup_signal(c->cg, hard ? SIGKILL : SIGTERM);
        double kill_at = now_mono() + (hard ? 0 : c->grace), give_up = kill_at + 1.0;
        int killed = hard;
        while (cgroup_populated(c->cg)) {
            double now = now_mono();
            if (killed && now >= give_up)
                break;
            if (!killed && now >= kill_at) {
                cgroup_signal(c->cg, SIGKILL);
                killed = 1;
            }
            /* the killed ones are our children (subreaper): their zombies
             * would keep them listed */
            process_reap_orphans();
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    /* Once nothing runs in it: the whole tree's use, what ended by itself
     * and what escaped included. */
    if (c->cg_cpu && cgroup_cpu(c->cg, &u, &s) == 0) {
        c->cg_user = u - c->cg_user;
        c->cg_sys = s - c->cg_sys;
    } else {
        c->cg_cpu = 0;
    }
    cgroup_free(c->cg);
    c->cg = NULL;
}

/* The outcome of a finished run: `result` (may be NULL) and the status. */
static int child_result(const child *c, ndf_spawn_result *result)
{
    double wall = now_mono() - c->t0;
    int code = -1, sig = 0;
    if (WIFEXITED(c->status))
        code = WEXITSTATUS(c->status);
    else if (WIFSIGNALED(c->status))
        sig = WTERMSIG(c->status);
    if (result) {
        if (RES_HAS(result, exit_status))
            result->exit_status = code;
        if (RES_HAS(result, term_signal))
            result->term_signal = sig;
        if (RES_HAS(result, wall_s))
            result->wall_s = wall;
    }
    if (c->leftovers)
        log_msg(2, "%s: '%s' left processes in its group; they were stopped", c->node->name,
                c->prog);
    if (c->cg_left) {
        char msg[160];
        int len = snprintf(msg, sizeof msg,
                           "its cgroup still held %d process(es) at the end; they were stopped\n",
                           c->cg_left);
        node_append(c->node, REC_LOG, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1,
                    0);
        log_msg(2, "%s: %.*s", c->node->name, len - 1, msg);
    }
    if (c->escaped) {
        char msg[256];
        int len = snprintf(msg, sizeof msg,
                           "'%s' left %zu process(es) outside its process group (setsid?); "
                           "they were stopped with the step\n",
                           c->prog, c->escaped);
        node_append(c->node, REC_LOG, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1,
                    0);
        log_msg(2, "%s: %.*s", c->node->name, len - 1, msg);
    }
    if (c->overflow && !c->stop_cause)
        return err_set(NDF_ERR_EXECUTION,
                       "'%s' wrote more than %zu bytes to its standard output; it was stopped",
                       c->prog, c->limit);
    if (c->stop_cause) {
        const char *why = c->stop_cause == NDF_ERR_CANCELLED ? "cancelled" : "timeout";
        if (sig)
            return err_set(c->stop_cause, "killed by signal %d (%s)", sig, why);
        return err_set(c->stop_cause, "exited with status %d (%s)", code, why);
    }
    if (sig)
        return err_set(NDF_ERR_EXECUTION, "killed by signal %d", sig);
    if (code != 0)
        return err_set(NDF_ERR_EXECUTION, "exited with status %d", code);
    return NDF_OK;
}

/* What a caller sees when the run fails before an exit status exists. */
static void result_reset(ndf_spawn_result *result)
{
    if (!result || !RES_HAS(result, exit_status))
        return;
    result->exit_status = -1;
    if (RES_HAS(result, term_signal))
        result->term_signal = 0;
    if (RES_HAS(result, wall_s))
        result->wall_s = 0;
    if (RES_HAS(result, output_overflow)) {
        result->output = NULL;
        result->output_len = 0;
        result->output_overflow = 0;
    }
}

int process_run(ndf_exec *node, const ndf_spawn *opts, ndf_spawn_result *result)
{
    result_reset(result);
    if (!node || !opts || !OPT_HAS(opts, argv) || !opts->argv || !opts->argv[0] || !*opts->argv[0])
        return err_set(NDF_ERR_INVALID, "spawn: no command given");
    if (OPT_HAS(opts, flags) && (opts->flags & NDF_SPAWN_CAPTURE_STDOUT) &&
        (!result || !RES_HAS(result, output_overflow)))
        return err_set(NDF_ERR_INVALID,
                       "spawn: NDF_SPAWN_CAPTURE_STDOUT needs an ndf_spawn_result of ABI 1.2");
    /* Process-wide, once: see become_subreaper. */
    process_become_subreaper();

    child c;
    child_init(&c, node, opts);
    int rc = child_start(&c, opts);
    if (rc)
        return rc;
    while (rc == NDF_OK && !c.done) {
        double now = now_mono();
        child_escalate(&c, now);
        rc = child_reap(&c, now);
        if (rc == NDF_OK && !c.done)
            rc = child_pump(&c, now);
    }
    child_close(&c, rc);
    escaped_stop(&c);
    cgroup_stop(&c);
    /* wait4's figures: the leader and the descendants it waited for, and
     * the escaped processes escaped_stop stopped and reaped (what they
     * waited for included); one that ended by itself before the step did
     * was reaped as an anonymous orphan and is not in them.  A cgroup
     * counts the whole tree; its count starts when the leader was moved
     * in, so the larger of the two is kept. */
    if (c.reaped || c.escaped || c.cg_cpu) {
        struct rusage ru = {0};
        if (c.reaped)
            ru = c.ru;
        rusage_add(&ru, &c.esc_ru);
        double u = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
        double s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        if (c.cg_cpu && c.cg_user > u)
            u = c.cg_user;
        if (c.cg_cpu && c.cg_sys > s)
            s = c.cg_sys;
        node_add_usage(node, USAGE_CHILD, u, s, ru.ru_maxrss);
    }
    process_reap_orphans();
    if (!rc)
        rc = child_result(&c, result);
    if (c.capture && result && RES_HAS(result, output_overflow)) {
        /* Given whatever the status: the output of a failed run is often
         * what explains it. */
        result->output_len = c.cap.len;
        result->output = sb_steal(&c.cap);
        result->output_overflow = c.overflow;
    }
    sb_free(&c.cap);
    return rc;
}
