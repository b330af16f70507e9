// cpu_movement.c: data movement (permute, block copy) and integer sequences (arange). Semantics: kernels/kernels.h.
#include "kernels/cpu/cpu_kernels.h"
#include <string.h>

// y = x.permute(perm) for a 4-D x of shape `shape`; y's shape is shape[perm[0..3]].
// Output-major loop: y is written contiguously, x is gathered through its strides.
void cpu_permute(float *y, const float *x, const int shape[4], const int perm[4], bool accumulate) {
    long xstride[4];   // element strides of x's dims
    xstride[3] = 1;
    for (int d = 2; d >= 0; d--) xstride[d] = xstride[d + 1] * shape[d + 1];
    int ys[4];         // y's shape
    long s[4];         // stride in x of y's dim k
    for (int k = 0; k < 4; k++) {
        ys[k] = shape[perm[k]];
        s[k] = xstride[perm[k]];
    }
    long outer = (long)ys[0] * ys[1];
#pragma omp parallel for schedule(static) if (outer * ys[2] * ys[3] > 32768)
    for (long o = 0; o < outer; o++) {
        long i0 = o / ys[1], i1 = o % ys[1];
        const float *xo = x + i0 * s[0] + i1 * s[1];
        float *yo = y + o * (long)ys[2] * ys[3];
        for (int i2 = 0; i2 < ys[2]; i2++) {
            const float *xr = xo + i2 * s[2];
            float *yr = yo + (long)i2 * ys[3];
            if (accumulate)
                for (int i3 = 0; i3 < ys[3]; i3++) yr[i3] += xr[i3 * s[3]];
            else
                for (int i3 = 0; i3 < ys[3]; i3++) yr[i3] = xr[i3 * s[3]];
        }
    }
}

// src (outer, src_dim, inner) rows [src_start, +len) -> dst (outer, dst_dim, inner)
// rows [dst_start, +len); each (outer, row) pair is a contiguous run of `inner` floats.
void cpu_block_copy(float *dst, int dst_dim, int dst_start, const float *src, int src_dim,
                    int src_start, long outer, int len, long inner, bool accumulate) {
    long run = (long)len * inner;   // the len rows of one outer index are contiguous
#pragma omp parallel for schedule(static) if (outer * run > 32768)
    for (long o = 0; o < outer; o++) {
        float *d = dst + (o * dst_dim + dst_start) * inner;
        const float *s = src + (o * src_dim + src_start) * inner;
        if (accumulate)
            for (long i = 0; i < run; i++) d[i] += s[i];
        else if (run)
            memcpy(d, s, (size_t)run * sizeof(float));
    }
}

// y[i] = start + i * step.
void cpu_arange_i32(int32_t *y, int32_t start, int32_t step, long n) {
    for (long i = 0; i < n; i++) y[i] = (int32_t)(start + (int64_t)i * step);
}
