// signif.h: paired significance tests over per-query scores of two systems.
#ifndef HYP_EVAL_SIGNIF_H
#define HYP_EVAL_SIGNIF_H

#include <stddef.h>
#include <stdint.h>

// Regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1.
double signif_betai(double a, double b, double x);

// Student t cumulative distribution P(T <= t) with df > 0 degrees of freedom.
double signif_t_cdf(double t, double df);

// Two-sided p-value of the paired t-test of a against b (n pairs).
// Returns 1 when every difference is zero, 0 when the differences are a nonzero
// constant, NaN when n < 2.
double signif_paired_t(const double *a, const double *b, size_t n, double *t_out);

// Two-sided p-value of the paired randomization (sign-flip permutation) test on the
// mean difference. With 2^n <= permutations every sign assignment is enumerated and
// the p-value is exact; otherwise `permutations` random assignments are drawn from a
// generator seeded with `seed` and p = (hits + 1) / (permutations + 1).
double signif_randomization(const double *a, const double *b, size_t n, long permutations,
                            uint64_t seed);

#endif
