/* Host-wide helpers: allocation that never returns NULL, the per-thread error
 * message that goes with a returned ndf_status, and small string tools.
 *
 * Out of memory is handled one way everywhere in the host: x*alloc() print a
 * message and abort.  Plugins are never aborted for; they get NDF_ERR_NOMEM. */
#ifndef NDF_UTIL_H
#define NDF_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <ndf/status.h>

#if defined(__GNUC__)
#define ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ATTR_NORETURN __attribute__((noreturn))
#else
#define ATTR_PRINTF(f, a)
#define ATTR_NORETURN
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* malloc, calloc, realloc, strdup and strndup that never return NULL (out
 * of memory aborts, above); a size of 0 still returns a unique pointer.  The
 * caller frees the result with free(). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) ATTR_PRINTF(1, 2);
/* The va_list form of xasprintf; consumes `ap`. */
char *xvasprintf(const char *fmt, va_list ap);

/* Sets this thread's error message and returns `status`.  The message stays
 * until the next err_set() on the same thread.  The arguments may point into
 * the current message (err_set(st, "loading x: %s", err_msg()) is fine): it
 * is formatted aside before it replaces the old one.  Messages are cut at
 * 2047 bytes, and kept as term_safe() makes them (control characters and
 * invalid UTF-8 escaped, newlines too), since they quote configuration,
 * clients and plugins and end up on terminals.  err_vset is the va_list
 * form. */
int err_set(int status, const char *fmt, ...) ATTR_PRINTF(2, 3);
int err_vset(int status, const char *fmt, va_list ap);
/* Prefixes the current message with "prefix: ". Returns `status`. */
int err_prefix(int status, const char *fmt, ...) ATTR_PRINTF(2, 3);
/* This thread's last message ("" when none); valid until the next err_set(). */
const char *err_msg(void);
/* Empties this thread's message. */
void err_clear(void);

/* Growable string buffer.  `buf` is NULL until the first append, then always
 * NUL-terminated at `len`; the strbuf owns it. */
typedef struct strbuf {
    char *buf;
    size_t len, cap;
} strbuf;
/* Makes `sb` empty without allocating. */
void sb_init(strbuf *sb);
/* Append `n` bytes, a C string, or formatted text (out of memory aborts). */
void sb_add(strbuf *sb, const char *s, size_t n);
void sb_puts(strbuf *sb, const char *s);
void sb_printf(strbuf *sb, const char *fmt, ...) ATTR_PRINTF(2, 3);
/* Returns the buffer (never NULL) and leaves `sb` empty; caller frees. */
char *sb_steal(strbuf *sb);
/* Frees the buffer; `sb` is empty and reusable afterwards. */
void sb_free(strbuf *sb);

/* Appends `s` (`len` bytes) as a JSON string literal: quotes and control
 * characters escaped, valid UTF-8 kept, invalid bytes replaced by U+FFFD. */
void sb_json_strn(strbuf *sb, const char *s, size_t len);
/* The same for a C string; NULL becomes JSON null. */
void sb_json_str(strbuf *sb, const char *s);
/* Appends `x` as a JSON number.  `digits` > 0 rounds to that many
 * significant digits (%.*g, for figures meant to be read); 0 gives the
 * shortest form that reads back as the same double (0.1 stays 0.1, nothing
 * loses precision).  NaN and infinities, which JSON lacks, become null. */
void sb_json_num(strbuf *sb, double x, int digits);

/* 1 when the `len` bytes at `s` are valid UTF-8 (no overlongs, surrogates
 * or code points above U+10FFFF), else 0. */
int utf8_valid(const char *s, size_t len);
/* The first "\u0000" escape inside a string of the JSON text `s` (`len`
 * bytes, no raw NUL), or NULL: cJSON decodes it into a NUL that ends the C
 * string, so "p\u0000evil" would read as "p" and the rest be lost without
 * a word.  Readers of JSON that becomes names, arguments or contexts refuse
 * it. */
const char *json_nul_escape(const char *s, size_t len);

/* The longest timeout or interval ndf takes, in seconds (about 31 years):
 * beyond it a deadline added to a clock reading loses its precision, or
 * overflows what it is turned into (milliseconds in an int, a time_t). */
#define SECONDS_MAX 1e9
#define SECONDS_MAX_TEXT "1000000000"
/* Reads a number of seconds as the options and requests give them: plain
 * decimal (digits, at most one point, an exponent), from 0 to SECONDS_MAX;
 * no sign, space, hexadecimal, nan or inf.  0 with *out set, or -1. */
int parse_seconds(const char *s, double *out);
/* Reads a whole decimal number from `min` to `max`: an optional '-' and
 * digits, nothing else (no space, no '+').  0 with *out set, or -1. */
int parse_long_in(const char *s, long min, long max, long *out);
/* A copy of the C string `s` with every invalid UTF-8 byte replaced by
 * U+FFFD, for writers (YAML) that refuse invalid text.  Caller frees. */
char *utf8_repair(const char *s);

/* Monotonic and wall-clock time in seconds. */
double now_mono(void);
double now_wall(void);

/* Pattern / plugin / step names: [A-Za-z0-9_.-], 1..128 chars, no leading
 * dot.  Returns 1 when valid. */
int name_valid(const char *s);

/* Glob match used for domains and agent types: '*' matches any run of
 * characters (including '.'), '?' one character; everything else literally.
 * Returns 1 on match. */
int glob_match(const char *pattern, const char *text);

/* Logging to stderr with a level ("ndf: warning: ..."); messages above the
 * current level (set by -v/-q) are dropped.  Thread-safe: one write(2) per
 * message. */
void log_set_level(int level);
int log_get_level(void);
/* The command a one-shot ndf runs: its log lines then read
 * "ndf: COMMAND: warning: ...", as its other diagnostics do.  NULL (the
 * server's log): "ndf: warning: ...".  Set once, before any thread. */
void log_set_command(const char *name);
void log_msg(int level, const char *fmt, ...) ATTR_PRINTF(2, 3);
void log_vmsg(int level, const char *fmt, va_list ap);
/* 1 when stderr is the systemd journal (JOURNAL_STREAM names it): log lines
 * then start with their syslog priority, "<3>" error ... "<7>" debug, so
 * journald files them by level. */
int log_to_journal(void);

/* `s` (NULL: "") as text that is safe to print on a terminal: control
 * characters (C0 but tab, DEL, C1) and bytes that are no valid UTF-8 are
 * written as \xNN or \uNNNN, so that a message or a value from a step, a
 * context or a client cannot move the cursor, rewrite the screen or set
 * the window title.  Returns a malloc'd string (out of memory aborts).
 * What configuration diagnostics and the CLI print goes through it. */
char *term_safe(const char *s);

#endif
