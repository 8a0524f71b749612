/* Reading an ELF shared object's dynamic symbol table from a descriptor,
 * without mapping or running it: the loader asks whether a file exports
 * the plugin descriptor before dlopen(), which would run the constructors
 * of any shared object, plugin or not. */
#ifndef NDF_ELFCHECK_H
#define NDF_ELFCHECK_H

/* Looks `sym` up in the dynamic symbol table of the ELF file open on `fd`
 * as the dynamic linker's dlsym() would (through DT_GNU_HASH, else
 * DT_HASH): a defined, global or weak, not hidden symbol.  Returns 1 when
 * it is there, 0 when not (*why says what was looked at), -1 when the file
 * is malformed (*why says how).  A file of another class or byte order than
 * this host's returns 1: dlopen() refuses it before mapping anything. */
int elfcheck_exports(int fd, const char *sym, const char **why);

#endif
