/* The context options shared by the commands that take a context (run,
 * similar, batch, ctl): --domain, --agent-type, --priority, --attr
 * KEY=VALUE (repeatable) and --context FILE.json|-.
 *
 * Use: put CTXOPT_LONG_OPTIONS in the command's getopt_long array, call
 * ctxopt_handle() for every option it returns, then ctxopt_finish().  The
 * option values are above 0x1000, clear of any short option. */
#ifndef NDF_CTXOPT_H
#define NDF_CTXOPT_H

#include "model/context.h"

enum {
    CTXOPT_DOMAIN = 0x1001,
    CTXOPT_AGENT_TYPE,
    CTXOPT_PRIORITY,
    CTXOPT_ATTR,
    CTXOPT_CONTEXT
};

#define CTXOPT_LONG_OPTIONS                                       \
    {"domain", required_argument, NULL, CTXOPT_DOMAIN},           \
    {"agent-type", required_argument, NULL, CTXOPT_AGENT_TYPE},   \
    {"priority", required_argument, NULL, CTXOPT_PRIORITY},       \
    {"attr", required_argument, NULL, CTXOPT_ATTR},               \
    {"context", required_argument, NULL, CTXOPT_CONTEXT}

/* The lines for a command's --help. */
#define CTXOPT_HELP                                                               \
    "Context options:\n"                                                          \
    "  --domain DOMAIN       the task's domain (e.g. data_processing)\n"          \
    "  --agent-type TYPE     the agent specialization (e.g. data_analyst)\n"      \
    "  --priority N          1 (highest) to 5 (lowest); default 1\n"              \
    "  --attr KEY=VALUE      an attribute (repeatable); VALUE is true/false, an\n" \
    "                        integer, a number, a list [a, b] or a string\n"      \
    "  --context FILE        read the context from a JSON file ('-': stdin);\n"   \
    "                        the options above override its fields\n"

typedef struct ctxopt {
    char *domain, *agent_type; /* NULL: not given */
    int priority;              /* 0: not given */
    ndf_context *attrs;        /* holds the --attr values, in order */
    char *file;                /* --context, or NULL */
} ctxopt;

void ctxopt_init(ctxopt *o);
void ctxopt_free(ctxopt *o);

/* Takes one option from getopt_long.  Returns 1 when it was a context
 * option and was accepted, 0 when `opt` is not a context option, and -1
 * when its value is bad: the message ("ndf: --priority 9: ...") is already
 * printed on stderr and the command should exit with EXIT_USAGE. */
int ctxopt_handle(ctxopt *o, int opt, const char *arg);

/* Builds the context: the --context file (if any), overridden by the other
 * options.  Returns EXIT_OK and *out (free with context_free()), or
 * EXIT_USAGE after printing why (unreadable or invalid JSON names the file
 * and position). */
int ctxopt_finish(ctxopt *o, ndf_context **out);

#endif
