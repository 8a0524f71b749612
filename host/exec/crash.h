/* Crash notes: when the host dies of a fatal signal (SIGSEGV, SIGBUS,
 * SIGABRT, SIGFPE, SIGILL), an async-signal-safe handler writes which
 * execution, pattern, step and plugin the crashing thread was running to
 * stderr and to a note in the state directory, then lets the signal kill
 * the process as before.  The next ndf that opens that state directory
 * reports the note (crash_note_take); the store marks the execution
 * CRASHED (store_recover). */
#ifndef NDF_CRASH_H
#define NDF_CRASH_H

#include <stdatomic.h>
#include <ndf/sdk.h>

struct provided;

/* What the calling thread runs: set around every step call (run and
 * undo).  Pointers, not text: the node and the step's type outlive the
 * call, and formatting is left to the handler, so a step pays two
 * thread-local stores. */
typedef struct crash_frame {
    const ndf_exec *node;
    const struct provided *type;
} crash_frame;

extern _Thread_local crash_frame crash_cur;

/* Enters a step call in `node` of step type `type`; returns what to hand
 * back to crash_leave(). */
static inline crash_frame crash_enter(const ndf_exec *node, const struct provided *type)
{
    crash_frame prev = crash_cur;
    crash_cur.node = node;
    crash_cur.type = type;
    /* the handler runs on this thread: program order is all it needs */
    atomic_signal_fence(memory_order_seq_cst);
    return prev;
}

static inline void crash_leave(crash_frame prev)
{
    atomic_signal_fence(memory_order_seq_cst);
    crash_cur = prev;
}

/* Installs the handlers (once per process; later calls only change the
 * directory) and opens `state_dir` (may be NULL: stderr only) for the
 * note, so that the handler needs no path lookup and no allocation. */
void crash_arm(const char *state_dir);

/* Gives the calling thread an alternate signal stack (once; unmapped when
 * the thread ends), so that a step that overflows its stack still leaves a
 * note.  crash_arm() does it for its caller; every thread that runs steps
 * calls it when it starts.  Failure is silent: the handler then runs on
 * the thread's own stack, as before. */
void crash_thread_init(void);

/* The note a crashed ndf left in `state_dir`, as one message ("the
 * previous ndf (pid N) died of signal 11 (SIGSEGV) while running step ...");
 * the note is removed.  NULL when there is none.  The caller frees it. */
char *crash_note_take(const char *state_dir);

/* Reads the note in `state_dir` without removing it: *pid gets the pid
 * of the ndf that died, *cause (caller frees) "signal 11 (SIGSEGV) in step
 * 'S' (type T, plugin P, file F)", for the store's CRASHED message.
 * Returns 0, or -1 when there is no note. */
int crash_note_peek(const char *state_dir, long *pid, char **cause);

/* The note's file name within the state directory. */
#define CRASH_NOTE_NAME "crash-note"

#endif
