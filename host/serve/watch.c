/* The plugin directory watch (see watch.h), on inotify. */
#include "build-config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <ndf/host.h>

#include "serve/watch.h"
#include "base/util.h"

struct watch {
    int fd;
    int *wds;
    size_t nwds;
};

watch *watch_new(void)
{
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) {
        log_msg(NDF_LOG_WARN, "inotify: %s; plugins reload only on SIGHUP or 'ndf ctl reload'",
                strerror(errno));
        return NULL;
    }
    watch *w = xcalloc(1, sizeof *w);
    w->fd = fd;
    return w;
}

void watch_free(watch *w)
{
    if (!w)
        return;
    close(w->fd);
    free(w->wds);
    free(w);
}

int watch_fd(const watch *w)
{
    return w->fd;
}

void watch_set(watch *w, char *const *dirs, size_t n)
{
    for (size_t i = 0; i < w->nwds; i++)
        inotify_rm_watch(w->fd, w->wds[i]);
    free(w->wds);
    w->wds = xcalloc(n ? n : 1, sizeof *w->wds);
    w->nwds = 0;
    for (size_t i = 0; i < n; i++) {
        int wd = inotify_add_watch(w->fd, dirs[i],
                                   IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                       IN_CREATE | IN_ATTRIB | IN_ONLYDIR);
        if (wd < 0)
            log_msg(NDF_LOG_WARN,
                    "cannot watch plugin directory %s: %s (reload with SIGHUP or 'ndf ctl "
                    "reload')",
                    dirs[i], strerror(errno));
        else
            w->wds[w->nwds++] = wd;
    }
}

int watch_read(watch *w)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int seen = WATCH_NONE;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            size_t l = ev->len ? strlen(ev->name) : 0;
            if ((ev->mask & IN_Q_OVERFLOW) && seen < WATCH_WRITTEN)
                seen = WATCH_WRITTEN;
            /* IN_CREATE alone is a file still being written: wait for its
             * close (IN_CLOSE_WRITE) or rename (IN_MOVED_TO).  Names with a
             * leading dot are installers' temporary files. */
            int so = l > 3 && ev->name[0] != '.' && strcmp(ev->name + l - 3, ".so") == 0;
            if (so && (ev->mask & (IN_MOVED_FROM | IN_DELETE)))
                seen = WATCH_REMOVED;
            /* IN_ATTRIB: chmod, chown, touch; a refused build whose mode or
             * owner was fixed is tried again. */
            else if (so && (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB)) &&
                     seen < WATCH_WRITTEN)
                seen = WATCH_WRITTEN;
            p += sizeof *ev + ev->len;
        }
    }
    return seen;
}
