/* The Beta distribution's CDF and quantile, for the credible intervals and
 * the confidence-threshold rule of delegation (model/delegate.c).
 * Reentrant (lgamma_r, no global state). */
#ifndef NDF_BETA_H
#define NDF_BETA_H

/* P(X <= x) for X ~ Beta(a, b): the regularized incomplete beta function
 * I_x(a, b), by its continued fraction (absolute error about 1e-14, 1e-13
 * at a + b = 500,000).
 * 0 for x <= 0, 1 for x >= 1; NAN when a or b is not > 0 or x is NaN.
 * Costs O(sqrt(max(a, b))) steps near the mean (about 100 at a + b =
 * 10,000). */
double beta_cdf(double x, double a, double b);

/* The p-quantile: the x with beta_cdf(x, a, b) = p, to a relative 1e-13
 * of the nearer end of [0, 1] (as far as doubles can say), by Newton's
 * method kept inside a bracket.  0 for p <= 0, 1 for
 * p >= 1; NAN for bad parameters. */
double beta_quantile(double p, double a, double b);

#endif
