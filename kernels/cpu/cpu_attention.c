// cpu_attention.c: multi-head attention fused per (batch, head) on the CPU. The heads are
// read and written in place in the projections' (B, T, H*dh) layout through BLAS leading
// dimensions, so no permuted copies are made; softmax, mask and dropout run on the head's
// (Tq, Tk) block while it is in cache. One thread per head (OpenBLAS's OpenMP build runs
// single-threaded inside the parallel region). Same results as the composed path in
// autograd/ops_shape.c: the same GEMMs per head, softmax rows and Philox elements.
#include "kernels/cpu/cpu_kernels.h"
#include <cblas.h>
#include <stdlib.h>

void cpu_attention_fwd(float *y, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *mask, int B, int Tq, int Tk, int H, int dh, float scale, float p,
                       uint64_t seed, uint64_t offset) {
    const int D = H * dh;
    const long blk = (long)Tq * Tk;
#pragma omp parallel
    {
        float *pd = p > 0.0f ? cpu_alloc((size_t)blk * sizeof(float)) : NULL;   // (Tq, Tk)
#pragma omp for schedule(dynamic, 1)
        for (long bh = 0; bh < (long)B * H; bh++) {
            int b = (int)(bh / H), h = (int)(bh % H);
            const float *qb = q + (long)b * Tq * D + h * dh, *kb = k + (long)b * Tk * D + h * dh,
                        *vb = v + (long)b * Tk * D + h * dh;
            float *pr = probs + bh * blk;   // (Tq, Tk): scores, then probabilities in place
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, dh, scale, qb, D, kb, D, 0.0f, pr, Tk);
            for (int i = 0; i < Tq; i++)
                cpu_softmax_row(pr + (long)i * Tk, pr + (long)i * Tk, mask ? mask + (long)b * Tk : NULL, Tk);
            const float *use = pr;
            if (pd) {   // pd = probabilities * dropout multipliers of elements bh*blk + i
                cpu_dropout_mults(pd, (uint64_t)(bh * blk), blk, p, seed, offset);
                for (long i = 0; i < blk; i++) pd[i] *= pr[i];
                use = pd;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, dh, Tk, 1.0f, use, Tk, vb, D, 0.0f,
                        y + (long)b * Tq * D + h * dh, D);
        }
        cpu_free(pd);
    }
}

void cpu_attention_bwd(float *gq, float *gk, float *gv, const float *gy, const float *q, const float *k,
                       const float *v, const float *probs, int B, int Tq, int Tk, int H, int dh,
                       float scale, float p, uint64_t seed, uint64_t offset) {
    const int D = H * dh;
    const long blk = (long)Tq * Tk;
#pragma omp parallel
    {
        float *pd = p > 0.0f ? cpu_alloc((size_t)blk * sizeof(float)) : NULL;   // dropped probs
        float *dp = cpu_alloc((size_t)blk * sizeof(float));                      // d probs
        float *ds = cpu_alloc((size_t)blk * sizeof(float));                      // d scores
        float *mult = p > 0.0f ? cpu_alloc((size_t)blk * sizeof(float)) : NULL;
#pragma omp for schedule(dynamic, 1)
        for (long bh = 0; bh < (long)B * H; bh++) {
            int b = (int)(bh / H), h = (int)(bh % H);
            long oq = (long)b * Tq * D + h * dh, ok = (long)b * Tk * D + h * dh;
            const float *pr = probs + bh * blk, *use = pr;
            if (pd) {   // the mask regenerated from Philox, as multipliers
                cpu_dropout_mults(mult, (uint64_t)(bh * blk), blk, p, seed, offset);
                for (long i = 0; i < blk; i++) pd[i] = pr[i] * mult[i];
                use = pd;
            }
            if (gv)   // d v_h (Tk, dh) += dropped_probs^T d ctx_h
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, dh, Tq, 1.0f, use, Tk, gy + oq, D, 1.0f,
                            gv + ok, D);
            if (!gq && !gk) continue;
            // d probs (Tq, Tk) = d ctx_h v_h^T, through the dropout, then the softmax backward.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, dh, 1.0f, gy + oq, D, v + ok, D, 0.0f, dp, Tk);
            if (mult)
                for (long i = 0; i < blk; i++) dp[i] *= mult[i];
            for (long i = 0; i < blk; i++) ds[i] = 0.0f;
            for (int i = 0; i < Tq; i++) cpu_softmax_bwd_row(ds + (long)i * Tk, dp + (long)i * Tk, pr + (long)i * Tk, Tk);
            if (gq)   // d q_h (Tq, dh) += scale * d scores k_h
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, dh, Tk, scale, ds, Tk, k + ok, D, 1.0f,
                            gq + oq, D);
            if (gk)   // d k_h (Tk, dh) += scale * d scores^T q_h
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, dh, Tq, scale, ds, Tk, q + oq, D, 1.0f,
                            gk + ok, D);
        }
        cpu_free(pd), cpu_free(dp), cpu_free(ds), cpu_free(mult);
    }
}
