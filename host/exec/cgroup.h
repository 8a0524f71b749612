/* A cgroup v2 per process tree, where this process may create them: the
 * kernel then knows every process a step started, wherever it moved in
 * the process tree, and kills them all at once (systemd's
 * KillMode=control-group).  Used by exec/process.c; where no writable
 * cgroup v2 subtree is delegated to ndf, cgroup_new() returns NULL and the
 * process group, the NDF_STEP variable and the child subreaper do the
 * work alone. */
#ifndef NDF_CGROUP_H
#define NDF_CGROUP_H

#include <sys/types.h>

typedef struct cgroup cgroup;

/* The directory under which step cgroups are made: ndf's own cgroup in
 * the cgroup2 hierarchy (from /proc/self/mountinfo and /proc/self/cgroup)
 * when a child can be created there, found once per process; NULL when
 * there is none, when it is not writable, or when NDF_CGROUP=off is in the
 * environment.  Not to be freed. */
const char *cgroup_base(void);

/* An empty cgroup under cgroup_base() ("ndf-PID.N": one kept from an
 * earlier step, else a new one), or NULL (no base, or mkdir failed).
 * Release with cgroup_free(). */
cgroup *cgroup_new(void);

/* Moves process `pid` into `cg`.  0, or -1 with errno set.  Processes
 * `pid` started before the move stay where they were. */
int cgroup_attach(cgroup *cg, pid_t pid);

/* Whether any process is in `cg` (cgroup.events "populated"); 0 when it
 * cannot be read. */
int cgroup_populated(cgroup *cg);

/* Sends `sig` to every process in `cg`.  SIGKILL goes through cgroup.kill
 * where the kernel has it (5.14), which also catches processes forking
 * while they are killed.  Returns how many processes were signalled (for
 * cgroup.kill: 1 when it was written). */
int cgroup_signal(cgroup *cg, int sig);

/* Releases `cg`, which should be empty (the caller stopped and waited for
 * its processes): kept for a later cgroup_new(), or removed; one still
 * populated that cannot be removed is logged and left.  Kept ones are
 * removed at exit(); those of a process that died otherwise, by the next
 * ndf that finds the cgroup base.  NULL is fine. */
void cgroup_free(cgroup *cg);

/* cgroup_free, or (`reuse` 0) removed without being kept: one a process
 * could not be moved into. */
void cgroup_release(cgroup *cg, int reuse);

/* The CPU seconds used by every process that was ever in `cg` (cpu.stat's
 * user_usec and system_usec: the whole tree, escaped daemons and processes
 * that ended by themselves included; a kept cgroup's count goes on, so a
 * caller takes the difference of two readings).  0, or -1 when it cannot
 * be read. */
int cgroup_cpu(cgroup *cg, double *user_s, double *sys_s);

/* The path of `cg`'s directory, for messages and tests. */
const char *cgroup_path(const cgroup *cg);

#endif
