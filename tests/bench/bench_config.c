/* Configuration reading benchmark (make bench): one string value of 0.4 to
 * 10 MB, and 25,000 to 100,000 pattern definitions, read by config_load()
 * (ndf: includes expanded and literals checked by conftext, then one
 * config_read_string) beside libconfig's own config_read_file() on the
 * same file, measured in the same run.  libconfig reads a file through
 * flex in 8 KiB refills, rescanning a token from its start at each refill:
 * quadratic in the length of one token, so its larger sizes are skipped
 * once a size takes more than 10 s.
 *
 * Both columns are CPU time of this process (the machine is shared, and
 * wall time there says more about the neighbours), for reading and
 * releasing: config_load() + config_free() beside config_read_file() +
 * config_destroy(); each is the best of NDF_BENCH_REPEAT runs (default 3). */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libconfig.h>

#include "conf/config.h"
#include "base/util.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int repeat(void)
{
    const char *e = getenv("NDF_BENCH_REPEAT");
    int n = e ? atoi(e) : 3;
    return n > 0 ? n : 1;
}

static char dir[] = "/tmp/ndf-bench-config.XXXXXX";

static char *write_file(const char *name, void (*fill)(FILE *, size_t), size_t n)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fill(f, n);
    if (fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    return path;
}

static void fill_string(FILE *f, size_t n)
{
    fputs("server: { group = \"", f);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    fputs("\"; };\n", f);
}

static void fill_patterns(FILE *f, size_t n)
{
    fputs("patterns = (\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f,
                "%s{ name = \"p%zu\"; type = \"sequential\"; timeout = 30;\n"
                "  params = { steps = ( { name = \"s\"; step = \"noop\"; } ); }; }\n",
                i ? "," : "", i);
    fputs(");\n", f);
}

static double time_ndf(const char *path, size_t *npatterns)
{
    double best = -1;
    for (int i = 0; i < repeat(); i++) {
        double t0 = now();
        config *c = NULL;
        int rc = config_load(path, &c);
        if (rc != NDF_OK) {
            fprintf(stderr, "config_load %s: %s\n", path, err_msg());
            exit(1);
        }
        *npatterns = c->npatterns;
        config_free(c);
        double t = now() - t0;
        if (best < 0 || t < best)
            best = t;
    }
    return best;
}

static double time_libconfig(const char *path, int once)
{
    double best = -1;
    for (int i = 0; i < (once ? 1 : repeat()); i++) {
        config_t cf;
        config_init(&cf);
        double t0 = now();
        int ok = config_read_file(&cf, path);
        if (!ok) {
            fprintf(stderr, "config_read_file %s: %s\n", path, config_error_text(&cf));
            exit(1);
        }
        config_destroy(&cf);
        double t = now() - t0;
        if (best < 0 || t < best)
            best = t;
    }
    return best;
}

static void row(const char *what, const char *path, size_t size, int *skip_lc)
{
    size_t np = 0;
    double tn = time_ndf(path, &np);
    double tl = -1;
    if (!*skip_lc) {
        tl = time_libconfig(path, size > 1000000 && !np); /* its quadratic strings: once */
        if (tl > 10)
            *skip_lc = 1;
    }
    char lc[32];
    if (tl >= 0)
        snprintf(lc, sizeof lc, "%10.3f s", tl);
    else
        snprintf(lc, sizeof lc, "%12s", "skipped");
    char ratio[32] = "";
    if (tl > 0)
        snprintf(ratio, sizeof ratio, "   ndf/libconfig %.2f", tn / tl);
    printf("  %-26s %9.1f MB  ndf %8.3f s   libconfig read_file %s%s\n", what,
           (double)size / 1e6, tn, lc, ratio);
    fflush(stdout);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("bench_config: one long string value, then many patterns\n");
    int skip = 0;
    static const size_t sizes[] = {400000, 800000, 1600000, 3200000, 10000000};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        char *p = write_file("string.conf", fill_string, sizes[i]);
        char what[64];
        snprintf(what, sizeof what, "string of %zu bytes", sizes[i]);
        row(what, p, sizes[i] + 25, &skip);
        unlink(p);
        free(p);
    }
    skip = 0;
    static const size_t counts[] = {25000, 50000, 100000};
    for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
        char *p = write_file("patterns.conf", fill_patterns, counts[i]);
        FILE *f = fopen(p, "r");
        fseek(f, 0, SEEK_END);
        size_t size = (size_t)ftell(f);
        fclose(f);
        char what[64];
        snprintf(what, sizeof what, "%zu patterns", counts[i]);
        row(what, p, size, &skip);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    return 0;
}
