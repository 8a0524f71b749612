/* The storage format of the previous release, read for its import into
 * the store (store_import_legacy()): one gzip'd (or plain) JSON document
 * per pattern, <name>.json[.gz], with backups <file>.N.  Reading only:
 * documents checked on load (gzip CRC and length, JSON, schema version,
 * contents), bounded decompression, and the newest good backup used when a
 * file is damaged.  Every file is reached through openat() on the
 * directory's descriptor with a name built from a validated pattern name,
 * so nothing can escape it. */
#include "build-config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <zlib.h>
#include <ndf/sdk.h>

#include "store/storage.h"

struct storage {
    char *dir;
    int dirfd; /* -1 when the directory does not exist */
    storage_opts opts;
};

/* cJSON stores numbers as doubles: counters are exact up to 2^53. */
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

/* The learning state is plain data; this matches learning_free(). */
static void learn_free(learning_state *st)
{
    for (size_t i = 0; i < st->ndomains; i++)
        free(st->domains[i].domain);
    free(st->domains);
    st->domains = NULL;
    st->ndomains = 0;
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
            return err_set(NDF_ERR_INVALID, "learning.domains[%zu] is not an object", l->ndomains);
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
        return err_set(NDF_ERR_INVALID, "unsupported schema version %g (this ndf reads version %d)",
                       schema, STORAGE_SCHEMA);
    if ((rc = get_string(root, "name", "", 1, &out->name)) ||
        (rc = get_number(root, "saved", "", 0, &out->saved)))
        goto fail;
    if ((rc = learning_from_json(cJSON_GetObjectItemCaseSensitive(root, "learning"), &out->learn)))
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
    while (end && (size_t)(end - text) < len &&
           (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r'))
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

/* Inflates one gzip member, verifying its CRC and length, refusing more
 * than `max` bytes of output and anything after the member. */
static int gzip_decode(const unsigned char *in, size_t len, size_t max, char **out, size_t *outlen)
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
                rc = err_set(NDF_ERR_INVALID, "decompresses to more than %zu bytes (the limit)",
                             max);
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
            rc = err_set(NDF_ERR_INVALID, "truncated gzip data (%zu bytes, no end of stream)", len);
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
        rc =
            err_set(NDF_ERR_INVALID, "%u bytes of trailing data after the gzip stream", z.avail_in);
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
    if (!name || !name_valid(name) || strchr(name, '/') || name[0] == '.' || strlen(name) > 128)
        return err_set(NDF_ERR_INVALID,
                       "'%s': not a valid pattern name for storage "
                       "([A-Za-z0-9_.-], 1..128 characters, no leading dot)",
                       name ? name : "(null)");
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

/* Loads `name`: the file of the configured compression, then the other
 * one, then the newest good backup of either.  Nothing is written. */
static int load(storage *s, const char *name, stored_pattern *out)
{
    char fname[256], bname[300], badreason[512] = "", badfile[256] = "";
    int rc, found_any = 0, primary_bad = 0;
    memset(out, 0, sizeof *out);
    if (s->dirfd < 0)
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    for (int pass = 0; pass < 2 && !primary_bad; pass++) {
        int comp = pass == 0 ? s->opts.compression : !s->opts.compression;
        snprintf(fname, sizeof fname, "%s%s", name, ext_of(comp));
        unsigned char *data;
        size_t len;
        rc = read_file(s, fname, &data, &len);
        if (rc == NDF_ERR_NOT_FOUND)
            continue;
        found_any = 1;
        if (rc == NDF_OK) {
            rc = decode(name, data, len, out);
            free(data);
            if (rc == NDF_OK)
                return NDF_OK;
        }
        if (rc == NDF_ERR_IO) /* an I/O error is not corruption */
            return err_prefix(rc, "%s/%s", s->dir, fname);
        primary_bad = 1;
        snprintf(badreason, sizeof badreason, "%s", err_msg());
        snprintf(badfile, sizeof badfile, "%s", fname);
        if (!s->opts.quiet)
            log_msg(NDF_LOG_WARN, "%s/%s: %s", s->dir, fname, badreason);
    }
    for (int i = 1; i <= 100; i++) {
        for (int pass = 0; pass < 2; pass++) {
            int comp = pass == 0 ? s->opts.compression : !s->opts.compression;
            snprintf(bname, sizeof bname, "%s%s.%d", name, ext_of(comp), i);
            unsigned char *data;
            size_t len;
            rc = read_file(s, bname, &data, &len);
            if (rc == NDF_ERR_NOT_FOUND)
                continue;
            found_any = 1;
            if (rc == NDF_OK) {
                rc = decode(name, data, len, out);
                free(data);
                if (rc == NDF_OK) {
                    if (!s->opts.quiet)
                        log_msg(NDF_LOG_WARN, "%s/%s: using backup %s instead", s->dir,
                                primary_bad ? badfile : name, bname);
                    return NDF_OK;
                }
            }
            if (!s->opts.quiet)
                log_msg(NDF_LOG_WARN, "%s/%s: %s", s->dir, bname, err_msg());
        }
    }
    if (!found_any)
        return err_set(NDF_ERR_NOT_FOUND, "pattern '%s' has no stored state", name);
    if (primary_bad)
        return err_set(NDF_ERR_IO, "%s/%s: %s; no good backup", s->dir, badfile, badreason);
    return err_set(NDF_ERR_IO, "pattern '%s': no readable copy in %s", name, s->dir);
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

/* ------------------------------------------------------------------ */
/* API */

int storage_open(const char *dir, const storage_opts *opts, storage **out)
{
    *out = NULL;
    if (!dir || !*dir)
        return err_set(NDF_ERR_INVALID, "no storage directory given");
    storage *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(dir);
    s->dirfd = -1;
    if (opts) {
        s->opts = *opts;
    } else {
        s->opts.compression = 1;
        s->opts.quiet = 0;
    }
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0 && errno != ENOENT) {
        int e = errno;
        storage_close(s);
        return err_set(NDF_ERR_IO, "cannot open storage directory %s: %s", dir, strerror(e));
    }
    *out = s;
    return NDF_OK;
}

void storage_close(storage *s)
{
    if (!s)
        return;
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->dir);
    free(s);
}

const char *storage_dir(const storage *s)
{
    return s->dir;
}

int storage_load_pattern(storage *s, const char *name, stored_pattern *out)
{
    int rc = check_name(name);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    return load(s, name, out);
}

int storage_list(storage *s, char ***names, size_t *n)
{
    name_set ns = {0};
    *names = NULL;
    *n = 0;
    if (s->dirfd < 0)
        return NDF_OK;
    int rc = scan(s, collect_name, &ns);
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
