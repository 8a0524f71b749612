/* The redrive rules, from a stored execution alone: whether it may be run
 * again, and which of its nodes a new run takes the recorded outcome of
 * instead of running them (the steps, tasks and sub-patterns that
 * completed, outside a failed phase).  `ndf redrive` and a queue worker
 * taking over an execution whose worker died both follow them. */
#ifndef NDF_REDRIVE_H
#define NDF_REDRIVE_H

#include <stddef.h>

#include "base/hashmap.h"
#include "store/store.h"

/* NDF_OK when `e` may be redriven (`from_start`: rerun whole), else
 * NDF_ERR_INVALID with err_msg() saying why and what to do. */
int redrive_check(const store_exec *e, int from_start);

/* The reuse set of `e`: a map from the path of each node whose outcome is
 * reused to its message ("" when none), each value malloc'd; what
 * executor_start_redrive() takes.  *n gets the count. */
hashmap *redrive_reuse(const store_exec *e, size_t *n);

#endif
