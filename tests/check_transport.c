/* Check suite for host/serve/transport.c: the peer credential decision
 * (supplementary groups), many clients at once (the connection count is
 * only read under its lock: run under ThreadSanitizer to see a race), an
 * over-long line, and the connect of a client to nothing. */
#include "build-config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ndf/status.h>

#include "serve/transport.h"
#include "base/util.h"

START_TEST(test_peer_allowed)
{
    const gid_t sup[] = {5, 29, 100};
    transport_peer self = {.uid = 1000, .gid = 1000};
    transport_peer root = {.uid = 0, .gid = 0};
    transport_peer other = {.uid = 2000, .gid = 2000};
    transport_peer primary = {.uid = 2000, .gid = 29};
    transport_peer member = {.uid = 2000, .gid = 2000, .groups = sup, .ngroups = 3};
    ck_assert(transport_peer_allowed(&self, 1000, 0, 0));
    ck_assert(transport_peer_allowed(&root, 1000, 0, 0));
    ck_assert(!transport_peer_allowed(&other, 1000, 0, 0));
    /* without a group, group membership grants nothing */
    ck_assert(!transport_peer_allowed(&member, 1000, 0, 29));
    ck_assert(!transport_peer_allowed(&primary, 1000, 0, 29));
    /* with one: its primary group or a supplementary one (ndf.conf(5):
     * "a group whose members may use the socket") */
    ck_assert(transport_peer_allowed(&primary, 1000, 1, 29));
    ck_assert(transport_peer_allowed(&member, 1000, 1, 29));
    ck_assert(!transport_peer_allowed(&member, 1000, 1, 30));
    ck_assert(!transport_peer_allowed(&other, 1000, 1, 29));
}
END_TEST

static char dir[] = "/tmp/ndf-check-transport.XXXXXX";
static char sock[sizeof dir + 16];
static _Atomic int handled;

static char *echo(void *opaque, const transport_peer *peer, const char *line, size_t len)
{
    (void)opaque;
    atomic_fetch_add(&handled, 1);
    if (peer->reserved)
        return xasprintf("{\"echo\":\"%.*s\",\"reserved\":1}\n", (int)len, line);
    return xasprintf("{\"echo\":\"%.*s\"}\n", (int)len, line);
}

static char *refuse(void *opaque, int status, const char *msg)
{
    (void)opaque;
    return xasprintf("{\"ok\":false,\"status\":%d,\"error\":\"%s\"}\n", status, msg);
}

static transport *start_with(double idle_timeout, int max_per_uid)
{
    strcpy(dir, "/tmp/ndf-check-transport.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof sock, "%s/s/t.sock", dir);
    transport_opts o = {.path = sock,
                        .handle = echo,
                        .refuse = refuse,
                        .idle_timeout = idle_timeout,
                        .max_per_uid = max_per_uid};
    transport *t;
    ck_assert_int_eq(transport_listen(&o, &t), NDF_OK);
    return t;
}

static transport *start(void)
{
    return start_with(0, 0);
}

static void stop(transport *t)
{
    transport_stop(t);
    ck_assert_int_eq(transport_wait(t, 5), 0);
    transport_free(t);
    ck_assert_int_eq(access(sock, F_OK), -1);
    char sub[sizeof dir + 4];
    snprintf(sub, sizeof sub, "%s/s", dir);
    rmdir(sub);
    rmdir(dir);
}

/* Reads one line from fd into buf; returns its length or -1. */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r <= 0)
            return -1;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

static _Atomic int stop_poll;

static void *poller(void *arg)
{
    transport *t = arg;
    while (!atomic_load(&stop_poll)) {
        transport_poll(t, NULL, 0, 10);
        (void)transport_nconns(t);
    }
    return NULL;
}

static void *client(void *arg)
{
    (void)arg;
    for (int k = 0; k < 10; k++) {
        int fd = transport_connect(sock);
        if (fd < 0)
            return (void *)1;
        char buf[256];
        for (int i = 0; i < 5; i++) {
            if (send(fd, "hello\n", 6, MSG_NOSIGNAL) != 6 || read_line(fd, buf, sizeof buf) < 0 ||
                strcmp(buf, "{\"echo\":\"hello\"}\n") != 0) {
                close(fd);
                return (void *)1;
            }
        }
        close(fd);
    }
    return NULL;
}

START_TEST(test_many_clients)
{
    transport *t = start();
    atomic_store(&handled, 0);
    atomic_store(&stop_poll, 0);
    pthread_t pt, ct[16];
    pthread_create(&pt, NULL, poller, t);
    for (int i = 0; i < 16; i++)
        pthread_create(&ct[i], NULL, client, NULL);
    for (int i = 0; i < 16; i++) {
        void *r;
        pthread_join(ct[i], &r);
        ck_assert_ptr_null(r);
    }
    atomic_store(&stop_poll, 1);
    pthread_join(pt, NULL);
    ck_assert_int_eq(atomic_load(&handled), 16 * 10 * 5);
    stop(t);
}
END_TEST

START_TEST(test_long_line)
{
    transport *t = start();
    atomic_store(&stop_poll, 0);
    pthread_t pt;
    pthread_create(&pt, NULL, poller, t);
    int fd = transport_connect(sock);
    ck_assert_int_ge(fd, 0);
    char *big = xmalloc(TRANSPORT_MAX_LINE + 16);
    memset(big, 'a', TRANSPORT_MAX_LINE + 16);
    /* the server closes after answering: the send may be cut short */
    for (size_t off = 0; off < TRANSPORT_MAX_LINE + 16;) {
        ssize_t w = send(fd, big + off, TRANSPORT_MAX_LINE + 16 - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(big);
    char buf[512];
    ck_assert_int_gt(read_line(fd, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "longer than 1048576 bytes"));
    ck_assert_int_eq(read_line(fd, buf, sizeof buf), -1); /* then closed */
    close(fd);
    atomic_store(&stop_poll, 1);
    pthread_join(pt, NULL);
    stop(t);
}
END_TEST

/* Sends `req` and reads the answer line into buf. */
static void ask(int fd, const char *req, char *buf, size_t cap)
{
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    ck_assert_int_gt(read_line(fd, buf, cap), 0);
}

static void wait_conns(transport *t, int n)
{
    for (int i = 0; i < 2000 && transport_nconns(t) != n; i++)
        usleep(5000);
    ck_assert_int_eq(transport_nconns(t), n);
}

/* The per-uid limit turns the owner's connections beyond it to the
 * reserved slots, which serve one request each; when the owner's own idle
 * clients hold every reserved slot, the oldest gives way to the newest, so
 * that the owner can always ask. */
START_TEST(test_limits_and_reserve)
{
    transport *t = start_with(60, 3);
    atomic_store(&stop_poll, 0);
    pthread_t pt;
    pthread_create(&pt, NULL, poller, t);
    char buf[512];
    int ord[3], res[TRANSPORT_RESERVED];
    for (int i = 0; i < 3; i++) {
        ord[i] = transport_connect(sock);
        ck_assert_int_ge(ord[i], 0);
        ask(ord[i], "a\n", buf, sizeof buf);
        ck_assert_str_eq(buf, "{\"echo\":\"a\"}\n");
    }
    /* beyond the limit: a reserved slot, one request, then closed */
    int fd = transport_connect(sock);
    ck_assert_int_ge(fd, 0);
    ask(fd, "b\n", buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"echo\":\"b\",\"reserved\":1}\n");
    ck_assert_int_eq(read_line(fd, buf, sizeof buf), -1);
    close(fd);
    wait_conns(t, 3);
    /* idle owner clients take every reserved slot ... */
    for (int i = 0; i < TRANSPORT_RESERVED; i++) {
        res[i] = transport_connect(sock);
        ck_assert_int_ge(res[i], 0);
        wait_conns(t, 3 + i + 1);
    }
    /* ... and the next request of the owner still gets in */
    fd = transport_connect(sock);
    ck_assert_int_ge(fd, 0);
    ask(fd, "ping\n", buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"echo\":\"ping\",\"reserved\":1}\n");
    close(fd);
    /* the oldest idle one was closed for it */
    ck_assert_int_eq(read_line(res[0], buf, sizeof buf), -1);
    /* the ordinary connections are untouched */
    ask(ord[0], "c\n", buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"echo\":\"c\"}\n");
    for (int i = 0; i < 3; i++)
        close(ord[i]);
    for (int i = 0; i < TRANSPORT_RESERVED; i++)
        close(res[i]);
    atomic_store(&stop_poll, 1);
    pthread_join(pt, NULL);
    stop(t);
}
END_TEST

/* A connection without a complete request line, idle or with half a line,
 * is told so and closed when the idle timeout passes; an answer restarts
 * the clock. */
START_TEST(test_idle_timeout)
{
    transport *t = start_with(0.5, 0);
    atomic_store(&stop_poll, 0);
    pthread_t pt;
    pthread_create(&pt, NULL, poller, t);
    char buf[512];
    int idle = transport_connect(sock), half = transport_connect(sock),
        used = transport_connect(sock);
    ck_assert(idle >= 0 && half >= 0 && used >= 0);
    ck_assert_int_eq(send(half, "{\"cmd\":", 7, MSG_NOSIGNAL), 7);
    ask(used, "x\n", buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"echo\":\"x\"}\n");
    int fds[3] = {idle, half, used};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_gt(read_line(fds[i], buf, sizeof buf), 0);
        ck_assert_msg(strstr(buf, "no complete request within 0.5 seconds; closing the connection"),
                      "%s", buf);
        ck_assert_int_eq(read_line(fds[i], buf, sizeof buf), -1);
        close(fds[i]);
    }
    atomic_store(&stop_poll, 1);
    pthread_join(pt, NULL);
    stop(t);
}
END_TEST

/* The socket's directory must be ours and writable by no one else. */
START_TEST(test_socket_dir_checks)
{
    char d[] = "/tmp/ndf-check-transport-dir.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(d));
    ck_assert_int_eq(chmod(d, 0777), 0);
    char *path = xasprintf("%s/t.sock", d);
    transport_opts o = {.path = path, .handle = echo, .refuse = refuse};
    transport *t;
    ck_assert_int_ne(transport_listen(&o, &t), NDF_OK);
    ck_assert_ptr_nonnull(strstr(err_msg(), "is world-writable (mode 0777)"));
    ck_assert_int_eq(chmod(d, 0770), 0);
    ck_assert_int_ne(transport_listen(&o, &t), NDF_OK);
    ck_assert_ptr_nonnull(strstr(err_msg(), "is group-writable (mode 0770)"));
    ck_assert_int_eq(access(path, F_OK), -1);
    if (geteuid() == 0) {
        ck_assert_int_eq(chmod(d, 0700), 0);
        ck_assert_int_eq(chown(d, 12345, 12345), 0);
        ck_assert_int_ne(transport_listen(&o, &t), NDF_OK);
        ck_assert_ptr_nonnull(strstr(err_msg(), "is owned by uid 12345"));
        ck_assert_int_eq(chown(d, 0, 0), 0);
    }
    ck_assert_int_eq(chmod(d, 0700), 0);
    ck_assert_int_eq(transport_listen(&o, &t), NDF_OK);
    transport_stop(t);
    transport_free(t);
    ck_assert_int_eq(rmdir(d), 0);
    free(path);
}
END_TEST

START_TEST(test_connect_nothing)
{
    ck_assert_int_eq(transport_connect("/nonexistent/ndf.sock"), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

static Suite *transport_suite(void)
{
    Suite *s = suite_create("transport");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_peer_allowed);
    tcase_add_test(tc, test_many_clients);
    tcase_add_test(tc, test_long_line);
    tcase_add_test(tc, test_limits_and_reserve);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_socket_dir_checks);
    tcase_add_test(tc, test_connect_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(transport_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
