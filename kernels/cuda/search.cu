// search.cu: device top-k over streamed score blocks, dense score epilogues, row norms and
// bf16 row gathers (kernels.h, "search"; CPU spec in kernels/cpu/cpu_search.c).
#include "kernels/cuda/common.cuh"

#define TK_THREADS 256

// Candidate i of a row: the old keys first, then the block's scores (the skipped index is an
// empty slot, key 0).
__device__ __forceinline__ uint64_t tk_key(const uint64_t *ki, const float *sr, int k, int32_t base, int32_t skip,
                                           long i) {
    if (i < k) return ki[i];
    int32_t idx = base + (int32_t)(i - k);
    return idx == skip ? 0ull : hyp_search_key(sr[i - k], idx);
}

// One block per row: radix select (8 passes of 8 bits, most significant first) of the k-th
// largest key T among the k + n candidates, then every key > T is written and the remaining
// slots get T (keys are distinct except empty 0s, so that is T once, or empty slots).
__global__ void __launch_bounds__(TK_THREADS)
topk_rows_kernel(uint64_t *kout, const uint64_t *kin, const float *scores, long n, long ld, int k, int32_t base,
                 const int32_t *skip, int32_t *bad) {
    HYP_SHARED(unsigned, hist, [256]);
    HYP_SHARED(unsigned long long, sh_prefix, [1]);
    HYP_SHARED(unsigned, sh_need, [1]);
    HYP_SHARED(unsigned, sh_pos, [1]);
    const long r = blockIdx.x;
    const uint64_t *ki = kin + r * k;
    const float *sr = scores + r * ld;
    uint64_t *ko = kout + r * k;
    const int32_t sk = skip ? skip[r] : -1;
    const long M = (long)k + n;
    if (bad) {
        int first = INT32_MAX;
        for (long j = threadIdx.x; j < n; j += blockDim.x)
            if (!isfinite(sr[j]) && base + (int)j < first) first = base + (int)j;
        if (first != INT32_MAX) atomicMin(&bad[r], first);
    }
    uint64_t prefix = 0, mask = 0;
    unsigned need = (unsigned)k;
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int t = threadIdx.x; t < 256; t += blockDim.x) hist[t] = 0;
        __syncthreads();
        for (long i = threadIdx.x; i < M; i += blockDim.x) {
            uint64_t key = tk_key(ki, sr, k, base, sk, i);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned acc = 0;
            int b = 255;
            for (; b > 0; b--) {
                if (acc + hist[b] >= need) break;
                acc += hist[b];
            }
            sh_prefix[0] = prefix | ((uint64_t)b << shift);
            sh_need[0] = need - acc;
        }
        __syncthreads();
        prefix = sh_prefix[0];
        need = sh_need[0];
        mask |= 0xFFull << shift;
    }
    if (threadIdx.x == 0) sh_pos[0] = 0;
    __syncthreads();
    for (long i = threadIdx.x; i < M; i += blockDim.x) {
        uint64_t key = tk_key(ki, sr, k, base, sk, i);
        if (key > prefix) ko[atomicAdd(&sh_pos[0], 1u)] = key;
    }
    __syncthreads();
    for (long t = sh_pos[0] + threadIdx.x; t < k; t += blockDim.x) ko[t] = prefix;
}

extern "C" void hyp_cuda_topk_rows(uint64_t *kout, const uint64_t *kin, const float *scores, long rows, long n,
                                   long ld, int k, int32_t base, const int32_t *skip, int32_t *bad) {
    if (rows <= 0 || k <= 0) return;
    HYP_LAUNCH((unsigned)rows, TK_THREADS, 0, hyp_cuda_stream(), topk_rows_kernel)(kout, kin, scores, n, ld, k, base,
                                                                                  skip, bad);
    CUDA_CHECK_LAUNCH();
}

__global__ void dense_epilogue_kernel(int mode, float *G, const float *rv, const float *cv, long rows, long n) {
    const long total = rows * n;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < total; e += (long)gridDim.x * blockDim.x) {
        const long i = e / n, j = e - i * n;
        G[e] = mode == 0 ? hyp_l2_score(rv[i], cv[j], G[e]) : G[e] * hyp_inv_norm(cv[j]);
    }
}

extern "C" void hyp_cuda_dense_epilogue(int mode, float *G, const float *rv, const float *cv, long rows, long n) {
    if (rows <= 0 || n <= 0) return;
    HYP_LAUNCH(hyp_grid(rows * n, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), dense_epilogue_kernel)(
        mode, G, rv, cv, rows, n);
    CUDA_CHECK_LAUNCH();
}

// One warp per row.
#define RS_WARPS 8
__global__ void __launch_bounds__(RS_WARPS * 32) row_sumsq_kernel(float *out, const float *x, long n, int D) {
    const int lane = threadIdx.x & 31;
    for (long r = (long)blockIdx.x * RS_WARPS + (threadIdx.x >> 5); r < n; r += (long)gridDim.x * RS_WARPS) {
        const float *xr = x + r * D;
        float s = 0.0f;
        for (int d = lane; d < D; d += 32) s += xr[d] * xr[d];
        s = warp_sum(s);
        if (lane == 0) out[r] = s;
    }
}

extern "C" void hyp_cuda_row_sumsq(float *out, const float *x, long n, int D) {
    if (n <= 0) return;
    long need = (n + RS_WARPS - 1) / RS_WARPS, cap = (long)hyp_cuda_num_sms() * 64;
    HYP_LAUNCH((unsigned)(need < cap ? need : cap), RS_WARPS * 32, 0, hyp_cuda_stream(), row_sumsq_kernel)(out, x, n,
                                                                                                        D);
    CUDA_CHECK_LAUNCH();
}

__global__ void gather_bf16_kernel(float *y, const uint16_t *table, const int32_t *ids, long n, int D) {
    for (long i = blockIdx.x; i < n; i += gridDim.x) {
        const uint16_t *src = table + (long)ids[i] * D;
        float *dst = y + i * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) dst[d] = hyp_bf16_to_f32(src[d]);
    }
}

extern "C" void hyp_cuda_gather_bf16_rows(float *y, const uint16_t *table, const int32_t *ids, long n, int D) {
    if (n <= 0 || D <= 0) return;
    unsigned blocks = (unsigned)(n < 65535 * 4 ? n : 65535 * 4);
    HYP_LAUNCH(blocks, 128, 0, hyp_cuda_stream(), gather_bf16_kernel)(y, table, ids, n, D);
    CUDA_CHECK_LAUNCH();
}
