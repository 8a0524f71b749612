/* The server's transport: the listening Unix socket, the poll loop, one
 * thread per connection reading request lines and writing answers, and the
 * peer credential check.  It knows lines, not what they mean: each line
 * goes to a callback, and its own refusals (too long, too many, not
 * allowed) are worded by another.  Also the client's connect. */
#ifndef NDF_TRANSPORT_H
#define NDF_TRANSPORT_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

/* A request line longer than this gets an error answer and the connection
 * is closed. */
#define TRANSPORT_MAX_LINE (1024u * 1024u)
/* Connections served at once; more are turned away. */
#define TRANSPORT_MAX_CONNS 512
/* Defaults of transport_opts' limits (ndf.conf(5) server { }). */
#define TRANSPORT_MAX_PER_UID 128
#define TRANSPORT_IDLE_TIMEOUT 60.0
/* Beyond the limits, slots kept for the socket's owner (the user the
 * server runs as, and root), so that it can always ask ping, status or
 * reload: one request each, within TRANSPORT_RESERVED_TIMEOUT seconds. */
#define TRANSPORT_RESERVED 8
#define TRANSPORT_RESERVED_TIMEOUT 5.0

/* Who is at the other end (SO_PEERCRED, SO_PEERGROUPS). */
typedef struct transport_peer {
    uid_t uid;
    gid_t gid;
    const gid_t *groups; /* supplementary groups; NULL when unknown */
    size_t ngroups;
    int reserved; /* came in on a reserved slot: the handler should serve only
                   * what the owner must always be able to ask */
} transport_peer;

typedef struct transport_opts {
    const char *path;  /* the socket: created 0600 (0660 with a group) */
    const char *group; /* group whose members may connect, or NULL/"" */
    /* Answers one request line (`len` bytes, no newline): returns the
     * answer line (malloc'd, ending in "\n"; the transport frees it).
     * Called on the connection's thread, several at once. */
    char *(*handle)(void *opaque, const transport_peer *peer, const char *line, size_t len);
    /* Words a refusal of the transport's own as an answer line (malloc'd):
     * `status` an ndf_status, `msg` the reason. */
    char *(*refuse)(void *opaque, int status, const char *msg);
    void *opaque;
    /* A connection that has not sent a complete request line this many
     * seconds after it connected or was last answered is told so and
     * closed (nginx's client_header_timeout and keepalive_timeout in one):
     * neither idle clients nor a line trickled a byte at a time hold a
     * slot for long.  0: TRANSPORT_IDLE_TIMEOUT. */
    double idle_timeout;
    /* Connections one uid may hold at once; 0: TRANSPORT_MAX_PER_UID. */
    int max_per_uid;
} transport_opts;

typedef struct transport transport;

/* Binds and listens on opts->path (creating its directory 0700; a stale
 * socket of a dead server is replaced, another server's is not).  The
 * directory must be owned by the user running ndf and writable by no one
 * else, or someone else could replace the socket.  Returns
 * NDF_OK and *out, or a status with err_msg() saying why.  The strings of `opts`
 * are copied. */
int transport_listen(const transport_opts *opts, transport **out);

/* Waits up to `timeout_ms` for a connection or for one of `fds` (their
 * revents are filled), accepting what is pending.  Returns poll's count,
 * or -1 with errno set (EINTR included). */
int transport_poll(transport *t, struct pollfd *fds, size_t nfds, int timeout_ms);

/* Stops accepting: closes the socket and removes its file. */
void transport_stop(transport *t);
/* Ends connections after the request they are in; idle ones at once. */
void transport_shutdown(transport *t);
/* Waits up to `seconds` for every connection to end; returns how many are
 * still open. */
int transport_wait(transport *t, double seconds);
/* Open connections now. */
int transport_nconns(transport *t);

/* Frees the transport.  Connections must have ended (transport_wait()
 * returned 0): their threads use it. */
void transport_free(transport *t);

/* The decision of the credential check: the server's own user (`self`),
 * root, and, when `has_group`, members of group `group`: its primary or a
 * supplementary group of the peer.  Returns 1 when allowed. */
int transport_peer_allowed(const transport_peer *peer, uid_t self, int has_group, gid_t group);

/* Connects to the socket at `path`.  Returns the descriptor, or -1 with
 * errno set (ENOENT or ECONNREFUSED: nothing listens). */
int transport_connect(const char *path);

#endif
