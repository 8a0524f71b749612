/* The text of one configuration file with its @include files expanded in
 * place: each file is opened once, checked on that descriptor (kind, size,
 * owner) and read from it, so what libconfig parses is exactly what was
 * checked.  The scan that finds the includes also knows libconfig's strings
 * and comments, which lets it catch what libconfig 1.5 would get wrong
 * silently: integer literals beyond 32 bits written without 'L' (truncated),
 * literals beyond 64 bits (saturated), floats that overflow to infinity,
 * NUL bytes (which end libconfig's string input early).  A line map turns a
 * line of the expanded text back into the file and line it came from. */
#ifndef NDF_CONFTEXT_H
#define NDF_CONFTEXT_H

#include <stddef.h>
#include <sys/types.h>

/* Limits: one file, and the whole text with its includes. */
#define CONFTEXT_MAX_FILE ((size_t)16 << 20)
#define CONFTEXT_MAX_TOTAL ((size_t)32 << 20)
/* @include nesting, as libconfig's own limit */
#define CONFTEXT_MAX_DEPTH 10

typedef struct conftext_span {
    int first;        /* first line of the expanded text in this span */
    const char *file; /* interned (value_intern_file) */
    int line;         /* its line in `file` */
} conftext_span;

typedef struct conftext {
    char *text; /* NUL-terminated expanded text (libconfig input) */
    size_t len;
    conftext_span *spans;
    size_t nspans;
    /* on failure: the message, and where (err_file NULL when the main file
     * itself cannot be read: the message names it) */
    char *err;
    const char *err_file;
    int err_line;
} conftext;

/* Reads `file` (absolute) with its includes, resolved against `incdir` as
 * libconfig resolves them.  Returns 0, or -1 with t->err set.  Either way
 * free with conftext_free(). */
int conftext_read(conftext *t, const char *file, const char *incdir);

/* As conftext_read() for `len` bytes of `text` that came from `origin`
 * (a name for messages, e.g. "request"), not a file: its literals are
 * checked the same way, and an @include is refused (a client's text must
 * not make ndf read a file).  Returns 0, or -1 with t->err set; free with
 * conftext_free() either way. */
int conftext_from_string(conftext *t, const char *origin, const char *text, size_t len);

/* The file and line that line `line` of the expanded text came from. */
void conftext_where(const conftext *t, int line, const char **file, int *fline);

void conftext_free(conftext *t);

#endif
