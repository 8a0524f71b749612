/* The writable-data report of `ndf inspect --conformance` (see elfdata.h):
 * the section headers and symbol table of a 64-bit ELF file, read with
 * bounds checks on every offset, since the file is untrusted input. */
#include "build-config.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ndf/status.h>

#include "plugin/elfdata.h"
#include "base/util.h"

/* The file in memory, read once (plugins are small; capped at 256 MiB). */
typedef struct blob {
    unsigned char *p;
    size_t n;
} blob;

/* 1 on a big-endian host. */
static int htonl_is_big(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 0;
}

static int in(const blob *b, uint64_t off, uint64_t len)
{
    return off <= b->n && len <= b->n - off;
}

/* Toolchain objects every shared object has, not the plugin's state. */
static int toolchain_object(const char *name)
{
    return strncmp(name, "__", 2) == 0 || strncmp(name, "completed.", 10) == 0 ||
           strcmp(name, "_edata") == 0 || strcmp(name, "_end") == 0;
}

static int read_all(const char *path, blob *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return err_set(NDF_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(Elf64_Ehdr) ||
        st.st_size > (off_t)256 << 20) {
        close(fd);
        return err_set(NDF_ERR_INVALID, "%s: not a regular ELF file of a plausible size", path);
    }
    b->n = (size_t)st.st_size;
    b->p = xmalloc(b->n);
    size_t got = 0;
    while (got < b->n) {
        ssize_t r = pread(fd, b->p + got, b->n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            free(b->p);
            return err_set(NDF_ERR_IO, "%s: read error", path);
        }
        got += (size_t)r;
    }
    close(fd);
    return NDF_OK;
}

int elf_data_read(const char *path, elf_data_info *out)
{
    memset(out, 0, sizeof *out);
    blob b = {NULL, 0};
    int rc = read_all(path, &b);
    if (rc)
        return rc;
    Elf64_Ehdr eh;
    memcpy(&eh, b.p, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != (htonl_is_big() ? ELFDATA2MSB : ELFDATA2LSB)) {
        free(b.p);
        return err_set(NDF_ERR_INVALID, "%s: not a 64-bit ELF file of this machine's byte order",
                       path);
    }
    if (eh.e_shentsize != sizeof(Elf64_Shdr) ||
        !in(&b, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr)) ||
        eh.e_shstrndx >= eh.e_shnum) {
        free(b.p);
        return err_set(NDF_ERR_INVALID, "%s: its section headers are out of the file", path);
    }
    /* Copied out: the file's offsets need not be aligned. */
    Elf64_Shdr *sh = xmalloc((size_t)eh.e_shnum * sizeof *sh);
    memcpy(sh, b.p + eh.e_shoff, (size_t)eh.e_shnum * sizeof *sh);
    const Elf64_Shdr *names = &sh[eh.e_shstrndx];
    size_t data_idx = 0, bss_idx = 0, symtab = 0, dynsym = 0;
    for (size_t i = 1; i < eh.e_shnum; i++) {
        if (!in(&b, names->sh_offset, names->sh_size) || sh[i].sh_name >= names->sh_size)
            continue;
        const char *nm = (const char *)b.p + names->sh_offset + sh[i].sh_name;
        size_t maxlen = names->sh_size - sh[i].sh_name;
        if (!memchr(nm, '\0', maxlen))
            continue;
        if (strcmp(nm, ".data") == 0) {
            data_idx = i;
            out->data_size = sh[i].sh_size;
        } else if (strcmp(nm, ".bss") == 0) {
            bss_idx = i;
            out->bss_size = sh[i].sh_size;
        }
        if (sh[i].sh_type == SHT_SYMTAB)
            symtab = i;
        else if (sh[i].sh_type == SHT_DYNSYM)
            dynsym = i;
    }
    size_t si = symtab ? symtab : dynsym;
    out->have_symtab = symtab != 0;
    strbuf sb;
    sb_init(&sb);
    if (si && sh[si].sh_entsize == sizeof(Elf64_Sym) && sh[si].sh_link < eh.e_shnum &&
        in(&b, sh[si].sh_offset, sh[si].sh_size) &&
        in(&b, sh[sh[si].sh_link].sh_offset, sh[sh[si].sh_link].sh_size)) {
        const Elf64_Shdr *str = &sh[sh[si].sh_link];
        size_t nsym = sh[si].sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < nsym; k++) {
            Elf64_Sym sym;
            memcpy(&sym, b.p + sh[si].sh_offset + k * sizeof sym, sizeof sym);
            if (ELF64_ST_TYPE(sym.st_info) != STT_OBJECT || !sym.st_shndx ||
                (sym.st_shndx != data_idx && sym.st_shndx != bss_idx) ||
                sym.st_name >= str->sh_size)
                continue;
            const char *nm = (const char *)b.p + str->sh_offset + sym.st_name;
            if (!memchr(nm, '\0', str->sh_size - sym.st_name) || toolchain_object(nm))
                continue;
            sb_printf(&sb, "%s%s (%llu bytes)", sb.len ? ", " : "", nm,
                      (unsigned long long)sym.st_size);
            out->nobjects++;
            out->objects_size += sym.st_size;
        }
    }
    out->objects = sb.len ? sb_steal(&sb) : NULL;
    sb_free(&sb);
    free(sh);
    free(b.p);
    return NDF_OK;
}
