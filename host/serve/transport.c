/* The transport (see transport.h): socket setup, accept with the peer
 * check, and a detached thread per connection that reads request lines
 * and writes the answers its callback makes. */
#include "build-config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
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

    pthread_mutex_t lock;           /* guards conns and nconns */
    pthread_cond_t idle;            /* nconns reached 0 */
    int conns[TRANSPORT_MAX_CONNS]; /* open connection descriptors, -1 free */
    int nconns;
};

typedef struct conn {
    transport *t;
    int fd;
    uid_t uid;
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

/* Takes a slot for `fd`; 0 when all are taken. */
static int conn_add(transport *t, int fd)
{
    int ok = 0;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < TRANSPORT_MAX_CONNS && !ok; i++)
        if (t->conns[i] < 0) {
            t->conns[i] = fd;
            t->nconns++;
            ok = 1;
        }
    pthread_mutex_unlock(&t->lock);
    return ok;
}

static void conn_remove(transport *t, int fd)
{
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < TRANSPORT_MAX_CONNS; i++)
        if (t->conns[i] == fd) {
            t->conns[i] = -1;
            if (--t->nconns == 0)
                pthread_cond_broadcast(&t->idle);
            break;
        }
    pthread_mutex_unlock(&t->lock);
}

/* Answers the complete lines at the start of buf[0..*len) and drops them.
 * Returns -1 when the line under way is over-long (the connection ends). */
static int answer_lines(conn *c, const transport_peer *peer, char *buf, size_t *len)
{
    transport *t = c->t;
    char *nl;
    while ((nl = memchr(buf, '\n', *len)) && (size_t)(nl - buf) <= TRANSPORT_MAX_LINE) {
        size_t n = (size_t)(nl - buf), start = 0;
        while (start < n && (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\r'))
            start++;
        if (start < n)
            send_line(c->fd, t->o.handle(t->o.opaque, peer, buf + start, n - start));
        memmove(buf, nl + 1, *len - n - 1);
        *len -= n + 1;
    }
    if (nl || *len > TRANSPORT_MAX_LINE) {
        refuse(t, c->fd, NDF_ERR_INVALID,
               "request line longer than %u bytes; closing the connection", TRANSPORT_MAX_LINE);
        log_msg(NDF_LOG_WARN, "client uid %u sent a request longer than %u bytes: closed",
                (unsigned)c->uid, TRANSPORT_MAX_LINE);
        return -1;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    transport_peer peer = {.uid = c->uid};
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap);
    while (answer_lines(c, &peer, buf, &len) == 0) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = recv(c->fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    free(buf);
    conn_remove(c->t, c->fd);
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
    if (!conn_add(t, fd)) {
        refuse(t, fd, NDF_ERR_RESOURCE, "too many connections (%d); try again",
               TRANSPORT_MAX_CONNS);
        close(fd);
        return 1;
    }
    conn *c = xcalloc(1, sizeof *c);
    c->t = t;
    c->fd = fd;
    c->uid = uid;
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    int e = pthread_create(&th, &at, conn_main, c);
    if (e != 0) {
        /* pthread_create returns its error; errno is not set */
        log_msg(NDF_LOG_ERROR, "cannot start a connection thread: %s", strerror(e));
        conn_remove(t, fd);
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

/* mkdir -p of the socket's directory, 0700 for what it creates. */
/* The socket's directory and its missing parents, 0700. */
static int make_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        rc = fs_mkdir_p(dir, 0700, "socket directory") == NDF_OK ? 0 : -1;
    }
    free(dir);
    return rc;
}

/* The path is free for us: nothing listens there, and what is there is a
 * stale socket (removed) or nothing. */
static int claim_path(const char *path)
{
    if (make_parent(path) != 0) {
        log_msg(NDF_LOG_ERROR, "%s", err_msg());
        return NDF_ERR_IO;
    }
    int probe = transport_connect(path);
    if (probe >= 0) {
        close(probe);
        log_msg(NDF_LOG_ERROR, "another ndf server already listens on %s", path);
        return NDF_ERR_IO;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_msg(NDF_LOG_ERROR,
                    "%s exists and is not a socket: remove it or set server.socket elsewhere",
                    path);
            return NDF_ERR_IO;
        }
        unlink(path); /* stale: its server is gone */
    }
    return NDF_OK;
}

/* Binds t->path born 0600 (no window where others may connect), then
 * gives it to the group.  Returns the descriptor, or -1 after logging. */
static int bind_socket(transport *t, const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_msg(NDF_LOG_ERROR, "socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)sa, sizeof *sa);
    umask(old);
    if (rc != 0) {
        log_msg(NDF_LOG_ERROR, "cannot bind %s: %s", t->path, strerror(errno));
        close(fd);
        return -1;
    }
    if (t->o.group && *t->o.group) {
        struct group *gr = getgrnam(t->o.group);
        if (!gr || chown(t->path, (uid_t)-1, gr->gr_gid) != 0 || chmod(t->path, 0660) != 0) {
            log_msg(NDF_LOG_ERROR, "cannot give %s to group '%s': %s", t->path, t->o.group,
                    gr ? strerror(errno) : "no such group");
            close(fd);
            unlink(t->path);
            return -1;
        }
        t->has_group = 1;
        t->gid = gr->gr_gid;
    }
    if (listen(fd, 128) != 0) {
        log_msg(NDF_LOG_ERROR, "listen on %s: %s", t->path, strerror(errno));
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
        log_msg(NDF_LOG_ERROR, "socket path %s is too long (at most %zu bytes)", opts->path,
                sizeof sa.sun_path - 1);
        return NDF_ERR_INVALID;
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
    for (int i = 0; i < TRANSPORT_MAX_CONNS; i++)
        t->conns[i] = -1;
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
    for (int i = 0; i < TRANSPORT_MAX_CONNS; i++)
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
