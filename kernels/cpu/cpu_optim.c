// cpu_optim.c: the optimizer kernels (AdamW update, sum of squares for the gradient norm).
// Semantics: kernels/kernels.h; the per-element AdamW formula is kernels/elementwise.h.
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/elementwise.h"
#include <math.h>
#include <stdlib.h>

// p, g, m, v (n): one AdamW step over a contiguous buffer (see hyp_adamw_elem).
void cpu_adamw_step(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                    double beta2, double eps, double weight_decay, double bias_corr1, double bias_corr2,
                    float grad_scale) {
    const HypAdamWCoef c = hyp_adamw_coef(lr, beta1, beta2, eps, weight_decay, bias_corr1, bias_corr2, grad_scale);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) hyp_adamw_elem(&p[i], &m[i], &v[i], g[i], c);
}

// adamw_step with the coefficient in memory: a non-finite *grad_scale (clip_coef's "skip")
// leaves p, m, v as they are.
void cpu_adamw_step_dev(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                        double beta2, double eps, double weight_decay, double bias_corr1, double bias_corr2,
                        const float *grad_scale) {
    const float s = *grad_scale;
    if (!isfinite(s)) return;
    cpu_adamw_step(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, bias_corr1, bias_corr2, s);
}

// The clipping coefficient from the sum of squares, and the non-finite guard of a step.
void cpu_clip_coef(HypClipState *st, const float *sumsq, const float *check, long n_check, double max_norm,
                   int32_t step, bool sticky) {
    const float norm = (float)sqrt((double)sumsq[0]);   // torch's fp32 norm
    bool bad = !isfinite(norm);
    for (long i = 0; i < n_check; i++) bad = bad || !isfinite(check[i]);
    const bool latched = sticky && isnan(st->coef);
    st->norm = norm;
    if (bad && st->bad_step == 0) st->bad_step = step;
    st->coef = bad || latched ? NAN : hyp_clip_coef(norm, max_norm);
}

// out[0] = sum x^2, in double. Fixed chunks summed in order, so the result does not
// depend on the thread count (exact resume compares runs bitwise).
#define SQ_CHUNK 32768L
void cpu_sum_squares(float *out, const float *x, long n) {
    if (n <= 0) { out[0] = 0.0f; return; }
    const long chunks = (n + SQ_CHUNK - 1) / SQ_CHUNK;
    double stack_part[64], *part = chunks <= 64 ? stack_part : hyp_malloc((size_t)chunks * sizeof(double));
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (long k = 0; k < chunks; k++) {
        const long lo = k * SQ_CHUNK, hi = lo + SQ_CHUNK < n ? lo + SQ_CHUNK : n;
        double s = 0;
        for (long i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[k] = s;
    }
    double s = 0;
    for (long k = 0; k < chunks; k++) s += part[k];
    if (part != stack_part) free(part);
    out[0] = (float)s;
}
