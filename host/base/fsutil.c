/* File-system helpers (see fsutil.h): mkdir -p and atomic, durable file
 * replacement. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "base/util.h"

/* err_set() with errno left as `e`, so callers may still read the cause. */
static int io_fail(int e, const char *fmt, ...) ATTR_PRINTF(2, 3);
static int io_fail(int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(NDF_ERR_IO, fmt, ap);
    va_end(ap);
    errno = e;
    return NDF_ERR_IO;
}

int fs_mkdir_p(const char *path, mode_t mode, const char *what)
{
    char *tmp = xstrdup(path);
    int rc = NDF_OK;
    /* Each prefix that ends at a '/' (and the whole path) in turn; EEXIST
     * is fine, since someone may create it between our calls too. */
    for (char *s = tmp + (*tmp ? 1 : 0);; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (*tmp && mkdir(tmp, mode) != 0 && errno != EEXIST) {
            int e = errno;
            rc = io_fail(e, "cannot create %s %s: %s", what ? what : "directory", tmp, strerror(e));
            goto done;
        }
        *s = c;
        if (!c)
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        rc = io_fail(e, "cannot create %s %s: %s", what ? what : "directory", path, strerror(e));
    } else if (!S_ISDIR(st.st_mode)) {
        rc = io_fail(ENOTDIR, "cannot create %s %s: %s", what ? what : "directory", path,
                     strerror(ENOTDIR));
    }
done:
    free(tmp);
    return rc;
}

int fs_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO; /* a regular file never does this; do not spin */
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A name no other writer will pick: random bits (the temporary files of
 * concurrent processes and threads share the directory), falling back on
 * the pid, the clock and the attempt when the kernel has no entropy yet. */
static unsigned tmp_suffix(int attempt)
{
    unsigned r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
        return r;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec ^ (unsigned)attempt;
}

int fs_atomic_begin(fs_atomic *a, int dirfd, const char *dir, const char *name, mode_t mode)
{
    a->dirfd = dirfd;
    a->dir = dir;
    a->fd = -1;
    a->tmp[0] = '\0';
    for (int attempt = 0; attempt < 100; attempt++) {
        int n = snprintf(a->tmp, sizeof a->tmp, ".%s.tmp-%08x", name, tmp_suffix(attempt));
        if (n < 0 || (size_t)n >= sizeof a->tmp)
            return io_fail(ENAMETOOLONG, "cannot create a temporary file for %s/%s: %s", dir, name,
                           strerror(ENAMETOOLONG));
        a->fd = openat(dirfd, a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (a->fd >= 0)
            return NDF_OK;
        if (errno != EEXIST) {
            int e = errno;
            return io_fail(e, "cannot create %s/%s: %s", dir, a->tmp, strerror(e));
        }
    }
    return io_fail(EEXIST, "cannot create a temporary file in %s: %s", dir, strerror(EEXIST));
}

void fs_atomic_abort(fs_atomic *a)
{
    int e = errno;
    if (a->fd >= 0)
        close(a->fd);
    if (a->tmp[0])
        unlinkat(a->dirfd, a->tmp, 0);
    a->fd = -1;
    a->tmp[0] = '\0';
    errno = e;
}

int fs_atomic_commit(fs_atomic *a, const char *name, int flags)
{
    int e = 0;
    if ((flags & FS_DURABLE) && fsync(a->fd) != 0)
        e = errno;
    /* close() reports write-back errors some file systems defer to it */
    if (close(a->fd) != 0 && !e)
        e = errno;
    a->fd = -1;
    if (e) {
        fs_atomic_abort(a);
        return io_fail(e, "cannot write %s/%s: %s", a->dir, name, strerror(e));
    }
    if (renameat(a->dirfd, a->tmp, a->dirfd, name) != 0) {
        e = errno;
        fs_atomic_abort(a);
        return io_fail(e, "cannot replace %s/%s: %s", a->dir, name, strerror(e));
    }
    a->tmp[0] = '\0';
    /* The rename is durable only once the directory is on disk too. */
    if ((flags & FS_DURABLE) && fsync(a->dirfd) != 0) {
        e = errno;
        return io_fail(e, "cannot sync directory %s: %s", a->dir, strerror(e));
    }
    return NDF_OK;
}

int fs_replace(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        int e = errno;
        return io_fail(e, "cannot open directory %s: %s", dir, strerror(e));
    }
    fs_atomic a;
    int saved, rc = fs_atomic_begin(&a, dirfd, dir, name, mode);
    if (rc)
        goto done;
    if (fs_write_all(a.fd, data, len) != 0) {
        int e = errno;
        fs_atomic_abort(&a);
        rc = io_fail(e, "cannot write %s/%s: %s", dir, name, strerror(e));
        goto done;
    }
    rc = fs_atomic_commit(&a, name, FS_DURABLE);
done:
    saved = errno;
    close(dirfd);
    errno = saved;
    return rc;
}
