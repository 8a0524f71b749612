/* Isolated step execution, both sides.  The host keeps warm workers per
 * plugin build; a call is one RUN (or UNDO) frame out and one DONE frame
 * back, with LOG, OUTPUT and EXPAND frames from the worker and
 * EXPAND_REPLY frames from the host in between (cancellation is a
 * signal).  Frames are a 32-bit
 * length and a body whose first byte is the operation; both ends are the
 * same ndf binary on the same machine, so numbers travel in native byte
 * order.  Values travel whole (type, name, file, line), so a step's
 * create() in the worker still reports file:line. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec/isolate.h"
#include "exec/process.h"
#include "exec/record.h"
#include "model/context.h"
#include "plugin/loader.h"
#include "plugin/scanner.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "base/value.h"

#define DEF_HAS(def, member) \
    ((def)->size >= offsetof(__typeof__(*(def)), member) + sizeof((def)->member))

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/ndf"
#endif

/* The sanitizers reserve terabytes of address space: RLIMIT_AS would stop
 * the worker before main. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ISOLATE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ISOLATE_ASAN 1
#endif
#endif

enum {
    OP_READY = 1,
    OP_RUN = 2,
    OP_UNDO = 3,
    OP_LOG = 5,
    OP_EXPAND = 6,
    OP_EXPAND_REPLY = 7,
    OP_DONE = 8,
    OP_OUTPUT = 9,
};

/* A frame larger than this is a broken peer, not a message. */
#define FRAME_MAX (96u << 20)
/* Values nested deeper than this are refused (a configuration cannot make
 * them, a hostile peer could). */
#define VALUE_DEPTH_MAX 64
/* The most stdout or stderr one OUTPUT frame carries: a step's processes
 * are read 16 KiB at a time, so this only splits what a plugin appends
 * in one piece. */
#define OUTPUT_FRAME_MAX (1u << 20)
/* How long a worker has to load its plugin and say READY. */
#define READY_TIMEOUT 10.0

/* ---- the wire ---- */

static void w_u8(strbuf *b, unsigned v)
{
    char c = (char)(unsigned char)v;
    sb_add(b, &c, 1);
}

static void w_u32(strbuf *b, uint32_t v)
{
    sb_add(b, (const char *)&v, sizeof v);
}

static void w_i64(strbuf *b, int64_t v)
{
    sb_add(b, (const char *)&v, sizeof v);
}

static void w_f64(strbuf *b, double v)
{
    sb_add(b, (const char *)&v, sizeof v);
}

static void w_mem(strbuf *b, const char *s, size_t n)
{
    w_u32(b, (uint32_t)n);
    sb_add(b, s, n);
}

static void w_str(strbuf *b, const char *s)
{
    if (!s) {
        w_u32(b, UINT32_MAX);
        return;
    }
    w_mem(b, s, strlen(s));
}

static void w_value(strbuf *b, const ndf_value *v)
{
    if (!v) {
        w_u8(b, 0);
        return;
    }
    w_u8(b, (unsigned)v->type);
    w_str(b, v->name);
    w_str(b, v->file);
    w_i64(b, v->line);
    switch (v->type) {
    case NDF_VALUE_STRING: w_str(b, v->u.s); break;
    case NDF_VALUE_INT: w_i64(b, v->u.i); break;
    case NDF_VALUE_NUMBER: w_f64(b, v->u.n); break;
    case NDF_VALUE_BOOL: w_u8(b, v->u.b != 0); break;
    case NDF_VALUE_LIST:
    case NDF_VALUE_GROUP:
        w_u32(b, (uint32_t)v->u.c.count);
        for (size_t i = 0; i < v->u.c.count; i++)
            w_value(b, v->u.c.items[i]);
        break;
    default: break;
    }
}

/* Starts a frame: the length is patched by frame_send. */
static void frame_begin(strbuf *b, unsigned op)
{
    sb_init(b);
    w_u32(b, 0);
    w_u8(b, op);
}

/* Sends the frame in `b` (and frees it).  0, or -1 with errno. */
static int frame_send(int fd, strbuf *b)
{
    uint32_t n = (uint32_t)(b->len - sizeof n);
    memcpy(b->buf, &n, sizeof n);
    const char *p = b->buf;
    size_t left = b->len;
    int rc = 0;
    while (left) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 100);
            continue;
        }
        if (w <= 0) {
            rc = -1;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    int e = errno;
    sb_free(b);
    errno = e;
    return rc;
}

typedef struct rbuf {
    const char *p;
    size_t n;
    int bad;
} rbuf;

static void r_take(rbuf *r, void *out, size_t n)
{
    if (r->bad || r->n < n) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->n -= n;
}

static unsigned r_u8(rbuf *r)
{
    unsigned char c;
    r_take(r, &c, 1);
    return c;
}

static uint32_t r_u32(rbuf *r)
{
    uint32_t v;
    r_take(r, &v, sizeof v);
    return v;
}

static int64_t r_i64(rbuf *r)
{
    int64_t v;
    r_take(r, &v, sizeof v);
    return v;
}

static double r_f64(rbuf *r)
{
    double v;
    r_take(r, &v, sizeof v);
    return v;
}

/* A NUL-terminated copy (caller frees), NULL for a null string; *len (may
 * be NULL) gets the length. */
static char *r_str(rbuf *r, size_t *len)
{
    uint32_t n = r_u32(r);
    if (len)
        *len = 0;
    if (r->bad || n == UINT32_MAX)
        return NULL;
    if (r->n < n) {
        r->bad = 1;
        return NULL;
    }
    char *s = xmalloc((size_t)n + 1);
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    r->n -= n;
    if (len)
        *len = n;
    return s;
}

static ndf_value *r_value(rbuf *r, int depth)
{
    unsigned t = r_u8(r);
    if (r->bad || t == 0)
        return NULL;
    if (depth > VALUE_DEPTH_MAX || t > NDF_VALUE_GROUP) {
        r->bad = 1;
        return NULL;
    }
    char *name = r_str(r, NULL);
    char *file = r_str(r, NULL);
    int64_t line = r_i64(r);
    ndf_value *v = NULL;
    switch ((ndf_value_type)t) {
    case NDF_VALUE_STRING: {
        char *s = r_str(r, NULL);
        v = value_new_string(name, s ? s : "");
        free(s);
        break;
    }
    case NDF_VALUE_INT: v = value_new_int(name, r_i64(r)); break;
    case NDF_VALUE_NUMBER: v = value_new_number(name, r_f64(r)); break;
    case NDF_VALUE_BOOL: v = value_new_bool(name, (int)r_u8(r)); break;
    case NDF_VALUE_LIST:
    case NDF_VALUE_GROUP: {
        v = t == NDF_VALUE_LIST ? value_new_list(name) : value_new_group(name);
        uint32_t n = r_u32(r);
        if (n > r->n) /* every member takes a byte at least */
            r->bad = 1;
        for (uint32_t i = 0; i < n && !r->bad; i++) {
            ndf_value *c = r_value(r, depth + 1);
            if (!c) {
                r->bad = 1;
                break;
            }
            value_append(v, c);
        }
        break;
    }
    default: r->bad = 1; break;
    }
    if (v && file)
        value_set_pos(v, value_intern_file(file), (int)line);
    free(name);
    free(file);
    if (r->bad) {
        value_free(v);
        return NULL;
    }
    return v;
}

/* Frames arrive into `in`; frame_next() takes the first complete one. */
typedef struct inbuf {
    char *buf;
    size_t len, cap;
} inbuf;

/* Reads what is there (one read).  1 read something, 0 end of file, -1
 * error (errno; EAGAIN when nothing was there). */
static int in_fill(int fd, inbuf *in)
{
    if (in->cap - in->len < 65536) {
        in->cap = in->cap ? in->cap * 2 : 131072;
        in->buf = xrealloc(in->buf, in->cap);
    }
    for (;;) {
        ssize_t n = read(fd, in->buf + in->len, in->cap - in->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        in->len += (size_t)n;
        return 1;
    }
}

/* The first complete frame: 1 with *body and *n (valid until frame_drop),
 * 0 when incomplete, -1 for a frame that cannot be. */
static int frame_next(inbuf *in, const char **body, size_t *n)
{
    uint32_t len;
    if (in->len < sizeof len)
        return 0;
    memcpy(&len, in->buf, sizeof len);
    if (len == 0 || len > FRAME_MAX)
        return -1;
    if (in->len - sizeof len < len)
        return 0;
    *body = in->buf + sizeof len;
    *n = len;
    return 1;
}

static void frame_drop(inbuf *in, size_t n)
{
    size_t all = n + sizeof(uint32_t);
    memmove(in->buf, in->buf + all, in->len - all);
    in->len -= all;
}

static const char *sig_name(int sig)
{
    const char *n = sigabbrev_np(sig);
    return n ? n : "?";
}

/* ==================================================================== */
/* The host's side                                                      */
/* ==================================================================== */

typedef struct iworker {
    pid_t pid;
    char token[48]; /* NDF_STEP of the worker and what its steps fork */
    int fd;
    int calls; /* numbers each call, for its cancellation signal */
    char told[48]; /* the execution its pid and token were last recorded for */
    int told_rollbacks; /* and its record's rollbacks then */
    inbuf in;
    struct iworker *next;
} iworker;

/* One plugin build: its file kept open (another ndf sharing the plugin
 * cache may remove the copy by name), and its warm workers. */
typedef struct ikey {
    char hash[65];
    char *plugin;    /* descriptor name */
    char *cache_dir; /* where the worker makes its own copy */
    int fd;          /* the private copy, open */
    iworker *idle;
    size_t nidle;
    int spawning; /* a spare is being started in the background */
    int lost;     /* a worker of this build crashed, exited or overran:
                     it keeps two spares warm, not one (spare_locked) */
    const char *program;
    struct ikey *next;
} ikey;

static pthread_mutex_t iso_lock = PTHREAD_MUTEX_INITIALIZER;
static ikey *keys;
static const char *iso_program;
static isolate_mode iso_mode;
static char **iso_isolate, **iso_trust;
static size_t iso_nisolate, iso_ntrust;
static double iso_mem_mb = 1024, iso_cpu_s;
static int iso_max_idle = 4;
static atomic_ulong st_started, st_replaced, st_calls;

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char **dup_names(char *const *v, size_t n)
{
    char **out = xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void escapees_wait_at_exit(void);

void isolate_configure(const isolate_opts *o, const char *program)
{
    /* ndf's exit waits for the escapee hunts under way (worker_escapees). */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (program)
        pthread_once(&once, escapees_wait_at_exit);
    pthread_mutex_lock(&iso_lock);
    iso_program = program;
    free_names(iso_isolate, iso_nisolate);
    free_names(iso_trust, iso_ntrust);
    iso_isolate = iso_trust = NULL;
    iso_nisolate = iso_ntrust = 0;
    iso_mode = ISOLATE_AUTO;
    iso_mem_mb = 1024;
    iso_cpu_s = 0;
    iso_max_idle = 4;
    if (o) {
        iso_mode = o->mode;
        iso_isolate = dup_names(o->isolate, o->nisolate);
        iso_nisolate = o->nisolate;
        iso_trust = dup_names(o->trust, o->ntrust);
        iso_ntrust = o->ntrust;
        iso_mem_mb = o->memory_limit_mb;
        iso_cpu_s = o->cpu_limit_s;
        if (o->max_idle > 0)
            iso_max_idle = o->max_idle;
    }
    pthread_mutex_unlock(&iso_lock);
}

const char *isolate_mode_name(isolate_mode m)
{
    return m == ISOLATE_NONE ? "none" : m == ISOLATE_PROCESS ? "process" : "auto";
}

int isolate_mode_parse(const char *name, isolate_mode *out)
{
    if (strcmp(name, "auto") == 0)
        *out = ISOLATE_AUTO;
    else if (strcmp(name, "none") == 0)
        *out = ISOLATE_NONE;
    else if (strcmp(name, "process") == 0)
        *out = ISOLATE_PROCESS;
    else
        return -1;
    return 0;
}

static int listed(char *const *v, size_t n, const char *a, const char *b)
{
    for (size_t i = 0; i < n; i++)
        if ((a && strcmp(v[i], a) == 0) || (b && strcmp(v[i], b) == 0))
            return 1;
    return 0;
}

/* The directory part of `path`, resolved; caller frees; NULL if it cannot be. */
static char *real_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return NULL;
    char *d = xstrndup(path, (size_t)(slash - path));
    char *r = realpath(*d ? d : "/", NULL);
    free(d);
    return r;
}

/* "Installed with ndf": its file is in the compiled-in plugin directory,
 * or in $NDF_BUNDLED_PLUGIN_DIR (ndf run from its build tree). */
static int bundled(const char *path)
{
    if (!path)
        return 0;
    char *dir = real_dir(path);
    if (!dir)
        return 0;
    int yes = 0;
    const char *cands[2] = {PLUGINDIR, getenv("NDF_BUNDLED_PLUGIN_DIR")};
    for (int i = 0; i < 2 && !yes; i++) {
        if (!cands[i] || !*cands[i])
            continue;
        char *r = realpath(cands[i], NULL);
        yes = r && strcmp(r, dir) == 0;
        free(r);
    }
    free(dir);
    return yes;
}

int isolate_wants(const provided *p)
{
    if (!p || p->kind != PROVIDED_STEP || !p->owner)
        return 0;
    pthread_mutex_lock(&iso_lock);
    int want = 0;
    if (iso_program) {
        plugin_info info;
        loader_plugin_describe(p->owner, &info);
        if (!info.cached)
            want = 0; /* nothing a worker could load */
        else if (listed(iso_trust, iso_ntrust, info.name, p->name))
            want = 0;
        else if (listed(iso_isolate, iso_nisolate, info.name, p->name))
            want = 1;
        else if (iso_mode == ISOLATE_NONE)
            want = 0;
        else if (iso_mode == ISOLATE_PROCESS)
            want = 1;
        else
            want = !bundled(info.path);
    }
    pthread_mutex_unlock(&iso_lock);
    return want;
}

int isolate_decide(const provided *p, isolate_mode mode)
{
    if (mode == ISOLATE_AUTO)
        return isolate_wants(p);
    if (mode == ISOLATE_NONE)
        return 0;
    if (!p || p->kind != PROVIDED_STEP || !p->owner)
        return err_set(NDF_ERR_VALIDATION, "step '%s' is not a plugin's: it cannot be isolated",
                       p ? p->name : "?"), -1;
    pthread_mutex_lock(&iso_lock);
    const char *program = iso_program;
    pthread_mutex_unlock(&iso_lock);
    plugin_info info;
    loader_plugin_describe(p->owner, &info);
    if (!program || !info.cached)
        return err_set(NDF_ERR_VALIDATION,
                       "step '%s' cannot be isolated here: %s", p->name,
                       !program ? "this program starts no step workers"
                                : "its plugin has no loaded copy for a worker to load"),
               -1;
    return 1;
}

static void worker_kill(iworker *w);

/* The key of the plugin that provides `p`, made on first use.  NULL with
 * err_msg() set when its file cannot be opened.  (iso_lock held) */
static ikey *key_for(const provided *p)
{
    plugin_info info;
    loader_plugin_describe(p->owner, &info);
    for (ikey *k = keys; k; k = k->next)
        if (strcmp(k->hash, info.hash) == 0)
            return k;
    if (!info.cached) {
        err_set(NDF_ERR_EXECUTION, "plugin '%s' has no loaded copy", info.name ? info.name : "?");
        return NULL;
    }
    int fd = open(info.cached, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        err_set(NDF_ERR_EXECUTION, "cannot open the loaded copy of plugin '%s' (%s): %s",
                info.name ? info.name : "?", info.cached, strerror(errno));
        return NULL;
    }
    /* Above the descriptors a worker's spawn maps (SCANNER_FD, +1). */
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, SCANNER_FD + 8);
    close(fd);
    if (hi < 0) {
        err_set(NDF_ERR_EXECUTION, "plugin '%s': %s", info.name ? info.name : "?",
                strerror(errno));
        return NULL;
    }
    /* A new build of a plugin (a reload): the old build's idle workers
     * are done (executions still on it start workers as they need). */
    for (ikey *o = keys; o; o = o->next)
        if (strcmp(o->plugin, info.name ? info.name : "?") == 0)
            while (o->idle) {
                iworker *w = o->idle;
                o->idle = w->next;
                o->nidle--;
                worker_kill(w);
            }
    ikey *k = xcalloc(1, sizeof *k);
    snprintf(k->hash, sizeof k->hash, "%s", info.hash);
    k->plugin = xstrdup(info.name ? info.name : "?");
    k->cache_dir = real_dir(info.cached);
    if (!k->cache_dir)
        k->cache_dir = xstrdup("/tmp");
    k->fd = hi;
    k->next = keys;
    keys = k;
    return k;
}

/* Escapee hunts still running (escapees_main), which isolate_shutdown
 * waits for: nothing a worker's steps started outlives ndf. */
static pthread_mutex_t hunt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hunt_cond = PTHREAD_COND_INITIALIZER;
static int hunts;

static void escapees_kill(const char *token)
{
    if (process_kill_token_below(token) > 0) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        process_reap_orphans();
    }
}

static void *escapees_main(void *arg)
{
    escapees_kill(arg);
    free(arg);
    pthread_mutex_lock(&hunt_lock);
    if (--hunts == 0)
        pthread_cond_broadcast(&hunt_cond);
    pthread_mutex_unlock(&hunt_lock);
    return NULL;
}

/* After idle worker `w` was killed and reaped: what its steps left
 * running outside its process group (setsid), found by its token, is
 * killed too; those reparented to this process are reaped.  No call is
 * waiting on it, so it runs beside the caller (a worker killed during a
 * call is hunted at once: worker_escapees_now). */
static void worker_escapees(const iworker *w)
{
    if (!w->token[0])
        return;
    char *token = xstrdup(w->token);
    pthread_mutex_lock(&hunt_lock);
    hunts++;
    pthread_mutex_unlock(&hunt_lock);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &a, escapees_main, token);
    pthread_attr_destroy(&a);
    if (e)
        escapees_main(token);
}

/* Waits for the escapee hunts under way. */
static void escapees_wait(void)
{
    pthread_mutex_lock(&hunt_lock);
    while (hunts)
        pthread_cond_wait(&hunt_cond, &hunt_lock);
    pthread_mutex_unlock(&hunt_lock);
}

static void drain_flush(void);

static void isolate_at_exit(void)
{
    escapees_wait();
    drain_flush();
}

static void escapees_wait_at_exit(void)
{
    atexit(isolate_at_exit);
}

/* Kills what worker `w` (killed and reaped) had its current call's steps
 * start, before the call is answered: the step's processes carry a token
 * below the worker's (process.c) and, the worker gone, are reparented to
 * this process, a child subreaper.  They are killed until none is left
 * and reaped, so no step of a killed worker runs on beside its failed
 * node, or a second copy of it, or past ndf's exit.  Bounded (a process
 * in uninterruptible sleep): what is left then goes to the hunt beside. */
static void worker_escapees_now(const iworker *w)
{
    if (!w->token[0])
        return;
    double until = now_mono() + 2.0;
    int left = 1;
    while (left && now_mono() < until) {
        left = process_kill_token_below(w->token) > 0;
        if (left) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        process_reap_orphans();
    }
    if (left)
        worker_escapees(w);
}

/* Kills the worker's process group, waits for it, frees it, and kills
 * what its steps left running: at once for a worker killed during a call
 * (`busy`), beside the caller for an idle one (worker_escapees). */
static void worker_kill_as(iworker *w, int busy)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    kill(-w->pid, SIGKILL);
    kill(w->pid, SIGKILL);
    int st;
    while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
        ;
    scanner_reaped(w->pid);
    if (busy)
        worker_escapees_now(w);
    else
        worker_escapees(w);
    free(w->in.buf);
    free(w);
}

static void worker_kill(iworker *w)
{
    worker_kill_as(w, 0);
}

/* The worker's exit status when a step closed the worker's end of its
 * connection (the descriptor is gone, not the host): the host tells that
 * apart from a step's exit().  A step that calls exit(WK_EXIT_FD_CLOSED)
 * is reported as closing it, which is no worse a diagnosis. */
#define WK_EXIT_FD_CLOSED 125

/* How the worker ended, once its socket said it did: its exit status or
 * signal, waited for within a moment (then killed).  Writes what follows
 * "its isolated worker (pid N) " into `sb` ("was killed by signal 11
 * (SIGSEGV)"). */
static void worker_reap(iworker *w, strbuf *sb)
{
    siginfo_t si;
    double until = now_mono() + 0.5;
    int done = 0;
    /* A pidfd turns readable the moment the worker ends: the crash is
     * reported (and the next call served) when the kernel has torn the
     * worker down, not at the next tick of a sleeping poll, which costs
     * a scheduler round trip each on a loaded machine. */
#ifdef SYS_pidfd_open
    int pfd = (int)syscall(SYS_pidfd_open, w->pid, 0);
#else
    int pfd = -1;
#endif
    while (!done && now_mono() < until) {
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (r == 0 && si.si_pid == w->pid)
            done = 1;
        else if (r < 0 && errno != EINTR)
            break;
        else if (pfd >= 0) {
            struct pollfd p = {pfd, POLLIN, 0};
            int ms = (int)((until - now_mono()) * 1e3) + 1;
            if (poll(&p, 1, ms > 0 ? ms : 0) < 0 && errno != EINTR) {
                close(pfd);
                pfd = -1;
            }
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (pfd >= 0)
        close(pfd);
    close(w->fd);
    w->fd = -1;
    kill(-w->pid, SIGKILL);
    int st = 0;
    pid_t r;
    while ((r = waitpid(w->pid, &st, 0)) < 0 && errno == EINTR)
        ;
    scanner_reaped(w->pid);
    worker_escapees_now(w);
    if (!done)
        /* Its end of the socket closed while it lived on: only a step
         * closing descriptors it does not own does that. */
        sb_printf(sb, "closed its connection to the host but went on running, so it was killed "
                      "(SIGKILL): a step must not close descriptors it did not open");
    else if (r == w->pid && WIFSIGNALED(st))
        sb_printf(sb, "was killed by signal %d (SIG%s)%s", WTERMSIG(st), sig_name(WTERMSIG(st)),
                  WTERMSIG(st) == SIGXCPU ? ": plugins.cpu_limit reached" : "");
    else if (r == w->pid && WIFEXITED(st) && WEXITSTATUS(st) == WK_EXIT_FD_CLOSED)
        sb_printf(sb, "lost its connection to the host because the step closed it: a step must "
                      "not close descriptors it did not open");
    else if (r == w->pid && WIFEXITED(st))
        sb_printf(sb, "exited with status %d: a step must never exit the process%s",
                  WEXITSTATUS(st),
#ifdef ISOLATE_ASAN
                  " (or a sanitizer ended it after a crash it reported)"
#else
                  ""
#endif
        );
    else
        sb_printf(sb, "ended, and its exit status was lost");
    free(w->in.buf);
    free(w);
}

/* Waits for a frame from `w` until `deadline` (now_mono; INFINITY: for
 * ever).  1 with the body, 0 at the deadline, -1 when the worker is gone
 * or spoke garbage. */
static int worker_frame(iworker *w, double deadline, const char **body, size_t *n)
{
    for (;;) {
        int f = frame_next(&w->in, body, n);
        if (f)
            return f;
        double left = deadline - now_mono();
        if (left <= 0)
            return 0;
        struct pollfd pf = {.fd = w->fd, .events = POLLIN};
        int ms = isinf(left) || left > 3600 ? 3600000 : (int)(left * 1000) + 1;
        int pr = poll(&pf, 1, ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        int r = in_fill(w->fd, &w->in);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
    }
}

/* ---- workers' stderr ----
 *
 * A worker's stderr (its warnings, a sanitizer's report of a crash in a
 * step, what a step prints) is a pipe one thread drains into the host's
 * log, line by line, at most DRAIN_BYTES per worker: never the host's own
 * stderr, which a process a step forks could hold open (ndf run | cat
 * would wait for it). */
#define DRAIN_MAX 64              /* pipes drained at once; more: /dev/null */
#define DRAIN_BYTES (64u << 10)   /* logged per worker; the rest is dropped */
#define DRAIN_LINE 1024           /* a longer line is logged in pieces */

typedef struct drain_src {
    int fd;
    unsigned long id; /* tells it from a later source at the same address */
    long pid;
    char plugin[64];
    size_t logged;
    int dropped;
    size_t len;
    char line[DRAIN_LINE];
} drain_src;

static struct {
    pthread_mutex_t lock;
    drain_src *v[DRAIN_MAX]; /* (lock) added by starters, removed by the drain thread */
    size_t n;
    int wake[2]; /* a byte tells the thread of a new source */
    int ok;      /* the thread runs */
    unsigned long ids; /* (lock) the last source's id */
} dr = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = {-1, -1}};

static void drain_emit(drain_src *d)
{
    if (!d->len)
        return;
    d->line[d->len] = '\0';
    if (d->logged < DRAIN_BYTES) {
        log_msg(NDF_LOG_WARN, "step worker %ld (plugin '%s'): %s", d->pid, d->plugin, d->line);
        d->logged += d->len;
    } else if (!d->dropped) {
        log_msg(NDF_LOG_WARN, "step worker %ld (plugin '%s'): more than %u KiB on stderr; the rest "
                              "is dropped",
                d->pid, d->plugin, DRAIN_BYTES >> 10);
        d->dropped = 1;
    }
    d->len = 0;
}

/* Reads what `d` has; 0 at its end (every writer gone). */
static int drain_read(drain_src *d)
{
    char buf[4096];
    ssize_t n = read(d->fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    if (n <= 0) {
        drain_emit(d);
        return 0;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n')
            drain_emit(d);
        else {
            d->line[d->len++] = buf[i];
            if (d->len == DRAIN_LINE - 1)
                drain_emit(d);
        }
    }
    return 1;
}

/* Removes and frees source `d`.  (dr.lock held) */
static void drain_drop_locked(drain_src *d)
{
    for (size_t j = 0; j < dr.n; j++)
        if (dr.v[j] == d) {
            dr.v[j] = dr.v[--dr.n];
            break;
        }
    close(d->fd);
    free(d);
}

/* The source `id` if it is still drained, else NULL.  (dr.lock held) */
static drain_src *drain_find_locked(unsigned long id)
{
    for (size_t j = 0; j < dr.n; j++)
        if (dr.v[j]->id == id)
            return dr.v[j];
    return NULL;
}

static void *drain_main(void *arg)
{
    (void)arg;
    struct pollfd pf[DRAIN_MAX + 1];
    unsigned long ids[DRAIN_MAX];
    for (;;) {
        /* ids and descriptors copied, not the sources: drain_flush (ndf's
         * exit) may free one while this thread polls */
        pthread_mutex_lock(&dr.lock);
        size_t n = dr.n;
        for (size_t i = 0; i < n; i++) {
            ids[i] = dr.v[i]->id;
            pf[i + 1] = (struct pollfd){.fd = dr.v[i]->fd, .events = POLLIN};
        }
        pthread_mutex_unlock(&dr.lock);
        pf[0] = (struct pollfd){.fd = dr.wake[0], .events = POLLIN};
        if (poll(pf, (nfds_t)n + 1, -1) < 0)
            continue;
        if (pf[0].revents) {
            char b[64];
            while (read(dr.wake[0], b, sizeof b) > 0)
                ;
        }
        /* Under the lock, so that drain_flush never reads a source at the
         * same time; only those still drained */
        pthread_mutex_lock(&dr.lock);
        for (size_t i = 0; i < n; i++) {
            drain_src *d = pf[i + 1].revents ? drain_find_locked(ids[i]) : NULL;
            if (d && !drain_read(d))
                drain_drop_locked(d);
        }
        pthread_mutex_unlock(&dr.lock);
    }
    return NULL;
}

/* At ndf's exit: what the workers wrote and the thread has not read yet
 * is logged (the last words of a worker that crashed just before). */
static void drain_flush(void)
{
    pthread_mutex_lock(&dr.lock);
    for (size_t i = 0; i < dr.n;) {
        drain_src *d = dr.v[i];
        struct pollfd pf = {.fd = d->fd, .events = POLLIN};
        int alive = 1;
        for (int rounds = 0; alive && rounds < 64 && poll(&pf, 1, 0) > 0; rounds++)
            alive = drain_read(d);
        if (alive) {
            drain_emit(d);
            i++;
        } else {
            drain_drop_locked(d);
        }
    }
    pthread_mutex_unlock(&dr.lock);
}

static void drain_start(void)
{
    if (pipe2(dr.wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    dr.ok = pthread_create(&t, &a, drain_main, NULL) == 0;
    pthread_attr_destroy(&a);
}

/* A pipe for a worker's stderr: 0 with *rd (the host's end, lifted above
 * the spawn's descriptors) and *wr (the worker's, to close after the
 * spawn); -1 when it cannot be drained (the worker's stderr is then
 * /dev/null). */
static int drain_pipe(int *rd, int *wr)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, drain_start);
    pthread_mutex_lock(&dr.lock);
    int room = dr.ok && dr.n < DRAIN_MAX;
    pthread_mutex_unlock(&dr.lock);
    int p[2];
    if (!room || pipe2(p, O_CLOEXEC) != 0)
        return -1;
    *rd = fcntl(p[0], F_DUPFD_CLOEXEC, SCANNER_FD + 8);
    *wr = fcntl(p[1], F_DUPFD_CLOEXEC, SCANNER_FD + 8);
    close(p[0]);
    close(p[1]);
    if (*rd < 0 || *wr < 0) {
        if (*rd >= 0)
            close(*rd);
        if (*wr >= 0)
            close(*wr);
        return -1;
    }
    return 0;
}

/* Hands the host's end `rd` of worker `pid`'s stderr to the drain thread
 * (which closes it at its end). */
static void drain_add(int rd, long pid, const char *plugin_name)
{
    drain_src *d = xcalloc(1, sizeof *d);
    d->fd = rd;
    d->pid = pid;
    snprintf(d->plugin, sizeof d->plugin, "%s", plugin_name);
    pthread_mutex_lock(&dr.lock);
    int added = dr.n < DRAIN_MAX;
    if (added) {
        d->id = ++dr.ids;
        dr.v[dr.n++] = d;
    }
    pthread_mutex_unlock(&dr.lock);
    if (!added) {
        close(rd);
        free(d);
        return;
    }
    ssize_t w = write(dr.wake[1], "", 1);
    (void)w; /* a full pipe has woken the thread already */
}

/* Starts a worker for key `k` and waits for READY.  NULL with err_msg()
 * set.  (iso_lock not held) */
static iworker *worker_start(ikey *k, const char *program)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        err_set(NDF_ERR_EXECUTION, "socketpair: %s", strerror(errno));
        return NULL;
    }
    int child = fcntl(sv[1], F_DUPFD_CLOEXEC, SCANNER_FD + 8);
    close(sv[1]);
    if (child < 0) {
        close(sv[0]);
        err_set(NDF_ERR_EXECUTION, "fcntl: %s", strerror(errno));
        return NULL;
    }
    char mem[32], lvl[16];
    snprintf(mem, sizeof mem, "%.0f", iso_mem_mb);
    snprintf(lvl, sizeof lvl, "%d", log_get_level());
    char *argv[] = {(char *)program, (char *)ISOLATE_WORKER_ARG, k->cache_dir, k->plugin, mem,
                    lvl, NULL};
    int fds[2] = {child, k->fd};
    /* The worker's environment carries its own NDF_STEP token (it is in
     * /proc/PID/environ of everything its steps fork): "HOSTPID.wN". */
    static atomic_ulong wseq;
    char token[48];
    snprintf(token, sizeof token, "%ld.w%lu", (long)getpid(), atomic_fetch_add(&wseq, 1) + 1);
    char *tokvar;
    char **envp = scanner_env_token(token, &tokvar);
    /* What a worker's steps leave behind when it dies comes to this
     * process, where worker_escapees looks for it. */
    process_become_subreaper();
    pid_t pid = 0;
    /* stdout to /dev/null, stderr to a pipe drained into the log: a
     * process a step forks must not hold the host's (ndf run | tail would
     * wait for it). */
    int err_rd = -1, err_wr = -1;
    if (drain_pipe(&err_rd, &err_wr) != 0)
        err_rd = err_wr = -1;
    int e = scanner_spawn_err(argv, fds, 2, 1, err_wr, envp, &pid);
    free(tokvar);
    free(envp);
    close(child);
    if (err_wr >= 0)
        close(err_wr);
    if (err_rd >= 0) {
        if (e)
            close(err_rd);
        else
            drain_add(err_rd, (long)pid, k->plugin);
    }
    if (e) {
        close(sv[0]);
        err_set(NDF_ERR_EXECUTION, "cannot start a step worker (%s): %s", program, strerror(e));
        return NULL;
    }
    atomic_fetch_add(&st_started, 1);
    iworker *w = xcalloc(1, sizeof *w);
    w->pid = pid;
    snprintf(w->token, sizeof w->token, "%s", token);
    w->fd = sv[0];
    const char *body;
    size_t n;
    int f = worker_frame(w, now_mono() + READY_TIMEOUT, &body, &n);
    if (f <= 0) {
        strbuf why;
        sb_init(&why);
        if (f == 0) {
            sb_printf(&why, "did not load the plugin within %.0f s, so it was killed (SIGKILL)",
                      READY_TIMEOUT);
            worker_kill(w);
        } else {
            sb_puts(&why, "ended while loading the plugin: it ");
            worker_reap(w, &why);
        }
        err_set(NDF_ERR_EXECUTION, "the step worker (pid %ld) for plugin '%s' %s", (long)pid,
                k->plugin, why.buf);
        sb_free(&why);
        return NULL;
    }
    rbuf r = {body, n, 0};
    unsigned op = r_u8(&r);
    int status = (int)r_i64(&r);
    char *msg = r_str(&r, NULL);
    frame_drop(&w->in, n);
    if (op != OP_READY || r.bad || status != NDF_OK) {
        err_set(status < 0 ? status : NDF_ERR_EXECUTION,
                "the step worker (pid %ld) could not load plugin '%s': %s", (long)pid, k->plugin,
                msg ? msg : "it spoke out of turn");
        free(msg);
        worker_kill(w);
        return NULL;
    }
    free(msg);
    return w;
}

static void spare_locked(ikey *k, const char *program);

/* A warm worker for `k`, or a new one.  NULL with err_msg() set. */
static iworker *worker_take(ikey *k, const char *program)
{
    pthread_mutex_lock(&iso_lock);
    while (k->idle) {
        iworker *w = k->idle;
        k->idle = w->next;
        k->nidle--;
        w->next = NULL;
        /* A worker that died idle (the OOM killer, an operator) is
         * replaced, not blamed on the next step. */
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == w->pid) {
            pthread_mutex_unlock(&iso_lock);
            worker_kill(w);
            pthread_mutex_lock(&iso_lock);
            continue;
        }
        spare_locked(k, program);
        pthread_mutex_unlock(&iso_lock);
        return w;
    }
    /* None warm (the first call of a build): a spare starts beside this
     * one, so the second call does not wait too. */
    spare_locked(k, program);
    pthread_mutex_unlock(&iso_lock);
    return worker_start(k, program);
}

static void worker_give(ikey *k, iworker *w)
{
    pthread_mutex_lock(&iso_lock);
    if (k->nidle >= (size_t)iso_max_idle) {
        pthread_mutex_unlock(&iso_lock);
        worker_kill(w);
        return;
    }
    w->next = k->idle;
    k->idle = w;
    k->nidle++;
    pthread_mutex_unlock(&iso_lock);
}

/* How many idle workers `k` keeps warm.  (iso_lock held) */
static size_t spare_target(const ikey *k)
{
    size_t t = k->lost ? 2 : 1;
    return t < (size_t)iso_max_idle ? t : (size_t)iso_max_idle;
}

static void *spare_main(void *arg)
{
    ikey *k = arg;
    for (;;) {
        pthread_mutex_lock(&iso_lock);
        int enough = k->nidle >= spare_target(k);
        if (enough)
            k->spawning = 0;
        pthread_mutex_unlock(&iso_lock);
        if (enough)
            break;
        iworker *w = worker_start(k, k->program);
        if (!w) {
            log_msg(NDF_LOG_WARN, "starting a spare step worker for plugin '%s': %s", k->plugin,
                    err_msg());
            pthread_mutex_lock(&iso_lock);
            k->spawning = 0;
            pthread_mutex_unlock(&iso_lock);
            break;
        }
        worker_give(k, w);
    }
    return NULL;
}

/* Keeps spares warm: when a call leaves fewer idle workers of `k` than
 * spare_target (one; two for a build whose worker was lost, so that the
 * call after a crash finds one ready even when the crash came right after
 * the previous one was taken), more are started in the background, so the
 * next call does not wait for a process to start.  (iso_lock held) */
static void spare_locked(ikey *k, const char *program)
{
    if (k->nidle >= spare_target(k) || k->spawning)
        return;
    k->program = program;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    if (pthread_create(&t, &a, spare_main, k) == 0)
        k->spawning = 1;
    pthread_attr_destroy(&a);
}

/* After a worker was lost: counted, and a spare started. */
static void worker_replace(ikey *k, const char *program)
{
    atomic_fetch_add(&st_replaced, 1);
    pthread_mutex_lock(&iso_lock);
    k->lost = 1;
    spare_locked(k, program);
    pthread_mutex_unlock(&iso_lock);
}

static void send_run(iworker *w, ndf_exec *node, const isolate_call *c, int *ok)
{
    const ndf_host *tbl = c->table;
    strbuf b;
    frame_begin(&b, c->undo ? OP_UNDO : OP_RUN);
    w_i64(&b, ++w->calls);
    w_i64(&b, (int64_t)c->serial);
    w_str(&b, c->type->name);
    w_value(&b, c->params);
    w_str(&b, node->name);
    w_str(&b, node->rec->id);
    const ndf_context *ctx = node->rec->ctx;
    w_str(&b, ctx ? tbl->ctx_domain(ctx) : NULL);
    w_str(&b, ctx ? tbl->ctx_agent_type(ctx) : NULL);
    w_i64(&b, ctx ? tbl->ctx_priority(ctx) : 1);
    w_value(&b, ctx ? tbl->ctx_attributes(ctx) : NULL);
    double dl = atomic_load(&node->deadline);
    w_f64(&b, isfinite(dl) ? dl - now_mono() : -1);
    w_f64(&b, node->rec->kill_grace);
    pthread_mutex_lock(&iso_lock);
    double cpu = iso_cpu_s;
    pthread_mutex_unlock(&iso_lock);
    w_f64(&b, cpu);
    *ok = frame_send(w->fd, &b) == 0;
}

/* Applies a DONE frame to `node`; returns the step's status (err_msg set
 * when it failed).  *recycle is set when the worker should not be reused. */
static int apply_done(rbuf *r, ndf_exec *node, const ndf_host *tbl, double mem_mb,
                      int *recycle)
{
    int rc = (int)r_i64(r);
    char *msg = r_str(r, NULL);
    char *result = r_str(r, NULL);
    uint32_t nm = r_u32(r);
    if (nm > NODE_METRICS_MAX)
        r->bad = 1;
    for (uint32_t i = 0; i < nm && !r->bad; i++) {
        char *name = r_str(r, NULL);
        double v = r_f64(r);
        if (name && !r->bad)
            tbl->node_set_metric(node, name, v);
        free(name);
    }
    for (int s = 0; s < 2 && !r->bad; s++) {
        size_t len;
        char *out = r_str(r, &len);
        if (out && len)
            node_append(node, s == 0 ? REC_STDOUT : REC_STDERR, out, len, 0);
        free(out);
    }
    /* The message the step gave its own node (node_set_state). */
    char *note = r_str(r, NULL);
    int measured = (int)r_u8(r);
    double user = r_f64(r), sys = r_f64(r);
    double maxrss_kb = r_f64(r);
    if (!r->bad && measured)
        node_add_usage(node, USAGE_WORKER, user, sys,
                       maxrss_kb > 0 && maxrss_kb < (double)LONG_MAX ? (long)maxrss_kb : 0);
    if (!r->bad && rc == NDF_OK && note)
        node_set_message(node, note);
    free(note);
    if (r->bad) {
        free(msg);
        free(result);
        *recycle = 1;
        return err_set(NDF_ERR_EXECUTION, "the step worker's answer was malformed");
    }
    if (result)
        tbl->node_set_result(node, result);
    free(result);
    /* A worker that holds more than half its limit is leaking: the next
     * step gets a fresh one rather than an out-of-memory failure. */
    if (rc == NDF_ERR_NOMEM || (mem_mb > 0 && maxrss_kb / 1024 > mem_mb / 2))
        *recycle = 1;
    if (rc != NDF_OK)
        err_set(rc, "%s", msg && *msg ? msg : ndf_status_name(rc));
    free(msg);
    return rc;
}

int isolate_run(ndf_exec *node, const isolate_call *c)
{
    const provided *p = c->type;
    int undo = c->undo;
    pthread_mutex_lock(&iso_lock);
    const char *program = iso_program;
    double mem_mb = iso_mem_mb;
    ikey *k = program ? key_for(p) : NULL;
    pthread_mutex_unlock(&iso_lock);
    if (!program)
        return err_set(NDF_ERR_EXECUTION, "step '%s': no step worker program", p->name);
    if (!k)
        return err_set(NDF_ERR_EXECUTION, "isolated step '%s': %s", p->name, err_msg());
    iworker *w = worker_take(k, program);
    if (!w)
        return err_set(NDF_ERR_EXECUTION, "isolated step '%s' of plugin '%s': %s", p->name,
                       k->plugin, err_msg());
    atomic_fetch_add(&st_calls, 1);
    /* The store learns the worker's group and token as for an exec step's
     * processes: if ndf itself is killed during the call, the next ndf to
     * open the store kills the worker and what its step left (setsid'd
     * daemons included). */
    record *rec = node->rec;
    int rb = atomic_load(&rec->rollbacks);
    if (rec->on_spawn && (strcmp(w->told, rec->id) != 0 || w->told_rollbacks != rb)) {
        rec->on_spawn(rec->spawn_arg, rec, (long)w->pid, w->token);
        snprintf(w->told, sizeof w->told, "%s", rec->id);
        w->told_rollbacks = rb;
    }
    int sent;
    send_run(w, node, c, &sent);
    double grace = node->rec->kill_grace > 0 ? node->rec->kill_grace : 2.0;
    /* The worker stops its step's processes itself at the deadline plus
     * kill_grace (SIGKILL to their groups) and answers: the host kills the
     * worker a moment later, so that normal path is not raced.  What a
     * killed worker's step left is then hunted down (worker_kill_as). */
    double margin = grace / 4 < 0.1 ? 0.1 : grace / 4 > 0.5 ? 0.5 : grace / 4;
    double stop_at = 0;
    int stop_rc = 0, rc = NDF_OK, recycle = 0, lost = !sent;
    while (!lost) {
        double now = now_mono();
        int s = node_stop_status_at(node, now);
        if (s && !stop_rc) {
            stop_rc = s;
            stop_at = now;
            /* A deadline the worker's node has as well; a cancellation is
             * told (the call's number, so it never hits a later call). */
            if (s == NDF_ERR_CANCELLED)
                sigqueue(w->pid, SIGUSR1, (union sigval){.sival_int = w->calls});
        }
        if (stop_rc && now >= stop_at + grace + margin) {
            pid_t pid = w->pid;
            worker_kill_as(w, 1);
            w = NULL;
            rc = err_set(stop_rc,
                         "step '%s' of plugin '%s' did not return %.3g s after its %s: its "
                         "isolated worker (pid %ld) was killed (SIGKILL)",
                         p->name, k->plugin, grace,
                         stop_rc == NDF_ERR_TIMEOUT ? "deadline" : "cancellation", (long)pid);
            worker_replace(k, program);
            return rc;
        }
        /* Cancellation from another thread is noticed within 50 ms. */
        double dl = atomic_load(&node->deadline);
        double until = stop_rc ? stop_at + grace + margin : now + 0.05;
        if (!stop_rc && isfinite(dl) && dl < until)
            until = dl;
        const char *body;
        size_t n;
        int f = worker_frame(w, until, &body, &n);
        if (f == 0) {
            /* A process the step forked may hold the socket open after the
             * worker died: its end is looked for at every tick too. */
            siginfo_t si;
            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                si.si_pid == w->pid) {
                lost = 1;
                break;
            }
            continue;
        }
        if (f < 0) {
            lost = 1;
            break;
        }
        rbuf r = {body, n, 0};
        unsigned op = r_u8(&r);
        if (op == OP_LOG) {
            int level = (int)r_i64(&r);
            char *text = r_str(&r, NULL);
            if (!r.bad && text)
                c->table->node_log(node, level < 0 || level > 3 ? NDF_LOG_INFO : level, "%s",
                                   text);
            free(text);
            frame_drop(&w->in, n);
        } else if (op == OP_EXPAND) {
            char *tmpl = r_str(&r, NULL);
            char *out = NULL;
            int erc = r.bad || !tmpl ? err_set(NDF_ERR_INVALID, "malformed expand")
                                     : c->table->expand(node, tmpl, &out);
            free(tmpl);
            frame_drop(&w->in, n);
            strbuf b;
            frame_begin(&b, OP_EXPAND_REPLY);
            w_i64(&b, erc);
            w_str(&b, out);
            w_str(&b, erc ? err_msg() : NULL);
            free(out);
            if (frame_send(w->fd, &b) != 0)
                lost = 1;
        } else if (op == OP_OUTPUT) {
            /* kept here as an in-process step's output is: the step's
             * limit (cut as process.c cuts it), spilled past the raw
             * window, seen by progress writes while the step runs */
            unsigned stream = r_u8(&r);
            int64_t limit = r_i64(&r);
            size_t len = 0;
            char *text = r_str(&r, &len);
            if (!r.bad && text && stream <= REC_STDERR && limit >= 0)
                node_append(node, (record_stream)stream, text, len,
                            (uint64_t)limit > RECORD_OUTPUT_MAX ? RECORD_OUTPUT_MAX
                                                                : (size_t)limit);
            free(text);
            frame_drop(&w->in, n);
        } else if (op == OP_DONE) {
            rc = apply_done(&r, node, c->table, mem_mb, &recycle);
            frame_drop(&w->in, n);
            break;
        } else {
            recycle = 1;
            rc = err_set(NDF_ERR_EXECUTION, "step '%s': its worker sent an unknown frame %u",
                         p->name, op);
            break;
        }
    }
    if (lost) {
        strbuf why;
        sb_init(&why);
        pid_t pid = w->pid;
        worker_reap(w, &why);
        rc = err_set(NDF_ERR_EXECUTION, "step '%s' of plugin '%s'%s: its isolated worker (pid %ld) %s",
                     p->name, k->plugin, undo ? " (undo)" : "", (long)pid, why.buf);
        sb_free(&why);
        worker_replace(k, program);
        return rc;
    }
    if (recycle) {
        char *saved = xstrdup(err_msg());
        worker_kill_as(w, 1);
        worker_replace(k, program);
        err_set(rc, "%s", saved);
        free(saved);
        return rc;
    }
    worker_give(k, w);
    return rc;
}

void isolate_get_stats(isolate_stats *out)
{
    memset(out, 0, sizeof *out);
    out->started = atomic_load(&st_started);
    out->replaced = atomic_load(&st_replaced);
    out->calls = atomic_load(&st_calls);
    pthread_mutex_lock(&iso_lock);
    for (ikey *k = keys; k; k = k->next)
        out->idle += k->nidle;
    pthread_mutex_unlock(&iso_lock);
}

void isolate_shutdown(void)
{
    pthread_mutex_lock(&iso_lock);
    /* Spares being started hold their key: let them finish. */
    for (int busy = 1; busy;) {
        busy = 0;
        for (ikey *k = keys; k; k = k->next)
            busy |= k->spawning;
        if (busy) {
            pthread_mutex_unlock(&iso_lock);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&iso_lock);
        }
    }
    ikey *all = keys;
    keys = NULL;
    pthread_mutex_unlock(&iso_lock);
    while (all) {
        ikey *k = all;
        all = k->next;
        while (k->idle) {
            iworker *w = k->idle;
            k->idle = w->next;
            worker_kill(w);
        }
        close(k->fd);
        free(k->plugin);
        free(k->cache_dir);
        free(k);
    }
    escapees_wait();
}

/* ==================================================================== */
/* The worker's side                                                    */
/* ==================================================================== */

/* A step bound in this worker: the host's validated parameters and what
 * the step's create() made of them, found again by the host's serial. */
typedef struct bound {
    uint64_t serial;
    const provided *type;
    ndf_value *params;
    void *instance;
} bound;

static const ndf_host *wk_host; /* the table create()/destroy() are handed */

static struct {
    int fd;
    loader *ld;
    inbuf in;              /* (rlock) frames from the host */
    pthread_mutex_t rlock; /* one reader: the main thread between calls,
                              wk_expand during one */
    pthread_mutex_t wlock; /* one frame at a time on the socket */
    pthread_mutex_t lock;  /* node and call */
    ndf_exec *node;        /* the node running now, for cancellation */
    int call;              /* its call number (the host's sigqueue value) */
    bound *steps;
    size_t nsteps;
} wk = {.fd = -1,
        .rlock = PTHREAD_MUTEX_INITIALIZER,
        .wlock = PTHREAD_MUTEX_INITIALIZER,
        .lock = PTHREAD_MUTEX_INITIALIZER};

/* The worker's end (the host is gone or spoke garbage): what its steps
 * started goes with it. */
static _Noreturn void wk_exit(void)
{
    process_kill_children();
    /* A step that closed the socket (it closed descriptors it does not
     * own) is told apart from the host's going away. */
    if (fcntl(wk.fd, F_GETFD) < 0 && errno == EBADF)
        _exit(WK_EXIT_FD_CLOSED);
    _exit(0);
}

/* Reads the next frame into `in` (rlock held); the host's end of the
 * socket closing ends the worker: there is nothing to finish for nobody. */
static void wk_read_frame(const char **body, size_t *n)
{
    for (;;) {
        int f = frame_next(&wk.in, body, n);
        if (f > 0)
            return;
        if (f < 0)
            wk_exit();
        int r = in_fill(wk.fd, &wk.in);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            wk_exit();
    }
}

static void wk_send(strbuf *b)
{
    pthread_mutex_lock(&wk.wlock);
    frame_send(wk.fd, b);
    pthread_mutex_unlock(&wk.wlock);
}

static void wk_node_log(ndf_exec *node, int level, const char *fmt, ...) NDF_PRINTF(3, 4);
static void wk_node_log(ndf_exec *node, int level, const char *fmt, ...)
{
    (void)node;
    if (!fmt)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    strbuf b;
    frame_begin(&b, OP_LOG);
    w_i64(&b, level);
    w_str(&b, msg);
    wk_send(&b);
}

/* The record's on_output: stdout and stderr of the running step go to
 * the host as they are read (the host keeps them under the step's limit,
 * and logs --follow sees them while the step runs); nothing is kept
 * here. */
static void wk_output(void *arg, ndf_exec *node, int stream, const char *buf, size_t len,
                      size_t limit)
{
    (void)arg;
    (void)node;
    while (len) {
        size_t k = len < OUTPUT_FRAME_MAX ? len : OUTPUT_FRAME_MAX;
        strbuf b;
        frame_begin(&b, OP_OUTPUT);
        w_u8(&b, (unsigned)stream);
        w_i64(&b, (int64_t)limit);
        w_mem(&b, buf, k);
        wk_send(&b);
        buf += k;
        len -= k;
    }
}

/* A pattern runs on the host's executor, which a worker does not have
 * (its record holds the one step node): the step fails, saying how to run
 * it in the host instead. */
static int wk_run_pattern(ndf_exec *node, const char *name, double timeout_s)
{
    (void)node;
    (void)timeout_s;
    plugin_info info;
    memset(&info, 0, sizeof info);
    if (wk.ld && loader_count(wk.ld) > 0)
        loader_plugin(wk.ld, 0, &info);
    const char *pl = info.name ? info.name : "?";
    return err_set(NDF_ERR_EXECUTION,
                   "run_pattern '%s': this step runs isolated in a step worker (its plugin '%s' "
                   "is not installed with ndf), and a worker cannot run patterns; trust the "
                   "plugin (plugins.trust = [ \"%s\" ]) or run steps in process "
                   "(plugins.isolation = \"none\")",
                   name ? name : "", pl, pl);
}

/* ${steps.NAME.result} needs the host's record: every expansion is asked
 * of the host, so its result is the one the host would give. */
static int wk_expand(const ndf_exec *node, const char *tmpl, char **out)
{
    (void)node;
    *out = NULL;
    if (!tmpl)
        return err_set(NDF_ERR_INVALID, "expand: no template");
    pthread_mutex_lock(&wk.rlock);
    strbuf b;
    frame_begin(&b, OP_EXPAND);
    w_str(&b, tmpl);
    wk_send(&b);
    const char *body;
    size_t n;
    wk_read_frame(&body, &n);
    rbuf r = {body, n, 0};
    unsigned op = r_u8(&r);
    int rc = (int)r_i64(&r);
    char *text = r_str(&r, NULL);
    char *msg = r_str(&r, NULL);
    frame_drop(&wk.in, n);
    pthread_mutex_unlock(&wk.rlock);
    if (op != OP_EXPAND_REPLY || r.bad)
        rc = NDF_ERR_EXECUTION;
    if (rc) {
        err_set(rc, "%s", msg ? msg : "expand: the host's answer was malformed");
        free(text);
    } else {
        *out = text ? text : xstrdup("");
    }
    free(msg);
    return rc;
}

static ndf_host wk_table;

/* Cancellation arrives as SIGUSR1 (sigqueue'd with the call's number),
 * not on the socket, so that only one thread ever reads it. */
static void *wk_signals(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    for (;;) {
        siginfo_t si;
        if (sigwaitinfo(&set, &si) < 0)
            continue;
        pthread_mutex_lock(&wk.lock);
        if (wk.node && si.si_code == SI_QUEUE && si.si_value.sival_int == wk.call)
            node_cancel(wk.node);
        pthread_mutex_unlock(&wk.lock);
    }
    return NULL;
}

static void wk_unbind(bound *b)
{
    const ndf_step_def *d = b->type->def.step;
    if (b->instance && DEF_HAS(d, destroy) && d->destroy)
        d->destroy(wk_host, b->instance);
    value_free(b->params);
}

/* The step bound with serial `serial`, bound now from `type` and `params`
 * (ownership passes) when new.  NULL with err_msg() set. */
static bound *wk_bind(uint64_t serial, const char *type, ndf_value **params)
{
    for (size_t i = 0; i < wk.nsteps; i++)
        if (wk.steps[i].serial == serial)
            return &wk.steps[i];
    const provided *p = loader_find(wk.ld, PROVIDED_STEP, type);
    if (!p) {
        err_set(NDF_ERR_NOT_FOUND, "step '%s' is not in this build of the plugin", type);
        return NULL;
    }
    if (wk.nsteps >= 256) {
        for (size_t i = 0; i < wk.nsteps; i++)
            wk_unbind(&wk.steps[i]);
        wk.nsteps = 0;
    }
    bound b = {serial, p, *params, NULL};
    if (!b.params)
        b.params = value_new_group(NULL);
    *params = NULL;
    const ndf_step_def *d = p->def.step;
    if (DEF_HAS(d, create) && d->create) {
        err_clear();
        loader *prev = loader_scope_enter(wk.ld);
        int rc = d->create(wk_host, b.params, &b.instance);
        loader_scope_leave(prev);
        if (rc) {
            if (!*err_msg())
                err_set(rc < 0 ? rc : NDF_ERR_VALIDATION, "step '%s' refused its parameters",
                        type);
            value_free(b.params);
            return NULL;
        }
    }
    wk.steps = xrealloc(wk.steps, (wk.nsteps + 1) * sizeof *wk.steps);
    wk.steps[wk.nsteps] = b;
    return &wk.steps[wk.nsteps++];
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* /proc/self/clear_refs and /proc/self/status, opened once (a call's
 * accounting then costs a write and a pread, not four more system calls);
 * -1 where they cannot be, or once a step closed them. */
static int wk_clear_fd = -1, wk_status_fd = -1;
static struct stat wk_clear_st, wk_status_st;

static int wk_proc_open(const char *path, int flags, struct stat *st)
{
    int fd = open(path, flags | O_CLOEXEC);
    int hi = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 64) : -1;
    if (fd >= 0)
        close(fd);
    if (hi >= 0 && fstat(hi, st) != 0) {
        close(hi);
        hi = -1;
    }
    return hi;
}

static void wk_usage_open(void)
{
    wk_clear_fd = wk_proc_open("/proc/self/clear_refs", O_WRONLY, &wk_clear_st);
    wk_status_fd = wk_proc_open("/proc/self/status", O_RDONLY, &wk_status_st);
}

/* 1 while `fd` is still the file opened as `was`: a step may close
 * descriptors it does not own and open others in their place. */
static int wk_proc_same(int fd, const struct stat *was)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == was->st_dev && st.st_ino == was->st_ino;
}

/* Resets the kernel's peak-RSS mark of this process to its current RSS
 * (Linux >= 4.0), so that the peak read after a call is that call's, not
 * the worker's lifetime's.  0, or -1 when it cannot be. */
static int wk_peak_reset(void)
{
    return wk_proc_same(wk_clear_fd, &wk_clear_st) && write(wk_clear_fd, "5", 1) == 1 ? 0 : -1;
}

/* VmHWM of this process in KiB, or -1.  (getrusage's ru_maxrss will not
 * do: it starts at the peak of the host that posix_spawn'd the worker.) */
static long wk_peak_kb(void)
{
    char buf[4096];
    ssize_t n = wk_proc_same(wk_status_fd, &wk_status_st)
                    ? pread(wk_status_fd, buf, sizeof buf - 1, 0)
                    : -1;
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nVmHWM:");
    return p ? strtol(p + 7, NULL, 10) : -1;
}

/* The usage of this worker and its reaped children, for the deltas of one
 * call. */
typedef struct wk_usage {
    struct rusage self, kids;
} wk_usage;

/* What a warm call can skip (each system call costs microseconds in some
 * VMs, more than a no-op step):
 * - the children's usage before a call is what it was after the last:
 *   nothing reaps between calls (process_kill_children runs inside one);
 * - the peak mark is reset only after a call that faulted pages in, and
 *   VmHWM read only after such a call or once after the reset: the
 *   resident size grows only by page faults (the kernel counts those made
 *   for the process too: populate, mlock), so after a call without one the
 *   mark read before still bounds it (exactly, unless memory was freed). */
static struct {
    int known;             /* the fields below are from an earlier call */
    struct rusage kids;    /* RUSAGE_CHILDREN after the last call */
    long faults;           /* minor + major faults of the worker then */
    int armed;             /* the peak mark was reset since the last faults */
    long peak;             /* VmHWM read since that reset, or -1 */
} wk_acct = {.peak = -1};

static void wk_usage_begin(wk_usage *u)
{
    if (!wk_acct.armed) {
        wk_acct.armed = wk_peak_reset() == 0;
        wk_acct.peak = -1;
    }
    if (getrusage(RUSAGE_SELF, &u->self) != 0)
        memset(&u->self, 0, sizeof u->self);
    if (wk_acct.known)
        u->kids = wk_acct.kids;
    else if (getrusage(RUSAGE_CHILDREN, &u->kids) != 0)
        memset(&u->kids, 0, sizeof u->kids);
}

/* What the call used since wk_usage_begin: CPU of every thread of the
 * worker and of the children it reaped, and the peak RSS of the worker
 * during the call (its lifetime's where the mark could not be reset), or
 * of a child that outgrew it. */
static void wk_usage_end(const wk_usage *u, double *user, double *sys, long *maxrss)
{
    struct rusage self, kids;
    if (getrusage(RUSAGE_SELF, &self) != 0)
        self = u->self;
    if (getrusage(RUSAGE_CHILDREN, &kids) != 0)
        kids = u->kids;
    *user = tv_s(&self.ru_utime) - tv_s(&u->self.ru_utime) + tv_s(&kids.ru_utime) -
            tv_s(&u->kids.ru_utime);
    *sys = tv_s(&self.ru_stime) - tv_s(&u->self.ru_stime) + tv_s(&kids.ru_stime) -
           tv_s(&u->kids.ru_stime);
    long faults = self.ru_minflt + self.ru_majflt;
    /* since the last call's end, not this call's start: what the worker
     * did between calls may have faulted too */
    int faulted = !wk_acct.known || faults != wk_acct.faults;
    long peak = -1;
    if (wk_acct.armed) {
        if (!faulted && wk_acct.peak >= 0) {
            peak = wk_acct.peak;
        } else {
            peak = wk_peak_kb();
            wk_acct.peak = peak;
            if (faulted)
                wk_acct.armed = 0; /* reset before the next call */
        }
    }
    *maxrss = peak >= 0 ? peak : self.ru_maxrss;
    if (kids.ru_maxrss > u->kids.ru_maxrss && kids.ru_maxrss > *maxrss)
        *maxrss = kids.ru_maxrss;
    wk_acct.known = 1;
    wk_acct.kids = kids;
    /* after the reads above, which may fault themselves */
    struct rusage again;
    wk_acct.faults = faulted && getrusage(RUSAGE_SELF, &again) == 0
                         ? again.ru_minflt + again.ru_majflt
                         : faults;
}

static void wk_job(const char *body, size_t n)
{
    rbuf r = {body, n, 0};
    unsigned op = r_u8(&r);
    int call = (int)r_i64(&r);
    uint64_t serial = (uint64_t)r_i64(&r);
    char *type = r_str(&r, NULL);
    ndf_value *params = r_value(&r, 0);
    char *name = r_str(&r, NULL);
    char *id = r_str(&r, NULL);
    char *domain = r_str(&r, NULL);
    char *agent = r_str(&r, NULL);
    int prio = (int)r_i64(&r);
    ndf_value *attrs = r_value(&r, 0);
    double remaining = r_f64(&r);
    double grace = r_f64(&r);
    double cpu_limit = r_f64(&r);
    int rc = NDF_OK;
    record *rec = NULL;
    ndf_exec *node = NULL;
    wk_usage usage;
    int measured = 0;
    err_clear();
    if (r.bad || !type) {
        rc = err_set(NDF_ERR_EXECUTION, "the step worker got a malformed request");
        goto done;
    }
    ndf_context *ctx = context_new(domain, agent, prio);
    for (size_t i = 0; attrs && i < value_count(attrs); i++) {
        ndf_value *a = value_at(attrs, i);
        if (a->name)
            context_set_attr(ctx, a->name, value_dup(a));
    }
    rec = record_new(type, ctx, remaining >= 0 ? now_mono() + remaining : INFINITY);
    context_free(ctx);
    if (id)
        snprintf(rec->id, sizeof rec->id, "%s", id);
    rec->kill_grace = grace;
    rec->on_output = wk_output;
    node = node_new(rec->root, NDF_NODE_STEP, name ? name : type);
    bound *st = wk_bind(serial, type, &params);
    if (!st) {
        rc = *err_msg() ? (int)NDF_ERR_VALIDATION : NDF_ERR_EXECUTION;
        char *m = xstrdup(err_msg());
        err_set(rc, "in its isolated worker: %s", m);
        free(m);
        goto done;
    }
    const ndf_step_def *d = st->type->def.step;
    node->step = st->type;
    node->cleanup = op == OP_UNDO;
    /* CPU time is per call: the soft limit is raised past what earlier
     * calls used, so only this one's use can reach it (SIGXCPU). */
    if (cpu_limit > 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double used = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec + 1;
        struct rlimit rl;
        getrlimit(RLIMIT_CPU, &rl);
        rl.rlim_cur = (rlim_t)(used + cpu_limit);
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
            rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_CPU, &rl);
    }
    pthread_mutex_lock(&wk.lock);
    wk.node = node;
    wk.call = call;
    pthread_mutex_unlock(&wk.lock);
    node_set_state(node, NDF_STATE_RUNNING, NULL);
    err_clear();
    wk_usage_begin(&usage);
    measured = 1;
    if (op == OP_UNDO)
        rc = DEF_HAS(d, undo) && d->undo ? d->undo(&wk_table, node, st->params, st->instance)
                                         : NDF_OK;
    else
        rc = d->run(&wk_table, node, st->params, st->instance);
    if (rc > 0 || rc < NDF_STATUS_MIN)
        rc = NDF_ERR_EXECUTION;
    pthread_mutex_lock(&wk.lock);
    wk.node = NULL;
    pthread_mutex_unlock(&wk.lock);
done:;
    /* Nothing the call started outlives it (as for exec steps): its
     * children, and the orphans reparented here (a subreaper), setsid'd
     * daemons included. */
    process_kill_children();
    strbuf b;
    frame_begin(&b, OP_DONE);
    w_i64(&b, rc);
    w_str(&b, rc ? err_msg() : NULL);
    char *result = node ? node_result_dup(node) : NULL;
    w_str(&b, result);
    free(result);
    if (node) {
        pthread_mutex_lock(&rec->lock);
        w_u32(&b, (uint32_t)node->nmetrics);
        for (size_t i = 0; i < node->nmetrics; i++) {
            w_str(&b, node->metrics[i].name);
            w_f64(&b, node->metrics[i].value);
        }
        for (int s = 0; s < 2; s++)
            w_mem(&b, node->out[s].buf ? node->out[s].buf : "", node->out[s].len);
        w_str(&b, node->message);
        pthread_mutex_unlock(&rec->lock);
    } else {
        w_u32(&b, 0);
        w_mem(&b, "", 0);
        w_mem(&b, "", 0);
        w_str(&b, NULL);
    }
    /* After process_kill_children: what the step's processes used is the
     * call's too. */
    double user = 0, sys = 0;
    long maxrss = 0;
    if (measured)
        wk_usage_end(&usage, &user, &sys, &maxrss);
    else {
        struct rusage ru;
        maxrss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    }
    w_u8(&b, (unsigned)measured);
    w_f64(&b, user);
    w_f64(&b, sys);
    w_f64(&b, (double)maxrss);
    wk_send(&b);
    if (rec)
        record_unref(rec);
    value_free(params);
    value_free(attrs);
    free(type);
    free(name);
    free(id);
    free(domain);
    free(agent);
}

/* Copies the plugin (open on `src`) into a fresh directory under
 * `cache_dir` and returns its path there (caller frees and removes). */
static char *wk_copy(int src, const char *cache_dir, const char *name, char **dir_out)
{
    char *tmpl = xasprintf("%s/.worker-XXXXXX", cache_dir);
    if (!mkdtemp(tmpl)) {
        err_set(NDF_ERR_IO, "cannot make a directory in %s: %s", cache_dir, strerror(errno));
        free(tmpl);
        return NULL;
    }
    char *path = xasprintf("%s/%s.so", tmpl, name);
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    int ok = out >= 0;
    char buf[65536];
    off_t off = 0;
    while (ok) {
        ssize_t n = pread(src, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ok = 0;
            break;
        }
        if (n == 0)
            break;
        off += n;
        if (fs_write_all(out, buf, (size_t)n) != 0)
            ok = 0;
    }
    if (out >= 0 && close(out) != 0)
        ok = 0;
    if (!ok) {
        err_set(NDF_ERR_IO, "cannot copy the plugin into %s: %s", tmpl, strerror(errno));
        unlink(path);
        rmdir(tmpl);
        free(path);
        free(tmpl);
        return NULL;
    }
    *dir_out = tmpl;
    return path;
}

int isolate_worker_main(int argc, char **argv, const ndf_host *table)
{
    struct stat st;
    if (argc != 6 || fstat(SCANNER_FD, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "ndf: %s is the step worker's mode, started by ndf itself\n",
                ISOLATE_WORKER_ARG);
        return 2;
    }
    wk.fd = SCANNER_FD;
    int plugin_fd = SCANNER_FD + 1;
    /* Before any thread exists, so every one (the step's too) inherits it. */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    /* A crash is reported by the host; a core file of every crashed worker
     * would fill the working directory. */
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    fcntl(wk.fd, F_SETFD, FD_CLOEXEC);
    fcntl(plugin_fd, F_SETFD, FD_CLOEXEC);
    /* Nothing else of the host's reaches a step or what it starts. */
    int closed = -1;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    closed = close_range((unsigned)plugin_fd + 1, ~0u, 0);
#endif
    if (closed != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = plugin_fd + 1; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
            close((int)fd);
    }
    /* What a step forks is this worker's to stop: orphans are reparented
     * here (a child subreaper) and killed at the end of the call; every
     * one carries the worker's NDF_STEP token, or one below it (the host
     * put it in its environment; an exec step's processes get "TOKEN/..."),
     * so the host finds those left behind when the worker itself is killed
     * (setsid'd ones too). */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    wk_usage_open();
    log_set_level(atoi(argv[5]));
    double mem_mb = strtod(argv[4], NULL);
#ifndef ISOLATE_ASAN
    if (mem_mb > 0) {
        struct rlimit rl = {(rlim_t)(mem_mb * 1024 * 1024), (rlim_t)(mem_mb * 1024 * 1024)};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            log_msg(NDF_LOG_WARN, "step worker: plugins.memory_limit not applied: %s",
                    strerror(errno));
    }
#else
    (void)mem_mb;
#endif
    wk_host = table;
    wk_table = *table;
    wk_table.node_log = wk_node_log;
    wk_table.expand = wk_expand;
    wk_table.run_pattern = wk_run_pattern;

    char *dir = NULL;
    char *path = wk_copy(plugin_fd, argv[2], argv[3], &dir);
    close(plugin_fd);
    int rc = NDF_OK;
    if (path) {
        wk.ld = loader_new_in_place(table, path);
        if (!wk.ld)
            rc = NDF_ERR_EXECUTION;
        unlink(path);
        rmdir(dir);
    } else {
        rc = NDF_ERR_IO;
    }
    free(path);
    free(dir);
    strbuf b;
    frame_begin(&b, OP_READY);
    w_i64(&b, rc);
    w_str(&b, rc ? err_msg() : NULL);
    wk_send(&b);
    if (rc)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, wk_signals, NULL) != 0)
        return 1;
    for (;;) {
        const char *body;
        size_t n;
        pthread_mutex_lock(&wk.rlock);
        wk_read_frame(&body, &n);
        char *job = xmalloc(n);
        memcpy(job, body, n);
        frame_drop(&wk.in, n);
        pthread_mutex_unlock(&wk.rlock);
        if (n && ((unsigned char)job[0] == OP_RUN || (unsigned char)job[0] == OP_UNDO))
            wk_job(job, n);
        free(job);
    }
}
