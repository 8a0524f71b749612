/* Seeded, reentrant pseudo-random numbers for delegation (Thompson
 * sampling, epsilon-greedy) and its simulation: xoshiro256** seeded through
 * splitmix64, with the uniform, normal, gamma and Beta variates the policies
 * draw.  All state is in the caller's `rng`, so a seed reproduces a choice
 * and threads never share a generator.  Not for secrets. */
#ifndef NDF_RNG_H
#define NDF_RNG_H

#include <stdint.h>

/* Plain data: copy it to fork a stream; zero it and it is unusable until
 * rng_seed(). */
typedef struct rng {
    uint64_t s[4];
    double spare; /* the polar method makes normals in pairs */
    int has_spare;
} rng;

/* Seeds `g`: every 64-bit seed, 0 included, gives a distinct stream. */
void rng_seed(rng *g, uint64_t seed);
/* A seed for a run that was not given one: from getrandom(2), else from the
 * clock and the process id.  Report it, so the run can be reproduced. */
uint64_t rng_seed_fresh(void);

/* The next 64 random bits. */
uint64_t rng_next(rng *g);
/* Uniform in the open interval (0, 1), 53 bits: never 0, so log() is safe. */
double rng_uniform(rng *g);
/* Uniform integer in [0, n) without modulo bias; n must be > 0. */
uint64_t rng_below(rng *g, uint64_t n);
/* Standard normal (Marsaglia's polar method). */
double rng_normal(rng *g);
/* Gamma(shape, 1) for shape > 0 (Marsaglia & Tsang 2000; shape < 1 through
 * Gamma(shape + 1) U^(1/shape)).  Returns NAN for shape <= 0 or NaN. */
double rng_gamma(rng *g, double shape);
/* Beta(a, b) for a, b > 0, as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
 * When both gammas underflow (only for parameters far below 1) it returns 0
 * or 1 with probabilities b/(a+b) and a/(a+b), the distribution's limit.
 * Returns NAN for a parameter <= 0 or NaN. */
double rng_beta(rng *g, double a, double b);

#endif
