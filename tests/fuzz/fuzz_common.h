/* Shared helpers of the libFuzzer harnesses: turning the fuzzer's bytes
 * into the C strings the parsers take, and an abort that names the broken
 * invariant (libFuzzer reports it as a crash with this text). */
#ifndef NDF_FUZZ_COMMON_H
#define NDF_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A NUL-terminated copy of the input, in a buffer of exactly size + 1 bytes
 * so that ASan sees any read past the end.  Caller frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#define FUZZ_CHECK(cond, ...)                                              \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz invariant failed: %s: ", #cond);         \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

#endif
