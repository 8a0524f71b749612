/* The Beta distribution's CDF and quantile.  See beta.h. */
#include "build-config.h"

#include <float.h>
#include <math.h>

#include "base/beta.h"

/* log B(a, b).  lgamma_r: lgamma() writes the global signgam. */
static double log_beta_fn(double a, double b)
{
    int sign;
    return lgamma_r(a, &sign) + lgamma_r(b, &sign) - lgamma_r(a + b, &sign);
}

/* lgamma(x) - ((x - 1/2) log x - x + log(2 pi)/2), by Stirling's series:
 * below 2e-14 for x >= 10. */
static double stirling_corr(double x)
{
    double r = 1 / x, r2 = r * r;
    return r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 / 1188))));
}

/* log(x^a (1-x)^b / B(a, b)), the factor in front of the continued
 * fraction.  For large a and b, lgamma's terms are huge and nearly cancel
 * (1e-10 lost at a + b = 500,000); written around the mean mu = a/(a+b)
 * with Stirling's series nothing large is subtracted. */
static double log_front(double x, double a, double b)
{
    if (a < 10 || b < 10)
        return a * log(x) + b * log1p(-x) - log_beta_fn(a, b);
    double n = a + b, mu = a / n;
    return a * log1p((x - mu) / mu) + b * log1p((mu - x) / (1 - mu)) -
           0.5 * log(2 * M_PI * n / (a * b)) - stirling_corr(a) - stirling_corr(b) +
           stirling_corr(n);
}

/* The continued fraction of I_x(a, b), evaluated with the modified Lentz
 * method (Numerical Recipes, 6.4); converges fast for x < (a+1)/(a+b+2). */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 1000000; m++) {
        double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps)
            break;
    }
    return h;
}

double beta_cdf(double x, double a, double b)
{
    if (isnan(x) || !(a > 0) || !(b > 0) || isinf(a) || isinf(b))
        return NAN;
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double front = exp(log_front(x, a, b));
    /* The fraction converges on the side of the mean it is evaluated on;
     * the other side follows from I_x(a, b) = 1 - I_{1-x}(b, a). */
    if (x < (a + 1) / (a + b + 2))
        return front * betacf(a, b, x) / a;
    return 1 - front * betacf(b, a, 1 - x) / b;
}

/* The standard normal's p-quantile to about 5e-4 (Abramowitz & Stegun
 * 26.2.23): only a starting point for Newton. */
static double normal_quantile_rough(double p)
{
    double q = p < 0.5 ? p : 1 - p;
    double t = sqrt(-2 * log(q));
    double z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) /
                       (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
    return p < 0.5 ? -z : z;
}

/* The next point to try inside the bracket (lo, hi) when Newton's step
 * leaves it.  A quantile deep in a tail (1e-100 for Beta(0.05, 2) at p =
 * 1e-6) is many orders of magnitude from the start: stepping by factors
 * of 16 and bisecting geometrically reaches it in a few hundred steps at
 * worst, where halving would not. */
static double bracket_step(double lo, double hi)
{
    if (lo == 0)
        return hi / 16;
    if (hi == 1)
        return 1 - (1 - lo) / 16;
    if (hi > 16 * lo)
        return sqrt(lo * hi);
    if (1 - lo > 16 * (1 - hi))
        return 1 - sqrt((1 - lo) * (1 - hi));
    return 0.5 * (lo + hi);
}

double beta_quantile(double p, double a, double b)
{
    if (isnan(p) || !(a > 0) || !(b > 0) || isinf(a) || isinf(b))
        return NAN;
    if (p <= 0)
        return 0;
    if (p >= 1)
        return 1;
    double n = a + b, mean = a / n, sd = sqrt(a * b / (n * n * (n + 1)));
    double x = mean + normal_quantile_rough(p) * sd;
    if (!(x > 1e-10))
        x = 1e-10;
    if (!(x < 1 - 1e-10))
        x = 1 - 1e-10;
    double lo = 0, hi = 1, lb = log_beta_fn(a, b);
    for (int i = 0; i < 1000; i++) {
        double f = beta_cdf(x, a, b) - p;
        if (f == 0)
            return x;
        if (f < 0)
            lo = x;
        else
            hi = x;
        double pdf = exp((a - 1) * log(x) + (b - 1) * log1p(-x) - lb);
        double nx = x - f / pdf;
        if (!(nx > lo && nx < hi))
            nx = bracket_step(lo, hi);
        /* Relative to the nearer end, so tails converge too; no finer
         * than the spacing of doubles near 1. */
        double tol = nx < 0.5 ? 1e-13 * nx : fmax(1e-13 * (1 - nx), 2 * DBL_EPSILON);
        if (fabs(nx - x) <= tol || hi - lo <= tol)
            return nx;
        x = nx;
    }
    return x;
}
