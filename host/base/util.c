/* Host-wide helpers: allocation, the per-thread error message, strbuf and
 * the one JSON writer for strings and numbers, clocks, name validation, the
 * glob matcher and logging. */
#include "build-config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ndf/host.h>

#include "base/util.h"

static void ATTR_NORETURN oom(size_t n)
{
    fprintf(stderr, "ndf: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return xstrdup("");
    char *p = xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

/* One message per thread, like errno, so concurrent executions never see
 * each other's errors; thread-local rather than in an owner struct because
 * every layer and every plugin (through host->fail/last_error) sets and
 * reads it without a handle in common, as with errno.  Fixed size: a
 * message longer than this is cut. */
static _Thread_local char err_buf[2048];

/* Copies `msg` into `to` (`size` bytes, cut to fit) through term_safe():
 * messages quote names, values, configuration text, file names and what
 * plugins and clients said, and are printed on terminals and in logs, so
 * one escape here covers every place that prints them. */
static void err_store(const char *msg, char *to, size_t size)
{
    const unsigned char *p = (const unsigned char *)msg;
    while (*p == '\t' || (*p >= 0x20 && *p < 0x7F))
        p++;
    if (!*p) { /* plain ASCII: the common case, copied as it is */
        memcpy(to, msg, (size_t)((const char *)p - msg) + 1);
        return;
    }
    char *safe = term_safe(msg);
    size_t n = strlen(safe);
    if (n >= size)
        n = size - 1;
    memcpy(to, safe, n);
    to[n] = '\0';
    free(safe);
}

int err_vset(int status, const char *fmt, va_list ap)
{
    /* Formatted aside first: the arguments may point into err_buf itself
     * (err_set(st, "context: %s", err_msg()), or a plugin's
     * host->fail(rc, "%s", host->last_error())), and vsnprintf must never
     * write the buffer it reads. */
    char msg[sizeof err_buf];
    vsnprintf(msg, sizeof msg, fmt, ap);
    err_store(msg, err_buf, sizeof err_buf);
    return status;
}

int err_set(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(status, fmt, ap);
    va_end(ap);
    return status;
}

int err_prefix(int status, const char *fmt, ...)
{
    char raw[512], prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    err_store(raw, prefix, sizeof prefix);
    /* Shift the old message right and put the prefix in front; the tail is
     * cut when the two do not fit. */
    size_t plen = strlen(prefix) + 2, olen = strlen(err_buf);
    if (plen >= sizeof err_buf)
        plen = sizeof err_buf - 1;
    if (plen + olen >= sizeof err_buf)
        olen = sizeof err_buf - 1 - plen;
    memmove(err_buf + plen, err_buf, olen);
    err_buf[plen + olen] = '\0';
    memcpy(err_buf, prefix, plen - 2);
    memcpy(err_buf + plen - 2, ": ", 2);
    return status;
}

const char *err_msg(void)
{
    return err_buf;
}

void err_clear(void)
{
    err_buf[0] = '\0';
}

void sb_init(strbuf *sb)
{
    sb->buf = NULL;
    sb->len = sb->cap = 0;
}

static void sb_grow(strbuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    sb->buf = xrealloc(sb->buf, cap);
    sb->cap = cap;
}

void sb_add(strbuf *sb, const char *s, size_t n)
{
    sb_grow(sb, n);
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void sb_puts(strbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

void sb_printf(strbuf *sb, const char *fmt, ...)
{
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n > 0) {
        sb_grow(sb, (size_t)n);
        vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
        sb->len += (size_t)n;
    }
    va_end(ap);
}

char *sb_steal(strbuf *sb)
{
    char *p = sb->buf ? sb->buf : xstrdup("");
    sb_init(sb);
    return p;
}

void sb_free(strbuf *sb)
{
    free(sb->buf);
    sb_init(sb);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0], min;
    size_t n;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        n = 2, min = 0x80, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0)
        n = 3, min = 0x800, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0)
        n = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return n;
}

void sb_json_strn(strbuf *sb, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    sb_add(sb, "\"", 1);
    /* Plain ASCII is copied in runs; only what needs escaping is looked at. */
    while (i < len) {
        unsigned c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        sb_add(sb, s + i - run, run);
        run = 0;
        if (c >= 0x80) {
            size_t n = utf8_len(p + i, len - i);
            if (n) {
                sb_add(sb, s + i, n);
                i += n;
            } else {
                sb_puts(sb, "\\ufffd");
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': sb_puts(sb, "\\\""); break;
        case '\\': sb_puts(sb, "\\\\"); break;
        case '\n': sb_puts(sb, "\\n"); break;
        case '\r': sb_puts(sb, "\\r"); break;
        case '\t': sb_puts(sb, "\\t"); break;
        default: sb_printf(sb, "\\u%04x", c); break;
        }
        i++;
    }
    sb_add(sb, s + i - run, run);
    sb_add(sb, "\"", 1);
}

int parse_seconds(const char *s, double *out)
{
    /* strtod() would also take leading space, a sign, hexadecimal, "nan"
     * and "infinity": the first byte must start a decimal number, and
     * every byte belong to one */
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
        return -1;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' ||
              *p == '+'))
            return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > SECONDS_MAX)
        return -1;
    *out = v;
    return 0;
}

int parse_long_in(const char *s, long min, long max, long *out)
{
    const char *d = s && *s == '-' ? s + 1 : s;
    if (!d || *d < '0' || *d > '9')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

const char *json_nul_escape(const char *s, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_string = 0;
        } else if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && strncmp(s + i + 2, "0000", 4) == 0)
                return s + i;
            i++; /* the escaped character: never a closing quote */
        }
    }
    return NULL;
}

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(p + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

char *utf8_repair(const char *s)
{
    size_t len = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(p + i, len - i);
        if (n) {
            sb_add(&sb, s + i, n);
            i += n;
        } else {
            sb_puts(&sb, "\xEF\xBF\xBD"); /* U+FFFD */
            i++;
        }
    }
    return sb_steal(&sb);
}

void sb_json_str(strbuf *sb, const char *s)
{
    if (s)
        sb_json_strn(sb, s, strlen(s));
    else
        sb_puts(sb, "null");
}

void sb_json_num(strbuf *sb, double x, int digits)
{
    if (!isfinite(x)) {
        sb_puts(sb, "null");
        return;
    }
    if (digits > 0) {
        sb_printf(sb, "%.*g", digits, x);
        return;
    }
    /* 17 significant digits always round-trip; try fewer first so that the
     * values people write come back as they wrote them. */
    char buf[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    sb_puts(sb, buf);
}

double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int name_valid(const char *s)
{
    size_t n = 0;
    if (!s || !*s || *s == '.')
        return 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isalnum(c) || c == '_' || c == '.' || c == '-') || c > 127)
            return 0;
        if (n >= 128)
            return 0;
    }
    return 1;
}

int glob_match(const char *p, const char *t)
{
    /* Iterative matcher with one backtrack point: linear in practice and
     * never recursive, so hostile patterns cannot blow the stack. */
    const char *star = NULL, *resume = NULL;
    while (*t) {
        if (*p == '*') {
            star = p++;
            resume = t;
        } else if (*p == '?' || *p == *t) {
            p++;
            t++;
        } else if (star) {
            p = star + 1;
            t = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

/* The process's stderr verbosity, a property of the process like stderr
 * itself: set once from -v/-q (or by `ndf serve`) and read by every thread
 * that logs, plugins included through the services table, none of which
 * has a handle to pass it down.  Atomic, so that a change while workers log
 * is not a data race. */
static _Atomic int log_level = NDF_LOG_WARN;

void log_set_level(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int log_get_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int log_to_journal(void)
{
    /* 1 when stderr is the stream systemd named in JOURNAL_STREAM
     * ("DEVICE:INODE"): a redirection of stderr elsewhere does not count. */
    static _Atomic int known = -1;
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k >= 0)
        return k;
    k = 0;
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        k = 1;
    atomic_store_explicit(&known, k, memory_order_relaxed);
    return k;
}

static const char *log_command;

void log_set_command(const char *name)
{
    log_command = name;
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error: ", "warning: ", "", "debug: "};
    /* syslog priorities: err, warning, info, debug (sd-daemon(3)) */
    static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
    if (level > log_get_level())
        return;
    int l = level < 0 ? 0 : level > 3 ? 3 : level;
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%sndf: %s%s%s", log_to_journal() ? prio[l] : "",
                     log_command ? log_command : "", log_command ? ": " : "", names[l]);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

/* ---- text for a terminal ---- */

/* Length of the valid UTF-8 sequence at `s` (1 to 4), or 0 when the bytes
 * there are not one; *cp gets its code point. */
static size_t utf8_seq(const unsigned char *s, unsigned *cp)
{
    unsigned c = s[0];
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (!n)
        return 0;
    unsigned v = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
        (n == 4 && (v < 0x10000 || v > 0x10FFFF)))
        return 0;
    *cp = v;
    return n;
}

char *term_safe(const char *s)
{
    strbuf sb;
    sb_init(&sb);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        unsigned cp = 0;
        size_t n;
        if (*p == '\t' || (*p >= 0x20 && *p < 0x7F)) {
            sb_add(&sb, (const char *)p, 1);
            p++;
        } else if (*p < 0x80) {
            /* C0 controls and DEL: ESC starts the sequences that move the
             * cursor, retitle the window or rewrite the screen; \r and \b
             * overwrite what was printed */
            sb_printf(&sb, "\\x%02x", *p);
            p++;
        } else if ((n = utf8_seq(p, &cp)) != 0) {
            if (cp >= 0x80 && cp <= 0x9F) /* C1 controls: CSI, OSC, ... */
                sb_printf(&sb, "\\u%04x", cp);
            else
                sb_add(&sb, (const char *)p, n);
            p += n;
        } else {
            /* a lone byte 0x80-0xFF: an 8-bit terminal reads 0x9B as CSI */
            sb_printf(&sb, "\\x%02x", *p);
            p++;
        }
    }
    return sb_steal(&sb);
}
