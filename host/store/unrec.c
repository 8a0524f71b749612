/* The unrecorded-end note (unrec.h).
 *
 * A slot is UNREC_SLOT_SIZE bytes: a magic, the entry's fields and an
 * FNV-1a checksum of the rest.  An all-zero slot is free; a slot that is
 * neither free nor a valid entry is garbage, never trusted and reused as
 * free.  Slots are claimed and freed under an exclusive flock() of the
 * file, so two processes sharing the store never take the same one; the
 * mutex does the same for the threads of one process, which share the
 * descriptor (and so its flock). */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ndf/sdk.h>

#include "base/util.h"
#include "store/unrec.h"

static const char MAGIC[8] = "NDFUNR1";

struct unrec {
    int fd;
    char *path;
    pthread_mutex_t lock;
    /* the whole note, read in one pread per scan (under the lock) rather
     * than a pread per slot: every store open scans it */
    unsigned char *buf;
    int loaded;
};

typedef struct slot {
    char magic[8];
    int64_t pid;
    double end, duration;
    char status[16];
    char id[64];
    char boot[64];
    char cause[328];
    uint64_t sum;
} slot;

_Static_assert(sizeof(slot) == UNREC_SLOT_SIZE, "a slot is UNREC_SLOT_SIZE bytes");

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static int terminated(const char *s, size_t n)
{
    return memchr(s, 0, n) != NULL;
}

static int is_free(const slot *sl)
{
    static const slot zero;
    return memcmp(sl, &zero, sizeof zero) == 0;
}

static int is_valid(const slot *sl)
{
    return memcmp(sl->magic, MAGIC, sizeof MAGIC) == 0 &&
           sl->sum == fnv(sl, offsetof(slot, sum)) && sl->pid > 0 &&
           terminated(sl->status, sizeof sl->status) && terminated(sl->id, sizeof sl->id) &&
           sl->id[0] && terminated(sl->boot, sizeof sl->boot) &&
           terminated(sl->cause, sizeof sl->cause);
}

static void to_entry(const slot *sl, unrec_entry *e)
{
    memset(e, 0, sizeof *e);
    e->pid = (long)sl->pid;
    e->end = sl->end;
    e->duration = sl->duration;
    memcpy(e->status, sl->status, sizeof e->status);
    memcpy(e->id, sl->id, sizeof e->id);
    memcpy(e->boot, sl->boot, sizeof e->boot);
    memcpy(e->cause, sl->cause, sizeof e->cause);
}

static void copy_str(char *dst, size_t n, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= n)
        len = n - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = 0;
}

static int read_slot(const unrec *u, int i, slot *sl)
{
    if (!u->loaded)
        return -1;
    memcpy(sl, u->buf + (size_t)i * UNREC_SLOT_SIZE, sizeof *sl);
    return 0;
}

/* Takes the lock and reads the note as it is now. */
static void lock(unrec *u, int how)
{
    const size_t size = (size_t)UNREC_SLOTS * UNREC_SLOT_SIZE;
    pthread_mutex_lock(&u->lock);
    while (flock(u->fd, how) != 0 && errno == EINTR)
        ;
    ssize_t r;
    while ((r = pread(u->fd, u->buf, size, 0)) < 0 && errno == EINTR)
        ;
    u->loaded = r == (ssize_t)size;
}

static void unlock(unrec *u)
{
    flock(u->fd, LOCK_UN);
    pthread_mutex_unlock(&u->lock);
}

unrec *unrec_open(const char *dir)
{
    const off_t size = (off_t)UNREC_SLOTS * UNREC_SLOT_SIZE;
    char *path = xasprintf("%s/%s", dir, UNREC_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);
    struct stat st;
    if (fd < 0) {
        /* ELOOP: a symlink, which is never followed.  A store this
         * process cannot write (or a full disk) is no hostile note. */
        int quiet = errno == ENOSPC || errno == EDQUOT || errno == EACCES || errno == EROFS;
        log_msg(quiet ? NDF_LOG_DEBUG : NDF_LOG_WARN, "%s: cannot open the unrecorded-end note: %s",
                path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        log_msg(NDF_LOG_WARN, "%s: ignored: not a regular file of this user", path);
        goto fail;
    }
    if (st.st_mode & 077)
        fchmod(fd, 0600);
    if (st.st_size == 0) {
        /* new, or a previous open found no room for it */
        int e = posix_fallocate(fd, 0, size);
        if (e) {
            log_msg(NDF_LOG_DEBUG, "%s: cannot allocate the unrecorded-end note: %s", path,
                    strerror(e));
            ftruncate(fd, 0); /* no half-sized note to refuse next time */
            goto fail;
        }
    } else if (st.st_size != size) {
        log_msg(NDF_LOG_WARN, "%s: ignored: %lld bytes, not %lld", path, (long long)st.st_size,
                (long long)size);
        goto fail;
    }
    unrec *u = xcalloc(1, sizeof *u);
    u->fd = fd;
    u->path = path;
    u->buf = xmalloc((size_t)UNREC_SLOTS * UNREC_SLOT_SIZE);
    pthread_mutex_init(&u->lock, NULL);
    int bad = 0;
    slot sl;
    lock(u, LOCK_SH);
    for (int i = 0; i < UNREC_SLOTS; i++)
        if (read_slot(u, i, &sl) == 0 && !is_free(&sl) && !is_valid(&sl))
            bad++;
    unlock(u);
    if (bad)
        log_msg(NDF_LOG_WARN, "%s: %d unreadable slot(s) ignored", path, bad);
    return u;
fail:
    if (fd >= 0)
        close(fd);
    free(path);
    return NULL;
}

void unrec_close(unrec *u)
{
    if (!u)
        return;
    close(u->fd);
    pthread_mutex_destroy(&u->lock);
    free(u->path);
    free(u->buf);
    free(u);
}

int unrec_put(unrec *u, const unrec_entry *e)
{
    if (!u || !e->id[0] || e->pid <= 0)
        return -1;
    slot sl, cur;
    memset(&sl, 0, sizeof sl);
    memcpy(sl.magic, MAGIC, sizeof MAGIC);
    sl.pid = e->pid;
    sl.end = e->end;
    sl.duration = e->duration;
    copy_str(sl.status, sizeof sl.status, e->status);
    copy_str(sl.id, sizeof sl.id, e->id);
    copy_str(sl.boot, sizeof sl.boot, e->boot);
    copy_str(sl.cause, sizeof sl.cause, e->cause);
    sl.sum = fnv(&sl, offsetof(slot, sum));
    int rc = -1, at = -1, err = 0;
    lock(u, LOCK_EX);
    for (int i = 0; i < UNREC_SLOTS; i++) {
        if (read_slot(u, i, &cur) != 0)
            break;
        if (is_valid(&cur) && cur.pid == sl.pid && strcmp(cur.id, sl.id) == 0) {
            at = i; /* said again: the same slot */
            break;
        }
        if (at < 0 && !is_valid(&cur))
            at = i;
    }
    if (at >= 0 && pwrite(u->fd, &sl, sizeof sl, (off_t)at * UNREC_SLOT_SIZE) == (ssize_t)sizeof sl &&
        fdatasync(u->fd) == 0)
        rc = 0;
    else
        err = errno;
    unlock(u);
    if (rc)
        log_msg(NDF_LOG_DEBUG, "%s: execution %s: %s", u->path, e->id,
                at < 0 ? "no free slot" : strerror(err));
    return rc;
}

int unrec_find(unrec *u, const char *id, long pid, unrec_entry *out)
{
    if (!u || !id)
        return 0;
    slot sl;
    int found = 0;
    lock(u, LOCK_SH);
    for (int i = 0; i < UNREC_SLOTS && !found; i++)
        if (read_slot(u, i, &sl) == 0 && is_valid(&sl) && sl.pid == pid && strcmp(sl.id, id) == 0) {
            to_entry(&sl, out);
            found = 1;
        }
    unlock(u);
    return found;
}

size_t unrec_of_pid(unrec *u, long pid, unrec_entry **v)
{
    *v = NULL;
    if (!u)
        return 0;
    size_t n = 0;
    slot sl;
    lock(u, LOCK_SH);
    for (int i = 0; i < UNREC_SLOTS; i++)
        if (read_slot(u, i, &sl) == 0 && is_valid(&sl) && (pid == 0 || sl.pid == pid)) {
            *v = xrealloc(*v, (n + 1) * sizeof **v);
            to_entry(&sl, &(*v)[n++]);
        }
    unlock(u);
    return n;
}

void unrec_drop(unrec *u, const unrec_entry *e)
{
    if (!u)
        return;
    static const slot zero;
    slot sl;
    lock(u, LOCK_EX);
    for (int i = 0; i < UNREC_SLOTS; i++)
        if (read_slot(u, i, &sl) == 0 && is_valid(&sl) && sl.pid == e->pid &&
            strcmp(sl.id, e->id) == 0 &&
            pwrite(u->fd, &zero, sizeof zero, (off_t)i * UNREC_SLOT_SIZE) == (ssize_t)sizeof zero)
            fdatasync(u->fd);
    unlock(u);
}
