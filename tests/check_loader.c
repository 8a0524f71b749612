/* Check suite for host/loader.c (and host/sha256.c): every refusal with its
 * message, the ownership and mode checks, the private cache, registration,
 * hot reload (rescan, pinning, collection), and the ABI 1.0 compatibility
 * fixture. */
#include "build-config.h"

#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plugin/loader.h"
#include "exec/record.h"
#include "exec/services.h"
#include "base/sha256.h"
#include "base/util.h"
#include "base/value.h"

static char tmp[PATH_MAX];
static char plugdir[PATH_MAX];
static char cachedir[PATH_MAX];

static void setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/ndf-check-loader.XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(plugdir, sizeof plugdir, "%s/plugins", tmp);
    snprintf(cachedir, sizeof cachedir, "%s/cache", tmp);
    ck_assert_int_eq(mkdir(plugdir, 0700), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700); /* a test may have left a directory unwritable */
    return remove(path);
}

static void teardown(void)
{
    chmod(tmp, 0700);
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *path_in(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

/* Copies fixture `fixture` (a .so in $NDF_FIXTURE_DIR) to dir/as, mode 0644. */
static char *copy_fixture(const char *fixture, const char *dir, const char *as)
{
    const char *fx = getenv("NDF_FIXTURE_DIR");
    ck_assert_msg(fx && *fx, "NDF_FIXTURE_DIR is not set (run through make check)");
    char *src = xasprintf("%s/%s.so", fx, fixture);
    char *dst = path_in(dir, as);
    int in = open(src, O_RDONLY);
    ck_assert_msg(in >= 0, "cannot open fixture %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(out >= 0, "cannot create %s: %s", dst, strerror(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    ck_assert_int_eq(fchmod(out, 0644), 0);
    close(in);
    close(out);
    free(src);
    return dst;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(path, 0644);
}

static loader *new_loader(int insecure)
{
    loader_opts o = {.host = &host_services, .cache_dir = cachedir, .allow_insecure = insecure, .quiet = 1};
    loader *l = loader_new(&o);
    ck_assert_msg(l != NULL, "loader_new: %s", err_msg());
    return l;
}

static size_t count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static plugin_info info_of(const loader *l, size_t i)
{
    plugin_info pi;
    ck_assert_uint_lt(i, loader_count(l));
    loader_plugin(l, i, &pi);
    return pi;
}

#define ck_assert_has(text, sub)                                                                   \
    do {                                                                                           \
        const char *t_ = (text);                                                                   \
        ck_assert_msg(t_ &&strstr(t_, (sub)), "'%s' does not contain '%s'", t_ ? t_ : "(null)",    \
                      (sub));                                                                      \
    } while (0)

/* Loads fixture `fixture` alone and checks the refusal names the file and
 * contains each of the given substrings (NULL-terminated). */
static void expect_refused(const char *fixture, int status, ...)
{
    char *as = xasprintf("%s.so", fixture);
    char *path = copy_fixture(fixture, plugdir, as);
    loader *l = new_loader(0);
    int rc = loader_load(l, path);
    ck_assert_int_eq(rc, status);
    plugin_info pi = info_of(l, 0);
    ck_assert_int_eq(pi.loaded, 0);
    ck_assert_int_eq(pi.status, status);
    ck_assert_ptr_null(pi.cached);
    ck_assert_uint_eq(pi.nprovides, 0);
    ck_assert_has(pi.reason, path);
    ck_assert_str_eq(err_msg(), pi.reason);
    va_list ap;
    va_start(ap, status);
    const char *sub;
    while ((sub = va_arg(ap, const char *)) != NULL)
        ck_assert_has(pi.reason, sub);
    va_end(ap);
    /* A refused plugin leaves no copy behind. */
    ck_assert_uint_eq(count_dir(cachedir), 0);
    loader_free(l);
    free(path);
    free(as);
}

/* ---- sha256 ---- */

static void hex_of(const void *data, size_t n, char out[65])
{
    sha256_ctx c;
    unsigned char d[32];
    sha256_init(&c);
    sha256_update(&c, data, n);
    sha256_final(&c, d);
    sha256_hex(d, out);
}

/* _i = 0: the portable code; 1: the SHA instructions when the processor
 * has them (the portable code again when not). */
START_TEST(sha256_vectors)
{
    sha256_accelerated(_i);
    char hex[65];
    /* FIPS 180-4 examples (and the empty message). */
    hex_of("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m2, strlen(m2), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* One million 'a', fed in uneven pieces to cross block boundaries. */
    char *a = xmalloc(1000000);
    memset(a, 'a', 1000000);
    sha256_ctx c;
    unsigned char d[32];
    sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        sha256_update(&c, a + off, n);
        off += n;
        step = step * 3 % 997 + 1;
    }
    sha256_final(&c, d);
    sha256_hex(d, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);

    /* Lengths around the padding boundary (55, 56, 64 bytes). */
    static const char *const want[] = {
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
    };
    static const size_t lens[] = {55, 56, 64};
    for (size_t i = 0; i < 3; i++) {
        char buf[64];
        memset(buf, 'a', sizeof buf);
        hex_of(buf, lens[i], hex);
        ck_assert_str_eq(hex, want[i]);
    }
    sha256_accelerated(1);
}
END_TEST

/* Both implementations agree on every length up to a few blocks and on
 * pseudo-random content fed in uneven pieces. */
START_TEST(sha256_implementations_agree)
{
    unsigned char *buf = xmalloc(4096);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < 4096; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    for (size_t n = 0; n <= 4096; n += n < 300 ? 1 : 61) {
        char a[65], b[65];
        sha256_accelerated(0);
        hex_of(buf, n, a);
        sha256_accelerated(1);
        sha256_ctx c;
        unsigned char d[32];
        sha256_init(&c);
        for (size_t off = 0, step = 1; off < n; off += step, step = step * 5 % 131 + 1)
            sha256_update(&c, buf + off, step < n - off ? step : n - off);
        sha256_final(&c, d);
        sha256_hex(d, b);
        ck_assert_msg(strcmp(a, b) == 0, "length %zu: portable %s, accelerated %s", n, a, b);
    }
    free(buf);
}
END_TEST

/* ---- a good plugin ---- */

START_TEST(good_loads)
{
    char *path = copy_fixture("good", plugdir, "good.so");
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 1);
    ck_assert_uint_eq(loader_count(l), 1);
    plugin_info pi = info_of(l, 0);
    ck_assert_int_eq(pi.loaded, 1);
    ck_assert_int_eq(pi.status, NDF_OK);
    ck_assert_ptr_null(pi.reason);
    ck_assert_str_eq(pi.path, path);
    ck_assert_str_eq(pi.name, "good");
    ck_assert_str_eq(pi.version, "1.2.3");
    ck_assert_str_eq(pi.license, "MIT");
    ck_assert_uint_eq(pi.abi_major, NDF_ABI_MAJOR);
    ck_assert_uint_eq(pi.abi_minor, NDF_ABI_MINOR);
    ck_assert_uint_eq(pi.desc_size, sizeof(ndf_plugin));
    ck_assert_uint_eq(pi.nprovides, 2);

    const provided *pt = loader_find(l, PROVIDED_PATTERN_TYPE, "good_trivial");
    const provided *st = loader_find(l, PROVIDED_STEP, "good_echo");
    ck_assert_ptr_nonnull(pt);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(pt->def.ptype->name, "good_trivial");
    ck_assert_str_eq(st->def.step->name, "good_echo");
    ck_assert_ptr_eq(pt->owner, st->owner);
    /* Kinds are separate namespaces; unknown names are absent. */
    ck_assert_ptr_null(loader_find(l, PROVIDED_STEP, "good_trivial"));
    ck_assert_ptr_null(loader_find(l, PROVIDED_PATTERN_TYPE, "nope"));
    ck_assert_ptr_null(loader_find(l, PROVIDED_STEP, NULL));
    loader_free(l);
    free(path);
}
END_TEST

START_TEST(cache_is_content_addressed)
{
    char *path = copy_fixture("good", plugdir, "good.so");
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, path), NDF_OK);
    plugin_info pi = info_of(l, 0);

    /* The hash is of the file's content. */
    int fd = open(path, O_RDONLY);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    char *buf = xmalloc((size_t)st.st_size);
    ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    char hex[65];
    hex_of(buf, (size_t)st.st_size, hex);
    ck_assert_str_eq(pi.hash, hex);

    /* <cache>/<name>.<first 16 hex>.p<pid>.so, a private read-only copy. */
    char *want = xasprintf("%s/good.%.16s.p%ld.so", cachedir, hex, (long)getpid());
    ck_assert_str_eq(pi.cached, want);
    ck_assert_str_eq(loader_cache_dir(l), cachedir);
    struct stat cst;
    ck_assert_int_eq(stat(pi.cached, &cst), 0);
    ck_assert_int_eq(cst.st_mode & 0777, 0500);
    ck_assert_int_eq(cst.st_size, st.st_size);
    ck_assert_int_eq(stat(cachedir, &cst), 0);
    ck_assert_int_eq(cst.st_mode & 0777, 0700);
    ck_assert_uint_eq(count_dir(cachedir), 1);

    loader_free(l);
    ck_assert_int_eq(access(want, F_OK), -1);
    ck_assert_uint_eq(count_dir(cachedir), 0);
    free(want);
    free(buf);
    free(path);
}
END_TEST

START_TEST(free_cleans_cache)
{
    free(copy_fixture("good", plugdir, "good.so"));
    free(copy_fixture("compat_v1_0", plugdir, "compat.so"));
    free(copy_fixture("init_fails", plugdir, "init_fails.so"));
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
    ck_assert_uint_eq(count_dir(cachedir), 2);
    loader_free(l);
    ck_assert_uint_eq(count_dir(cachedir), 0);
    loader_free(NULL);
}
END_TEST

/* Processes sharing the cache own their copies: one that leaves removes
 * only its own, and the copies of one that died are swept by the next. */
START_TEST(cache_shared_between_processes)
{
    char *path = copy_fixture("good", plugdir, "good.so");
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, path), NDF_OK);
    plugin_info pi = info_of(l, 0);
    char *mine = xstrdup(pi.cached);

    /* another process loads the same build and leaves */
    pid_t c = fork();
    ck_assert_int_ne(c, -1);
    if (c == 0) {
        loader *l2 = new_loader(0);
        int rc = loader_load(l2, path);
        loader_free(l2);
        _exit(rc == NDF_OK ? 0 : 1);
    }
    int ws;
    ck_assert_int_eq(waitpid(c, &ws, 0), c);
    ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    ck_assert_msg(access(mine, F_OK) == 0, "%s was removed by another process", mine);
    ck_assert_uint_eq(count_dir(cachedir), 1);

    /* copies of a dead process are swept; a live one's, ours and names
     * that are not copies are kept */
    char *dead = xasprintf("%s/x.0123456789abcdef.p%ld.so", cachedir, (long)c);
    char *dead_g = xasprintf("%s/x.0123456789abcdef.p%ld.g3.so", cachedir, (long)c);
    char *live = xasprintf("%s/y.0123456789abcdef.p1.so", cachedir);
    char *other = xasprintf("%s/z.so", cachedir);
    char *odd = xasprintf("%s/w.p12x.so", cachedir);
    const char *made[] = {dead, dead_g, live, other, odd};
    for (size_t i = 0; i < 5; i++) {
        int fd = open(made[i], O_WRONLY | O_CREAT | O_EXCL, 0600);
        ck_assert_int_ge(fd, 0);
        close(fd);
    }
    loader *l3 = new_loader(0);
    ck_assert_int_eq(access(dead, F_OK), -1);
    ck_assert_int_eq(access(dead_g, F_OK), -1);
    ck_assert_int_eq(access(live, F_OK), 0);
    ck_assert_int_eq(access(other, F_OK), 0);
    ck_assert_int_eq(access(odd, F_OK), 0);
    ck_assert_int_eq(access(mine, F_OK), 0);
    loader_free(l3);
    for (size_t i = 2; i < 5; i++)
        unlink(made[i]);
    loader_free(l);
    ck_assert_int_eq(access(mine, F_OK), -1);
    free(dead);
    free(dead_g);
    free(live);
    free(other);
    free(odd);
    free(mine);
    free(path);
}
END_TEST

/* ---- each refusal, with its message ---- */

START_TEST(refuse_bad_major)
{
    char want[128];
    snprintf(want, sizeof want, "built for plugin ABI 2.0, this ndf supports %d.%d", NDF_ABI_MAJOR,
             NDF_ABI_MINOR);
    expect_refused("bad_major", NDF_ERR_INVALID, want, "major 2 != 1", "upgrade ndf",
                   "rebuild the plugin", (char *)NULL);
}
END_TEST

START_TEST(refuse_newer_minor)
{
    char want[160];
    snprintf(want, sizeof want,
             "built for ABI %d.%d, this ndf supports %d.%d (major %d = %d, minor %d > %d): "
             "rebuild the plugin against the installed SDK or upgrade ndf",
             NDF_ABI_MAJOR, NDF_ABI_MINOR + 1, NDF_ABI_MAJOR, NDF_ABI_MINOR, NDF_ABI_MAJOR,
             NDF_ABI_MAJOR, NDF_ABI_MINOR + 1, NDF_ABI_MINOR);
    expect_refused("newer_minor", NDF_ERR_INVALID, want, (char *)NULL);
}
END_TEST

START_TEST(refuse_short_descriptor)
{
    char want[96];
    snprintf(want, sizeof want, "smaller than the %zu bytes", (size_t)NDF_PLUGIN_V1_0_SIZE);
    expect_refused("short_descriptor", NDF_ERR_INVALID, want, "NDF_PLUGIN_DEFINE()", "rebuild",
                   (char *)NULL);
}
END_TEST

START_TEST(refuse_no_descriptor)
{
    expect_refused("no_descriptor", NDF_ERR_INVALID,
                   "does not export ndf_plugin_descriptor; was it built with NDF_PLUGIN_DEFINE()?",
                   (char *)NULL);
}
END_TEST

/* A shared object that is no plugin: refused from its symbol table, before
 * dlopen, so its constructor never runs (it would create the marker). */
START_TEST(refuse_no_descriptor_runs_nothing)
{
    char *marker = path_in(tmp, "marker");
    setenv("NDF_TEST_MARKER", marker, 1);
    expect_refused("ctor_marker", NDF_ERR_INVALID,
                   "does not export ndf_plugin_descriptor; was it built with NDF_PLUGIN_DEFINE()?",
                   "its dynamic symbol table has no such symbol", "none of its code ran",
                   (char *)NULL);
    ck_assert_int_eq(access(marker, F_OK), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* the fixture's constructor does work when the object is loaded */
    const char *fx = getenv("NDF_FIXTURE_DIR");
    char *so = xasprintf("%s/ctor_marker.so", fx);
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h != NULL, "dlopen %s: %s", so, dlerror());
    ck_assert_int_eq(access(marker, F_OK), 0);
    dlclose(h);
    unsetenv("NDF_TEST_MARKER");
    free(so);
    free(marker);
}
END_TEST

/* Malformed dynamic sections are refused with a reason, never read out of
 * bounds (the good fixture with its PT_DYNAMIC at an address no segment
 * maps). */
START_TEST(refuse_bad_dynamic)
{
    char *p = copy_fixture("good", plugdir, "bad.so");
    int fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    Elf64_Ehdr eh;
    ck_assert_int_eq(pread(fd, &eh, sizeof eh, 0), (ssize_t)sizeof eh);
    int found = 0;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        off_t off = (off_t)(eh.e_phoff + i * sizeof ph);
        ck_assert_int_eq(pread(fd, &ph, sizeof ph, off), (ssize_t)sizeof ph);
        if (ph.p_type == PT_DYNAMIC) {
            ph.p_vaddr = (Elf64_Addr)1 << 40;
            ck_assert_int_eq(pwrite(fd, &ph, sizeof ph, off), (ssize_t)sizeof ph);
            found = 1;
        }
    }
    close(fd);
    ck_assert(found);
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "is not a loadable shared object: its dynamic section lies outside its "
                           "loadable segments");
    loader_free(l);
    free(p);
}
END_TEST

/* StrictModes: a directory above the plugin directory that others may
 * write (so they could swap the plugin directory for another) refuses its
 * plugins; so does one above the cache.  A sticky one (/tmp) does not. */
START_TEST(refuse_writable_ancestor)
{
    char *mid = path_in(tmp, "mid");
    ck_assert_int_eq(mkdir(mid, 0755), 0);
    char *dir = path_in(mid, "plugins");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    char *p = copy_fixture("good", dir, "good.so");
    ck_assert_int_eq(chmod(mid, 0777), 0);
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), p);
    ck_assert_has(err_msg(), "its parent directory");
    ck_assert_has(err_msg(), "is world-writable (mode 0777)");
    ck_assert_uint_eq(count_dir(cachedir), 0);
    ck_assert_int_eq(chmod(mid, 0775), 0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "is group-writable (mode 0775)");
    ck_assert_int_eq(chmod(mid, 01777), 0);
    ck_assert_int_eq(loader_load(l, p), NDF_OK);
    loader_free(l);

    /* through a symbolic link: the directory holding the link, and the one
     * the link leads to, are both checked */
    ck_assert_int_eq(chmod(mid, 0755), 0);
    char *lnkdir = path_in(tmp, "lnk");
    ck_assert_int_eq(mkdir(lnkdir, 0777), 0);
    ck_assert_int_eq(chmod(lnkdir, 0777), 0);
    char *lnk = path_in(lnkdir, "plugins");
    ck_assert_int_eq(symlink(dir, lnk), 0);
    char *viap = path_in(lnk, "good.so");
    l = new_loader(0);
    ck_assert_int_eq(loader_load(l, viap), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), lnkdir);
    ck_assert_has(err_msg(), "is world-writable (mode 0777)");
    loader_free(l);
    l = new_loader(1); /* allow_insecure relaxes it, loudly */
    ck_assert_int_eq(loader_load(l, viap), NDF_OK);
    loader_free(l);

    /* the cache directory's parents */
    char *cparent = path_in(tmp, "cparent");
    ck_assert_int_eq(mkdir(cparent, 0700), 0);
    ck_assert_int_eq(chmod(cparent, 0770), 0);
    char *cdir = path_in(cparent, "cache");
    loader_opts o = {.host = &host_services, .cache_dir = cdir, .quiet = 1};
    ck_assert_ptr_null(loader_new(&o));
    ck_assert_has(err_msg(), "the plugin cache directory");
    ck_assert_has(err_msg(), cparent);
    ck_assert_has(err_msg(), "is group-writable (mode 0770)");
    ck_assert_int_eq(chmod(cparent, 0700), 0);
    l = loader_new(&o);
    ck_assert_ptr_nonnull(l);
    loader_free(l);
    free(cdir);
    free(cparent);
    free(viap);
    free(lnk);
    free(lnkdir);
    free(p);
    free(dir);
    free(mid);
}
END_TEST

START_TEST(refuse_init_fails)
{
    expect_refused("init_fails", NDF_ERR_INVALID, "init failed (resources exhausted)",
                   "the frobnicator device is missing", (char *)NULL);
}
END_TEST

START_TEST(refuse_bad_schema)
{
    expect_refused("bad_schema", NDF_ERR_INVALID, "step 'bad_schema_step'",
                   "default of parameter 'count' (many) is not a valid", (char *)NULL);
}
END_TEST

START_TEST(refuse_not_elf)
{
    char *p = path_in(plugdir, "notelf.so");
    write_file(p, "this is not a plugin\n");
    char *e = path_in(plugdir, "empty.so");
    write_file(e, "");
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), p);
    ck_assert_has(err_msg(), "is not an ELF shared object (no ELF magic)");
    ck_assert_int_eq(loader_load(l, e), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "too short");
    ck_assert_uint_eq(count_dir(cachedir), 0);
    loader_free(l);
    free(p);
    free(e);
}
END_TEST

START_TEST(refuse_missing)
{
    loader *l = new_loader(0);
    char *p = path_in(plugdir, "nope.so");
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_NOT_FOUND);
    ck_assert_has(err_msg(), p);
    ck_assert_has(err_msg(), "no such file");
    char *q = xasprintf("%s/nodir/x.so", tmp);
    ck_assert_int_eq(loader_load(l, q), NDF_ERR_NOT_FOUND);
    ck_assert_uint_eq(loader_count(l), 2);
    /* A missing directory in a scan is skipped, not fatal. */
    char *dirs[] = {q, plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 2), 0);
    ck_assert_uint_eq(loader_count(l), 2);
    loader_free(l);
    free(p);
    free(q);
}
END_TEST

START_TEST(refuse_not_regular)
{
    char *d = path_in(plugdir, "dir.so");
    ck_assert_int_eq(mkdir(d, 0700), 0);
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    /* A scan passes over what is not a file ... */
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    ck_assert_uint_eq(loader_count(l), 0);
    /* ... and loading one by name says what is wrong. */
    ck_assert_int_eq(loader_load(l, d), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "is not a regular file");
    loader_free(l);
    free(d);
}
END_TEST

START_TEST(refuse_duplicate_name)
{
    char *a = copy_fixture("good", plugdir, "a_good.so");
    char *b = copy_fixture("dup_name", plugdir, "b_dup_name.so");
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 1);
    plugin_info pa = info_of(l, 0), pb = info_of(l, 1);
    ck_assert_int_eq(pa.loaded, 1);
    ck_assert_int_eq(pb.loaded, 0);
    ck_assert_int_eq(pb.status, NDF_ERR_EXISTS);
    ck_assert_has(pb.reason, b);
    ck_assert_has(pb.reason, "plugin name 'good' is already loaded from");
    ck_assert_has(pb.reason, a);
    ck_assert_str_eq(pb.version, "9.9"); /* the descriptor was read */
    /* Only the loaded plugin's copy remains. */
    ck_assert_uint_eq(count_dir(cachedir), 1);
    loader_free(l);
    free(a);
    free(b);
}
END_TEST

START_TEST(refuse_duplicate_step)
{
    free(copy_fixture("good", plugdir, "a_good.so"));
    char *b = copy_fixture("dup_step", plugdir, "b_dup_step.so");
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 1);
    plugin_info pb = info_of(l, 1);
    ck_assert_int_eq(pb.loaded, 0);
    ck_assert_int_eq(pb.status, NDF_ERR_EXISTS);
    ck_assert_has(pb.reason, b);
    ck_assert_has(pb.reason, "step 'good_echo' is already registered by plugin 'good'");
    /* The whole plugin is refused: its other step does not stay. */
    ck_assert_ptr_null(loader_find(l, PROVIDED_STEP, "dup_step_mine"));
    const provided *p = loader_find(l, PROVIDED_STEP, "good_echo");
    ck_assert_ptr_nonnull(p);
    plugin_info pa = info_of(l, 0);
    ck_assert_uint_eq(pa.nprovides, 2);
    ck_assert_ptr_eq(pa.provides[0]->owner, p->owner);
    loader_free(l);
    free(b);
}
END_TEST

START_TEST(init_failure_registers_nothing)
{
    char *p = copy_fixture("init_fails", plugdir, "init_fails.so");
    loader *l = new_loader(0);
    ck_assert_int_ne(loader_load(l, p), NDF_OK);
    ck_assert_ptr_null(loader_find(l, PROVIDED_STEP, "init_fails_orphan"));
    /* Its registrations did not block a later plugin either. */
    char *g = copy_fixture("good", plugdir, "good.so");
    ck_assert_int_eq(loader_load(l, g), NDF_OK);
    loader_free(l);
    free(p);
    free(g);
}
END_TEST

/* ---- ownership and mode ---- */

START_TEST(refuse_writable_file)
{
    char *p = copy_fixture("good", plugdir, "good.so");
    ck_assert_int_eq(chmod(p, 0664), 0);
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), p);
    ck_assert_has(err_msg(), "is group-writable (mode 0664)");
    ck_assert_has(err_msg(), "chmod go-w");
    ck_assert_int_eq(chmod(p, 0646), 0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "is world-writable (mode 0646)");
    ck_assert_uint_eq(count_dir(cachedir), 0);
    loader_free(l);

    /* Allowed, loudly, for development. */
    l = new_loader(1);
    ck_assert_int_eq(loader_load(l, p), NDF_OK);
    loader_free(l);
    free(p);
}
END_TEST

START_TEST(refuse_writable_dir)
{
    char *p = copy_fixture("good", plugdir, "good.so");
    ck_assert_int_eq(chmod(plugdir, 0777), 0);
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    plugin_info pi = info_of(l, 0);
    ck_assert_has(pi.reason, p);
    ck_assert_has(pi.reason, "its directory");
    ck_assert_has(pi.reason, "is world-writable (mode 0777)");
    ck_assert_int_eq(chmod(plugdir, 0770), 0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "is group-writable (mode 0770)");
    loader_free(l);
    free(p);
}
END_TEST

START_TEST(refuse_foreign_owner)
{
    if (geteuid() != 0)
        return; /* only root can give a file away; the check is exercised as root in CI */
    char *p = copy_fixture("good", plugdir, "good.so");
    ck_assert_int_eq(chown(p, 65534, 65534), 0);
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, p), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "is owned by uid 65534, neither root nor the user running ndf");
    loader_free(l);
    free(p);
}
END_TEST

START_TEST(refuse_symlink)
{
    char *real = xasprintf("%s/real", tmp);
    ck_assert_int_eq(mkdir(real, 0700), 0);
    char *target = copy_fixture("good", real, "good.so");
    char *link = path_in(plugdir, "link.so");
    ck_assert_int_eq(symlink(target, link), 0);
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    /* A scan tries the link, so that its refusal is reported. */
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    ck_assert_uint_eq(loader_count(l), 1);
    plugin_info pi = info_of(l, 0);
    ck_assert_has(pi.reason, link);
    ck_assert_has(pi.reason, "is a symbolic link");
    ck_assert_int_eq(loader_load(l, link), NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "is a symbolic link");
    /* Even when insecure files are allowed. */
    loader_free(l);
    l = new_loader(1);
    ck_assert_int_eq(loader_load(l, link), NDF_ERR_INVALID);
    loader_free(l);
    free(real);
    free(target);
    free(link);
}
END_TEST

/* ---- scanning ---- */

START_TEST(mixed_dir_and_order)
{
    static const char *const fixtures[] = {"bad_major",     "newer_minor", "short_descriptor",
                                           "no_descriptor", "init_fails",  "dup_step",
                                           "bad_schema",    "good"};
    for (size_t i = 0; i < ARRAY_SIZE(fixtures); i++) {
        /* dup_step must come after good to be the one refused. */
        char *as = xasprintf("%s%s.so", strcmp(fixtures[i], "dup_step") ? "" : "z_", fixtures[i]);
        free(copy_fixture(fixtures[i], plugdir, as));
        free(as);
    }
    char *p = path_in(plugdir, "notelf.so");
    write_file(p, "#!/bin/sh\n");
    free(p);
    /* Not candidates: wrong suffix, hidden, a directory. */
    free(copy_fixture("good", plugdir, "good.so.bak"));
    free(copy_fixture("good", plugdir, ".hidden.so"));
    p = path_in(plugdir, "sub.so");
    mkdir(p, 0700);
    free(p);

    char *order1[16], *order2[16];
    size_t n1, n2;
    for (int round = 0; round < 2; round++) {
        loader *l = new_loader(0);
        char *dirs[] = {plugdir};
        /* good loads; every other one is refused, and none stops it. */
        ck_assert_uint_eq(loader_scan(l, dirs, 1), 1);
        size_t n = loader_count(l);
        ck_assert_uint_eq(n, ARRAY_SIZE(fixtures) + 1);
        char **ord = round ? order2 : order1;
        for (size_t i = 0; i < n; i++) {
            plugin_info pi = info_of(l, i);
            ord[i] = xstrdup(pi.path);
            if (i)
                ck_assert_int_lt(strcmp(ord[i - 1], ord[i]), 0);
            const char *base = strrchr(pi.path, '/') + 1;
            int ok = strcmp(base, "good.so") == 0;
            ck_assert_int_eq(pi.loaded, ok);
            if (!ok)
                ck_assert_has(pi.reason, pi.path);
        }
        *(round ? &n2 : &n1) = n;
        ck_assert_ptr_nonnull(loader_find(l, PROVIDED_STEP, "good_echo"));
        ck_assert_ptr_nonnull(loader_find(l, PROVIDED_PATTERN_TYPE, "good_trivial"));
        loader_free(l);
    }
    ck_assert_uint_eq(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        ck_assert_str_eq(order1[i], order2[i]);
        free(order1[i]);
        free(order2[i]);
    }
}
END_TEST

START_TEST(dirs_in_given_order)
{
    char *d2 = xasprintf("%s/second", tmp);
    ck_assert_int_eq(mkdir(d2, 0700), 0);
    /* "a_" sorts first, but the directory order wins. */
    free(copy_fixture("dup_name", plugdir, "a_dup_name.so"));
    char *g = copy_fixture("good", d2, "z_good.so");
    loader *l = new_loader(0);
    char *dirs[] = {d2, plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 2), 1);
    plugin_info p0 = info_of(l, 0), p1 = info_of(l, 1);
    ck_assert_str_eq(p0.path, g);
    ck_assert_int_eq(p0.loaded, 1);
    ck_assert_str_eq(p0.version, "1.2.3");
    ck_assert_int_eq(p1.loaded, 0);
    ck_assert_has(p1.reason, g);
    loader_free(l);
    free(d2);
    free(g);
}
END_TEST

START_TEST(same_file_twice)
{
    /* The same directory listed twice: the second copy is refused and the
     * first keeps its cache copy. */
    free(copy_fixture("good", plugdir, "good.so"));
    loader *l = new_loader(0);
    char *dirs[] = {plugdir, plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 2), 1);
    plugin_info p0 = info_of(l, 0), p1 = info_of(l, 1);
    ck_assert_int_eq(p1.loaded, 0);
    ck_assert_has(p1.reason, "already loaded");
    ck_assert_int_eq(access(p0.cached, R_OK), 0);
    loader_free(l);
    ck_assert_uint_eq(count_dir(cachedir), 0);
}
END_TEST

/* ---- the cache directory ---- */

START_TEST(cache_dir_checks)
{
    ck_assert_int_eq(mkdir(cachedir, 0755), 0);
    loader_opts o = {.host = &host_services, .cache_dir = cachedir, .quiet = 1};
    ck_assert_ptr_null(loader_new(&o));
    ck_assert_has(err_msg(), cachedir);
    ck_assert_has(err_msg(), "mode 0755");
    ck_assert_has(err_msg(), "0700");
    ck_assert_int_eq(chmod(cachedir, 0700), 0);

    /* A symbolic link could point anywhere. */
    char *link = xasprintf("%s/cachelink", tmp);
    ck_assert_int_eq(symlink(cachedir, link), 0);
    o.cache_dir = link;
    ck_assert_ptr_null(loader_new(&o));
    ck_assert_has(err_msg(), "not a symbolic link");

    /* Default: $NDF_RUNTIME_DIR/plugins, created 0700 with its parents. */
    char *rt = xasprintf("%s/run/deeper", tmp);
    setenv("NDF_RUNTIME_DIR", rt, 1);
    ck_assert_ptr_null(loader_new(NULL)); /* the services table is required */
    loader_opts d = {.host = &host_services};
    loader *l = loader_new(&d);
    ck_assert_ptr_nonnull(l);
    char *want = xasprintf("%s/plugins", rt);
    ck_assert_str_eq(loader_cache_dir(l), want);
    struct stat st;
    ck_assert_int_eq(stat(want, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    loader_free(l);
    unsetenv("NDF_RUNTIME_DIR");
    free(link);
    free(rt);
    free(want);
}
END_TEST

START_TEST(register_outside_init)
{
    static const ndf_step_def d = {.size = sizeof d, .name = "late", .run = NULL};
    int dummy;
    ck_assert_int_eq(loader_registrar_add((ndf_registrar *)&dummy, PROVIDED_STEP, &d),
                     NDF_ERR_INVALID);
    ck_assert_has(err_msg(), "outside its init()");
    ck_assert_int_eq(host_services.register_step(NULL, &d), NDF_ERR_INVALID);
}
END_TEST

/* What a plugin writes to pass a host call's failure on: the arguments
 * point into the message being set. */
START_TEST(fail_with_last_error)
{
    /* (h->fail): check.h defines a function-like macro named fail */
    const ndf_host *h = &host_services;
    (h->fail)(NDF_ERR_IO, "connection refused");
    ck_assert_int_eq((h->fail)(NDF_ERR_IO, "%s", h->last_error()), NDF_ERR_IO);
    ck_assert_str_eq(h->last_error(), "connection refused");
    ck_assert_int_eq((h->fail)(NDF_ERR_TIMEOUT, "step fetch: %s", h->last_error()),
                     NDF_ERR_TIMEOUT);
    ck_assert_str_eq(h->last_error(), "step fetch: connection refused");
    /* fail() with a non-error status still fails the call */
    ck_assert_int_eq((h->fail)(NDF_OK, "%s (again)", h->last_error()), NDF_ERR_EXECUTION);
    ck_assert_str_eq(h->last_error(), "step fetch: connection refused (again)");
}
END_TEST

START_TEST(build_scope)
{
    loader *l = new_loader(0);
    loader *m = new_loader(0);
    ck_assert_ptr_null(loader_scope());
    loader *prev = loader_scope_enter(l);
    ck_assert_ptr_null(prev);
    ck_assert_ptr_eq(loader_scope(), l);
    /* scopes nest and restore */
    loader *inner = loader_scope_enter(m);
    ck_assert_ptr_eq(inner, l);
    ck_assert_ptr_eq(loader_scope(), m);
    loader_scope_leave(inner);
    ck_assert_ptr_eq(loader_scope(), l);
    loader_free(l); /* also clears it */
    ck_assert_ptr_null(loader_scope());
    loader_free(m);
    /* outside a build, step names resolve against nothing */
    ndf_step *s = NULL;
    ck_assert_int_eq(host_services.step_new("anything", NULL, NULL, &s), NDF_ERR_VALIDATION);
    ck_assert_has(err_msg(), "no plugins loaded");
}
END_TEST

/* ---- the ABI 1.0 compatibility fixture ---- */

static ndf_value *group_with(const char *name, ndf_value *a, ndf_value *b)
{
    ndf_value *g = value_new_group(name);
    if (a)
        value_append(g, a);
    if (b)
        value_append(g, b);
    return g;
}


/* ---- generations: rescan, pin, collect ---- */

static const plugin_info *serving(const loader *l, const char *path, plugin_info *pi)
{
    for (size_t i = 0; i < loader_count(l); i++) {
        loader_plugin(l, i, pi);
        if (pi->loaded && strcmp(pi->path, path) == 0)
            return pi;
    }
    return NULL;
}

/* Rewrites `path` with another fixture, making sure its mtime moves. */
static void replace_with(const char *fixture, const char *as)
{
    char *p = copy_fixture(fixture, plugdir, as);
    struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    utimensat(AT_FDCWD, p, ts, 0);
    free(p);
}

START_TEST(rescan_replaces_and_pins)
{
    char *path = copy_fixture("reload_v1", plugdir, "reload.so");
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 1);
    const provided *step = loader_find(l, PROVIDED_STEP, "reload_step");
    ck_assert_ptr_nonnull(step);
    loader_pin(step); /* as a bound step would */
    ck_assert_uint_eq(loader_rescan(l, dirs, 1), 0);

    replace_with("reload_v2", "reload.so");
    ck_assert_uint_eq(loader_rescan(l, dirs, 1), 1);
    plugin_info pi;
    ck_assert_ptr_nonnull(serving(l, path, &pi));
    ck_assert_str_eq(pi.version, "2");
    const provided *step2 = loader_find(l, PROVIDED_STEP, "reload_step");
    ck_assert_ptr_nonnull(step2);
    ck_assert_ptr_ne(step2, step);
    loader_gen_stats gs;
    loader_generations(l, &gs);
    ck_assert_uint_eq(gs.retired, 1);
    ck_assert_uint_eq(gs.pinned, 1);
    /* build 1 is pinned: it stays loaded, and its private copy stays */
    ck_assert_uint_eq(loader_collect(l), 0);
    ck_assert_uint_eq(count_dir(cachedir), 2);
    loader_unpin(step);
    ck_assert_uint_eq(loader_collect(l), 1);
    loader_generations(l, &gs);
    ck_assert_uint_eq(gs.retired, 0);
    ck_assert_uint_eq(gs.unloaded, 1);
    ck_assert_uint_eq(gs.not_unloadable, 0);
    ck_assert_uint_eq(count_dir(cachedir), 1);

    /* back to build 1's bytes: a fresh copy, not build 1's old instance */
    replace_with("reload_v1", "reload.so");
    ck_assert_uint_eq(loader_rescan(l, dirs, 1), 1);
    ck_assert_ptr_nonnull(serving(l, path, &pi));
    ck_assert_str_eq(pi.version, "1");
    ck_assert_uint_eq(loader_collect(l), 1);
    loader_free(l);
    free(path);
}
END_TEST

START_TEST(rescan_refused_keeps_old)
{
    char *path = copy_fixture("reload_v1", plugdir, "reload.so");
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    loader_scan(l, dirs, 1);
    const provided *step = loader_find(l, PROVIDED_STEP, "reload_step");
    const char *bad[] = {"bad_major", "init_fails", "no_descriptor"};
    for (size_t i = 0; i < 3; i++) {
        replace_with(bad[i], "reload.so");
        ck_assert_uint_eq(loader_rescan(l, dirs, 1), 0);
        ck_assert_ptr_eq(loader_find(l, PROVIDED_STEP, "reload_step"), step);
        ck_assert_uint_eq(loader_count(l), 2);
        plugin_info pi = info_of(l, 1);
        ck_assert_int_eq(pi.loaded, 0);
        ck_assert_msg(strstr(pi.reason, "refused; version 1 (sha256 ") &&
                          strstr(pi.reason, "keeps serving"),
                      "reason: %s", pi.reason);
        ck_assert_str_eq(pi.hash[0] ? "hash" : "", "hash");
        /* unchanged since: not tried again */
        ck_assert_uint_eq(loader_rescan(l, dirs, 1), 0);
        ck_assert_uint_eq(loader_count(l), 2);
    }
    loader_gen_stats gs;
    loader_generations(l, &gs);
    ck_assert_uint_eq(gs.retired, 0);
    loader_free(l);
    free(path);
}
END_TEST

START_TEST(rescan_removed_and_touched)
{
    char *path = copy_fixture("reload_v1", plugdir, "reload.so");
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    loader_scan(l, dirs, 1);
    struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
    ck_assert_uint_eq(loader_rescan(l, dirs, 1), 0); /* same bytes: no reload */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_uint_eq(loader_rescan(l, dirs, 1), 1);
    ck_assert_ptr_null(loader_find(l, PROVIDED_STEP, "reload_step"));
    ck_assert_ptr_null(loader_find(l, PROVIDED_PATTERN_TYPE, "reload_seq"));
    ck_assert_uint_eq(loader_count(l), 0);
    ck_assert_uint_eq(loader_collect(l), 1);
    ck_assert_uint_eq(count_dir(cachedir), 0);
    /* a new file appears */
    free(copy_fixture("reload_v3", plugdir, "reload.so"));
    ck_assert_uint_eq(loader_rescan(l, dirs, 1), 1);
    ck_assert_ptr_nonnull(loader_find(l, PROVIDED_STEP, "reload_step"));
    loader_free(l);
    free(path);
}
END_TEST

START_TEST(nodelete_is_not_unloadable)
{
    char *path = copy_fixture("reload_nodelete", plugdir, "reload.so");
    loader *l = new_loader(0);
    char *dirs[] = {plugdir};
    loader_scan(l, dirs, 1);
    replace_with("reload_v1", "reload.so");
    ck_assert_uint_eq(loader_rescan(l, dirs, 1), 1);
    ck_assert_uint_eq(loader_collect(l), 1);
    loader_gen_stats gs;
    loader_generations(l, &gs);
    ck_assert_uint_eq(gs.unloaded, 0);
    ck_assert_uint_eq(gs.not_unloadable, 1);
    loader_free(l);
    free(path);
}
END_TEST

START_TEST(refuse_truncated)
{
    char *full = copy_fixture("good", plugdir, "full.so");
    int in = open(full, O_RDONLY);
    char *half = path_in(plugdir, "half.so");
    int out = open(half, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[4096];
    ck_assert_int_eq(read(in, buf, sizeof buf), (ssize_t)sizeof buf);
    ck_assert_int_eq(write(out, buf, sizeof buf), (ssize_t)sizeof buf);
    close(in);
    close(out);
    unlink(full);
    loader *l = new_loader(0);
    ck_assert_int_eq(loader_load(l, half), NDF_ERR_INVALID);
    ck_assert_msg(strstr(err_msg(), "is not a complete shared object") &&
                      strstr(err_msg(), "past its end"),
                  "message: %s", err_msg());
    loader_free(l);
    free(full);
    free(half);
}
END_TEST

START_TEST(compat_v1_0)
{
    char *p = copy_fixture("compat_v1_0", plugdir, "compat_v1_0.so");
    loader *l = new_loader(0);
    ck_assert_msg(loader_load(l, p) == NDF_OK, "compat_v1_0 refused: %s", err_msg());
    loader_scope_enter(l);
    plugin_info pi = info_of(l, 0);
    ck_assert_str_eq(pi.name, "compat_v1_0");
    ck_assert_uint_eq(pi.abi_major, 1);
    ck_assert_uint_eq(pi.nprovides, 2);
    const provided *echo = loader_find(l, PROVIDED_STEP, "compat_echo");
    const provided *list = loader_find(l, PROVIDED_PATTERN_TYPE, "compat_list");
    ck_assert_ptr_nonnull(echo);
    ck_assert_ptr_nonnull(list);
    const char *file = value_intern_file("compat.conf");

    /* The step, bound through the host: schema defaults and the plugin's
     * own create(). */
    ndf_value *params = group_with(NULL, value_new_string("text", "hello"), NULL);
    value_set_pos(params, file, 7);
    ndf_step *s = NULL;
    ck_assert_msg(host_services.step_new("compat_echo", params, params, &s) == NDF_OK, "%s",
                  err_msg());
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(host_services.step_type(s), "compat_echo");
    ck_assert_int_eq(value_int(value_get(s->params, "repeat")), 1);
    ck_assert_ptr_nonnull(s->instance);
    host_services.step_free(s);
    value_free(params);

    /* Its create() refuses with a position through fail_at(). */
    ndf_value *text = value_new_string("text", "refuse me");
    value_set_pos(text, file, 9);
    params = group_with(NULL, text, NULL);
    ck_assert_int_eq(host_services.step_new("compat_echo", params, params, &s), NDF_ERR_VALIDATION);
    ck_assert_has(err_msg(), "compat.conf:9: compat_echo: refusing 'refuse me'");
    value_free(params);

    /* The host's schema check comes first. */
    params = group_with(NULL, value_new_int("repeat", 50), NULL);
    ck_assert_int_eq(host_services.step_new("compat_echo", params, NULL, &s), NDF_ERR_VALIDATION);
    value_free(params);

    /* The pattern type: create() binds a step per entry through step_new,
     * and run() runs them through the host in the record. */
    const ndf_pattern_type_def *d = list->def.ptype;
    ndf_value *steps = value_new_list("steps");
    static const char *const texts[] = {"alpha", "beta"};
    for (int i = 0; i < 2; i++)
        value_append(steps, group_with(NULL, value_new_string("step", "compat_echo"),
                                       group_with("params", value_new_string("text", texts[i]),
                                                  value_new_int("repeat", i + 1))));
    ndf_value *pp = group_with(NULL, steps, NULL);
    ck_assert_msg(value_validate(pp, d->params, "pattern type 'compat_list'") == NDF_OK, "%s",
                  err_msg());
    void *inst = NULL;
    ck_assert_msg(d->create(&host_services, pp, &inst) == NDF_OK, "%s", err_msg());
    ck_assert_ptr_nonnull(inst);
    record *r = record_new("compat", NULL, INFINITY);
    ck_assert_msg(d->run(&host_services, r->root, inst) == NDF_OK, "%s", err_msg());
    ck_assert_uint_eq(r->root->nkids, 2);
    for (int i = 0; i < 2; i++) {
        ndf_exec *k = r->root->kids[i];
        ck_assert_str_eq(k->name, "compat_echo");
        ck_assert_int_eq(atomic_load(&k->state), NDF_STATE_COMPLETED);
        const tailbuf *log = &k->out[REC_LOG];
        char *got = xstrndup(log->buf ? log->buf : "", log->len);
        ck_assert_str_eq(got, i == 0 ? "alpha\n" : "beta\nbeta\n");
        free(got);
    }
    record_unref(r);
    d->destroy(&host_services, inst);
    value_free(pp);

    /* An unknown step type is the host's error, passed through. */
    steps = value_new_list("steps");
    value_append(steps, group_with(NULL, value_new_string("step", "nope"), NULL));
    pp = group_with(NULL, steps, NULL);
    ck_assert_int_ne(d->create(&host_services, pp, &inst), NDF_OK);
    ck_assert_has(err_msg(), "unknown step 'nope'");
    value_free(pp);

    loader_free(l);
    ck_assert_ptr_null(loader_scope());
    ck_assert_uint_eq(count_dir(cachedir), 0);
    free(p);
}
END_TEST


/* ---- lazy loading from the index ---- */

static loader *new_lazy_loader(int lazy)
{
    loader_opts o = {.host = &host_services, .cache_dir = cachedir, .quiet = 1, .index = 1,
                     .lazy = lazy};
    loader *l = loader_new(&o);
    ck_assert_msg(l != NULL, "loader_new: %s", err_msg());
    return l;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    strbuf sb;
    sb_init(&sb);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_add(&sb, buf, n);
    fclose(f);
    return sb_steal(&sb);
}

/* Replaces the first `from` in the index with `to` (same length or not). */
static void index_edit(const char *from, const char *to)
{
    char *ip = path_in(cachedir, "plugins.index");
    char *text = read_text(ip);
    char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "'%s' not in the index:\n%s", from, text);
    char *out = xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    FILE *f = fopen(ip, "w");
    ck_assert_ptr_nonnull(f);
    fputs(out, f);
    fclose(f);
    free(out);
    free(text);
    free(ip);
}

/* A scan writes what each file provides; a lazy scan that finds every
 * file as described loads none, then each as a name it provides is asked
 * for (and nothing for a name none provides); listing loads the rest. */
START_TEST(lazy_loads_what_is_asked)
{
    free(copy_fixture("good", plugdir, "good.so"));
    free(copy_fixture("reload_v1", plugdir, "reload.so"));
    char *dirs[] = {plugdir};
    loader *l = new_lazy_loader(0);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
    loader_free(l);
    char *ip = path_in(cachedir, "plugins.index");
    char *text = read_text(ip);
    ck_assert_has(text, "\tgood\t,good_trivial,\t,good_echo,\n");
    ck_assert_has(text, "\treload\t,reload_seq,\t,reload_step,\n");
    free(text);

    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    ck_assert_uint_eq(count_dir(cachedir), 1); /* the index, no copy */
    ck_assert_ptr_null(loader_find(l, PROVIDED_STEP, "nobody_has_it"));
    ck_assert_uint_eq(count_dir(cachedir), 1);
    const provided *p = loader_find(l, PROVIDED_STEP, "good_echo");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(loader_provided_plugin(p, NULL), "good");
    ck_assert_uint_eq(count_dir(cachedir), 2); /* good's copy */
    ck_assert_ptr_eq(loader_find(l, PROVIDED_PATTERN_TYPE, "good_trivial")->owner, p->owner);
    ck_assert_uint_eq(count_dir(cachedir), 2);
    ck_assert_uint_eq(loader_count(l), 2);
    ck_assert_uint_eq(count_dir(cachedir), 3);
    ck_assert_int_eq(info_of(l, 0).loaded, 1);
    ck_assert_int_eq(info_of(l, 1).loaded, 1);
    loader_free(l);

    /* a file changed since (touched): everything is loaded, the index
     * rewritten */
    char *g = path_in(plugdir, "good.so");
    struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, g, ts, 0), 0);
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
    ck_assert_uint_eq(count_dir(cachedir), 3);
    loader_free(l);
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    loader_free(l);

    /* a new file the index does not know: everything */
    free(copy_fixture("dup_step", plugdir, "z_dup_step.so"));
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2); /* dup_step refused, as ever */
    ck_assert_int_eq(info_of(l, 2).loaded, 0);
    loader_free(l);
    /* ... and a refused file has no entry: every lazy scan loads all, so
     * its refusal is said each time */
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
    loader_free(l);
    free(g);
    free(ip);
}
END_TEST

/* The index is a hint: a file that does not provide what its entry says
 * gets every file loaded; two entries claiming one name (which an eager
 * scan would resolve by order) make the scan eager; a corrupt index is
 * no index. */
START_TEST(lazy_index_is_a_hint)
{
    free(copy_fixture("good", plugdir, "good.so"));
    free(copy_fixture("reload_v1", plugdir, "reload.so"));
    char *dirs[] = {plugdir};
    loader *l = new_lazy_loader(0);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
    loader_free(l);

    index_edit("\tgood\t,good_trivial,\t,good_echo,", "\tgood\t,good_trivial,\t,reload_step,");
    index_edit("\treload\t,reload_seq,\t,reload_step,", "\treload\t,reload_seq,\t,good_echo,");
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    const provided *p = loader_find(l, PROVIDED_STEP, "reload_step");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(loader_provided_plugin(p, NULL), "reload");
    ck_assert_uint_eq(count_dir(cachedir), 3); /* both loaded */
    loader_free(l);

    l = new_lazy_loader(0); /* rewrites the truth */
    loader_scan(l, dirs, 1);
    loader_free(l);
    index_edit(",reload_step,", ",good_echo,");
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
    loader_free(l);

    char *ip = path_in(cachedir, "plugins.index");
    static const char *const corrupt[] = {
        "", "ndf-plugin-index 9\n", "ndf-plugin-index 1\n/x\tnot\n",
        "ndf-plugin-index 1\n/a.so\t1 2\tBAD NAME\t,\t,\n",
        "ndf-plugin-index 1\n/a.so\t1 2\tp\t,a b,\t,\n", "\xff\xfe\t\t\t\t\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(corrupt); i++) {
        write_file(ip, corrupt[i]);
        l = new_lazy_loader(1);
        ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
        ck_assert_ptr_nonnull(loader_find(l, PROVIDED_STEP, "good_echo"));
        loader_free(l);
    }
    /* an index that is not ours is not read */
    write_file(ip, "");
    l = new_lazy_loader(0);
    loader_scan(l, dirs, 1);
    loader_free(l);
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(ip, 1, 1), 0);
        l = new_lazy_loader(1);
        ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
        loader_free(l);
    }
    free(ip);
}
END_TEST

/* The index written afresh by an eager scan of `dirs`, then its entry
 * `from` forged into `to`: a lazy run that loads that file (asking for
 * reload_step) finds it out and loads every file (the cache holds both
 * plugins' copies). */
static void forged_entry_loads_all(char **dirs, const char *from, const char *to)
{
    loader *l = new_lazy_loader(0);
    loader_scan(l, dirs, 1);
    loader_free(l);
    index_edit(from, to);
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    ck_assert_ptr_nonnull(loader_find(l, PROVIDED_STEP, "reload_step"));
    ck_assert_uint_eq(count_dir(cachedir), 3);
    loader_free(l);
}

/* An entry that leaves out a name its file provides (which could hide a
 * name another file provides too) or names another plugin is caught when
 * its file is loaded: every file is loaded then, as an eager scan would. */
START_TEST(lazy_entry_hiding_a_name)
{
    free(copy_fixture("good", plugdir, "good.so"));
    free(copy_fixture("reload_v1", plugdir, "reload.so"));
    char *dirs[] = {plugdir};
    loader *l = new_lazy_loader(0);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 2);
    loader_free(l);

    /* the truth: only good's copy */
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    ck_assert_ptr_nonnull(loader_find(l, PROVIDED_PATTERN_TYPE, "good_trivial"));
    ck_assert_uint_eq(count_dir(cachedir), 2);
    loader_free(l);

    index_edit("\tgood\t,good_trivial,\t,good_echo,", "\tgood\t,good_trivial,\t,");
    l = new_lazy_loader(1);
    ck_assert_uint_eq(loader_scan(l, dirs, 1), 0);
    const provided *p = loader_find(l, PROVIDED_PATTERN_TYPE, "good_trivial");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(loader_provided_plugin(p, NULL), "good");
    ck_assert_uint_eq(count_dir(cachedir), 3); /* both loaded */
    loader_free(l);

    /* an entry naming another plugin; one listing more than its file
     * provides */
    forged_entry_loads_all(dirs, "\treload\t,reload_seq,", "\treloax\t,reload_seq,");
    forged_entry_loads_all(dirs, "\treload\t,reload_seq,", "\treload\t,reload_seq,nobody_type,");
}
END_TEST

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *t = tcase_create("sha256");
    tcase_add_loop_test(t, sha256_vectors, 0, 2);
    tcase_add_test(t, sha256_implementations_agree);
    suite_add_tcase(s, t);

    t = tcase_create("load");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, good_loads);
    tcase_add_test(t, cache_is_content_addressed);
    tcase_add_test(t, free_cleans_cache);
    tcase_add_test(t, cache_shared_between_processes);
    tcase_add_test(t, init_failure_registers_nothing);
    tcase_add_test(t, register_outside_init);
    tcase_add_test(t, fail_with_last_error);
    tcase_add_test(t, build_scope);
    tcase_add_test(t, cache_dir_checks);
    suite_add_tcase(s, t);

    t = tcase_create("refusals");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, refuse_bad_major);
    tcase_add_test(t, refuse_newer_minor);
    tcase_add_test(t, refuse_short_descriptor);
    tcase_add_test(t, refuse_no_descriptor);
    tcase_add_test(t, refuse_no_descriptor_runs_nothing);
    tcase_add_test(t, refuse_bad_dynamic);
    tcase_add_test(t, refuse_writable_ancestor);
    tcase_add_test(t, refuse_init_fails);
    tcase_add_test(t, refuse_bad_schema);
    tcase_add_test(t, refuse_not_elf);
    tcase_add_test(t, refuse_missing);
    tcase_add_test(t, refuse_not_regular);
    tcase_add_test(t, refuse_duplicate_name);
    tcase_add_test(t, refuse_duplicate_step);
    suite_add_tcase(s, t);

    t = tcase_create("security");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, refuse_writable_file);
    tcase_add_test(t, refuse_writable_dir);
    tcase_add_test(t, refuse_foreign_owner);
    tcase_add_test(t, refuse_symlink);
    suite_add_tcase(s, t);

    t = tcase_create("scan");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, mixed_dir_and_order);
    tcase_add_test(t, dirs_in_given_order);
    tcase_add_test(t, same_file_twice);
    suite_add_tcase(s, t);

    t = tcase_create("generations");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, rescan_replaces_and_pins);
    tcase_add_test(t, rescan_refused_keeps_old);
    tcase_add_test(t, rescan_removed_and_touched);
    tcase_add_test(t, refuse_truncated);
    tcase_add_test(t, nodelete_is_not_unloadable);
    suite_add_tcase(s, t);

    t = tcase_create("compat");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, compat_v1_0);
    suite_add_tcase(s, t);

    t = tcase_create("lazy");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, lazy_loads_what_is_asked);
    tcase_add_test(t, lazy_index_is_a_hint);
    tcase_add_test(t, lazy_entry_hiding_a_name);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
