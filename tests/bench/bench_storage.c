/* Benchmark of pattern storage: saving and loading patterns with long
 * histories at zlib levels 1 and 6 (serialization, compression, fsync and
 * rename included), beside gzip(1) -1 and -6 and in-process zlib on the
 * same JSON, all in the same run.
 *
 * Size: NDF_BENCH_PATTERNS patterns (default 1000; the figure is
 * 10000) with NDF_BENCH_HISTORY records each (default 1000), written under
 * NDF_BENCH_DIR (default $top_builddir, else /tmp). */
#include "build-config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "store/storage.h"
#include "base/util.h"

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    long n = strtol(v, NULL, 10);
    return n > 0 ? n : def;
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = xasprintf("%s/%s", path, de->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(path);
}

static unsigned long long rng = 88172645463325252ull;
static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static const char *const domains[] = {"web_development.frontend", "data_processing", "devops",
                                      "analytics", "etl"};
static const char *const step_names[] = {"validate_input_data", "transform", "store_results"};

/* A history of `n` executions; values are redrawn per pattern by refill(). */
static history_entry *make_history(size_t n)
{
    history_entry *h = xcalloc(n, sizeof *h);
    for (size_t i = 0; i < n; i++) {
        h[i].outcome = xstrdup("succeeded");
        h[i].domain = xstrdup(domains[i % 5]);
        h[i].nsteps = 3;
        h[i].steps = xcalloc(3, sizeof *h[i].steps);
        for (int k = 0; k < 3; k++) {
            h[i].steps[k].name = xstrdup(step_names[k]);
            h[i].steps[k].outcome = xstrdup("succeeded");
            h[i].steps[k].timeout_s = 30;
        }
    }
    return h;
}

static void refill(history_entry *h, size_t n, double base)
{
    for (size_t i = 0; i < n; i++) {
        h[i].time = base + (double)i * 61.7 + rnd();
        h[i].success = rnd() < 0.9;
        h[i].confidence = 0.5 + 0.5 * rnd();
        h[i].timeout_s = 120;
        h[i].cpu_s = 0.05 * rnd();
        h[i].peak_rss_kb = 10000 + (long)(5000 * rnd());
        double total = 0;
        for (int k = 0; k < 3; k++) {
            h[i].steps[k].duration_s = 0.2 * rnd();
            total += h[i].steps[k].duration_s;
        }
        h[i].duration_s = total + 0.001 * rnd();
    }
}

static void free_history(history_entry *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        history_entry_free(&h[i]);
    free(h);
}

static long long dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    long long sum = 0;
    struct dirent *de;
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        struct stat st;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        /* the current files only: backups are links to older versions */
        size_t l = strlen(de->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && l > 8 &&
            strcmp(de->d_name + l - 8, ".json.gz") == 0)
            sum += st.st_size;
        free(p);
    }
    closedir(d);
    return sum;
}

/* In-process zlib on a buffer (gzip format, as storage writes). */
static double zlib_rate(const char *buf, size_t len, int level, size_t *out_len)
{
    double t0 = now_mono();
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)len);
    unsigned char *out = xmalloc(cap);
    z.next_in = (unsigned char *)(uintptr_t)buf;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    free(out);
    return (double)len / 1e6 / (now_mono() - t0);
}

int main(void)
{
    long npat = env_long("NDF_BENCH_PATTERNS", 1000);
    long nhist = env_long("NDF_BENCH_HISTORY", 1000);
    const char *base = getenv("NDF_BENCH_DIR");
    if (!base || !*base)
        base = getenv("top_builddir");
    if (!base || !*base)
        base = "/tmp";
    char *root = xasprintf("%s/bench_storage.XXXXXX", base);
    if (!mkdtemp(root)) {
        perror(root);
        return 1;
    }
    printf("bench_storage: %ld patterns x %ld history records each", npat, nhist);
    if (npat < 10000)
        printf("  (SCALED DOWN from the issue's 10000 patterns to fit this machine; "
               "NDF_BENCH_PATTERNS=10000 for the full run)");
    printf("\n  directory %s (fsync per save; backups 5)\n", root);

    history_entry *h = make_history((size_t)nhist);
    learning_state l;
    memset(&l, 0, sizeof l);
    l.executions = (uint64_t)nhist;
    l.successes = (uint64_t)(nhist * 9 / 10);
    l.score = 0.9;
    l.alpha = 900;
    l.beta = 100;

    /* the JSON of one pattern, for gzip(1) and zlib beside storage */
    stored_pattern sp = {0};
    sp.name = xstrdup("sample");
    sp.learn = l;
    sp.history = h;
    sp.nhistory = (size_t)nhist;
    refill(h, (size_t)nhist, 1.7e9);
    char *json = storage_to_json(&sp, 0);
    size_t jlen = strlen(json);
    sp.history = NULL;
    sp.nhistory = 0;
    memset(&sp.learn, 0, sizeof sp.learn);
    stored_pattern_free(&sp);
    printf("  one pattern's JSON: %zu bytes\n\n", jlen);

    /* a sample file of ~100 patterns' JSON for gzip(1) */
    long nsample = npat < 100 ? npat : 100;
    char *sample = xasprintf("%s/sample.json", root);
    FILE *f = fopen(sample, "w");
    strbuf all;
    sb_init(&all);
    for (long i = 0; i < nsample; i++) {
        stored_pattern s2 = {0};
        s2.name = xasprintf("p%06ld", i);
        s2.learn = l;
        refill(h, (size_t)nhist, 1.7e9 + (double)i);
        s2.history = h;
        s2.nhistory = (size_t)nhist;
        char *j = storage_to_json(&s2, 0);
        fputs(j, f);
        sb_puts(&all, j);
        free(j);
        free(s2.name);
    }
    fclose(f);

    printf("  %-28s %10s %10s %12s %8s\n", "", "MB/s", "ms/pattern", "bytes", "ratio");
    for (int level = 1; level <= 6; level += 5) {
        char *dir = xasprintf("%s/level%d", root, level);
        storage_opts o = {1, level, 5, nhist, 1};
        storage *s;
        if (storage_open(dir, &o, &s) != NDF_OK) {
            fprintf(stderr, "%s\n", err_msg());
            return 1;
        }
        char name[32];
        double json_bytes = 0, t0 = now_mono();
        for (long i = 0; i < npat; i++) {
            snprintf(name, sizeof name, "p%06ld", i);
            refill(h, (size_t)nhist, 1.7e9 + (double)i);
            if (storage_save_pattern(s, name, &l, h, (size_t)nhist) != NDF_OK) {
                fprintf(stderr, "%s\n", err_msg());
                return 1;
            }
            json_bytes += (double)jlen; /* same shape: within a few bytes */
        }
        double ts = now_mono() - t0;
        long long disk = dir_bytes(dir);
        printf("  storage save, zlib -%d       %10.1f %10.3f %12lld %8.2f\n", level,
               json_bytes / 1e6 / ts, ts * 1e3 / (double)npat, disk / (npat ? npat : 1),
               json_bytes / (double)disk);
        t0 = now_mono();
        for (long i = 0; i < npat; i++) {
            snprintf(name, sizeof name, "p%06ld", i);
            stored_pattern got;
            if (storage_load_pattern(s, name, &got) != NDF_OK) {
                fprintf(stderr, "%s\n", err_msg());
                return 1;
            }
            if (got.nhistory != (size_t)nhist) {
                fprintf(stderr, "%s: %zu records\n", name, got.nhistory);
                return 1;
            }
            stored_pattern_free(&got);
        }
        double tl = now_mono() - t0;
        printf("  storage load, zlib -%d       %10.1f %10.3f\n", level, json_bytes / 1e6 / tl,
               tl * 1e3 / (double)npat);

        size_t zl;
        double zr = zlib_rate(all.buf, all.len, level, &zl);
        printf("  zlib -%d in memory (%ld pat.) %10.1f %10.3f %12zu %8.2f\n", level, nsample, zr,
               (double)all.len / 1e6 / zr * 1e3 / (double)nsample, zl / (size_t)nsample,
               (double)all.len / (double)zl);

        char *cmd = xasprintf("gzip -%d -c '%s' > '%s/sample.gz'", level, sample, root);
        t0 = now_mono();
        int rc = system(cmd);
        double tg = now_mono() - t0;
        char *gz = xasprintf("%s/sample.gz", root);
        struct stat st;
        if (rc == 0 && stat(gz, &st) == 0)
            printf("  gzip -%d (%ld patterns)       %10.1f %10.3f %12lld %8.2f\n", level, nsample,
                   (double)all.len / 1e6 / tg, tg * 1e3 / (double)nsample,
                   (long long)st.st_size / nsample, (double)all.len / (double)st.st_size);
        else
            printf("  gzip -%d: not available\n", level);
        unlink(gz);
        free(gz);
        free(cmd);
        storage_close(s);
        rm_rf(dir);
        free(dir);
    }
    printf("\n  MB/s counts uncompressed JSON; storage figures include building and\n"
           "  parsing the JSON (cJSON), the temporary file, fsync, rename, backups and\n"
           "  fsync of the directory; bytes are per pattern on disk.\n");
    sb_free(&all);
    unlink(sample);
    free(sample);
    rmdir(root);
    free(root);
    free(json);
    free_history(h, (size_t)nhist);
    return 0;
}
