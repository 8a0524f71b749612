/* Seeded pseudo-random numbers: xoshiro256** (Blackman & Vigna 2018) and
 * the variates delegation draws.  See rng.h. */
#include "build-config.h"

#include <math.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/rng.h"

/* splitmix64: spreads one seed over xoshiro's 256 bits of state, which
 * must not be all zero (splitmix64 never yields four zeros in a row). */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_seed(rng *g, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&x);
    g->has_spare = 0;
    g->spare = 0;
}

uint64_t rng_seed_fresh(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)getpid() << 32;
    return splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(rng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng *g)
{
    /* The midpoint of one of 2^53 equal cells: symmetric, never 0 or 1. */
    return ((double)(rng_next(g) >> 11) + 0.5) * 0x1.0p-53;
}

uint64_t rng_below(rng *g, uint64_t n)
{
    /* Rejects the top partial block of 2^64 so every value is equally likely. */
    uint64_t limit = -n % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = rng_next(g);
        if (x >= limit)
            return x % n;
    }
}

double rng_normal(rng *g)
{
    if (g->has_spare) {
        g->has_spare = 0;
        return g->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(g) - 1.0;
        v = 2.0 * rng_uniform(g) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    g->spare = v * f;
    g->has_spare = 1;
    return u * f;
}

/* Marsaglia & Tsang for shape >= 1. */
static double gamma_ge1(rng *g, double shape)
{
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = rng_normal(g);
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = rng_uniform(g), x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2)
            return d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double rng_gamma(rng *g, double shape)
{
    if (!(shape > 0))
        return NAN;
    if (shape >= 1)
        return gamma_ge1(g, shape);
    /* Gamma(a) = Gamma(a + 1) U^(1/a) (Marsaglia & Tsang, section 6). */
    return gamma_ge1(g, shape + 1.0) * pow(rng_uniform(g), 1.0 / shape);
}

double rng_beta(rng *g, double a, double b)
{
    if (!(a > 0) || !(b > 0))
        return NAN;
    double x = rng_gamma(g, a), y = rng_gamma(g, b);
    if (x + y > 0)
        return x / (x + y);
    return rng_uniform(g) < a / (a + b) ? 1.0 : 0.0;
}
