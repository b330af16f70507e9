// cpu_attention.c: memory-efficient multi-head attention on the CPU, the readable spec of
// the CUDA kernel (kernels/cuda/attention.cu): the same algorithm, tile by tile.
//
// Forward, per (batch, head) and tile of ATT_BQ queries, over tiles of ATT_BK keys:
//   S = scale Q K^T; running max m and sum l per query (online softmax): when a tile raises
//   m, the earlier sum and output rows are multiplied by exp(m_old - m_new);
//   P = exp(S - m) (0 for padding keys), l += sum P; O += (P * dropout multiplier) V.
// At the end O /= l and lse = m + log l. The (Tq, Tk) probabilities exist one tile at a time.
// Backward recomputes each tile's P = exp(S - lse) and, with Dr_i = dy_i . y_i (the softmax
// backward's row term, which dropout does not change: sum_j dP_ij P_ij = dy_i . y_i; for bf16
// summed in fp32 over the rounded dy and y, as PyTorch's SDPA does over its bf16 tensors),
//   dV += Pd^T dy,  dS = P * (dy V^T * multiplier - Dr),  dQ += scale dS K,  dK += scale dS^T Q.
// HYP_MATMUL_BF16 rounds every product input to bf16 (q, k, v, dy, the dropped probabilities
// and dS), accumulation stays fp32, as the tensor-core path does.
// One thread per (batch, head); a head's q, k, v, dy are gathered from the (B, T, H*dh)
// layout into contiguous per-thread buffers (rounded there for bf16), and the tiles' GEMMs
// go through BLAS (single-threaded inside the parallel region).
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/elementwise.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#define ATT_BQ 64   // queries per tile
#define ATT_BK 256  // keys per tile

// dst (T, dh) = head h of src (T, D) (rows D apart), rounded to bf16 when asked.
static void gather_head(float *dst, const float *src, int T, int D, int dh, bool bf16) {
    for (int t = 0; t < T; t++)
        for (int e = 0; e < dh; e++) {
            float x = src[(long)t * D + e];
            dst[(long)t * dh + e] = bf16 ? hyp_bf16_to_f32(hyp_f32_to_bf16(x)) : x;
        }
}

static inline float round_if(float x, bool bf16) { return bf16 ? hyp_bf16_to_f32(hyp_f32_to_bf16(x)) : x; }

// The largest of m and s[j] over the kept keys j (mk[j] != 0; mk NULL: every key). Separate
// loops with and without a mask, so both vectorise.
static float row_max(const float *s, const int32_t *mk, int n, float m) {
    if (mk) {
#pragma omp simd reduction(max : m)
        for (int j = 0; j < n; j++) {
            const float v = mk[j] ? s[j] : -INFINITY;
            m = v > m ? v : m;
        }
    } else {
#pragma omp simd reduction(max : m)
        for (int j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
    }
    return m;
}

// s[j] = exp(s[j] - mx), 0 for a padding key (hyp_expf is finite, so 0 * e is 0); the sum.
static float row_exp(float *s, const int32_t *mk, int n, float mx) {
    float sum = 0.0f;
    if (mk) {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            s[j] = hyp_expf(s[j] - mx) * (float)(mk[j] != 0);
            sum += s[j];
        }
    } else {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            s[j] = hyp_expf(s[j] - mx);
            sum += s[j];
        }
    }
    return sum;
}

// Dropout multipliers of tile rows [i0, i0+nq) x keys [j0, j0+nk) of head bh: element
// ((bh*Tq + i)*Tk + j) of Philox, as the composed path draws them. mult (nq, nk).
static void tile_mults(float *mult, long bh, int Tq, int Tk, int i0, int nq, int j0, int nk, float p,
                       uint64_t seed, uint64_t offset) {
    if (nk == Tk) {   // whole rows: one run of consecutive elements (vectorised Philox)
        cpu_dropout_mults(mult, (uint64_t)((bh * Tq + i0) * (long)Tk), (long)nq * Tk, p, seed, offset);
        return;
    }
    for (int r = 0; r < nq; r++)
        cpu_dropout_mults(mult + (long)r * nk, (uint64_t)((bh * Tq + i0 + r) * (long)Tk + j0), nk, p, seed, offset);
}

// The tile's scores s (nq, nk) = scale Q_i K_j^T and, with dropout, its multipliers; the
// first step of the forward and of the backward's recomputation.
static void tile_scores(float *s, float *mult, const float *qh, const float *kh, int i0, int nq, int j0, int nk,
                        int dh, float scale, long bh, int Tq, int Tk, float p, uint64_t seed, uint64_t offset) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, dh, scale, qh + (long)i0 * dh, dh, kh + (long)j0 * dh,
                dh, 0.0f, s, nk);
    if (p > 0.0f) tile_mults(mult, bh, Tq, Tk, i0, nq, j0, nk, p, seed, offset);
}

void cpu_attention_fwd(float *y, float *lse, const float *q, const float *k, const float *v, const int32_t *mask,
                       int B, int Tq, int Tk, int H, int dh, float scale, float p, uint64_t seed, uint64_t offset,
                       MatmulPrecision prec) {
    const int D = H * dh;
    const bool bf16 = prec == HYP_MATMUL_BF16;
#pragma omp parallel
    {
        float *qh = cpu_alloc((size_t)Tq * dh * sizeof(float));        // (Tq, dh)
        float *kh = cpu_alloc((size_t)Tk * dh * sizeof(float));        // (Tk, dh)
        float *vh = cpu_alloc((size_t)Tk * dh * sizeof(float));        // (Tk, dh)
        float *s = cpu_alloc((size_t)ATT_BQ * ATT_BK * sizeof(float));     // (nq, nk) scores, then Pd
        float *mult = cpu_alloc((size_t)ATT_BQ * ATT_BK * sizeof(float));  // (nq, nk)
        float *o = cpu_alloc((size_t)ATT_BQ * dh * sizeof(float));         // (nq, dh) unnormalised output
        float m[ATT_BQ], l[ATT_BQ];                                         // running max, sum
#pragma omp for schedule(dynamic, 1)
        for (long bh = 0; bh < (long)B * H; bh++) {
            const int b = (int)(bh / H), h = (int)(bh % H);
            const int32_t *mb = mask ? mask + (long)b * Tk : NULL;
            gather_head(qh, q + (long)b * Tq * D + h * dh, Tq, D, dh, bf16);
            gather_head(kh, k + (long)b * Tk * D + h * dh, Tk, D, dh, bf16);
            gather_head(vh, v + (long)b * Tk * D + h * dh, Tk, D, dh, bf16);
            for (int i0 = 0; i0 < Tq; i0 += ATT_BQ) {
                const int nq = Tq - i0 < ATT_BQ ? Tq - i0 : ATT_BQ;
                for (int r = 0; r < nq; r++) m[r] = -INFINITY, l[r] = 0.0f;
                for (long e = 0; e < (long)nq * dh; e++) o[e] = 0.0f;
                for (int j0 = 0; j0 < Tk; j0 += ATT_BK) {
                    const int nk = Tk - j0 < ATT_BK ? Tk - j0 : ATT_BK;
                    tile_scores(s, mult, qh, kh, i0, nq, j0, nk, dh, scale, bh, Tq, Tk, p, seed, offset);
                    for (int r = 0; r < nq; r++) {
                        float *sr = s + (long)r * nk;
                        const int32_t *mk = mb ? mb + j0 : NULL;
                        const float mx = row_max(sr, mk, nk, m[r]);
                        if (mx == -INFINITY) {   // every key so far is padding
                            for (int j = 0; j < nk; j++) sr[j] = 0.0f;
                            continue;
                        }
                        const float alpha = hyp_expf(m[r] - mx);   // ~0 the first time (m = -inf)
                        const float sum = row_exp(sr, mk, nk, mx);
                        if (p > 0.0f) {
                            const float *mr = mult + (long)r * nk;
#pragma omp simd
                            for (int j = 0; j < nk; j++) sr[j] *= mr[j];
                        }
                        if (bf16)
                            for (int j = 0; j < nk; j++) sr[j] = round_if(sr[j], true);
                        l[r] = l[r] * alpha + sum;
                        m[r] = mx;
                        if (alpha != 1.0f)
                            for (int e = 0; e < dh; e++) o[(long)r * dh + e] *= alpha;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, nk, 1.0f, s, nk,
                                vh + (long)j0 * dh, dh, 1.0f, o, dh);
                }
                for (int r = 0; r < nq; r++) {
                    float *yr = y + ((long)b * Tq + i0 + r) * D + h * dh;
                    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;   // l = 0: every key padding
                    for (int e = 0; e < dh; e++) yr[e] = o[(long)r * dh + e] * inv;
                    lse[bh * Tq + i0 + r] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
                }
            }
        }
        cpu_free(qh), cpu_free(kh), cpu_free(vh), cpu_free(s), cpu_free(mult), cpu_free(o);
    }
}

void cpu_attention_bwd(float *gq, float *gk, float *gv, const float *gy, const float *y, const float *q,
                       const float *k, const float *v, const int32_t *mask, const float *lse, int B, int Tq, int Tk,
                       int H, int dh, float scale, float p, uint64_t seed, uint64_t offset, MatmulPrecision prec) {
    if (!gq && !gk && !gv) return;
    const int D = H * dh;
    const bool bf16 = prec == HYP_MATMUL_BF16;
#pragma omp parallel
    {
        float *qh = cpu_alloc((size_t)Tq * dh * sizeof(float)), *gyh = cpu_alloc((size_t)Tq * dh * sizeof(float));
        float *kh = cpu_alloc((size_t)Tk * dh * sizeof(float)), *vh = cpu_alloc((size_t)Tk * dh * sizeof(float));
        float *dq = cpu_alloc((size_t)Tq * dh * sizeof(float));                         // (Tq, dh)
        float *dk = cpu_alloc((size_t)Tk * dh * sizeof(float)), *dv = cpu_alloc((size_t)Tk * dh * sizeof(float));
        float *dr = cpu_alloc((size_t)Tq * sizeof(float));                              // (Tq) dy.y
        float *pt = cpu_alloc((size_t)ATT_BQ * ATT_BK * sizeof(float));   // (nq, nk) P
        float *pd = cpu_alloc((size_t)ATT_BQ * ATT_BK * sizeof(float));   // dropped P
        float *dp = cpu_alloc((size_t)ATT_BQ * ATT_BK * sizeof(float));   // d dropped P, then dS
        float *mult = cpu_alloc((size_t)ATT_BQ * ATT_BK * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (long bh = 0; bh < (long)B * H; bh++) {
            const int b = (int)(bh / H), h = (int)(bh % H);
            const long oq = (long)b * Tq * D + h * dh, ok = (long)b * Tk * D + h * dh;
            const int32_t *mb = mask ? mask + (long)b * Tk : NULL;
            gather_head(qh, q + oq, Tq, D, dh, bf16);
            gather_head(gyh, gy + oq, Tq, D, dh, bf16);
            gather_head(kh, k + ok, Tk, D, dh, bf16);
            gather_head(vh, v + ok, Tk, D, dh, bf16);
            for (int i = 0; i < Tq; i++) {   // fp32 sum of the (bf16: rounded) dy and y, as SDPA's
                float acc = 0.0f;
                for (int e = 0; e < dh; e++) acc += gyh[(long)i * dh + e] * round_if(y[oq + (long)i * D + e], bf16);
                dr[i] = acc;
            }
            for (long e = 0; e < (long)Tq * dh; e++) dq[e] = 0.0f;
            for (long e = 0; e < (long)Tk * dh; e++) dk[e] = dv[e] = 0.0f;
            for (int i0 = 0; i0 < Tq; i0 += ATT_BQ) {
                const int nq = Tq - i0 < ATT_BQ ? Tq - i0 : ATT_BQ;
                const float *li = lse + bh * Tq + i0;
                for (int j0 = 0; j0 < Tk; j0 += ATT_BK) {
                    const int nk = Tk - j0 < ATT_BK ? Tk - j0 : ATT_BK;
                    tile_scores(pt, mult, qh, kh, i0, nq, j0, nk, dh, scale, bh, Tq, Tk, p, seed, offset);
                    for (int r = 0; r < nq; r++) {
                        if (li[r] == -INFINITY) {   // a query with every key padded: P = 0
                            for (int j = 0; j < nk; j++) pt[(long)r * nk + j] = pd[(long)r * nk + j] = 0.0f;
                            continue;
                        }
                        float *ptr = pt + (long)r * nk, *pdr = pd + (long)r * nk;
                        const float *mr = mult + (long)r * nk;
                        (void)row_exp(ptr, mb ? mb + j0 : NULL, nk, li[r]);   // P = exp(S - lse)
                        if (p > 0.0f) {
#pragma omp simd
                            for (int j = 0; j < nk; j++) pdr[j] = ptr[j] * mr[j];
                        } else {
                            for (int j = 0; j < nk; j++) pdr[j] = ptr[j];
                        }
                        if (bf16)
                            for (int j = 0; j < nk; j++) pdr[j] = round_if(pdr[j], true);
                    }
                    // dV_j (nk, dh) += Pd^T dy_i
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, dh, nq, 1.0f, pd, nk,
                                gyh + (long)i0 * dh, dh, 1.0f, dv + (long)j0 * dh, dh);
                    if (!gq && !gk) continue;
                    // d Pd (nq, nk) = dy_i V_j^T; dS = P * (d Pd * mult - Dr)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, dh, 1.0f, gyh + (long)i0 * dh, dh,
                                vh + (long)j0 * dh, dh, 0.0f, dp, nk);
                    for (int r = 0; r < nq; r++) {
                        float *dpr = dp + (long)r * nk;
                        const float *ptr = pt + (long)r * nk, *mr = mult + (long)r * nk, dri = dr[i0 + r];
                        if (p > 0.0f) {
#pragma omp simd
                            for (int j = 0; j < nk; j++) dpr[j] = ptr[j] * (dpr[j] * mr[j] - dri);
                        } else {
#pragma omp simd
                            for (int j = 0; j < nk; j++) dpr[j] = ptr[j] * (dpr[j] - dri);
                        }
                        if (bf16)
                            for (int j = 0; j < nk; j++) dpr[j] = round_if(dpr[j], true);
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, nk, 1.0f, dp, nk,
                                kh + (long)j0 * dh, dh, 1.0f, dq + (long)i0 * dh, dh);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, dh, nq, 1.0f, dp, nk,
                                qh + (long)i0 * dh, dh, 1.0f, dk + (long)j0 * dh, dh);
                }
            }
            for (int t = 0; t < Tq && gq; t++)
                for (int e = 0; e < dh; e++) gq[oq + (long)t * D + e] += scale * dq[(long)t * dh + e];
            for (int t = 0; t < Tk; t++)
                for (int e = 0; e < dh; e++) {
                    if (gk) gk[ok + (long)t * D + e] += scale * dk[(long)t * dh + e];
                    if (gv) gv[ok + (long)t * D + e] += dv[(long)t * dh + e];
                }
        }
        cpu_free(qh), cpu_free(gyh), cpu_free(kh), cpu_free(vh), cpu_free(dq), cpu_free(dk), cpu_free(dv);
        cpu_free(dr), cpu_free(pt), cpu_free(pd), cpu_free(dp), cpu_free(mult);
    }
}
