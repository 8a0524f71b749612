/* Crash notes (see crash.h): the fatal-signal handler, which formats with
 * its own async-signal-safe helpers into a stack buffer and writes with
 * write(2), and the reader of the note at the next start. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plugin/loader.h"
#include "exec/crash.h"
#include "exec/record.h"
#include "base/util.h"

_Thread_local crash_frame crash_cur;

static _Atomic int dir_fd = -1; /* the state directory, for openat() */

static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};

static const char *sig_short(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    default: return "signal";
    }
}

/* A bounded buffer written with async-signal-safe code only. */
typedef struct sbuf {
    char b[2048];
    size_t n;
} sbuf;

static void put(sbuf *s, const char *t)
{
    while (t && *t && s->n < sizeof s->b - 1)
        s->b[s->n++] = *t++;
}

static void put_num(sbuf *s, long v)
{
    char tmp[24];
    int i = 0;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
    do
        tmp[i++] = (char)('0' + u % 10);
    while ((u /= 10) && i < (int)sizeof tmp);
    if (v < 0)
        put(s, "-");
    while (i > 0 && s->n < sizeof s->b - 1)
        s->b[s->n++] = tmp[--i];
}

/* One "key=value" line; newlines in the value (names from configuration
 * or plugins) become spaces, so the note stays one line per key. */
static void put_kv(sbuf *s, const char *key, const char *val)
{
    put(s, key);
    put(s, "=");
    for (const char *p = val ? val : ""; *p && s->n < sizeof s->b - 1; p++)
        s->b[s->n++] = *p == '\n' ? ' ' : *p;
    put(s, "\n");
}

static void write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

static void on_fatal(int sig)
{
    int saved = errno;
    const crash_frame cur = crash_cur;
    const ndf_exec *node = cur.node;
    const record *r = node ? node->rec : NULL;
    const char *file = NULL;
    const char *plugin_name = cur.type ? loader_provided_plugin(cur.type, &file) : NULL;

    sbuf msg = {.n = 0};
    put(&msg, "ndf: fatal signal ");
    put_num(&msg, sig);
    put(&msg, " (");
    put(&msg, sig_short(sig));
    put(&msg, ") in process ");
    put_num(&msg, (long)getpid());
    if (node) {
        put(&msg, " while running step '");
        put(&msg, node->name);
        put(&msg, "'");
        if (cur.type) {
            put(&msg, " (type ");
            put(&msg, cur.type->name);
            if (plugin_name) {
                put(&msg, ", plugin ");
                put(&msg, plugin_name);
            }
            if (file) {
                put(&msg, ", file ");
                put(&msg, file);
            }
            put(&msg, ")");
        }
        if (r) {
            put(&msg, " of pattern '");
            put(&msg, r->root->name);
            put(&msg, "', execution ");
            put(&msg, r->id);
        }
    } else {
        put(&msg, " (no step was running on the crashing thread)");
    }
    put(&msg, "\n");
    write_all(STDERR_FILENO, msg.b, msg.n);

    int dfd = atomic_load(&dir_fd);
    if (dfd >= 0) {
        int fd = openat(dfd, CRASH_NOTE_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            sbuf note = {.n = 0};
            put(&note, "pid=");
            put_num(&note, (long)getpid());
            put(&note, "\nsignal=");
            put_num(&note, sig);
            put(&note, "\ntime=");
            put_num(&note, (long)time(NULL));
            put(&note, "\n");
            put_kv(&note, "execution", r ? r->id : NULL);
            put_kv(&note, "pattern", r ? r->root->name : NULL);
            put_kv(&note, "step", node ? node->name : NULL);
            put_kv(&note, "type", cur.type ? cur.type->name : NULL);
            put_kv(&note, "plugin", plugin_name);
            put_kv(&note, "file", file);
            write_all(fd, note.b, note.n);
            fsync(fd);
            close(fd);
        }
    }
    /* SA_RESETHAND put the default action back; SA_NODEFER lets it
     * through now: the process dies of `sig` as it would have. */
    errno = saved;
    raise(sig);
}

/* ---- alternate signal stacks ----
 *
 * A step that overflows its stack leaves the handler no stack to run on:
 * the kernel then kills the process without a note.  Every thread that
 * runs steps gets a stack of its own for the handler (sigaltstack is per
 * thread), unmapped when the thread ends. */

#define ALT_STACK_SIZE (64 * 1024)

static pthread_key_t alt_key;
static pthread_once_t alt_once = PTHREAD_ONCE_INIT;
static _Thread_local void *alt_stack;

static void alt_release(void *mem)
{
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(mem, ALT_STACK_SIZE);
}

static void alt_key_make(void)
{
    pthread_key_create(&alt_key, alt_release);
}

void crash_thread_init(void)
{
    if (alt_stack)
        return;
    stack_t cur;
    /* one set up by someone else (a sanitizer's) stays */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;
    void *mem = mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED)
        return; /* no note on an overflow, as before */
    stack_t ss = {.ss_sp = mem, .ss_size = ALT_STACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, ALT_STACK_SIZE);
        return;
    }
    alt_stack = mem;
    pthread_once(&alt_once, alt_key_make);
    pthread_setspecific(alt_key, mem);
}

void crash_arm(const char *state_dir)
{
    int fd = -1;
    if (state_dir && *state_dir)
        fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int old = atomic_exchange(&dir_fd, fd);
    if (old >= 0)
        close(old);
    crash_thread_init();
    static _Atomic int armed;
    if (atomic_exchange(&armed, 1))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    /* SA_ONSTACK: on the thread's alternate stack where it has one */
    sa.sa_flags = SA_RESETHAND | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ARRAY_SIZE(fatal); i++) {
        /* A handler someone else installed (a sanitizer's) stays. */
        struct sigaction cur;
        if (sigaction(fatal[i], NULL, &cur) == 0 && cur.sa_handler != SIG_DFL)
            continue;
        sigaction(fatal[i], &sa, NULL);
    }
}

/* The value of `key` in note text `t` (a pointer into it, up to the end
 * of its line: *len), or NULL. */
static const char *note_get(const char *t, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (const char *p = t; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1;
            *len = strcspn(v, "\n");
            return v;
        }
    return NULL;
}

int crash_note_peek(const char *state_dir, long *pid, char **cause)
{
    if (!state_dir || !*state_dir)
        return -1;
    char *path = xasprintf("%s/%s", state_dir, CRASH_NOTE_NAME);
    FILE *f = fopen(path, "re");
    free(path);
    if (!f)
        return -1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    size_t l;
    const char *v;
    *pid = (v = note_get(buf, "pid", &l)) ? atol(v) : 0;
    int sig = (v = note_get(buf, "signal", &l)) ? atoi(v) : 0;
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "signal %d (%s)", sig, sig_short(sig));
    if ((v = note_get(buf, "step", &l)) && l) {
        sb_printf(&sb, " in step '%.*s'", (int)l, v);
        const char *t, *pl, *fl;
        size_t tl = 0, pll = 0, fll = 0;
        t = note_get(buf, "type", &tl);
        pl = note_get(buf, "plugin", &pll);
        fl = note_get(buf, "file", &fll);
        if (t && tl)
            sb_printf(&sb, " (type %.*s", (int)tl, t);
        if (t && tl && pl && pll)
            sb_printf(&sb, ", plugin %.*s", (int)pll, pl);
        if (t && tl && fl && fll)
            sb_printf(&sb, ", file %.*s", (int)fll, fl);
        if (t && tl)
            sb_puts(&sb, ")");
    } else {
        sb_puts(&sb, " outside any step");
    }
    *cause = sb_steal(&sb);
    return 0;
}

char *crash_note_take(const char *state_dir)
{
    if (!state_dir || !*state_dir)
        return NULL;
    char *path = xasprintf("%s/%s", state_dir, CRASH_NOTE_NAME);
    FILE *f = fopen(path, "re");
    if (!f) {
        free(path);
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    strbuf sb;
    sb_init(&sb);
    size_t l;
    const char *v;
    sb_puts(&sb, "the previous ndf");
    if ((v = note_get(buf, "pid", &l)))
        sb_printf(&sb, " (pid %.*s)", (int)l, v);
    int sig = (v = note_get(buf, "signal", &l)) ? atoi(v) : 0;
    sb_printf(&sb, " died of signal %d (%s)", sig, sig_short(sig));
    if ((v = note_get(buf, "step", &l)) && l) {
        sb_printf(&sb, " while running step '%.*s'", (int)l, v);
        const char *t, *pl, *fl;
        size_t tl = 0, pll = 0, fll = 0;
        t = note_get(buf, "type", &tl);
        pl = note_get(buf, "plugin", &pll);
        fl = note_get(buf, "file", &fll);
        if (t && tl)
            sb_printf(&sb, " (type %.*s", (int)tl, t);
        if (pl && pll)
            sb_printf(&sb, ", plugin %.*s", (int)pll, pl);
        if (fl && fll)
            sb_printf(&sb, ", file %.*s", (int)fll, fl);
        if (t && tl)
            sb_puts(&sb, ")");
        if ((v = note_get(buf, "pattern", &l)) && l)
            sb_printf(&sb, " of pattern '%.*s'", (int)l, v);
        if ((v = note_get(buf, "execution", &l)) && l)
            sb_printf(&sb, ", execution %.*s (CRASHED in the store)", (int)l, v);
        if (fl && fll)
            sb_puts(&sb, "; if it happens again, remove or fix that plugin");
    } else {
        sb_puts(&sb, " outside any step");
    }
    sb_printf(&sb, " (note %s, now removed)", path);
    free(path);
    return sb_steal(&sb);
}
