/* Watching the plugin directories of `ndf serve` (inotify): which events
 * concern a plugin file, and whether one went away (an installer may be
 * replacing it) or was written into place. */
#ifndef NDF_WATCH_H
#define NDF_WATCH_H

#include <stddef.h>

typedef struct watch watch;

/* What watch_read() saw. */
enum { WATCH_NONE = 0, WATCH_WRITTEN = 1, WATCH_REMOVED = 2 };

/* A watch on nothing yet; NULL (after a warning: plugins then reload only
 * on SIGHUP or `ndf ctl reload`) when inotify is not available. */
watch *watch_new(void);
void watch_free(watch *w);
/* The descriptor to poll for POLLIN. */
int watch_fd(const watch *w);
/* Watches exactly `dirs` from now on (a directory that cannot be watched
 * is warned about and left out). */
void watch_set(watch *w, char *const *dirs, size_t n);
/* Reads the pending events: WATCH_NONE when none concerns a "*.so" file,
 * WATCH_REMOVED when one went away, else WATCH_WRITTEN when one was
 * written or renamed into place. */
int watch_read(watch *w);

#endif
