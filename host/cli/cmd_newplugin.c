/* `ndf new-plugin`: writes a plugin directory that builds and passes
 * `ndf inspect` and its own `make check` as written: a source file with the
 * chosen steps and pattern types stubbed (schemas included), a Makefile
 * that uses `pkg-config ndf-sdk` alone, a README and a test configuration.
 * Like `apxs -g`: the author's first five minutes, not a framework. */
#include "build-config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opt.h"
#include "base/util.h"

static const char newplugin_usage[] =
    "Usage: ndf new-plugin NAME [--step S]... [--pattern-type T]... [DIR]\n"
    "\n"
    "Writes a new plugin directory DIR (default: ./NAME, which must not exist or\n"
    "be empty): NAME.c with each step S and pattern type T stubbed, with their\n"
    "parameter schemas; a Makefile that builds NAME.so with `pkg-config ndf-sdk`\n"
    "and tests it with `ndf test-step` (make check); README.md; and NAME.conf, a\n"
    "configuration that uses what it provides.  Without --step or --pattern-type\n"
    "the plugin gets one step named after it.  `cd DIR && make && ndf inspect\n"
    "./NAME.so` works at once.\n"
    "\n"
    "  NAME   [a-z0-9_][a-z0-9_-]*, at most 64 bytes: the plugin's name\n"
    "  S, T   [a-z0-9_]+, at most 64 bytes, unique among everything ndf loads\n";

#define MAX_NAMES 32

typedef struct np_args {
    const char *name, *dir;
    const char *steps[MAX_NAMES], *types[MAX_NAMES];
    size_t nsteps, ntypes;
    char ident[72]; /* NAME as a C identifier and default step name */
} np_args;

static int name_ok(const char *s, int dash)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
              (dash && s[n] == '-')))
            return 0;
    /* A leading '-' would make NAME.c an option to the compiler. */
    return n > 0 && n <= 64 && s[0] != '-';
}

/* ---- the files ---- */

static void gen_step(FILE *f, const char *s)
{
    fprintf(
        f,
        "/* ---- step \"%s\" ---- */\n"
        "\n"
        "static const ndf_param_spec step_%s_params[] = {\n"
        "    NDF_PARAM(\"text\", NDF_VALUE_STRING, 0, \"\\\"hello from %s\\\"\",\n"
        "              \"what the step logs; may use ${domain}, ${attr.KEY}, ...\"),\n"
        "    NDF_PARAM_END};\n"
        "\n"
        "/* Does the work in record node `node`.  Return NDF_OK, or a status with\n"
        " * host->fail(): NDF_ERR_EXECUTION when the work failed, NDF_ERR_TIMEOUT or\n"
        " * NDF_ERR_CANCELLED when host->cancelled(node) said so (ndf-plugin(7),\n"
        " * STATUS CONTRACT). */\n"
        "static int step_%s_run(const ndf_host *host, ndf_exec *node, const ndf_value *params,\n"
        "                  void *instance)\n"
        "{\n"
        "    (void)instance;\n"
        "    char *text = NULL;\n"
        "    int rc = host->expand(node, host->value_string(host->value_get(params, "
        "\"text\")), &text);\n"
        "    if (rc)\n"
        "        return rc; /* the host set the message */\n"
        "    host->node_log(node, NDF_LOG_INFO, \"%%s\", text);\n"
        "    host->free(text);\n"
        "    return NDF_OK;\n"
        "}\n"
        "\n"
        "static const ndf_step_def step_%s_step = {\n"
        "    .size = sizeof(ndf_step_def),\n"
        "    .name = \"%s\",\n"
        "    .description = \"TODO: what %s does, in one line\",\n"
        "    .params = step_%s_params,\n"
        "    .run = step_%s_run,\n"
        "};\n\n",
        s, s, s, s, s, s, s, s, s);
}

static void gen_type(FILE *f, const char *t)
{
    fprintf(
        f,
        "/* ---- pattern type \"%s\": its tasks, one after the other ---- */\n"
        "\n"
        "static const ndf_param_spec type_%s_task[] = {\n"
        "    NDF_PARAM(\"name\", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, \"the task's "
        "name\"),\n"
        "    NDF_PARAM(\"step\", NDF_VALUE_STRING, NDF_PARAM_REQUIRED, NULL, \"the step type it "
        "runs\"),\n"
        "    NDF_PARAM_GROUP(\"params\", 0, NULL, \"the step's parameters\"),\n"
        "    NDF_TASK_PARAMS, /* timeout, retries, backoff, backoff_max */\n"
        "    NDF_PARAM_END};\n"
        "\n"
        "static const ndf_param_spec type_%s_params[] = {\n"
        "    NDF_PARAM_LIST(\"tasks\", NDF_VALUE_GROUP, NDF_PARAM_REQUIRED, type_%s_task, \"the "
        "tasks\"),\n"
        "    NDF_PARAM_END};\n"
        "\n"
        "/* One instance per pattern definition; read-only once built. */\n"
        "typedef struct type_%s_inst {\n"
        "    size_t n;\n"
        "    char **names;\n"
        "    ndf_task **tasks; /* bound with host->task_new(), freed with host->task_free() */\n"
        "} type_%s_inst;\n"
        "\n"
        "static void type_%s_destroy(const ndf_host *host, void *instance)\n"
        "{\n"
        "    type_%s_inst *p = instance;\n"
        "    if (!p)\n"
        "        return;\n"
        "    for (size_t i = 0; i < p->n; i++) {\n"
        "        free(p->names[i]);\n"
        "        host->task_free(p->tasks[i]);\n"
        "    }\n"
        "    free(p->names);\n"
        "    free(p->tasks);\n"
        "    free(p);\n"
        "}\n"
        "\n"
        "static int type_%s_create(const ndf_host *host, const ndf_value *params, void "
        "**instance)\n"
        "{\n"
        "    const ndf_value *list = host->value_get(params, \"tasks\");\n"
        "    size_t n = host->value_count(list);\n"
        "    type_%s_inst *p = calloc(1, sizeof *p);\n"
        "    if (!p || !(p->names = calloc(n + 1, sizeof *p->names)) ||\n"
        "        !(p->tasks = calloc(n + 1, sizeof *p->tasks))) {\n"
        "        type_%s_destroy(host, p);\n"
        "        return host->fail(NDF_ERR_NOMEM, \"%s: out of memory\");\n"
        "    }\n"
        "    for (size_t i = 0; i < n; i++) {\n"
        "        const ndf_value *e = host->value_at(list, i);\n"
        "        ndf_task_spec spec;\n"
        "        ndf_task_spec_read(host, e, &spec);\n"
        "        int rc = host->task_new(&spec, &p->tasks[i]);\n"
        "        p->names[i] = strdup(host->value_string(host->value_get(e, \"name\")));\n"
        "        p->n = i + 1;\n"
        "        if (!rc && !p->names[i])\n"
        "            rc = host->fail(NDF_ERR_NOMEM, \"%s: out of memory\");\n"
        "        if (rc) {\n"
        "            type_%s_destroy(host, p);\n"
        "            return rc;\n"
        "        }\n"
        "    }\n"
        "    *instance = p;\n"
        "    return NDF_OK;\n"
        "}\n"
        "\n"
        "/* One execution: a STEP node per task, each run with its retries by the\n"
        " * host; the first failure ends it (and its status is the pattern's). */\n"
        "static int type_%s_run(const ndf_host *host, ndf_exec *exec, void *instance)\n"
        "{\n"
        "    const type_%s_inst *p = instance;\n"
        "    for (size_t i = 0; i < p->n; i++) {\n"
        "        ndf_exec *node = host->node_new(exec, NDF_NODE_STEP, p->names[i]);\n"
        "        if (!node)\n"
        "            return host->fail(NDF_ERR_NOMEM, \"%s: out of memory\");\n"
        "        int rc = host->task_run(node, p->tasks[i]);\n"
        "        if (rc)\n"
        "            return host->fail(rc, \"task '%%s' %%s: %%s\", p->names[i], "
        "ndf_status_name(rc),\n"
        "                              host->last_error());\n"
        "    }\n"
        "    return NDF_OK;\n"
        "}\n"
        "\n"
        "static const ndf_pattern_type_def type_%s_type = {\n"
        "    .size = sizeof(ndf_pattern_type_def),\n"
        "    .name = \"%s\",\n"
        "    .description = \"TODO: how %s runs its tasks, in one line\",\n"
        "    .params = type_%s_params,\n"
        "    .create = type_%s_create,\n"
        "    .destroy = type_%s_destroy,\n"
        "    .run = type_%s_run,\n"
        "};\n\n",
        t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t);
}

static void gen_source(FILE *f, const np_args *a)
{
    fprintf(f,
            "/* The %s plugin for ndf.  Generated by `ndf new-plugin`; make it yours.\n"
            " * ndf-plugin(7) is the contract; the template under the ndf documentation\n"
            " * directory (examples/plugin) is a commented walk-through. */\n"
            "#include <stdlib.h>\n"
            "#include <string.h>\n"
            "\n"
            "/* The oldest host minor this plugin needs (it records it in its\n"
            " * descriptor); the compiler warns where it uses something newer. */\n"
            "#define NDF_SDK_MIN_MINOR %d\n"
            "#include <ndf/sdk.h>\n\n",
            a->name, a->ntypes ? 2 : 0);
    for (size_t i = 0; i < a->nsteps; i++)
        gen_step(f, a->steps[i]);
    for (size_t i = 0; i < a->ntypes; i++)
        gen_type(f, a->types[i]);
    fprintf(f, "static int plugin_init(const ndf_host *host, ndf_registrar *reg, void **state)\n"
               "{\n"
               "    *state = NULL;\n"
               "    int rc = NDF_OK;\n");
    for (size_t i = 0; i < a->nsteps; i++)
        fprintf(f, "    if (!rc)\n        rc = host->register_step(reg, &step_%s_step);\n",
                a->steps[i]);
    for (size_t i = 0; i < a->ntypes; i++)
        fprintf(f, "    if (!rc)\n        rc = host->register_pattern_type(reg, &type_%s_type);\n",
                a->types[i]);
    fprintf(
        f,
        "    return rc;\n"
        "}\n"
        "\n"
        "NDF_PLUGIN_DEFINE(\"%s\", \"0.1.0\", \"MIT\", \"TODO: what %s provides, in one line\",\n"
        "                  plugin_init, NULL);\n",
        a->name, a->name);
}

static void gen_makefile(FILE *f, const np_args *a)
{
    fprintf(f,
            "# Builds %s.so out of tree with `pkg-config ndf-sdk` alone.\n"
            "#   make / make check (ndf test-step) / make install / make uninstall / make clean\n"
            "# Variables: PKG_CONFIG, CC, CFLAGS, CPPFLAGS, LDFLAGS, DESTDIR, PLUGINDIR,\n"
            "# NDF (the ndf to test with).  Cross or staged builds: PKG_CONFIG_SYSROOT_DIR.\n"
            "\n"
            "PKG_CONFIG ?= pkg-config\n"
            "NDF ?= ndf\n"
            "CFLAGS ?= -O2 -g -Wall -Wextra\n"
            "PLUGIN = %s.so\n"
            "SRCS = %s.c\n"
            "\n"
            "ifeq ($(filter clean,$(MAKECMDGOALS)),)\n"
            "ifneq ($(shell $(PKG_CONFIG) --exists ndf-sdk && echo yes),yes)\n"
            "$(error $(PKG_CONFIG) cannot find ndf-sdk: install the ndf SDK, or point "
            "PKG_CONFIG_PATH at the directory holding ndf-sdk.pc)\n"
            "endif\n"
            "endif\n"
            "\n"
            "SDK_CFLAGS := $(shell $(PKG_CONFIG) --cflags ndf-sdk 2>/dev/null)\n"
            "SDK_LIBS := $(shell $(PKG_CONFIG) --libs ndf-sdk 2>/dev/null)\n"
            "SDK_PLUGINDIR := $(shell $(PKG_CONFIG) --variable=plugindir ndf-sdk 2>/dev/null)\n"
            "ifneq ($(PKG_CONFIG_SYSROOT_DIR),)\n"
            "PLUGINDIR ?= $(patsubst $(PKG_CONFIG_SYSROOT_DIR)%%,%%,$(SDK_PLUGINDIR))\n"
            "DESTDIR ?= $(PKG_CONFIG_SYSROOT_DIR)\n"
            "else\n"
            "PLUGINDIR ?= $(SDK_PLUGINDIR)\n"
            "endif\n"
            "\n"
            "all: $(PLUGIN)\n"
            "\n"
            "$(PLUGIN): $(SRCS)\n"
            "\t$(CC) $(CPPFLAGS) $(SDK_CFLAGS) $(CFLAGS) -o $@ $(SRCS) $(LDFLAGS) $(SDK_LIBS)\n"
            "\n"
            "# One line per case: run the step alone, expect its outcome (exit 0\n"
            "# completed, 1 failed, 5 timed out, 10 cancelled).\n"
            "check: $(PLUGIN)\n"
            "\t$(NDF) inspect ./$(PLUGIN) >/dev/null\n",
            a->name, a->name, a->name);
    for (size_t i = 0; i < a->nsteps; i++)
        fprintf(f,
                "\t$(NDF) test-step ./$(PLUGIN) %s --params '{\"text\": \"hi $${attr.who}\"}' "
                "--attr who=me | grep -qx 'hi me'\n"
                "\t$(NDF) test-step ./$(PLUGIN) %s --params '{\"text\": \"$${attr.nope}\"}' "
                ">/dev/null; test $$? -eq 1\n",
                a->steps[i], a->steps[i]);
    fprintf(f, "\n"
               "install: $(PLUGIN)\n"
               "\tinstall -d '$(DESTDIR)$(PLUGINDIR)'\n"
               "\tinstall -m 755 $(PLUGIN) '$(DESTDIR)$(PLUGINDIR)/$(PLUGIN)'\n"
               "\n"
               "uninstall:\n"
               "\trm -f '$(DESTDIR)$(PLUGINDIR)/$(PLUGIN)'\n"
               "\n"
               "clean:\n"
               "\trm -f $(PLUGIN)\n"
               "\n"
               ".PHONY: all check install uninstall clean\n");
}

static void gen_readme(FILE *f, const np_args *a)
{
    fprintf(f, "# %s: an ndf plugin\n\nProvides", a->name);
    for (size_t i = 0; i < a->nsteps; i++)
        fprintf(f, "%s the step `%s`", i ? "," : "", a->steps[i]);
    for (size_t i = 0; i < a->ntypes; i++)
        fprintf(f, "%s the pattern type `%s`", a->nsteps || i ? "," : "", a->types[i]);
    fprintf(f,
            ".\n\n"
            "```sh\n"
            "make                        # builds %s.so with `pkg-config ndf-sdk`\n"
            "ndf inspect ./%s.so         # descriptor, ABI verdict, parameter docs\n"
            "make check                  # each step alone, through `ndf test-step`\n"
            "ndf inspect --conformance ./%s.so\n"
            "make install                # into `pkg-config --variable=plugindir ndf-sdk`\n"
            "ndf -c %s.conf check-config # a configuration that uses it, once installed\n"
            "```\n\n"
            "The contract is ndf-plugin(7): ABI versions, the services table and who\n"
            "may call what from which thread, what each status a step returns means,\n"
            "hot reload.  Keep everything `static` but the descriptor, and no mutable\n"
            "globals (a new build is loaded beside the old one during a hot reload).\n",
            a->name, a->name, a->name, a->name);
}

static void gen_conf(FILE *f, const np_args *a)
{
    fprintf(f,
            "# A configuration that uses what %s provides.  Once the plugin is installed\n"
            "# (or with NDF_PLUGIN_PATH pointing here and at ndf's own plugins, whose\n"
            "# directory is `pkg-config --variable=plugindir ndf-sdk`):\n"
            "# `ndf -c %s.conf check-config`, then `ndf -c %s.conf run NAME`.\n"
            "patterns = (\n",
            a->name, a->name, a->name);
    int first = 1;
    for (size_t i = 0; i < a->ntypes; i++, first = 0) {
        fprintf(f,
                "%s  { name = \"try_%s\"; type = \"%s\";\n"
                "    params = { tasks = ( ",
                first ? "" : ",\n", a->types[i], a->types[i]);
        if (a->nsteps)
            for (size_t k = 0; k < a->nsteps; k++)
                fprintf(f, "%s{ name = \"t%zu\"; step = \"%s\"; retries = 1; }", k ? ", " : "", k,
                        a->steps[k]);
        else
            fprintf(f, "{ name = \"t0\"; step = \"log\"; params = { message = \"hi\"; }; }");
        fprintf(f, " ); }; }");
    }
    for (size_t i = 0; i < a->nsteps; i++, first = 0)
        fprintf(f,
                "%s  { name = \"try_%s\"; type = \"sequential\";\n"
                "    params = { steps = ( { name = \"s\"; step = \"%s\";\n"
                "                           params = { text = \"hello ${domain}\"; }; } ); }; }",
                first ? "" : ",\n", a->steps[i], a->steps[i]);
    fprintf(f, "\n);\n");
}

/* Writes dir/name with gen(); 0 or -1 after saying why. */
static int write_file(cmd_ctx *c, const char *dir, const char *name,
                      void (*gen)(FILE *, const np_args *), const np_args *a)
{
    char *path = xasprintf("%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        cmd_error(c, "cannot create %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(path);
        return -1;
    }
    gen(f, a);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        cmd_error(c, "writing %s: %s\n", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    return 0;
}

static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int empty = 1;
    struct dirent *e;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

static int add_name(cmd_ctx *c, const char **list, size_t *n, const char *v, const char *what,
                    const np_args *a)
{
    if (!name_ok(v, 0)) {
        cmd_error(c, "%s name '%s' is not [a-z0-9_]+ of at most 64 bytes\n", what, v);
        return -1;
    }
    for (size_t i = 0; i < a->nsteps; i++)
        if (strcmp(a->steps[i], v) == 0)
            goto dup;
    for (size_t i = 0; i < a->ntypes; i++)
        if (strcmp(a->types[i], v) == 0)
            goto dup;
    if (*n >= MAX_NAMES) {
        cmd_error(c, "at most %d of each\n", MAX_NAMES);
        return -1;
    }
    list[(*n)++] = v;
    return 0;
dup:
    /* Generated identifiers are the names: one name, one thing. */
    cmd_error(c, "'%s' is given twice\n", v);
    return -1;
}

static int cmd_new_plugin(cmd_ctx *c, int argc, char **argv)
{
    enum { OPT_STEP = 1, OPT_TYPE };
    static const opt_spec specs[] = {{"step", 0, OPT_REQUIRED, OPT_STEP},
                                     {"pattern-type", 0, OPT_REQUIRED, OPT_TYPE},
                                     {"help", 'h', OPT_NONE, 'h'},
                                     {0}};
    np_args a = {0};
    opt_parser p;
    opt_init(&p, argc, argv, specs, OPT_PERMUTE, c->err);
    int o;
    while ((o = opt_next(&p)) != OPT_END) {
        switch (o) {
        case 'h': return cmd_help(c);
        case OPT_STEP:
            if (add_name(c, a.steps, &a.nsteps, p.arg, "step", &a))
                return EXIT_USAGE;
            break;
        case OPT_TYPE:
            if (add_name(c, a.types, &a.ntypes, p.arg, "pattern type", &a))
                return EXIT_USAGE;
            break;
        default: return cmd_bad_usage(c);
        }
    }
    if (p.noperands < 1 || p.noperands > 2) {
        cmd_error(c, "expected NAME [DIR] (see 'ndf new-plugin --help')\n");
        return EXIT_USAGE;
    }
    a.name = p.operands[0];
    if (!name_ok(a.name, 1)) {
        cmd_error(c,
                  "plugin name '%s' is not [a-z0-9_][a-z0-9_-]* of at most 64 "
                  "bytes\n",
                  a.name);
        return EXIT_USAGE;
    }
    snprintf(a.ident, sizeof a.ident, "%s", a.name);
    for (char *q = a.ident; *q; q++)
        if (*q == '-')
            *q = '_';
    if (!a.nsteps && !a.ntypes)
        a.steps[a.nsteps++] = a.ident;
    a.dir = p.noperands == 2 ? p.operands[1] : a.name;
    if (mkdir(a.dir, 0755) != 0) {
        int e = errno; /* dir_empty() changes errno */
        if (!(e == EEXIST && dir_empty(a.dir))) {
            cmd_error(c, "%s: %s\n", a.dir,
                      e == EEXIST ? "exists and is not an empty directory" : strerror(e));
            return e == EEXIST ? EXIT_USAGE : EXIT_IO;
        }
    }
    char *src = xasprintf("%s.c", a.name), *conf = xasprintf("%s.conf", a.name);
    int bad = write_file(c, a.dir, src, gen_source, &a) ||
              write_file(c, a.dir, "Makefile", gen_makefile, &a) ||
              write_file(c, a.dir, "README.md", gen_readme, &a) ||
              write_file(c, a.dir, conf, gen_conf, &a);
    free(src);
    free(conf);
    if (bad)
        return EXIT_IO;
    if (c->verbosity >= 0)
        fprintf(c->out,
                "wrote %s/: %s.c, Makefile, README.md, %s.conf\n"
                "next: cd %s && make && ndf inspect ./%s.so && make check\n",
                a.dir, a.name, a.name, a.dir, a.name);
    return EXIT_OK;
}

const cmd_entry cmd_new_plugin_entry = {
    .name = "new-plugin",
    .summary = "write a new plugin directory that builds and tests at once",
    .usage = newplugin_usage,
    .exec = cmd_new_plugin,
};
