// cpu_elementwise.c: element-wise kernels of the CPU backend (semantics: kernels/kernels.h).
// The scalar math comes from kernels/elementwise.h, shared with the CUDA kernels.
// Backward kernels accumulate (+=) into gradient buffers.
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/elementwise.h"

// Below this many elements a loop runs on one thread (OpenMP start-up costs more).
#define PAR_MIN 32768L
// Columns per task in reductions over rows (binary_bwd's gb, embedding_bwd).
#define COL_BLOCK 64L

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
        // Race-free reduction: each task owns a block of columns and walks every row.
        long rows = n / nb, nblocks = (nb + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n > PAR_MIN && nblocks > 1)
        for (long blk = 0; blk < nblocks; blk++) {
            long j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < nb ? j0 + COL_BLOCK : nb;
            double acc[COL_BLOCK] = {0};
            for (long r = 0; r < rows; r++) {
                const float *gyr = gy + r * nb + j0, *ar = a + r * nb + j0;
                long w = j1 - j0;
                if (op == BIN_MUL) for (long k = 0; k < w; k++) acc[k] += (double)gyr[k] * ar[k];
                else if (op == BIN_SUB) for (long k = 0; k < w; k++) acc[k] -= (double)gyr[k];
                else for (long k = 0; k < w; k++) acc[k] += (double)gyr[k];
            }
            for (long j = j0; j < j1; j++) gb[j] += (float)acc[j - j0];
        }
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
void cpu_unary_fwd(UnaryOp op, float *y, const float *x, long n) {
    if (op == UN_RELU) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) y[i] = hyp_relu(x[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
        for (long i = 0; i < n; i++) y[i] = hyp_gelu(x[i]);
    }
}

// gx (n) += gy * f'(x)
void cpu_unary_bwd(UnaryOp op, float *gx, const float *gy, const float *x, long n) {
    if (op == UN_RELU) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) gx[i] += gy[i] * hyp_relu_grad(x[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
        for (long i = 0; i < n; i++) gx[i] += gy[i] * hyp_gelu_grad(x[i]);
    }
}

// ---------------------------------------------------------------- dropout
// Element i is multiplied by hyp_dropout_mult(seed, offset, i, p): 0 or 1/(1-p).
void cpu_dropout_fwd(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (long i = 0; i < n; i++) y[i] = x[i] * hyp_dropout_mult(seed, offset, (uint64_t)i, p);
}

// gx (n) += gy * mask / (1-p), the mask regenerated from (seed, offset).
void cpu_dropout_bwd(float *gx, const float *gy, long n, float p, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (long i = 0; i < n; i++) gx[i] += gy[i] * hyp_dropout_mult(seed, offset, (uint64_t)i, p);
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
