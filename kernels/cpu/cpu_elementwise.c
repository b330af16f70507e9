// cpu_elementwise.c: element-wise kernels of the CPU backend (semantics: kernels/kernels.h).
// The scalar math comes from kernels/elementwise.h, shared with the CUDA kernels.
// Backward kernels accumulate (+=) into gradient buffers.
#include "kernels/cpu/cpu_kernels.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "kernels/elementwise.h"

// Below this many elements a loop runs on one thread (OpenMP start-up costs more).
#define PAR_MIN 32768L
// Columns per task in reductions over rows (embedding_bwd); rows per partial sum in
// binary_bwd's gb.
#define COL_BLOCK 64L
#define ROW_CHUNK 64L

// ---------------------------------------------------------------- binary ops
// Work on [s, e) of the flattened index in runs that do not wrap around b, so the inner
// loops are contiguous in a, b and y, free of divisions, and vectorise.
#define BLOCK 4096L
#define FOR_RUNS(s, e, nb, ...) do {                                    \
        long i_ = (s), j_ = (s) % (nb);                                 \
        while (i_ < (e)) {                                              \
            long len_ = (e) - i_ < (nb) - j_ ? (e) - i_ : (nb) - j_;    \
            __VA_ARGS__;                                                \
            i_ += len_;                                                 \
            j_ = 0;                                                     \
        } } while (0)

// y (n) = a (n) op b (nb), b broadcast over the leading dims: b index = i % nb.
void cpu_binary_fwd(BinaryOp op, float *y, const float *a, const float *b, long n, long nb) {
    long nblk = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long blk = 0; blk < nblk; blk++) {
        long s = blk * BLOCK, e = s + BLOCK < n ? s + BLOCK : n;
        FOR_RUNS(s, e, nb, {
            float *yy = y + i_;
            const float *aa = a + i_, *bb = b + j_;
            switch (op) {
            case BIN_ADD: for (long k = 0; k < len_; k++) yy[k] = aa[k] + bb[k]; break;
            case BIN_SUB: for (long k = 0; k < len_; k++) yy[k] = aa[k] - bb[k]; break;
            default: for (long k = 0; k < len_; k++) yy[k] = aa[k] * bb[k]; break;
            }
        });
    }
}

// ga (n) += gy * d/da ; gb (nb) += sum over the broadcast rows of gy * d/db.
// ga and gb may alias (op(x, x)): the two passes run one after the other.
void cpu_binary_bwd(BinaryOp op, float *ga, float *gb, const float *gy, const float *a,
                    const float *b, long n, long nb) {
    if (ga) {
        long nblk = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long blk = 0; blk < nblk; blk++) {
            long s = blk * BLOCK, e = s + BLOCK < n ? s + BLOCK : n;
            FOR_RUNS(s, e, nb, {
                float *gg = ga + i_;
                const float *gyy = gy + i_, *bb = b + j_;
                if (op == BIN_MUL) for (long k = 0; k < len_; k++) gg[k] += gyy[k] * bb[k];
                else for (long k = 0; k < len_; k++) gg[k] += gyy[k];
            });
        }
    }
    if (gb && nb > 0) {
        // Column sums over the rows, reading rows contiguously: fixed chunks of ROW_CHUNK
        // rows sum into double partials, then the partials add up in chunk order, so the
        // result does not depend on the thread count.
        long rows = n / nb, nch = (rows + ROW_CHUNK - 1) / ROW_CHUNK;
        double *part = cpu_alloc((size_t)nch * nb * sizeof(double));   // (nch, nb)
#pragma omp parallel for schedule(static) if (n > PAR_MIN && nch > 1)
        for (long ch = 0; ch < nch; ch++) {
            double *acc = part + ch * nb;
            for (long j = 0; j < nb; j++) acc[j] = 0.0;
            long r1 = (ch + 1) * ROW_CHUNK < rows ? (ch + 1) * ROW_CHUNK : rows;
            for (long r = ch * ROW_CHUNK; r < r1; r++) {
                const float *gyr = gy + r * nb, *ar = a + r * nb;
                if (op == BIN_MUL) for (long j = 0; j < nb; j++) acc[j] += (double)gyr[j] * ar[j];
                else if (op == BIN_SUB) for (long j = 0; j < nb; j++) acc[j] -= (double)gyr[j];
                else for (long j = 0; j < nb; j++) acc[j] += (double)gyr[j];
            }
        }
#pragma omp parallel for schedule(static) if (n > PAR_MIN && nb >= 1024)
        for (long j = 0; j < nb; j++) {
            double t = 0.0;
            for (long ch = 0; ch < nch; ch++) t += part[ch * nb + j];
            gb[j] += (float)t;
        }
        cpu_free(part);
    }
}

void cpu_axpy(long n, float alpha, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) y[i] += alpha * x[i];
}

void cpu_scale(long n, float alpha, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = alpha * x[i];
}

void cpu_fill(float *y, float v, long n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = v;
}

// ---------------------------------------------------------------- activations
// One loop per row of kernels/unary_ops.h.
void cpu_unary_fwd(UnaryOp op, float *y, const float *x, long n) {
    switch (op) {
#define CPU_UNARY_FWD(e, name, f, df)                                   \
    case e:                                                            \
        _Pragma("omp parallel for schedule(static) if (n > PAR_MIN / 8)") \
        for (long i = 0; i < n; i++) y[i] = f(x[i]);                   \
        return;
    HYP_UNARY_OPS(CPU_UNARY_FWD)
#undef CPU_UNARY_FWD
    default: break;
    }
    HYP_FATAL("unary_fwd: unknown op %d", (int)op);
}

// gx (n) += gy * f'(x)
void cpu_unary_bwd(UnaryOp op, float *gx, const float *gy, const float *x, long n) {
    switch (op) {
#define CPU_UNARY_BWD(e, name, f, df)                                   \
    case e:                                                            \
        _Pragma("omp parallel for schedule(static) if (n > PAR_MIN / 8)") \
        for (long i = 0; i < n; i++) gx[i] += gy[i] * df(x[i]);        \
        return;
    HYP_UNARY_OPS(CPU_UNARY_BWD)
#undef CPU_UNARY_BWD
    default: break;
    }
    HYP_FATAL("unary_bwd: unknown op %d", (int)op);
}

// ---------------------------------------------------------------- dropout
// Element i is multiplied by hyp_dropout_mult(seed, offset, i, p): 0 or 1/(1-p).
// cpu_dropout_mults computes those multipliers for elements [i0, i0 + n), bit-identical to
// hyp_philox_uniform, but with one Philox block per 4 elements, 16 blocks per pass.

// Philox4x32-10 (hyp_philox4x32) of the 16 counters ctr .. ctr+15, each as
// hyp_philox_uniform builds it (low word, high word, 0, 0): w[4j + l] = word l of counter j.
static void philox16(uint32_t w[64], uint64_t ctr, uint64_t seed) {
#if defined(__AVX512F__)
    // 8 counters per register, one 32-bit word per 64-bit lane: vpmuludq gives the full
    // 32x32->64 product; only the low 32 bits of a lane are ever read.
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
    const __m512i step = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    for (int h = 0; h < 2; h++) {
        __m512i c = _mm512_add_epi64(_mm512_set1_epi64((long long)(ctr + 8u * h)), step);
        __m512i c0 = c, c1 = _mm512_srli_epi64(c, 32), c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
        uint32_t key0 = (uint32_t)seed, key1 = (uint32_t)(seed >> 32);
        for (int r = 0; r < 10; r++) {
            __m512i p0 = _mm512_mul_epu32(c0, m0), p1 = _mm512_mul_epu32(c2, m1);
            __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), c1), _mm512_set1_epi64(key0));
            __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), c3), _mm512_set1_epi64(key1));
            c1 = p1, c3 = p0, c0 = n0, c2 = n2;
            key0 += 0x9E3779B9u;
            key1 += 0xBB67AE85u;
        }
        // 4 words x 8 counters -> counter-major order, in registers.
        __m256i w0 = _mm512_cvtepi64_epi32(c0), w1 = _mm512_cvtepi64_epi32(c1), w2 = _mm512_cvtepi64_epi32(c2),
                w3 = _mm512_cvtepi64_epi32(c3);
        __m256i a = _mm256_unpacklo_epi32(w0, w1), b = _mm256_unpacklo_epi32(w2, w3);   // counters 0,1 | 4,5
        __m256i cc = _mm256_unpackhi_epi32(w0, w1), d = _mm256_unpackhi_epi32(w2, w3);  // counters 2,3 | 6,7
        __m256i r0 = _mm256_unpacklo_epi64(a, b), r1 = _mm256_unpackhi_epi64(a, b);      // 0 | 4, 1 | 5
        __m256i r2 = _mm256_unpacklo_epi64(cc, d), r3 = _mm256_unpackhi_epi64(cc, d);    // 2 | 6, 3 | 7
        __m256i *out = (__m256i *)(w + 32 * h);
        _mm256_storeu_si256(out + 0, _mm256_permute2x128_si256(r0, r1, 0x20));   // counters 0, 1
        _mm256_storeu_si256(out + 1, _mm256_permute2x128_si256(r2, r3, 0x20));   // 2, 3
        _mm256_storeu_si256(out + 2, _mm256_permute2x128_si256(r0, r1, 0x31));   // 4, 5
        _mm256_storeu_si256(out + 3, _mm256_permute2x128_si256(r2, r3, 0x31));   // 6, 7
    }
#else
    for (int j = 0; j < 16; j++) {
        uint64_t c = ctr + (uint64_t)j;
        uint32_t x[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0u, 0u};
        hyp_philox4x32(x, (uint32_t)seed, (uint32_t)(seed >> 32));
        for (int l = 0; l < 4; l++) w[4 * j + l] = x[l];
    }
#endif
}

void cpu_dropout_mults(float *m, uint64_t i0, long n, float p, uint64_t seed, uint64_t offset) {
    const float keep = 1.0f / (1.0f - p);
    uint64_t first = i0 >> 2, last = (i0 + (uint64_t)n + 3) >> 2;   // counter blocks to draw
    for (uint64_t g = first; g < last; g += 16) {
        uint32_t w[64];   // element 4g + e's word
        philox16(w, offset + g, seed);
        uint64_t e0 = g << 2, lo = e0 > i0 ? e0 : i0, hi = e0 + 64 < i0 + (uint64_t)n ? e0 + 64 : i0 + (uint64_t)n;
        const uint32_t *wl = w + (lo - e0);
        float *ml = m + (lo - i0);
#pragma omp simd
        for (long e = 0; e < (long)(hi - lo); e++)
            ml[e] = (float)(wl[e] >> 8) * (1.0f / 16777216.0f) >= p ? keep : 0.0f;
    }
}

void cpu_dropout_fwd(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (long i0 = 0; i0 < n; i0 += DROP_CHUNK) {
        float m[DROP_CHUNK];
        long len = n - i0 < DROP_CHUNK ? n - i0 : DROP_CHUNK;
        cpu_dropout_mults(m, (uint64_t)i0, len, p, seed, offset);
        for (long i = 0; i < len; i++) y[i0 + i] = x[i0 + i] * m[i];
    }
}

// gx (n) += gy * mask / (1-p), the mask regenerated from (seed, offset).
void cpu_dropout_bwd(float *gx, const float *gy, long n, float p, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (long i0 = 0; i0 < n; i0 += DROP_CHUNK) {
        float m[DROP_CHUNK];
        long len = n - i0 < DROP_CHUNK ? n - i0 : DROP_CHUNK;
        cpu_dropout_mults(m, (uint64_t)i0, len, p, seed, offset);
        for (long i = 0; i < len; i++) gx[i0 + i] += gy[i0 + i] * m[i];
    }
}

// ---------------------------------------------------------------- embedding
// y (n, D) = table[ids[i]], table (V, D). ids were range-checked by op_embedding.
void cpu_embedding_fwd(float *y, const float *table, const int32_t *ids, long n, int D) {
#pragma omp parallel for schedule(static) if (n * D > PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float *row = table + (long)ids[i] * D;
        float *yi = y + i * D;
        for (int d = 0; d < D; d++) yi[d] = row[d];
    }
}

// gtable (V, D) += scatter of gy (n, D) by ids. Repeated ids accumulate; each task owns a
// block of columns, so no two threads write the same element (and the order is fixed).
void cpu_embedding_bwd(float *gtable, const float *gy, const int32_t *ids, long n, int D, int padding_idx) {
    long nblocks = ((long)D + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * D > PAR_MIN && nblocks > 1)
    for (long blk = 0; blk < nblocks; blk++) {
        long d0 = blk * COL_BLOCK, d1 = d0 + COL_BLOCK < D ? d0 + COL_BLOCK : D;
        for (long i = 0; i < n; i++) {
            if (ids[i] == padding_idx) continue;
            float *row = gtable + (long)ids[i] * D;
            const float *gi = gy + i * D;
            for (long d = d0; d < d1; d++) row[d] += gi[d];
        }
    }
}

// ---------------------------------------------------------------- dtype conversion
void cpu_f32_to_bf16(uint16_t *y, const float *x, long n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = hyp_f32_to_bf16(x[i]);
}

void cpu_bf16_to_f32(float *y, const uint16_t *x, long n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = hyp_bf16_to_f32(x[i]);
}

// ---------------------------------------------------------------- per-batch bias rows
// y[o,m,i] = x[o,m,i] + b[o,i]
void cpu_add_rows_fwd(float *y, const float *x, const float *b, long outer, long mid, int inner) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * mid * inner > PAR_MIN)
    for (long o = 0; o < outer; o++)
        for (long m = 0; m < mid; m++) {
            const float *xr = x + (o * mid + m) * inner, *br = b + o * inner;
            float *yr = y + (o * mid + m) * inner;
            for (int i = 0; i < inner; i++) yr[i] = xr[i] + br[i];
        }
}

// gb[o,i] += sum_m gy[o,m,i]; each o is owned by one thread (race-free, fixed order).
void cpu_add_rows_bwd(float *gb, const float *gy, long outer, long mid, int inner) {
#pragma omp parallel for schedule(static) if (outer * mid * inner > PAR_MIN && outer > 1)
    for (long o = 0; o < outer; o++) {
        float *g = gb + o * inner;
        for (long m = 0; m < mid; m++) {
            const float *r = gy + (o * mid + m) * inner;
            for (int i = 0; i < inner; i++) g[i] += r[i];
        }
    }
}
