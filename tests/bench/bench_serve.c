/* Benchmark of `ndf serve`: reload latency (a plugin file replaced by
 * rename -> the new build serving an execution), median and max over
 * NDF_BENCH_RELOADS reloads (default 100), at the default debounce (0.2 s)
 * and at 0.01 s; and the throughput of `run` on a no-op pattern over the
 * socket (persistent connections, one request at a time each) with 1 and 8
 * clients, beside the same pattern run in-process on the executor, all in
 * the same run.  Both sides persist every execution to storage as the
 * server does (on_complete), so with storage on a disk the fsync of each
 * save dominates: NDF_BENCH_STATE_DIR=/dev/shm puts the state on tmpfs to
 * show the cost of the socket itself.  Scratch space under $top_builddir. */
#include "build-config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app/runtime.h"
#include "model/context.h"
#include "exec/executor.h"
#include "serve/transport.h"
#include "store/storage.h"
#include "base/util.h"

static char scratch[4096], watch[4200], sock[4200], conf[4200];
static const char *builddir;

static void die(const char *what)
{
    fprintf(stderr, "bench_serve: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = xasprintf("%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_rf(p);
        else
            unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(path);
}

static void copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0)
        die(src);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            die(dst);
    close(in);
    close(out);
}

/* One request, one answer line, on a connected socket. */
static char *call(int fd, const char *req)
{
    size_t len = strlen(req);
    if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
        return NULL;
    strbuf sb;
    sb_init(&sb);
    char buf[8192];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            sb_free(&sb);
            return NULL;
        }
        sb_add(&sb, buf, (size_t)n);
        if (memchr(buf, '\n', (size_t)n))
            return sb_steal(&sb);
    }
}

static pid_t start_server(const char *debounce)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        char *bin = xasprintf("%s/ndf", builddir);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execl(bin, "ndf", "-q", "-c", conf, "serve", "--debounce", debounce, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        int fd = transport_connect(sock);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        usleep(10000);
    }
    fprintf(stderr, "bench_serve: the server did not start\n");
    exit(1);
}

static void stop_server(pid_t pid)
{
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void reload_latency(const char *debounce, int n)
{
    pid_t pid = start_server(debounce);
    int fd = transport_connect(sock);
    double *lat = xcalloc((size_t)n, sizeof *lat);
    char *tmp = xasprintf("%s/.reload.so.tmp", watch), *dst = xasprintf("%s/reload.so", watch);
    int v = 1;
    for (int i = 0; i < n; i++) {
        v = v % 3 + 1;
        char *src = xasprintf("%s/tests/fixtures/.libs/reload_v%d.so", builddir, v);
        char want[32];
        snprintf(want, sizeof want, "type v%d", v);
        copy_file(src, tmp);
        double t0 = now_mono();
        if (rename(tmp, dst) != 0)
            die("rename");
        for (;;) {
            char *r = call(fd, "{\"cmd\":\"run\",\"pattern\":\"probe\"}\n");
            if (!r) {
                fprintf(stderr, "bench_serve: the server went away\n");
                exit(1);
            }
            int seen = strstr(r, want) != NULL;
            free(r);
            if (seen)
                break;
            if (now_mono() - t0 > 10) {
                fprintf(stderr, "bench_serve: build %d never served\n", v);
                exit(1);
            }
            usleep(500);
        }
        lat[i] = now_mono() - t0;
        free(src);
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("%-28s %8d %12.1f %12.1f %12.1f\n", debounce, n, lat[n / 2] * 1000,
           lat[(n * 9) / 10] * 1000, lat[n - 1] * 1000);
    free(lat);
    free(tmp);
    free(dst);
    close(fd);
    stop_server(pid);
}

typedef struct client {
    double until;
    long done, failed;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    int fd = transport_connect(sock);
    if (fd < 0)
        die("connect");
    while (now_mono() < c->until) {
        char *r = call(fd, "{\"cmd\":\"run\",\"pattern\":\"nop\"}\n");
        if (r && strstr(r, "\"status\":\"ok\""))
            c->done++;
        else
            c->failed++;
        free(r);
    }
    close(fd);
    return NULL;
}

static double socket_throughput(int nclients, double secs, long *failed)
{
    pthread_t t[64];
    client c[64];
    double t0 = now_mono();
    for (int i = 0; i < nclients; i++) {
        c[i] = (client){.until = t0 + secs};
        pthread_create(&t[i], NULL, client_main, &c[i]);
    }
    long total = 0;
    *failed = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(t[i], NULL);
        total += c[i].done;
        *failed += c[i].failed;
    }
    return (double)total / (now_mono() - t0);
}

typedef struct inproc {
    executor *ex;
    double until;
    long done;
} inproc;

static void *inproc_main(void *arg)
{
    inproc *w = arg;
    ndf_context *ctx = context_new("", "", 1);
    while (now_mono() < w->until)
        if (executor_execute(w->ex, "nop", ctx, 0, 0, NULL) == NDF_OK)
            w->done++;
    context_free(ctx);
    return NULL;
}

static double inproc_throughput(executor *ex, int nthreads, double secs)
{
    pthread_t t[64];
    inproc w[64];
    double t0 = now_mono();
    for (int i = 0; i < nthreads; i++) {
        w[i] = (inproc){.ex = ex, .until = t0 + secs};
        pthread_create(&t[i], NULL, inproc_main, &w[i]);
    }
    long total = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        total += w[i].done;
    }
    return (double)total / (now_mono() - t0);
}

int main(void)
{
    builddir = getenv("top_builddir");
    if (!builddir || !*builddir)
        builddir = ".";
    const char *nr = getenv("NDF_BENCH_RELOADS");
    int reloads = nr && atoi(nr) > 0 ? atoi(nr) : 100;
    snprintf(scratch, sizeof scratch, "%s/bench_serve.XXXXXX", builddir);
    if (!mkdtemp(scratch))
        die("mkdtemp");
    snprintf(watch, sizeof watch, "%s/watch", scratch);
    snprintf(sock, sizeof sock, "%s/run/ndf.sock", scratch);
    snprintf(conf, sizeof conf, "%s/ndf.conf", scratch);
    mkdir(watch, 0700);
    char *run = xasprintf("%s/run", scratch);
    mkdir(run, 0700);
    char *src = xasprintf("%s/tests/fixtures/.libs/reload_v1.so", builddir);
    char *dst = xasprintf("%s/reload.so", watch);
    copy_file(src, dst);
    const char *sd = getenv("NDF_BENCH_STATE_DIR");
    char *state =
        sd && *sd ? xasprintf("%s/bench_serve-state.XXXXXX", sd) : xasprintf("%s/state", scratch);
    if (sd && *sd && !mkdtemp(state))
        die(state);
    FILE *f = fopen(conf, "w");
    if (!f)
        die(conf);
    fprintf(f,
            "confidence: { threshold = 0.0; };\n"
            "storage: { path = \"%s\"; history_limit = 100; };\n"
            "plugins: { dirs = [ \"%s/plugins/.libs\", \"%s\" ]; cache_dir = \"%s/cache\"; };\n"
            "server: { socket = \"%s\"; };\n"
            "patterns = (\n"
            "  { name = \"nop\"; type = \"sequential\";\n"
            "    params = { steps = ( { name = \"n\"; step = \"noop\"; } ); }; },\n"
            "  { name = \"probe\"; type = \"reload_seq\";\n"
            "    params = { steps = ( { name = \"a\"; step = \"reload_step\"; } ); }; }\n"
            ");\n",
            state, builddir, watch, run, sock);
    fclose(f);
    setenv("NDF_RUNTIME_DIR", run, 1);
    unsetenv("NDF_PLUGIN_PATH");

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf("ndf serve benchmark (%ld cpus, executor threads 4, storage in %s)\n\n", ncpu, state);
    printf("reload latency: plugin file renamed into place -> first execution of the new build\n");
    printf("%-28s %8s %12s %12s %12s\n", "debounce (s)", "reloads", "median ms", "p90 ms",
           "max ms");
    reload_latency("0.2", reloads);
    reload_latency("0.01", reloads);

    const double secs = 3;
    printf("\nrun throughput, no-op pattern, %.0f s each (executions/s; higher is better)\n", secs);
    printf("%-28s %8s %12s %12s\n", "path", "clients", "runs/s", "us/run");
    pid_t pid = start_server("0.2");
    for (int n = 1; n <= 8; n += 7) {
        long failed;
        double r = socket_throughput(n, secs, &failed);
        printf("%-28s %8d %12.0f %12.1f%s\n", "socket (ctl protocol)", n, r, 1e6 / r,
               failed ? " (some failed!)" : "");
    }
    stop_server(pid);

    runtime rt;
    runtime_init(&rt, conf, 1, NULL, NULL);
    log_set_level(0);
    if (runtime_load(&rt, RT_PATTERNS) != NDF_OK) {
        fprintf(stderr, "bench_serve: cannot load %s\n", conf);
        return 1;
    }
    executor_opts eo = {.threads = 4,
                        .default_timeout = 60,
                        .pattern_timeout = 120,
                        .kill_grace = 2,
                        .reg = rt.reg,
                        .on_complete = history_on_complete,
                        .opaque = &rt.hook};
    runtime_store(&rt);
    executor *ex = executor_new(&eo);
    for (int n = 1; n <= 8; n += 7) {
        double r = inproc_throughput(ex, n, secs);
        printf("%-28s %8d %12.0f %12.1f\n", "in-process (executor)", n, r, 1e6 / r);
    }
    executor_free(ex);
    runtime_free(&rt);
    rm_rf(scratch);
    if (sd && *sd)
        rm_rf(state);
    free(state);
    free(run);
    free(src);
    free(dst);
    return 0;
}
