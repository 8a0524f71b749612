/* The reentrant option parser (see opt.h).  Its messages are getopt_long's
 * (glibc's wording), so the commands read as they did; the one addition is
 * the refusal of abbreviated long names, which names what was meant. */
#include "build-config.h"

#include <string.h>

#include "cli/opt.h"

void opt_init(opt_parser *p, int argc, char **argv, const opt_spec *specs, opt_mode mode, FILE *err)
{
    memset(p, 0, sizeof *p);
    p->argc = argc;
    p->argv = argv;
    p->specs = specs;
    p->mode = mode;
    p->err = err;
    p->ind = 1;
}

/* The start of a refusal in the diagnostics' one style: "ndf: COMMAND",
 * or "ndf" alone for the program's own options (argv[0] is its path). */
static const char *prog(const opt_parser *p)
{
    static _Thread_local char buf[160];
    const char *a = p->argc > 0 && p->argv[0] ? p->argv[0] : NULL;
    if (!a || p->program)
        return "ndf";
    snprintf(buf, sizeof buf, "ndf: %s", a);
    return buf;
}

static int is_end(const opt_spec *s)
{
    return !s->name && !s->shortname;
}

static void add_operand(opt_parser *p, const char *a)
{
    if (p->noperands < OPT_MAX_OPERANDS)
        p->operands[p->noperands] = a;
    p->noperands++;
}

/* Says which long options `name` (len bytes) abbreviates, if any. */
static void refuse_abbreviation(opt_parser *p, const char *text, const char *name, size_t len)
{
    int n = 0;
    /* "--=x" has an empty name, a prefix of every option: it abbreviates none */
    for (const opt_spec *s = p->specs; len && !is_end(s); s++)
        if (s->name && strncmp(s->name, name, len) == 0)
            n++;
    if (!p->err)
        return;
    if (!n) {
        fprintf(p->err, "%s: unrecognized option '%s'\n", prog(p), text);
        return;
    }
    fprintf(p->err, "%s: unrecognized option '%s' (abbreviations are not accepted; did you mean",
            prog(p), text);
    int i = 0;
    for (const opt_spec *s = p->specs; !is_end(s); s++)
        if (s->name && strncmp(s->name, name, len) == 0)
            fprintf(p->err, "%s'--%s'", i++ == 0 ? " " : i == n ? " or " : ", ", s->name);
    fputs("?)\n", p->err);
}

/* "--name", "--name=value" or "--name value": argv[p->ind - 1] is `text`. */
static int long_option(opt_parser *p, const char *text)
{
    const char *name = text + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const opt_spec *s;
    for (s = p->specs; !is_end(s); s++)
        if (s->name && strlen(s->name) == len && strncmp(s->name, name, len) == 0)
            break;
    p->bad = text;
    if (is_end(s)) {
        refuse_abbreviation(p, text, name, len);
        return OPT_BAD;
    }
    if (s->has_arg == OPT_NONE && eq) {
        if (p->err)
            fprintf(p->err, "%s: option '--%s' doesn't allow an argument\n", prog(p), s->name);
        return OPT_BAD;
    }
    if (s->has_arg == OPT_REQUIRED) {
        if (eq) {
            p->arg = eq + 1;
        } else if (p->ind < p->argc) {
            p->arg = p->argv[p->ind++];
        } else {
            if (p->err)
                fprintf(p->err, "%s: option '--%s' requires an argument\n", prog(p), s->name);
            return OPT_BAD;
        }
    }
    p->bad = NULL;
    return s->id;
}

/* The next letter of a cluster ("-nh", "-fjson", "-f json"). */
static int short_option(opt_parser *p)
{
    const char *elem = p->argv[p->ind - 1];
    int c = (unsigned char)*p->cluster++;
    const opt_spec *s;
    for (s = p->specs; !is_end(s); s++)
        if (s->shortname == c)
            break;
    if (is_end(s)) {
        p->cluster = NULL;
        p->bad = elem;
        if (p->err)
            fprintf(p->err, "%s: invalid option -- '%c'\n", prog(p), c);
        return OPT_BAD;
    }
    if (s->has_arg == OPT_REQUIRED) {
        if (*p->cluster) {
            p->arg = p->cluster;
        } else if (p->ind < p->argc) {
            p->arg = p->argv[p->ind++];
        } else {
            p->cluster = NULL;
            p->bad = elem;
            if (p->err)
                fprintf(p->err, "%s: option requires an argument -- '%c'\n", prog(p), c);
            return OPT_BAD;
        }
        p->cluster = NULL;
    } else if (!*p->cluster) {
        p->cluster = NULL;
    }
    return s->id;
}

/* The end: in OPT_STOP mode the rest of argv is operands. */
static int end(opt_parser *p)
{
    if (p->ended)
        return OPT_END;
    p->ended = 1;
    if (p->mode == OPT_STOP)
        for (int i = p->ind; i < p->argc; i++)
            add_operand(p, p->argv[i]);
    return OPT_END;
}

int opt_next(opt_parser *p)
{
    p->arg = NULL;
    p->bad = NULL;
    if (p->ended)
        return OPT_END;
    if (p->cluster)
        return short_option(p);
    while (p->ind < p->argc) {
        const char *a = p->argv[p->ind];
        if (strcmp(a, "--") == 0) {
            p->ind++;
            if (p->mode == OPT_PERMUTE)
                while (p->ind < p->argc)
                    add_operand(p, p->argv[p->ind++]);
            return end(p);
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (p->mode == OPT_STOP)
                return end(p);
            add_operand(p, a);
            p->ind++;
            continue;
        }
        p->ind++;
        if (a[1] == '-')
            return long_option(p, a);
        p->cluster = a + 1;
        return short_option(p);
    }
    return end(p);
}
