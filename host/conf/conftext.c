/* Expanding @include and checking literals before libconfig sees the text
 * (see conftext.h).  The scanner mirrors libconfig 1.5's: the same string,
 * comment and number rules, so an @include or a number is recognised here
 * exactly where libconfig would recognise it. */
#include "build-config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conftext.h"
#include "base/util.h"
#include "base/value.h"

typedef struct expander {
    conftext *t;
    strbuf out;
    int line;        /* lines of `out` so far + 1: the line being written */
    const char *incdir;
    uid_t main_owner;
    int no_include; /* a client's text: it names no file ndf would read */
} expander;

enum { ST_INITIAL, ST_COMMENT, ST_STRING };

static int fail(expander *x, const char *file, int line, const char *fmt, ...) ATTR_PRINTF(4, 5);

static int fail(expander *x, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(x->t->err);
    x->t->err = xvasprintf(fmt, ap);
    va_end(ap);
    x->t->err_file = file;
    x->t->err_line = line;
    return -1;
}

static void span_add(expander *x, const char *file, int line)
{
    conftext *t = x->t;
    if (t->nspans && t->spans[t->nspans - 1].first == x->line)
        t->nspans--; /* an empty span (an empty include): replace it */
    if ((t->nspans & (t->nspans - 1)) == 0) /* 0, 1, 2, 4, ...: double */
        t->spans = xrealloc(t->spans, (t->nspans ? 2 * t->nspans : 1) * sizeof *t->spans);
    t->spans[t->nspans++] = (conftext_span){x->line, file, line};
}

/* Appends buf[from, to) to the output, counting its lines. */
static void emit(expander *x, const char *buf, size_t from, size_t to)
{
    if (to <= from)
        return;
    sb_add(&x->out, buf + from, to - from);
    for (const char *p = buf + from, *end = buf + to; (p = memchr(p, '\n', (size_t)(end - p)));
         p++)
        x->line++;
}

/* A literal for a message: at most 40 bytes of it. */
static char *quote_literal(const char *s, size_t n)
{
    return n > 40 ? xasprintf("%.40s...", s) : xstrndup(s, n);
}

/* Opens and reads `path` after checking what it is.  `from`:`fline` is the
 * @include naming it (NULL for the main file).  Returns the text (its
 * length in *n) or NULL after fail(). */
static char *read_checked(expander *x, const char *path, const char *from, int fline, size_t *n)
{
    /* O_NONBLOCK: opening a FIFO without a writer must not wait for one */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fail(x, from, fline, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct stat null_st;
    int is_null = S_ISCHR(st.st_mode) && stat("/dev/null", &null_st) == 0 &&
                  S_ISCHR(null_st.st_mode) && st.st_rdev == null_st.st_rdev;
    const char *why = S_ISDIR(st.st_mode)   ? strerror(EISDIR)
                      : S_ISFIFO(st.st_mode) ? "a FIFO, not a regular file"
                      : S_ISSOCK(st.st_mode) ? "a socket, not a regular file"
                      : S_ISREG(st.st_mode) || is_null ? NULL
                                                       : "a device, not a regular file";
    if (why) {
        fail(x, from, fline, "cannot read %s: %s", path, why);
        close(fd);
        return NULL;
    }
    if (!from) {
        x->main_owner = st.st_uid;
    } else if (!is_null) {
        /* An included file is code the operator did not name on the command
         * line: it must belong to someone who could have written the main
         * file anyway, and others must not be able to change it. */
        if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != x->main_owner) {
            fail(x, from, fline,
                 "cannot read %s: it is owned by uid %u, neither root, the user running ndf "
                 "(uid %u) nor the owner of the main configuration file (uid %u)",
                 path, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)x->main_owner);
            close(fd);
            return NULL;
        }
        if (st.st_mode & S_IWOTH) {
            fail(x, from, fline,
                 "cannot read %s: it is writable by everyone (mode %04o): run 'chmod o-w %s'",
                 path, (unsigned)(st.st_mode & 07777), path);
            close(fd);
            return NULL;
        }
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > CONFTEXT_MAX_FILE) {
        fail(x, from, fline,
             "cannot read %s: %lld bytes exceeds the %zu byte limit for a configuration file",
             path, (long long)st.st_size, CONFTEXT_MAX_FILE);
        close(fd);
        return NULL;
    }
    /* Read to the end whatever st_size says: /proc files claim 0 bytes. */
    strbuf sb;
    sb_init(&sb);
    char buf[65536];
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            fail(x, from, fline, "cannot read %s: %s", path, strerror(errno));
            sb_free(&sb);
            close(fd);
            return NULL;
        }
        if (k == 0)
            break;
        if (sb.len + (size_t)k > CONFTEXT_MAX_FILE) {
            fail(x, from, fline,
                 "cannot read %s: more than the %zu byte limit for a configuration file", path,
                 CONFTEXT_MAX_FILE);
            sb_free(&sb);
            close(fd);
            return NULL;
        }
        sb_add(&sb, buf, (size_t)k);
    }
    close(fd);
    *n = sb.len;
    return sb_steal(&sb);
}

typedef enum num_kind { NUM_NONE, NUM_INT, NUM_INT64, NUM_HEX, NUM_HEX64, NUM_FLOAT } num_kind;

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* libconfig 1.5's number tokens at buf[i] (longest match, as flex):
 *   integer [-+]?[0-9]+   integer64 [-+]?[0-9]+L(L)?
 *   hex 0[Xx][0-9A-Fa-f]+ hex64 0[Xx][0-9A-Fa-f]+L(L)?
 *   float ([-+]?([0-9]*)?\.[0-9]*([eE][-+]?[0-9]+)?)|([-+]?([0-9]+)(\.[0-9]*)?[eE][-+]?[0-9]+)
 * Sets *end past the token and *digits_end past its digits (before any L). */
static num_kind scan_number(const char *buf, size_t n, size_t i, size_t *end, size_t *digits_end)
{
    size_t p = i;
    if (buf[p] == '0' && p + 2 < n && (buf[p + 1] == 'x' || buf[p + 1] == 'X') &&
        isxdigit((unsigned char)buf[p + 2])) {
        size_t q = p + 2;
        while (q < n && isxdigit((unsigned char)buf[q]))
            q++;
        *digits_end = q;
        if (q < n && buf[q] == 'L') {
            q++;
            if (q < n && buf[q] == 'L')
                q++;
            *end = q;
            return NUM_HEX64;
        }
        *end = q;
        return NUM_HEX;
    }
    if (buf[p] == '-' || buf[p] == '+')
        p++;
    size_t q = p;
    while (q < n && is_digit(buf[q]))
        q++;
    int nd = q > p;
    int is_float = 0;
    if (q < n && buf[q] == '.') {
        is_float = 1;
        q++;
        while (q < n && is_digit(buf[q]))
            q++;
    } else if (!nd) {
        return NUM_NONE;
    }
    if (q < n && (buf[q] == 'e' || buf[q] == 'E')) {
        size_t e = q + 1;
        if (e < n && (buf[e] == '-' || buf[e] == '+'))
            e++;
        if (e < n && is_digit(buf[e])) {
            while (e < n && is_digit(buf[e]))
                e++;
            q = e;
            is_float = 1;
        }
    }
    *digits_end = q;
    if (is_float) {
        *end = q;
        return NUM_FLOAT;
    }
    if (q < n && buf[q] == 'L') {
        q++;
        if (q < n && buf[q] == 'L')
            q++;
        *end = q;
        return NUM_INT64;
    }
    *end = q;
    return NUM_INT;
}

/* Checks the number token buf[i, end).  Returns 1 when libconfig must be
 * told it is 64-bit (an 'L' is appended), 0 when it reads it as written,
 * -1 after fail() when no type holds it. */
static int check_number(expander *x, const char *file, int line, const char *buf, size_t i,
                        size_t end, size_t digits_end, num_kind kind)
{
    char *tok = xstrndup(buf + i, digits_end - i);
    int rc = 0;
    errno = 0;
    if (kind == NUM_FLOAT) {
        double d = strtod(tok, NULL);
        if (isinf(d)) {
            char *q = quote_literal(buf + i, end - i);
            rc = fail(x, file, line, "the number %s is too large (beyond the range of a double)",
                      q);
            free(q);
        }
    } else if (kind == NUM_HEX || kind == NUM_HEX64) {
        unsigned long long u = strtoull(tok, NULL, 16);
        if (errno == ERANGE || u > (unsigned long long)INT64_MAX) {
            char *q = quote_literal(buf + i, end - i);
            rc = fail(x, file, line,
                      "the integer %s does not fit in 64 bits (the largest is "
                      "0x7FFFFFFFFFFFFFFF)",
                      q);
            free(q);
        } else {
            rc = kind == NUM_HEX && u > (unsigned long long)INT_MAX;
        }
    } else {
        long long v = strtoll(tok, NULL, 10);
        if (errno == ERANGE) {
            char *q = quote_literal(buf + i, end - i);
            rc = fail(x, file, line,
                      "the integer %s does not fit in 64 bits (the range is "
                      "-9223372036854775808 to 9223372036854775807)",
                      q);
            free(q);
        } else {
            rc = kind == NUM_INT && (v < INT_MIN || v > INT_MAX);
        }
    }
    free(tok);
    return rc;
}

static int expand(expander *x, const char *path, const char *from, int fline, int depth);

/* At buf[i], the start of a line in the initial state: when it holds
 * `[ \t]*@include[ \t]+"NAME"` (blanks, then the keyword, blanks, the quoted
 * name), sets *name_at and *name_len and *after (past the closing quote) and
 * returns 1; 0 when it is no include; -1 after fail(). */
static int match_include(expander *x, const char *file, int line, const char *buf, size_t n,
                         size_t i, size_t *name_at, size_t *name_len, size_t *after)
{
    size_t p = i;
    while (p < n && (buf[p] == ' ' || buf[p] == '\t'))
        p++;
    if (n - p < 9 || memcmp(buf + p, "@include", 8) != 0 || (buf[p + 8] != ' ' && buf[p + 8] != '\t'))
        return 0;
    p += 8;
    while (p < n && (buf[p] == ' ' || buf[p] == '\t'))
        p++;
    if (p >= n || buf[p] != '"')
        return 0;
    size_t q = p + 1;
    while (q < n && buf[q] != '"' && buf[q] != '\n')
        q++;
    if (q >= n || buf[q] != '"')
        return fail(x, file, line, "@include: the file name has no closing quote on its line");
    *name_at = p + 1;
    *name_len = q - p - 1;
    *after = q + 1;
    return 1;
}

/* Scans buf[0, n) of `file` (interned), copying it to the output with its
 * includes expanded.  Returns 0 or -1 after fail(). */
static int scan(expander *x, const char *file, const char *buf, size_t n, int depth)
{
    int state = ST_INITIAL, line = 1, open_line = 0;
    size_t from = 0; /* buf[from, i) is still to be copied */
    span_add(x, file, 1);
    for (size_t i = 0; i < n;) {
        char c = buf[i];
        if (state == ST_COMMENT) {
            if (c == '*' && i + 1 < n && buf[i + 1] == '/') {
                state = ST_INITIAL;
                i += 2;
                continue;
            }
        } else if (state == ST_STRING) {
            if (c == '\\' && i + 1 < n && (buf[i + 1] == '"' || buf[i + 1] == '\\')) {
                i += 2;
                continue;
            }
            if (c == '"') {
                state = ST_INITIAL;
                i++;
                continue;
            }
        } else {
            if (i == 0 || buf[i - 1] == '\n') {
                size_t at = 0, len = 0, after = 0;
                int m = match_include(x, file, line, buf, n, i, &at, &len, &after);
                if (m < 0)
                    return -1;
                if (m && x->no_include)
                    return fail(x, file, line,
                                "@include is not allowed here (the text is sent as data; "
                                "it names no file on the server)");
                if (m) {
                    emit(x, buf, from, i);
                    if (depth + 1 > CONFTEXT_MAX_DEPTH)
                        return fail(x, file, line,
                                    "@include nested deeper than %d files (does a file "
                                    "include itself?)",
                                    CONFTEXT_MAX_DEPTH);
                    char *name = xstrndup(buf + at, len);
                    char *inc = name[0] == '/' || !x->incdir
                                    ? xstrdup(name)
                                    : xasprintf("%s%s%s", x->incdir,
                                                strcmp(x->incdir, "/") ? "/" : "", name);
                    int rc = expand(x, inc, file, line, depth + 1);
                    free(inc);
                    free(name);
                    if (rc)
                        return -1;
                    /* The included text ends its own line, so that no token
                     * runs across the two files (libconfig's scanner never
                     * joined them either); the rest of this line follows. */
                    if (x->out.len && x->out.buf[x->out.len - 1] != '\n') {
                        sb_add(&x->out, "\n", 1);
                        x->line++;
                    }
                    /* Only a comment may follow on the line: anything else
                     * would start a line of its own in the expanded text,
                     * where libconfig could take it for an @include. */
                    size_t q = after;
                    while (q < n && (buf[q] == ' ' || buf[q] == '\t' || buf[q] == '\r'))
                        q++;
                    if (q < n && buf[q] != '\n' && buf[q] != '#' &&
                        !(buf[q] == '/' && q + 1 < n && buf[q + 1] == '/'))
                        return fail(x, file, line,
                                    "@include: only a comment may follow the file name on "
                                    "its line");
                    span_add(x, file, line);
                    i = from = after;
                    continue;
                }
            }
            if (c == '/' && i + 1 < n && buf[i + 1] == '*') {
                state = ST_COMMENT;
                open_line = line;
                i += 2;
                continue;
            }
            if (c == '"') {
                state = ST_STRING;
                open_line = line;
                i++;
                continue;
            }
            if (c == '#' || (c == '/' && i + 1 < n && buf[i + 1] == '/')) {
                const char *eol = memchr(buf + i, '\n', n - i);
                i = eol ? (size_t)(eol - buf) : n;
                continue;
            }
            if (isalpha((unsigned char)c) || c == '*') {
                /* a name ([A-Za-z*][-A-Za-z0-9_*]*): its digits are no number */
                i++;
                while (i < n && (isalnum((unsigned char)buf[i]) || buf[i] == '-' ||
                                 buf[i] == '_' || buf[i] == '*'))
                    i++;
                continue;
            }
            if (is_digit(c) || c == '-' || c == '+' || c == '.') {
                size_t end = i, dend = i;
                num_kind k = scan_number(buf, n, i, &end, &dend);
                if (k != NUM_NONE) {
                    int rc = check_number(x, file, line, buf, i, end, dend, k);
                    if (rc < 0)
                        return -1;
                    if (rc > 0) {
                        emit(x, buf, from, end);
                        sb_add(&x->out, "L", 1);
                        from = end;
                    }
                    i = end;
                    continue;
                }
            }
        }
        if (c == '\n')
            line++;
        i++;
    }
    emit(x, buf, from, n);
    if (state == ST_STRING)
        return fail(x, file, open_line, "a string opened here is not closed by the end of %s",
                    file);
    if (state == ST_COMMENT)
        return fail(x, file, open_line, "a comment opened here is not closed by the end of %s",
                    file);
    return 0;
}

static int expand(expander *x, const char *path, const char *from, int fline, int depth)
{
    size_t n = 0;
    char *buf = read_checked(x, path, from, fline, &n);
    if (!buf)
        return -1;
    if (x->out.len + n > CONFTEXT_MAX_TOTAL) {
        free(buf);
        return fail(x, from, fline,
                    "cannot read %s: the configuration with its includes would exceed %zu bytes",
                    path, CONFTEXT_MAX_TOTAL);
    }
    const char *file = value_intern_file(path);
    const char *nul = memchr(buf, '\0', n);
    if (nul) {
        int line = 1;
        for (const char *q = buf; (q = memchr(q, '\n', (size_t)(nul - q))); q++)
            line++;
        free(buf);
        return fail(x, file, line,
                    "a NUL byte (a configuration file is text; libconfig would ignore "
                    "everything after it)");
    }
    int rc = scan(x, file, buf, n, depth);
    free(buf);
    return rc;
}

int conftext_read(conftext *t, const char *file, const char *incdir)
{
    memset(t, 0, sizeof *t);
    expander x = {.t = t, .line = 1, .incdir = incdir};
    sb_init(&x.out);
    int rc = expand(&x, file, NULL, 0, 0);
    t->len = x.out.len;
    t->text = sb_steal(&x.out);
    return rc;
}

int conftext_from_string(conftext *t, const char *origin, const char *text, size_t len)
{
    memset(t, 0, sizeof *t);
    expander x = {.t = t, .line = 1, .no_include = 1};
    sb_init(&x.out);
    const char *file = value_intern_file(origin);
    int rc;
    const char *nul = memchr(text, '\0', len);
    if (len > CONFTEXT_MAX_FILE) {
        rc = fail(&x, file, 0, "the text is %zu bytes, more than %zu", len, CONFTEXT_MAX_FILE);
    } else if (nul) {
        int line = 1;
        for (const char *q = text; (q = memchr(q, '\n', (size_t)(nul - q))); q++)
            line++;
        rc = fail(&x, file, line, "a NUL byte (a definition is text)");
    } else {
        rc = scan(&x, file, text, len, 0);
    }
    t->len = x.out.len;
    t->text = sb_steal(&x.out);
    if (!t->text)
        t->text = xstrdup("");
    return rc;
}

void conftext_where(const conftext *t, int line, const char **file, int *fline)
{
    if (!t->nspans) {
        *file = NULL;
        *fline = line;
        return;
    }
    /* the last span that starts at or before `line` */
    size_t lo = 0, hi = t->nspans;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->spans[mid].first <= line)
            lo = mid;
        else
            hi = mid;
    }
    const conftext_span *s = &t->spans[lo];
    *file = s->file;
    *fline = line >= s->first ? s->line + (line - s->first) : s->line;
}

void conftext_free(conftext *t)
{
    free(t->text);
    free(t->spans);
    free(t->err);
    memset(t, 0, sizeof *t);
}
