// embedding.cu: row gather (forward) and scatter-add (backward).
// Backward uses atomicAdd: repeated ids within a batch make the summation order,
// and so the last bits of gtable, vary between runs.
#include "kernels/cuda/common.cuh"

// Grid-stride over rows; the threads of a block cover the row's D (or D/4) columns.
template <typename T>
__global__ void embedding_fwd_kernel(T *y, const T *table, const int32_t *ids, long n, int Dt) {
    for (long i = blockIdx.x; i < n; i += gridDim.x) {
        const T *src = table + (long)ids[i] * Dt;
        T *dst = y + i * Dt;
        for (int d = threadIdx.x; d < Dt; d += blockDim.x) dst[d] = src[d];
    }
}

__global__ void embedding_bwd_kernel(float *gtable, const float *gy, const int32_t *ids, long n, int D,
                                     int padding_idx) {
    for (long i = blockIdx.x; i < n; i += gridDim.x) {
        if (ids[i] == padding_idx) continue;
        float *dst = gtable + (long)ids[i] * D;
        const float *src = gy + i * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) atomicAdd(dst + d, src[d]);
    }
}

static unsigned row_threads(int cols) {
    return cols >= 256 ? 256 : cols >= 128 ? 128 : cols >= 64 ? 64 : 32;
}
static unsigned row_blocks(long n) {
    const long cap = (long)hyp_cuda_num_sms() * 32;
    return (unsigned)(n < cap ? n : cap);
}

extern "C" void hyp_cuda_embedding_fwd(float *y, const float *table, const int32_t *ids, long n, int D) {
    if (n <= 0 || D <= 0) return;
    if (D % 4 == 0 && hyp_aligned16(y, table)) {
        HYP_LAUNCH(row_blocks(n), row_threads(D / 4), 0, hyp_cuda_stream(), embedding_fwd_kernel<float4>)(
            reinterpret_cast<float4 *>(y), reinterpret_cast<const float4 *>(table), ids, n, D / 4);
    } else {
        HYP_LAUNCH(row_blocks(n), row_threads(D), 0, hyp_cuda_stream(), embedding_fwd_kernel<float>)(
            y, table, ids, n, D);
    }
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_embedding_bwd(float *gtable, const float *gy, const int32_t *ids, long n, int D,
                                       int padding_idx) {
    if (n <= 0 || D <= 0) return;
    HYP_LAUNCH(row_blocks(n), row_threads(D), 0, hyp_cuda_stream(), embedding_bwd_kernel)(
        gtable, gy, ids, n, D, padding_idx);
    CUDA_CHECK_LAUNCH();
}
