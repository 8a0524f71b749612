/* Pattern storage: the JSON document of a pattern (cJSON), its gzip
 * encoding (zlib), atomic replacement with a backup rotation, checked loads
 * that fall back to the newest good backup, and the exports (CSV, libyaml).
 *
 * Every file is reached through openat() on the directory's descriptor with
 * a name built from a validated pattern name, so nothing can escape it. */
#include "build-config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <yaml.h>
#include <zlib.h>
#include <ndf/sdk.h>

#include "conf/config.h"
#include "model/pattern.h"
#include "exec/record.h"
#include "store/storage.h"

struct storage {
    char *dir;
    int dirfd;              /* -1 until the directory exists */
    storage_opts opts;
    pthread_mutex_t lock;   /* serializes this process's writers */
    int lock_depth;         /* nesting of lock_dir() under `lock` */
    int lock_fd;            /* the held flock, or -1 */
};

/* cJSON stores numbers as doubles: counters are exact up to 2^53 and lose
 * precision beyond (documented in ndf(1)). */
#define JSON_MAX_EXACT 9007199254740992.0

/* ------------------------------------------------------------------ */
/* records */

static void steps_free(history_step *st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(st[i].name);
        free(st[i].outcome);
    }
    free(st);
}

void history_entry_free(history_entry *e)
{
    if (!e)
        return;
    free(e->outcome);
    free(e->domain);
    free(e->error);
    steps_free(e->steps, e->nsteps);
    memset(e, 0, sizeof *e);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void history_entry_copy(history_entry *dst, const history_entry *src)
{
    *dst = *src;
    dst->outcome = dup_or_null(src->outcome);
    dst->domain = dup_or_null(src->domain);
    dst->error = dup_or_null(src->error);
    dst->steps = src->nsteps ? xcalloc(src->nsteps, sizeof *dst->steps) : NULL;
    for (size_t i = 0; i < src->nsteps; i++) {
        dst->steps[i] = src->steps[i];
        dst->steps[i].name = dup_or_null(src->steps[i].name);
        dst->steps[i].outcome = dup_or_null(src->steps[i].outcome);
    }
}

/* The learning state is plain data; these match learning_free() and
 * learning_copy() so that storage does not depend on the model's code. */
static void learn_free(learning_state *st)
{
    for (size_t i = 0; i < st->ndomains; i++)
        free(st->domains[i].domain);
    free(st->domains);
    st->domains = NULL;
    st->ndomains = 0;
}

static void learn_copy(learning_state *dst, const learning_state *src)
{
    *dst = *src;
    dst->domains = src->ndomains ? xcalloc(src->ndomains, sizeof *dst->domains) : NULL;
    for (size_t i = 0; i < src->ndomains; i++) {
        dst->domains[i] = src->domains[i];
        dst->domains[i].domain = xstrdup(src->domains[i].domain);
    }
}

void stored_pattern_free(stored_pattern *sp)
{
    if (!sp)
        return;
    free(sp->name);
    learn_free(&sp->learn);
    for (size_t i = 0; i < sp->nhistory; i++)
        history_entry_free(&sp->history[i]);
    free(sp->history);
    memset(sp, 0, sizeof *sp);
}

/* ------------------------------------------------------------------ */
/* JSON document */

static cJSON *add(cJSON *obj, const char *key, cJSON *item)
{
    if (!item || !cJSON_AddItemToObject(obj, key, item)) {
        /* cJSON only fails here on allocation */
        cJSON_Delete(item);
        fprintf(stderr, "ndf: out of memory\n");
        abort();
    }
    return item;
}

static void add_num(cJSON *obj, const char *key, double v)
{
    add(obj, key, cJSON_CreateNumber(isfinite(v) ? v : 0));
}

static void add_str(cJSON *obj, const char *key, const char *s)
{
    if (s)
        add(obj, key, cJSON_CreateString(s));
}

static cJSON *learning_to_json(const learning_state *l)
{
    cJSON *o = cJSON_CreateObject();
    add_num(o, "executions", (double)l->executions);
    add_num(o, "successes", (double)l->successes);
    add_num(o, "score", l->score);
    add_num(o, "alpha", l->alpha);
    add_num(o, "beta", l->beta);
    add(o, "converged", cJSON_CreateBool(l->converged));
    add_num(o, "last_used", l->last_used);
    add_num(o, "created", l->created);
    cJSON *d = add(o, "domains", cJSON_CreateArray());
    for (size_t i = 0; i < l->ndomains; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(d, e))
            abort();
        add_str(e, "domain", l->domains[i].domain);
        add_num(e, "executions", (double)l->domains[i].executions);
        add_num(e, "successes", (double)l->domains[i].successes);
    }
    return o;
}

static cJSON *entry_to_json(const history_entry *h)
{
    cJSON *o = cJSON_CreateObject();
    add_num(o, "time", h->time);
    add_num(o, "duration", h->duration_s);
    add(o, "success", cJSON_CreateBool(h->success));
    add_str(o, "outcome", h->outcome ? h->outcome : (h->success ? "succeeded" : "failed"));
    add_str(o, "domain", h->domain);
    add_str(o, "error", h->error);
    add_num(o, "confidence", h->confidence);
    add_num(o, "timeout", h->timeout_s);
    add_num(o, "cpu_time", h->cpu_s);
    add_num(o, "peak_rss_kb", (double)h->peak_rss_kb);
    cJSON *steps = add(o, "steps", cJSON_CreateArray());
    for (size_t i = 0; i < h->nsteps; i++) {
        const history_step *st = &h->steps[i];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(steps, e))
            abort();
        add_str(e, "name", st->name ? st->name : "");
        add_str(e, "outcome", st->outcome ? st->outcome : "");
        add_num(e, "duration", st->duration_s);
        add_num(e, "timeout", st->timeout_s);
    }
    return o;
}

static cJSON *record_to_cjson(const stored_pattern *sp)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        abort();
    add_num(root, "schema", STORAGE_SCHEMA);
    add_str(root, "name", sp->name);
    add_num(root, "saved", sp->saved);
    add(root, "learning", learning_to_json(&sp->learn));
    cJSON *h = add(root, "history", cJSON_CreateArray());
    for (size_t i = 0; i < sp->nhistory; i++) {
        cJSON *e = entry_to_json(&sp->history[i]);
        if (!cJSON_AddItemToArray(h, e))
            abort();
    }
    return root;
}

char *storage_to_json(const stored_pattern *sp, int pretty)
{
    cJSON *root = record_to_cjson(sp);
    char *text = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        abort();
    /* hand the caller memory from our own allocator */
    char *out = xstrdup(text);
    cJSON_free(text);
    return out;
}

/* Typed getters: each sets err_msg() naming the field on a bad value. */
static int get_number(const cJSON *obj, const char *key, const char *where, int required,
                      double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) {
        if (required)
            return err_set(NDF_ERR_INVALID, "missing field '%s%s'", where, key);
        return NDF_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return err_set(NDF_ERR_INVALID, "field '%s%s' is not a number", where, key);
    *out = it->valuedouble;
    return NDF_OK;
}

static int get_count(const cJSON *obj, const char *key, const char *where, int required,
                     uint64_t *out)
{
    double v = 0;
    int rc = get_number(obj, key, where, required, &v);
    if (rc)
        return rc;
    if (v < 0 || v != floor(v) || v > JSON_MAX_EXACT)
        return err_set(NDF_ERR_INVALID, "field '%s%s' is not a count (%g)", where, key, v);
    *out = (uint64_t)v;
    return NDF_OK;
}

static int get_bool(const cJSON *obj, const char *key, const char *where, int *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it)
        return NDF_OK;
    if (!cJSON_IsBool(it))
        return err_set(NDF_ERR_INVALID, "field '%s%s' is not a boolean", where, key);
    *out = cJSON_IsTrue(it);
    return NDF_OK;
}

static int get_string(const cJSON *obj, const char *key, const char *where, int required,
                      char **out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required)
            return err_set(NDF_ERR_INVALID, "missing field '%s%s'", where, key);
        return NDF_OK;
    }
    if (!cJSON_IsString(it))
        return err_set(NDF_ERR_INVALID, "field '%s%s' is not a string", where, key);
    *out = xstrdup(it->valuestring);
    return NDF_OK;
}

static int learning_from_json(const cJSON *o, learning_state *l)
{
    int rc;
    memset(l, 0, sizeof *l);
    if (!cJSON_IsObject(o))
        return err_set(NDF_ERR_INVALID, "field 'learning' is not an object");
    if ((rc = get_count(o, "executions", "learning.", 1, &l->executions)) ||
        (rc = get_count(o, "successes", "learning.", 1, &l->successes)) ||
        (rc = get_number(o, "score", "learning.", 1, &l->score)) ||
        (rc = get_number(o, "alpha", "learning.", 0, &l->alpha)) ||
        (rc = get_number(o, "beta", "learning.", 0, &l->beta)) ||
        (rc = get_bool(o, "converged", "learning.", &l->converged)) ||
        (rc = get_number(o, "last_used", "learning.", 0, &l->last_used)) ||
        (rc = get_number(o, "created", "learning.", 0, &l->created)))
        return rc;
    if (l->successes > l->executions)
        return err_set(NDF_ERR_INVALID, "learning.successes (%llu) exceeds executions (%llu)",
                       (unsigned long long)l->successes, (unsigned long long)l->executions);
    if (l->score < 0 || l->score > 1)
        return err_set(NDF_ERR_INVALID, "learning.score %g is outside 0..1", l->score);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "domains");
    if (!d)
        return NDF_OK;
    if (!cJSON_IsArray(d))
        return err_set(NDF_ERR_INVALID, "field 'learning.domains' is not an array");
    size_t n = (size_t)cJSON_GetArraySize(d);
    l->domains = n ? xcalloc(n, sizeof *l->domains) : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, d)
    {
        domain_count *dc = &l->domains[l->ndomains];
        if (!cJSON_IsObject(e))
            return err_set(NDF_ERR_INVALID, "learning.domains[%zu] is not an object",
                           l->ndomains);
        if ((rc = get_string(e, "domain", "learning.domains[].", 1, &dc->domain)))
            return rc;
        l->ndomains++;
        if ((rc = get_count(e, "executions", "learning.domains[].", 1, &dc->executions)) ||
            (rc = get_count(e, "successes", "learning.domains[].", 1, &dc->successes)))
            return rc;
    }
    return NDF_OK;
}

static int entry_from_json(const cJSON *o, size_t idx, history_entry *h)
{
    int rc;
    char where[48];
    memset(h, 0, sizeof *h);
    snprintf(where, sizeof where, "history[%zu].", idx);
    if (!cJSON_IsObject(o))
        return err_set(NDF_ERR_INVALID, "history[%zu] is not an object", idx);
    double rss = 0;
    if ((rc = get_number(o, "time", where, 1, &h->time)) ||
        (rc = get_number(o, "duration", where, 1, &h->duration_s)) ||
        (rc = get_bool(o, "success", where, &h->success)) ||
        (rc = get_string(o, "outcome", where, 1, &h->outcome)) ||
        (rc = get_string(o, "domain", where, 0, &h->domain)) ||
        (rc = get_string(o, "error", where, 0, &h->error)) ||
        (rc = get_number(o, "confidence", where, 0, &h->confidence)) ||
        (rc = get_number(o, "timeout", where, 0, &h->timeout_s)) ||
        (rc = get_number(o, "cpu_time", where, 0, &h->cpu_s)) ||
        (rc = get_number(o, "peak_rss_kb", where, 0, &rss)))
        return rc;
    h->peak_rss_kb = rss > 0 && rss < (double)LONG_MAX ? (long)rss : 0;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(o, "steps");
    if (!steps)
        return NDF_OK;
    if (!cJSON_IsArray(steps))
        return err_set(NDF_ERR_INVALID, "field '%ssteps' is not an array", where);
    size_t n = (size_t)cJSON_GetArraySize(steps);
    h->steps = n ? xcalloc(n, sizeof *h->steps) : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, steps)
    {
        history_step *st = &h->steps[h->nsteps++];
        snprintf(where, sizeof where, "history[%zu].steps[].", idx);
        if (!cJSON_IsObject(e))
            return err_set(NDF_ERR_INVALID, "history[%zu].steps[%zu] is not an object", idx,
                           h->nsteps - 1);
        if ((rc = get_string(e, "name", where, 1, &st->name)) ||
            (rc = get_string(e, "outcome", where, 1, &st->outcome)) ||
            (rc = get_number(e, "duration", where, 0, &st->duration_s)) ||
            (rc = get_number(e, "timeout", where, 0, &st->timeout_s)))
            return rc;
    }
    return NDF_OK;
}

static int record_from_cjson(const cJSON *root, stored_pattern *out)
{
    int rc;
    double schema = 0;
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(root))
        return err_set(NDF_ERR_INVALID, "the document is not a JSON object");
    if ((rc = get_number(root, "schema", "", 1, &schema)))
        return rc;
    if (schema != STORAGE_SCHEMA)
        return err_set(NDF_ERR_INVALID,
                       "unsupported schema version %g (this ndf reads version %d)", schema,
                       STORAGE_SCHEMA);
    if ((rc = get_string(root, "name", "", 1, &out->name)) ||
        (rc = get_number(root, "saved", "", 0, &out->saved)))
        goto fail;
    if ((rc = learning_from_json(cJSON_GetObjectItemCaseSensitive(root, "learning"),
                                 &out->learn)))
        goto fail;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "history");
    if (h) {
        if (!cJSON_IsArray(h)) {
            rc = err_set(NDF_ERR_INVALID, "field 'history' is not an array");
            goto fail;
        }
        size_t n = (size_t)cJSON_GetArraySize(h);
        out->history = n ? xcalloc(n, sizeof *out->history) : NULL;
        const cJSON *e;
        cJSON_ArrayForEach(e, h)
        {
            rc = entry_from_json(e, out->nhistory, &out->history[out->nhistory]);
            out->nhistory++;
            if (rc)
                goto fail;
        }
    }
    return NDF_OK;
fail:
    stored_pattern_free(out);
    return rc;
}

int storage_from_json(const char *text, size_t len, stored_pattern *out)
{
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        return err_set(NDF_ERR_INVALID, "invalid JSON at byte %zu", off);
    }
    /* trailing bytes mean a damaged file, not a second document */
    while (end && (size_t)(end - text) < len && (*end == ' ' || *end == '\n' ||
                                                 *end == '\t' || *end == '\r'))
        end++;
    if (end && (size_t)(end - text) < len && *end) {
        size_t off = (size_t)(end - text);
        cJSON_Delete(root);
        return err_set(NDF_ERR_INVALID, "invalid JSON: trailing data at byte %zu", off);
    }
    int rc = record_from_cjson(root, out);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ */
/* gzip */

static int gzip_encode(const char *in, size_t len, int level, unsigned char **out,
                       size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (len > STORAGE_MAX_DOCUMENT)
        return err_set(NDF_ERR_RESOURCE, "document of %zu bytes exceeds the %zu byte limit",
                       len, STORAGE_MAX_DOCUMENT);
    /* windowBits 15 + 16: a gzip header and trailer, so zcat reads the file */
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return err_set(NDF_ERR_IO, "zlib: deflateInit2 failed (level %d)", level);
    /* deflateBound() is enough for a single Z_FINISH call */
    size_t cap = deflateBound(&z, (uLong)len);
    unsigned char *buf = xmalloc(cap);
    z.next_in = (unsigned char *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    if (zr != Z_STREAM_END) {
        deflateEnd(&z);
        free(buf);
        return err_set(NDF_ERR_IO, "zlib: deflate failed (%d)", zr);
    }
    *outlen = cap - z.avail_out;
    deflateEnd(&z);
    *out = buf;
    return NDF_OK;
}

/* Inflates one gzip member, verifying its CRC and length, refusing more
 * than `max` bytes of output and anything after the member. */
static int gzip_decode(const unsigned char *in, size_t len, size_t max, char **out,
                       size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (len > UINT_MAX)
        return err_set(NDF_ERR_INVALID, "compressed file too large");
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return err_set(NDF_ERR_IO, "zlib: inflateInit2 failed");
    /* one byte beyond the limit tells "at the limit" from "beyond it" */
    size_t cap = len * 8 + 1024;
    if (cap > max + 1)
        cap = max + 1;
    char *buf = xmalloc(cap);
    size_t used = 0;
    int rc = NDF_OK;
    z.next_in = (unsigned char *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    for (;;) {
        if (used == cap) {
            if (cap > max) {
                rc = err_set(NDF_ERR_INVALID,
                             "decompresses to more than %zu bytes (the limit)", max);
                goto done;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap);
        }
        z.next_out = (unsigned char *)buf + used;
        z.avail_out = (uInt)(cap - used);
        int zr = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_OK)
            continue;
        if (zr == Z_BUF_ERROR && z.avail_out != 0) {
            rc = err_set(NDF_ERR_INVALID, "truncated gzip data (%zu bytes, no end of stream)",
                         len);
            goto done;
        }
        if (zr == Z_BUF_ERROR)
            continue;
        const char *m = z.msg ? z.msg : "invalid compressed data";
        if (strcmp(m, "incorrect data check") == 0)
            rc = err_set(NDF_ERR_INVALID, "gzip CRC mismatch (%s)", m);
        else if (strcmp(m, "incorrect length check") == 0)
            rc = err_set(NDF_ERR_INVALID, "gzip length mismatch (%s)", m);
        else
            rc = err_set(NDF_ERR_INVALID, "corrupt gzip data (%s)", m);
        goto done;
    }
    if (used > max) {
        rc = err_set(NDF_ERR_INVALID, "decompresses to more than %zu bytes (the limit)", max);
        goto done;
    }
    if (z.avail_in) {
        rc = err_set(NDF_ERR_INVALID, "%u bytes of trailing data after the gzip stream",
                     z.avail_in);
        goto done;
    }
    *outlen = used;
done:
    inflateEnd(&z);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return NDF_OK;
}

/* ------------------------------------------------------------------ */
/* files */

static const char *ext_of(int compression)
{
    return compression ? ".json.gz" : ".json";
}

/* A pattern name that may become a file name: name_valid() (so no '/', no
 * NUL, no leading dot), checked here once more because this is where a bad
 * name would escape the directory. */
static int check_name(const char *name)
{
    if (!name || !name_valid(name) || strchr(name, '/') || name[0] == '.' ||
        strlen(name) > 128)
        return err_set(NDF_ERR_INVALID,
                       "'%s': not a valid pattern name for storage "
                       "([A-Za-z0-9_.-], 1..128 characters, no leading dot)",
                       name ? name : "(null)");
    return NDF_OK;
}

static int mkdirs(const char *path)
{
    char *p = xstrdup(path);
    int rc = NDF_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = err_set(NDF_ERR_IO, "cannot create storage directory %s: %s", p,
                         strerror(errno));
            break;
        }
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return rc;
}

/* Opens the directory, creating it when `create`.  NDF_ERR_NOT_FOUND when it
 * does not exist and !create. */
static int ensure_dir(storage *s, int create)
{
    if (s->dirfd >= 0)
        return NDF_OK;
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (!create)
            return err_set(NDF_ERR_NOT_FOUND, "storage directory %s does not exist", s->dir);
        int rc = mkdirs(s->dir);
        if (rc)
            return rc;
        fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0)
        return err_set(NDF_ERR_IO, "cannot open storage directory %s: %s", s->dir,
                       strerror(errno));
    s->dirfd = fd;
    return NDF_OK;
}

/* Cross-process lock around a read-modify-write (flock on <dir>/.lock),
 * taken with s->lock held.  When locking is impossible (a read-only
 * directory) only this process's mutex protects, which is all a reader
 * that cannot write needs. */
static void lock_dir(storage *s)
{
    /* a second open of .lock would be a second flock owner: nest instead */
    if (s->lock_depth++ > 0)
        return;
    s->lock_fd = -1;
    int fd = openat(s->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return;
        }
    }
    s->lock_fd = fd;
}

static void unlock_dir(storage *s)
{
    if (--s->lock_depth > 0)
        return;
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    s->lock_fd = -1;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes `data` to `fname` atomically: a new temporary file in the same
 * directory, fsync, optional rotation of the old file into the backups,
 * rename, fsync of the directory. */
static int write_atomic(storage *s, const char *fname, const void *data, size_t len,
                        int rotate)
{
    char tmp[256];
    int fd = -1;
    for (int tries = 0; tries < 100 && fd < 0; tries++) {
        unsigned int r;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = (unsigned int)rand() ^ (unsigned int)getpid() ^ (unsigned int)tries;
        snprintf(tmp, sizeof tmp, ".%s.tmp-%08x", fname, r);
        fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST)
            return err_set(NDF_ERR_IO, "cannot create %s/%s: %s", s->dir, tmp, strerror(errno));
    }
    if (fd < 0)
        return err_set(NDF_ERR_IO, "cannot create a temporary file in %s", s->dir);
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlinkat(s->dirfd, tmp, 0);
        return err_set(NDF_ERR_IO, "cannot write %s/%s: %s", s->dir, tmp, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlinkat(s->dirfd, tmp, 0);
        return err_set(NDF_ERR_IO, "cannot write %s/%s: %s", s->dir, tmp, strerror(e));
    }
    if (rotate && s->opts.backups > 0) {
        char from[300], to[300];
        struct stat st;
        if (fstatat(s->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            for (int i = s->opts.backups - 1; i >= 1; i--) {
                snprintf(from, sizeof from, "%s.%d", fname, i);
                snprintf(to, sizeof to, "%s.%d", fname, i + 1);
                if (renameat(s->dirfd, from, s->dirfd, to) != 0 && errno != ENOENT)
                    log_msg(NDF_LOG_WARN, "%s/%s: cannot rotate backup: %s", s->dir, from,
                            strerror(errno));
            }
            snprintf(to, sizeof to, "%s.1", fname);
            unlinkat(s->dirfd, to, 0);
            /* a hard link keeps the current file in place until the rename */
            if (linkat(s->dirfd, fname, s->dirfd, to, 0) != 0 &&
                renameat(s->dirfd, fname, s->dirfd, to) != 0)
                log_msg(NDF_LOG_WARN, "%s/%s: cannot keep a backup: %s", s->dir, fname,
                        strerror(errno));
        }
    }
    if (renameat(s->dirfd, tmp, s->dirfd, fname) != 0) {
        int e = errno;
        unlinkat(s->dirfd, tmp, 0);
        return err_set(NDF_ERR_IO, "cannot replace %s/%s: %s", s->dir, fname, strerror(e));
    }
    if (fsync(s->dirfd) != 0)
        return err_set(NDF_ERR_IO, "cannot sync directory %s: %s", s->dir, strerror(errno));
    return NDF_OK;
}

/* Reads a whole file through the directory fd, refusing non-regular files
 * and files larger than the document limit. */
static int read_file(storage *s, const char *fname, unsigned char **out, size_t *len)
{
    /* O_NONBLOCK: a FIFO planted in the directory must not hang the open;
     * it is refused as not regular below (regular files ignore the flag) */
    int fd = openat(s->dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return NDF_ERR_NOT_FOUND;
        return err_set(NDF_ERR_IO, "cannot open: %s", strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(NDF_ERR_INVALID, "not a regular file");
    }
    if ((uint64_t)st.st_size > STORAGE_MAX_DOCUMENT) {
        close(fd);
        return err_set(NDF_ERR_INVALID, "file of %lld bytes exceeds the %zu byte limit",
                       (long long)st.st_size, STORAGE_MAX_DOCUMENT);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    unsigned char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap > STORAGE_MAX_DOCUMENT) {
                free(buf);
                close(fd);
                return err_set(NDF_ERR_INVALID, "file exceeds the %zu byte limit",
                               STORAGE_MAX_DOCUMENT);
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            return err_set(NDF_ERR_IO, "read error: %s", strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = n;
    return NDF_OK;
}

/* Decodes file bytes (gzip by its magic, else plain JSON) into a record
 * and checks that it belongs to `name`. */
static int decode(const char *name, const unsigned char *data, size_t len, stored_pattern *out)
{
    int rc;
    char *doc = NULL;
    size_t doclen = 0;
    if (len == 0)
        return err_set(NDF_ERR_INVALID, "empty file");
    if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        rc = gzip_decode(data, len, STORAGE_MAX_DOCUMENT, &doc, &doclen);
        if (rc)
            return rc;
        rc = storage_from_json(doc, doclen, out);
        free(doc);
    } else {
        rc = storage_from_json((const char *)data, len, out);
    }
    if (rc)
        return rc;
    if (strcmp(out->name, name) != 0) {
        rc = err_set(NDF_ERR_INVALID, "holds pattern '%s', not '%s'", out->name, name);
        stored_pattern_free(out);
    }
    return rc;
}

static int encode(storage *s, const stored_pattern *sp, unsigned char **out, size_t *len)
{
    char *json = storage_to_json(sp, 0);
    size_t jl = strlen(json);
    if (jl >= STORAGE_MAX_DOCUMENT) {
        free(json);
        /* a file that loads would refuse must not replace a good one */
        return err_set(NDF_ERR_RESOURCE,
                       "pattern '%s': document of %zu bytes exceeds the %zu byte limit "
                       "(lower storage.history_limit)",
                       sp->name, jl, STORAGE_MAX_DOCUMENT);
    }
    if (!s->opts.compression) {
        json[jl] = '\n';
        *out = (unsigned char *)json;
        /* strlen's NUL became the newline; the buffer holds jl+1 bytes */
        *len = jl + 1;
        return NDF_OK;
    }
    int rc = gzip_encode(json, jl, s->opts.level, out, len);
    free(json);
    return rc;
}

/* Moves a corrupt file aside as <fname>.corrupt-<UTC time>[-n]. */
static void quarantine(storage *s, const char *fname)
{
    char stamp[32], to[400];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(to, sizeof to, "%s.corrupt-%s", fname, stamp);
        else
            snprintf(to, sizeof to, "%s.corrupt-%s-%d", fname, stamp, i);
        struct stat st;
        if (fstatat(s->dirfd, to, &st, AT_SYMLINK_NOFOLLOW) == 0)
            continue;
        if (renameat(s->dirfd, fname, s->dirfd, to) == 0) {
            if (!s->opts.quiet)
                log_msg(NDF_LOG_WARN, "%s/%s: kept aside as %s", s->dir, fname, to);
        } else if (!s->opts.quiet) {
            log_msg(NDF_LOG_WARN, "%s/%s: cannot move aside: %s", s->dir, fname,
                    strerror(errno));
        }
        return;
    }
}

/* Loads `name` with the fallback to backups; called with the locks held
 * (or from a reader that may take the directory lock for a recovery). */
static int load_locked(storage *s, const char *name, stored_pattern *out, int *found_any)
{
    char fname[256], bname[300];
    int rc;
    *found_any = 0;
    memset(out, 0, sizeof *out);
    rc = ensure_dir(s, 0);
    if (rc == NDF_ERR_NOT_FOUND)
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    if (rc)
        return rc;

    /* the configured extension first, then the other one (compression may
     * have been switched since the file was written) */
    int primary_bad = 0;
    char badreason[512] = "";
    char badfile[256] = "";
    for (int pass = 0; pass < 2; pass++) {
        int comp = pass == 0 ? s->opts.compression : !s->opts.compression;
        snprintf(fname, sizeof fname, "%s%s", name, ext_of(comp));
        unsigned char *data;
        size_t len;
        rc = read_file(s, fname, &data, &len);
        if (rc == NDF_ERR_NOT_FOUND)
            continue;
        *found_any = 1;
        if (rc == NDF_OK) {
            rc = decode(name, data, len, out);
            free(data);
            if (rc == NDF_OK)
                return NDF_OK;
        }
        if (rc == NDF_ERR_IO) {
            /* an I/O error is not corruption: do not touch the file */
            return err_prefix(rc, "%s/%s", s->dir, fname);
        }
        primary_bad = 1;
        snprintf(badreason, sizeof badreason, "%s", err_msg());
        snprintf(badfile, sizeof badfile, "%s", fname);
        if (!s->opts.quiet)
            log_msg(NDF_LOG_WARN, "%s/%s: %s", s->dir, fname, badreason);
        /* keep it for inspection rather than let the restore overwrite it */
        lock_dir(s);
        quarantine(s, fname);
        unlock_dir(s);
        break;
    }

    /* the newest good backup (of either extension) */
    for (int i = 1; i <= (s->opts.backups > 0 ? s->opts.backups : 0) + 1 && i <= 100; i++) {
        for (int pass = 0; pass < 2; pass++) {
            int comp = pass == 0 ? s->opts.compression : !s->opts.compression;
            snprintf(fname, sizeof fname, "%s%s", name, ext_of(comp));
            snprintf(bname, sizeof bname, "%s.%d", fname, i);
            unsigned char *data;
            size_t len;
            rc = read_file(s, bname, &data, &len);
            if (rc == NDF_ERR_NOT_FOUND)
                continue;
            *found_any = 1;
            if (rc == NDF_OK) {
                rc = decode(name, data, len, out);
                if (rc == NDF_OK) {
                    if (!s->opts.quiet) {
                        if (primary_bad)
                            log_msg(NDF_LOG_WARN, "%s/%s: using backup %s instead", s->dir,
                                    badfile, bname);
                        else
                            log_msg(NDF_LOG_WARN, "%s/%s is missing; using backup %s", s->dir,
                                    fname, bname);
                    }
                    /* put the good copy back in place, so the next load is
                     * quiet; a failure here (read-only directory) is fine */
                    lock_dir(s);
                    struct stat st;
                    if (fstatat(s->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
                        write_atomic(s, fname, data, len, 0) != NDF_OK && !s->opts.quiet)
                        log_msg(NDF_LOG_WARN, "%s", err_msg());
                    unlock_dir(s);
                    free(data);
                    return NDF_OK;
                }
                free(data);
            }
            if (!s->opts.quiet)
                log_msg(NDF_LOG_WARN, "%s/%s: %s", s->dir, bname, err_msg());
        }
    }
    if (!*found_any)
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    if (primary_bad)
        return err_set(NDF_ERR_IO, "%s/%s: %s; no good backup", s->dir, badfile, badreason);
    return err_set(NDF_ERR_IO, "pattern '%s': no readable copy in %s", name, s->dir);
}

static int save_locked(storage *s, stored_pattern *sp)
{
    char fname[256];
    unsigned char *data = NULL;
    size_t len = 0;
    /* history_limit: keep the newest */
    if (s->opts.history_limit >= 0 && sp->nhistory > (size_t)s->opts.history_limit) {
        size_t drop = sp->nhistory - (size_t)s->opts.history_limit;
        for (size_t i = 0; i < drop; i++)
            history_entry_free(&sp->history[i]);
        memmove(sp->history, sp->history + drop, (sp->nhistory - drop) * sizeof *sp->history);
        sp->nhistory -= drop;
    }
    sp->saved = now_wall();
    int rc = encode(s, sp, &data, &len);
    if (rc)
        return rc;
    snprintf(fname, sizeof fname, "%s%s", sp->name, ext_of(s->opts.compression));
    rc = write_atomic(s, fname, data, len, 1);
    free(data);
    return rc;
}

/* ------------------------------------------------------------------ */
/* API */

char *storage_default_dir(void)
{
    const char *e = getenv("NDF_STATE_DIR");
    if (e && *e)
        return xstrdup(e);
    e = getenv("XDG_STATE_HOME");
    if (e && *e == '/')
        return xasprintf("%s/ndf", e);
    e = getenv("HOME");
    if (e && *e == '/')
        return xasprintf("%s/.local/state/ndf", e);
    err_set(NDF_ERR_INVALID,
            "no storage directory: set storage.path, NDF_STATE_DIR, XDG_STATE_HOME or HOME");
    return NULL;
}

int storage_open(const char *dir, const storage_opts *opts, storage **out)
{
    char *d = dir && *dir ? xstrdup(dir) : storage_default_dir();
    if (!d)
        return NDF_ERR_INVALID;
    if (d[0] != '/') {
        /* relative paths would change meaning with the working directory */
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            free(d);
            return err_set(NDF_ERR_IO, "cannot resolve storage directory: %s",
                           strerror(errno));
        }
        char *abs = xasprintf("%s/%s", cwd, d);
        free(d);
        d = abs;
    }
    size_t l = strlen(d);
    while (l > 1 && d[l - 1] == '/')
        d[--l] = 0;
    storage *s = xcalloc(1, sizeof *s);
    s->dir = d;
    s->dirfd = -1;
    if (opts) {
        s->opts = *opts;
    } else {
        s->opts.compression = 1;
        s->opts.level = 6;
        s->opts.backups = 5;
        s->opts.history_limit = 1000;
    }
    if (s->opts.level < 1 || s->opts.level > 9)
        s->opts.level = Z_DEFAULT_COMPRESSION == -1 ? 6 : s->opts.level;
    if (s->opts.backups < 0)
        s->opts.backups = 0;
    if (s->opts.backups > 100)
        s->opts.backups = 100;
    pthread_mutex_init(&s->lock, NULL);
    int rc = ensure_dir(s, 0);
    if (rc && rc != NDF_ERR_NOT_FOUND) {
        storage_close(s);
        return rc;
    }
    err_clear();
    *out = s;
    return NDF_OK;
}

void storage_close(storage *s)
{
    if (!s)
        return;
    if (s->dirfd >= 0)
        close(s->dirfd);
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
}

const char *storage_dir(const storage *s)
{
    return s->dir;
}

int storage_save_pattern(storage *s, const char *name, const learning_state *learn,
                         const history_entry *hist, size_t nhist)
{
    int rc = check_name(name);
    if (rc)
        return rc;
    stored_pattern sp = {0};
    sp.name = xstrdup(name);
    learn_copy(&sp.learn, learn);
    size_t first = 0;
    if (s->opts.history_limit >= 0 && nhist > (size_t)s->opts.history_limit)
        first = nhist - (size_t)s->opts.history_limit;
    sp.nhistory = nhist - first;
    sp.history = sp.nhistory ? xcalloc(sp.nhistory, sizeof *sp.history) : NULL;
    for (size_t i = 0; i < sp.nhistory; i++)
        history_entry_copy(&sp.history[i], &hist[first + i]);

    pthread_mutex_lock(&s->lock);
    rc = ensure_dir(s, 1);
    if (rc == NDF_OK) {
        lock_dir(s);
        rc = save_locked(s, &sp);
        unlock_dir(s);
    }
    pthread_mutex_unlock(&s->lock);
    stored_pattern_free(&sp);
    return rc;
}

int storage_load_pattern(storage *s, const char *name, stored_pattern *out)
{
    int rc = check_name(name);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    int any;
    pthread_mutex_lock(&s->lock);
    rc = load_locked(s, name, out, &any);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Read-modify-write under both locks.  `fn` edits the record (a fresh one
 * when nothing is stored). */
static int update(storage *s, const char *name,
                  void (*fn)(stored_pattern *sp, const void *arg), const void *arg)
{
    int rc = check_name(name);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    rc = ensure_dir(s, 1);
    if (rc) {
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    lock_dir(s);
    stored_pattern sp;
    int any;
    rc = load_locked(s, name, &sp, &any);
    if (rc == NDF_ERR_NOT_FOUND) {
        memset(&sp, 0, sizeof sp);
        sp.name = xstrdup(name);
        sp.learn.score = 0.5;
        rc = NDF_OK;
    }
    if (rc == NDF_OK) {
        fn(&sp, arg);
        rc = save_locked(s, &sp);
    } else {
        rc = err_prefix(rc, "not saving pattern '%s' over an unreadable record", name);
    }
    stored_pattern_free(&sp);
    unlock_dir(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

typedef struct append_arg {
    const history_entry *e;
    const learning_state *learn;
} append_arg;

static void do_append(stored_pattern *sp, const void *varg)
{
    const append_arg *a = varg;
    if (a->e) {
        sp->history = xrealloc(sp->history, (sp->nhistory + 1) * sizeof *sp->history);
        history_entry_copy(&sp->history[sp->nhistory++], a->e);
    }
    if (a->learn) {
        learn_free(&sp->learn);
        learn_copy(&sp->learn, a->learn);
    }
}

int storage_append_history(storage *s, const char *name, const history_entry *e,
                           const learning_state *learn)
{
    append_arg a = {e, learn};
    return update(s, name, do_append, &a);
}

int storage_save_learning(storage *s, const char *name, const learning_state *learn)
{
    append_arg a = {NULL, learn};
    return update(s, name, do_append, &a);
}

/* Splits a directory entry into the pattern name it belongs to.  Returns
 * 1 and the name length for <name>.json[.gz][.N | .corrupt-*]. */
static int classify(const char *fname, size_t *namelen)
{
    if (fname[0] == '.')
        return 0;
    int found = 0;
    for (const char *p = strstr(fname, ".json"); p; p = strstr(p + 1, ".json")) {
        const char *rest = p + 5;
        if (strncmp(rest, ".gz", 3) == 0 && (rest[3] == 0 || rest[3] == '.'))
            rest += 3;
        int ok = 0;
        if (*rest == 0) {
            ok = 1;
        } else if (rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9') {
            ok = 1;
            for (const char *q = rest + 1; *q; q++)
                if (*q < '0' || *q > '9')
                    ok = 0;
        } else if (strncmp(rest, ".corrupt-", 9) == 0) {
            ok = 1;
        }
        if (ok && p > fname) {
            *namelen = (size_t)(p - fname);
            found = 1;
        }
    }
    return found;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists directory entries; calls fn(fname, namelen) for each. */
static int scan(storage *s, void (*fn)(storage *s, const char *fname, size_t nl, void *arg),
                void *arg)
{
    int fd = dup(s->dirfd);
    if (fd < 0)
        return err_set(NDF_ERR_IO, "%s: %s", s->dir, strerror(errno));
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return err_set(NDF_ERR_IO, "%s: %s", s->dir, strerror(errno));
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl;
        if (classify(de->d_name, &nl) || de->d_name[0] == '.')
            fn(s, de->d_name, classify(de->d_name, &nl) ? nl : 0, arg);
    }
    closedir(d);
    return NDF_OK;
}

typedef struct name_set {
    char **names;
    size_t n, cap;
} name_set;

static void collect_name(storage *s, const char *fname, size_t nl, void *arg)
{
    name_set *ns = arg;
    if (!nl || fname[0] == '.' || strstr(fname, ".corrupt-"))
        return;
    char *name = xstrndup(fname, nl);
    if (!name_valid(name)) {
        free(name);
        return;
    }
    for (size_t i = 0; i < ns->n; i++) {
        if (strcmp(ns->names[i], name) == 0) {
            free(name);
            return;
        }
    }
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 16;
        ns->names = xrealloc(ns->names, ns->cap * sizeof *ns->names);
    }
    ns->names[ns->n++] = name;
}

int storage_list(storage *s, char ***names, size_t *n)
{
    name_set ns = {0};
    *names = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    int rc = ensure_dir(s, 0);
    if (rc == NDF_ERR_NOT_FOUND) {
        pthread_mutex_unlock(&s->lock);
        return NDF_OK;
    }
    if (rc == NDF_OK)
        rc = scan(s, collect_name, &ns);
    pthread_mutex_unlock(&s->lock);
    if (rc) {
        for (size_t i = 0; i < ns.n; i++)
            free(ns.names[i]);
        free(ns.names);
        return rc;
    }
    if (ns.n)
        qsort(ns.names, ns.n, sizeof *ns.names, cmp_str);
    *names = ns.names;
    *n = ns.n;
    return NDF_OK;
}

int storage_exists(storage *s, const char *name)
{
    if (check_name(name))
        return 0;
    char **names;
    size_t n;
    int found = 0;
    if (storage_list(s, &names, &n) != NDF_OK)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0)
            found = 1;
        free(names[i]);
    }
    free(names);
    return found;
}

typedef struct remove_arg {
    const char *name;
    int removed;
    int failed;
} remove_arg;

static void remove_one(storage *s, const char *fname, size_t nl, void *arg)
{
    remove_arg *ra = arg;
    if (!nl || strlen(ra->name) != nl || strncmp(fname, ra->name, nl) != 0)
        return;
    if (unlinkat(s->dirfd, fname, 0) == 0)
        ra->removed++;
    else
        ra->failed = errno;
}

int storage_remove(storage *s, const char *name)
{
    int rc = check_name(name);
    if (rc)
        return rc;
    remove_arg ra = {name, 0, 0};
    pthread_mutex_lock(&s->lock);
    rc = ensure_dir(s, 0);
    if (rc == NDF_OK) {
        lock_dir(s);
        rc = scan(s, remove_one, &ra);
        if (rc == NDF_OK && ra.removed)
            fsync(s->dirfd);
        unlock_dir(s);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc && rc != NDF_ERR_NOT_FOUND)
        return rc;
    if (ra.failed)
        return err_set(NDF_ERR_IO, "cannot remove the stored state of '%s' in %s: %s", name,
                       s->dir, strerror(ra.failed));
    if (!ra.removed)
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    return NDF_OK;
}

typedef struct sweep_arg {
    double min_age, now;
    int removed;
} sweep_arg;

static void sweep_one(storage *s, const char *fname, size_t nl, void *arg)
{
    sweep_arg *sa = arg;
    int is_tmp = fname[0] == '.' && strstr(fname, ".tmp-") != NULL;
    int is_corrupt = nl && strstr(fname + nl, ".corrupt-") != NULL;
    if (!is_tmp && !is_corrupt)
        return;
    struct stat st;
    if (fstatat(s->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return;
    double mtime = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
    if (sa->now - mtime < sa->min_age)
        return;
    if (unlinkat(s->dirfd, fname, 0) == 0) {
        sa->removed++;
        log_msg(NDF_LOG_INFO, "removed %s/%s", s->dir, fname);
    }
}

int storage_sweep(storage *s, double min_age_s, double now)
{
    sweep_arg sa = {min_age_s, now, 0};
    pthread_mutex_lock(&s->lock);
    int rc = ensure_dir(s, 0);
    if (rc == NDF_OK) {
        lock_dir(s);
        rc = scan(s, sweep_one, &sa);
        unlock_dir(s);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == NDF_ERR_NOT_FOUND)
        return 0;
    return rc ? rc : sa.removed;
}

/* ------------------------------------------------------------------ */
/* exports */

int export_format_parse(const char *name, export_format *out)
{
    if (strcmp(name, "json") == 0)
        *out = EXPORT_JSON;
    else if (strcmp(name, "csv") == 0)
        *out = EXPORT_CSV;
    else if (strcmp(name, "yaml") == 0)
        *out = EXPORT_YAML;
    else
        return -1;
    return 0;
}

/* Shortest "%g" form that reads back as the same double. */
static void fmt_num(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        v = 0;
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void csv_field(strbuf *sb, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n") && s[0] != ' ' && (s[0] == 0 || s[strlen(s) - 1] != ' ')) {
        sb_puts(sb, s);
        return;
    }
    sb_add(sb, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            sb_add(sb, "\"\"", 2);
        else
            sb_add(sb, p, 1);
    }
    sb_add(sb, "\"", 1);
}

static void csv_num(strbuf *sb, double v)
{
    char b[40];
    fmt_num(b, sizeof b, v);
    sb_puts(sb, b);
}

/* A stored time outside years 1..9999 (a damaged or hand-written file) has
 * no ISO form: the column stays empty rather than overflow time_t. */
static void iso_time(char *buf, size_t n, double t)
{
    struct tm tm;
    buf[0] = '\0';
    if (!(t >= -62135596800.0 && t < 253402300800.0))
        return;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        buf[0] = '\0';
}

/* The CSV columns, documented in ndf(1). */
static const char csv_header[] =
    "pattern,time,time_utc,duration_ms,success,outcome,domain,confidence,timeout_s,"
    "cpu_time_s,peak_rss_kb,steps,error";

static void export_csv(const stored_pattern *sp, strbuf *sb)
{
    sb_puts(sb, csv_header);
    sb_puts(sb, "\r\n");
    for (size_t i = 0; i < sp->nhistory; i++) {
        const history_entry *h = &sp->history[i];
        char t[40];
        csv_field(sb, sp->name);
        sb_puts(sb, ",");
        csv_num(sb, h->time);
        sb_puts(sb, ",");
        iso_time(t, sizeof t, h->time);
        sb_puts(sb, t);
        sb_puts(sb, ",");
        csv_num(sb, h->duration_s * 1000.0);
        sb_puts(sb, h->success ? ",true," : ",false,");
        csv_field(sb, h->outcome);
        sb_puts(sb, ",");
        csv_field(sb, h->domain);
        sb_puts(sb, ",");
        csv_num(sb, h->confidence);
        sb_puts(sb, ",");
        csv_num(sb, h->timeout_s);
        sb_puts(sb, ",");
        csv_num(sb, h->cpu_s);
        sb_puts(sb, ",");
        csv_num(sb, (double)h->peak_rss_kb);
        sb_puts(sb, ",");
        /* steps as name=outcome:milliseconds, separated by ';' */
        strbuf st;
        sb_init(&st);
        for (size_t k = 0; k < h->nsteps; k++) {
            char d[40];
            fmt_num(d, sizeof d, h->steps[k].duration_s * 1000.0);
            sb_printf(&st, "%s%s=%s:%s", k ? ";" : "", h->steps[k].name,
                      h->steps[k].outcome, d);
        }
        char *steps = sb_steal(&st);
        csv_field(sb, steps);
        free(steps);
        sb_puts(sb, ",");
        csv_field(sb, h->error);
        sb_puts(sb, "\r\n");
    }
}

/* libyaml emitter output into a strbuf. */
static int yaml_write(void *data, unsigned char *buffer, size_t size)
{
    sb_add(data, (const char *)buffer, size);
    return 1;
}

typedef struct yemit {
    yaml_emitter_t em;
    int failed;
} yemit;

static void y_event(yemit *y, yaml_event_t *ev, int ok)
{
    if (y->failed)
        return;
    if (!ok || !yaml_emitter_emit(&y->em, ev))
        y->failed = 1;
}

static void y_scalar(yemit *y, const char *s, int plain)
{
    yaml_event_t ev;
    /* libyaml refuses invalid UTF-8, which a stored error message (a step's
     * output) may hold: write U+FFFD for the bad bytes, as the JSON writer
     * does, rather than fail the whole export. */
    char *fixed = NULL;
    if (!utf8_valid(s, strlen(s)))
        s = fixed = utf8_repair(s);
    /* strings are double-quoted so that "yes", "1.0" or "null" stay strings */
    int ok = yaml_scalar_event_initialize(
        &ev, NULL, NULL, (yaml_char_t *)(uintptr_t)s, (int)strlen(s), plain, !plain,
        plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    free(fixed);
    y_event(y, &ev, ok);
}

static void y_key_str(yemit *y, const char *k, const char *v)
{
    y_scalar(y, k, 1);
    if (v)
        y_scalar(y, v, 0);
    else
        y_scalar(y, "null", 1);
}

static void y_key_num(yemit *y, const char *k, double v)
{
    char b[40];
    fmt_num(b, sizeof b, v);
    y_scalar(y, k, 1);
    y_scalar(y, b, 1);
}

static void y_key_bool(yemit *y, const char *k, int v)
{
    y_scalar(y, k, 1);
    y_scalar(y, v ? "true" : "false", 1);
}

static void y_map(yemit *y, int start)
{
    yaml_event_t ev;
    int ok = start ? yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                         YAML_BLOCK_MAPPING_STYLE)
                   : yaml_mapping_end_event_initialize(&ev);
    y_event(y, &ev, ok);
}

static void y_seq(yemit *y, int start)
{
    yaml_event_t ev;
    int ok = start ? yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                          YAML_BLOCK_SEQUENCE_STYLE)
                   : yaml_sequence_end_event_initialize(&ev);
    y_event(y, &ev, ok);
}

static int export_yaml(const stored_pattern *sp, strbuf *sb)
{
    yemit y = {0};
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&y.em))
        return err_set(NDF_ERR_IO, "libyaml: cannot initialize the emitter");
    yaml_emitter_set_output(&y.em, yaml_write, sb);
    yaml_emitter_set_unicode(&y.em, 1);
    yaml_emitter_set_width(&y.em, -1);
    y_event(&y, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    y_event(&y, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0));
    y_map(&y, 1);
    y_key_num(&y, "schema", STORAGE_SCHEMA);
    y_key_str(&y, "name", sp->name);
    y_key_num(&y, "saved", sp->saved);
    y_scalar(&y, "learning", 1);
    y_map(&y, 1);
    const learning_state *l = &sp->learn;
    y_key_num(&y, "executions", (double)l->executions);
    y_key_num(&y, "successes", (double)l->successes);
    y_key_num(&y, "score", l->score);
    y_key_num(&y, "alpha", l->alpha);
    y_key_num(&y, "beta", l->beta);
    y_key_bool(&y, "converged", l->converged);
    y_key_num(&y, "last_used", l->last_used);
    y_key_num(&y, "created", l->created);
    y_scalar(&y, "domains", 1);
    y_seq(&y, 1);
    for (size_t i = 0; i < l->ndomains; i++) {
        y_map(&y, 1);
        y_key_str(&y, "domain", l->domains[i].domain);
        y_key_num(&y, "executions", (double)l->domains[i].executions);
        y_key_num(&y, "successes", (double)l->domains[i].successes);
        y_map(&y, 0);
    }
    y_seq(&y, 0);
    y_map(&y, 0);
    y_scalar(&y, "history", 1);
    y_seq(&y, 1);
    for (size_t i = 0; i < sp->nhistory; i++) {
        const history_entry *h = &sp->history[i];
        y_map(&y, 1);
        y_key_num(&y, "time", h->time);
        y_key_num(&y, "duration", h->duration_s);
        y_key_bool(&y, "success", h->success);
        y_key_str(&y, "outcome", h->outcome);
        y_key_str(&y, "domain", h->domain);
        y_key_str(&y, "error", h->error);
        y_key_num(&y, "confidence", h->confidence);
        y_key_num(&y, "timeout", h->timeout_s);
        y_key_num(&y, "cpu_time", h->cpu_s);
        y_key_num(&y, "peak_rss_kb", (double)h->peak_rss_kb);
        y_scalar(&y, "steps", 1);
        y_seq(&y, 1);
        for (size_t k = 0; k < h->nsteps; k++) {
            y_map(&y, 1);
            y_key_str(&y, "name", h->steps[k].name);
            y_key_str(&y, "outcome", h->steps[k].outcome);
            y_key_num(&y, "duration", h->steps[k].duration_s);
            y_key_num(&y, "timeout", h->steps[k].timeout_s);
            y_map(&y, 0);
        }
        y_seq(&y, 0);
        y_map(&y, 0);
    }
    y_seq(&y, 0);
    y_map(&y, 0);
    y_event(&y, &ev, yaml_document_end_event_initialize(&ev, 1));
    y_event(&y, &ev, yaml_stream_end_event_initialize(&ev));
    int failed = y.failed;
    const char *prob = y.em.problem ? y.em.problem : "unknown problem";
    if (failed)
        err_set(NDF_ERR_IO, "libyaml emitter: %s", prob);
    yaml_emitter_delete(&y.em);
    return failed ? NDF_ERR_IO : NDF_OK;
}

int storage_export_record(const stored_pattern *sp, export_format fmt, strbuf *sb)
{
    switch (fmt) {
    case EXPORT_JSON: {
        char *j = storage_to_json(sp, 1);
        sb_puts(sb, j);
        sb_puts(sb, "\n");
        free(j);
        return NDF_OK;
    }
    case EXPORT_CSV: export_csv(sp, sb); return NDF_OK;
    case EXPORT_YAML: return export_yaml(sp, sb);
    }
    return err_set(NDF_ERR_INVALID, "unknown export format %d", (int)fmt);
}

int storage_export(storage *s, const char *name, export_format fmt, strbuf *sb)
{
    stored_pattern sp;
    int rc = storage_load_pattern(s, name, &sp);
    if (rc)
        return rc;
    rc = storage_export_record(&sp, fmt, sb);
    stored_pattern_free(&sp);
    return rc;
}

/* ------------------------------------------------------------------ */
/* registry seam */

static int store_save(void *opaque, const char *name, const learning_state *st)
{
    return storage_save_learning(opaque, name, st);
}

static int store_load(void *opaque, const char *name, learning_state *st)
{
    stored_pattern sp;
    int rc = storage_load_pattern(opaque, name, &sp);
    if (rc)
        return rc;
    *st = sp.learn;
    memset(&sp.learn, 0, sizeof sp.learn);
    stored_pattern_free(&sp);
    return NDF_OK;
}

void storage_registry_store(storage *s, registry_store *out)
{
    out->opaque = s;
    out->save = store_save;
    out->load = store_load;
}

int storage_restore_learning(storage *s, struct pattern *p)
{
    stored_pattern sp;
    int rc = storage_load_pattern(s, p->name, &sp);
    if (rc)
        return rc;
    pthread_mutex_lock(&p->lock);
    learning_free(&p->learn);
    p->learn = sp.learn;
    pthread_mutex_unlock(&p->lock);
    memset(&sp.learn, 0, sizeof sp.learn);
    stored_pattern_free(&sp);
    return NDF_OK;
}

/* ------------------------------------------------------------------ */
/* executions */

static const char *outcome_of_status(int status)
{
    switch (status) {
    case NDF_OK: return "succeeded";
    case NDF_ERR_TIMEOUT: return "timeout";
    case NDF_ERR_CANCELLED: return "cancelled";
    case NDF_ERR_CONFIDENCE: return "refused";
    default: return "failed";
    }
}

static const char *outcome_of_state(int state)
{
    switch (state) {
    case NDF_STATE_PENDING: return "pending";
    case NDF_STATE_RUNNING: return "running";
    case NDF_STATE_COMPLETED: return "succeeded";
    case NDF_STATE_FAILED: return "failed";
    case NDF_STATE_SKIPPED: return "skipped";
    case NDF_STATE_ROLLED_BACK: return "rolled_back";
    case NDF_STATE_CANCELLED: return "cancelled";
    case NDF_STATE_TIMED_OUT: return "timeout";
    case NDF_STATE_DEGRADED: return "degraded";
    default: return "unknown";
    }
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* cpu time of the process and its reaped children at the previous
 * completion: executions that do not overlap (ndf run) get exact figures. */
static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER;
static double cpu_prev;

static void process_usage(double *cpu_delta, long *peak_kb)
{
    struct rusage self, kids;
    if (getrusage(RUSAGE_SELF, &self) != 0)
        memset(&self, 0, sizeof self);
    if (getrusage(RUSAGE_CHILDREN, &kids) != 0)
        memset(&kids, 0, sizeof kids);
    double total = tv_s(&self.ru_utime) + tv_s(&self.ru_stime) + tv_s(&kids.ru_utime) +
                   tv_s(&kids.ru_stime);
    pthread_mutex_lock(&cpu_lock);
    *cpu_delta = total - cpu_prev;
    cpu_prev = total;
    pthread_mutex_unlock(&cpu_lock);
    if (*cpu_delta < 0)
        *cpu_delta = 0;
    *peak_kb = self.ru_maxrss > kids.ru_maxrss ? self.ru_maxrss : kids.ru_maxrss;
}

void storage_entry_from_record(history_entry *e, struct pattern *p, const struct record *r)
{
    memset(e, 0, sizeof *e);
    ndf_exec *root = r->root;
    double end = r->end > 0 ? r->end : now_mono();
    double start = root && root->start > 0 ? root->start : r->start;
    e->time = r->start_wall > 0 ? r->start_wall : root ? root->start_wall : now_wall();
    e->duration_s = start > 0 && end > start ? end - start : 0;
    e->success = r->status == NDF_OK;
    e->outcome = xstrdup(outcome_of_status(r->status));
    if (r->ctx && r->ctx->domain && *r->ctx->domain)
        e->domain = xstrdup(r->ctx->domain);
    if (r->error)
        e->error = xstrdup(r->error);
    e->confidence = p ? pattern_score(p) : 0;
    if (root && isfinite(root->deadline) && root->start > 0 && root->deadline > root->start)
        e->timeout_s = root->deadline - root->start;
    process_usage(&e->cpu_s, &e->peak_rss_kb);
    if (!root)
        return;
    pthread_mutex_lock(&((struct record *)r)->lock);
    e->nsteps = root->nkids;
    e->steps = root->nkids ? xcalloc(root->nkids, sizeof *e->steps) : NULL;
    for (size_t i = 0; i < root->nkids; i++) {
        const ndf_exec *k = root->kids[i];
        history_step *st = &e->steps[i];
        st->name = xstrdup(k->name);
        st->outcome = xstrdup(outcome_of_state(atomic_load(&k->state)));
        st->duration_s = k->start > 0 && k->end >= k->start ? k->end - k->start : 0;
        /* a limit of its own only when tighter than the execution's */
        if (isfinite(k->deadline) && k->start > 0 && k->deadline > k->start &&
            (!isfinite(root->deadline) || k->deadline < root->deadline))
            st->timeout_s = k->deadline - k->start;
    }
    pthread_mutex_unlock(&((struct record *)r)->lock);
}

void storage_on_complete(void *opaque, struct pattern *p, const struct record *r)
{
    storage *s = opaque;
    if (!s || !p)
        return;
    history_entry e;
    storage_entry_from_record(&e, p, r);
    learning_state st;
    pattern_stats(p, &st);
    if (storage_append_history(s, p->name, &e, &st) != NDF_OK)
        log_msg(NDF_LOG_WARN, "pattern '%s': execution not saved: %s", p->name, err_msg());
    learning_free(&st);
    history_entry_free(&e);
}

/* ------------------------------------------------------------------ */
/* the program's storage */

static pthread_mutex_t app_lock = PTHREAD_MUTEX_INITIALIZER;
static storage *app_storage;
static registry_store app_store;
static int app_failed;

static void app_storage_free(void)
{
    storage_close(app_storage);
    app_storage = NULL;
}

void storage_opts_from_settings(const settings *set, storage_opts *o)
{
    memset(o, 0, sizeof *o);
    o->compression = set->compression;
    o->level = set->compression_level;
    o->backups = set->backups;
    o->history_limit = set->history_limit;
}

storage *storage_app(const settings *set)
{
    pthread_mutex_lock(&app_lock);
    if (!app_storage && !app_failed) {
        storage_opts o;
        storage_opts_from_settings(set, &o);
        if (storage_open(set->storage_path, &o, &app_storage) == NDF_OK) {
            storage_registry_store(app_storage, &app_store);
            atexit(app_storage_free);
        } else {
            app_failed = 1;
            log_msg(NDF_LOG_WARN, "%s; learning is not saved", err_msg());
        }
    }
    storage *s = app_storage;
    pthread_mutex_unlock(&app_lock);
    return s;
}

const registry_store *storage_app_store(const settings *set)
{
    return storage_app(set) ? &app_store : NULL;
}
