/* Context reading benchmark (make bench): a JSON context of 1,000 to
 * 9,999 attributes (the bound is 10,000) read by context_from_json(), as a
 * queue worker reads a claimed item's and the server a request's.  Each
 * attribute added must replace one of the same name, which a scan of the
 * names before it made quadratic; the figures show how the time grows with
 * the count.  CPU time of this process, best of NDF_BENCH_REPEAT runs
 * (default 5). */
#include "build-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/util.h"
#include "model/context.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    const char *rep = getenv("NDF_BENCH_REPEAT");
    int repeat = rep && atoi(rep) > 0 ? atoi(rep) : 5;
    static const int counts[] = {1000, 2500, 5000, 9999};
    printf("%-12s %12s %14s\n", "attributes", "ms/read", "us/attribute");
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        strbuf sb;
        sb_init(&sb);
        sb_puts(&sb, "{\"domain\":\"bench\",\"attributes\":{");
        for (int i = 0; i < counts[k]; i++)
            sb_printf(&sb, "%s\"attribute_%06d\":\"value %d\"", i ? "," : "", i, i);
        sb_puts(&sb, "}}");
        double best = -1;
        for (int r = 0; r < repeat; r++) {
            ndf_context *ctx = NULL;
            double t0 = cpu_now();
            if (context_from_json(sb.buf, "bench", &ctx) != NDF_OK) {
                fprintf(stderr, "bench_context: %s\n", err_msg());
                return 1;
            }
            context_free(ctx);
            double t = cpu_now() - t0;
            if (best < 0 || t < best)
                best = t;
        }
        printf("%-12d %12.3f %14.3f\n", counts[k], best * 1e3, best * 1e6 / counts[k]);
        sb_free(&sb);
    }
    return 0;
}
