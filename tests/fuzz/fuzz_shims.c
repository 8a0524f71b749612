/* Link shims for the harnesses: storage.c's executor completion hook calls
 * into pattern.c, which would drag in the plugin loader and the executor.
 * No harness reaches that hook; if one ever does, it aborts loudly rather
 * than fuzzing a fake. */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>

#include "model/pattern.h"

void pattern_stats(pattern *p, learning_state *out)
{
    (void)p;
    (void)out;
    fprintf(stderr, "fuzz shim: pattern_stats() is not part of any harness\n");
    abort();
}

double pattern_score(pattern *p)
{
    (void)p;
    fprintf(stderr, "fuzz shim: pattern_score() is not part of any harness\n");
    abort();
}
