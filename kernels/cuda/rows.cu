// rows.cu: per-batch bias rows (the q-net's per-query biases over its documents).
#include "kernels/cuda/common.cuh"

__global__ void add_rows_fwd_kernel(float *y, const float *x, const float *b, long outer, long mid, int inner) {
    long n = outer * mid * inner;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < n; idx += (long)gridDim.x * blockDim.x) {
        long i = idx % inner, o = idx / ((long)inner * mid);
        y[idx] = x[idx] + b[o * inner + i];
    }
}

// One thread per (o, i): sums its column over mid in a fixed order (deterministic).
__global__ void add_rows_bwd_kernel(float *gb, const float *gy, long outer, long mid, int inner) {
    long n = outer * inner;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < n; idx += (long)gridDim.x * blockDim.x) {
        long o = idx / inner, i = idx % inner;
        const float *col = gy + o * mid * inner + i;
        float s = 0.0f;
        for (long m = 0; m < mid; m++) s += col[m * inner];
        gb[idx] += s;
    }
}

extern "C" void hyp_cuda_add_rows_fwd(float *y, const float *x, const float *b, long outer, long mid, int inner) {
    long n = outer * mid * inner;
    if (n <= 0) return;
    HYP_LAUNCH(hyp_grid(n, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), add_rows_fwd_kernel)(
        y, x, b, outer, mid, inner);
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_add_rows_bwd(float *gb, const float *gy, long outer, long mid, int inner) {
    long n = outer * inner;
    if (n <= 0) return;
    HYP_LAUNCH(hyp_grid(n, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), add_rows_bwd_kernel)(
        gb, gy, outer, mid, inner);
    CUDA_CHECK_LAUNCH();
}
