// cpu_search.c: the readable fp32 specification of the search kernels (kernels.h, "search").
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/elementwise.h"
#include <stdlib.h>
#include <string.h>

// s[r] = LN(ReLU(z[r] + b[o])) . w[o]: the hidden activation (cpu_qnet_act_fwd, no residual)
// of one row into a per-thread buffer, then the output dot product.
void cpu_qnet_out_dot(float *s, const float *z, const float *b, const float *w, long outer, long mid, int D,
                      float eps) {
    long rows = outer * mid;
#pragma omp parallel if (rows * D > 16384)
    {
        float *h = hyp_malloc((size_t)(D > 0 ? D : 1) * sizeof(float));   // (D)
#pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            long o = r / mid;
            cpu_qnet_act_fwd(h, z + r * D, b + o * D, NULL, false, 1, 1, D, eps);
            const float *wo = w + o * D;
            float acc = 0.0f;
            for (int d = 0; d < D; d++) acc += h[d] * wo[d];
            s[r] = acc;
        }
        free(h);
    }
}

// Min-heap of keys (root = the smallest kept key).
static void key_sift_down(uint64_t *h, int n, int i) {
    uint64_t x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (h[c] >= x) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

// Per row: heapify the old k keys (empty slots are 0, the smallest), then every new key larger
// than the root replaces it. kout is left as the heap (order unspecified, as the slot allows).
void cpu_topk_rows(uint64_t *kout, const uint64_t *kin, const float *scores, long rows, long n, long ld, int k,
                   int32_t base, const int32_t *skip, int32_t *bad) {
#pragma omp parallel for schedule(dynamic, 1) if (rows > 1 && rows * n > 65536)
    for (long r = 0; r < rows; r++) {
        uint64_t *h = kout + r * k;
        const float *sr = scores + r * ld;
        int32_t sk = skip ? skip[r] : -1;
        if (k > 0) memcpy(h, kin + r * k, (size_t)k * sizeof(uint64_t));
        for (int i = k / 2 - 1; i >= 0; i--) key_sift_down(h, k, i);
        for (long j = 0; j < n; j++) {
            int32_t idx = base + (int32_t)j;
            if (bad && !isfinite(sr[j]) && idx < bad[r]) bad[r] = idx;
            if (idx == sk || k == 0) continue;
            uint64_t key = hyp_search_key(sr[j], idx);
            if (key <= h[0]) continue;
            h[0] = key;
            key_sift_down(h, k, 0);
        }
    }
}

void cpu_dense_epilogue(int mode, float *G, const float *rv, const float *cv, long rows, long n) {
#pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (long i = 0; i < rows; i++) {
        float *g = G + i * n;
        if (mode == 0)
            for (long j = 0; j < n; j++) g[j] = hyp_l2_score(rv[i], cv[j], g[j]);
        else
            for (long j = 0; j < n; j++) g[j] = g[j] * hyp_inv_norm(cv[j]);
    }
}

void cpu_row_sumsq(float *out, const float *x, long n, int D) {
#pragma omp parallel for schedule(static) if (n > 256)
    for (long i = 0; i < n; i++) {
        const float *xr = x + i * D;
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += xr[d] * xr[d];
        out[i] = s;
    }
}

void cpu_gather_bf16_rows(float *y, const uint16_t *table, const int32_t *ids, long n, int D) {
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (long i = 0; i < n; i++) {
        const uint16_t *src = table + (long)ids[i] * D;
        for (int d = 0; d < D; d++) y[i * D + d] = hyp_bf16_to_f32(src[d]);
    }
}
