// attention.cu: memory-efficient multi-head attention (flash-attention style), forward and
// backward; the algorithm is that of kernels/cpu/cpu_attention.c (its readable spec).
//
// Forward: a block of 4 warps owns FWD_BQ = 64 queries of one (batch, head), 16 per warp, and
// walks the keys in tiles of FWD_BK = 32: S = Q K^T per warp on tensor cores, the online
// softmax per query row (running max m and sum l in registers, the warp's rows of O in shared
// memory rescaled by exp(m_old - m_new)), dropout of P from Philox element
// ((b*H + h)*Tq + i)*Tk + j, then O += Pd V. Writes y = O / l and lse = m + log l.
// Backward, two kernels so that no two blocks add to one gradient element (no atomics: the
// result is bitwise repeatable). dK, dV: a block owns BWD_BK = 64 keys (16 per warp; their
// dK, dV stay in accumulator fragments) and walks the queries in tiles of BWD_BQ = 32,
// recomputing P = exp(S - lse). dQ: a block owns DQ_BQ = 64 queries (16 per warp) and walks
// the keys in tiles of DQ_BK = 32, recomputing S, P and dS the same way (the price of
// determinism: S and dP are computed twice).
//
// Products: HYP_MATMUL_BF16 stages q, k, v, dy, Pd and dS as bf16 in shared memory and
// multiplies on tensor cores through nvcuda::wmma (16x16x16, fp32 accumulators; the
// simulator implements the same API). HYP_MATMUL_F32 stages fp32 and multiplies with plain
// FMAs over the same 16x16 tiles (WarpMma<float>). The head dim is padded with zeros to
// DHP = 16 * NT (NT in {1, 2, 4, 8}: dh <= 128); rows past Tq or Tk are zeros and masked.
#include "kernels/cuda/common.cuh"
#include <cuda_bf16.h>
#include <mma.h>
#include <type_traits>

namespace wmma = nvcuda::wmma;
typedef __nv_bfloat16 bf16;

#define ATT_WARPS 4
#define FWD_BQ 64
#define FWD_BK 32
#define BWD_BQ 32
#define BWD_BK 64
#define DQ_BQ 64
#define DQ_BK 32

template <class T> __device__ __forceinline__ T to_smem(float x);
template <> __device__ __forceinline__ float to_smem<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 to_smem<bf16>(float x) { return __float2bfloat16_rn(x); }
// x as the products see it: rounded to bf16 and back when T is bf16.
template <class T> __device__ __forceinline__ float rounded(float x);
template <> __device__ __forceinline__ float rounded<float>(float x) { return x; }
template <> __device__ __forceinline__ float rounded<bf16>(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// Warp-level 16x16 tile products c += A B on shared memory. A is row-major (a[i*lda + k]),
// or its transpose when AT (a[k*lda + i]); B likewise with BT. Pointers and leading
// dimensions are in elements; every lane of the warp calls each function.
template <class T> struct WarpMma;

template <> struct WarpMma<bf16> {   // tensor cores
    typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> Acc;
    static __device__ __forceinline__ void zero(Acc &c) { wmma::fill_fragment(c, 0.0f); }
    static __device__ __forceinline__ void load(Acc &c, const float *p, int ld) {
        wmma::load_matrix_sync(c, p, ld, wmma::mem_row_major);
    }
    static __device__ __forceinline__ void store(float *p, const Acc &c, int ld) {
        wmma::store_matrix_sync(p, c, ld, wmma::mem_row_major);
    }
    static __device__ __forceinline__ void scale(Acc &c, float s) {
        for (int i = 0; i < c.num_elements; i++) c.x[i] *= s;
    }
    template <bool AT, bool BT>
    static __device__ __forceinline__ void mma(Acc &c, const bf16 *a, int lda, const bf16 *b, int ldb) {
        typedef typename std::conditional<AT, wmma::col_major, wmma::row_major>::type LA;
        typedef typename std::conditional<BT, wmma::col_major, wmma::row_major>::type LB;
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LA> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LB> fb;
        wmma::load_matrix_sync(fa, a, lda);
        wmma::load_matrix_sync(fb, b, ldb);
        wmma::mma_sync(c, fa, fb, c);
    }
};

template <> struct WarpMma<float> {   // fp32 FMAs; lane l owns elements l + 32 r of the tile
    struct Acc { float x[8]; };
    static __device__ __forceinline__ void zero(Acc &c) {
#pragma unroll
        for (int r = 0; r < 8; r++) c.x[r] = 0.0f;
    }
    static __device__ __forceinline__ void load(Acc &c, const float *p, int ld) {
        const int lane = threadIdx.x & 31;
#pragma unroll
        for (int r = 0; r < 8; r++) { const int e = lane + 32 * r; c.x[r] = p[(e >> 4) * ld + (e & 15)]; }
    }
    static __device__ __forceinline__ void store(float *p, const Acc &c, int ld) {
        const int lane = threadIdx.x & 31;
#pragma unroll
        for (int r = 0; r < 8; r++) { const int e = lane + 32 * r; p[(e >> 4) * ld + (e & 15)] = c.x[r]; }
    }
    static __device__ __forceinline__ void scale(Acc &c, float s) {
#pragma unroll
        for (int r = 0; r < 8; r++) c.x[r] *= s;
    }
    template <bool AT, bool BT>
    static __device__ __forceinline__ void mma(Acc &c, const float *a, int lda, const float *b, int ldb) {
        const int lane = threadIdx.x & 31;
#pragma unroll
        for (int r = 0; r < 8; r++) {
            const int e = lane + 32 * r, i = e >> 4, j = e & 15;
            float acc = c.x[r];
#pragma unroll
            for (int k = 0; k < 16; k++)
                acc += (AT ? a[k * lda + i] : a[i * lda + k]) * (BT ? b[j * ldb + k] : b[k * ldb + j]);
            c.x[r] = acc;
        }
    }
};

// dst (rows, DHP) = rows [r0, r0 + rows) of head h of src (T, D), zero past T and past dh.
template <class T>
__device__ __forceinline__ void load_head(T *dst, const float *src, int r0, int rows, int T_, int D, int dh, int DHP) {
    for (int e = threadIdx.x; e < rows * DHP; e += blockDim.x) {
        const int r = e / DHP, d = e % DHP;
        dst[e] = to_smem<T>(r0 + r < T_ && d < dh ? src[(long)(r0 + r) * D + d] : 0.0f);
    }
}

// Shared memory of the forward, in bytes (the layout is carved in this order).
template <class T>
static size_t fwd_smem(int DHP) {
    return (size_t)(FWD_BQ + 2 * FWD_BK) * DHP * sizeof(T)       // Qs, Ks, Vs
           + (size_t)FWD_BQ * FWD_BK * (sizeof(float) + sizeof(T))  // Ss, Ps
           + (size_t)FWD_BQ * DHP * sizeof(float)                   // Os
           + FWD_BK * sizeof(int);                                  // keep (mask of the key tile)
}

template <class T, int NT>
__global__ void __launch_bounds__(ATT_WARPS * 32)
attention_fwd_kernel(float *y, float *lse, const float *q, const float *k, const float *v, const int32_t *mask,
                     int Tq, int Tk, int H, int dh, float scale, float p, uint64_t seed, uint64_t offset) {
    typedef WarpMma<T> M;
    constexpr int DHP = 16 * NT;
    HYP_DYNAMIC_SHARED(unsigned char, smem);
    T *Qs = reinterpret_cast<T *>(smem);                           // (FWD_BQ, DHP)
    T *Ks = Qs + FWD_BQ * DHP, *Vs = Ks + FWD_BK * DHP;            // (FWD_BK, DHP)
    float *Ss = reinterpret_cast<float *>(Vs + FWD_BK * DHP);      // (FWD_BQ, FWD_BK) scores
    float *Os = Ss + FWD_BQ * FWD_BK;                              // (FWD_BQ, DHP) unnormalised output
    T *Ps = reinterpret_cast<T *>(Os + FWD_BQ * DHP);              // (FWD_BQ, FWD_BK) dropped probabilities
    int *keep = reinterpret_cast<int *>(Ps + FWD_BQ * FWD_BK);     // (FWD_BK)
    const long bh = blockIdx.x;
    const int b = (int)(bh / H), h = (int)(bh % H), D = H * dh, i0 = blockIdx.y * FWD_BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float *qb = q + (long)b * Tq * D + h * dh, *kb = k + (long)b * Tk * D + h * dh,
                *vb = v + (long)b * Tk * D + h * dh;
    load_head(Qs, qb, i0, FWD_BQ, Tq, D, dh, DHP);
    for (int e = threadIdx.x; e < FWD_BQ * DHP; e += blockDim.x) Os[e] = 0.0f;
    float m[16], l[16];   // running max and sum of the warp's 16 rows (the same in every lane)
#pragma unroll
    for (int r = 0; r < 16; r++) m[r] = -INFINITY, l[r] = 0.0f;
    float *Sw = Ss + warp * 16 * FWD_BK, *Ow = Os + warp * 16 * DHP;
    T *Pw = Ps + warp * 16 * FWD_BK;
    const T *Qw = Qs + warp * 16 * DHP;

    for (int j0 = 0; j0 < Tk; j0 += FWD_BK) {
        __syncthreads();   // the previous tile's K, V are no longer read
        load_head(Ks, kb, j0, FWD_BK, Tk, D, dh, DHP);
        load_head(Vs, vb, j0, FWD_BK, Tk, D, dh, DHP);
        for (int j = threadIdx.x; j < FWD_BK; j += blockDim.x)
            keep[j] = j0 + j < Tk && (!mask || mask[(long)b * Tk + j0 + j] != 0);
        __syncthreads();
        // S_w (16, FWD_BK) = Q_w K^T
#pragma unroll
        for (int n = 0; n < FWD_BK / 16; n++) {
            typename M::Acc c;
            M::zero(c);
#pragma unroll
            for (int kk = 0; kk < NT; kk++) M::template mma<false, true>(c, Qw + kk * 16, DHP, Ks + n * 16 * DHP + kk * 16, DHP);
            M::store(Sw + n * 16, c, FWD_BK);
        }
        __syncwarp();
        // Online softmax, one row at a time across the warp (lane = key of the tile).
        const bool kept = keep[lane] != 0;
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int i = i0 + warp * 16 + r;
            const float s = kept ? Sw[r * FWD_BK + lane] * scale : -INFINITY;
            const float mx = fmaxf(m[r], warp_max(s));
            float pr = 0.0f, alpha = 1.0f;
            if (mx != -INFINITY) {   // else every key so far is padding: P = 0, O stays 0
                alpha = m[r] == -INFINITY ? 0.0f : hyp_expf(m[r] - mx);
                pr = kept ? hyp_expf(s - mx) : 0.0f;
                l[r] = l[r] * alpha + warp_sum(pr);
                m[r] = mx;
            }
            float pd = pr;
            if (p > 0.0f && kept && i < Tq)
                pd = pr * hyp_dropout_mult(seed, offset, (uint64_t)((bh * Tq + i) * Tk + j0 + lane), p);
            Pw[r * FWD_BK + lane] = to_smem<T>(pd);
            if (alpha != 1.0f)
                for (int d = lane; d < DHP; d += 32) Ow[r * DHP + d] *= alpha;
        }
        __syncwarp();
        // O_w (16, DHP) += Pd_w V
#pragma unroll
        for (int n = 0; n < NT; n++) {
            typename M::Acc c;
            M::load(c, Ow + n * 16, DHP);
#pragma unroll
            for (int kk = 0; kk < FWD_BK / 16; kk++)
                M::template mma<false, false>(c, Pw + kk * 16, FWD_BK, Vs + kk * 16 * DHP + n * 16, DHP);
            M::store(Ow + n * 16, c, DHP);
        }
    }
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 16; r++) {
        const int i = i0 + warp * 16 + r;
        if (i >= Tq) break;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;   // l = 0: every key is padding
        float *yr = y + ((long)b * Tq + i) * D + h * dh;
        for (int d = lane; d < dh; d += 32) yr[d] = Ow[r * DHP + d] * inv;
        if (lane == 0) lse[bh * Tq + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
    }
}

// Per query row r of the tile at i0 (ROWS rows, a warp per row): dr_s[r] = dy . y (fp32 sum of
// the values the products see) and lse_s[r] (-inf past Tq). gy, y: the head's (T, D) rows.
template <class T, int ROWS>
__device__ __forceinline__ void row_terms(float *dr_s, float *lse_s, const float *gy, const float *y, const float *lse,
                                          int i0, int Tq, int D, int dh) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int r = warp; r < ROWS; r += ATT_WARPS) {
        const int i = i0 + r;
        float acc = 0.0f;
        if (i < Tq)
            for (int d = lane; d < dh; d += 32) acc += rounded<T>(gy[(long)i * D + d]) * rounded<T>(y[(long)i * D + d]);
        acc = warp_sum(acc);
        if (lane == 0) dr_s[r] = acc, lse_s[r] = i < Tq ? lse[i] : -INFINITY;
    }
}

// One element of the backward's recomputation: P = exp(scale s - lse) (0 for a dropped-out key
// or a row past Tq), its dropout multiplier, and dS = P (dPd * mult - Dr); *pd = P * mult.
__device__ __forceinline__ float attn_ds(float s, float dpd, float lse_r, float dr, bool key_kept, float scale, float p,
                                         uint64_t seed, uint64_t offset, uint64_t elem, float *pd) {
    const bool on = key_kept && lse_r != -INFINITY;   // lse is -inf past Tq too
    const float pr = on ? hyp_expf(s * scale - lse_r) : 0.0f;
    const float mult = p > 0.0f && on ? hyp_dropout_mult(seed, offset, elem, p) : 1.0f;
    *pd = pr * mult;
    return pr * (dpd * mult - dr);
}

template <class T>
static size_t bwd_smem(int DHP) {
    return (size_t)(2 * BWD_BK + 2 * BWD_BQ) * DHP * sizeof(T)   // Ks, Vs, Qs, dOs
           + (size_t)2 * BWD_BQ * BWD_BK * sizeof(float)         // Ss, dPs
           + (size_t)2 * BWD_BQ * BWD_BK * sizeof(T)             // Pds, dSs
           + 2 * BWD_BQ * sizeof(float) + BWD_BK * sizeof(int);  // lse_s, dr_s, keep
}

template <class T, int NT>
__global__ void __launch_bounds__(ATT_WARPS * 32)
attention_bwd_kernel(float *gk, float *gv, const float *gy, const float *y, const float *q,
                     const float *k, const float *v, const int32_t *mask, const float *lse, int Tq, int Tk, int H,
                     int dh, float scale, float p, uint64_t seed, uint64_t offset) {
    typedef WarpMma<T> M;
    constexpr int DHP = 16 * NT;
    HYP_DYNAMIC_SHARED(unsigned char, smem);
    T *Ks = reinterpret_cast<T *>(smem), *Vs = Ks + BWD_BK * DHP;   // (BWD_BK, DHP)
    T *Qs = Vs + BWD_BK * DHP, *dOs = Qs + BWD_BQ * DHP;            // (BWD_BQ, DHP)
    float *Ss = reinterpret_cast<float *>(dOs + BWD_BQ * DHP);      // (BWD_BQ, BWD_BK) scores, then P
    float *dPs = Ss + BWD_BQ * BWD_BK;                              // (BWD_BQ, BWD_BK) d dropped P
    T *Pds = reinterpret_cast<T *>(dPs + BWD_BQ * BWD_BK), *dSs = Pds + BWD_BQ * BWD_BK;   // (BWD_BQ, BWD_BK)
    float *lse_s = reinterpret_cast<float *>(dSs + BWD_BQ * BWD_BK), *dr_s = lse_s + BWD_BQ;   // (BWD_BQ)
    int *keep = reinterpret_cast<int *>(dr_s + BWD_BQ);                                        // (BWD_BK)
    const long bh = blockIdx.x;
    const int b = (int)(bh / H), h = (int)(bh % H), D = H * dh, j0 = blockIdx.y * BWD_BK;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long oq = (long)b * Tq * D + h * dh, ok = (long)b * Tk * D + h * dh;
    load_head(Ks, k + ok, j0, BWD_BK, Tk, D, dh, DHP);
    load_head(Vs, v + ok, j0, BWD_BK, Tk, D, dh, DHP);
    for (int j = threadIdx.x; j < BWD_BK; j += blockDim.x)
        keep[j] = j0 + j < Tk && (!mask || mask[(long)b * Tk + j0 + j] != 0);
    typename M::Acc dK[NT], dV[NT];   // the warp's 16 keys x DHP
#pragma unroll
    for (int n = 0; n < NT; n++) M::zero(dK[n]), M::zero(dV[n]);

    for (int i0 = 0; i0 < Tq; i0 += BWD_BQ) {
        __syncthreads();   // the previous query tile is no longer read
        load_head(Qs, q + oq, i0, BWD_BQ, Tq, D, dh, DHP);
        load_head(dOs, gy + oq, i0, BWD_BQ, Tq, D, dh, DHP);
        row_terms<T, BWD_BQ>(dr_s, lse_s, gy + oq, y + oq, lse + bh * Tq, i0, Tq, D, dh);
        __syncthreads();
        // S = Q K^T and d Pd = dy V^T, (BWD_BQ, BWD_BK): 2 x 4 tiles, two per warp.
        for (int t = warp; t < (BWD_BQ / 16) * (BWD_BK / 16); t += ATT_WARPS) {
            const int tm = t / (BWD_BK / 16), tn = t % (BWD_BK / 16);
            typename M::Acc cs, cp;
            M::zero(cs), M::zero(cp);
#pragma unroll
            for (int kk = 0; kk < NT; kk++) {
                M::template mma<false, true>(cs, Qs + tm * 16 * DHP + kk * 16, DHP, Ks + tn * 16 * DHP + kk * 16, DHP);
                M::template mma<false, true>(cp, dOs + tm * 16 * DHP + kk * 16, DHP, Vs + tn * 16 * DHP + kk * 16, DHP);
            }
            M::store(Ss + tm * 16 * BWD_BK + tn * 16, cs, BWD_BK);
            M::store(dPs + tm * 16 * BWD_BK + tn * 16, cp, BWD_BK);
        }
        __syncthreads();
        // P = exp(scale S - lse), Pd = P * mult, dS = P (d Pd * mult - Dr).
        for (int e = threadIdx.x; e < BWD_BQ * BWD_BK; e += blockDim.x) {
            const int r = e / BWD_BK, j = e % BWD_BK, i = i0 + r;
            float pd;
            dSs[e] = to_smem<T>(attn_ds(Ss[e], dPs[e], lse_s[r], dr_s[r], keep[j], scale, p, seed, offset,
                                        (uint64_t)((bh * Tq + i) * Tk + j0 + j), &pd));
            Pds[e] = to_smem<T>(pd);
        }
        __syncthreads();
        // dV_w += Pd^T dy, dK_w += dS^T Q over the tile's queries (the warp's 16 keys).
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int kk = 0; kk < BWD_BQ / 16; kk++) {
                M::template mma<true, false>(dV[n], Pds + kk * 16 * BWD_BK + warp * 16, BWD_BK, dOs + kk * 16 * DHP + n * 16, DHP);
                M::template mma<true, false>(dK[n], dSs + kk * 16 * BWD_BK + warp * 16, BWD_BK, Qs + kk * 16 * DHP + n * 16, DHP);
            }
    }
    __syncthreads();   // the S region is free: each warp stages its fragments there
    float *stage = Ss + warp * 256;   // (16, 16)
    for (int n = 0; n < NT; n++)
        for (int which = 0; which < 2; which++) {
            float *g = which ? gv : gk;
            if (!g) continue;
            M::store(stage, which ? dV[n] : dK[n], 16);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                const int r = e / 16, d = n * 16 + e % 16, j = j0 + warp * 16 + r;
                if (j < Tk && d < dh) g[ok + (long)j * D + d] += which ? stage[e] : scale * stage[e];
            }
            __syncwarp();
        }
}

template <class T>
static size_t dq_smem(int DHP) {
    return (size_t)(2 * DQ_BQ + 2 * DQ_BK) * DHP * sizeof(T)                // Qs, dOs, Ks, Vs
           + (size_t)2 * DQ_BQ * DQ_BK * sizeof(float)                      // Ss, dPs
           + (size_t)DQ_BQ * DQ_BK * sizeof(T)                              // dSs
           + 2 * DQ_BQ * sizeof(float) + DQ_BK * sizeof(int);               // lse_s, dr_s, keep
}

// gq += scale * dS K for DQ_BQ queries of one (batch, head): each warp keeps its 16 rows of
// dQ in accumulator fragments over all key tiles, then adds them once.
template <class T, int NT>
__global__ void __launch_bounds__(ATT_WARPS * 32)
attention_dq_kernel(float *gq, const float *gy, const float *y, const float *q, const float *k, const float *v,
                    const int32_t *mask, const float *lse, int Tq, int Tk, int H, int dh, float scale, float p,
                    uint64_t seed, uint64_t offset) {
    typedef WarpMma<T> M;
    constexpr int DHP = 16 * NT;
    HYP_DYNAMIC_SHARED(unsigned char, smem);
    T *Qs = reinterpret_cast<T *>(smem), *dOs = Qs + DQ_BQ * DHP;   // (DQ_BQ, DHP)
    T *Ks = dOs + DQ_BQ * DHP, *Vs = Ks + DQ_BK * DHP;              // (DQ_BK, DHP)
    float *Ss = reinterpret_cast<float *>(Vs + DQ_BK * DHP);        // (DQ_BQ, DQ_BK) scores
    float *dPs = Ss + DQ_BQ * DQ_BK;                                // (DQ_BQ, DQ_BK) d dropped P
    T *dSs = reinterpret_cast<T *>(dPs + DQ_BQ * DQ_BK);            // (DQ_BQ, DQ_BK)
    float *lse_s = reinterpret_cast<float *>(dSs + DQ_BQ * DQ_BK), *dr_s = lse_s + DQ_BQ;   // (DQ_BQ)
    int *keep = reinterpret_cast<int *>(dr_s + DQ_BQ);                                     // (DQ_BK)
    const long bh = blockIdx.x;
    const int b = (int)(bh / H), h = (int)(bh % H), D = H * dh, i0 = blockIdx.y * DQ_BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long oq = (long)b * Tq * D + h * dh, ok = (long)b * Tk * D + h * dh;
    load_head(Qs, q + oq, i0, DQ_BQ, Tq, D, dh, DHP);
    load_head(dOs, gy + oq, i0, DQ_BQ, Tq, D, dh, DHP);
    row_terms<T, DQ_BQ>(dr_s, lse_s, gy + oq, y + oq, lse + bh * Tq, i0, Tq, D, dh);
    typename M::Acc dQ[NT];   // the warp's 16 queries x DHP
#pragma unroll
    for (int n = 0; n < NT; n++) M::zero(dQ[n]);
    const T *Qw = Qs + warp * 16 * DHP, *dOw = dOs + warp * 16 * DHP;
    float *Sw = Ss + warp * 16 * DQ_BK, *dPw = dPs + warp * 16 * DQ_BK;
    T *dSw = dSs + warp * 16 * DQ_BK;

    for (int j0 = 0; j0 < Tk; j0 += DQ_BK) {
        __syncthreads();   // the previous key tile is no longer read (and Q, dO, Dr are in place)
        load_head(Ks, k + ok, j0, DQ_BK, Tk, D, dh, DHP);
        load_head(Vs, v + ok, j0, DQ_BK, Tk, D, dh, DHP);
        for (int j = threadIdx.x; j < DQ_BK; j += blockDim.x)
            keep[j] = j0 + j < Tk && (!mask || mask[(long)b * Tk + j0 + j] != 0);
        __syncthreads();
        // S_w = Q_w K^T and d Pd_w = dy_w V^T, (16, DQ_BK) each
#pragma unroll
        for (int n = 0; n < DQ_BK / 16; n++) {
            typename M::Acc cs, cp;
            M::zero(cs), M::zero(cp);
#pragma unroll
            for (int kk = 0; kk < NT; kk++) {
                M::template mma<false, true>(cs, Qw + kk * 16, DHP, Ks + n * 16 * DHP + kk * 16, DHP);
                M::template mma<false, true>(cp, dOw + kk * 16, DHP, Vs + n * 16 * DHP + kk * 16, DHP);
            }
            M::store(Sw + n * 16, cs, DQ_BK);
            M::store(dPw + n * 16, cp, DQ_BK);
        }
        __syncwarp();
        // dS from S and d Pd (attn_ds, as in the dK, dV kernel)
        for (int e = lane; e < 16 * DQ_BK; e += 32) {
            const int r = warp * 16 + e / DQ_BK, j = e % DQ_BK, i = i0 + r;
            float pd;
            dSw[e] = to_smem<T>(attn_ds(Sw[e], dPw[e], lse_s[r], dr_s[r], keep[j], scale, p, seed, offset,
                                        (uint64_t)((bh * Tq + i) * Tk + j0 + j), &pd));
        }
        __syncwarp();
        // dQ_w (16, DHP) += dS_w K
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int kk = 0; kk < DQ_BK / 16; kk++)
                M::template mma<false, false>(dQ[n], dSw + kk * 16, DQ_BK, Ks + kk * 16 * DHP + n * 16, DHP);
    }
    __syncwarp();   // the warp's S rows are free: it stages its fragments there
    for (int n = 0; n < NT; n++) {
        M::store(Sw, dQ[n], 16);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
            const int r = e / 16, d = n * 16 + e % 16, i = i0 + warp * 16 + r;
            if (i < Tq && d < dh) gq[oq + (long)i * D + d] += scale * Sw[e];
        }
        __syncwarp();
    }
}

// NT = DHP / 16 for a head dim: 1, 2, 4 or 8.
static int head_tiles(int dh) { return dh <= 16 ? 1 : dh <= 32 ? 2 : dh <= 64 ? 4 : 8; }

// Above the default 48 KiB of dynamic shared memory a kernel must opt in (up to 227 KiB on
// sm_90, 163 KiB on sm_80; the largest here, fp32 with dh = 128, needs 128 KiB).
template <class K>
static void set_smem(K *kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <class T, int NT>
static void launch_fwd(float *y, float *lse, const float *q, const float *k, const float *v, const int32_t *mask,
                       int B, int Tq, int Tk, int H, int dh, float scale, float p, uint64_t seed, uint64_t offset) {
    const size_t sh = fwd_smem<T>(16 * NT);
    set_smem(attention_fwd_kernel<T, NT>, sh);
    const dim3 grid((unsigned)(B * H), (unsigned)((Tq + FWD_BQ - 1) / FWD_BQ));
    HYP_LAUNCH(grid, ATT_WARPS * 32, sh, hyp_cuda_stream(), attention_fwd_kernel<T, NT>)(
        y, lse, q, k, v, mask, Tq, Tk, H, dh, scale, p, seed, offset);
    CUDA_CHECK_LAUNCH();
}

template <class T, int NT>
static void launch_bwd(float *gq, float *gk, float *gv, const float *gy, const float *y, const float *q,
                       const float *k, const float *v, const int32_t *mask, const float *lse, int B, int Tq, int Tk,
                       int H, int dh, float scale, float p, uint64_t seed, uint64_t offset) {
    if (gk || gv) {
        const size_t sh = bwd_smem<T>(16 * NT);
        set_smem(attention_bwd_kernel<T, NT>, sh);
        const dim3 grid((unsigned)(B * H), (unsigned)((Tk + BWD_BK - 1) / BWD_BK));
        HYP_LAUNCH(grid, ATT_WARPS * 32, sh, hyp_cuda_stream(), attention_bwd_kernel<T, NT>)(
            gk, gv, gy, y, q, k, v, mask, lse, Tq, Tk, H, dh, scale, p, seed, offset);
        CUDA_CHECK_LAUNCH();
    }
    if (gq) {
        const size_t sh = dq_smem<T>(16 * NT);
        set_smem(attention_dq_kernel<T, NT>, sh);
        const dim3 grid((unsigned)(B * H), (unsigned)((Tq + DQ_BQ - 1) / DQ_BQ));
        HYP_LAUNCH(grid, ATT_WARPS * 32, sh, hyp_cuda_stream(), attention_dq_kernel<T, NT>)(
            gq, gy, y, q, k, v, mask, lse, Tq, Tk, H, dh, scale, p, seed, offset);
        CUDA_CHECK_LAUNCH();
    }
}

static void check_shape(const char *who, int B, int Tq, int Tk, int H, int dh) {
    if (dh < 1 || dh > 128)
        hyp_fatal_at(__FILE__, __LINE__, "%s: head dim %d outside 1..128", who, dh);
    if ((long)B * H > 0x7fffffffL || (Tq + FWD_BQ - 1) / FWD_BQ > 65535 || (Tk + BWD_BK - 1) / BWD_BK > 65535)
        hyp_fatal_at(__FILE__, __LINE__, "%s: B*H = %ld, Tq = %d, Tk = %d: too large for the grid", who, (long)B * H,
                     Tq, Tk);
}

#define ATT_DISPATCH(fn, T, ...)                         \
    switch (head_tiles(dh)) {                            \
    case 1: fn<T, 1>(__VA_ARGS__); break;                \
    case 2: fn<T, 2>(__VA_ARGS__); break;                \
    case 4: fn<T, 4>(__VA_ARGS__); break;                \
    default: fn<T, 8>(__VA_ARGS__); break;               \
    }

extern "C" void hyp_cuda_attention_fwd(float *y, float *lse, const float *q, const float *k, const float *v,
                                       const int32_t *mask, int B, int Tq, int Tk, int H, int dh, float scale,
                                       float p, uint64_t seed, uint64_t offset, MatmulPrecision prec) {
    if (B <= 0 || H <= 0 || Tq <= 0) return;
    check_shape("attention_fwd", B, Tq, Tk, H, dh);
    if (Tk <= 0) {   // no keys: every query attends to nothing
        hyp_cuda_fill(y, 0.0f, (long)B * Tq * H * dh);
        hyp_cuda_fill(lse, -INFINITY, (long)B * H * Tq);
        return;
    }
    if (prec == HYP_MATMUL_BF16) {
        ATT_DISPATCH(launch_fwd, bf16, y, lse, q, k, v, mask, B, Tq, Tk, H, dh, scale, p, seed, offset)
    } else {
        ATT_DISPATCH(launch_fwd, float, y, lse, q, k, v, mask, B, Tq, Tk, H, dh, scale, p, seed, offset)
    }
}

extern "C" void hyp_cuda_attention_bwd(float *gq, float *gk, float *gv, const float *gy, const float *y,
                                       const float *q, const float *k, const float *v, const int32_t *mask,
                                       const float *lse, int B, int Tq, int Tk, int H, int dh, float scale, float p,
                                       uint64_t seed, uint64_t offset, MatmulPrecision prec) {
    if ((!gq && !gk && !gv) || B <= 0 || H <= 0 || Tq <= 0 || Tk <= 0) return;
    check_shape("attention_bwd", B, Tq, Tk, H, dh);
    if (prec == HYP_MATMUL_BF16) {
        ATT_DISPATCH(launch_bwd, bf16, gq, gk, gv, gy, y, q, k, v, mask, lse, B, Tq, Tk, H, dh, scale, p, seed, offset)
    } else {
        ATT_DISPATCH(launch_bwd, float, gq, gk, gv, gy, y, q, k, v, mask, lse, B, Tq, Tk, H, dh, scale, p, seed,
                     offset)
    }
}
