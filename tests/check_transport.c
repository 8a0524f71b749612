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
    (void)peer;
    atomic_fetch_add(&handled, 1);
    return xasprintf("{\"echo\":\"%.*s\"}\n", (int)len, line);
}

static char *refuse(void *opaque, int status, const char *msg)
{
    (void)opaque;
    return xasprintf("{\"ok\":false,\"status\":%d,\"error\":\"%s\"}\n", status, msg);
}

static transport *start(void)
{
    strcpy(dir, "/tmp/ndf-check-transport.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof sock, "%s/s/t.sock", dir);
    transport_opts o = {.path = sock, .handle = echo, .refuse = refuse};
    transport *t;
    ck_assert_int_eq(transport_listen(&o, &t), NDF_OK);
    return t;
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
