// init.h: deterministic data (tests) and parameter init (models), from Philox(seed).
#ifndef HYP_INIT_H
#define HYP_INIT_H
#include "autograd/tensor.h"

// Uniform in [lo, hi) from Philox(seed).
void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
// Parameter init on any device, computed on the host from Philox(seed): normal(0, std) by
// Box-Muller on fill_uniform's stream, and uniform(-bound, bound).
void tensor_init_normal(Tensor *t, double std, uint64_t seed);
void tensor_init_uniform(Tensor *t, float bound, uint64_t seed);

#endif
