/* Run-time definitions (see define.h): requests become rows, rows are laid
 * over the files' definitions. */
#include "build-config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/define.h"
#include "base/util.h"
#include "base/value.h"

#define ORIGIN_PREFIX "run-time["

void define_change_free(define_change *c)
{
    if (!c)
        return;
    free(c->row.kind);
    free(c->row.name);
    free(c->row.text);
    value_free(c->def);
    free(c->summary);
    free(c->warnings);
    memset(c, 0, sizeof *c);
}

const char *define_origin(const store_def *row)
{
    char when[32] = "?";
    time_t t = (time_t)row->time;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *o = xasprintf(ORIGIN_PREFIX "%s uid %ld]", when, row->uid);
    const char *in = value_intern_file(o);
    free(o);
    return in;
}

int define_is_runtime(const char *file)
{
    return file && (strncmp(file, ORIGIN_PREFIX, strlen(ORIGIN_PREFIX)) == 0 ||
                    strcmp(file, DEFINE_REQUEST_ORIGIN) == 0);
}

/* ---- rows ---- */

static const store_def *row_find(const store_def *rows, size_t n, const char *kind,
                                 const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].kind, kind) == 0 && strcmp(rows[i].name, name) == 0)
            return &rows[i];
    return NULL;
}

/* The diagnostics of `c` into `why`, the errors, or the warnings. */
static void diags_to(const config *c, int errors, strbuf *sb)
{
    for (size_t i = 0; i < c->ndiags; i++)
        if (c->diags[i].is_error == errors) {
            if (sb->len)
                sb_puts(sb, "\n");
            if (!errors)
                sb_puts(sb, "warning: ");
            sb_puts(sb, c->diags[i].text);
        }
}

static void why_add(strbuf *why, const char *msg)
{
    if (why->len)
        sb_puts(why, "\n");
    sb_puts(why, msg);
}

/* Parses a row's text into its one definition, or NULL with the reason in
 * `why`. */
static ndf_value *row_definition(const store_def *row, strbuf *why)
{
    config *c;
    int rc = config_parse_definitions(define_origin(row), row->text, strlen(row->text), &c);
    ndf_value *def = NULL;
    if (rc == NDF_OK && c->npatterns == 1) {
        def = c->patterns[0];
        c->patterns[0] = NULL;
        const char *n = value_string(value_get(def, "name"));
        if (!n || strcmp(n, row->name) != 0) {
            value_free(def);
            def = NULL;
        }
    }
    if (!def) {
        strbuf e;
        sb_init(&e);
        diags_to(c, 1, &e);
        char *msg = xasprintf("run-time definition of pattern '%s' left out: %s", row->name,
                              e.len ? e.buf : "its stored text holds no definition of that name");
        why_add(why, msg);
        free(msg);
        sb_free(&e);
    }
    config_free(c);
    return def;
}

size_t define_overlay(config *cfg, const store_def *rows, size_t n, const define_change *pending,
                      strbuf *why)
{
    size_t bad = 0;
    const store_def *prow = pending ? &pending->row : NULL;
    /* settings first: a pattern row does not depend on them, and the
     * order of the rows within a kind is the order they were made in */
    for (int pass = 0; pass < 2; pass++) {
        const char *kind = pass == 0 ? STORE_DEF_SETTING : STORE_DEF_PATTERN;
        for (size_t i = 0; i <= n; i++) {
            const store_def *r;
            int from_pending = 0;
            if (i < n) {
                r = &rows[i];
                if (prow && strcmp(r->kind, prow->kind) == 0 && strcmp(r->name, prow->name) == 0)
                    continue; /* the pending change takes its place */
            } else {
                if (!prow || pending->remove)
                    continue;
                r = prow;
                from_pending = 1;
            }
            if (strcmp(r->kind, kind) != 0)
                continue;
            if (pass == 0) {
                if (config_apply_setting(cfg, from_pending && !pending->as_stored
                                                  ? DEFINE_REQUEST_ORIGIN
                                                  : define_origin(r),
                                         r->name, r->text) != NDF_OK) {
                    char *msg = xasprintf("run-time setting '%s' left out: %s", r->name, err_msg());
                    why_add(why, msg);
                    free(msg);
                    bad++;
                }
                continue;
            }
            /* as_stored: the pending change is read from its row's text,
             * so its origin and lines are those a registry built from the
             * stored row has (ctl show and one-shot show agree) */
            ndf_value *def = from_pending && pending->def && !pending->as_stored
                                 ? value_dup(pending->def)
                                 : row_definition(r, why);
            if (!def) {
                bad++;
                continue;
            }
            config_put_definition(cfg, def);
        }
    }
    cfg->overlaid = 1;
    return bad;
}

int define_overlay_store(config *cfg, store *st, size_t *bad, strbuf *why)
{
    store_def *rows;
    size_t n;
    *bad = 0;
    int rc = store_defs(st, &rows, &n);
    if (rc)
        return rc;
    *bad = define_overlay(cfg, rows, n, NULL, why);
    store_defs_free(rows, n);
    return NDF_OK;
}

int define_commit(store *st, const define_change *c)
{
    return store_def_put(st, &c->row, c->remove);
}

/* ---- paths: params.steps[build].timeout ---- */

typedef struct step {
    char *member; /* a group member, or NULL for a selector */
    char *sel;    /* [N] (digits) or [NAME] */
} step;

static void steps_free(step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].member);
        free(s[i].sel);
    }
    free(s);
}

/* Splits `path`; NULL after a message in `why`. */
static step *path_parse(const char *path, size_t *n, strbuf *why)
{
    step *s = NULL;
    *n = 0;
    const char *p = path;
    while (*p) {
        s = xrealloc(s, (*n + 1) * sizeof *s);
        step *t = &s[(*n)++];
        memset(t, 0, sizeof *t);
        if (*p == '[') {
            const char *e = strchr(p, ']');
            if (!e || e == p + 1)
                goto bad;
            t->sel = xstrndup(p + 1, (size_t)(e - p - 1));
            p = e + 1;
        } else {
            size_t len = strcspn(p, ".[");
            if (!len)
                goto bad;
            t->member = xstrndup(p, len);
            p += len;
        }
        if (*p == '.') {
            p++;
            if (!*p || *p == '.' || *p == '[')
                goto bad;
        } else if (*p && *p != '[') {
            goto bad;
        }
    }
    if (*n)
        return s;
bad:;
    char *msg = xasprintf("bad path '%s' (expected e.g. params.steps[build].timeout: members "
                          "joined by '.', a list element as [INDEX] or [NAME])",
                          path);
    why_add(why, msg);
    free(msg);
    steps_free(s, *n);
    return NULL;
}

/* The index in list `v` that selector `sel` names, or -1. */
static long sel_index(const ndf_value *v, const char *sel)
{
    size_t n = value_count(v);
    if (isdigit((unsigned char)*sel) && strspn(sel, "0123456789") == strlen(sel)) {
        unsigned long i = strtoul(sel, NULL, 10);
        return i < n ? (long)i : -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *nm = value_string(value_get(value_at(v, i), "name"));
        if (nm && strcmp(nm, sel) == 0)
            return (long)i;
    }
    return -1;
}

/* Follows steps [0, k) from `root`: the value there, or NULL after a
 * message naming how far the path went. */
static ndf_value *walk(ndf_value *root, const step *s, size_t k, const char *path, strbuf *why)
{
    ndf_value *v = root;
    for (size_t i = 0; i < k; i++) {
        ndf_value *next = NULL;
        if (s[i].member) {
            if (v->type != NDF_VALUE_GROUP) {
                char *msg = xasprintf("path '%s': '%s' is not inside a group", path, s[i].member);
                why_add(why, msg);
                free(msg);
                return NULL;
            }
            next = value_get(v, s[i].member);
        } else {
            if (v->type != NDF_VALUE_LIST) {
                char *msg = xasprintf("path '%s': [%s] applies to a list", path, s[i].sel);
                why_add(why, msg);
                free(msg);
                return NULL;
            }
            long j = sel_index(v, s[i].sel);
            next = j >= 0 ? value_at(v, (size_t)j) : NULL;
        }
        if (!next) {
            char *msg = xasprintf("path '%s': no %s%s%s in the definition", path,
                                  s[i].member ? "member '" : "element [",
                                  s[i].member ? s[i].member : s[i].sel,
                                  s[i].member ? "'" : "]");
            why_add(why, msg);
            free(msg);
            return NULL;
        }
        v = next;
    }
    return v;
}

/* Applies edit `rq` to `def`.  NDF_OK, or a status after a message. */
static int edit_apply(ndf_value *def, const define_request *rq, strbuf *why)
{
    size_t n;
    step *s = path_parse(rq->path, &n, why);
    if (!s)
        return NDF_ERR_INVALID;
    int rc = NDF_OK;
    ndf_value *val = NULL;
    if (n == 1 && s[0].member && strcmp(s[0].member, "name") == 0) {
        why_add(why, "the name is the pattern's identity: define a pattern of the new name "
                     "(and undefine this one) instead");
        rc = NDF_ERR_INVALID;
        goto out;
    }
    int takes_value = strcmp(rq->op, "unset") != 0;
    if (takes_value) {
        char *e = NULL;
        val = config_parse_value(DEFINE_REQUEST_ORIGIN, rq->literal ? rq->literal : "", &e);
        if (!val) {
            why_add(why, e);
            free(e);
            rc = NDF_ERR_VALIDATION;
            goto out;
        }
    }
    if (strcmp(rq->op, "insert") == 0) {
        /* a list member not there yet is an empty one (the first
         * dependency of a task) */
        ndf_value *parent = s[n - 1].member ? walk(def, s, n - 1, rq->path, why) : NULL;
        if (parent && parent->type == NDF_VALUE_GROUP && !value_get(parent, s[n - 1].member))
        {
            ndf_value *nl = value_new_list(s[n - 1].member);
            value_set_pos(nl, value_intern_file(DEFINE_REQUEST_ORIGIN), 1);
            value_append(parent, nl);
        }
        else if (s[n - 1].member && !parent) {
            rc = NDF_ERR_NOT_FOUND;
            goto out;
        }
        ndf_value *list = walk(def, s, n, rq->path, why);
        if (!list) {
            rc = NDF_ERR_NOT_FOUND;
        } else if (list->type != NDF_VALUE_LIST) {
            char *msg = xasprintf("path '%s' is %s, not a list: insert adds to a list (use set)",
                                  rq->path, value_type_name(list->type));
            why_add(why, msg);
            free(msg);
            rc = NDF_ERR_INVALID;
        } else if (rq->at > (long)value_count(list)) {
            char *msg = xasprintf("--at %ld: '%s' has %zu elements", rq->at, rq->path,
                                  value_count(list));
            why_add(why, msg);
            free(msg);
            rc = NDF_ERR_INVALID;
        } else {
            value_insert(list, rq->at < 0 ? value_count(list) : (size_t)rq->at, val);
            val = NULL;
        }
        goto out;
    }
    ndf_value *parent = walk(def, s, n - 1, rq->path, why);
    if (!parent) {
        rc = NDF_ERR_NOT_FOUND;
        goto out;
    }
    const step *last = &s[n - 1];
    long idx = -1;
    if (last->member) {
        if (parent->type != NDF_VALUE_GROUP) {
            char *msg = xasprintf("path '%s': '%s' is not inside a group", rq->path, last->member);
            why_add(why, msg);
            free(msg);
            rc = NDF_ERR_INVALID;
            goto out;
        }
        for (size_t i = 0; i < value_count(parent); i++)
            if (strcmp(value_at(parent, i)->name, last->member) == 0)
                idx = (long)i;
    } else {
        if (parent->type != NDF_VALUE_LIST) {
            char *msg = xasprintf("path '%s': [%s] applies to a list", rq->path, last->sel);
            why_add(why, msg);
            free(msg);
            rc = NDF_ERR_INVALID;
            goto out;
        }
        idx = sel_index(parent, last->sel);
    }
    if (idx < 0 && (!takes_value || !last->member)) {
        char *msg = xasprintf("path '%s': no %s%s%s in the definition", rq->path,
                              last->member ? "member '" : "element [",
                              last->member ? last->member : last->sel, last->member ? "'" : "]");
        why_add(why, msg);
        free(msg);
        rc = NDF_ERR_NOT_FOUND;
        goto out;
    }
    if (!takes_value) {
        value_remove(parent, (size_t)idx);
    } else if (last->member) {
        free(val->name);
        val->name = xstrdup(last->member);
        value_append(parent, val); /* replaces a member of that name */
        val = NULL;
    } else {
        value_remove(parent, (size_t)idx);
        value_insert(parent, (size_t)idx, val);
        val = NULL;
    }
out:
    value_free(val);
    steps_free(s, n);
    return rc;
}

/* ---- requests ---- */

/* NDF_OK when `s`, the PATH of an edit or the KEY of a setting (`what`),
 * holds no control character (a newline, a tab, DEL...): such a name can
 * only be a mistake or an attempt to forge a line of a message or of the
 * stored text, and the check further on would read it as some other name
 * and change that one.  Else NDF_ERR_INVALID with the reason in `why`. */
static int name_clean(const char *what, const char *s, strbuf *why)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            char *safe = term_safe(s);
            char *msg = xasprintf("%s '%s' holds a control character (byte 0x%02x at offset "
                                  "%zu): names are printable text",
                                  what, safe, *p, (size_t)(p - (const unsigned char *)s));
            why_add(why, msg);
            free(msg);
            free(safe);
            return NDF_ERR_INVALID;
        }
    return NDF_OK;
}

/* The definition of `name` in effect: its row's, else the files'. */
static ndf_value *effective(const config *files, const store_def *rows, size_t n,
                            const char *name, strbuf *why)
{
    const store_def *r = row_find(rows, n, STORE_DEF_PATTERN, name);
    if (r)
        return row_definition(r, why);
    const ndf_value *d = config_find_definition(files, name);
    if (d)
        return value_dup(d);
    char *msg = xasprintf("no pattern '%s' is defined (in the configuration files or at run "
                          "time)",
                          name);
    why_add(why, msg);
    free(msg);
    return NULL;
}

/* Checks `def` (taken over) as a file's definition would be and makes it
 * the change's, with its text.  NDF_OK or NDF_ERR_VALIDATION. */
static int take_definition(define_change *out, ndf_value *def, strbuf *why)
{
    config *c = xcalloc(1, sizeof *c);
    settings_default(&c->set);
    int rc = config_check_definition(c, def);
    if (rc == NDF_OK) {
        out->def = c->patterns[--c->npatterns];
        strbuf t;
        sb_init(&t);
        config_definition_text(out->def, &t);
        out->row.text = sb_steal(&t);
        /* what is stored must read back as what was checked (a member
         * name libconfig cannot write, say): else refuse it now rather
         * than lose the pattern at the next start */
        config *back;
        int brc = config_parse_definitions("stored text", out->row.text, strlen(out->row.text),
                                           &back);
        if (brc != NDF_OK || back->npatterns != 1 || !value_equal(back->patterns[0], out->def)) {
            why_add(why, "request: the definition cannot be written in the configuration's "
                         "syntax (a member name must be A-Z a-z 0-9 - _ *, starting with a "
                         "letter)");
            rc = NDF_ERR_VALIDATION;
        }
        config_free(back);
        strbuf w;
        sb_init(&w);
        diags_to(c, 0, &w);
        out->warnings = w.len ? sb_steal(&w) : NULL;
        sb_free(&w);
    } else {
        diags_to(c, 1, why);
    }
    config_free(c);
    return rc;
}

int define_prepare(const config *files, const store_def *rows, size_t n, const define_request *rq,
                   define_change *out, strbuf *why)
{
    memset(out, 0, sizeof *out);
    out->row.time = now_wall();
    out->row.uid = rq->uid;
    int rc = NDF_OK;
    if ((rq->verb == DEFINE_EDIT && (rc = name_clean("path", rq->path ? rq->path : "", why))) ||
        ((rq->verb == DEFINE_SETTING || rq->verb == DEFINE_UNSETTING) &&
         (rc = name_clean("setting", rq->name ? rq->name : "", why))))
        return rc;
    switch (rq->verb) {
    case DEFINE_PATTERN: {
        config *c;
        rc = config_parse_definitions(DEFINE_REQUEST_ORIGIN, rq->text ? rq->text : "", rq->len,
                                      &c);
        if (rc == NDF_OK && c->npatterns != 1) {
            why_add(why, "one pattern definition per request (this text holds several)");
            rc = NDF_ERR_INVALID;
        } else if (rc != NDF_OK) {
            diags_to(c, 1, why);
        }
        if (rc == NDF_OK) {
            ndf_value *def = c->patterns[0];
            c->patterns[0] = NULL;
            const char *name = value_string(value_get(def, "name"));
            const ndf_value *fdef = config_find_definition(files, name);
            const store_def *r = row_find(rows, n, STORE_DEF_PATTERN, name);
            if (!rq->replace && (fdef || r)) {
                char *msg = fdef && !r ? xasprintf("%s:%d: pattern '%s' already exists "
                                                   "(defined at %s:%d; --replace to shadow it "
                                                   "with this definition)",
                                                   def->file, def->line, name, fdef->file,
                                                   fdef->line)
                                       : xasprintf("%s:%d: pattern '%s' already exists (defined "
                                                   "at run time; --replace to replace it)",
                                                   def->file, def->line, name);
                why_add(why, msg);
                free(msg);
                value_free(def);
                rc = NDF_ERR_EXISTS;
            } else {
                out->row.name = xstrdup(name);
                out->summary = xasprintf("%s pattern '%s'", fdef || r ? "replaced" : "defined",
                                         name);
                rc = take_definition(out, def, why);
            }
        }
        strbuf w;
        sb_init(&w);
        diags_to(c, 0, &w);
        if (w.len && rc == NDF_OK) {
            char *all = out->warnings ? xasprintf("%s\n%s", w.buf, out->warnings) : sb_steal(&w);
            free(out->warnings);
            out->warnings = all;
        }
        sb_free(&w);
        config_free(c);
        out->row.kind = xstrdup(STORE_DEF_PATTERN);
        break;
    }
    case DEFINE_UNDEFINE: {
        out->row.kind = xstrdup(STORE_DEF_PATTERN);
        out->row.name = xstrdup(rq->name);
        out->remove = 1;
        if (!row_find(rows, n, STORE_DEF_PATTERN, rq->name)) {
            const ndf_value *fdef = config_find_definition(files, rq->name);
            char *msg = fdef ? xasprintf("pattern '%s' has no run-time definition (it is "
                                         "defined at %s:%d: remove it there)",
                                         rq->name, fdef->file, fdef->line)
                             : xasprintf("no run-time definition of pattern '%s'", rq->name);
            why_add(why, msg);
            free(msg);
            rc = NDF_ERR_NOT_FOUND;
        } else {
            const ndf_value *fdef = config_find_definition(files, rq->name);
            out->summary = fdef ? xasprintf("undefined the run-time definition of '%s' (%s:%d "
                                            "serves again)",
                                            rq->name, fdef->file, fdef->line)
                                : xasprintf("undefined pattern '%s'", rq->name);
        }
        break;
    }
    case DEFINE_EDIT: {
        out->row.kind = xstrdup(STORE_DEF_PATTERN);
        out->row.name = xstrdup(rq->name);
        ndf_value *def = effective(files, rows, n, rq->name, why);
        if (!def) {
            rc = NDF_ERR_NOT_FOUND;
            break;
        }
        rc = edit_apply(def, rq, why);
        if (rc) {
            value_free(def);
            break;
        }
        out->summary = xasprintf("pattern '%s': %s %s", rq->name, rq->op, rq->path);
        rc = take_definition(out, def, why);
        if (rc == NDF_OK && strcmp(rq->op, "unset") != 0) {
            /* the check drops what a definition does not hold (an
             * unknown top-level key, with a warning): an edit whose value
             * is not in what would be stored changes nothing, and is
             * refused rather than reported done */
            size_t ns;
            strbuf scratch;
            sb_init(&scratch);
            step *st = path_parse(rq->path, &ns, &scratch);
            if (st && !walk(out->def, st, ns, rq->path, &scratch)) {
                if (out->warnings) {
                    why_add(why, out->warnings);
                }
                char *msg = xasprintf("path '%s' is not part of a pattern definition (the "
                                      "check drops it): the edit would store nothing",
                                      rq->path);
                why_add(why, msg);
                free(msg);
                rc = NDF_ERR_INVALID;
            }
            steps_free(st, st ? ns : 0);
            sb_free(&scratch);
        }
        break;
    }
    case DEFINE_SETTING:
    case DEFINE_UNSETTING: {
        out->row.kind = xstrdup(STORE_DEF_SETTING);
        out->row.name = xstrdup(rq->name);
        if (rq->verb == DEFINE_UNSETTING) {
            out->remove = 1;
            if (!row_find(rows, n, STORE_DEF_SETTING, rq->name)) {
                char *msg = xasprintf("no run-time value of setting '%s'", rq->name);
                why_add(why, msg);
                free(msg);
                rc = NDF_ERR_NOT_FOUND;
            } else {
                out->summary = xasprintf("setting %s: back to the configuration's value",
                                         rq->name);
            }
            break;
        }
        /* checked on a scratch configuration: the real one gets it when
         * the rows are laid over it */
        config *c = xcalloc(1, sizeof *c);
        settings_default(&c->set);
        rc = config_apply_setting(c, DEFINE_REQUEST_ORIGIN, rq->name, rq->literal);
        if (rc)
            why_add(why, err_msg());
        config_free(c);
        if (!rc) {
            out->row.text = xstrdup(rq->literal);
            out->summary = xasprintf("setting %s = %s", rq->name, rq->literal);
        }
        break;
    }
    }
    if (rc)
        define_change_free(out);
    return rc;
}
