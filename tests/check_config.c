/* Check suite for host/config.c: defaults, every key's range and type
 * errors, unknown keys, syntax and I/O errors with file:line, relative paths,
 * @include, patterns_dir order, duplicates, and the pattern value trees. */
#include "build-config.h"

#include <check.h>
#include <errno.h>
#include <cJSON.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/config.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "base/value.h"

static char scratch[PATH_MAX];

static void make_scratch(void)
{
    const char *b = getenv("top_builddir");
    snprintf(scratch, sizeof scratch, "%s/check_config.XXXXXX", b && *b ? b : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
}

/* The scratch tree is created and removed in process: a shell and a
 * mkdir or rm for each of a few hundred files made this suite take a
 * minute on a busy machine. */
static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void rm_scratch(void)
{
    ck_assert_int_eq(nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Writes `text` to scratch/name (directories created); returns the path. */
static char *put(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", scratch, name);
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    ck_assert_int_eq(fs_mkdir_p(dir, 0777, NULL), NDF_OK);
    free(dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* put() for files whose path the test does not need. */
static void put_only(const char *name, const char *text)
{
    free(put(name, text));
}

static char *fixture(const char *name)
{
    const char *s = getenv("top_srcdir");
    return xasprintf("%s/tests/configs/%s", s && *s ? s : ".", name);
}

/* Loads and asserts the status. */
static config *load(const char *path, int want_rc)
{
    config *c = NULL;
    int rc = config_load(path, &c);
    ck_assert_ptr_nonnull(c);
    if (rc != want_rc) {
        for (size_t i = 0; i < c->ndiags; i++)
            fprintf(stderr, "diag: %s\n", c->diags[i].text);
    }
    ck_assert_int_eq(rc, want_rc);
    return c;
}

/* Asserts that a diagnostic of the given kind reads exactly `fmt`. */
static void has_diag(const config *c, int is_error, const char *fmt, ...) ATTR_PRINTF(3, 4);

static void has_diag(const config *c, int is_error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *want = xvasprintf(fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < c->ndiags; i++)
        if (c->diags[i].is_error == is_error && strcmp(c->diags[i].text, want) == 0) {
            free(want);
            return;
        }
    for (size_t i = 0; i < c->ndiags; i++)
        fprintf(stderr, "have %s: %s\n", c->diags[i].is_error ? "error" : "warning",
                c->diags[i].text);
    ck_abort_msg("missing %s: %s", is_error ? "error" : "warning", want);
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    unsetenv("NDF_STATE_DIR");
    unsetenv("XDG_STATE_HOME");
    unsetenv("NDF_RUNTIME_DIR");
    unsetenv("XDG_RUNTIME_DIR");
    setenv("HOME", "/home/u", 1);
    settings s;
    settings_default(&s);
    ck_assert(s.confidence_threshold == 0.75);
    ck_assert_int_eq(s.confidence_gate, GATE_WARN); /* explicit runs below it warn */
    ck_assert_int_eq(s.delegation_max_fallbacks, 2);
    ck_assert(s.delegation_prior_strength == 10);
    ck_assert(s.delegation_epsilon == 0.1);
    ck_assert_int_eq(s.learning.algorithm, ALGO_ADAPTIVE_BAYES);
    ck_assert(s.learning.learning_rate == 0.1);
    ck_assert_int_eq(s.learning.min_samples, 5);
    ck_assert(s.learning.convergence_threshold == 0.95);
    ck_assert_int_eq(s.cache_size, 1000);
    ck_assert_int_eq(s.learning_enabled, 1);
    ck_assert_int_eq(s.threads, 4);
    ck_assert(s.default_timeout == 60.0);
    ck_assert(s.pattern_timeout == 120.0);
    ck_assert(s.max_timeout == 0); /* unset: nothing caps a deadline */
    ck_assert_int_eq(s.resources_system, 0); /* resources.scope = "ndf" */
    ck_assert(s.kill_grace == 2.0);
    ck_assert_str_eq(s.storage_path, "/home/u/.local/state/ndf");
    ck_assert_int_eq(s.backups, 5);
    ck_assert_int_eq(s.compression, 1);
    ck_assert_int_eq(s.compression_level, 6);
    ck_assert_int_eq(s.history_limit, 1000);
    ck_assert_uint_eq(s.nplugin_dirs, 1);
    ck_assert_str_eq(s.plugin_dirs[0], PLUGINDIR);
    ck_assert_int_eq(s.allow_insecure, 0);
    ck_assert_ptr_null(s.cache_dir);
    char *sock = xasprintf("/tmp/ndf-%lu/ndf.sock", (unsigned long)getuid());
    ck_assert_str_eq(s.socket_path, sock);
    free(sock);
    ck_assert_ptr_null(s.socket_group);
    ck_assert_ptr_null(s.patterns_dir);
    ck_assert_ptr_null(s.file);
    settings_free(&s);

    setenv("XDG_STATE_HOME", "/xdg/state", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    settings_default(&s);
    ck_assert_str_eq(s.storage_path, "/xdg/state/ndf");
    ck_assert_str_eq(s.socket_path, "/run/user/7/ndf/ndf.sock");
    settings_free(&s);

    /* Relative XDG values are invalid by the XDG spec and ignored. */
    setenv("XDG_STATE_HOME", "rel", 1);
    setenv("XDG_RUNTIME_DIR", "rel", 1);
    settings_default(&s);
    ck_assert_str_eq(s.storage_path, "/home/u/.local/state/ndf");
    settings_free(&s);

    setenv("NDF_STATE_DIR", "/srv/ndf", 1);
    setenv("NDF_RUNTIME_DIR", "/run/ndf", 1);
    settings_default(&s);
    ck_assert_str_eq(s.storage_path, "/srv/ndf");
    ck_assert_str_eq(s.socket_path, "/run/ndf/ndf.sock");
    settings_free(&s);
    unsetenv("NDF_STATE_DIR");
    unsetenv("NDF_RUNTIME_DIR");
    unsetenv("XDG_STATE_HOME");
    unsetenv("XDG_RUNTIME_DIR");
}
END_TEST

START_TEST(test_empty_file)
{
    make_scratch();
    char *p = put("empty.conf", "# nothing\n");
    config *c = load(p, NDF_OK);
    ck_assert_str_eq(c->set.file, p);
    ck_assert_uint_eq(c->ndiags, 0);
    ck_assert_uint_eq(c->npatterns, 0);
    ck_assert_int_eq(c->set.threads, 4);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

START_TEST(test_all_keys)
{
    make_scratch();
    char *p = put("all.conf",
                  "confidence: { threshold = 0.5; algorithm = \"weighted_average\";\n"
                  "  learning_rate = 0.25; min_samples = 10; convergence_threshold = 0.98; };\n"
                  "registry: { cache_size = 100000000; learning = false; };\n"
                  "executor: { threads = 256; default_timeout = 30; pattern_timeout = 0.5;\n"
                  "  kill_grace = 0; max_timeout = 90; };\n"
                  "storage: { path = \"/var/x\"; backups = 0; compression = false; level = 9;\n"
                  "  history_limit = 1000000; };\n"
                  "plugins: { dirs = [ \"/a\", \"/b\" ]; allow_insecure = true;\n"
                  "  cache_dir = \"/c\"; };\n"
                  "server: { socket = \"/s.sock\"; group = \"ndf\"; };\n"
                  "patterns_dir = \"/nonexistent-but-unused\";\n");
    /* The patterns_dir does not exist: the only error. */
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1, "%s:11: cannot read patterns_dir /nonexistent-but-unused: "
                   "No such file or directory", p);
    settings *s = &c->set;
    ck_assert(s->confidence_threshold == 0.5);
    ck_assert_int_eq(s->learning.algorithm, ALGO_WEIGHTED_AVERAGE);
    ck_assert(s->learning.learning_rate == 0.25);
    ck_assert_int_eq(s->learning.min_samples, 10);
    ck_assert(s->learning.convergence_threshold == 0.98);
    ck_assert_int_eq(s->cache_size, 100000000);
    ck_assert_int_eq(s->learning_enabled, 0);
    ck_assert_int_eq(s->threads, 256);
    ck_assert(s->default_timeout == 30.0);
    ck_assert(s->pattern_timeout == 0.5);
    ck_assert(s->max_timeout == 90.0);
    ck_assert(s->kill_grace == 0.0);
    ck_assert_str_eq(s->storage_path, "/var/x");
    ck_assert_int_eq(s->backups, 0);
    ck_assert_int_eq(s->compression, 0);
    ck_assert_int_eq(s->compression_level, 9);
    ck_assert_int_eq(s->history_limit, 1000000);
    ck_assert_uint_eq(s->nplugin_dirs, 2);
    ck_assert_str_eq(s->plugin_dirs[0], "/a");
    ck_assert_str_eq(s->plugin_dirs[1], "/b");
    ck_assert_int_eq(s->allow_insecure, 1);
    ck_assert_str_eq(s->cache_dir, "/c");
    ck_assert_str_eq(s->socket_path, "/s.sock");
    ck_assert_str_eq(s->socket_group, "ndf");
    ck_assert_str_eq(s->patterns_dir, "/nonexistent-but-unused");
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

/* learning_rate weighs outcomes in weighted_average only: set for another
 * algorithm, wherever the algorithm key stands, it is accepted with a
 * warning; with weighted_average, or left unset, nothing is said. */
START_TEST(test_learning_rate_unused)
{
    make_scratch();
    char *p = put("lr.conf", "confidence: {\n  learning_rate = 0.3;\n  algorithm = \"simple_average\"; };\n");
    config *c = load(p, NDF_OK);
    ck_assert_uint_eq(c->ndiags, 1);
    has_diag(c, 0,
             "%s:2: 'confidence.learning_rate' has no effect with algorithm 'simple_average' "
             "(only weighted_average uses it)",
             p);
    config_free(c);
    free(p);
    p = put("lr.conf", "confidence: { learning_rate = 0.3; };\n");
    c = load(p, NDF_OK);
    has_diag(c, 0,
             "%s:1: 'confidence.learning_rate' has no effect with algorithm 'adaptive_bayes' "
             "(only weighted_average uses it)",
             p);
    config_free(c);
    free(p);
    p = put("lr.conf", "confidence: { algorithm = \"weighted_average\"; learning_rate = 0.3; };\n");
    c = load(p, NDF_OK);
    ck_assert_uint_eq(c->ndiags, 0);
    ck_assert(c->set.learning.learning_rate == 0.3);
    config_free(c);
    free(p);
    p = put("lr.conf", "confidence: { min_samples = 3; };\n");
    c = load(p, NDF_OK);
    ck_assert_uint_eq(c->ndiags, 0);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

/* ---- ranges: every ranged key, below and above ---- */

static const struct range_case {
    const char *section, *key, *value, *message;
} range_cases[] = {
    {"confidence", "threshold", "-0.01", "is -0.01, out of range [0, 1]"},
    {"confidence", "threshold", "1.01", "is 1.01, out of range [0, 1]"},
    {"confidence", "learning_rate", "-1", "is -1, out of range [0, 1]"},
    {"confidence", "learning_rate", "1.5", "is 1.5, out of range [0, 1]"},
    {"confidence", "min_samples", "-1", "is -1, out of range [0, 1000000]"},
    {"confidence", "min_samples", "1000001", "is 1000001, out of range [0, 1000000]"},
    {"confidence", "convergence_threshold", "-0.5", "is -0.5, out of range [0, 1]"},
    {"confidence", "convergence_threshold", "2.0", "is 2, out of range [0, 1]"},
    {"confidence", "algorithm", "\"bayes\"",
     "is 'bayes', expected simple_average, weighted_average or adaptive_bayes"},
    {"confidence", "gate", "\"strict\"", "is 'strict', expected warn, enforce or off"},
    {"delegation", "max_fallbacks", "-1", "is -1, out of range [0, 1000000]"},
    {"delegation", "prior_strength", "-0.5", "is -0.5, out of range [0, 1000000]"},
    {"delegation", "epsilon", "1.5", "is 1.5, out of range [0, 1]"},
    {"registry", "cache_size", "0", "is 0, out of range [1, 100000000]"},
    {"registry", "cache_size", "100000001L", "is 100000001, out of range [1, 100000000]"},
    {"executor", "threads", "0", "is 0, out of range [1, 256]"},
    {"executor", "threads", "257", "is 257, out of range [1, 256]"},
    {"executor", "default_timeout", "0", "is 0, must be greater than 0"},
    {"executor", "default_timeout", "-1.5", "is -1.5, must be greater than 0"},
    {"executor", "pattern_timeout", "0.0", "is 0, must be greater than 0"},
    {"executor", "max_timeout", "0", "is 0, must be greater than 0"},
    {"executor", "kill_grace", "-0.1", "is -0.1, out of range [0, 60]"},
    {"executor", "kill_grace", "60.5", "is 60.5, out of range [0, 60]"},
    {"storage", "backups", "-1", "is -1, out of range [0, 100]"},
    {"storage", "backups", "101", "is 101, out of range [0, 100]"},
    {"storage", "level", "0", "is 0, out of range [1, 9]"},
    {"storage", "level", "10", "is 10, out of range [1, 9]"},
    {"storage", "history_limit", "0", "is 0, out of range [1, 1000000]"},
    {"storage", "history_limit", "1000001", "is 1000001, out of range [1, 1000000]"},
};

START_TEST(test_range_errors)
{
    const struct range_case *rc = &range_cases[_i];
    make_scratch();
    /* The value sits on line 3 so the line number is really checked. */
    char *text = xasprintf("# range\n%s:\n{ %s = %s; };\n", rc->section, rc->key, rc->value);
    char *p = put("range.conf", text);
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1, "%s:3: '%s.%s' %s", p, rc->section, rc->key, rc->message);
    /* The default survives a rejected value. */
    settings d;
    settings_default(&d);
    ck_assert_int_eq(c->set.threads, d.threads);
    ck_assert_int_eq(c->set.compression_level, d.compression_level);
    settings_free(&d);
    config_free(c);
    free(text);
    free(p);
    rm_scratch();
}
END_TEST

/* A 64-bit value far outside an int's range is still reported exactly. */
START_TEST(test_range_message_exact)
{
    make_scratch();
    char *p = put("r.conf", "storage: { history_limit = 9000000000L; };\n");
    config *c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:1: 'storage.history_limit' is 9000000000, out of range [1, 1000000]", p);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

/* ---- exact numbers ---- */

/* libconfig 1.5 truncated an integer beyond 32 bits written without 'L'
 * (threads = 4294967300 was 4); every integer key at 2^31, 2^32, 2^63 - 1,
 * -2^63, 2^63 and -1,
 * in decimal, and beyond 32 bits in hex, is now reported at its line. */
static const struct wide_key {
    const char *section, *key, *range;
} wide_keys[] = {
    {"confidence", "min_samples", "[0, 1000000]"}, {"registry", "cache_size", "[1, 100000000]"},
    {"executor", "threads", "[1, 256]"},           {"storage", "backups", "[0, 100]"},
    {"storage", "level", "[1, 9]"},                {"storage", "history_limit", "[1, 1000000]"},
};

START_TEST(test_integer_keys_wide)
{
    const struct wide_key *k = &wide_keys[_i];
    static const struct {
        const char *lit, *shown;
    } vals[] = {{"2147483648", "2147483648"},   {"4294967296", "4294967296"},
                {"4294967300", "4294967300"},   {"-1", "-1"},
                {"-2147483649", "-2147483649"}, {"0x100000004", "4294967300"},
                {"0xFFFFFFFF", "4294967295"},   {"4294967297L", "4294967297"},
                /* the 64-bit ends quoted exactly, not as a rounded double */
                {"9223372036854775807", "9223372036854775807"},
                {"-9223372036854775808", "-9223372036854775808"}};
    make_scratch();
    for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
        char *text = xasprintf("# wide\n%s:\n{ %s = %s; };\n", k->section, k->key, vals[i].lit);
        char *p = put("wide.conf", text);
        config *c = load(p, NDF_ERR_VALIDATION);
        ck_assert_uint_eq(c->nerrors, 1);
        has_diag(c, 1, "%s:3: '%s.%s' is %s, out of range %s", p, k->section, k->key,
                 vals[i].shown, k->range);
        config_free(c);
        free(p);
        free(text);
    }
    /* 2^63 fits no 64-bit integer: libconfig would saturate it */
    static const char *const over[] = {"9223372036854775808", "9223372036854775808L",
                                       "-9223372036854775809", "0x8000000000000000",
                                       "0x8000000000000000L", "99999999999999999999"};
    for (size_t i = 0; i < ARRAY_SIZE(over); i++) {
        char *text = xasprintf("# wide\n%s:\n{ %s = %s; };\n", k->section, k->key, over[i]);
        char *p = put("wide.conf", text);
        config *c = load(p, NDF_ERR_VALIDATION);
        ck_assert_uint_eq(c->nerrors, 1);
        ck_assert_msg(strncmp(c->diags[0].text, p, strlen(p)) == 0 &&
                          strncmp(c->diags[0].text + strlen(p), ":3: the integer ", 16) == 0 &&
                          strstr(c->diags[0].text, "does not fit in 64 bits") != NULL,
                      "%s: %s", over[i], c->diags[0].text);
        config_free(c);
        free(p);
        free(text);
    }
    rm_scratch();
}
END_TEST

/* Values beyond 32 bits reach patterns whole; the 64-bit bounds are exact;
 * digits inside names, strings and comments are no numbers. */
START_TEST(test_integer_values_exact)
{
    make_scratch();
    char *p = put("exact.conf",
                  "// 99999999999999999999 in a comment\n"
                  "/* 99999999999999999999\n   4294967300 */\n"
                  "patterns = ( { name = \"p4294967300\"; type = \"t\";\n"
                  "  description = \"99999999999999999999 4294967300\";\n"
                  "  params = { big = 4294967300; hex = 0xFFFFFFFF; neg = -4294967300;\n"
                  "    max = 9223372036854775807; min = -9223372036854775808;\n"
                  "    small = 7; f = 1.5e300; tiny = 1e-400; x-1 = 2; }; } );\n");
    config *c = load(p, NDF_OK);
    ck_assert_uint_eq(c->npatterns, 1);
    const ndf_value *params = value_get(c->patterns[0], "params");
    ck_assert_ptr_nonnull(params);
    ck_assert_int_eq(value_get(params, "big")->u.i, 4294967300LL);
    ck_assert_int_eq(value_get(params, "hex")->u.i, 4294967295LL);
    ck_assert_int_eq(value_get(params, "neg")->u.i, -4294967300LL);
    ck_assert_int_eq(value_get(params, "max")->u.i, INT64_MAX);
    ck_assert_int_eq(value_get(params, "min")->u.i, INT64_MIN);
    ck_assert_int_eq(value_get(params, "small")->u.i, 7);
    ck_assert_int_eq(value_get(params, "x-1")->u.i, 2);
    ck_assert_int_eq(value_get(params, "big")->line, 6);
    ck_assert_int_eq(value_get(params, "max")->line, 7);
    ck_assert_str_eq(value_get(c->patterns[0], "description")->u.s,
                     "99999999999999999999 4294967300");
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

/* A float literal that overflows is infinity to libconfig: refused where it
 * stands; and a NUL byte, which would end libconfig's input early. */
START_TEST(test_float_overflow_and_nul)
{
    make_scratch();
    char *p = put("inf.conf", "# inf\nexecutor:\n{ default_timeout = 1e999; };\n");
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1, "%s:3: the number 1e999 is too large (beyond the range of a double)", p);
    config_free(c);
    free(p);
    p = put("inf2.conf", "patterns = ( { name = \"p\"; type = \"t\";\n timeout = -1.0e400; } );\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:2: the number -1.0e400 is too large (beyond the range of a double)", p);
    config_free(c);
    free(p);
    static const char nul[] = "executor: { threads = 3; };\n# x\0\nexecutor: { threads = 0; };\n";
    p = xasprintf("%s/nul.conf", scratch);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(nul, 1, sizeof nul - 1, f), sizeof nul - 1);
    ck_assert_int_eq(fclose(f), 0);
    c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1,
             "%s:2: a NUL byte (a configuration file is text; libconfig would ignore "
             "everything after it)",
             p);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

/* storage.backend and storage.conninfo: the two names only, said where */
START_TEST(test_storage_backend)
{
    make_scratch();
    char *p = put("b.conf", "storage: { backend = \"postgresql\";\n"
                            "  conninfo = \"host=/run/pg dbname=ndf\"; };\n");
#ifdef HAVE_LIBPQ
    config *c = load(p, NDF_OK);
    ck_assert_int_eq(c->set.storage_backend, 1);
#else
    /* a build without libpq says so where the file asks for it */
    config *c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1,
             "%s:1: 'storage.backend' is 'postgresql', but this ndf was built without "
             "PostgreSQL support; rebuild it with libpq (Debian: apt-get install libpq-dev, then "
             "configure --with-postgresql), or use 'sqlite'",
             p);
#endif
    ck_assert_str_eq(c->set.storage_conninfo, "host=/run/pg dbname=ndf");
    config_free(c);
    free(p);
    p = put("b2.conf", "storage: {\n  backend = \"mysql\"; };\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:2: 'storage.backend' is 'mysql', expected sqlite or postgresql", p);
    config_free(c);
    free(p);
    settings s;
    settings_default(&s);
    ck_assert_int_eq(s.storage_backend, 0);
    ck_assert_ptr_null(s.storage_conninfo);
    settings_free(&s);
    rm_scratch();
}
END_TEST

/* ---- types ---- */

static const struct type_case {
    const char *line, *message;
} type_cases[] = {
    {"confidence: { threshold = \"high\"; };", "'confidence.threshold' must be a number, not a string"},
    {"confidence: { algorithm = 2; };", "'confidence.algorithm' must be a string, not an integer"},
    {"confidence: { min_samples = 5.0; };", "'confidence.min_samples' must be an integer, not a float"},
    {"registry: { learning = 1; };", "'registry.learning' must be a bool (true or false), not an integer"},
    {"registry: { cache_size = \"big\"; };", "'registry.cache_size' must be an integer, not a string"},
    {"executor: { threads = 2.0; };", "'executor.threads' must be an integer, not a float"},
    {"executor: { default_timeout = true; };", "'executor.default_timeout' must be a number, not a bool"},
    {"storage: { path = 5; };", "'storage.path' must be a string, not an integer"},
    {"storage: { compression = \"yes\"; };", "'storage.compression' must be a bool (true or false), not a string"},
    {"plugins: { dirs = 7; };", "'plugins.dirs' must be a list of strings, not an integer"},
    {"plugins: { dirs = ( \"/a\", 3 ); };", "'plugins.dirs[1]' must be a string, not an integer"},
    {"plugins: { cache_dir = [ \"a\" ]; };", "'plugins.cache_dir' must be a string, not an array"},
    {"server: { group = false; };", "'server.group' must be a string, not a bool"},
    {"resources: { scope = 1; };", "'resources.scope' must be a string, not an integer"},
    {"resources: { scope = \"cloud\"; };", "'resources.scope' is 'cloud', expected ndf or system"},
    {"server = \"ndf.sock\";", "'server' must be a group { ... }, not a string"},
    {"patterns_dir = [ \"a\" ];", "'patterns_dir' must be a string, not an array"},
    {"patterns = { name = \"x\"; };", "'patterns' must be a list of groups ( { ... }, ... ), not a group"},
    {"patterns = ( \"x\" );", "patterns[0]: a pattern definition must be a group { ... }, not a string"},
};

START_TEST(test_type_errors)
{
    const struct type_case *tc = &type_cases[_i];
    make_scratch();
    char *text = xasprintf("# types\n\n%s\n", tc->line);
    char *p = put("types.conf", text);
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1, "%s:3: %s", p, tc->message);
    config_free(c);
    free(text);
    free(p);
    rm_scratch();
}
END_TEST

/* Errors do not stop the reading: every one in a file is reported. */
START_TEST(test_many_errors_fixture)
{
    char *p = fixture("types.conf");
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 6);
    has_diag(c, 1, "%s:2: 'confidence.threshold' must be a number, not a string", p);
    has_diag(c, 1, "%s:3: 'registry.learning' must be a bool (true or false), not an integer", p);
    has_diag(c, 1, "%s:4: 'executor.threads' must be an integer, not a float", p);
    has_diag(c, 1, "%s:5: 'storage.path' must be a string, not an integer", p);
    has_diag(c, 1, "%s:6: 'plugins.dirs' must be a list of strings, not an integer", p);
    has_diag(c, 1, "%s:7: 'server' must be a group { ... }, not a string", p);
    /* err_msg() carries the first one for callers that show one line. */
    char *first = xasprintf("%s:2: 'confidence.threshold' must be a number, not a string", p);
    ck_assert_str_eq(err_msg(), first);
    free(first);
    config_free(c);
    free(p);

    p = fixture("ranges.conf");
    c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 5);
    has_diag(c, 1, "%s:3: 'confidence.threshold' is 1.5, out of range [0, 1]", p);
    has_diag(c, 1,
             "%s:4: 'confidence.algorithm' is 'magic', expected simple_average, "
             "weighted_average or adaptive_bayes",
             p);
    has_diag(c, 1, "%s:5: 'registry.cache_size' is 0, out of range [1, 100000000]", p);
    has_diag(c, 1, "%s:6: 'executor.threads' is 257, out of range [1, 256]", p);
    has_diag(c, 1, "%s:7: 'storage.level' is 10, out of range [1, 9]", p);
    config_free(c);
    free(p);
}
END_TEST

/* ---- unknown keys ---- */

START_TEST(test_unknown_keys)
{
    char *p = fixture("unknown.conf");
    config *c = load(p, NDF_OK); /* warnings only */
    ck_assert_uint_eq(c->nerrors, 0);
    ck_assert_uint_eq(c->ndiags, 3);
    has_diag(c, 0, "%s:2: unknown key 'thread' in 'executor' (did you mean 'threads'?)", p);
    has_diag(c, 0, "%s:3: unknown key 'storag' (did you mean 'storage'?)", p);
    has_diag(c, 0, "%s:4: unknown key 'colour'", p);
    ck_assert_int_eq(c->set.threads, 4);
    config_free(c);
    free(p);
}
END_TEST

/* ---- syntax and I/O ---- */

START_TEST(test_syntax_error)
{
    char *p = fixture("syntax.conf");
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1, "%s:3: syntax error", p);
    config_free(c);
    free(p);
}
END_TEST

START_TEST(test_missing_file)
{
    make_scratch();
    char *p = xasprintf("%s/none.conf", scratch);
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1, "cannot read %s: No such file or directory", p);
    ck_assert_int_eq(c->set.threads, 4); /* defaults are still filled in */
    config_free(c);
    free(p);

    c = load(scratch, NDF_ERR_VALIDATION);
    has_diag(c, 1, "cannot read %s: Is a directory", scratch);
    config_free(c);
    rm_scratch();
}
END_TEST

START_TEST(test_unreadable_file)
{
    if (geteuid() == 0)
        return; /* root reads anything */
    make_scratch();
    char *p = put("secret.conf", "executor: { threads = 2; };\n");
    ck_assert_int_eq(chmod(p, 0), 0);
    config *c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "cannot read %s: Permission denied", p);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

/* ---- paths ---- */

START_TEST(test_relative_paths)
{
    char *p = fixture("relative/sub/ndf.conf");
    config *c = load(p, NDF_OK);
    char *dir = fixture("relative/sub");
    char *want = xasprintf("%s/state", dir);
    ck_assert_str_eq(c->set.storage_path, want);
    free(want);
    ck_assert_uint_eq(c->set.nplugin_dirs, 3);
    want = xasprintf("%s/../plugins", dir);
    ck_assert_str_eq(c->set.plugin_dirs[0], want);
    free(want);
    ck_assert_str_eq(c->set.plugin_dirs[1], "/opt/ndf/plugins");
    ck_assert_str_eq(c->set.plugin_dirs[2], dir);
    want = xasprintf("%s/cache", dir);
    ck_assert_str_eq(c->set.cache_dir, want);
    free(want);
    want = xasprintf("%s/run/ndf.sock", dir);
    ck_assert_str_eq(c->set.socket_path, want);
    free(want);
    ck_assert_str_eq(c->set.socket_group, "ndf");
    config_free(c);
    free(p);
    free(dir);
}
END_TEST

/* A relative config path is made absolute against the working directory,
 * and the paths in it against the file, not the working directory. */
START_TEST(test_relative_config_path)
{
    make_scratch();
    char *p = put("a/b/ndf.conf", "storage: { path = \"st\"; };\n");
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(scratch), 0);
    config *c = load("./a/b/ndf.conf", NDF_OK);
    ck_assert_int_eq(chdir(cwd), 0);
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(scratch, real));
    char *want = xasprintf("%s/a/b/ndf.conf", real);
    ck_assert_str_eq(c->set.file, want);
    free(want);
    want = xasprintf("%s/a/b/st", real);
    ck_assert_str_eq(c->set.storage_path, want);
    free(want);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

START_TEST(test_include)
{
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir("/"), 0); /* @include must not depend on the cwd */
    char *p = fixture("include.conf");
    config *c = load(p, NDF_OK);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_int_eq(c->set.threads, 3);
    ck_assert_int_eq(c->set.cache_size, 7);
    /* Relative to the included file's own directory. */
    char *want = fixture("inc/state");
    ck_assert_str_eq(c->set.storage_path, want);
    free(want);
    config_free(c);
    free(p);
}
END_TEST

START_TEST(test_include_errors)
{
    make_scratch();
    char *inc = put("inc/bad.inc", "# bad\nexecutor: { threads = 0; };\n");
    char *p = put("main.conf", "@include \"inc/bad.inc\"\n@include \"inc/none.inc\"\n");
    config *c = load(p, NDF_ERR_VALIDATION);
    /* libconfig stops at the missing include, a parse error of main.conf. */
    ck_assert_uint_eq(c->nerrors, 1);
    ck_assert(strncmp(c->diags[0].text, p, strlen(p)) == 0);
    ck_assert(strstr(c->diags[0].text, ":2: ") != NULL);
    config_free(c);
    free(p);

    p = put("main2.conf", "# ok\n@include \"inc/bad.inc\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:2: 'executor.threads' is 0, out of range [1, 256]", inc);
    config_free(c);
    free(p);
    free(inc);
    rm_scratch();
}
END_TEST

/* Each include is read from the descriptor that was checked, and an error
 * anywhere names the file and line it is in. */
START_TEST(test_include_checked)
{
    make_scratch();
    config *c;
    char *p;
    /* an absolute include names its file */
    p = put("abs.conf", "# abs\n@include \"/nonexistent-ndf/x.inc\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1);
    has_diag(c, 1, "%s:2: cannot read /nonexistent-ndf/x.inc: No such file or directory", p);
    config_free(c);
    free(p);
    /* an include anyone may write is refused: another user could change it */
    char *ww = put("ww.inc", "executor: { threads = 2; };\n");
    ck_assert_int_eq(chmod(ww, 0666), 0);
    p = put("ww.conf", "@include \"ww.inc\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1,
             "%s:1: cannot read %s: it is writable by everyone (mode 0666): run 'chmod o-w %s'",
             p, ww, ww);
    config_free(c);
    free(p);
    if (geteuid() == 0) {
        /* owned by another user, neither root nor the main file's owner */
        ck_assert_int_eq(chmod(ww, 0644), 0);
        ck_assert_int_eq(chown(ww, 12345, 12345), 0);
        p = put("own.conf", "@include \"ww.inc\"\n");
        c = load(p, NDF_ERR_VALIDATION);
        has_diag(c, 1,
                 "%s:1: cannot read %s: it is owned by uid 12345, neither root, the user "
                 "running ndf (uid 0) nor the owner of the main configuration file (uid 0)",
                 p, ww);
        config_free(c);
        /* the main file's owner may own its includes */
        ck_assert_int_eq(chown(p, 12345, 12345), 0);
        c = load(p, NDF_OK);
        ck_assert_int_eq(c->set.threads, 2);
        config_free(c);
        free(p);
    }
    free(ww);
    /* errors inside an include, and in the main file after one, keep their
     * own lines; so do settings three files deep */
    char *b = put("inc/b.inc", "# b\n@include \"inc/c.inc\"\nregistry: { cache_size = 9; };\n");
    char *cc = put("inc/c.inc", "\n\nexecutor: { threads = 0; };\n");
    p = put("deep.conf", "# deep\n\n@include \"inc/b.inc\" # trailing comment\nstorage: { level = 0; };\n");
    c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 2);
    has_diag(c, 1, "%s:3: 'executor.threads' is 0, out of range [1, 256]", cc);
    has_diag(c, 1, "%s:4: 'storage.level' is 0, out of range [1, 9]", p);
    ck_assert_int_eq(c->set.cache_size, 9);
    config_free(c);
    free(p);
    put_only("inc/syn.inc", "# syn\nexecutor: { threads = ; };\n");
    p = put("syn.conf", "@include \"inc/syn.inc\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s/inc/syn.inc:2: syntax error", scratch);
    config_free(c);
    free(p);
    p = put("syn2.conf", "@include \"inc/b.inc\"\n\nstorage: { level = ; };\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:3: syntax error", p);
    config_free(c);
    free(p);
    /* anything but a comment after the name, or a string or comment left
     * open at the end of an include, would join the two files */
    p = put("after.conf", "@include \"inc/b.inc\" @include \"inc/c.inc\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:1: @include: only a comment may follow the file name on its line", p);
    config_free(c);
    free(p);
    char *open_s = put("inc/open.inc", "# open\nserver: { group = \"x;\n");
    p = put("open.conf", "@include \"inc/open.inc\"\n\"; };\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:2: a string opened here is not closed by the end of %s", open_s, open_s);
    config_free(c);
    free(p);
    free(open_s);
    char *open_c = put("inc/openc.inc", "/* open\n");
    p = put("openc.conf", "@include \"inc/openc.inc\"\n*/\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:1: a comment opened here is not closed by the end of %s", open_c, open_c);
    config_free(c);
    free(p);
    free(open_c);
    /* an @include inside a string or a comment is text, as for libconfig */
    p = put("quoted.conf", "server: { group = \"a\n@include \\\"inc/c.inc\\\"\"; };\n/*\n"
                           "@include \"inc/c.inc\"\n*/\n");
    c = load(p, NDF_OK);
    ck_assert_str_eq(c->set.socket_group, "a\n@include \"inc/c.inc\"");
    config_free(c);
    free(p);
    free(b);
    free(cc);
    rm_scratch();
}
END_TEST

/* Hostile inputs: nothing libconfig would block on or read without end. */
START_TEST(test_hostile_files)
{
    make_scratch();
    config *c;
    /* a FIFO blocked the open until a writer came: ndf -c fifo hung */
    char *fifo = xasprintf("%s/fifo.conf", scratch);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    c = load(fifo, NDF_ERR_VALIDATION);
    has_diag(c, 1, "cannot read %s: a FIFO, not a regular file", fifo);
    config_free(c);
    /* so did an @include of one, and of a device that reads forever */
    char *p = put("inc-fifo.conf", "# hostile\n  @include \"fifo.conf\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:2: cannot read %s: a FIFO, not a regular file", p, fifo);
    config_free(c);
    free(p);
    p = put("inc-zero.conf", "@include \"/dev/zero\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:1: cannot read /dev/zero: a device, not a regular file", p);
    config_free(c);
    free(p);
    /* and through a patterns_dir file */
    p = put("pdir.conf", "patterns_dir = \"pd\";\n");
    char *pd = xasprintf("%s/pd", scratch);
    ck_assert_int_eq(mkdir(pd, 0700), 0);
    char *pfifo = xasprintf("%s/x.conf", pd);
    ck_assert_int_eq(mkfifo(pfifo, 0600), 0);
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "cannot read %s: a FIFO, not a regular file", pfifo);
    config_free(c);
    free(pfifo);
    free(pd);
    free(p);
    c = load("/dev/zero", NDF_ERR_VALIDATION);
    has_diag(c, 1, "cannot read /dev/zero: a device, not a regular file");
    config_free(c);
    /* /dev/null stays the way to say "no configuration" */
    config_free(load("/dev/null", NDF_OK));
    /* a huge file is refused before libconfig allocates for it */
    char *huge = xasprintf("%s/huge.conf", scratch);
    FILE *f = fopen(huge, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), (off_t)17 << 20), 0);
    fclose(f);
    c = load(huge, NDF_ERR_VALIDATION);
    has_diag(c, 1,
             "cannot read %s: 17825792 bytes exceeds the 16777216 byte limit for a "
             "configuration file",
             huge);
    config_free(c);
    free(huge);
    /* an include loop ends at libconfig's depth limit */
    p = put("loop.conf", "@include \"loop.conf\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:1: @include nested deeper than 10 files (does a file include itself?)",
             p);
    config_free(c);
    free(p);
    /* found by tests/fuzz/fuzz_config: an include name that a NUL ends (or an
     * empty one) names the directory, whose read error made libconfig's
     * scanner exit(2) the whole process ("input in flex scanner failed") */
    char nulinc[] = "@include \"\0x\"\n";
    p = xasprintf("%s/nulinc.conf", scratch);
    f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(nulinc, 1, sizeof nulinc - 1, f), sizeof nulinc - 1);
    ck_assert_int_eq(fclose(f), 0);
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1,
             "%s:1: a NUL byte (a configuration file is text; libconfig would ignore "
             "everything after it)",
             p);
    config_free(c);
    free(p);
    /* and one whose closing quote is on a later line, or missing */
    char noquote[] = "a = 1;\n@include \"\0x\n";
    p = xasprintf("%s/noquote.conf", scratch);
    f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(noquote, 1, sizeof noquote - 1, f), sizeof noquote - 1);
    ck_assert_int_eq(fclose(f), 0);
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1,
             "%s:2: a NUL byte (a configuration file is text; libconfig would ignore "
             "everything after it)",
             p);
    config_free(c);
    free(p);
    p = put("noquote2.conf", "a = 1;\n@include \"x\ny\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:2: @include: the file name has no closing quote on its line", p);
    config_free(c);
    free(p);
    p = put("emptyinc.conf", "@include \"\"\n");
    c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:1: cannot read %s/: Is a directory", p, scratch);
    config_free(c);
    free(p);
    /* a file whose read fails (here: EIO) made libconfig's scanner exit(2) */
    if (access("/proc/self/mem", R_OK) == 0) {
        c = load("/proc/self/mem", NDF_ERR_VALIDATION);
        has_diag(c, 1, "cannot read /proc/self/mem: %s", strerror(EIO));
        config_free(c);
    }
    /* (tests/fuzz/fuzz_config found that a file holding just "" leaks inside
     * libconfig 1.5: not loaded here, as it would fail the sanitizer build;
     * see tests/fuzz/lsan.supp) */
    free(fifo);
    rm_scratch();
}
END_TEST

/* ---- patterns ---- */

static void assert_positions(const ndf_value *v, const char *file)
{
    ck_assert_ptr_nonnull(v->file);
    ck_assert_str_eq(v->file, file);
    ck_assert_int_gt(v->line, 0);
    for (size_t i = 0; i < value_count(v); i++)
        assert_positions(value_at(v, i), file);
}

START_TEST(test_pattern_tree)
{
    make_scratch();
    char *p = put("p.conf",
                  "patterns = (\n"                                          /* 1 */
                  "  {\n"                                                   /* 2 */
                  "    name = \"demo\";\n"                                  /* 3 */
                  "    type = \"sequential\";\n"                            /* 4 */
                  "    domains = [ \"data_*\", \"etl\" ];\n"                /* 5 */
                  "    attributes = { size = 5000000000L; ratio = 0.5; on = true; };\n"
                  "    confidence_threshold = 0.8;\n"                       /* 7 */
                  "    params = {\n"                                        /* 8 */
                  "      steps = (\n"                                       /* 9 */
                  "        { name = \"a\"; step = \"exec\";\n"              /* 10 */
                  "          params = { argv = [ \"true\" ]; }; }\n"        /* 11 */
                  "      );\n"
                  "    };\n"
                  "  }\n"
                  ");\n");
    config *c = load(p, NDF_OK);
    ck_assert_uint_eq(c->npatterns, 1);
    const ndf_value *d = c->patterns[0];
    ck_assert_int_eq(d->type, NDF_VALUE_GROUP);
    assert_positions(d, p);
    ck_assert_str_eq(d->file, p);
    ck_assert_int_eq(value_get(d, "name")->line, 3);
    ck_assert_str_eq(value_string(value_get(d, "name")), "demo");
    const ndf_value *doms = value_get(d, "domains");
    ck_assert_int_eq(doms->type, NDF_VALUE_LIST);
    ck_assert_int_eq(doms->line, 5);
    ck_assert_uint_eq(value_count(doms), 2);
    ck_assert_str_eq(value_string(value_at(doms, 1)), "etl");
    const ndf_value *attrs = value_get(d, "attributes");
    ck_assert_int_eq(value_get(attrs, "size")->type, NDF_VALUE_INT);
    ck_assert(value_int(value_get(attrs, "size")) == 5000000000LL);
    ck_assert_int_eq(value_get(attrs, "ratio")->type, NDF_VALUE_NUMBER);
    ck_assert_int_eq(value_get(attrs, "on")->type, NDF_VALUE_BOOL);
    const ndf_value *steps = value_get(value_get(d, "params"), "steps");
    ck_assert_int_eq(steps->type, NDF_VALUE_LIST);
    ck_assert_int_eq(steps->line, 9);
    const ndf_value *step = value_at(steps, 0);
    ck_assert_int_eq(step->type, NDF_VALUE_GROUP);
    ck_assert_int_eq(value_get(step, "name")->line, 10);
    ck_assert_int_eq(value_get(value_get(step, "params"), "argv")->line, 11);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

START_TEST(test_pattern_errors)
{
    char *p = fixture("patterns.conf");
    config *c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:3: pattern: missing 'name'", p);
    has_diag(c, 1, "%s:6: pattern 'no_type': missing 'type'", p);
    has_diag(c, 1,
             "%s:10: pattern: invalid name '.hidden' (use A-Z a-z 0-9 _ . -, 1 to 128 "
             "characters, no leading dot)",
             p);
    has_diag(c, 1, "%s:16: pattern 'twice': 'confidence_threshold' is 2, out of range [0, 1]", p);
    has_diag(c, 1, "%s:19: duplicate pattern 'twice' (first defined at %s:14)", p, p);
    has_diag(c, 0, "%s:21: unknown key 'domain' in a pattern definition (did you mean 'domains'?)",
             p);
    ck_assert_uint_eq(c->nerrors, 5);
    ck_assert_uint_eq(c->npatterns, 0);
    config_free(c);
    free(p);
}
END_TEST

START_TEST(test_pattern_generic_types)
{
    make_scratch();
    char *p = put("g.conf",
                  "patterns = ( {\n"
                  "  name = \"g\"; type = \"sequential\";\n"
                  "  description = 5;\n"
                  "  domains = \"data\";\n"
                  "  agent_types = [ 1 ];\n"
                  "  attributes = [ \"a\" ];\n"
                  "  tags = ( \"ok\", true );\n"
                  "  confidence_threshold = \"high\";\n"
                  "  timeout = 0;\n"
                  "  params = 3;\n"
                  "  confidence_gate = \"refuse\";\n"
                  "} );\n");
    config *c = load(p, NDF_ERR_VALIDATION);
    has_diag(c, 1, "%s:3: pattern 'g': 'description' must be a string, not an integer", p);
    has_diag(c, 1, "%s:4: pattern 'g': 'domains' must be a list of strings, not a string", p);
    has_diag(c, 1, "%s:5: pattern 'g': 'agent_types[0]' must be a string, not an integer", p);
    has_diag(c, 1, "%s:6: pattern 'g': 'attributes' must be a group, not a list", p);
    has_diag(c, 1, "%s:7: pattern 'g': 'tags[1]' must be a string, not a bool", p);
    has_diag(c, 1, "%s:8: pattern 'g': 'confidence_threshold' must be a number, not a string", p);
    has_diag(c, 1, "%s:9: pattern 'g': 'timeout' is 0, must be greater than 0", p);
    has_diag(c, 1, "%s:10: pattern 'g': 'params' must be a group, not an integer", p);
    has_diag(c, 1, "%s:11: pattern 'g': 'confidence_gate' is 'refuse', expected warn, enforce or off",
             p);
    ck_assert_uint_eq(c->nerrors, 9);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

START_TEST(test_unknown_pattern_key_dropped)
{
    make_scratch();
    char *p = put("u.conf", "patterns = ( { name = \"u\"; type = \"t\";\n  prams = { }; } );\n");
    config *c = load(p, NDF_OK);
    has_diag(c, 0, "%s:2: unknown key 'prams' in a pattern definition (did you mean 'params'?)", p);
    ck_assert_uint_eq(c->npatterns, 1);
    ck_assert_ptr_null(value_get(c->patterns[0], "prams"));
    ck_assert_uint_eq(value_count(c->patterns[0]), 2);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

START_TEST(test_patterns_dir_order_and_duplicates)
{
    char *p = fixture("dup/main.conf");
    /* Only duplicates are wrong here: "already exists", not "invalid". */
    config *c = load(p, NDF_ERR_EXISTS);
    char *d10 = fixture("dup/d/10-first.conf");
    char *d20 = fixture("dup/d/20-second.conf");
    char *d30 = fixture("dup/d/30-extra.conf");
    char *dir = fixture("dup/d");
    ck_assert_str_eq(c->set.patterns_dir, dir);
    has_diag(c, 1, "%s:3: duplicate pattern 'alpha' (first defined at %s:2)", d20, d10);
    has_diag(c, 1, "%s:3: duplicate pattern 'inline_one' (first defined at %s:4)", d30, p);
    has_diag(c, 0,
             "%s:1: unknown key 'executor' in a patterns_dir file (only 'patterns' is read "
             "there)",
             d30);
    ck_assert_uint_eq(c->nerrors, 2);
    /* inline first, then the files in strcmp order; duplicates dropped */
    static const char *const order[] = {"inline_one", "alpha", "beta", "gamma"};
    ck_assert_uint_eq(c->npatterns, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(value_string(value_get(c->patterns[i], "name")), order[i]);
    ck_assert_str_eq(c->patterns[1]->file, d10);
    ck_assert_str_eq(c->patterns[3]->file, d20);
    /* The other file's settings were not applied. */
    ck_assert_int_eq(c->set.threads, 4);
    config_free(c);
    free(p);
    free(d10);
    free(d20);
    free(d30);
    free(dir);
}
END_TEST

START_TEST(test_patterns_dir_sorting)
{
    make_scratch();
    put_only("pd/b.conf", "patterns = ( { name = \"b\"; type = \"t\"; } );\n");
    put_only("pd/a.conf", "patterns = ( { name = \"a\"; type = \"t\"; } );\n");
    put_only("pd/B.conf", "patterns = ( { name = \"B\"; type = \"t\"; } );\n");
    put_only("pd/10.conf", "patterns = ( { name = \"n10\"; type = \"t\"; } );\n");
    put_only("pd/9.conf", "patterns = ( { name = \"n9\"; type = \"t\"; } );\n");
    put_only("pd/.hidden.conf", "patterns = ( { name = \"hidden\"; type = \"t\"; } );\n");
    put_only("pd/x.conf.bak", "patterns = ( { name = \"bak\"; type = \"t\"; } );\n");
    put_only("pd/dir.conf/inner.conf", "patterns = ( { name = \"inner\"; type = \"t\"; } );\n");
    put_only("pd/broken.conf", "patterns = ( {\n");
    char *p = put("ndf.conf", "patterns_dir = \"pd\";\n");
    config *c = load(p, NDF_ERR_VALIDATION);
    ck_assert_uint_eq(c->nerrors, 1); /* broken.conf; the others still load */
    ck_assert(strstr(c->diags[0].text, "/pd/broken.conf:") != NULL);
    static const char *const order[] = {"n10", "n9", "B", "a", "b"};
    ck_assert_uint_eq(c->npatterns, 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(value_string(value_get(c->patterns[i], "name")), order[i]);
    config_free(c);
    free(p);
    rm_scratch();
}
END_TEST

/* app.c takes definitions out of the config and leaves NULL behind. */
START_TEST(test_free_after_take)
{
    char *p = fixture("dup/main.conf");
    config *c = NULL;
    config_load(p, &c);
    ck_assert_uint_ge(c->npatterns, 2);
    value_free(c->patterns[0]);
    c->patterns[0] = NULL;
    config_free(c);
    free(p);
}
END_TEST

/* ---- JSON ---- */

START_TEST(test_json)
{
    char *p = fixture("relative/sub/ndf.conf");
    config *c = load(p, NDF_OK);
    strbuf sb;
    sb_init(&sb);
    settings_to_json(&c->set, &sb);
    cJSON *j = cJSON_Parse(sb.buf);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "file")->valuestring, p);
    cJSON *conf = cJSON_GetObjectItemCaseSensitive(j, "confidence");
    ck_assert(cJSON_GetObjectItemCaseSensitive(conf, "threshold")->valuedouble == 0.75);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(conf, "algorithm")->valuestring,
                     "adaptive_bayes");
    ck_assert(cJSON_GetObjectItemCaseSensitive(conf, "learning_rate")->valuedouble == 0.1);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(conf, "min_samples")->valueint, 5);
    cJSON *reg = cJSON_GetObjectItemCaseSensitive(j, "registry");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(reg, "cache_size")->valueint, 1000);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reg, "learning")));
    cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "executor");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(ex, "threads")->valueint, 4);
    ck_assert(cJSON_GetObjectItemCaseSensitive(ex, "kill_grace")->valuedouble == 2.0);
    cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "storage");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(st, "path")->valuestring,
                     c->set.storage_path);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(st, "level")->valueint, 6);
    cJSON *pl = cJSON_GetObjectItemCaseSensitive(j, "plugins");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pl, "dirs")), 3);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pl, "allow_insecure")));
    cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "server");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(sv, "group")->valuestring, "ndf");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "patterns_dir")));
    /* 0.1 prints as 0.1, not 0.10000000000000001 */
    ck_assert_ptr_nonnull(strstr(sb.buf, "\"learning_rate\":0.1,"));
    cJSON_Delete(j);
    sb_free(&sb);
    config_free(c);
    free(p);
}
END_TEST

/* The shipped example configuration validates as far as the host's part
 * goes (types and steps are checked once plugins load: check_config.sh). */
START_TEST(test_shipped_patterns)
{
    const char *s = getenv("top_srcdir");
    make_scratch();
    char *text = xasprintf("patterns_dir = \"%s/conf/patterns.d\";\n", s && *s ? s : ".");
    char *p = put("ndf.conf", text);
    config *c = load(p, NDF_OK);
    ck_assert_uint_eq(c->ndiags, 0);
    static const char *const want[] = {"data_processing_pipeline", "microservice_deployment",
                                       "system_migration_orchestration", "basic_deployment"};
    for (size_t w = 0; w < ARRAY_SIZE(want); w++) {
        size_t i = 0;
        while (i < c->npatterns &&
               strcmp(value_string(value_get(c->patterns[i], "name")), want[w]) != 0)
            i++;
        ck_assert_msg(i < c->npatterns, "%s missing", want[w]);
    }
    config_free(c);
    free(text);
    free(p);
    rm_scratch();
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("settings");
    tcase_add_test(t, test_defaults);
    tcase_add_test(t, test_empty_file);
    tcase_add_test(t, test_all_keys);
    tcase_add_test(t, test_learning_rate_unused);
    tcase_add_loop_test(t, test_range_errors, 0, (int)ARRAY_SIZE(range_cases));
    tcase_add_test(t, test_range_message_exact);
    tcase_add_loop_test(t, test_integer_keys_wide, 0, (int)ARRAY_SIZE(wide_keys));
    tcase_add_test(t, test_integer_values_exact);
    tcase_add_test(t, test_float_overflow_and_nul);
    tcase_add_test(t, test_storage_backend);
    tcase_add_loop_test(t, test_type_errors, 0, (int)ARRAY_SIZE(type_cases));
    tcase_add_test(t, test_many_errors_fixture);
    tcase_add_test(t, test_unknown_keys);
    suite_add_tcase(s, t);

    t = tcase_create("files");
    tcase_add_test(t, test_syntax_error);
    tcase_add_test(t, test_missing_file);
    tcase_add_test(t, test_unreadable_file);
    tcase_add_test(t, test_relative_paths);
    tcase_add_test(t, test_relative_config_path);
    tcase_add_test(t, test_include);
    tcase_add_test(t, test_include_errors);
    tcase_add_test(t, test_include_checked);
    tcase_add_test(t, test_hostile_files);
    suite_add_tcase(s, t);

    t = tcase_create("patterns");
    tcase_add_test(t, test_pattern_tree);
    tcase_add_test(t, test_pattern_errors);
    tcase_add_test(t, test_pattern_generic_types);
    tcase_add_test(t, test_unknown_pattern_key_dropped);
    tcase_add_test(t, test_patterns_dir_order_and_duplicates);
    tcase_add_test(t, test_patterns_dir_sorting);
    tcase_add_test(t, test_free_after_take);
    tcase_add_test(t, test_json);
    tcase_add_test(t, test_shipped_patterns);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
