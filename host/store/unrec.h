/* The unrecorded-end note: a small preallocated file beside a SQLite
 * store where a writer says "execution ID ended STATUS, its end could not
 * be written because CAUSE" when neither the end nor the smaller "not
 * recorded" mark fit on a full disk.  Writing a slot allocates nothing
 * (pwrite over preallocated blocks), so it succeeds where the database
 * cannot grow; crash recovery reads it before it calls a RUNNING row's
 * dead process "crashed". */
#ifndef NDF_STORE_UNREC_H
#define NDF_STORE_UNREC_H

#include <stddef.h>

#define UNREC_NAME "unrecorded.note"
#define UNREC_SLOTS 64
#define UNREC_SLOT_SIZE 512

typedef struct unrec unrec;

typedef struct unrec_entry {
    long pid;
    double end, duration;
    char status[16]; /* the execution's final status name */
    char id[64];
    char boot[64]; /* boot id of the host it ran on */
    char cause[328];
} unrec_entry;

/* Opens (creating and preallocating it when missing) the note in `dir`.
 * NULL when there is none to use: a symlink, not a regular file, another
 * owner, the wrong size (said with a warning), or no room to create it. */
unrec *unrec_open(const char *dir);
void unrec_close(unrec *u);

/* Writes `e` into a free slot and syncs it: 0, or -1 (no free slot, an I/O
 * error; said at debug level). */
int unrec_put(unrec *u, const unrec_entry *e);

/* The entry for execution `id` of process `pid`: 1 and *out, or 0. */
int unrec_find(unrec *u, const char *id, long pid, unrec_entry *out);

/* The entries of process `pid`, of all with 0 (malloc'd array in *v,
 * count returned). */
size_t unrec_of_pid(unrec *u, long pid, unrec_entry **v);

/* Frees the slot holding (e->id, e->pid), if one still does. */
void unrec_drop(unrec *u, const unrec_entry *e);

#endif
