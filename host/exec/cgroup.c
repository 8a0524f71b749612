/* A cgroup v2 per process tree (see cgroup.h): found once, one directory
 * per running step, signalled through cgroup.procs or cgroup.kill.  Making
 * and removing a cgroup costs the kernel milliseconds (tens on a loaded
 * machine), more than the process it holds, so empty ones are kept for the
 * next step and removed at exit; those a dead ndf left are removed when
 * the next one starts. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/cgroup.h"
#include <ndf/sdk.h>

#include "base/util.h"

struct cgroup {
    char *path;
    struct cgroup *next; /* (free_lock) the free list */
};

static char *base_path;

/* Empty cgroups ready for the next step, at most FREE_MAX. */
#define FREE_MAX 256
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static cgroup *free_list;
static size_t nfree;
static unsigned long made;

/* Removes the empty step cgroups of ndf processes that are gone
 * ("ndf-PID.N" with no process PID): a crash or _exit leaves them. */
static void sweep_dead(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        long pid;
        unsigned long n;
        char tail;
        if (sscanf(de->d_name, "ndf-%ld.%lu%c", &pid, &n, &tail) != 2 || pid <= 0)
            continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        rmdir(p); /* fails, and stays, while something is in it */
        free(p);
    }
    closedir(d);
}

/* At exit: the kept empty cgroups go. */
static void remove_free(void)
{
    pthread_mutex_lock(&free_lock);
    while (free_list) {
        cgroup *cg = free_list;
        free_list = cg->next;
        rmdir(cg->path);
        free(cg->path);
        free(cg);
    }
    nfree = 0;
    pthread_mutex_unlock(&free_lock);
}

/* The mount point of the cgroup2 hierarchy, from /proc/self/mountinfo
 * (malloc'd), or NULL. */
static char *cgroup2_mount(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return NULL;
    char line[4096];
    char *found = NULL;
    while (!found && fgets(line, sizeof line, f)) {
        /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE ..." */
        const char *dash = strstr(line, " - ");
        if (!dash || strncmp(dash + 3, "cgroup2 ", 8) != 0)
            continue;
        char root[1024], mnt[2048];
        if (sscanf(line, "%*s %*s %*s %1023s %2047s", root, mnt) == 2 && strcmp(root, "/") == 0 &&
            !strchr(mnt, '\\')) /* an escaped (odd) mount point: not worth decoding */
            found = xstrdup(mnt);
    }
    fclose(f);
    return found;
}

/* This process's cgroup2 path ("0::PATH" in /proc/self/cgroup), or NULL. */
static char *own_cgroup(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return NULL;
    char line[4096];
    char *found = NULL;
    while (!found && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            found = xstrdup(line + 3);
        }
    fclose(f);
    return found;
}

static void find_base(void)
{
    const char *off = getenv("NDF_CGROUP");
    if (off && strcmp(off, "off") == 0)
        return;
    char *mnt = cgroup2_mount(), *own = own_cgroup();
    if (mnt && own) {
        char *dir = xasprintf("%s%s", mnt, strcmp(own, "/") == 0 ? "" : own);
        char *probe = xasprintf("%s/ndf-probe-%ld", dir, (long)getpid());
        if (mkdir(probe, 0755) == 0 && rmdir(probe) == 0) {
            base_path = dir;
            dir = NULL;
            log_msg(NDF_LOG_DEBUG, "exec steps run in cgroups under %s", base_path);
            sweep_dead(base_path);
            atexit(remove_free);
        } else {
            log_msg(NDF_LOG_DEBUG, "no cgroup per exec step: %s: %s", probe, strerror(errno));
        }
        free(probe);
        free(dir);
    }
    free(mnt);
    free(own);
}

const char *cgroup_base(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, find_base);
    return base_path;
}

cgroup *cgroup_new(void)
{
    const char *base = cgroup_base();
    if (!base)
        return NULL;
    pthread_mutex_lock(&free_lock);
    cgroup *cg = free_list;
    if (cg) {
        free_list = cg->next;
        nfree--;
    }
    unsigned long n = ++made;
    pthread_mutex_unlock(&free_lock);
    if (cg)
        return cg;
    char *path = xasprintf("%s/ndf-%ld.%lu", base, (long)getpid(), n);
    if (mkdir(path, 0755) != 0) {
        log_msg(NDF_LOG_DEBUG, "cannot create cgroup %s: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    cg = xmalloc(sizeof *cg);
    cg->path = path;
    cg->next = NULL;
    return cg;
}

const char *cgroup_path(const cgroup *cg)
{
    return cg->path;
}

/* Writes `text` to file `name` of the cgroup.  0 or -1 (errno). */
static int cg_write(cgroup *cg, const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", cg->path, name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)len ? 0 : -1;
}

int cgroup_attach(cgroup *cg, pid_t pid)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld\n", (long)pid);
    return cg_write(cg, "cgroup.procs", buf);
}

int cgroup_populated(cgroup *cg)
{
    char *p = xasprintf("%s/cgroup.events", cg->path);
    FILE *f = fopen(p, "re");
    free(p);
    if (!f)
        return 0;
    char line[128];
    int populated = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "populated ", 10) == 0)
            populated = atoi(line + 10) != 0;
    fclose(f);
    return populated;
}

int cgroup_cpu(cgroup *cg, double *user_s, double *sys_s)
{
    char *p = xasprintf("%s/cpu.stat", cg->path);
    FILE *f = fopen(p, "re");
    free(p);
    if (!f)
        return -1;
    char line[128];
    int have = 0;
    unsigned long long v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "user_usec %llu", &v) == 1) {
            *user_s = (double)v / 1e6;
            have |= 1;
        } else if (sscanf(line, "system_usec %llu", &v) == 1) {
            *sys_s = (double)v / 1e6;
            have |= 2;
        }
    }
    fclose(f);
    return have == 3 ? 0 : -1;
}

int cgroup_signal(cgroup *cg, int sig)
{
    if (sig == SIGKILL && cg_write(cg, "cgroup.kill", "1") == 0)
        return 1;
    char *p = xasprintf("%s/cgroup.procs", cg->path);
    FILE *f = fopen(p, "re");
    free(p);
    if (!f)
        return 0;
    long pid;
    int n = 0;
    while (fscanf(f, "%ld", &pid) == 1)
        if (pid > 0 && kill((pid_t)pid, sig) == 0)
            n++;
    fclose(f);
    return n;
}

void cgroup_free(cgroup *cg)
{
    cgroup_release(cg, 1);
}

void cgroup_release(cgroup *cg, int reuse)
{
    if (!cg)
        return;
    if (reuse && !cgroup_populated(cg)) {
        pthread_mutex_lock(&free_lock);
        int keep = nfree < FREE_MAX;
        if (keep) {
            cg->next = free_list;
            free_list = cg;
            nfree++;
        }
        pthread_mutex_unlock(&free_lock);
        if (keep)
            return;
    }
    if (rmdir(cg->path) != 0)
        log_msg(NDF_LOG_WARN, "cannot remove cgroup %s: %s", cg->path, strerror(errno));
    free(cg->path);
    free(cg);
}
