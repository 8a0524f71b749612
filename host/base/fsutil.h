/* File-system steps the host does one careful way: creating a directory path
 * (`mkdir -p`), writing a whole buffer, and replacing a file atomically (a
 * temporary file in the same directory, fsync of the file, rename over the
 * old name, fsync of the directory), so that a crash leaves either the old
 * content or the new, never a mix or nothing.
 *
 * Errors: NDF_OK or NDF_ERR_IO with err_msg() naming the path and the
 * reason; errno still holds the cause on return, for callers that word their
 * own message. */
#ifndef NDF_FSUTIL_H
#define NDF_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Creates `path` and every missing parent with `mode` (less the umask);
 * directories that exist are left as they are.  `what` names the directory
 * in the message ("cannot create WHAT PATH: ..."); NULL says "directory".
 * Fails with ENOTDIR when the path exists and is not a directory. */
int fs_mkdir_p(const char *path, mode_t mode, const char *what);

/* Writes all `len` bytes, retrying short writes and EINTR.  Returns 0, or
 * -1 with errno set (no message: the caller knows what the fd is). */
int fs_write_all(int fd, const void *buf, size_t len);

/* One atomic replacement in progress.  Plain data so that it can live on
 * the caller's stack; only the functions below touch it. */
typedef struct fs_atomic {
    int dirfd;       /* the directory, not owned */
    int fd;          /* the temporary file, write to it; -1 when none */
    const char *dir; /* the directory's name, for messages; not owned */
    char tmp[288];   /* the temporary file's name within the directory */
} fs_atomic;

/* Creates an exclusive temporary file ".NAME.tmp-XXXXXXXX" with `mode` in
 * the directory `dirfd` (named `dir` in messages; `dir` must outlive `a`),
 * so that it can be renamed over NAME later.  On success the caller writes
 * to a->fd and then calls fs_atomic_commit() or fs_atomic_abort(); on
 * failure there is nothing to undo. */
int fs_atomic_begin(fs_atomic *a, int dirfd, const char *dir, const char *name, mode_t mode);

/* Flags of fs_atomic_commit(). */
#define FS_DURABLE 1 /* fsync the file before the rename and the directory after */

/* Closes the temporary file and renames it over `name` (which may differ
 * from the name given to begin, for content-addressed files).  With
 * FS_DURABLE the new content and the new name survive a crash once this
 * returns NDF_OK.  On failure the temporary file is removed; either way
 * `a` is finished. */
int fs_atomic_commit(fs_atomic *a, const char *name, int flags);

/* Closes and removes the temporary file; `a` is finished.  Keeps errno. */
void fs_atomic_abort(fs_atomic *a);

/* Replaces `dir`/`name` durably with the `len` bytes at `data` (created
 * with `mode` when new).  The directory must exist. */
int fs_replace(const char *dir, const char *name, const void *data, size_t len, mode_t mode);

#endif
