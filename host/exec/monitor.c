/* The resource monitor: /proc readings shared between threads through a
 * short-lived cache, and the per-execution measuring scope. */
#include "build-config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ndf/sdk.h>

#include "exec/monitor.h"
#include "base/util.h"

/* Raw counters of one /proc reading; fractions are deltas of two of them. */
typedef struct raw {
    unsigned long long cpu_total, cpu_idle;
    int ncpu;
    double mem_total_kb, mem_avail_kb;
    double when;
    int have_own;                 /* own_* were read (MONITOR_COUNT_NDF) */
    unsigned long long own_ticks; /* cpu ticks of ndf and its processes */
    double own_rss_kb;
} raw;

/* Per-device io_ticks of the previous reading, to take the busiest delta. */
typedef struct dev_ticks {
    char name[64];
    unsigned long long ticks;
} dev_ticks;

/* The one monitor of the process, all under `lock`.  Module-level on
 * purpose: what it reads (/proc) is one per machine, and the rates need the
 * previous reading whoever asked for it; the SDK's resources_usage() carries
 * no node through which a per-runtime monitor could be reached. */
static struct {
    pthread_mutex_t lock;
    char *proc_dir; /* NULL: "/proc"; tests point it elsewhere */
    int have_prev;
    raw prev; /* the baseline of the rates */
    dev_ticks *prev_dev;
    size_t nprev_dev;
    monitor_sample cached;
    int have_cached;
    int warned; /* the "treating resources as available" warning */
    monitor_counting counting;
} mon = {.lock = PTHREAD_MUTEX_INITIALIZER, .counting = MONITOR_COUNT_NDF};

static char *proc_path(const char *name)
{
    return xasprintf("%s/%s", mon.proc_dir ? mon.proc_dir : "/proc", name);
}

static int read_stat(raw *r)
{
    char *path = proc_path("stat");
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        err_set(NDF_ERR_IO, "%s: %s", path, strerror(e));
        free(path);
        return NDF_ERR_IO;
    }
    char line[512];
    int got = 0;
    r->ncpu = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu ", 4) == 0) {
            unsigned long long v[8] = {0};
            int n = sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                           &v[3], &v[4], &v[5], &v[6], &v[7]);
            if (n >= 4) {
                /* guest time is already counted in user, so stop at steal */
                r->cpu_total = 0;
                for (int i = 0; i < n; i++)
                    r->cpu_total += v[i];
                r->cpu_idle = v[3] + (n > 4 ? v[4] : 0);
                got = 1;
            }
        } else if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9') {
            r->ncpu++;
        }
    }
    fclose(f);
    if (!got) {
        err_set(NDF_ERR_IO, "%s: no 'cpu' line", path);
        free(path);
        return NDF_ERR_IO;
    }
    free(path);
    return NDF_OK;
}

static int read_meminfo(raw *r)
{
    char *path = proc_path("meminfo");
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        err_set(NDF_ERR_IO, "%s: %s", path, strerror(e));
        free(path);
        return NDF_ERR_IO;
    }
    char line[256];
    double total = -1, avail = -1, free_kb = -1, buffers = 0, cache = 0;
    while (fgets(line, sizeof line, f)) {
        double v;
        if (sscanf(line, "MemTotal: %lf", &v) == 1)
            total = v;
        else if (sscanf(line, "MemAvailable: %lf", &v) == 1)
            avail = v;
        else if (sscanf(line, "MemFree: %lf", &v) == 1)
            free_kb = v;
        else if (sscanf(line, "Buffers: %lf", &v) == 1)
            buffers = v;
        else if (sscanf(line, "Cached: %lf", &v) == 1)
            cache = v;
    }
    fclose(f);
    if (total <= 0) {
        err_set(NDF_ERR_IO, "%s: no MemTotal", path);
        free(path);
        return NDF_ERR_IO;
    }
    /* Kernels before 3.14 have no MemAvailable: approximate it. */
    if (avail < 0)
        avail = free_kb >= 0 ? free_kb + buffers + cache : 0;
    r->mem_total_kb = total;
    r->mem_avail_kb = avail > total ? total : avail;
    free(path);
    return NDF_OK;
}

/* Reads every device's io_ticks (field 13 of /proc/diskstats).  A missing
 * file is not an error (containers): there is simply no device. */
static void read_diskstats(dev_ticks **out, size_t *n)
{
    char *path = proc_path("diskstats");
    FILE *f = fopen(path, "re");
    free(path);
    *out = NULL;
    *n = 0;
    if (!f)
        return;
    size_t cap = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned maj, min;
        char name[64];
        unsigned long long v[10];
        int k = sscanf(line, " %u %u %63s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &maj,
                       &min, name, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
                       &v[9]);
        if (k < 13)
            continue;
        /* ram disks never wait; loop devices double-count their backing disk */
        if (strncmp(name, "ram", 3) == 0 || strncmp(name, "loop", 4) == 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        snprintf((*out)[*n].name, sizeof(*out)[*n].name, "%s", name);
        (*out)[*n].ticks = v[9];
        (*n)++;
    }
    fclose(f);
}

/* One process of /proc/PID/stat: its parent, cpu ticks (own and of its
 * reaped children) and resident pages.  0, or -1 when it is gone. */
typedef struct pinfo {
    int pid, ppid;
    unsigned long long ticks;
    long rss_pages;
} pinfo;

static int read_pstat(const char *dir, const char *pid, pinfo *out)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s/stat", dir, pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[1024];
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    /* the command name may hold spaces and parentheses: fields start
     * after the last ')' */
    char *p = ok ? strrchr(line, ')') : NULL;
    if (!p)
        return -1;
    unsigned long long ut, st, cut, cst;
    int ppid;
    long rss;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime cutime cstime priority nice threads itreal
     * starttime vsize rss */
    if (sscanf(p + 2,
               "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu %*d %*d %*d %*d "
               "%*u %*u %ld",
               &ppid, &ut, &st, &cut, &cst, &rss) != 6)
        return -1;
    out->pid = atoi(pid);
    out->ppid = ppid;
    out->ticks = ut + st + cut + cst;
    out->rss_pages = rss;
    return 0;
}

static int pinfo_cmp(const void *a, const void *b)
{
    int x = ((const pinfo *)a)->pid, y = ((const pinfo *)b)->pid;
    return (x > y) - (x < y);
}

/* Sums ndf's own use: this process and every live descendant (found by
 * following parent links over all of /proc).  Children reaped already are
 * in their reaper's cutime/cstime, and every reaper is ndf or one of its
 * descendants (ndf is their subreaper). */
static void read_own(raw *r)
{
    const char *dir = mon.proc_dir ? mon.proc_dir : "/proc";
    DIR *d = opendir(dir);
    if (!d)
        return;
    pinfo *all = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pinfo pi;
        if (read_pstat(dir, e->d_name, &pi))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            all = xrealloc(all, cap * sizeof *all);
        }
        all[n++] = pi;
    }
    closedir(d);
    int self = (int)getpid();
    /* /proc lists pids in ascending order, so a parent is found by binary
     * search; each process's verdict (1 ours, 2 not) is kept, so every
     * chain of parents is walked once. */
    qsort(all, n, sizeof *all, pinfo_cmp);
    char *mine = xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) {
        size_t chain[64], depth = 0, k = i;
        char verdict = 0;
        while (!verdict) {
            if (mine[k]) {
                verdict = mine[k];
            } else if (all[k].pid == self) {
                verdict = 1;
            } else if (all[k].ppid <= 1 || depth == 64) {
                verdict = 2;
            } else {
                chain[depth++] = k;
                pinfo key = {.pid = all[k].ppid};
                pinfo *par = bsearch(&key, all, n, sizeof *all, pinfo_cmp);
                if (!par)
                    verdict = 2;
                else
                    k = (size_t)(par - all);
            }
        }
        mine[k] = verdict;
        for (size_t c = 0; c < depth; c++)
            mine[chain[c]] = verdict;
    }
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    for (size_t i = 0; i < n; i++)
        if (mine[i] == 1) {
            r->own_ticks += all[i].ticks;
            r->own_rss_kb += (double)all[i].rss_pages * (double)(page_kb > 0 ? page_kb : 4);
        }
    r->have_own = 1;
    free(mine);
    free(all);
}

static int read_raw(raw *r, dev_ticks **dev, size_t *ndev)
{
    memset(r, 0, sizeof *r);
    int rc = read_stat(r);
    if (rc == NDF_OK)
        rc = read_meminfo(r);
    if (rc != NDF_OK)
        return rc;
    read_diskstats(dev, ndev);
    if (mon.counting == MONITOR_COUNT_NDF)
        read_own(r);
    r->when = now_mono();
    return NDF_OK;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Computes a sample from the previous and the current reading. */
static void compute(const raw *a, const dev_ticks *adev, size_t nadev, const raw *b,
                    const dev_ticks *bdev, size_t nbdev, monitor_sample *s)
{
    unsigned long long dt = b->cpu_total - a->cpu_total;
    unsigned long long di = b->cpu_idle - a->cpu_idle;
    s->cpu = dt ? clamp01(1.0 - (double)di / (double)dt) : 0;
    s->mem = clamp01(1.0 - b->mem_avail_kb / b->mem_total_kb);
    s->mem_total_kb = b->mem_total_kb;
    s->mem_available_kb = b->mem_avail_kb;
    s->ncpu = b->ncpu;
    s->when = b->when;
    double elapsed_ms = (b->when - a->when) * 1000.0;
    double io = 0;
    if (elapsed_ms > 0) {
        for (size_t i = 0; i < nbdev; i++) {
            for (size_t j = 0; j < nadev; j++) {
                if (strcmp(bdev[i].name, adev[j].name) != 0)
                    continue;
                if (bdev[i].ticks >= adev[j].ticks) {
                    double u = (double)(bdev[i].ticks - adev[j].ticks) / elapsed_ms;
                    if (u > io)
                        io = u;
                }
                break;
            }
        }
    }
    s->io = clamp01(io);
    s->own_cpu = s->own_mem = 0;
    if (a->have_own && b->have_own) {
        /* the ticks of /proc/PID/stat and of /proc/stat are both USER_HZ,
         * the latter summed over all cpus: the ratio is the machine share */
        if (dt && b->own_ticks > a->own_ticks)
            s->own_cpu = clamp01((double)(b->own_ticks - a->own_ticks) / (double)dt);
        s->own_mem = clamp01(b->own_rss_kb / b->mem_total_kb);
    }
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Called with mon.lock held. */
static int refresh(void)
{
    raw cur;
    dev_ticks *dev = NULL;
    size_t ndev = 0;
    int rc;

    /* Without a recent previous reading a rate would be an average since
     * boot, which says nothing about now: take a short baseline. */
    if (!mon.have_prev || now_mono() - mon.prev.when > 10.0) {
        free(mon.prev_dev);
        mon.prev_dev = NULL;
        mon.nprev_dev = 0;
        rc = read_raw(&mon.prev, &mon.prev_dev, &mon.nprev_dev);
        if (rc != NDF_OK) {
            mon.have_prev = 0;
            return rc;
        }
        mon.have_prev = 1;
        sleep_s(0.1);
    }
    rc = read_raw(&cur, &dev, &ndev);
    if (rc != NDF_OK) {
        free(dev);
        return rc;
    }
    compute(&mon.prev, mon.prev_dev, mon.nprev_dev, &cur, dev, ndev, &mon.cached);
    mon.have_cached = 1;
    /* Keep the baseline when the interval is tiny, so the cpu fraction is
     * always measured over at least one cache period. */
    if (cur.when - mon.prev.when >= MONITOR_CACHE_S) {
        free(mon.prev_dev);
        mon.prev = cur;
        mon.prev_dev = dev;
        mon.nprev_dev = ndev;
    } else {
        free(dev);
    }
    return NDF_OK;
}

int monitor_sample_get(monitor_sample *out)
{
    int rc = NDF_OK;
    pthread_mutex_lock(&mon.lock);
    if (!mon.have_cached || now_mono() - mon.cached.when >= MONITOR_CACHE_S)
        rc = refresh();
    if (rc == NDF_OK)
        *out = mon.cached;
    else
        memset(out, 0, sizeof *out);
    pthread_mutex_unlock(&mon.lock);
    return rc;
}

int monitor_usage(double *cpu, double *mem, double *io)
{
    monitor_sample s;
    int rc = monitor_sample_get(&s);
    if (cpu)
        *cpu = s.cpu;
    if (mem)
        *mem = s.mem;
    if (io)
        *io = s.io;
    return rc;
}

int monitor_available(double cpu_thr, double mem_thr)
{
    monitor_sample s;
    if (monitor_sample_get(&s) != NDF_OK) {
        pthread_mutex_lock(&mon.lock);
        int first = !mon.warned;
        mon.warned = 1;
        pthread_mutex_unlock(&mon.lock);
        if (first)
            log_msg(NDF_LOG_WARN, "resource monitor: %s; treating resources as available",
                    err_msg());
        return 1;
    }
    int own = monitor_get_counting() == MONITOR_COUNT_NDF;
    if (cpu_thr < 1 && (own ? s.own_cpu : s.cpu) > cpu_thr)
        return 0;
    if (mem_thr < 1 && (own ? s.own_mem : s.mem) > mem_thr)
        return 0;
    return 1;
}

void monitor_set_counting(monitor_counting c)
{
    pthread_mutex_lock(&mon.lock);
    if (mon.counting != c) {
        mon.counting = c;
        /* the baseline must have the same fields as the next reading */
        mon.have_prev = mon.have_cached = 0;
    }
    pthread_mutex_unlock(&mon.lock);
}

monitor_counting monitor_get_counting(void)
{
    pthread_mutex_lock(&mon.lock);
    monitor_counting c = mon.counting;
    pthread_mutex_unlock(&mon.lock);
    return c;
}

const char *monitor_counting_name(monitor_counting c)
{
    return c == MONITOR_COUNT_SYSTEM ? "system" : "ndf";
}

char *monitor_describe(char *buf, size_t size, double cpu_thr, double mem_thr, int *ok)
{
    monitor_sample s;
    int rc = monitor_sample_get(&s);
    int own = monitor_get_counting() == MONITOR_COUNT_NDF;
    double cpu = own ? s.own_cpu : s.cpu, mem = own ? s.own_mem : s.mem;
    if (ok)
        *ok =
            rc != NDF_OK || ((cpu_thr >= 1 || cpu <= cpu_thr) && (mem_thr >= 1 || mem <= mem_thr));
    if (rc != NDF_OK) {
        snprintf(buf, size, "no reading (%s)", err_msg());
        return buf;
    }
    const char *who = own ? "ndf's " : "";
    const char *of = own ? " of the machine" : "";
    /* a small share keeps a decimal: "0%" next to "<= 0%" explains nothing */
    int cd = cpu * 100 < 9.95, md = mem * 100 < 9.95;
    int n = 0;
    buf[0] = '\0';
    if (cpu_thr < 1)
        n = snprintf(buf, size, "%scpu %.*f%%%s (waits for <= %.0f%%)", who, cd, cpu * 100, of,
                     cpu_thr * 100);
    if (mem_thr < 1 && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "%s%smemory %.*f%%%s (waits for <= %.0f%%)",
                 n ? ", " : "", n ? "" : who, md, mem * 100, of, mem_thr * 100);
    if (!buf[0])
        snprintf(buf, size, "no threshold below 100%%");
    return buf;
}

void monitor_set_proc_dir(const char *dir)
{
    pthread_mutex_lock(&mon.lock);
    free(mon.proc_dir);
    mon.proc_dir = dir ? xstrdup(dir) : NULL;
    free(mon.prev_dev);
    mon.prev_dev = NULL;
    mon.nprev_dev = 0;
    mon.have_prev = mon.have_cached = mon.warned = 0;
    pthread_mutex_unlock(&mon.lock);
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static struct rusage thread_usage(void)
{
    struct rusage ru;
#ifdef RUSAGE_THREAD
    if (getrusage(RUSAGE_THREAD, &ru) == 0)
        return ru;
#endif
    /* Without per-thread accounting the process total is the best bound. */
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        memset(&ru, 0, sizeof ru);
    return ru;
}

void monitor_scope_init(monitor_scope *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->start_wall = now_wall();
    s->start_mono = now_mono();
}

struct rusage monitor_scope_enter(monitor_scope *s)
{
    (void)s;
    return thread_usage();
}

void monitor_scope_leave(monitor_scope *s, const struct rusage *token)
{
    struct rusage now = thread_usage();
    double d =
        tv_s(&now.ru_utime) - tv_s(&token->ru_utime) + tv_s(&now.ru_stime) - tv_s(&token->ru_stime);
    pthread_mutex_lock(&s->lock);
    if (d > 0)
        s->cpu_s += d;
    pthread_mutex_unlock(&s->lock);
}

void monitor_scope_add_child(monitor_scope *s, const struct rusage *ru)
{
    double d = tv_s(&ru->ru_utime) + tv_s(&ru->ru_stime);
    pthread_mutex_lock(&s->lock);
    s->cpu_s += d;
    s->child_cpu_s += d;
    if (ru->ru_maxrss > s->peak_rss_kb)
        s->peak_rss_kb = ru->ru_maxrss;
    s->nchildren++;
    pthread_mutex_unlock(&s->lock);
}

void monitor_scope_finish(monitor_scope *s, monitor_measure *out)
{
    struct rusage self;
    if (getrusage(RUSAGE_SELF, &self) != 0)
        memset(&self, 0, sizeof self);
    pthread_mutex_lock(&s->lock);
    out->wall_s = now_mono() - s->start_mono;
    out->cpu_s = s->cpu_s;
    out->child_cpu_s = s->child_cpu_s;
    out->peak_rss_kb = s->peak_rss_kb > self.ru_maxrss ? s->peak_rss_kb : self.ru_maxrss;
    out->nchildren = s->nchildren;
    pthread_mutex_unlock(&s->lock);
}

void monitor_scope_destroy(monitor_scope *s)
{
    pthread_mutex_destroy(&s->lock);
}
