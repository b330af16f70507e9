// embedding.cu: row gather (forward) and scatter-add (backward).
// The backward is deterministic and bitwise equal to the CPU's: the (id, position) pairs are
// sorted on the device (a bitonic network over the 64-bit keys id << 32 | position, which are
// unique, so the order is fixed), then each run of equal ids adds its gradient rows in
// position order onto the table row, as the CPU loop does. No atomics, no host round trip.
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

#define EMB_NO_KEY 0xffffffffffffffffull   // padding rows and the power-of-two fill sort last

__global__ void embedding_keys_kernel(uint64_t *keys, const int32_t *ids, long n, long npow2, int padding_idx) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < npow2; i += (long)gridDim.x * blockDim.x)
        keys[i] = i < n && ids[i] != padding_idx ? ((uint64_t)(uint32_t)ids[i] << 32) | (uint64_t)(uint32_t)i
                                                 : EMB_NO_KEY;
}

// One compare-exchange stage (k, j) of the bitonic sorting network, ascending overall.
__global__ void bitonic_stage_kernel(uint64_t *keys, long npow2, long k, long j) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < npow2; i += (long)gridDim.x * blockDim.x) {
        const long l = i ^ j;
        if (l <= i) continue;
        const uint64_t a = keys[i], b = keys[l];
        if ((a > b) == ((i & k) == 0)) { keys[i] = b; keys[l] = a; }
    }
}

// A block per sorted position that starts a run of one id: the run's rows, in position order.
__global__ void embedding_bwd_runs_kernel(float *gtable, const float *gy, const uint64_t *keys, long npow2, int D) {
    for (long p = blockIdx.x; p < npow2; p += gridDim.x) {
        const uint64_t key = keys[p];
        if (key == EMB_NO_KEY) return;                     // sorted: only fill from here on
        const uint32_t id = (uint32_t)(key >> 32);
        if (p > 0 && (uint32_t)(keys[p - 1] >> 32) == id) continue;
        float *row = gtable + (long)id * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            float acc = row[d];
            for (long q = p; q < npow2 && (uint32_t)(keys[q] >> 32) == id; q++)
                acc += gy[(long)(uint32_t)keys[q] * D + d];
            row[d] = acc;
        }
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
    if (n > 0x7fffffffL) hyp_fatal_at(__FILE__, __LINE__, "embedding_bwd: %ld ids: too many", n);
    long npow2 = 1;
    while (npow2 < n) npow2 <<= 1;
    uint64_t *keys = (uint64_t *)hyp_cuda_scratch(HYP_SCRATCH_SORT, (size_t)npow2 * sizeof(uint64_t));
    const unsigned grid = hyp_grid(npow2, HYP_THREADS);
    HYP_LAUNCH(grid, HYP_THREADS, 0, hyp_cuda_stream(), embedding_keys_kernel)(keys, ids, n, npow2, padding_idx);
    CUDA_CHECK_LAUNCH();
    for (long k = 2; k <= npow2; k <<= 1)
        for (long j = k >> 1; j > 0; j >>= 1) {
            HYP_LAUNCH(grid, HYP_THREADS, 0, hyp_cuda_stream(), bitonic_stage_kernel)(keys, npow2, k, j);
            CUDA_CHECK_LAUNCH();
        }
    HYP_LAUNCH(row_blocks(n), row_threads(D), 0, hyp_cuda_stream(), embedding_bwd_runs_kernel)(
        gtable, gy, keys, npow2, D);
    CUDA_CHECK_LAUNCH();
}
