/* Check suite for host/storage.c: round trips, corrupt files and backups,
 * bounded decompression, bad names, exports read back by real parsers, the
 * registry seam, persistence across a restart, and a SIGKILL crash loop. */
#include "build-config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <yaml.h>
#include <zlib.h>

#include "base/learning.h"
#include "model/pattern.h"
#include "store/storage.h"
#include "base/util.h"

static char scratch[512];
static char dir[600];

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char *p = xasprintf("%s/%s", path, de->d_name);
            rm_rf(p);
            free(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void setup(void)
{
    const char *base = getenv("top_builddir");
    snprintf(scratch, sizeof scratch, "%s/check_storage.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
    snprintf(dir, sizeof dir, "%s/state/ndf", scratch);
}

static void teardown(void)
{
    rm_rf(scratch);
}

/* Captures what the code under test logs to stderr. */
static int saved_stderr = -1;
static char errfile[700];

static void capture_start(void)
{
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", scratch);
    int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(errfile, "r");
    ck_assert_ptr_nonnull(f);
    strbuf sb;
    sb_init(&sb);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_add(&sb, buf, n);
    fclose(f);
    return sb_steal(&sb);
}

static storage *open_store(int compression, int backups, long limit)
{
    storage_opts o = {compression, 6, backups, limit, 0};
    storage *s;
    ck_assert_int_eq(storage_open(dir, &o, &s), NDF_OK);
    return s;
}

/* A learning state with `k` executions and two domains. */
static void make_learn(learning_state *l, uint64_t k)
{
    memset(l, 0, sizeof *l);
    l->executions = k;
    l->successes = k / 2;
    l->score = 0.25;
    l->alpha = 1.5 + (double)k;
    l->beta = 2.25;
    l->converged = (int)(k & 1);
    l->last_used = 1700000000.5 + (double)k;
    l->created = 1690000000.25;
    l->ndomains = 2;
    l->domains = xcalloc(2, sizeof *l->domains);
    l->domains[0].domain = xstrdup("data,\"quoted\"");
    l->domains[0].executions = k;
    l->domains[0].successes = k / 2;
    l->domains[1].domain = xstrdup("web");
    l->domains[1].executions = 0;
    l->domains[1].successes = 0;
}

static void free_learn(learning_state *l)
{
    for (size_t i = 0; i < l->ndomains; i++)
        free(l->domains[i].domain);
    free(l->domains);
}

static void make_entry(history_entry *e, int i, int marker)
{
    memset(e, 0, sizeof *e);
    e->time = 1700000000.0 + i * 60.0 + 0.125;
    e->duration_s = 0.5 + i * 0.001;
    e->success = i % 3 != 0;
    e->outcome = xstrdup(e->success ? "succeeded" : "failed");
    e->domain = xstrdup(i % 2 ? "web" : "data,\"quoted\"");
    e->error = e->success ? NULL : xasprintf("step \"b\" failed,\nline2 #%d", marker);
    e->confidence = 0.5 + (double)marker / 1e6;
    e->timeout_s = 60;
    e->cpu_s = 0.01 * i;
    e->peak_rss_kb = 1000 + marker;
    e->nsteps = 2;
    e->steps = xcalloc(2, sizeof *e->steps);
    e->steps[0].name = xstrdup("a");
    e->steps[0].outcome = xstrdup("succeeded");
    e->steps[0].duration_s = 0.1;
    e->steps[0].timeout_s = 10;
    e->steps[1].name = xstrdup("b");
    e->steps[1].outcome = xstrdup(e->success ? "succeeded" : "failed");
    e->steps[1].duration_s = 0.4 + i * 0.001;
}

static void free_entries(history_entry *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        history_entry_free(&h[i]);
    free(h);
}

/* Saves a record with `k` executions and `n` history entries marked `k`. */
static void save_k(storage *s, const char *name, uint64_t k, size_t n)
{
    learning_state l;
    make_learn(&l, k);
    history_entry *h = xcalloc(n ? n : 1, sizeof *h);
    for (size_t i = 0; i < n; i++)
        make_entry(&h[i], (int)i, (int)k);
    ck_assert_msg(storage_save_pattern(s, name, &l, h, n) == NDF_OK, "%s", err_msg());
    free_entries(h, n);
    free_learn(&l);
}

static char *path_of(const char *fname)
{
    return xasprintf("%s/%s", dir, fname);
}

static int file_exists(const char *fname)
{
    char *p = path_of(fname);
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

static int count_prefix(const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

START_TEST(test_roundtrip)
{
    for (int comp = 0; comp <= 1; comp++) {
        storage *s = open_store(comp, 3, 100);
        save_k(s, "deploy", 7, 5);
        stored_pattern sp;
        ck_assert_int_eq(storage_load_pattern(s, "deploy", &sp), NDF_OK);
        ck_assert_str_eq(sp.name, "deploy");
        ck_assert_uint_eq(sp.learn.executions, 7);
        ck_assert_uint_eq(sp.learn.successes, 3);
        ck_assert_double_eq(sp.learn.score, 0.25);
        ck_assert_double_eq(sp.learn.alpha, 8.5);
        ck_assert_double_eq(sp.learn.beta, 2.25);
        ck_assert_int_eq(sp.learn.converged, 1);
        ck_assert_double_eq(sp.learn.last_used, 1700000007.5);
        ck_assert_double_eq(sp.learn.created, 1690000000.25);
        ck_assert_uint_eq(sp.learn.ndomains, 2);
        ck_assert_str_eq(sp.learn.domains[0].domain, "data,\"quoted\"");
        ck_assert_uint_eq(sp.learn.domains[0].executions, 7);
        ck_assert_uint_eq(sp.nhistory, 5);
        history_entry want;
        make_entry(&want, 3, 7);
        const history_entry *h = &sp.history[3];
        ck_assert_double_eq(h->time, want.time);
        ck_assert_double_eq(h->duration_s, want.duration_s);
        ck_assert_int_eq(h->success, want.success);
        ck_assert_str_eq(h->outcome, want.outcome);
        ck_assert_str_eq(h->domain, want.domain);
        ck_assert_str_eq(h->error, want.error);
        ck_assert_double_eq(h->confidence, want.confidence);
        ck_assert_double_eq(h->cpu_s, want.cpu_s);
        ck_assert_int_eq(h->peak_rss_kb, want.peak_rss_kb);
        ck_assert_uint_eq(h->nsteps, 2);
        ck_assert_str_eq(h->steps[1].name, "b");
        ck_assert_double_eq(h->steps[1].duration_s, want.steps[1].duration_s);
        ck_assert_double_eq(h->steps[0].timeout_s, 10);
        ck_assert_ptr_null(sp.history[1].error);
        history_entry_free(&want);
        stored_pattern_free(&sp);
        ck_assert(file_exists(comp ? "deploy.json.gz" : "deploy.json"));
        storage_close(s);
        rm_rf(dir);
    }
}
END_TEST

START_TEST(test_dir_mode_and_zcat)
{
    storage *s = open_store(1, 2, 10);
    /* nothing is created by opening or by a load */
    struct stat st;
    ck_assert_int_ne(stat(dir, &st), 0);
    stored_pattern sp;
    ck_assert_int_eq(storage_load_pattern(s, "missing", &sp), NDF_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(err_msg(), "'missing'"));
    ck_assert_int_ne(stat(dir, &st), 0);
    save_k(s, "p1", 1, 1);
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    char *f = path_of("p1.json.gz");
    ck_assert_int_eq(stat(f, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* gzip format: zlib's gz reader (what zcat does) reads it */
    gzFile gz = gzopen(f, "rb");
    ck_assert_ptr_nonnull(gz);
    char buf[8192];
    int n = gzread(gz, buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_int_eq(gzclose(gz), Z_OK);
    ck_assert_ptr_nonnull(strstr(buf, "\"schema\":1"));
    free(f);
    ck_assert_int_eq(storage_load_pattern(s, "missing", &sp), NDF_ERR_NOT_FOUND);
    storage_close(s);
}
END_TEST

START_TEST(test_backup_rotation)
{
    storage *s = open_store(1, 3, 10);
    for (uint64_t k = 1; k <= 6; k++)
        save_k(s, "rot", k, 1);
    ck_assert(file_exists("rot.json.gz"));
    ck_assert(file_exists("rot.json.gz.1"));
    ck_assert(file_exists("rot.json.gz.3"));
    ck_assert(!file_exists("rot.json.gz.4"));
    /* .1 is the previous version */
    char *cur = path_of("rot.json.gz");
    ck_assert_int_eq(unlink(cur), 0);
    free(cur);
    capture_start();
    stored_pattern sp;
    int rc = storage_load_pattern(s, "rot", &sp);
    char *err = capture_end();
    ck_assert_int_eq(rc, NDF_OK);
    ck_assert_uint_eq(sp.learn.executions, 5);
    ck_assert_ptr_nonnull(strstr(err, "rot.json.gz is missing; using backup rot.json.gz.1"));
    stored_pattern_free(&sp);
    free(err);
    /* restored in place */
    ck_assert(file_exists("rot.json.gz"));
    storage_close(s);
}
END_TEST

/* Writes raw bytes over a stored file. */
static void put_file(const char *fname, const void *data, size_t len)
{
    char *p = path_of(fname);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    free(p);
}

static unsigned char *get_file(const char *fname, size_t *len)
{
    char *p = path_of(fname);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char *buf = xmalloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    free(p);
    return buf;
}

static void gz_bytes(const char *text, unsigned char **out, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, strlen(text));
    *out = xmalloc(cap);
    z.next_in = (unsigned char *)(uintptr_t)text;
    z.avail_in = (uInt)strlen(text);
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *len = cap - z.avail_out;
    deflateEnd(&z);
}

enum { C_TRUNCATED, C_CRC, C_JSON, C_SCHEMA, C_EMPTY, C_WRONG_NAME, C_BAD_FIELD, C_NCASES };

static void corrupt(int kind)
{
    size_t len;
    unsigned char *b = get_file("cor.json.gz", &len);
    unsigned char *g;
    size_t gl;
    switch (kind) {
    case C_TRUNCATED: put_file("cor.json.gz", b, len / 2); break;
    case C_CRC:
        b[len - 6] ^= 0x55; /* inside the CRC32 of the trailer */
        put_file("cor.json.gz", b, len);
        break;
    case C_JSON:
        gz_bytes("{\"schema\":1,\"name\":\"cor\",", &g, &gl);
        put_file("cor.json.gz", g, gl);
        free(g);
        break;
    case C_SCHEMA:
        gz_bytes("{\"schema\":99,\"name\":\"cor\",\"learning\":{}}", &g, &gl);
        put_file("cor.json.gz", g, gl);
        free(g);
        break;
    case C_EMPTY: put_file("cor.json.gz", b, 0); break;
    case C_WRONG_NAME:
        gz_bytes("{\"schema\":1,\"name\":\"other\",\"learning\":{\"executions\":1,"
                 "\"successes\":1,\"score\":0.5}}",
                 &g, &gl);
        put_file("cor.json.gz", g, gl);
        free(g);
        break;
    case C_BAD_FIELD:
        gz_bytes("{\"schema\":1,\"name\":\"cor\",\"learning\":{\"executions\":-1,"
                 "\"successes\":1,\"score\":0.5}}",
                 &g, &gl);
        put_file("cor.json.gz", g, gl);
        free(g);
        break;
    }
    free(b);
}

static const char *const corrupt_reason[] = {
    "truncated gzip data", "gzip CRC mismatch",          "invalid JSON",
    "unsupported schema version 99", "empty file", "holds pattern 'other'",
    "field 'learning.executions' is not a count"};

START_TEST(test_corrupt)
{
    int kind = _i;
    storage *s = open_store(1, 2, 10);
    save_k(s, "cor", 1, 3);
    save_k(s, "cor", 2, 3);
    corrupt(kind);
    capture_start();
    stored_pattern sp;
    int rc = storage_load_pattern(s, "cor", &sp);
    char *err = capture_end();
    ck_assert_msg(rc == NDF_OK, "case %d: %s", kind, err_msg());
    /* the previous version, from the backup */
    ck_assert_uint_eq(sp.learn.executions, 1);
    ck_assert_uint_eq(sp.nhistory, 3);
    stored_pattern_free(&sp);
    char *want = xasprintf("%s/cor.json.gz: %s", dir, corrupt_reason[kind]);
    ck_assert_msg(strstr(err, want), "case %d: no '%s' in: %s", kind, want, err);
    ck_assert_msg(strstr(err, "using backup cor.json.gz.1"), "case %d: %s", kind, err);
    ck_assert_msg(strstr(err, "kept aside as cor.json.gz.corrupt-"), "%s", err);
    free(want);
    free(err);
    /* nothing lost: the bad file is kept aside, the good one restored */
    ck_assert_int_eq(count_prefix("cor.json.gz.corrupt-"), 1);
    ck_assert(file_exists("cor.json.gz"));
    capture_start();
    rc = storage_load_pattern(s, "cor", &sp);
    err = capture_end();
    ck_assert_int_eq(rc, NDF_OK);
    ck_assert_str_eq(err, ""); /* quiet once restored */
    stored_pattern_free(&sp);
    free(err);
    /* listing ignores the quarantined copy */
    char **names;
    size_t n;
    ck_assert_int_eq(storage_list(s, &names, &n), NDF_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(names[0], "cor");
    free(names[0]);
    free(names);
    storage_close(s);
}
END_TEST

START_TEST(test_corrupt_no_backup)
{
    storage *s = open_store(1, 0, 10);
    save_k(s, "cor", 1, 1);
    corrupt(C_CRC);
    capture_start();
    stored_pattern sp;
    int rc = storage_load_pattern(s, "cor", &sp);
    char *err = capture_end();
    ck_assert_int_eq(rc, NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "gzip CRC mismatch"));
    ck_assert_ptr_nonnull(strstr(err_msg(), "no good backup"));
    ck_assert_ptr_nonnull(strstr(err, "cor.json.gz: gzip CRC mismatch"));
    free(err);
    /* kept, not deleted; an append does not write over it blindly either:
     * the quarantined copy stays and a fresh record begins */
    ck_assert_int_eq(count_prefix("cor.json.gz.corrupt-"), 1);
    storage_close(s);
}
END_TEST

START_TEST(test_inflate_bound)
{
    storage *s = open_store(1, 1, 10);
    save_k(s, "bomb", 1, 1);
    save_k(s, "bomb", 2, 1);
    /* 65 MiB of spaces inside a JSON string: a ~64 KiB file */
    size_t big = STORAGE_MAX_DOCUMENT + (1 << 20);
    char *text = xmalloc(big + 1);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    text[big] = 0;
    unsigned char *g;
    size_t gl;
    gz_bytes(text, &g, &gl);
    free(text);
    ck_assert_uint_lt(gl, 1 << 20);
    put_file("bomb.json.gz", g, gl);
    free(g);
    capture_start();
    stored_pattern sp;
    int rc = storage_load_pattern(s, "bomb", &sp);
    char *err = capture_end();
    ck_assert_int_eq(rc, NDF_OK);
    ck_assert_uint_eq(sp.learn.executions, 1);
    ck_assert_ptr_nonnull(strstr(err, "decompresses to more than"));
    stored_pattern_free(&sp);
    free(err);
    storage_close(s);
}
END_TEST

/* A FIFO planted in the directory hung every load (and so list, export,
 * cleanup and run) in open(); it is now refused and moved aside, and a good
 * backup still serves. */
START_TEST(test_fifo_in_dir)
{
    storage *s = open_store(1, 2, 10);
    save_k(s, "fifo", 3, 1);
    save_k(s, "fifo", 4, 1);
    char *cur = path_of("fifo.json.gz");
    ck_assert_int_eq(unlink(cur), 0);
    ck_assert_int_eq(mkfifo(cur, 0600), 0);
    free(cur);
    capture_start();
    stored_pattern sp;
    int rc = storage_load_pattern(s, "fifo", &sp);
    char *err = capture_end();
    ck_assert_int_eq(rc, NDF_OK);
    ck_assert_uint_eq(sp.learn.executions, 3); /* the backup */
    ck_assert_ptr_nonnull(strstr(err, "fifo.json.gz: not a regular file"));
    ck_assert_int_eq(count_prefix("fifo.json.gz.corrupt-"), 1);
    stored_pattern_free(&sp);
    free(err);
    /* with no backup: a clear error, and nothing removed */
    char *other = path_of("lone.json");
    ck_assert_int_eq(mkfifo(other, 0600), 0);
    free(other);
    capture_start();
    rc = storage_load_pattern(s, "lone", &sp);
    err = capture_end();
    ck_assert_int_eq(rc, NDF_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err_msg(), "lone.json: not a regular file; no good backup"));
    ck_assert_int_eq(count_prefix("lone.json.corrupt-"), 1);
    free(err);
    storage_close(s);
}
END_TEST

START_TEST(test_bad_names)
{
    static const char *const bad[] = {"../escape", ".hidden", "a/b", "", "x\n", "/abs",
                                      "..", "sp ace"};
    storage *s = open_store(1, 1, 10);
    learning_state l;
    make_learn(&l, 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(storage_save_pattern(s, bad[i], &l, NULL, 0), NDF_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err_msg(), "not a valid pattern name"));
        stored_pattern sp;
        ck_assert_int_eq(storage_load_pattern(s, bad[i], &sp), NDF_ERR_INVALID);
        ck_assert_int_eq(storage_append_history(s, bad[i], NULL, &l), NDF_ERR_INVALID);
        ck_assert_int_eq(storage_remove(s, bad[i]), NDF_ERR_INVALID);
        strbuf sb;
        sb_init(&sb);
        ck_assert_int_eq(storage_export(s, bad[i], EXPORT_JSON, &sb), NDF_ERR_INVALID);
        sb_free(&sb);
    }
    ck_assert_int_eq(storage_save_pattern(s, NULL, &l, NULL, 0), NDF_ERR_INVALID);
    char name[200];
    memset(name, 'x', 129);
    name[129] = 0;
    ck_assert_int_eq(storage_save_pattern(s, name, &l, NULL, 0), NDF_ERR_INVALID);
    free_learn(&l);
    /* nothing was written anywhere: not even the directory */
    struct stat st;
    ck_assert_int_ne(stat(dir, &st), 0);
    char *esc = xasprintf("%s/state/escape.json.gz", scratch);
    ck_assert_int_ne(stat(esc, &st), 0);
    free(esc);
    storage_close(s);
}
END_TEST

START_TEST(test_history_limit_append)
{
    storage *s = open_store(1, 1, 4);
    learning_state l;
    make_learn(&l, 3);
    for (int i = 0; i < 6; i++) {
        history_entry e;
        make_entry(&e, i, i);
        ck_assert_int_eq(storage_append_history(s, "app", &e, i == 5 ? &l : NULL), NDF_OK);
        history_entry_free(&e);
    }
    stored_pattern sp;
    ck_assert_int_eq(storage_load_pattern(s, "app", &sp), NDF_OK);
    ck_assert_uint_eq(sp.nhistory, 4);
    ck_assert_int_eq(sp.history[0].peak_rss_kb, 1002); /* entries 2..5 kept */
    ck_assert_int_eq(sp.history[3].peak_rss_kb, 1005);
    ck_assert_uint_eq(sp.learn.executions, 3);
    stored_pattern_free(&sp);
    /* save_learning keeps the history */
    learning_state l2;
    make_learn(&l2, 9);
    ck_assert_int_eq(storage_save_learning(s, "app", &l2), NDF_OK);
    ck_assert_int_eq(storage_load_pattern(s, "app", &sp), NDF_OK);
    ck_assert_uint_eq(sp.nhistory, 4);
    ck_assert_uint_eq(sp.learn.executions, 9);
    stored_pattern_free(&sp);
    free_learn(&l);
    free_learn(&l2);
    ck_assert(storage_exists(s, "app"));
    ck_assert_int_eq(storage_remove(s, "app"), NDF_OK);
    ck_assert(!storage_exists(s, "app"));
    ck_assert_int_eq(count_prefix("app.json"), 0);
    ck_assert_int_eq(storage_remove(s, "app"), NDF_ERR_NOT_FOUND);
    storage_close(s);
}
END_TEST

START_TEST(test_compression_switch)
{
    storage *s = open_store(0, 1, 4);
    save_k(s, "sw", 4, 2);
    storage_close(s);
    s = open_store(1, 1, 4);
    stored_pattern sp;
    ck_assert_int_eq(storage_load_pattern(s, "sw", &sp), NDF_OK);
    ck_assert_uint_eq(sp.learn.executions, 4);
    stored_pattern_free(&sp);
    history_entry e;
    make_entry(&e, 1, 1);
    ck_assert_int_eq(storage_append_history(s, "sw", &e, NULL), NDF_OK);
    history_entry_free(&e);
    ck_assert_int_eq(storage_load_pattern(s, "sw", &sp), NDF_OK);
    ck_assert_uint_eq(sp.nhistory, 3);
    stored_pattern_free(&sp);
    storage_close(s);
}
END_TEST

/* ---- exports read back by real parsers ---- */

START_TEST(test_export_json)
{
    storage *s = open_store(1, 1, 10);
    save_k(s, "ex", 5, 4);
    strbuf sb;
    sb_init(&sb);
    ck_assert_int_eq(storage_export(s, "ex", EXPORT_JSON, &sb), NDF_OK);
    cJSON *root = cJSON_Parse(sb.buf);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(root, "schema")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "name")->valuestring, "ex");
    cJSON *learn = cJSON_GetObjectItemCaseSensitive(root, "learning");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(learn, "executions")->valuedouble, 5);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(learn, "alpha")->valuedouble, 6.5);
    cJSON *hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    ck_assert_int_eq(cJSON_GetArraySize(hist), 4);
    for (int i = 0; i < 4; i++) {
        history_entry want;
        make_entry(&want, i, 5);
        cJSON *h = cJSON_GetArrayItem(hist, i);
        ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(h, "time")->valuedouble, want.time);
        ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(h, "duration")->valuedouble,
                            want.duration_s);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(h, "domain")->valuestring,
                         want.domain);
        ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "success")),
                         want.success);
        cJSON *steps = cJSON_GetObjectItemCaseSensitive(h, "steps");
        ck_assert_int_eq(cJSON_GetArraySize(steps), 2);
        ck_assert_str_eq(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(steps, 1), "name")->valuestring,
            "b");
        history_entry_free(&want);
    }
    cJSON_Delete(root);
    sb_free(&sb);
    storage_close(s);
}
END_TEST

/* A small RFC 4180 reader: fields of one record per call; returns the
 * number of fields, 0 at the end.  `*pos` advances. */
static size_t csv_record(const char *text, size_t *pos, char ***fields)
{
    size_t n = 0, cap = 0;
    const char *p = text + *pos;
    *fields = NULL;
    if (!*p)
        return 0;
    for (;;) {
        strbuf f;
        sb_init(&f);
        sb_add(&f, "", 0);
        if (*p == '"') {
            p++;
            for (;;) {
                ck_assert_msg(*p, "unterminated quoted field");
                if (*p == '"' && p[1] == '"') {
                    sb_add(&f, "\"", 1);
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    sb_add(&f, p++, 1);
                }
            }
        } else {
            while (*p && *p != ',' && *p != '\r' && *p != '\n') {
                ck_assert_msg(*p != '"', "quote inside an unquoted field");
                sb_add(&f, p++, 1);
            }
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            *fields = xrealloc(*fields, cap * sizeof **fields);
        }
        (*fields)[n++] = sb_steal(&f);
        if (*p == ',') {
            p++;
            continue;
        }
        ck_assert_msg(p[0] == '\r' && p[1] == '\n', "record not ended by CRLF");
        p += 2;
        break;
    }
    *pos = (size_t)(p - text);
    return n;
}

static void free_fields(char **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i]);
    free(f);
}

/* Found by tests/fuzz/fuzz_storage_json: documents the reader accepts must
 * export in every format, without undefined behaviour. */
START_TEST(test_export_hostile_record)
{
    /* invalid UTF-8 in a stored error message (a step's raw output): libyaml
     * refused it and the export failed with "unknown problem" */
    const char *doc = "{\"schema\":1,\"name\":\"u\",\"learning\":{\"executions\":1,"
                      "\"successes\":0,\"score\":0.5},\"history\":[{\"time\":1700000000,"
                      "\"duration\":1,\"success\":false,\"outcome\":\"failed\","
                      "\"error\":\"bad \xff\xfe bytes\",\"domain\":\"re\xb8ions\"}]}";
    stored_pattern sp;
    ck_assert_int_eq(storage_from_json(doc, strlen(doc), &sp), NDF_OK);
    strbuf sb;
    sb_init(&sb);
    ck_assert_int_eq(storage_export_record(&sp, EXPORT_YAML, &sb), NDF_OK);
    ck_assert_ptr_nonnull(strstr(sb.buf, "error: \"bad \xef\xbf\xbd\xef\xbf\xbd bytes\""));
    ck_assert_ptr_nonnull(strstr(sb.buf, "domain: \"re\xef\xbf\xbdions\""));
    sb_free(&sb);
    ck_assert_int_eq(storage_export_record(&sp, EXPORT_CSV, &sb), NDF_OK);
    sb_free(&sb);
    stored_pattern_free(&sp);

    /* a time far outside time_t overflowed the CSV's ISO column (UBSan) */
    doc = "{\"schema\":1,\"name\":\"t\",\"learning\":{\"executions\":2,\"successes\":2,"
          "\"score\":1},\"history\":[{\"time\":1.7e137,\"duration\":1,\"success\":true,"
          "\"outcome\":\"succeeded\"},{\"time\":-1e300,\"duration\":1,\"success\":true,"
          "\"outcome\":\"succeeded\"}]}";
    ck_assert_int_eq(storage_from_json(doc, strlen(doc), &sp), NDF_OK);
    ck_assert_int_eq(storage_export_record(&sp, EXPORT_CSV, &sb), NDF_OK);
    ck_assert_ptr_nonnull(strstr(sb.buf, "\r\nt,1.7e+137,,1000,true,succeeded,"));
    ck_assert_ptr_nonnull(strstr(sb.buf, "\r\nt,-1e+300,,1000,true,succeeded,"));
    sb_free(&sb);
    ck_assert_int_eq(storage_export_record(&sp, EXPORT_YAML, &sb), NDF_OK);
    sb_free(&sb);
    stored_pattern_free(&sp);

    /* nesting beyond cJSON's limit is refused, not a stack overflow */
    size_t depth = 100000;
    char *deep = xmalloc(2 * depth + 64);
    char *p = deep + sprintf(deep, "{\"schema\":1,\"name\":\"d\",\"x\":");
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    strcpy(p + 2 * depth, "}");
    ck_assert_int_eq(storage_from_json(deep, strlen(deep), &sp), NDF_ERR_INVALID);
    ck_assert(strncmp(err_msg(), "invalid JSON at byte ", 21) == 0);
    free(deep);
}
END_TEST

START_TEST(test_export_csv)
{
    storage *s = open_store(1, 1, 10);
    save_k(s, "ex", 5, 4);
    strbuf sb;
    sb_init(&sb);
    ck_assert_int_eq(storage_export(s, "ex", EXPORT_CSV, &sb), NDF_OK);
    size_t pos = 0;
    char **hdr;
    size_t nh = csv_record(sb.buf, &pos, &hdr);
    ck_assert_uint_eq(nh, 13);
    ck_assert_str_eq(hdr[0], "pattern");
    ck_assert_str_eq(hdr[3], "duration_ms");
    ck_assert_str_eq(hdr[12], "error");
    for (int i = 0; i < 4; i++) {
        char **f;
        size_t nf = csv_record(sb.buf, &pos, &f);
        ck_assert_uint_eq(nf, nh);
        history_entry want;
        make_entry(&want, i, 5);
        char iso[32];
        time_t t = (time_t)want.time;
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        ck_assert_str_eq(f[0], "ex");
        ck_assert_double_eq(strtod(f[1], NULL), want.time);
        ck_assert_str_eq(f[2], iso);
        ck_assert_double_eq_tol(strtod(f[3], NULL), want.duration_s * 1000, 1e-9);
        ck_assert_str_eq(f[4], want.success ? "true" : "false");
        ck_assert_str_eq(f[5], want.outcome);
        ck_assert_str_eq(f[6], want.domain);
        ck_assert_double_eq(strtod(f[7], NULL), want.confidence);
        ck_assert_double_eq(strtod(f[8], NULL), want.timeout_s);
        ck_assert_double_eq(strtod(f[9], NULL), want.cpu_s);
        ck_assert_int_eq(atol(f[10]), want.peak_rss_kb);
        char *steps = xasprintf("a=succeeded:100;b=%s:%.15g", want.steps[1].outcome,
                                want.steps[1].duration_s * 1000);
        ck_assert_str_eq(f[11], steps);
        free(steps);
        ck_assert_str_eq(f[12], want.error ? want.error : "");
        history_entry_free(&want);
        free_fields(f, nf);
    }
    char **f;
    ck_assert_uint_eq(csv_record(sb.buf, &pos, &f), 0);
    free_fields(hdr, nh);
    sb_free(&sb);
    storage_close(s);
}
END_TEST

/* YAML: parse with libyaml into a document and walk it. */
static yaml_node_t *ymap_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    ck_assert_int_eq(map->type, YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    ck_abort_msg("no key %s", key);
    return NULL;
}

static const char *yscalar(yaml_node_t *n)
{
    ck_assert_int_eq(n->type, YAML_SCALAR_NODE);
    return (const char *)n->data.scalar.value;
}

START_TEST(test_export_yaml)
{
    storage *s = open_store(1, 1, 10);
    save_k(s, "ex", 5, 4);
    strbuf sb;
    sb_init(&sb);
    ck_assert_int_eq(storage_export(s, "ex", EXPORT_YAML, &sb), NDF_OK);
    yaml_parser_t parser;
    yaml_document_t doc;
    ck_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (unsigned char *)sb.buf, sb.len);
    ck_assert_msg(yaml_parser_load(&parser, &doc), "yaml: %s", parser.problem);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(yscalar(ymap_get(&doc, root, "schema")), "1");
    ck_assert_str_eq(yscalar(ymap_get(&doc, root, "name")), "ex");
    yaml_node_t *learn = ymap_get(&doc, root, "learning");
    ck_assert_str_eq(yscalar(ymap_get(&doc, learn, "executions")), "5");
    ck_assert_double_eq(strtod(yscalar(ymap_get(&doc, learn, "alpha")), NULL), 6.5);
    ck_assert_str_eq(yscalar(ymap_get(&doc, learn, "converged")), "true");
    yaml_node_t *doms = ymap_get(&doc, learn, "domains");
    ck_assert_int_eq(doms->type, YAML_SEQUENCE_NODE);
    yaml_node_t *d0 = yaml_document_get_node(&doc, doms->data.sequence.items.start[0]);
    ck_assert_str_eq(yscalar(ymap_get(&doc, d0, "domain")), "data,\"quoted\"");
    yaml_node_t *hist = ymap_get(&doc, root, "history");
    ck_assert_int_eq(hist->data.sequence.items.top - hist->data.sequence.items.start, 4);
    for (int i = 0; i < 4; i++) {
        history_entry want;
        make_entry(&want, i, 5);
        yaml_node_t *h = yaml_document_get_node(&doc, hist->data.sequence.items.start[i]);
        ck_assert_double_eq(strtod(yscalar(ymap_get(&doc, h, "time")), NULL), want.time);
        ck_assert_double_eq(strtod(yscalar(ymap_get(&doc, h, "duration")), NULL),
                            want.duration_s);
        ck_assert_str_eq(yscalar(ymap_get(&doc, h, "outcome")), want.outcome);
        ck_assert_str_eq(yscalar(ymap_get(&doc, h, "domain")), want.domain);
        yaml_node_t *e = ymap_get(&doc, h, "error");
        if (want.error) {
            ck_assert_str_eq(yscalar(e), want.error);
            ck_assert_int_eq(e->data.scalar.style, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        } else {
            ck_assert_str_eq(yscalar(e), "null");
            ck_assert_int_eq(e->data.scalar.style, YAML_PLAIN_SCALAR_STYLE);
        }
        yaml_node_t *steps = ymap_get(&doc, h, "steps");
        yaml_node_t *s1 = yaml_document_get_node(&doc, steps->data.sequence.items.start[1]);
        ck_assert_str_eq(yscalar(ymap_get(&doc, s1, "name")), "b");
        ck_assert_double_eq(strtod(yscalar(ymap_get(&doc, s1, "duration")), NULL),
                            want.steps[1].duration_s);
        history_entry_free(&want);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    sb_free(&sb);
    ck_assert_int_eq(export_format_parse("yaml", &(export_format){0}), 0);
    ck_assert_int_eq(export_format_parse("xml", &(export_format){0}), -1);
    storage_close(s);
}
END_TEST

/* ---- registry seam and persistence ---- */

START_TEST(test_registry_store)
{
    storage *s = open_store(1, 1, 10);
    registry_store rs;
    storage_registry_store(s, &rs);
    save_k(s, "rs", 2, 3);
    learning_state l;
    make_learn(&l, 8);
    ck_assert_int_eq(rs.save(rs.opaque, "rs", &l), NDF_OK);
    free_learn(&l);
    learning_state got;
    memset(&got, 0, sizeof got);
    ck_assert_int_eq(rs.load(rs.opaque, "rs", &got), NDF_OK);
    ck_assert_uint_eq(got.executions, 8);
    ck_assert_uint_eq(got.ndomains, 2);
    learning_free(&got);
    ck_assert_int_eq(rs.load(rs.opaque, "none", &got), NDF_ERR_NOT_FOUND);
    stored_pattern sp;
    ck_assert_int_eq(storage_load_pattern(s, "rs", &sp), NDF_OK);
    ck_assert_uint_eq(sp.nhistory, 3); /* the history was kept */
    stored_pattern_free(&sp);
    storage_close(s);
}
END_TEST

START_TEST(test_learning_persists)
{
    learning_params lp;
    learning_params_default(&lp);
    /* first run: three executions, saved as the executor would */
    storage *s = open_store(1, 2, 100);
    pattern *p = pattern_new("persist", &lp);
    ck_assert_int_eq(storage_restore_learning(s, p), NDF_ERR_NOT_FOUND);
    for (int i = 0; i < 3; i++) {
        pattern_record(p, &lp, i != 1, "web");
        learning_state st;
        pattern_stats(p, &st);
        history_entry e;
        make_entry(&e, i, i);
        ck_assert_int_eq(storage_append_history(s, "persist", &e, &st), NDF_OK);
        history_entry_free(&e);
        learning_free(&st);
    }
    double score = pattern_score(p);
    pattern_unref(p);
    storage_close(s);

    /* "restart": a new storage and a new pattern */
    s = open_store(1, 2, 100);
    p = pattern_new("persist", &lp);
    ck_assert_int_eq(storage_restore_learning(s, p), NDF_OK);
    learning_state st;
    pattern_stats(p, &st);
    ck_assert_uint_eq(st.executions, 3);
    ck_assert_uint_eq(st.successes, 2);
    ck_assert_double_eq_tol(st.score, score, 1e-12);
    learning_free(&st);
    pattern_record(p, &lp, 1, "web");
    pattern_stats(p, &st);
    ck_assert_uint_eq(st.executions, 4); /* the counts continue */
    ck_assert_uint_eq(st.successes, 3);
    learning_free(&st);
    pattern_unref(p);
    storage_close(s);
}
END_TEST

START_TEST(test_sweep_and_default_dir)
{
    storage *s = open_store(1, 1, 10);
    save_k(s, "sw", 1, 1);
    put_file(".sw.json.gz.tmp-0000beef", "x", 1);
    put_file("sw.json.gz.corrupt-20200101T000000Z", "x", 1);
    ck_assert_int_eq(storage_sweep(s, 3600, now_wall()), 0); /* too young */
    ck_assert_int_eq(storage_sweep(s, 0, now_wall() + 1), 2);
    ck_assert(file_exists("sw.json.gz"));
    ck_assert(file_exists("sw.json.gz.1") == 0);
    storage_close(s);

    setenv("NDF_STATE_DIR", "/x/state", 1);
    char *d = storage_default_dir();
    ck_assert_str_eq(d, "/x/state");
    free(d);
    unsetenv("NDF_STATE_DIR");
    setenv("XDG_STATE_HOME", "/xdg", 1);
    d = storage_default_dir();
    ck_assert_str_eq(d, "/xdg/ndf");
    free(d);
    unsetenv("XDG_STATE_HOME");
    setenv("HOME", "/home/u", 1);
    d = storage_default_dir();
    ck_assert_str_eq(d, "/home/u/.local/state/ndf");
    free(d);
    unsetenv("HOME");
    ck_assert_ptr_null(storage_default_dir());
    ck_assert_ptr_nonnull(strstr(err_msg(), "no storage directory"));
}
END_TEST

/* ---- crash safety ---- */

/* Every saved record is self-consistent: executions == k, every history
 * entry and domain count carries k.  A mix of two saves would break that. */
static void check_consistent(const stored_pattern *sp, uint64_t *k)
{
    *k = sp->learn.executions;
    ck_assert_uint_eq(sp->learn.domains[0].executions, *k);
    ck_assert_double_eq(sp->learn.last_used, 1700000000.5 + (double)*k);
    ck_assert_uint_eq(sp->nhistory, 20);
    for (size_t i = 0; i < sp->nhistory; i++)
        ck_assert_int_eq(sp->history[i].peak_rss_kb, 1000 + (long)*k);
}

START_TEST(test_crash_loop)
{
    storage *s = open_store(1, 2, 100);
    save_k(s, "crash", 0, 20);
    uint64_t last = 0;
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    for (int round = 0; round < 200; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            /* keep saving newer records until killed */
            storage *cs = open_store(1, 2, 100);
            for (uint64_t k = last + 1;; k++)
                save_k(cs, "crash", k, 20);
        }
        /* 0..15 ms: somewhere inside one of the first few saves */
        struct timespec ts = {0, (long)(rand() % 15000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        stored_pattern sp;
        int rc = storage_load_pattern(s, "crash", &sp);
        ck_assert_msg(rc == NDF_OK, "round %d (seed %u): %s", round, seed, err_msg());
        uint64_t k;
        check_consistent(&sp, &k);
        ck_assert_msg(k >= last, "round %d: went back from %llu to %llu", round,
                      (unsigned long long)last, (unsigned long long)k);
        last = k;
        stored_pattern_free(&sp);
    }
    ck_assert_uint_gt(last, 0); /* the writers did get saves through */
    /* the killed writers' temporary files are swept, nothing else */
    ck_assert_int_ge(storage_sweep(s, 0, now_wall() + 1), 0);
    ck_assert_int_eq(count_prefix(".crash"), 0);
    ck_assert(file_exists("crash.json.gz"));
    storage_close(s);
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_dir_mode_and_zcat);
    tcase_add_test(tc, test_backup_rotation);
    tcase_add_loop_test(tc, test_corrupt, 0, C_NCASES);
    tcase_add_test(tc, test_corrupt_no_backup);
    tcase_add_test(tc, test_inflate_bound);
    tcase_add_test(tc, test_bad_names);
    tcase_add_test(tc, test_fifo_in_dir);
    tcase_add_test(tc, test_history_limit_append);
    tcase_add_test(tc, test_compression_switch);
    tcase_add_test(tc, test_sweep_and_default_dir);
    tcase_set_timeout(tc, 30); /* the 65 MiB decompression bomb under sanitizers */
    suite_add_tcase(s, tc);

    tc = tcase_create("export");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_export_json);
    tcase_add_test(tc, test_export_csv);
    tcase_add_test(tc, test_export_yaml);
    tcase_add_test(tc, test_export_hostile_record);
    suite_add_tcase(s, tc);

    tc = tcase_create("persistence");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_registry_store);
    tcase_add_test(tc, test_learning_persists);
    tcase_add_test(tc, test_crash_loop);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(storage_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
