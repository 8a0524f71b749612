/* What a plugin file keeps in writable data (.data, .bss): the mutable
 * global state a second copy loaded during a hot reload would not share
 * with the first.  Read from the ELF file itself, never by loading it. */
#ifndef NDF_ELFDATA_H
#define NDF_ELFDATA_H

#include <stddef.h>

typedef struct elf_data_info {
    size_t data_size, bss_size; /* the sections' sizes, 0 when absent */
    /* Object symbols (from .symtab, else .dynsym) defined in them that the
     * toolchain did not put there itself (crt's __dso_handle, completed.N,
     * __TMC_END__): names "name (N bytes)", ", "-separated; malloc'd, or
     * NULL when there are none. */
    char *objects;
    size_t nobjects;
    size_t objects_size; /* their bytes */
    int have_symtab;     /* 0: stripped, only .dynsym was read */
} elf_data_info;

/* Fills `out` from the 64-bit little- or big-endian ELF file `path`.
 * NDF_OK, or a status with err_msg() set (unreadable, not ELF, 32-bit,
 * truncated).  Free out->objects. */
int elf_data_read(const char *path, elf_data_info *out);

#endif
