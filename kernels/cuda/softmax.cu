// softmax.cu: masked softmax over the last dim, forward and backward.
// One warp per row. Rows of up to 1024 columns are held in registers (K values per
// lane, lane-strided so loads coalesce); longer rows are re-read from global memory.
// Masked entries (mask == 0) get probability 0; a fully masked row is all zeros.
#include "kernels/cuda/common.cuh"

#define SM_WARPS 8   // rows per block

template <int K>
__global__ void __launch_bounds__(SM_WARPS * 32)
softmax_fwd_kernel(float *y, const float *x, const int32_t *mask, long rows, int cols, long rows_per_mask) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * SM_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *xr = x + row * cols;
    const int32_t *mr = mask ? mask + (row / rows_per_mask) * cols : NULL;
    float *yr = y + row * cols;
    float mx = -INFINITY;
    if (K > 0) {
        float v[K > 0 ? K : 1];
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int c = lane + 32 * k;
            v[k] = -INFINITY;
            if (c < cols && (!mr || mr[c] != 0)) v[k] = xr[c];
            mx = fmaxf(mx, v[k]);
        }
        mx = warp_max(mx);
        if (mx == -INFINITY) {           // fully masked (or empty) row
#pragma unroll
            for (int k = 0; k < K; k++) { const int c = lane + 32 * k; if (c < cols) yr[c] = 0.0f; }
            return;
        }
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int c = lane + 32 * k;
            const bool keep = c < cols && (!mr || mr[c] != 0);
            v[k] = keep ? hyp_expf(v[k] - mx) : 0.0f;
            sum += v[k];
        }
        const float inv = 1.0f / warp_sum(sum);
#pragma unroll
        for (int k = 0; k < K; k++) { const int c = lane + 32 * k; if (c < cols) yr[c] = v[k] * inv; }
    } else {
        for (int c = lane; c < cols; c += 32)
            if (!mr || mr[c] != 0) mx = fmaxf(mx, xr[c]);
        mx = warp_max(mx);
        if (mx == -INFINITY) {
            for (int c = lane; c < cols; c += 32) yr[c] = 0.0f;
            return;
        }
        float sum = 0.0f;
        for (int c = lane; c < cols; c += 32)
            if (!mr || mr[c] != 0) sum += hyp_expf(xr[c] - mx);
        const float inv = 1.0f / warp_sum(sum);
        for (int c = lane; c < cols; c += 32)
            yr[c] = (!mr || mr[c] != 0) ? hyp_expf(xr[c] - mx) * inv : 0.0f;
    }
}

// gx += y * (gy - sum(gy * y))
template <int K>
__global__ void __launch_bounds__(SM_WARPS * 32)
softmax_bwd_kernel(float *gx, const float *gy, const float *y, long rows, int cols) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * SM_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *gr = gy + row * cols, *yr = y + row * cols;
    float *o = gx + row * cols;
    float dot = 0.0f;
    if (K > 0) {
        float g[K > 0 ? K : 1], p[K > 0 ? K : 1];
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int c = lane + 32 * k;
            g[k] = 0.0f; p[k] = 0.0f;
            if (c < cols) { g[k] = gr[c]; p[k] = yr[c]; }
            dot += g[k] * p[k];
        }
        dot = warp_sum(dot);
#pragma unroll
        for (int k = 0; k < K; k++) { const int c = lane + 32 * k; if (c < cols) o[c] += p[k] * (g[k] - dot); }
    } else {
        for (int c = lane; c < cols; c += 32) dot += gr[c] * yr[c];
        dot = warp_sum(dot);
        for (int c = lane; c < cols; c += 32) o[c] += yr[c] * (gr[c] - dot);
    }
}

static int reg_k(int cols) {
    const int need = (cols + 31) / 32;
    return need <= 1 ? 1 : need <= 2 ? 2 : need <= 4 ? 4 : need <= 8 ? 8 : need <= 16 ? 16 : need <= 32 ? 32 : 0;
}

static unsigned sm_blocks(long rows, const char *who) {
    const long blocks = (rows + SM_WARPS - 1) / SM_WARPS;
    if (blocks > 0x7fffffffL) hyp_fatal_at(__FILE__, __LINE__, "%s: %ld rows: too many", who, rows);
    return (unsigned)blocks;
}

extern "C" void hyp_cuda_softmax_fwd(float *y, const float *x, const int32_t *mask, long rows, int cols,
                                     long rows_per_mask) {
    if (rows <= 0 || cols <= 0) return;
    if (mask && rows_per_mask <= 0)
        hyp_fatal_at(__FILE__, __LINE__, "softmax_fwd: rows_per_mask = %ld", rows_per_mask);
    const dim3 grid(sm_blocks(rows, "softmax_fwd")), block(SM_WARPS * 32);
    cudaStream_t st = hyp_cuda_stream();
    switch (reg_k(cols)) {
    case 1:  HYP_LAUNCH(grid, block, 0, st, softmax_fwd_kernel<1>)(y, x, mask, rows, cols, rows_per_mask); break;
    case 2:  HYP_LAUNCH(grid, block, 0, st, softmax_fwd_kernel<2>)(y, x, mask, rows, cols, rows_per_mask); break;
    case 4:  HYP_LAUNCH(grid, block, 0, st, softmax_fwd_kernel<4>)(y, x, mask, rows, cols, rows_per_mask); break;
    case 8:  HYP_LAUNCH(grid, block, 0, st, softmax_fwd_kernel<8>)(y, x, mask, rows, cols, rows_per_mask); break;
    case 16: HYP_LAUNCH(grid, block, 0, st, softmax_fwd_kernel<16>)(y, x, mask, rows, cols, rows_per_mask); break;
    case 32: HYP_LAUNCH(grid, block, 0, st, softmax_fwd_kernel<32>)(y, x, mask, rows, cols, rows_per_mask); break;
    default: HYP_LAUNCH(grid, block, 0, st, softmax_fwd_kernel<0>)(y, x, mask, rows, cols, rows_per_mask); break;
    }
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_softmax_bwd(float *gx, const float *gy, const float *y, long rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    const dim3 grid(sm_blocks(rows, "softmax_bwd")), block(SM_WARPS * 32);
    cudaStream_t st = hyp_cuda_stream();
    switch (reg_k(cols)) {
    case 1:  HYP_LAUNCH(grid, block, 0, st, softmax_bwd_kernel<1>)(gx, gy, y, rows, cols); break;
    case 2:  HYP_LAUNCH(grid, block, 0, st, softmax_bwd_kernel<2>)(gx, gy, y, rows, cols); break;
    case 4:  HYP_LAUNCH(grid, block, 0, st, softmax_bwd_kernel<4>)(gx, gy, y, rows, cols); break;
    case 8:  HYP_LAUNCH(grid, block, 0, st, softmax_bwd_kernel<8>)(gx, gy, y, rows, cols); break;
    case 16: HYP_LAUNCH(grid, block, 0, st, softmax_bwd_kernel<16>)(gx, gy, y, rows, cols); break;
    case 32: HYP_LAUNCH(grid, block, 0, st, softmax_bwd_kernel<32>)(gx, gy, y, rows, cols); break;
    default: HYP_LAUNCH(grid, block, 0, st, softmax_bwd_kernel<0>)(gx, gy, y, rows, cols); break;
    }
    CUDA_CHECK_LAUNCH();
}
