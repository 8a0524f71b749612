/* The transport (see transport.h): socket setup, accept with the peer
 * check, and a detached thread per connection that reads request lines
 * and writes the answers its callback makes. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ndf/host.h>
#include <ndf/status.h>

#include "serve/transport.h"
#include "base/fsutil.h"
#include "base/util.h"

struct transport {
    transport_opts o;
    char *path;
    int listen_fd;
    int reserve_fd; /* kept open to accept-and-refuse when descriptors run out */
    int has_group;
    gid_t gid; /* the socket's group, when has_group */

    double idle_timeout;
    int max_per_uid;

    pthread_mutex_t lock; /* guards the slots, seq and nconns */
    pthread_cond_t idle;  /* nconns reached 0 */
    /* the connections holding a slot, fd -1 when free: TRANSPORT_MAX_CONNS
     * ordinary slots, then TRANSPORT_RESERVED for the owner; a slot is
     * named by fd and seq together, as an fd number is reused */
    int conns[TRANSPORT_MAX_CONNS + TRANSPORT_RESERVED];
    uid_t conn_uid[TRANSPORT_MAX_CONNS + TRANSPORT_RESERVED];
    unsigned long conn_seq[TRANSPORT_MAX_CONNS + TRANSPORT_RESERVED];
    unsigned long seq;
    int nconns; /* connection threads alive (an evicted one holds no slot) */
};

#define NSLOTS (TRANSPORT_MAX_CONNS + TRANSPORT_RESERVED)

typedef struct conn {
    transport *t;
    int fd;
    uid_t uid;
    int reserved;
    unsigned long seq;
} conn;

/* ---- connections ---- */

static void send_line(int fd, char *text)
{
    if (!text)
        return;
    const char *p = text;
    size_t left = strlen(text);
    while (left) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    free(text);
}

static void refuse(transport *t, int fd, int status, const char *fmt, ...) ATTR_PRINTF(4, 5);
static void refuse(transport *t, int fd, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    send_line(fd, t->o.refuse(t->o.opaque, status, msg));
    free(msg);
}

static int is_owner(uid_t uid)
{
    return uid == geteuid() || uid == 0;
}

static int take_slot(transport *t, int i, conn *c)
{
    t->conns[i] = c->fd;
    t->conn_uid[i] = c->uid;
    t->conn_seq[i] = c->seq = ++t->seq;
    t->nconns++;
    return 1;
}

static int free_slot(const transport *t, int from, int to)
{
    for (int i = from; i < to; i++)
        if (t->conns[i] < 0)
            return i;
    return -1;
}

/* Takes a slot for connection `c`: an ordinary one within the limits
 * (TRANSPORT_MAX_CONNS in all, max_per_uid each), else, for the owner, a
 * reserved one (c->reserved set).  When the owner's own clients hold every
 * reserved slot, the oldest of them is shut down and its slot taken over,
 * so that the newest request of the owner always gets in.  Returns 0 and
 * words the refusal in `why` when there is no slot. */
static int conn_add(transport *t, conn *c, char *why, size_t whylen)
{
    int ok = 0, used = 0, mine = 0, i;
    c->reserved = 0;
    pthread_mutex_lock(&t->lock);
    for (i = 0; i < TRANSPORT_MAX_CONNS; i++)
        if (t->conns[i] >= 0) {
            used++;
            mine += t->conn_uid[i] == c->uid;
        }
    if (used < TRANSPORT_MAX_CONNS && mine < t->max_per_uid &&
        (i = free_slot(t, 0, TRANSPORT_MAX_CONNS)) >= 0) {
        ok = take_slot(t, i, c);
    } else if (is_owner(c->uid)) {
        if ((i = free_slot(t, TRANSPORT_MAX_CONNS, NSLOTS)) < 0) {
            i = TRANSPORT_MAX_CONNS;
            for (int k = TRANSPORT_MAX_CONNS + 1; k < NSLOTS; k++)
                if (t->conn_seq[k] < t->conn_seq[i])
                    i = k;
            /* its thread has not released the slot, so the fd is still its
             * own: shut it down, and the thread ends without the slot */
            shutdown(t->conns[i], SHUT_RDWR);
            log_msg(NDF_LOG_WARN, "reserved connection slots all taken: closed the oldest "
                                  "for a new request of the owner");
        }
        ok = take_slot(t, i, c);
        c->reserved = 1;
    }
    pthread_mutex_unlock(&t->lock);
    if (!ok && mine >= t->max_per_uid)
        snprintf(why, whylen, "too many connections from uid %u (at most %d); try again",
                 (unsigned)c->uid, t->max_per_uid);
    else if (!ok)
        snprintf(why, whylen, "too many connections (%d); try again", TRANSPORT_MAX_CONNS);
    return ok;
}

/* Gives back `c`'s slot, unless an eviction gave it to another already. */
static void conn_remove(transport *t, const conn *c)
{
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < NSLOTS; i++)
        if (t->conns[i] == c->fd && t->conn_seq[i] == c->seq) {
            t->conns[i] = -1;
            break;
        }
    if (--t->nconns == 0)
        pthread_cond_broadcast(&t->idle);
    pthread_mutex_unlock(&t->lock);
}

/* Answers the complete lines at the start of buf[0..*len) and drops them
 * (a reserved connection: the first only).  Returns how many were
 * answered, or -1 when the line under way is over-long (the connection
 * ends). */
static int answer_lines(conn *c, const transport_peer *peer, char *buf, size_t *len)
{
    transport *t = c->t;
    char *nl;
    int answered = 0;
    while ((nl = memchr(buf, '\n', *len)) && (size_t)(nl - buf) <= TRANSPORT_MAX_LINE) {
        size_t n = (size_t)(nl - buf), start = 0;
        while (start < n && (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\r'))
            start++;
        if (start < n) {
            send_line(c->fd, t->o.handle(t->o.opaque, peer, buf + start, n - start));
            answered++;
        }
        memmove(buf, nl + 1, *len - n - 1);
        *len -= n + 1;
        if (c->reserved && answered)
            return answered;
    }
    if (nl || *len > TRANSPORT_MAX_LINE) {
        refuse(t, c->fd, NDF_ERR_INVALID,
               "request line longer than %u bytes; closing the connection", TRANSPORT_MAX_LINE);
        log_msg(NDF_LOG_WARN, "client uid %u sent a request longer than %u bytes: closed",
                (unsigned)c->uid, TRANSPORT_MAX_LINE);
        return -1;
    }
    return answered;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits until `fd` is readable or `deadline` (monotonic seconds) passes;
 * returns 1 when readable (or in error: recv says which), 0 at the deadline. */
static int wait_readable(int fd, double deadline)
{
    for (;;) {
        double left = deadline - mono_now();
        if (left <= 0)
            return 0;
        struct pollfd pf = {fd, POLLIN, 0};
        int n = poll(&pf, 1, left > 1e6 ? 1000000000 : (int)(left * 1000) + 1);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 1;
    }
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    transport *t = c->t;
    transport_peer peer = {.uid = c->uid, .reserved = c->reserved};
    double timeout = t->idle_timeout;
    if (c->reserved && timeout > TRANSPORT_RESERVED_TIMEOUT)
        timeout = TRANSPORT_RESERVED_TIMEOUT;
    /* the deadline runs from the connect or the last answer, not from the
     * last byte: a request trickled in slowly does not keep it alive */
    double deadline = mono_now() + timeout;
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap);
    int answered;
    while ((answered = answer_lines(c, &peer, buf, &len)) >= 0) {
        if (answered) {
            if (c->reserved)
                break;
            deadline = mono_now() + timeout;
        }
        if (cap - len < 4096) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        if (!wait_readable(c->fd, deadline)) {
            char secs[32];
            snprintf(secs, sizeof secs, "%g", timeout);
            refuse(t, c->fd, NDF_ERR_TIMEOUT,
                   "no complete request within %s second%s; closing the connection", secs,
                   timeout == 1 ? "" : "s");
            break;
        }
        ssize_t r = recv(c->fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    free(buf);
    conn_remove(c->t, c);
    close(c->fd);
    free(c);
    return NULL;
}

/* ---- peer credentials ---- */

int transport_peer_allowed(const transport_peer *peer, uid_t self, int has_group, gid_t group)
{
    if (peer->uid == self || peer->uid == 0)
        return 1;
    if (!has_group)
        return 0;
    if (peer->gid == group)
        return 1;
    for (size_t i = 0; peer->groups && i < peer->ngroups; i++)
        if (peer->groups[i] == group)
            return 1;
    return 0;
}

/* The peer's supplementary groups: those of its process (SO_PEERGROUPS,
 * Linux 4.13), else those the group database gives its user.  Returns a
 * malloc'd array (NULL when unknown). */
static gid_t *peer_groups(int fd, uid_t uid, gid_t gid, size_t *n)
{
    socklen_t len = 64 * sizeof(gid_t);
    gid_t *g = xmalloc(len);
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len);
    if (rc != 0 && errno == ERANGE) {
        g = xrealloc(g, len);
        rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len);
    }
    if (rc == 0) {
        *n = len / sizeof(gid_t);
        return g;
    }
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    int ng = 64;
    g = xrealloc(g, (size_t)ng * sizeof *g);
    if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &res) != 0 || !res ||
        getgrouplist(res->pw_name, gid, g, &ng) < 0) {
        free(g);
        *n = 0;
        return NULL;
    }
    *n = (size_t)ng;
    return g;
}

/* SO_PEERCRED and the groups, checked by transport_peer_allowed(). */
static int peer_check(transport *t, int fd, uid_t *uid)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return 0;
    *uid = cr.uid;
    transport_peer p = {.uid = cr.uid, .gid = cr.gid};
    if (transport_peer_allowed(&p, geteuid(), t->has_group, t->gid))
        return 1;
    if (!t->has_group)
        return 0;
    gid_t *groups = peer_groups(fd, cr.uid, cr.gid, &p.ngroups);
    p.groups = groups;
    int ok = transport_peer_allowed(&p, geteuid(), t->has_group, t->gid);
    free(groups);
    return ok;
}

/* Accepts one pending connection.  Returns 0 when there was none. */
static int accept_one(transport *t)
{
    int fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && t->reserve_fd >= 0) {
        /* Out of descriptors the connection stays queued and the socket
         * stays readable, so poll would spin: give the reserve up to take
         * the client, tell it why, and close (libuv's and nginx's way). */
        close(t->reserve_fd);
        fd = accept4(t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            refuse(t, fd, NDF_ERR_RESOURCE, "the server is out of file descriptors; try again");
            close(fd);
            log_msg(NDF_LOG_WARN, "out of file descriptors: refused a connection");
        }
        t->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        return fd >= 0;
    }
    if (fd < 0)
        return 0;
    uid_t uid = (uid_t)-1;
    if (!peer_check(t, fd, &uid)) {
        refuse(t, fd, NDF_ERR_INVALID,
               "permission denied: uid %u may not use this ndf server (it serves uid %u%s%s%s)",
               (unsigned)uid, (unsigned)geteuid(),
               t->has_group ? ", root and group '" : " and root", t->has_group ? t->o.group : "",
               t->has_group ? "'" : "");
        close(fd);
        log_msg(NDF_LOG_WARN, "refused a connection from uid %u", (unsigned)uid);
        return 1;
    }
    char why[160];
    conn *c = xcalloc(1, sizeof *c);
    c->t = t;
    c->fd = fd;
    c->uid = uid;
    if (!conn_add(t, c, why, sizeof why)) {
        refuse(t, fd, NDF_ERR_RESOURCE, "%s", why);
        close(fd);
        free(c);
        return 1;
    }
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    int e = pthread_create(&th, &at, conn_main, c);
    if (e != 0) {
        /* pthread_create returns its error; errno is not set */
        log_msg(NDF_LOG_ERROR, "cannot start a connection thread: %s", strerror(e));
        conn_remove(t, c);
        close(fd);
        free(c);
    }
    pthread_attr_destroy(&at);
    return 1;
}

int transport_poll(transport *t, struct pollfd *fds, size_t nfds, int timeout_ms)
{
    struct pollfd pf[8];
    size_t n = 0;
    if (nfds + 1 > ARRAY_SIZE(pf)) {
        errno = EINVAL;
        return -1;
    }
    if (t->listen_fd >= 0)
        pf[n++] = (struct pollfd){t->listen_fd, POLLIN, 0};
    size_t first = n;
    for (size_t i = 0; i < nfds; i++)
        pf[n++] = fds[i];
    int rc = poll(pf, n, timeout_ms);
    for (size_t i = 0; i < nfds; i++)
        fds[i].revents = rc > 0 ? pf[first + i].revents : 0;
    if (rc > 0 && first && (pf[0].revents & POLLIN))
        for (int i = 0; i < 64 && accept_one(t); i++)
            ;
    return rc;
}

/* ---- the socket ---- */

int transport_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* The socket's directory and its missing parents, 0700.  The directory
 * must then be ours and writable by no one else: whoever may write it may
 * put their own socket in our socket's place, and our clients would talk
 * to them. */
static int make_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (slash != dir && fs_mkdir_p(dir, 0700, "socket directory") != NDF_OK) {
            free(dir);
            return -1;
        }
        struct stat st;
        if (stat(dir, &st) != 0) {
            err_set(NDF_ERR_IO, "cannot check the socket directory %s: %s", dir, strerror(errno));
            rc = -1;
        } else if (st.st_uid != geteuid()) {
            err_set(NDF_ERR_IO,
                    "the socket directory %s is owned by uid %u, not by the user running ndf "
                    "(uid %u), who could replace the socket: set server.socket in a directory "
                    "of your own (e.g. under $XDG_RUNTIME_DIR)",
                    dir, (unsigned)st.st_uid, (unsigned)geteuid());
            rc = -1;
        } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
            err_set(NDF_ERR_IO,
                    "the socket directory %s is %s-writable (mode %04o), so others could "
                    "replace the socket: run 'chmod go-w %s' or set server.socket elsewhere",
                    dir, (st.st_mode & S_IWOTH) ? "world" : "group",
                    (unsigned)(st.st_mode & 07777), dir);
            rc = -1;
        }
    }
    free(dir);
    return rc;
}

/* The path is free for us: nothing listens there, and what is there is a
 * stale socket (removed) or nothing. */
static int claim_path(const char *path)
{
    if (make_parent(path) != 0)
        return NDF_ERR_IO;
    int probe = transport_connect(path);
    if (probe >= 0) {
        close(probe);
        return err_set(NDF_ERR_IO, "another ndf server already listens on %s", path);
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return err_set(NDF_ERR_IO,
                           "%s exists and is not a socket: remove it or set server.socket "
                           "elsewhere",
                           path);
        unlink(path); /* stale: its server is gone */
    }
    return NDF_OK;
}

/* Binds t->path born 0600 (no window where others may connect), then
 * gives it to the group.  Returns the descriptor, or -1 with err_msg()
 * saying why. */
static int bind_socket(transport *t, const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        err_set(NDF_ERR_IO, "socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)sa, sizeof *sa);
    umask(old);
    if (rc != 0) {
        err_set(NDF_ERR_IO, "cannot bind %s: %s", t->path, strerror(errno));
        close(fd);
        return -1;
    }
    if (t->o.group && *t->o.group) {
        struct group *gr = getgrnam(t->o.group);
        if (!gr || chown(t->path, (uid_t)-1, gr->gr_gid) != 0 || chmod(t->path, 0660) != 0) {
            err_set(NDF_ERR_IO, "cannot give %s to group '%s': %s", t->path, t->o.group,
                    gr ? strerror(errno) : "no such group");
            close(fd);
            unlink(t->path);
            return -1;
        }
        t->has_group = 1;
        t->gid = gr->gr_gid;
    }
    if (listen(fd, 128) != 0) {
        err_set(NDF_ERR_IO, "listen on %s: %s", t->path, strerror(errno));
        close(fd);
        unlink(t->path);
        return -1;
    }
    return fd;
}

int transport_listen(const transport_opts *opts, transport **out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    *out = NULL;
    if (strlen(opts->path) >= sizeof sa.sun_path) {
        return err_set(NDF_ERR_INVALID, "socket path %s is too long (at most %zu bytes)",
                       opts->path, sizeof sa.sun_path - 1);
    }
    strcpy(sa.sun_path, opts->path);
    int rc = claim_path(opts->path);
    if (rc)
        return rc;
    transport *t = xcalloc(1, sizeof *t);
    t->o = *opts;
    t->path = xstrdup(opts->path);
    t->o.path = t->path;
    t->o.group = opts->group ? xstrdup(opts->group) : NULL;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->idle, NULL);
    for (int i = 0; i < NSLOTS; i++)
        t->conns[i] = -1;
    t->idle_timeout = opts->idle_timeout > 0 ? opts->idle_timeout : TRANSPORT_IDLE_TIMEOUT;
    t->max_per_uid = opts->max_per_uid > 0 ? opts->max_per_uid : TRANSPORT_MAX_PER_UID;
    t->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    t->listen_fd = bind_socket(t, &sa);
    if (t->listen_fd < 0) {
        transport_free(t);
        return NDF_ERR_IO;
    }
    *out = t;
    return NDF_OK;
}

void transport_stop(transport *t)
{
    if (t->listen_fd < 0)
        return;
    close(t->listen_fd);
    t->listen_fd = -1;
    unlink(t->path);
}

void transport_shutdown(transport *t)
{
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < NSLOTS; i++)
        if (t->conns[i] >= 0)
            shutdown(t->conns[i], SHUT_RD);
    pthread_mutex_unlock(&t->lock);
}

int transport_wait(transport *t, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)seconds;
    ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->lock);
    while (t->nconns > 0)
        if (pthread_cond_timedwait(&t->idle, &t->lock, &ts) != 0)
            break;
    int left = t->nconns;
    pthread_mutex_unlock(&t->lock);
    return left;
}

int transport_nconns(transport *t)
{
    pthread_mutex_lock(&t->lock);
    int n = t->nconns;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void transport_free(transport *t)
{
    if (!t)
        return;
    transport_stop(t);
    if (t->reserve_fd >= 0)
        close(t->reserve_fd);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->idle);
    free((char *)t->o.group);
    free(t->path);
    free(t);
}
