/* The context options shared by the commands that take a context (run,
 * similar, ctl run): --domain, --agent-type, --priority, --attr KEY=VALUE
 * (repeatable) and --context FILE.json|-.
 *
 * Use: put CTXOPT_OPTIONS in the command's opt_spec array, call
 * ctxopt_handle() for every option opt_next() returns, then
 * ctxopt_finish().  The option ids are above 0x1000, clear of any short
 * option.  Messages are left in err_msg(), for the command to print. */
#ifndef NDF_CTXOPT_H
#define NDF_CTXOPT_H

#include "model/context.h"
#include "cli/opt.h"

enum { CTXOPT_DOMAIN = 0x1001, CTXOPT_AGENT_TYPE, CTXOPT_PRIORITY, CTXOPT_ATTR, CTXOPT_CONTEXT };

/* One option per line: */
/* clang-format off */
#define CTXOPT_OPTIONS                                       \
    {"domain", 0, OPT_REQUIRED, CTXOPT_DOMAIN},              \
    {"agent-type", 0, OPT_REQUIRED, CTXOPT_AGENT_TYPE},      \
    {"priority", 0, OPT_REQUIRED, CTXOPT_PRIORITY},          \
    {"attr", 0, OPT_REQUIRED, CTXOPT_ATTR},                  \
    {"context", 0, OPT_REQUIRED, CTXOPT_CONTEXT}

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
/* clang-format on */

typedef struct ctxopt {
    char *domain, *agent_type; /* NULL: not given */
    int priority;              /* 0: not given */
    ndf_context *attrs;        /* holds the --attr values, in order */
    char *file;                /* --context, or NULL */
    /* The context to start from instead of a --context file, when the
     * caller has one as data (a served request's); not owned. */
    const ndf_context *base;
} ctxopt;

void ctxopt_init(ctxopt *o);
void ctxopt_free(ctxopt *o);

/* Takes one option from opt_next().  Returns 1 when it was a context
 * option and was accepted, 0 when `opt` is not a context option, and -1
 * when its value is bad, with the message in err_msg() ("--priority '9':
 * ..."); the command prints it and exits with EXIT_USAGE. */
int ctxopt_handle(ctxopt *o, int opt, const char *arg);

/* Builds the context: o->base, else the --context file (if any), else an
 * empty one, overridden by the other options.  Returns NDF_OK and *out
 * (free with context_free()), or a status with err_msg() saying why
 * (unreadable or invalid JSON names the file and position). */
int ctxopt_finish(ctxopt *o, ndf_context **out);

#endif
