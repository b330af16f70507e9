// cpu_norm.c: layernorm (plain and fused with a residual add) and masked softmax on the CPU
// (semantics: kernels/kernels.h). Row statistics are computed in double, two-pass.
// Backward kernels accumulate (+=) into gradient buffers.
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/elementwise.h"
#include <math.h>

#define PAR_MIN_ROWS 8
#define LN_ROW_CHUNK 64L   // rows per partial sum of the weight/bias gradients

// ---------------------------------------------------------------- layernorm
// One row: y = (x - mean) * rstd [* w + b]; biased variance as torch.nn.LayerNorm.
static void ln_row(float *y, float *mean_out, float *rstd_out, const float *x, const float *w,
                   const float *b, int D, float eps) {
    double m = 0;
#pragma omp simd reduction(+ : m)
    for (int d = 0; d < D; d++) m += x[d];
    m /= D;
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int d = 0; d < D; d++) {
        double t = x[d] - m;
        v += t * t;
    }
    v /= D;
    float mean = (float)m;
    float rstd = (float)(1.0 / sqrt(v + (double)eps));
    if (w) {
#pragma omp simd
        for (int d = 0; d < D; d++) y[d] = (x[d] - mean) * rstd * w[d] + b[d];
    } else {
#pragma omp simd
        for (int d = 0; d < D; d++) y[d] = (x[d] - mean) * rstd;
    }
    if (mean_out) *mean_out = mean;
    if (rstd_out) *rstd_out = rstd;
}

// x, y (rows, D); w, b (D) or NULL; mean, rstd (rows).
void cpu_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, long rows, int D, float eps) {
#pragma omp parallel for schedule(static) if (rows >= PAR_MIN_ROWS && rows * D > 16384)
    for (long r = 0; r < rows; r++)
        ln_row(y + r * D, mean ? mean + r : NULL, rstd ? rstd + r : NULL, x + r * D, w, b, D, eps);
}

// s = a + r (saved), y = LN(s). s may not alias a or r.
void cpu_add_layernorm_fwd(float *y, float *s, float *mean, float *rstd, const float *a,
                           const float *r, const float *w, const float *b, long rows, int D,
                           float eps) {
#pragma omp parallel for schedule(static) if (rows >= PAR_MIN_ROWS && rows * D > 16384)
    for (long i = 0; i < rows; i++) {
        float *si = s + i * D;
        for (int d = 0; d < D; d++) si[d] = a[i * D + d] + r[i * D + d];
        ln_row(y + i * D, mean ? mean + i : NULL, rstd ? rstd + i : NULL, si, w, b, D, eps);
    }
}

// With xhat = (x - mean) * rstd and g = gy * w (or gy without affine):
//   gx += rstd * (g - mean(g) - xhat * mean(g * xhat))
//   gw += sum_rows gy * xhat,  gb += sum_rows gy
void cpu_layernorm_bwd(float *gx, float *gw, float *gb, const float *gy, const float *x,
                       const float *mean, const float *rstd, const float *w, long rows, int D) {
    float *ones = NULL;   // affine-free LayerNorm: w = 1, so one vectorised loop serves both
    if (!w) {
        ones = cpu_alloc((size_t)D * sizeof(float));
        for (int d = 0; d < D; d++) ones[d] = 1.0f;
        w = ones;
    }
    if (gx) {
#pragma omp parallel for schedule(static) if (rows >= PAR_MIN_ROWS && rows * D > 16384)
        for (long r = 0; r < rows; r++) {
            const float *xr = x + r * D, *gyr = gy + r * D;
            float *gxr = gx + r * D;
            float m = mean[r], rs = rstd[r];
            double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
            for (int d = 0; d < D; d++) {
                float g = gyr[d] * w[d], xh = (xr[d] - m) * rs;
                sg += g;
                sgx += (double)g * xh;
            }
            float mg = (float)(sg / D), mgx = (float)(sgx / D);
#pragma omp simd
            for (int d = 0; d < D; d++) {
                float g = gyr[d] * w[d], xh = (xr[d] - m) * rs;
                gxr[d] += rs * (g - mg - xh * mgx);
            }
        }
    }
    if (gw || gb) {
        // Column sums over the rows, read contiguously: fixed chunks of LN_ROW_CHUNK rows
        // into double partials, added in chunk order (independent of the thread count).
        long nch = (rows + LN_ROW_CHUNK - 1) / LN_ROW_CHUNK;
        double *pw = cpu_alloc((size_t)nch * D * 2 * sizeof(double)), *pb = pw + nch * D;   // (nch, D) each
#pragma omp parallel for schedule(static) if (nch > 1 && rows * D > 16384)
        for (long ch = 0; ch < nch; ch++) {
            double *aw = pw + ch * D, *ab = pb + ch * D;
            for (int d = 0; d < D; d++) aw[d] = ab[d] = 0.0;
            long r1 = (ch + 1) * LN_ROW_CHUNK < rows ? (ch + 1) * LN_ROW_CHUNK : rows;
            for (long r = ch * LN_ROW_CHUNK; r < r1; r++) {
                const float *xr = x + r * D, *gyr = gy + r * D;
                float m = mean[r], rs = rstd[r];
#pragma omp simd
                for (int d = 0; d < D; d++) {
                    aw[d] += (double)gyr[d] * ((xr[d] - m) * rs);
                    ab[d] += gyr[d];
                }
            }
        }
        for (int d = 0; d < D; d++) {
            double tw = 0, tb = 0;
            for (long ch = 0; ch < nch; ch++) tw += pw[ch * D + d], tb += pb[ch * D + d];
            if (gw) gw[d] += (float)tw;
            if (gb) gb[d] += (float)tb;
        }
        cpu_free(pw);
    }
    cpu_free(ones);
}

// ---------------------------------------------------------------- softmax
// x, y (rows, cols); mask (rows / rows_per_mask, cols) int32 with 0 = padding, or NULL.
// Padded entries get probability 0; a fully padded row is all zeros.
// One row: y = softmax(x) over the entries with mr[j] != 0 (mr NULL: all), 0 elsewhere.
// hyp_expf (shared with CUDA) and simd reductions keep the row vectorised; the sum is in
// double, in an order fixed by the build.
void cpu_softmax_row(float *yr, const float *xr, const int32_t *mr, int cols) {
    float mx = -INFINITY;
    if (mr) {
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < cols; j++) {
            float v = mr[j] ? xr[j] : -INFINITY;
            mx = v > mx ? v : mx;
        }
    } else {
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < cols; j++) mx = xr[j] > mx ? xr[j] : mx;
    }
    if (mx == -INFINITY) {   // every entry padded (or all -inf)
        for (int j = 0; j < cols; j++) yr[j] = 0.0f;
        return;
    }
    double sum = 0;
    if (mr) {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < cols; j++) {
            float e = hyp_expf(xr[j] - mx) * (float)(mr[j] != 0);   // hyp_expf is finite
            yr[j] = e;
            sum += e;
        }
    } else {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < cols; j++) {
            float e = hyp_expf(xr[j] - mx);
            yr[j] = e;
            sum += e;
        }
    }
    float inv = (float)(1.0 / sum);
#pragma omp simd
    for (int j = 0; j < cols; j++) yr[j] *= inv;
}
// One row: gx += y * (gy - <gy, y>).
void cpu_softmax_bwd_row(float *gxr, const float *gyr, const float *yr, int cols) {
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < cols; j++) dot += (double)gyr[j] * yr[j];
    float fd = (float)dot;
#pragma omp simd
    for (int j = 0; j < cols; j++) gxr[j] += yr[j] * (gyr[j] - fd);
}

void cpu_softmax_fwd(float *y, const float *x, const int32_t *mask, long rows, int cols,
                     long rows_per_mask) {
#pragma omp parallel for schedule(static) if (rows >= PAR_MIN_ROWS && rows * cols > 16384)
    for (long r = 0; r < rows; r++)
        cpu_softmax_row(y + r * cols, x + r * cols, mask ? mask + (r / rows_per_mask) * cols : NULL, cols);
}
void cpu_softmax_bwd(float *gx, const float *gy, const float *y, long rows, int cols) {
#pragma omp parallel for schedule(static) if (rows >= PAR_MIN_ROWS && rows * cols > 16384)
    for (long r = 0; r < rows; r++) cpu_softmax_bwd_row(gx + r * cols, gy + r * cols, y + r * cols, cols);
}

// ---------------------------------------------------------------- fused q-net activation
// y[r] = LN(ReLU(z[r] + b[o])) (+ residual), r = o*mid + m: the q-net's hidden layer with the
// same arithmetic as the differentiable path (add_rows, relu, layernorm with ln_row's double
// two-pass statistics, then add), so the fused inference equals it bitwise on the CPU.
void cpu_qnet_act_fwd(float *y, const float *z, const float *b, const float *x, bool x_shared,
                      long outer, long mid, int D, float eps) {
    long rows = outer * mid;
#pragma omp parallel for schedule(static) if (rows * D > 16384)
    for (long r = 0; r < rows; r++) {
        const float *zr = z + r * D, *br = b + (r / mid) * D;
        float *yr = y + r * D;
#pragma omp simd
        for (int d = 0; d < D; d++) yr[d] = hyp_relu(zr[d] + br[d]);
        ln_row(yr, NULL, NULL, yr, NULL, NULL, D, eps);
        const float *xr = x ? x + (x_shared ? r % mid : r) * D : NULL;
        if (xr) {
#pragma omp simd
            for (int d = 0; d < D; d++) yr[d] += xr[d];
        }
    }
}
