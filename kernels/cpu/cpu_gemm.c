// cpu_gemm.c: matmul on OpenBLAS sgemm. fp32 is the specification; bf16 and tf32 are
// emulated with the roundings the GPU's tensor cores see (kernels.h, docs/precision.md):
// operands rounded (or bf16 operands widened exactly) into fp32 scratch, products
// accumulated in fp32 by sgemm (a bf16 x bf16 product is exact in fp32), and for bf16 the
// result rounded to bf16 before beta C is added.
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/elementwise.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#define ROUND_PAR_MIN 32768L   // elements below which rounding loops stay on one thread

// The fp32 GEMM (kernels.h semantics with prec F32).
static void sgemm_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, long long strideA,
                          const float *B, long long strideB, float beta, float *C, long long strideC, int batch) {
    if (M == 0 || N == 0) return;
    int lda = ta ? M : K, ldb = tb ? K : N;
    if (K == 0) {   // BLAS leaves C untouched for K = 0 only when beta is 1
        for (int z = 0; z < batch; z++)
            for (long i = 0; i < (long)M * N; i++) C[z * strideC + i] = beta == 0.0f ? 0.0f : beta * C[z * strideC + i];
        return;
    }
    // A broadcast 2-D B with a batched A folds into one tall GEMM (better blocking).
    if (batch > 1 && strideB == 0 && !ta && strideA == (long long)M * K && strideC == (long long)M * N) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M * batch, N, K,
                    alpha, A, lda, B, ldb, beta, C, N);
        return;
    }
    // Many small matrices (attention heads, per-query q-nets): one thread per matrix.
    // OpenBLAS's OpenMP build runs single-threaded inside a parallel region, so this
    // replaces a fork/join per tiny GEMM with one for the whole batch.
    if (strideC != 0 && (batch >= 2 * omp_get_max_threads() || (batch > 1 && (double)M * N * K < 64.0 * 64 * 64))) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int z = 0; z < batch; z++)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        M, N, K, alpha, A + z * strideA, lda, B + z * strideB, ldb, beta, C + z * strideC, N);
        return;
    }
    for (int z = 0; z < batch; z++)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A + z * strideA, lda, B + z * strideB, ldb, beta, C + z * strideC, N);
}

// Elements from the first to the last that a strided batch of mat-element matrices touches.
static size_t span_elems(long long stride, size_t mat, int batch) {
    return batch > 1 ? (size_t)stride * (size_t)(batch - 1) + mat : mat;
}

// An operand as the tensor cores read it, in fp32: bf16 widened, or fp32 rounded to prec.
static float *operand_copy(const void *x, bool is_bf16, size_t n, MatmulPrecision prec) {
    float *y = malloc((n ? n : 1) * sizeof(float));   // (n,)
    HYP_CHECK(y, "out of host memory for a %zu-element GEMM operand", n);
    const long len = (long)n;
    if (is_bf16) {
        const uint16_t *h = x;
#pragma omp parallel for schedule(static) if (len > ROUND_PAR_MIN)
        for (long i = 0; i < len; i++) y[i] = hyp_bf16_to_f32(h[i]);
    } else if (prec == HYP_MATMUL_BF16) {
        const float *f = x;
#pragma omp parallel for schedule(static) if (len > ROUND_PAR_MIN)
        for (long i = 0; i < len; i++) y[i] = hyp_round_bf16(f[i]);
    } else {
        const float *f = x;
#pragma omp parallel for schedule(static) if (len > ROUND_PAR_MIN)
        for (long i = 0; i < len; i++) y[i] = hyp_round_tf32(f[i]);
    }
    return y;
}

// C[z] (M, N) += bias (N) on every row.
static void add_bias(float *C, long long strideC, const float *bias, int M, int N, int batch) {
    for (int z = 0; z < batch; z++)
#pragma omp parallel for schedule(static) if ((long)M * N > ROUND_PAR_MIN)
        for (int i = 0; i < M; i++) {
            float *row = C + z * strideC + (long)i * N;
            for (int j = 0; j < N; j++) row[j] += bias[j];
        }
}

void cpu_gemm_ex(bool ta, bool tb, int M, int N, int K, float alpha, const void *A, bool a_bf16,
                 long long strideA, const void *B, bool b_bf16, long long strideB, const float *bias, float beta,
                 float *C, long long strideC, int batch, MatmulPrecision prec) {
    HYP_CHECK(prec == HYP_MATMUL_BF16 || (!a_bf16 && !b_bf16), "gemm: a bf16 operand needs bf16 precision");
    if (M == 0 || N == 0 || batch == 0) return;
    if (prec == HYP_MATMUL_F32) {
        sgemm_batched(ta, tb, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC, batch);
        if (bias) add_bias(C, strideC, bias, M, N, batch);
        return;
    }
    float *a = operand_copy(A, a_bf16, span_elems(strideA, (size_t)M * K, batch), prec);   // A rounded
    float *b = operand_copy(B, b_bf16, span_elems(strideB, (size_t)K * N, batch), prec);   // B rounded
    if (prec == HYP_MATMUL_TF32) {
        sgemm_batched(ta, tb, M, N, K, alpha, a, strideA, b, strideB, beta, C, strideC, batch);
        if (bias) add_bias(C, strideC, bias, M, N, batch);
    } else {   // BF16: C = bf16(alpha op(A) op(B) + bias) (+ beta C)
        float *p = C;   // the fp32 product: in place when C is not read, else (batch, M, N) scratch
        long long strideP = strideC;
        if (beta != 0.0f) {
            p = malloc((size_t)M * N * batch * sizeof(float));
            HYP_CHECK(p, "out of host memory for a %ld-element GEMM product", (long)M * N * batch);
            strideP = (long long)M * N;
        }
        sgemm_batched(ta, tb, M, N, K, alpha, a, strideA, b, strideB, 0.0f, p, strideP, batch);
        for (int z = 0; z < batch; z++) {
            float *cz = C + z * strideC;
            const float *pz = p + z * strideP;
#pragma omp parallel for schedule(static) if ((long)M * N > ROUND_PAR_MIN)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    const long e = (long)i * N + j;
                    const float r = hyp_round_bf16(bias ? pz[e] + bias[j] : pz[e]);
                    cz[e] = beta == 0.0f ? r : r + beta * cz[e];
                }
        }
        if (p != C) free(p);
    }
    free(a);
    free(b);
}

void cpu_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, long long strideA,
              const float *B, long long strideB, float beta, float *C, long long strideC, int batch,
              MatmulPrecision prec) {
    cpu_gemm_ex(ta, tb, M, N, K, alpha, A, false, strideA, B, false, strideB, NULL, beta, C, strideC, batch, prec);
}
