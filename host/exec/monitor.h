/* The resource monitor (seed ResourceMonitor): system cpu, memory and disk
 * I/O usage as fractions 0..1 read from /proc, what ndf's own processes
 * use of them, and a measuring scope that gives one execution's cpu time
 * and peak memory. */
#ifndef NDF_MONITOR_H
#define NDF_MONITOR_H

#include <pthread.h>
#include <sys/resource.h>

/* How long a sample is reused before /proc is read again (seconds). */
#define MONITOR_CACHE_S 0.1

/* One reading of the system.  Each fraction is 0..1. */
typedef struct monitor_sample {
    double cpu; /* busy share of all cpus since the previous reading
                   (/proc/stat: everything but idle and iowait) */
    double mem; /* 1 - MemAvailable / MemTotal (/proc/meminfo) */
    double io;  /* the busiest block device's share of time spent doing
                   I/O since the previous reading (/proc/diskstats
                   io_ticks); 0 when there is no device */
    int ncpu;   /* cpus counted in /proc/stat */
    double mem_total_kb, mem_available_kb;
    double when; /* now_mono() of the reading */
    /* What ndf itself uses: this process and every live process descended
     * from it (the steps' processes and what they started), plus children
     * already reaped.  cpu is their share of all cpus, mem their resident
     * memory over MemTotal.  Read only when the counting is
     * MONITOR_COUNT_NDF (else 0). */
    double own_cpu, own_mem;
} monitor_sample;

/* What resource waits compare with their thresholds (resources.scope). */
typedef enum monitor_counting {
    MONITOR_COUNT_NDF = 0,   /* only ndf and its processes (the default) */
    MONITOR_COUNT_SYSTEM = 1 /* the whole machine's load */
} monitor_counting;

/* Sets what monitor_available() and monitor_describe() count, for the
 * process (the monitor is one per process, like /proc). */
void monitor_set_counting(monitor_counting c);
monitor_counting monitor_get_counting(void);
/* "ndf" or "system" */
const char *monitor_counting_name(monitor_counting c);

/* Current usage (seed get_current_usage).  Thread-safe; a reading younger
 * than MONITOR_CACHE_S is shared by all callers.  The cpu and io fractions
 * are rates, so the very first call in a process reads /proc twice, 100 ms
 * apart (it blocks that long once).  Any out pointer may be NULL.  Returns
 * NDF_OK, or NDF_ERR_IO with err_msg() naming the file when /proc cannot be
 * read (the outputs are then 0). */
int monitor_usage(double *cpu, double *mem, double *io);

/* Like monitor_usage() with the whole reading. */
int monitor_sample_get(monitor_sample *out);

/* seed is_resource_available: 1 when cpu usage <= cpu_thr and memory usage
 * <= mem_thr (thresholds 0..1; a threshold >= 1 never blocks), else 0.  A
 * /proc read error counts as available (it is logged once), so a machine
 * without /proc never deadlocks an executor waiting for resources. */
int monitor_available(double cpu_thr, double mem_thr);

/* Writes what a resource wait sees into buf, for people: the reading
 * each threshold is compared with, e.g. "cpu 93% of the machine (waits for
 * <= 60%), memory 41% (<= 60%)" or "ndf's cpu 12% (...)".  A threshold >= 1
 * is left out.  Sets *ok (may be NULL) to what monitor_available() would
 * answer.  Returns buf. */
char *monitor_describe(char *buf, size_t size, double cpu_thr, double mem_thr, int *ok);

/* Reads /proc files below `dir` instead of /proc (tests); NULL restores
 * /proc.  Drops the cached reading.  Not for use while other threads sample. */
void monitor_set_proc_dir(const char *dir);

/* A measuring scope (seed resource_context) around one execution.  The cpu
 * time is that of the threads that call monitor_scope_enter/leave around the
 * work they do for the execution (RUSAGE_THREAD), plus every child process
 * reported with monitor_scope_add_child() (the rusage wait4() returned).  The
 * peak memory is the largest of the process's own high-water mark
 * (RUSAGE_SELF ru_maxrss: a lifetime maximum, so an upper bound for what one
 * execution used) and each reported child's.  All functions are thread-safe. */
typedef struct monitor_scope {
    pthread_mutex_t lock;
    double start_wall; /* now_wall() at init */
    double start_mono;
    double cpu_s;       /* accumulated: threads that left + children */
    double child_cpu_s; /* of which children */
    long peak_rss_kb;   /* largest child ru_maxrss seen */
    unsigned nchildren;
} monitor_scope;

/* Result of a scope. */
typedef struct monitor_measure {
    double wall_s;      /* monotonic seconds between init and finish */
    double cpu_s;       /* user + system seconds (threads + children) */
    double child_cpu_s; /* of which child processes */
    long peak_rss_kb;   /* see monitor_scope */
    unsigned nchildren;
} monitor_measure;

/* Starts a scope in caller-owned `s` (wall and monotonic start time now). */
void monitor_scope_init(monitor_scope *s);
/* Marks the start of the calling thread's work for the scope; returns the
 * token to hand to monitor_scope_leave() on the same thread. */
struct rusage monitor_scope_enter(monitor_scope *s);
/* Adds the calling thread's cpu time since `token` to the scope. */
void monitor_scope_leave(monitor_scope *s, const struct rusage *token);
/* Adds a reaped child's usage (from wait4). */
void monitor_scope_add_child(monitor_scope *s, const struct rusage *ru);
/* Fills *out; the scope may still be used afterwards.  Then destroy it. */
void monitor_scope_finish(monitor_scope *s, monitor_measure *out);
/* Releases the scope's lock; `s` itself belongs to the caller. */
void monitor_scope_destroy(monitor_scope *s);

#endif
