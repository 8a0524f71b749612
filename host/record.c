/* The live record of an execution: node tree, bounded output, ids and the
 * JSON and text renderings read by `ndf status` and the server. */
#include "build-config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "context.h"
#include "pattern.h"
#include "record.h"
#include "util.h"

void record_make_id(char *out, size_t size)
{
    static _Atomic unsigned counter;
    unsigned n = atomic_fetch_add(&counter, 1) + 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, size, "%04d%02d%02dT%02d%02d%02d-%x-%u", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)getpid(), n);
}

static ndf_exec *node_alloc(record *r, ndf_exec *parent, ndf_node_kind kind, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    ndf_exec *n = xcalloc(1, sizeof *n + len + 1);
    n->kind = kind;
    atomic_init(&n->state, NDF_STATE_PENDING);
    n->rec = r;
    n->parent = parent;
    n->depth = parent ? parent->depth + 1 : 0;
    n->deadline = parent ? parent->deadline : INFINITY;
    if (len)
        memcpy(n->name, name, len);
    return n;
}

record *record_new(const char *name, const ndf_context *ctx, double deadline)
{
    record *r = xcalloc(1, sizeof *r);
    atomic_init(&r->refs, 1);
    record_make_id(r->id, sizeof r->id);
    pthread_mutex_init(&r->lock, NULL);
    r->ctx = ctx ? context_dup(ctx) : context_new(NULL, NULL, NDF_PRIORITY_HIGHEST);
    r->root = node_alloc(r, NULL, NDF_NODE_PATTERN, name ? name : "");
    r->root->deadline = deadline;
    r->kill_grace = 2.0;
    r->start_wall = now_wall();
    r->start = now_mono();
    return r;
}

record *record_ref(record *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

/* Children first, then the node's own data, then its pattern reference:
 * plugin-owned data (data_free, the pattern's instance) is released while
 * the pattern that pins its plugin's code is still held. */
static void node_free(ndf_exec *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    if (n->data && n->data_free)
        n->data_free(n->data);
    if (n->pat)
        pattern_unref(n->pat);
    free(n->message);
    for (int i = 0; i < 3; i++)
        free(n->out[i].buf);
    free(n);
}

void record_unref(record *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    node_free(r->root);
    context_free(r->ctx);
    free(r->error);
    free(r->fallback_from);
    free(r->fallback_cause);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

ndf_exec *node_new(ndf_exec *parent, ndf_node_kind kind, const char *name)
{
    record *r = parent->rec;
    ndf_exec *n = node_alloc(r, parent, kind, name);
    pthread_mutex_lock(&r->lock);
    if (parent->nkids == parent->capkids) {
        parent->capkids = parent->capkids ? parent->capkids * 2 : 4;
        parent->kids = xrealloc(parent->kids, parent->capkids * sizeof *parent->kids);
    }
    parent->kids[parent->nkids++] = n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int state_final(ndf_state s)
{
    return s != NDF_STATE_PENDING && s != NDF_STATE_RUNNING;
}

void node_set_message(ndf_exec *node, const char *msg)
{
    char *copy = msg ? xstrdup(msg) : NULL;
    pthread_mutex_lock(&node->rec->lock);
    char *old = node->message;
    node->message = copy;
    pthread_mutex_unlock(&node->rec->lock);
    free(old);
}

void node_set_state(ndf_exec *node, ndf_state state, const char *msg)
{
    if (state == NDF_STATE_RUNNING) {
        node->start = now_mono();
        node->start_wall = now_wall();
        node->end = 0;
    } else if (state_final(state) && node->start > 0 && node->end == 0) {
        node->end = now_mono();
    }
    if (msg)
        node_set_message(node, msg);
    atomic_store_explicit(&node->state, state, memory_order_release);
}

void node_limit_deadline(ndf_exec *node, double deadline)
{
    if (deadline < node->deadline)
        node->deadline = deadline;
}

int node_stop_status(const ndf_exec *node)
{
    int c = atomic_load_explicit(&node->rec->cancel, memory_order_relaxed);
    if (c && !node->cleanup)
        return c;
    if (node->deadline < INFINITY && now_mono() >= node->deadline)
        return NDF_ERR_TIMEOUT;
    return 0;
}

static void tail_add(tailbuf *t, const char *buf, size_t len, size_t limit)
{
    if (len >= limit) {
        t->dropped += t->len + (len - limit);
        buf += len - limit;
        len = limit;
        t->len = 0;
    } else if (t->len + len > limit) {
        size_t drop = t->len + len - limit;
        memmove(t->buf, t->buf + drop, t->len - drop);
        t->len -= drop;
        t->dropped += drop;
    }
    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + len + 1)
            cap *= 2;
        t->buf = xrealloc(t->buf, cap);
        t->cap = cap;
    }
    memcpy(t->buf + t->len, buf, len);
    t->len += len;
    t->buf[t->len] = '\0';
}

void node_append(ndf_exec *node, record_stream s, const char *buf, size_t len, size_t limit)
{
    if (!len)
        return;
    pthread_mutex_lock(&node->rec->lock);
    tail_add(&node->out[s], buf, len, limit ? limit : RECORD_OUTPUT_LIMIT);
    pthread_mutex_unlock(&node->rec->lock);
}

/* Caller holds the record lock. */
static double progress_locked(const ndf_exec *n)
{
    ndf_state s = atomic_load_explicit(&n->state, memory_order_acquire);
    if (state_final(s))
        return 100.0;
    if (!n->nkids)
        return 0.0;
    double sum = 0;
    for (size_t i = 0; i < n->nkids; i++)
        sum += progress_locked(n->kids[i]);
    return sum / (double)n->nkids;
}

double node_progress(ndf_exec *node)
{
    pthread_mutex_lock(&node->rec->lock);
    double p = progress_locked(node);
    pthread_mutex_unlock(&node->rec->lock);
    return p;
}

const char *state_name(ndf_state s)
{
    static const char *const names[] = {"PENDING",     "RUNNING",   "COMPLETED",
                                        "FAILED",      "SKIPPED",   "ROLLED_BACK",
                                        "CANCELLED",   "TIMED_OUT", "DEGRADED"};
    return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "UNKNOWN";
}

const char *node_kind_name(ndf_node_kind k)
{
    switch (k) {
    case NDF_NODE_PATTERN: return "pattern";
    case NDF_NODE_PHASE: return "phase";
    case NDF_NODE_TASK: return "task";
    case NDF_NODE_STEP: return "step";
    default: return "node";
    }
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        n = 2, min = 0x80, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0)
        n = 3, min = 0x800, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0)
        n = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return n;
}

void json_str(strbuf *sb, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_add(sb, "\"", 1);
    size_t i = 0, run = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        sb_add(sb, s + i - run, run);
        run = 0;
        if (c >= 0x80) {
            size_t n = utf8_len(p + i, len - i);
            if (n) {
                sb_add(sb, s + i, n);
                i += n;
            } else {
                sb_puts(sb, "\\ufffd");
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': sb_puts(sb, "\\\""); break;
        case '\\': sb_puts(sb, "\\\\"); break;
        case '\n': sb_puts(sb, "\\n"); break;
        case '\r': sb_puts(sb, "\\r"); break;
        case '\t': sb_puts(sb, "\\t"); break;
        default: sb_printf(sb, "\\u%04x", c); break;
        }
        i++;
    }
    sb_add(sb, s + i - run, run);
    sb_add(sb, "\"", 1);
}

static void json_num(strbuf *sb, double v)
{
    if (!isfinite(v))
        sb_puts(sb, "null");
    else
        sb_printf(sb, "%.6g", v);
}

static double node_duration(const ndf_exec *n, double now)
{
    if (n->start <= 0)
        return 0;
    return (n->end > 0 ? n->end : now) - n->start;
}

/* Caller holds the record lock. */
static void node_json(const ndf_exec *n, strbuf *sb, double now)
{
    ndf_state st = atomic_load_explicit(&n->state, memory_order_acquire);
    sb_puts(sb, "{\"kind\":");
    json_str(sb, node_kind_name(n->kind), strlen(node_kind_name(n->kind)));
    sb_puts(sb, ",\"name\":");
    json_str(sb, n->name, strlen(n->name));
    sb_printf(sb, ",\"state\":\"%s\"", state_name(st));
    if (n->start > 0) {
        sb_printf(sb, ",\"started\":%.3f", n->start_wall);
        sb_puts(sb, ",\"duration\":");
        json_num(sb, node_duration(n, now));
    }
    sb_puts(sb, ",\"progress\":");
    json_num(sb, progress_locked(n));
    if (n->message) {
        sb_puts(sb, ",\"message\":");
        json_str(sb, n->message, strlen(n->message));
    }
    static const char *const streams[] = {"stdout", "stderr", "log"};
    for (int i = 0; i < 3; i++) {
        const tailbuf *t = &n->out[i];
        if (!t->len && !t->dropped)
            continue;
        sb_printf(sb, ",\"%s\":", streams[i]);
        json_str(sb, t->buf ? t->buf : "", t->len);
        if (t->dropped)
            sb_printf(sb, ",\"%s_truncated\":%llu", streams[i], (unsigned long long)t->dropped);
    }
    if (n->nkids) {
        sb_puts(sb, ",\"children\":[");
        for (size_t i = 0; i < n->nkids; i++) {
            if (i)
                sb_add(sb, ",", 1);
            node_json(n->kids[i], sb, now);
        }
        sb_add(sb, "]", 1);
    }
    sb_add(sb, "}", 1);
}

void record_to_json(record *r, strbuf *sb)
{
    double now = now_mono();
    pthread_mutex_lock(&r->lock);
    int done = atomic_load(&r->done);
    sb_puts(sb, "{\"id\":");
    json_str(sb, r->id, strlen(r->id));
    sb_puts(sb, ",\"pattern\":");
    json_str(sb, r->root->name, strlen(r->root->name));
    sb_printf(sb, ",\"done\":%s", done ? "true" : "false");
    if (done) {
        const char *sn = ndf_status_name(r->status);
        sb_puts(sb, ",\"status\":");
        json_str(sb, sn, strlen(sn));
        sb_printf(sb, ",\"success\":%s", r->status == NDF_OK ? "true" : "false");
        if (r->error) {
            sb_puts(sb, ",\"error\":");
            json_str(sb, r->error, strlen(r->error));
        }
    }
    if (r->fallback_from) {
        sb_puts(sb, ",\"fallback_from\":");
        json_str(sb, r->fallback_from, strlen(r->fallback_from));
        sb_puts(sb, ",\"fallback_cause\":");
        json_str(sb, r->fallback_cause ? r->fallback_cause : "", strlen(r->fallback_cause ? r->fallback_cause : ""));
    }
    sb_puts(sb, ",\"context\":");
    context_to_json(r->ctx, sb);
    sb_printf(sb, ",\"started\":%.3f", r->start_wall);
    sb_puts(sb, ",\"duration\":");
    json_num(sb, (r->end > 0 ? r->end : now) - r->start);
    sb_puts(sb, ",\"root\":");
    node_json(r->root, sb, now);
    sb_add(sb, "}", 1);
    pthread_mutex_unlock(&r->lock);
}

static void node_text(const ndf_exec *n, strbuf *sb, int indent, double now)
{
    ndf_state st = atomic_load_explicit(&n->state, memory_order_acquire);
    sb_printf(sb, "%*s%-13s %s %s", indent * 2, "", state_name(st), node_kind_name(n->kind),
              n->name);
    if (n->start > 0)
        sb_printf(sb, "  %.3fs", node_duration(n, now));
    if (n->nkids && !state_final(st))
        sb_printf(sb, "  %.0f%%", progress_locked(n));
    if (n->message && *n->message)
        sb_printf(sb, "  (%s)", n->message);
    sb_add(sb, "\n", 1);
    for (size_t i = 0; i < n->nkids; i++)
        node_text(n->kids[i], sb, indent + 1, now);
}

void record_to_text(record *r, strbuf *sb)
{
    double now = now_mono();
    pthread_mutex_lock(&r->lock);
    node_text(r->root, sb, 0, now);
    pthread_mutex_unlock(&r->lock);
}
