/* SHA-256 (FIPS 180-4), used by the loader to name its private plugin copies
 * by content.  Small and dependency-free; not constant-time (nothing secret
 * is hashed). */
#ifndef NDF_SHA256_H
#define NDF_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE 65 /* 64 hex digits and a NUL */

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64]; /* a partial block */
    size_t nbuf;
} sha256_ctx;

/* Starts a new hash; a context needs no freeing. */
void sha256_init(sha256_ctx *c);
/* Hashes `n` more bytes of the message. */
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* Finishes the hash into `out`; the context must be re-initialized before
 * it is used again. */
void sha256_final(sha256_ctx *c, unsigned char out[SHA256_DIGEST_SIZE]);
/* Whether the processor's SHA instructions are used (x86-64 with the SHA
 * extensions; decided at the first hash).  allow = 0 forces the portable
 * code, 1 uses the instructions when the processor has them; returns 1
 * when they are used from now on.  For tests and benchmarks, which compare
 * the two; the digest is the same. */
int sha256_accelerated(int allow);
/* Writes the digest as lower-case hex with a terminating NUL. */
void sha256_hex(const unsigned char digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]);

#endif
