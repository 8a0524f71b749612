/* The floor for the process-DAG benchmark: spawn and reap N copies of a
 * program, at most J at a time, with nothing else (posix_spawn, wait). */
#include "build-config.h"

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_spawnloop N J PROGRAM\n");
        return 2;
    }
    long n = atol(argv[1]), j = atol(argv[2]), running = 0, started = 0;
    char *args[] = {argv[3], NULL};
    while (started < n || running > 0) {
        while (started < n && running < j) {
            pid_t pid;
            if (posix_spawn(&pid, argv[3], NULL, NULL, args, environ) != 0) {
                perror("posix_spawn");
                return 1;
            }
            started++, running++;
        }
        int st;
        if (wait(&st) > 0)
            running--;
    }
    return 0;
}
