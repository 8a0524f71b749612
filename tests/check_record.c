/* Check suite for host/exec/record.c: the node tree, states and timings,
 * bounded output, progress, ids, references, the JSON / text renderings,
 * readers of a live record, and the condvar time conversion. */
#include "build-config.h"

#include <check.h>
#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/ztail.h"
#include "model/context.h"
#include "exec/record.h"
#include "base/util.h"

static int freed;

static void count_free(void *p)
{
    freed++;
    free(p);
}

START_TEST(tree_states_progress)
{
    ndf_context *c = context_new("web", "dev", 3);
    record *r = record_new("pipeline", c, INFINITY);
    context_free(c);
    ck_assert_str_eq(r->root->name, "pipeline");
    ck_assert_int_eq(r->root->kind, NDF_NODE_PATTERN);
    ck_assert_int_eq(r->ctx->priority, 3);
    ndf_exec *ph = node_new(r->root, NDF_NODE_PHASE, "phase1");
    ndf_exec *a = node_new(ph, NDF_NODE_STEP, "a");
    ndf_exec *b = node_new(ph, NDF_NODE_STEP, "b");
    ck_assert_int_eq(ph->depth, 1);
    ck_assert_int_eq(a->depth, 2);
    ck_assert_int_eq(atomic_load(&a->state), NDF_STATE_PENDING);
    ck_assert_double_eq(node_progress(r->root), 0);
    node_set_state(a, NDF_STATE_RUNNING, NULL);
    ck_assert(a->start > 0);
    ck_assert(a->end == 0);
    node_set_state(a, NDF_STATE_COMPLETED, NULL);
    ck_assert(a->end >= a->start);
    ck_assert_double_eq(node_progress(ph), 50);
    ck_assert_double_eq(node_progress(r->root), 50);
    node_set_state(b, NDF_STATE_FAILED, "boom");
    ck_assert_str_eq(b->message, "boom");
    ck_assert_double_eq(node_progress(ph), 100);
    ck_assert(state_final(NDF_STATE_SKIPPED));
    ck_assert(!state_final(NDF_STATE_RUNNING));
    ck_assert_str_eq(state_name(NDF_STATE_ROLLED_BACK), "ROLLED_BACK");
    ck_assert_str_eq(state_name((ndf_state)99), "UNKNOWN");
    ck_assert_str_eq(node_kind_name(NDF_NODE_TASK), "task");

    freed = 0;
    ph->data = xstrdup("plugin data");
    ph->data_free = count_free;
    record *again = record_ref(r);
    record_unref(r);
    ck_assert_int_eq(freed, 0);
    record_unref(again);
    ck_assert_int_eq(freed, 1);
}
END_TEST

/* Usage is kept per node and source; the total sums CPU over the tree and
 * takes the largest peak, never adding peaks of different processes. */
START_TEST(usage_per_node)
{
    record *r = record_new("p", NULL, INFINITY);
    ndf_exec *ph = node_new(r->root, NDF_NODE_PHASE, "ph");
    ndf_exec *a = node_new(ph, NDF_NODE_STEP, "a");
    ndf_exec *b = node_new(r->root, NDF_NODE_STEP, "b");
    double cpu = 0;
    long rss = 0;
    node_usage_total(r->root, &cpu, &rss);
    ck_assert_double_eq(cpu, 0);
    ck_assert_int_eq(rss, 0);
    node_add_usage(a, USAGE_THREAD, 0.25, 0, 0);
    node_add_usage(a, USAGE_CHILD, 0.5, 0.25, 2000);
    node_add_usage(a, USAGE_CHILD, 0.5, 0, 1000); /* a second process, smaller */
    node_add_usage(b, USAGE_WORKER, 1, 0.5, 3000);
    node_add_usage(b, USAGE_WORKER, -1, 0, 0); /* a clock that went back counts 0 */
    ck_assert_uint_eq(a->usage.sources, USAGE_THREAD | USAGE_CHILD);
    ck_assert_double_eq(a->usage.child_user_s, 1.0);
    ck_assert_int_eq(a->usage.child_maxrss_kb, 2000);
    ck_assert_uint_eq(b->usage.sources, USAGE_WORKER);
    cpu = 0;
    rss = 0;
    node_usage_total(ph, &cpu, &rss);
    ck_assert_double_eq(cpu, 1.5);
    ck_assert_int_eq(rss, 2000);
    cpu = 0;
    rss = 0;
    node_usage_total(r->root, &cpu, &rss);
    ck_assert_double_eq(cpu, 3.0);
    ck_assert_int_eq(rss, 3000);
    record_unref(r);
}
END_TEST

START_TEST(deadlines_inherit)
{
    record *r = record_new("p", NULL, now_mono() + 100);
    ndf_exec *a = node_new(r->root, NDF_NODE_STEP, "a");
    ck_assert_double_eq(a->deadline, r->root->deadline);
    node_limit_deadline(a, a->deadline + 10); /* never loosened */
    ck_assert_double_eq(a->deadline, r->root->deadline);
    ck_assert_int_eq(node_stop_status(a), 0);
    node_limit_deadline(a, now_mono() - 1);
    ck_assert_int_eq(node_stop_status(a), NDF_ERR_TIMEOUT);
    ck_assert_int_eq(node_stop_status(r->root), 0);
    atomic_store(&r->cancel, NDF_ERR_CANCELLED);
    ck_assert_int_eq(node_stop_status(r->root), NDF_ERR_CANCELLED);
    r->root->cleanup = 1;
    ck_assert_int_eq(node_stop_status(r->root), 0);
    record_unref(r);
}
END_TEST

START_TEST(output_bounded_tail)
{
    record *r = record_new("p", NULL, INFINITY);
    ndf_exec *n = r->root;
    node_append(n, REC_STDOUT, "hello ", 6, 10);
    node_append(n, REC_STDOUT, "world", 5, 10);
    ck_assert_str_eq(n->out[REC_STDOUT].buf, "ello world");
    ck_assert_uint_eq(n->out[REC_STDOUT].dropped, 1);
    node_append(n, REC_STDOUT, "0123456789abcdef", 16, 10);
    ck_assert_str_eq(n->out[REC_STDOUT].buf, "6789abcdef");
    ck_assert_uint_eq(n->out[REC_STDOUT].dropped, 1 + 10 + 6);
    node_append(n, REC_STDERR, "x", 0, 0);
    ck_assert_ptr_null(n->out[REC_STDERR].buf);
    /* default limit */
    char *big = xmalloc(RECORD_OUTPUT_LIMIT + 5);
    memset(big, 'a', RECORD_OUTPUT_LIMIT + 5);
    node_append(n, REC_STDERR, big, RECORD_OUTPUT_LIMIT + 5, 0);
    ck_assert_uint_eq(n->out[REC_STDERR].len, RECORD_OUTPUT_LIMIT);
    ck_assert_uint_eq(n->out[REC_STDERR].dropped, 5);
    free(big);
    record_unref(r);
}
END_TEST

/* Escaping cannot multiply what the JSON record holds beyond a bound: of
 * 2 MiB of NUL bytes kept, the JSON writes the newest RECORD_JSON_OUTPUT,
 * six bytes each ("\u0000"), and counts the rest as truncated. */
START_TEST(json_output_bounded)
{
    record *r = record_new("p", NULL, INFINITY);
    ndf_exec *n = r->root;
    size_t len = 2u * RECORD_RAW_TAIL;
    char *zeros = xcalloc(1, len);
    node_append(n, REC_STDOUT, zeros, len, 4u * RECORD_RAW_TAIL);
    /* the newest RECORD_RAW_TAIL raw, the rest of what is kept compressed */
    ck_assert_uint_eq(n->out[REC_STDOUT].len, RECORD_RAW_TAIL);
    ck_assert_uint_eq(n->out[REC_STDOUT].dropped, len - RECORD_RAW_TAIL);
    ck_assert_ptr_nonnull(n->out[REC_STDOUT].z);
    ck_assert_uint_eq(ztail_kept(n->out[REC_STDOUT].z), len - RECORD_RAW_TAIL);
    strbuf sb;
    sb_init(&sb);
    record_to_json(r, &sb);
    ck_assert_uint_le(sb.len, 6u * RECORD_JSON_OUTPUT + 4096);
    ck_assert_uint_ge(sb.len, 6u * RECORD_JSON_OUTPUT);
    char *want = xasprintf("\"stdout_truncated\":%zu", len - RECORD_JSON_OUTPUT);
    ck_assert_ptr_nonnull(strstr(sb.buf, want));
    free(want);
    sb_free(&sb);
    free(zeros);
    record_unref(r);
}
END_TEST

/* The JSON of a whole record is bounded, not only each node's: 200
 * tasks each at the per-node bound (and a few small ones) share
 * RECORD_JSON_TOTAL, the largest parts cut to one share, the small ones
 * whole; the record says how much its bound left out. */
START_TEST(json_record_bounded)
{
    record *r = record_new("wide", NULL, INFINITY);
    size_t ntasks = 200;
    char *big = xmalloc(RECORD_JSON_OUTPUT + 100);
    memset(big, 'x', RECORD_JSON_OUTPUT + 100);
    for (size_t i = 0; i < ntasks; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%zu", i);
        ndf_exec *t = node_new(r->root, NDF_NODE_TASK, name);
        node_append(t, REC_STDOUT, big, RECORD_JSON_OUTPUT + 100, 0);
        node_append(t, REC_STDERR, big, RECORD_JSON_OUTPUT, 0);
    }
    /* small parts: kept whole */
    ndf_exec *small = node_new(r->root, NDF_NODE_TASK, "small");
    node_append(small, REC_STDOUT, "tiny\n", 5, 0);
    big[RECORD_JSON_OUTPUT + 99] = 0;
    node_set_result(small, big); /* a result past the per-node bound too */
    strbuf sb;
    sb_init(&sb);
    record_to_json(r, &sb);
    ck_assert_uint_le(sb.len, RECORD_JSON_TOTAL + ntasks * 256 + 4096);
    ck_assert_ptr_nonnull(strstr(sb.buf, "\"stdout\":\"tiny\\n\""));
    /* 2 x ntasks streams and the result share what the tiny one leaves */
    size_t share = (RECORD_JSON_TOTAL - 5) / (2 * ntasks + 1);
    char *want = xasprintf("\"stdout_truncated\":%zu", RECORD_JSON_OUTPUT + 100 - share);
    ck_assert_msg(strstr(sb.buf, want), "no %s", want);
    free(want);
    want = xasprintf("\"result_length\":%zu", (size_t)RECORD_JSON_OUTPUT + 99);
    ck_assert_msg(strstr(sb.buf, want), "no %s", want);
    free(want);
    ck_assert_ptr_nonnull(strstr(sb.buf, "\"output_omitted\":"));
    /* still one JSON document */
    cJSON *j = cJSON_Parse(sb.buf);
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);
    sb_free(&sb);
    /* within the bound: every part whole, nothing omitted */
    record *r2 = record_new("narrow", NULL, INFINITY);
    for (int i = 0; i < 3; i++)
        node_append(node_new(r2->root, NDF_NODE_TASK, i ? "b" : "a"), REC_STDOUT, big, 1000, 0);
    sb_init(&sb);
    record_to_json(r2, &sb);
    ck_assert_ptr_null(strstr(sb.buf, "output_omitted"));
    ck_assert_ptr_null(strstr(sb.buf, "_truncated"));
    sb_free(&sb);
    record_unref(r2);
    free(big);
    record_unref(r);
}
END_TEST

/* A limit above RECORD_RAW_TAIL keeps its older part compressed: what
 * the store is handed (ztail_finish of the raw tail) is exactly the newest
 * `limit` bytes, whatever the sizes of the pieces appended; a limit at or
 * below it never compresses. */
START_TEST(output_compressed_beyond_raw_tail)
{
    record *r = record_new("p", NULL, INFINITY);
    ndf_exec *n = r->root;
    size_t total = 5u * RECORD_RAW_TAIL + 12345, limit = 3u * RECORD_RAW_TAIL + 7;
    unsigned char *in = xmalloc(total);
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        in[i] = (unsigned char)(x % 3 ? 'a' + x % 26 : x >> 32);
    }
    for (size_t off = 0, piece = 1; off < total; off += piece, piece = piece * 7 % 200003 + 1) {
        if (piece > total - off)
            piece = total - off;
        node_append(n, REC_STDOUT, (const char *)in + off, piece, limit);
        node_append(n, REC_STDERR, (const char *)in + off, piece, RECORD_RAW_TAIL);
    }
    const tailbuf *t = &n->out[REC_STDOUT];
    ck_assert_uint_eq(t->len, RECORD_RAW_TAIL);
    ck_assert_uint_eq(ztail_kept(t->z) + t->len, limit);
    ck_assert_uint_eq(t->dropped - ztail_kept(t->z), total - limit);
    unsigned char *zb;
    size_t zn;
    ck_assert_int_eq(ztail_finish(t->z, t->buf, t->len, 6, &zb, &zn), 0);
    ck_assert_uint_lt(zn, limit); /* compressible text stays compressed */
    uLongf got = limit + 1;
    unsigned char *out = xmalloc(got);
    ck_assert_int_eq(uncompress(out, &got, zb, (uLong)zn), Z_OK);
    ck_assert_uint_eq(got, limit);
    ck_assert(memcmp(out, in + total - limit, limit) == 0);
    ck_assert_ptr_null(n->out[REC_STDERR].z);
    ck_assert_uint_eq(n->out[REC_STDERR].len, RECORD_RAW_TAIL);
    ck_assert(memcmp(n->out[REC_STDERR].buf, in + total - RECORD_RAW_TAIL, RECORD_RAW_TAIL) == 0);
    free(zb);
    free(out);
    free(in);
    record_unref(r);
}
END_TEST

/* The nodes of one record share RECORD_OUTPUT_BUDGET of raw buffers: 100
 * tasks of 1,000,000 bytes each (limit 1,000,000, all below the raw
 * window) hold at most the budget, those past it keep RECORD_TIGHT_TAIL
 * raw (in a buffer of that size once they ended) and the rest compressed, and every task keeps exactly its bytes;
 * an ended node's compressor is freed and its output still reads back. */
START_TEST(output_budget_shared)
{
    record *r = record_new("wide", NULL, INFINITY);
    size_t total = 1000000, limit = 1000000, ntasks = 100;
    char *in = xmalloc(total);
    for (size_t i = 0; i < total; i++)
        in[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    ndf_exec *t[100];
    for (size_t k = 0; k < ntasks; k++) {
        char name[16];
        snprintf(name, sizeof name, "t%zu", k);
        t[k] = node_new(r->root, NDF_NODE_TASK, name);
        node_set_state(t[k], NDF_STATE_RUNNING, NULL);
        for (size_t off = 0; off < total; off += 16384)
            node_append(t[k], REC_STDOUT, in + off, total - off < 16384 ? total - off : 16384,
                        limit);
        node_set_state(t[k], NDF_STATE_COMPLETED, NULL);
        /* the budget, and the newest bytes of each ended tight stream */
        ck_assert_uint_le(r->out_held, RECORD_OUTPUT_BUDGET + (k + 1) * (RECORD_TIGHT_TAIL + 1));
    }
    ck_assert_int_eq(atomic_load(&r->out_tight), 1);
    size_t tight = 0;
    for (size_t k = 0; k < ntasks; k++) {
        const tailbuf *b = &t[k]->out[REC_STDOUT];
        size_t zk = b->z ? ztail_kept(b->z) : 0;
        ck_assert_uint_eq(zk + b->len, total);
        ck_assert_uint_eq(b->dropped, zk);
        if (!b->tight)
            continue;
        tight++;
        ck_assert_uint_eq(b->len, RECORD_TIGHT_TAIL);
        ck_assert_uint_eq(b->cap, RECORD_TIGHT_TAIL + 1);
        unsigned char *zb;
        size_t zn;
        ck_assert_int_eq(ztail_finish(b->z, b->buf, b->len, 6, &zb, &zn), 0);
        uLongf got = total + 1;
        unsigned char *out = xmalloc(got);
        ck_assert_int_eq(uncompress(out, &got, zb, (uLong)zn), Z_OK);
        ck_assert_uint_eq(got, total);
        ck_assert(memcmp(out, in, total) == 0);
        free(out);
        free(zb);
    }
    /* all but what the budget holds raw (at least 1,000,000 bytes each) */
    ck_assert_uint_ge(tight, ntasks - RECORD_OUTPUT_BUDGET / total);
    /* a stream that already spills (limit past the raw window) keeps its
     * whole limit when the budget makes it tight: 5 MiB through 3 MiB */
    size_t big = 5u * RECORD_RAW_TAIL, blimit = 3u * RECORD_RAW_TAIL;
    char *bin = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        bin[i] = (char)('A' + (i * 13 + i / 777) % 26);
    record *r2 = record_new("one", NULL, INFINITY);
    ndf_exec *late = node_new(r2->root, NDF_NODE_TASK, "late");
    node_append(late, REC_STDOUT, bin, 2 * RECORD_RAW_TAIL, blimit); /* spilling, not tight */
    ck_assert_int_eq(late->out[REC_STDOUT].tight, 0);
    ck_assert_ptr_nonnull(late->out[REC_STDOUT].z);
    for (size_t k = 0; k < 20; k++) { /* 40 streams of up to 2 MB: the budget is spent */
        ndf_exec *pre = node_new(r2->root, NDF_NODE_TASK, "pre");
        node_append(pre, REC_STDOUT, in, total, limit);
        node_append(pre, REC_STDERR, in, total, limit);
    }
    node_append(late, REC_STDOUT, bin + 2 * RECORD_RAW_TAIL, big - 2 * RECORD_RAW_TAIL, blimit);
    const tailbuf *lb = &late->out[REC_STDOUT];
    ck_assert_int_eq(lb->tight, 1);
    ck_assert_uint_eq(lb->len, RECORD_TIGHT_TAIL);
    ck_assert_uint_eq(ztail_kept(lb->z) + lb->len, blimit);
    ck_assert_uint_eq(lb->dropped - ztail_kept(lb->z), big - blimit);
    unsigned char *zb;
    size_t zn;
    ck_assert_int_eq(ztail_finish(lb->z, lb->buf, lb->len, 6, &zb, &zn), 0);
    uLongf got = blimit + 1;
    unsigned char *out = xmalloc(got);
    ck_assert_int_eq(uncompress(out, &got, zb, (uLong)zn), Z_OK);
    ck_assert_uint_eq(got, blimit);
    ck_assert(memcmp(out, bin + big - blimit, blimit) == 0);
    free(out);
    free(zb);
    free(bin);
    record_unref(r2);
    free(in);
    record_unref(r);
}
END_TEST

START_TEST(ids_unique)
{
    char a[48], b[48];
    record_make_id(a, sizeof a);
    record_make_id(b, sizeof b);
    ck_assert_str_ne(a, b);
    ck_assert_uint_ge(strlen(a), 20);
    record *r1 = record_new("p", NULL, INFINITY), *r2 = record_new("p", NULL, INFINITY);
    ck_assert_str_ne(r1->id, r2->id);
    record_unref(r1);
    record_unref(r2);
}
END_TEST

START_TEST(json_escaping)
{
    strbuf sb;
    sb_init(&sb);
    const char s[] = "q\"b\\n\n\x01 \xc3\xa9 \xff end";
    sb_json_strn(&sb, s, sizeof s - 1);
    ck_assert_str_eq(sb.buf, "\"q\\\"b\\\\n\\n\\u0001 \xc3\xa9 \\ufffd end\"");
    sb_free(&sb);
}
END_TEST

START_TEST(json_and_text)
{
    ndf_context *c = context_new("web", "dev", 2);
    record *r = record_new("deploy", c, INFINITY);
    context_free(c);
    ndf_exec *s = node_new(r->root, NDF_NODE_STEP, "build \"x\"");
    node_set_state(r->root, NDF_STATE_RUNNING, NULL);
    node_set_state(s, NDF_STATE_FAILED, "exited with status 3");
    node_append(s, REC_STDOUT, "out\n", 4, 0);
    node_append(s, REC_STDERR, "0123456789", 10, 4);
    strbuf sb;
    sb_init(&sb);
    record_to_json(r, &sb);
    ck_assert_msg(strstr(sb.buf, "\"pattern\":\"deploy\""), "%s", sb.buf);
    ck_assert(strstr(sb.buf, "\"done\":false"));
    ck_assert(strstr(sb.buf, "\"name\":\"build \\\"x\\\"\""));
    ck_assert(strstr(sb.buf, "\"state\":\"FAILED\""));
    ck_assert(strstr(sb.buf, "\"message\":\"exited with status 3\""));
    ck_assert(strstr(sb.buf, "\"stdout\":\"out\\n\""));
    ck_assert(strstr(sb.buf, "\"stderr\":\"6789\",\"stderr_truncated\":6"));
    ck_assert_msg(strstr(sb.buf, "\"progress\":100"), "%s", sb.buf);
    ck_assert(strstr(sb.buf, "\"priority\":2"));
    sb_free(&sb);
    atomic_store(&r->claimed, 1);
    r->status = NDF_ERR_TIMEOUT;
    r->error = xstrdup("late");
    atomic_store(&r->done, 1);
    sb_init(&sb);
    record_to_json(r, &sb);
    ck_assert(strstr(sb.buf, "\"status\":\"timed out\",\"success\":false,\"error\":\"late\""));
    sb_free(&sb);
    sb_init(&sb);
    record_to_text(r, &sb);
    ck_assert_msg(strstr(sb.buf, "RUNNING       pattern deploy"), "%s", sb.buf);
    ck_assert(strstr(sb.buf, "  FAILED        step build \"x\"  (exited with status 3)"));
    sb_free(&sb);
    record_unref(r);
}
END_TEST

/* A writer appends and runs children while a reader walks them: the
 * children and timings are atomics, so the reader needs no lock and (under
 * ThreadSanitizer) races with nothing. */
#define LIVE_KIDS 5000

static void *live_writer(void *arg)
{
    ndf_exec *parent = arg;
    char name[32];
    for (int i = 0; i < LIVE_KIDS; i++) {
        snprintf(name, sizeof name, "s%d", i);
        ndf_exec *k = node_new(parent, NDF_NODE_STEP, name);
        double now = record_now();
        node_start_at(k, now);
        node_complete_at(k, now);
    }
    return NULL;
}

START_TEST(live_readers)
{
    record *r = record_new("live", NULL, INFINITY);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, live_writer, r->root), 0);
    size_t seen = 0;
    while (seen < LIVE_KIDS) {
        size_t n;
        ndf_exec *const *kids = node_kids(r->root, &n);
        ck_assert_uint_ge(n, seen); /* children are only ever added */
        for (size_t i = seen; i < n; i++) {
            ck_assert_ptr_eq(kids[i]->parent, r->root);
            double start, end;
            node_times(kids[i], &start, &end);
            ck_assert(end == 0 || end >= start);
        }
        seen = n;
        strbuf sb;
        sb_init(&sb);
        record_to_json(r, &sb);
        sb_free(&sb);
    }
    pthread_join(t, NULL);
    ck_assert_double_eq(node_progress(r->root), 100);
    record_unref(r);
}
END_TEST

START_TEST(timespec_clamped)
{
    struct timespec ts = record_timespec(12.25);
    ck_assert_int_eq(ts.tv_sec, 12);
    ck_assert_int_eq(ts.tv_nsec, 250000000L);
    ts = record_timespec(INFINITY); /* --timeout 1e308: no time_t overflow */
    ck_assert(ts.tv_sec == (time_t)1e15);
    ts = record_timespec(-3);
    ck_assert(ts.tv_sec == 0 && ts.tv_nsec == 0);
    ts = record_timespec(NAN);
    ck_assert(ts.tv_sec == 0 && ts.tv_nsec == 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("record");
    tcase_add_test(tc, tree_states_progress);
    tcase_add_test(tc, deadlines_inherit);
    tcase_add_test(tc, usage_per_node);
    tcase_add_test(tc, output_bounded_tail);
    tcase_add_test(tc, json_output_bounded);
    tcase_add_test(tc, json_record_bounded);
    tcase_add_test(tc, output_compressed_beyond_raw_tail);
    tcase_add_test(tc, output_budget_shared);
    tcase_add_test(tc, ids_unique);
    tcase_add_test(tc, json_escaping);
    tcase_add_test(tc, json_and_text);
    tcase_add_test(tc, live_readers);
    tcase_add_test(tc, timespec_clamped);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
