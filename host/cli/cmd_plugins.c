/* `ndf plugins` (what the configured directories hold, loaded or refused)
 * and `ndf inspect FILE` (one plugin file: descriptor, ABI verdict and the
 * full parameter schema of everything it provides), as text or JSON. */
#include "build-config.h"

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/runtime.h"
#include "cli/commands.h"
#include "cli/opt.h"
#include "plugin/elfdata.h"
#include "plugin/loader.h"
#include "exec/services.h"
#include "base/value.h"
#include "base/util.h"

static const char plugins_usage[] =
    "Usage: ndf plugins [--json]\n"
    "\n"
    "Loads the plugins of the configured directories (NDF_PLUGIN_PATH replaces\n"
    "them) and lists every file tried: the loaded ones with their name,\n"
    "version, ABI, file, SHA-256 and the pattern types and steps they provide;\n"
    "the refused ones with the reason.\n"
    "\n"
    "Options:\n"
    "  --json      print one JSON object (see ndf(1))\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0, even when some files were refused (their count is printed\n"
    "on standard error); 2 on a bad command line or configuration.\n";

static const char inspect_usage[] =
    "Usage: ndf inspect [--json] [--conformance] FILE\n"
    "\n"
    "Checks one plugin file exactly as the loader would (ownership and mode,\n"
    "ELF, descriptor, ABI version, init) and prints its descriptor, the ABI\n"
    "verdict, and every pattern type and step it provides with its parameter\n"
    "schema.  Runs the plugin's init and fini; needs no configuration.\n"
    "\n"
    "Options:\n"
    "  --json         print one JSON object (see ndf(1))\n"
    "  --conformance  also exercise it as the host will: bind each step and\n"
    "                 create each pattern type with its schema's defaults and\n"
    "                 free them, load a second copy beside the first as a hot\n"
    "                 reload does, report writable global data (.data, .bss)\n"
    "                 and check that fini leaves no thread behind; one verdict\n"
    "                 (ok, warn, fail, skipped) per check\n"
    "  -h, --help     show this help\n"
    "\n"
    "Exit status: 0 valid plugin (with --conformance: no check failed); 7 not a\n"
    "valid plugin, or a conformance check failed (the reason is printed on\n"
    "standard error); 3 no such file; 8 system error; 2 bad command line.\n";

/* Parses --json and --help, up to the first operand.  Returns -1 to go on,
 * else the exit code; the operands are left in *p. */
static int parse_opts(cmd_ctx *c, opt_parser *p, int argc, char **argv, int *json, int *conf)
{
    static const opt_spec opts[] = {{"json", 0, OPT_NONE, 'j'},
                                    {"conformance", 0, OPT_NONE, 'C'},
                                    {"help", 'h', OPT_NONE, 'h'},
                                    {0}};
    opt_init(p, argc, argv, opts, OPT_PERMUTE, NULL);
    int o;
    while ((o = opt_next(p)) != OPT_END) {
        if (o == 'C' && !conf)
            o = OPT_BAD; /* only inspect has it */
        switch (o) {
        case 'j': *json = 1; break;
        case 'C': *conf = 1; break;
        case 'h': return cmd_help(c);
        default:
            cmd_error(c, "unknown option '%s' (see 'ndf %s --help')\n", p->bad, argv[0]);
            return EXIT_USAGE;
        }
    }
    return -1;
}

/* ---- JSON ---- */

/* Stable names (documented in ndf(1)); independent of any message text. */
static const char *type_name(ndf_value_type t)
{
    switch (t) {
    case NDF_VALUE_STRING: return "string";
    case NDF_VALUE_INT: return "int";
    case NDF_VALUE_NUMBER: return "number";
    case NDF_VALUE_BOOL: return "bool";
    case NDF_VALUE_LIST: return "list";
    case NDF_VALUE_GROUP: return "group";
    case NDF_VALUE_ANY: return "any";
    default: return "none";
    }
}

static int has_children(const ndf_param_spec *s)
{
    return s->children && (s->type == NDF_VALUE_GROUP ||
                           (s->type == NDF_VALUE_LIST && s->elem_type == NDF_VALUE_GROUP));
}

static void json_params(strbuf *sb, const ndf_param_spec *spec)
{
    sb_puts(sb, "[");
    for (size_t i = 0; spec && spec[i].name; i++) {
        const ndf_param_spec *s = &spec[i];
        if (i)
            sb_puts(sb, ",");
        sb_puts(sb, "{\"name\":");
        sb_json_str(sb, s->name);
        sb_printf(sb, ",\"type\":\"%s\",\"required\":%s,\"default\":", type_name(s->type),
                  (s->flags & NDF_PARAM_REQUIRED) ? "true" : "false");
        sb_json_str(sb, (s->flags & NDF_PARAM_REQUIRED) ? NULL : s->def);
        sb_puts(sb, ",\"range\":");
        if (s->flags & NDF_PARAM_RANGE) {
            sb_puts(sb, "{\"min\":");
            sb_json_num(sb, s->min, 0);
            sb_puts(sb, ",\"max\":");
            sb_json_num(sb, s->max, 0);
            sb_puts(sb, "}");
        } else {
            sb_puts(sb, "null");
        }
        sb_puts(sb, ",\"element_type\":");
        if (s->type == NDF_VALUE_LIST)
            sb_printf(sb, "\"%s\"", type_name(s->elem_type ? s->elem_type : NDF_VALUE_ANY));
        else
            sb_puts(sb, "null");
        sb_printf(sb, ",\"open\":%s,\"doc\":", (s->flags & NDF_PARAM_OPEN) ? "true" : "false");
        sb_json_str(sb, s->doc);
        sb_puts(sb, ",\"children\":");
        if (has_children(s))
            json_params(sb, s->children);
        else
            sb_puts(sb, "[]");
        sb_puts(sb, "}");
    }
    sb_puts(sb, "]");
}

/* Appends `"pattern_types":[...],"steps":[...]`; with `full`, each entry is
 * an object with its schema, else just the name. */
static void json_provides(strbuf *sb, const plugin_info *pi, int full)
{
    for (int k = 0; k < 2; k++) {
        provided_kind kind = k == 0 ? PROVIDED_PATTERN_TYPE : PROVIDED_STEP;
        sb_puts(sb, k == 0 ? "\"pattern_types\":[" : ",\"steps\":[");
        int n = 0;
        for (size_t i = 0; i < pi->nprovides; i++) {
            const provided *p = pi->provides[i];
            if (p->kind != kind)
                continue;
            if (n++)
                sb_puts(sb, ",");
            if (!full) {
                sb_json_str(sb, p->name);
                continue;
            }
            sb_puts(sb, "{\"name\":");
            sb_json_str(sb, p->name);
            sb_puts(sb, ",\"description\":");
            if (kind == PROVIDED_PATTERN_TYPE) {
                const ndf_pattern_type_def *d = p->def.ptype;
                sb_json_str(sb, d->description);
                sb_printf(sb, ",\"rollback\":%s,\"matches\":%s", d->rollback ? "true" : "false",
                          d->matches ? "true" : "false");
                sb_puts(sb, ",\"params\":");
                json_params(sb, d->params);
            } else {
                const ndf_step_def *d = p->def.step;
                sb_json_str(sb, d->description);
                sb_printf(sb, ",\"blocking\":%s,\"undo\":%s",
                          (d->flags & NDF_STEP_BLOCKING) ? "true" : "false",
                          d->undo ? "true" : "false");
                sb_puts(sb, ",\"params\":");
                json_params(sb, d->params);
            }
            sb_puts(sb, "}");
        }
        sb_puts(sb, "]");
    }
}

static void json_plugin_common(strbuf *sb, const plugin_info *pi)
{
    sb_puts(sb, "\"file\":");
    sb_json_str(sb, pi->path);
    sb_puts(sb, ",\"cached\":");
    sb_json_str(sb, pi->cached);
    sb_puts(sb, ",\"sha256\":");
    sb_json_str(sb, pi->hash[0] ? pi->hash : NULL);
    sb_printf(sb, ",\"loaded\":%s,\"reason\":", pi->loaded ? "true" : "false");
    sb_json_str(sb, pi->reason);
    sb_printf(sb, ",\"quarantined\":%s,\"scanned\":%s", pi->quarantined ? "true" : "false",
              pi->scanned == 2 ? "\"cached\"" : pi->scanned ? "\"now\"" : "null");
    sb_puts(sb, ",\"name\":");
    sb_json_str(sb, pi->name);
    sb_puts(sb, ",\"version\":");
    sb_json_str(sb, pi->version);
    sb_puts(sb, ",\"license\":");
    sb_json_str(sb, pi->license);
    sb_puts(sb, ",\"description\":");
    sb_json_str(sb, pi->description);
    sb_puts(sb, ",\"abi\":");
    if (pi->desc_size)
        sb_printf(sb, "{\"major\":%u,\"minor\":%u}", pi->abi_major, pi->abi_minor);
    else
        sb_puts(sb, "null");
    sb_printf(sb, ",\"descriptor_size\":%zu,", pi->desc_size);
}

/* ---- text ---- */

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

static void print_names(FILE *out, const plugin_info *pi, provided_kind kind, const char *label)
{
    int n = 0;
    for (size_t i = 0; i < pi->nprovides; i++) {
        if (pi->provides[i]->kind != kind)
            continue;
        fprintf(out, "%s%s", n++ ? ", " : label, pi->provides[i]->name);
    }
    if (n)
        fprintf(out, "\n");
}

static void print_params(FILE *out, const ndf_param_spec *spec, int indent, int depth)
{
    for (size_t i = 0; spec && spec[i].name; i++) {
        const ndf_param_spec *s = &spec[i];
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, type_name(s->type));
        if (s->type == NDF_VALUE_LIST)
            sb_printf(&sb, " of %s", type_name(s->elem_type ? s->elem_type : NDF_VALUE_ANY));
        if (s->flags & NDF_PARAM_REQUIRED)
            sb_puts(&sb, ", required");
        else if (s->def)
            sb_printf(&sb, ", default %s", s->def);
        if (s->flags & NDF_PARAM_RANGE) {
            int len = s->type == NDF_VALUE_STRING || s->type == NDF_VALUE_LIST;
            sb_printf(&sb, ", %s %.15g..%.15g", len ? "length" : "range", s->min, s->max);
        }
        if (s->flags & NDF_PARAM_OPEN)
            sb_puts(&sb, ", open");
        fprintf(out, "%*s%s (%s)%s%s\n", indent, "", s->name, sb.buf, s->doc ? ": " : "",
                s->doc ? s->doc : "");
        sb_free(&sb);
        if (has_children(s) && depth < 16)
            print_params(out, s->children, indent + 2, depth + 1);
    }
}

static void print_provided(FILE *out, const provided *p)
{
    const char *desc;
    const ndf_param_spec *params;
    strbuf extra;
    sb_init(&extra);
    if (p->kind == PROVIDED_PATTERN_TYPE) {
        const ndf_pattern_type_def *d = p->def.ptype;
        desc = d->description;
        params = d->params;
        if (d->rollback)
            sb_puts(&extra, ", rollback");
        if (d->matches)
            sb_puts(&extra, ", matches");
    } else {
        const ndf_step_def *d = p->def.step;
        desc = d->description;
        params = d->params;
        if (d->flags & NDF_STEP_BLOCKING)
            sb_puts(&extra, ", blocking");
        if (d->undo)
            sb_puts(&extra, ", undo");
    }
    fprintf(out, "\n%s %s%s%s\n", p->kind == PROVIDED_PATTERN_TYPE ? "pattern type" : "step",
            p->name, desc ? ": " : "", desc ? desc : "");
    if (extra.len)
        fprintf(out, "  supports: %s\n", extra.buf + 2);
    sb_free(&extra);
    if (params && params[0].name) {
        fprintf(out, "  parameters:\n");
        print_params(out, params, 4, 0);
    } else {
        fprintf(out, "  parameters: none\n");
    }
}

/* ---- ndf plugins ---- */

static void plugins_text(FILE *out, size_t i, const plugin_info *pi)
{
    if (!pi->loaded) {
        /* the reason says "quarantined: ..." for those */
        fprintf(out, "%srefused: %s\n", i ? "\n" : "", pi->reason);
        return;
    }
    fprintf(out, "%s%s %s (ABI %u.%u)\n", i ? "\n" : "", pi->name, or_dash(pi->version),
            pi->abi_major, pi->abi_minor);
    fprintf(out, "  file: %s\n  sha256: %.16s\n", pi->path, pi->hash);
    if (pi->description)
        fprintf(out, "  description: %s\n", pi->description);
    print_names(out, pi, PROVIDED_PATTERN_TYPE, "  pattern types: ");
    print_names(out, pi, PROVIDED_STEP, "  steps: ");
}

static int cmd_plugins(cmd_ctx *c, int argc, char **argv)
{
    int json = 0;
    opt_parser p;
    int rc = parse_opts(c, &p, argc, argv, &json, NULL);
    if (rc >= 0)
        return rc;
    if (p.noperands) {
        cmd_error(c, "unexpected argument '%s' (see 'ndf plugins --help')\n", p.operands[0]);
        return EXIT_USAGE;
    }
    runtime *a = c->rt;
    rc = runtime_load(a, RT_PLUGINS);
    if (rc != NDF_OK)
        return exit_code_for(rc);

    size_t n = loader_count(a->ld), refused = 0, quarantined = 0;
    strbuf sb;
    sb_init(&sb);
    if (json)
        sb_puts(&sb, "{\"plugins\":[");
    for (size_t i = 0; i < n; i++) {
        plugin_info pi;
        loader_plugin(a->ld, i, &pi);
        refused += !pi.loaded;
        quarantined += pi.quarantined != 0;
        if (json) {
            sb_puts(&sb, i ? ",{" : "{");
            json_plugin_common(&sb, &pi);
            json_provides(&sb, &pi, 0);
            sb_puts(&sb, "}");
        } else {
            plugins_text(c->out, i, &pi);
        }
    }
    if (json) {
        sb_printf(&sb,
                  "],\"loaded\":%zu,\"refused\":%zu,\"quarantined\":%zu,\"host_abi\":{"
                  "\"major\":%d,\"minor\":%d}}\n",
                  n - refused, refused, quarantined, NDF_ABI_MAJOR, NDF_ABI_MINOR);
        fputs(sb.buf, c->out);
    } else if (n == 0) {
        size_t nd;
        char *const *dirs = runtime_plugin_dirs(a, &a->cfg->set, &nd);
        fprintf(c->out, "no plugin files found in");
        for (size_t i = 0; i < nd; i++)
            fprintf(c->out, " %s", dirs[i]);
        fprintf(c->out, "\n");
    }
    sb_free(&sb);
    if (refused && quarantined)
        cmd_error(c, "%zu of %zu plugin file%s refused (%zu quarantined)\n", refused, n,
                  n == 1 ? "" : "s", quarantined);
    else if (refused)
        cmd_error(c, "%zu of %zu plugin file%s refused\n", refused, n, n == 1 ? "" : "s");
    return EXIT_OK;
}

/* ---- ndf inspect ---- */

static void inspect_text(FILE *out, const plugin_info *pi, int status)
{
    fprintf(out, "file: %s\n", pi->path);
    if (pi->hash[0])
        fprintf(out, "sha256: %s\n", pi->hash);
    if (pi->name)
        fprintf(out, "name: %s\nversion: %s\nlicense: %s\ndescription: %s\n", pi->name,
                or_dash(pi->version), or_dash(pi->license), or_dash(pi->description));
    if (pi->desc_size)
        fprintf(out, "abi: %u.%u (descriptor %zu bytes; this ndf supports %d.%d)\n", pi->abi_major,
                pi->abi_minor, pi->desc_size, NDF_ABI_MAJOR, NDF_ABI_MINOR);
    fprintf(out, "verdict: %s\n", status == NDF_OK ? "compatible" : "refused");
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < pi->nprovides; i++)
            if (pi->provides[i]->kind == (k ? PROVIDED_STEP : PROVIDED_PATTERN_TYPE))
                print_provided(out, pi->provides[i]);
}

/* ---- ndf inspect --conformance ---- */

typedef struct checks {
    FILE *out;
    int json;
    strbuf sb; /* JSON: the "checks" array so far */
    int nfail, nwarn, n;
} checks;

static void check_say(checks *k, const char *what, const char *result, const char *fmt, ...)
    ATTR_PRINTF(4, 5);

/* One verdict: `result` is ok, warn, fail or skipped. */
static void check_say(checks *k, const char *what, const char *result, const char *fmt, ...)
{
    char detail[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    k->nfail += strcmp(result, "fail") == 0;
    k->nwarn += strcmp(result, "warn") == 0;
    if (k->json) {
        sb_puts(&k->sb, k->n ? ",{\"check\":" : "{\"check\":");
        sb_json_str(&k->sb, what);
        sb_puts(&k->sb, ",\"result\":");
        sb_json_str(&k->sb, result);
        sb_puts(&k->sb, ",\"detail\":");
        sb_json_str(&k->sb, detail);
        sb_puts(&k->sb, "}");
    } else {
        fprintf(k->out, "%-8s %s: %s\n", result, what, detail);
    }
    k->n++;
}

/* The required parameters of `schema` (no default can stand in), as
 * "a, b", or "" when there are none. */
static void required_of(const ndf_param_spec *schema, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const ndf_param_spec *s = schema; s && s->name; s++)
        if (s->flags & NDF_PARAM_REQUIRED) {
            size_t len = strlen(buf);
            snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", s->name);
        }
}

/* Threads of this process now (from /proc), or 0 when unknown. */
static size_t thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void conform_step(checks *k, const provided *pv)
{
    char what[160], req[512];
    snprintf(what, sizeof what, "step %s", pv->name);
    const ndf_step_def *d = pv->def.step;
    required_of(d->params, req, sizeof req);
    if (req[0]) {
        check_say(k, what, "skipped", "bind with defaults: it needs %s", req);
    } else {
        ndf_step *st = NULL;
        int rc = host_services.step_new(pv->name, NULL, NULL, &st);
        if (rc == NDF_OK) {
            host_services.step_free(st);
            check_say(k, what, "ok", "binds with its schema's defaults (create/destroy pair)");
        } else if (rc == NDF_ERR_VALIDATION || rc == NDF_ERR_INVALID) {
            /* What a schema cannot say ("argv or command") is create()'s to
             * check: refusing the defaults with a message is conforming. */
            check_say(k, what, "ok", "refuses its schema's defaults with a message: %s", err_msg());
        } else {
            check_say(k, what, "fail",
                      "binding with its schema's defaults failed with '%s' (a create() that "
                      "refuses parameters returns NDF_ERR_VALIDATION): %s",
                      ndf_status_name(rc), err_msg());
        }
    }
    int has_undo = d->size >= offsetof(ndf_step_def, undo) + sizeof d->undo && d->undo;
    check_say(k, what, "ok", "%s",
              has_undo ? "declares undo (rollback runs it)"
                       : "declares no undo (rollback skips it)");
    if ((d->size >= offsetof(ndf_step_def, destroy) + sizeof d->destroy && d->destroy) &&
        !(d->size >= offsetof(ndf_step_def, create) + sizeof d->create && d->create))
        check_say(k, what, "warn", "has destroy() but no create(): destroy is never called");
}

static void conform_type(checks *k, const provided *pv)
{
    char what[160], req[512];
    snprintf(what, sizeof what, "pattern type %s", pv->name);
    const ndf_pattern_type_def *d = pv->def.ptype;
    required_of(d->params, req, sizeof req);
    if (req[0]) {
        check_say(k, what, "skipped", "create with defaults: it needs %s", req);
        return;
    }
    ndf_value *params = value_new_group(NULL);
    int rc = value_validate(params, d->params, what);
    void *inst = NULL;
    if (rc == NDF_OK) {
        err_clear();
        rc = d->create(&host_services, params, &inst);
        if (rc == NDF_OK)
            d->destroy(&host_services, inst);
    }
    loader_requirement *rq;
    size_t nrq;
    loader_take_requirements(&rq, &nrq);
    loader_free_requirements(rq, nrq);
    if (rc == NDF_OK)
        check_say(k, what, "ok", "creates with its schema's defaults (create/destroy pair)");
    else if ((rc == NDF_ERR_VALIDATION || rc == NDF_ERR_INVALID) && *err_msg())
        check_say(k, what, "ok", "refuses its schema's defaults with a message: %s", err_msg());
    else
        check_say(k, what, "fail",
                  "create with its schema's defaults failed with '%s' (a create() that refuses "
                  "parameters returns NDF_ERR_VALIDATION with a message): %s",
                  ndf_status_name(rc), *err_msg() ? err_msg() : "no message");
    value_free(params);
}

/* A private cache directory for one copy; "" when none could be made. */
static void temp_cache(char *dir, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, cap, "%s/ndf-conformance.XXXXXX", t && t[0] == '/' ? t : "/tmp");
    if (!mkdtemp(dir))
        dir[0] = '\0';
}

static int inspect_conformance(cmd_ctx *c, const char *path, int json)
{
    checks k = {.out = c->out, .json = json};
    sb_init(&k.sb);
    size_t threads0 = thread_count();
    char cache1[PATH_MAX], cache2[PATH_MAX];
    temp_cache(cache1, sizeof cache1);
    temp_cache(cache2, sizeof cache2);
    /* Two loaders with caches of their own: two private copies of the file,
     * as a hot reload has (dlopen caches by path). */
    loader_opts lo1 = {.host = &host_services, .quiet = 1, .cache_dir = cache1[0] ? cache1 : NULL};
    loader_opts lo2 = {.host = &host_services, .quiet = 1, .cache_dir = cache2[0] ? cache2 : NULL};
    loader *ld = loader_new(&lo1), *ld2 = NULL;
    if (!ld) {
        cmd_error(c, "%s\n", err_msg());
        sb_free(&k.sb);
        return EXIT_IO;
    }
    int status = loader_load(ld, path);
    plugin_info pi;
    loader_plugin(ld, 0, &pi);
    if (status != NDF_OK) {
        check_say(&k, "load", "fail", "%s", pi.reason ? pi.reason : err_msg());
    } else {
        check_say(&k, "load", "ok",
                  "%s %s loads (ABI %u.%u recorded: hosts of 1.%u and later load it)", pi.name,
                  or_dash(pi.version), pi.abi_major, pi.abi_minor, pi.abi_minor);
        loader *prev = loader_scope_enter(ld);
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < pi.nprovides; i++) {
                const provided *pv = pi.provides[i];
                if (pass == 0 && pv->kind == PROVIDED_STEP)
                    conform_step(&k, pv);
                else if (pass == 1 && pv->kind == PROVIDED_PATTERN_TYPE)
                    conform_type(&k, pv);
            }
        loader_scope_leave(prev);
        if (!pi.nprovides)
            check_say(&k, "provides", "warn", "registers no step and no pattern type");

        ld2 = loader_new(&lo2);
        int st2 = ld2 ? loader_load(ld2, path) : NDF_ERR_IO;
        if (st2 == NDF_OK)
            check_say(&k, "reload", "ok",
                      "a second copy loads and initializes beside the first, as during a hot "
                      "reload");
        else
            check_say(&k, "reload", "fail", "a second copy beside the first does not load: %s",
                      ld2 ? (loader_plugin(ld2, 0, &pi), pi.reason) : err_msg());
        loader_plugin(ld, 0, &pi);
    }
    elf_data_info ei;
    if (elf_data_read(path, &ei) != NDF_OK) {
        check_say(&k, "writable data", "skipped", "%s", err_msg());
    } else if (ei.nobjects) {
        check_say(&k, "writable data", "warn",
                  ".data %zu bytes, .bss %zu bytes; mutable globals: %s.  A hot reload's new "
                  "copy starts with its own, so state kept there is lost (hand it over with "
                  "state_save/state_restore) and shared by concurrent executions (guard it)",
                  ei.data_size, ei.bss_size, ei.objects);
    } else {
        check_say(&k, "writable data", "ok",
                  ".data %zu bytes, .bss %zu bytes, none of it the plugin's own globals%s",
                  ei.data_size, ei.bss_size,
                  ei.have_symtab ? "" : " (stripped: only exported symbols were seen)");
    }
    free(ei.objects);
    fflush(c->out);
    loader_free(ld2);
    loader_free(ld);
    if (cache1[0])
        rmdir(cache1);
    if (cache2[0])
        rmdir(cache2);
    if (status == NDF_OK) {
        size_t threads1 = thread_count();
        if (!threads0 || !threads1)
            check_say(&k, "fini", "skipped", "no /proc/self/task to count threads in");
        else if (threads1 > threads0)
            check_say(&k, "fini", "fail",
                      "%zu thread(s) still run after fini and unloading: a thread started by "
                      "the plugin must be joined in fini",
                      threads1 - threads0);
        else
            check_say(&k, "fini", "ok", "leaves no thread behind (%zu before, %zu after)", threads0,
                      threads1);
    }
    int code = status == NDF_ERR_NOT_FOUND ? EXIT_NOT_FOUND
               : status == NDF_ERR_IO      ? EXIT_IO
               : k.nfail || status         ? EXIT_PLUGIN
                                           : EXIT_OK;
    if (json) {
        fprintf(c->out, "{\"file\":");
        strbuf f;
        sb_init(&f);
        sb_json_str(&f, path);
        fprintf(c->out, "%s,\"checks\":[%s],\"failed\":%d,\"warnings\":%d,\"verdict\":\"%s\"}\n",
                f.buf, k.sb.buf ? k.sb.buf : "", k.nfail, k.nwarn, code ? "fail" : "pass");
        sb_free(&f);
    } else {
        fprintf(c->out, "conformance: %s (%d check(s), %d failed, %d warning(s))\n",
                code ? "FAIL" : "pass", k.n, k.nfail, k.nwarn);
    }
    sb_free(&k.sb);
    return code;
}

static int cmd_inspect(cmd_ctx *c, int argc, char **argv)
{
    int json = 0, conf = 0;
    opt_parser p;
    int rc = parse_opts(c, &p, argc, argv, &json, &conf);
    if (rc >= 0)
        return rc;
    if (p.noperands != 1) {
        cmd_error(c, "%s (see 'ndf inspect --help')\n",
                  !p.noperands ? "expected one plugin FILE" : "expected only one FILE");
        return EXIT_USAGE;
    }
    const char *path = p.operands[0];
    if (conf)
        return inspect_conformance(c, path, json);

    /* A private loader: inspecting must not touch the configured plugins,
     * and the same checks apply, so an insecure file gets that verdict. */
    loader_opts lo = {.host = &host_services, .quiet = 1};
    loader *ld = loader_new(&lo);
    if (!ld) {
        cmd_error(c, "%s\n", err_msg());
        return EXIT_IO;
    }
    int status = loader_load(ld, path);
    plugin_info pi;
    loader_plugin(ld, 0, &pi);
    int code = status == NDF_OK              ? EXIT_OK
               : status == NDF_ERR_NOT_FOUND ? EXIT_NOT_FOUND
               : status == NDF_ERR_IO        ? EXIT_IO
                                             : EXIT_PLUGIN;
    const char *verdict = status == NDF_OK ? "compatible" : pi.reason;

    if (json) {
        strbuf sb;
        sb_init(&sb);
        sb_printf(&sb, "{\"valid\":%s,\"verdict\":", status == NDF_OK ? "true" : "false");
        sb_json_str(&sb, verdict);
        sb_printf(&sb, ",\"host_abi\":{\"major\":%d,\"minor\":%d},", NDF_ABI_MAJOR, NDF_ABI_MINOR);
        json_plugin_common(&sb, &pi);
        json_provides(&sb, &pi, 1);
        sb_puts(&sb, "}\n");
        fputs(sb.buf, c->out);
        sb_free(&sb);
    } else if (code != EXIT_NOT_FOUND) {
        inspect_text(c->out, &pi, status);
    }
    if (status != NDF_OK)
        cmd_error(c, "%s\n", pi.reason);
    /* out first: the plugin's fini may write to the terminal too */
    fflush(c->out);
    loader_free(ld);
    return code;
}

const cmd_entry cmd_plugins_entry = {
    .name = "plugins",
    .summary = "list loaded and refused plugins",
    .usage = plugins_usage,
    .flags = CMD_SERVABLE | CMD_LOADER,
    .exec = cmd_plugins,
};

const cmd_entry cmd_inspect_entry = {
    .name = "inspect",
    .summary = "check a plugin file and print what it provides",
    .usage = inspect_usage,
    .exec = cmd_inspect,
};
