/* The context options shared by the commands that take a context. */
#include "build-config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctxopt.h"
#include "base/util.h"

void ctxopt_init(ctxopt *o)
{
    memset(o, 0, sizeof *o);
}

void ctxopt_free(ctxopt *o)
{
    free(o->domain);
    free(o->agent_type);
    free(o->file);
    context_free(o->attrs);
    memset(o, 0, sizeof *o);
}

static void set(char **field, const char *arg)
{
    free(*field);
    *field = xstrdup(arg);
}

int ctxopt_handle(ctxopt *o, int opt, const char *arg)
{
    switch (opt) {
    case CTXOPT_DOMAIN: set(&o->domain, arg); return 1;
    case CTXOPT_AGENT_TYPE: set(&o->agent_type, arg); return 1;
    case CTXOPT_CONTEXT: set(&o->file, arg); return 1;
    case CTXOPT_PRIORITY: {
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (!*arg || *end || errno || v < NDF_PRIORITY_HIGHEST || v > NDF_PRIORITY_LOWEST) {
            err_set(NDF_ERR_INVALID,
                    "--priority '%s': must be an integer from 1 (highest) to 5 (lowest)", arg);
            return -1;
        }
        o->priority = (int)v;
        return 1;
    }
    case CTXOPT_ATTR:
        if (!o->attrs)
            o->attrs = context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
        if (context_parse_attr(o->attrs, arg) != NDF_OK)
            return -1;
        return 1;
    default: return 0;
    }
}

int ctxopt_finish(ctxopt *o, ndf_context **out)
{
    ndf_context *c = NULL;
    *out = NULL;
    if (o->base) {
        c = context_dup(o->base);
    } else if (o->file) {
        int rc = context_from_json_file(o->file, &c);
        if (rc != NDF_OK)
            return rc;
    } else {
        c = context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
    }
    if (o->domain)
        set(&c->domain, o->domain);
    if (o->agent_type)
        set(&c->agent_type, o->agent_type);
    if (o->priority)
        c->priority = o->priority;
    if (o->attrs) {
        ndf_context *m = context_merge_attributes(c, o->attrs->attrs);
        context_free(c);
        c = m;
    }
    int rc = context_validate(c);
    if (rc != NDF_OK) {
        context_free(c);
        return rc;
    }
    *out = c;
    return NDF_OK;
}
