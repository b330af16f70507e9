// init.c: deterministic data and parameter init from Philox (init.h).
#include "autograd/init.h"
#include "kernels/elementwise.h"
#include <math.h>
#include <stdlib.h>

void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * hyp_philox_uniform(seed, 0, i);
}

void tensor_init_normal(Tensor *t, double std, uint64_t seed) {
    size_t n = tensor_numel(t);
    float *u = hyp_malloc((n + 1) * sizeof(float)), *h = hyp_malloc(n * sizeof(float));
    fill_uniform(u, n + 1, 0.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(1.0 - u[i])), th = 2.0 * M_PI * u[i + 1];
        h[i] = (float)(std * r * cos(th));
        if (i + 1 < n) h[i + 1] = (float)(std * r * sin(th));
    }
    tensor_from_host(t, h);
    free(u);
    free(h);
}

void tensor_init_uniform(Tensor *t, float bound, uint64_t seed) {
    size_t n = tensor_numel(t);
    float *h = hyp_malloc(n * sizeof(float));
    fill_uniform(h, n, -bound, bound, seed);
    tensor_from_host(t, h);
    free(h);
}
