// cpu_reduce.c: reductions and losses. Semantics: kernels/kernels.h.
// Sums accumulate in double so the CPU result is a tight reference for the GPU.
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>

// out[0] = sum x
void cpu_sum(float *out, const float *x, long n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) s += x[i];
    out[0] = (float)s;
}

// gx[i] += scale * gy[0]
void cpu_fill_grad(float *gx, const float *gy, float scale, long n) {
    float g = scale * gy[0];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) gx[i] += g;
}

// x (rows, C), t (rows) in [0, C): lse[r] = log sum_j exp x[r,j] (max-shifted),
// loss[0] = mean_r (lse[r] - x[r, t[r]]).
void cpu_cross_entropy_fwd(float *loss, float *lse, const float *x, const int32_t *t,
                           long rows, int C) {
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (rows * C > 32768)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float m = -INFINITY;
        for (int j = 0; j < C; j++) m = xr[j] > m ? xr[j] : m;
        double s = 0;
        for (int j = 0; j < C; j++) s += exp((double)(xr[j] - m));
        float l = m + (float)log(s);
        lse[r] = l;
        total += (double)l - xr[t[r]];
    }
    loss[0] = rows > 0 ? (float)(total / (double)rows) : 0.0f;
}

// gx[r,j] += gloss[0] / rows * (softmax(x_r)_j - [j == t[r]]), softmax from the saved lse.
void cpu_cross_entropy_bwd(float *gx, const float *gloss, const float *x, const float *lse,
                           const int32_t *t, long rows, int C) {
    if (rows == 0) return;
    float g = gloss[0] / (float)rows;
#pragma omp parallel for schedule(static) if (rows * C > 32768)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *gr = gx + r * C;
        for (int j = 0; j < C; j++) {
            float p = expf(xr[j] - lse[r]);
            gr[j] += g * (p - (j == t[r] ? 1.0f : 0.0f));
        }
    }
}

// loss[0] = mean (a - b)^2
void cpu_mse_fwd(float *loss, const float *a, const float *b, long n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    loss[0] = n > 0 ? (float)(s / (double)n) : 0.0f;
}

// ga += 2 g (a - b) / n ; gb -= 2 g (a - b) / n  (either may be NULL)
void cpu_mse_bwd(float *ga, float *gb, const float *gloss, const float *a, const float *b, long n) {
    if (n == 0) return;
    float g = 2.0f * gloss[0] / (float)n;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        float d = g * (a[i] - b[i]);
        if (ga) ga[i] += d;
        if (gb) gb[i] -= d;
    }
}
