/* A reentrant command-line option parser: getopt_long's syntax without its
 * process-wide state (optind, optarg, opterr), and exact long names only,
 * so that "--c" is never taken for "--context".  The commands parse their
 * own argv with it, in the program and in the server alike. */
#ifndef NDF_OPT_H
#define NDF_OPT_H

#include <stdio.h>

enum { OPT_NONE = 0, OPT_REQUIRED = 1 };

/* One option.  An array of them ends with an entry whose name and
 * shortname are both 0. */
typedef struct opt_spec {
    const char *name; /* long name without "--", or NULL for a short one only */
    int shortname;    /* the letter of "-x", or 0 for a long one only */
    int has_arg;      /* OPT_NONE or OPT_REQUIRED */
    int id;           /* what opt_next() returns for it; > 0 */
} opt_spec;

typedef enum opt_mode {
    /* Options and operands may mix ("run P --json"); operands are
     * collected in order in `operands`. */
    OPT_PERMUTE,
    /* Options end at the first operand ("ndf -v list --json": list is a
     * command with its own options); `ind` is left on it. */
    OPT_STOP
} opt_mode;

/* Enough for every command, which takes at most two operands; more are
 * still counted in noperands, so "too many arguments" can be said. */
#define OPT_MAX_OPERANDS 8

enum { OPT_END = -1, OPT_BAD = '?' };

typedef struct opt_parser {
    /* set by opt_init() */
    int argc;
    char **argv; /* argv[0] names the program or command in messages */
    const opt_spec *specs;
    opt_mode mode;
    FILE *err; /* where refusals are printed; NULL: silent */
    int program; /* argv[0] is the program, not a command (0 after opt_init) */

    /* after each opt_next() */
    const char *arg; /* the value of the option returned, or NULL */
    const char *bad; /* the argument refused with OPT_BAD */
    int ind;         /* the next element of argv to look at */

    /* OPT_PERMUTE: the operands met so far, in order */
    const char *operands[OPT_MAX_OPERANDS];
    int noperands; /* all of them, including those past OPT_MAX_OPERANDS */

    const char *cluster; /* the rest of a cluster of short options ("-nh") */
    int ended;           /* OPT_END was returned: it is returned again */
} opt_parser;

/* Prepares to parse argv[1..argc).  Nothing is allocated and argv is not
 * modified; `argv` must outlive the parser. */
void opt_init(opt_parser *p, int argc, char **argv, const opt_spec *specs, opt_mode mode,
              FILE *err);

/* The next option: its id (p->arg holds its value when it takes one),
 * OPT_END when there are no more, or OPT_BAD for an unknown option, a
 * missing or unexpected value, or an abbreviated long name; the message,
 * worded as getopt_long's, went to p->err and p->bad is the argument.
 * "--" ends the options; "-" alone is an operand. */
int opt_next(opt_parser *p);

#endif
