/* The ELF dynamic symbol lookup of elfcheck.h.  Everything is read with
 * pread() at offsets checked against the file's size; addresses in the
 * dynamic section are turned into file offsets through the PT_LOAD
 * segments, as the dynamic linker maps them. */
#include "build-config.h"

#include <elf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin/elfcheck.h"

typedef struct elf {
    int fd;
    uint64_t size;
    Elf64_Phdr *ph;
    unsigned nph;
} elf;

static int rd(const elf *e, void *buf, uint64_t len, uint64_t off)
{
    if (off > e->size || len > e->size - off)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(e->fd, (char *)buf + done, (size_t)(len - done), (off_t)(off + done));
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* The file offset of virtual address `addr` spanning `len` bytes, or -1. */
static int64_t offset_of(const elf *e, uint64_t addr, uint64_t len)
{
    for (unsigned i = 0; i < e->nph; i++) {
        const Elf64_Phdr *p = &e->ph[i];
        if (p->p_type != PT_LOAD || addr < p->p_vaddr)
            continue;
        uint64_t in = addr - p->p_vaddr;
        if (in > p->p_filesz || len > p->p_filesz - in)
            continue;
        if (p->p_offset > e->size || in > e->size - p->p_offset)
            return -1;
        return (int64_t)(p->p_offset + in);
    }
    return -1;
}

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = h * 33 + *p;
    return h;
}

static uint32_t sysv_hash(const char *s)
{
    uint32_t h = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h = (h << 4) + *p;
        uint32_t g = h & 0xf0000000u;
        if (g)
            h ^= g >> 24;
        h &= ~g;
    }
    return h;
}

typedef struct dyn {
    uint64_t symtab, strtab, strsz, hash, gnu_hash;
    int has_symtab, has_strtab, has_hash, has_gnu_hash;
} dyn;

/* 1 when symbol `idx` is `sym`, defined and visible to dlsym; 0 if not;
 * -1 when it cannot be read. */
static int sym_is(const elf *e, const dyn *d, uint64_t idx, const char *sym)
{
    Elf64_Sym s;
    if (idx > (UINT64_MAX - d->symtab) / sizeof s)
        return -1;
    int64_t off = offset_of(e, d->symtab + idx * sizeof s, sizeof s);
    if (off < 0 || rd(e, &s, sizeof s, (uint64_t)off) != 0)
        return -1;
    size_t len = strlen(sym) + 1;
    if (s.st_name >= d->strsz || len > d->strsz - s.st_name)
        return 0;
    int64_t noff = offset_of(e, d->strtab + s.st_name, len);
    char *name = malloc(len);
    if (!name)
        return -1;
    int same = noff >= 0 && rd(e, name, len, (uint64_t)noff) == 0 && memcmp(name, sym, len) == 0;
    free(name);
    if (!same)
        return 0;
    int bind = ELF64_ST_BIND(s.st_info), vis = ELF64_ST_VISIBILITY(s.st_other);
    return s.st_shndx != SHN_UNDEF &&
           (bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE) &&
           (vis == STV_DEFAULT || vis == STV_PROTECTED);
}

/* dlsym's GNU hash walk (the bloom filter is only a shortcut: skipped). */
static int lookup_gnu(const elf *e, const dyn *d, const char *sym, const char **why)
{
    uint32_t hdr[4]; /* nbuckets, symoffset, bloom words, bloom shift */
    int64_t off = offset_of(e, d->gnu_hash, sizeof hdr);
    if (off < 0 || rd(e, hdr, sizeof hdr, (uint64_t)off) != 0 || hdr[0] == 0) {
        *why = "its GNU hash table cannot be read";
        return -1;
    }
    uint32_t h = gnu_hash(sym);
    uint64_t buckets = d->gnu_hash + sizeof hdr + (uint64_t)hdr[2] * 8;
    uint64_t chains = buckets + (uint64_t)hdr[0] * 4;
    uint32_t idx;
    off = offset_of(e, buckets + (uint64_t)(h % hdr[0]) * 4, 4);
    if (off < 0 || rd(e, &idx, 4, (uint64_t)off) != 0) {
        *why = "its GNU hash table cannot be read";
        return -1;
    }
    *why = "its dynamic symbol table has no such symbol";
    if (idx < hdr[1])
        return 0;
    /* a chain is at most as long as the file has room for entries */
    for (uint64_t steps = 0; steps <= e->size / 4; steps++, idx++) {
        uint32_t ch;
        off = offset_of(e, chains + (uint64_t)(idx - hdr[1]) * 4, 4);
        if (off < 0 || rd(e, &ch, 4, (uint64_t)off) != 0) {
            *why = "its GNU hash chain cannot be read";
            return -1;
        }
        if ((ch | 1) == (h | 1)) {
            int r = sym_is(e, d, idx, sym);
            if (r < 0) {
                *why = "its dynamic symbol table cannot be read";
                return -1;
            }
            if (r)
                return 1;
        }
        if (ch & 1)
            return 0;
    }
    *why = "its GNU hash chain does not end";
    return -1;
}

static int lookup_sysv(const elf *e, const dyn *d, const char *sym, const char **why)
{
    uint32_t hdr[2]; /* nbucket, nchain */
    int64_t off = offset_of(e, d->hash, sizeof hdr);
    if (off < 0 || rd(e, hdr, sizeof hdr, (uint64_t)off) != 0 || hdr[0] == 0) {
        *why = "its hash table cannot be read";
        return -1;
    }
    uint32_t h = sysv_hash(sym), idx;
    uint64_t chain = d->hash + 8 + (uint64_t)hdr[0] * 4;
    off = offset_of(e, d->hash + 8 + (uint64_t)(h % hdr[0]) * 4, 4);
    if (off < 0 || rd(e, &idx, 4, (uint64_t)off) != 0) {
        *why = "its hash table cannot be read";
        return -1;
    }
    *why = "its dynamic symbol table has no such symbol";
    for (uint32_t steps = 0; idx != STN_UNDEF; steps++) {
        if (steps > hdr[1] || idx >= hdr[1]) {
            *why = "its hash chain is malformed";
            return -1;
        }
        int r = sym_is(e, d, idx, sym);
        if (r < 0) {
            *why = "its dynamic symbol table cannot be read";
            return -1;
        }
        if (r)
            return 1;
        off = offset_of(e, chain + (uint64_t)idx * 4, 4);
        if (off < 0 || rd(e, &idx, 4, (uint64_t)off) != 0) {
            *why = "its hash chain cannot be read";
            return -1;
        }
    }
    return 0;
}

int elfcheck_exports(int fd, const char *sym, const char **why)
{
    struct stat st;
    Elf64_Ehdr eh;
    elf e = {.fd = fd};
    *why = NULL;
    if (fstat(fd, &st) != 0) {
        *why = "it cannot be examined";
        return -1;
    }
    e.size = (uint64_t)st.st_size;
    if (rd(&e, &eh, sizeof eh, 0) != 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        *why = "it is not an ELF file";
        return -1;
    }
    /* not this host's kind: dlopen refuses it without mapping it */
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || sizeof(void *) != 8 ||
        eh.e_ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB
                                                                          : ELFDATA2MSB))
        return 1;
    if (eh.e_type != ET_DYN) {
        *why = "it is not a shared object (ELF type is not ET_DYN)";
        return -1;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 4096) {
        *why = "its program headers are malformed";
        return -1;
    }
    e.nph = eh.e_phnum;
    e.ph = malloc(e.nph * sizeof *e.ph);
    if (!e.ph) {
        *why = "out of memory";
        return -1;
    }
    int rc = -1;
    if (rd(&e, e.ph, e.nph * sizeof *e.ph, eh.e_phoff) != 0) {
        *why = "its program headers lie past its end";
        goto out;
    }
    const Elf64_Phdr *dynph = NULL;
    for (unsigned i = 0; i < e.nph; i++)
        if (e.ph[i].p_type == PT_DYNAMIC)
            dynph = &e.ph[i];
    if (!dynph) {
        *why = "it has no dynamic section, so it exports nothing";
        rc = 0;
        goto out;
    }
    dyn d = {0};
    /* where the dynamic linker reads it: at its address, in a segment */
    uint64_t n = dynph->p_filesz / sizeof(Elf64_Dyn);
    int64_t doff = offset_of(&e, dynph->p_vaddr, n * sizeof(Elf64_Dyn));
    if (doff < 0) {
        *why = "its dynamic section lies outside its loadable segments";
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        Elf64_Dyn dy;
        if (rd(&e, &dy, sizeof dy, (uint64_t)doff + i * sizeof dy) != 0) {
            *why = "its dynamic section cannot be read";
            goto out;
        }
        if (dy.d_tag == DT_NULL)
            break;
        switch (dy.d_tag) {
        case DT_SYMTAB: d.symtab = dy.d_un.d_ptr; d.has_symtab = 1; break;
        case DT_STRTAB: d.strtab = dy.d_un.d_ptr; d.has_strtab = 1; break;
        case DT_STRSZ: d.strsz = dy.d_un.d_val; break;
        case DT_HASH: d.hash = dy.d_un.d_ptr; d.has_hash = 1; break;
        case DT_GNU_HASH: d.gnu_hash = dy.d_un.d_ptr; d.has_gnu_hash = 1; break;
        default: break;
        }
    }
    if (!d.has_symtab || !d.has_strtab || (!d.has_hash && !d.has_gnu_hash)) {
        *why = "it has no dynamic symbol table with a hash table, so it exports nothing";
        rc = 0;
        goto out;
    }
    rc = d.has_gnu_hash ? lookup_gnu(&e, &d, sym, why) : lookup_sysv(&e, &d, sym, why);
out:
    free(e.ph);
    return rc;
}
