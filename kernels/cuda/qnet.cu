// qnet.cu: fused q-net hidden-layer activation for inference: one warp per row,
// y = LN(ReLU(z + b)) (+ residual), statistics in fp32 from registers.
#include "kernels/cuda/common.cuh"

#define QA_WARPS 4

__global__ void __launch_bounds__(QA_WARPS * 32)
qnet_act_kernel(float *y, const float *z, const float *b, const float *x, bool x_shared, long outer,
                long mid, int D, float eps) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * QA_WARPS + (threadIdx.x >> 5);
    if (row >= outer * mid) return;
    const float *zr = z + row * D, *br = b + (row / mid) * D;
    float *yr = y + row * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) {
        float t = hyp_relu(zr[d] + br[d]);
        yr[d] = t;   // each lane re-reads only what it wrote
        s += t;
    }
    const float mean = warp_sum(s) / (float)D;
    float v = 0.0f;
    for (int d = lane; d < D; d += 32) {
        float t = yr[d] - mean;
        v += t * t;
    }
    const float rstd = 1.0f / sqrtf(warp_sum(v) / (float)D + eps);
    const float *xr = x ? x + (x_shared ? row % mid : row) * D : NULL;
    for (int d = lane; d < D; d += 32) {
        float o = (yr[d] - mean) * rstd;
        yr[d] = xr ? o + xr[d] : o;
    }
}

extern "C" void hyp_cuda_qnet_act_fwd(float *y, const float *z, const float *b, const float *x, bool x_shared,
                                      long outer, long mid, int D, float eps) {
    long rows = outer * mid;
    if (rows <= 0 || D <= 0) return;
    unsigned blocks = (unsigned)((rows + QA_WARPS - 1) / QA_WARPS);
    HYP_LAUNCH(blocks, QA_WARPS * 32, 0, hyp_cuda_stream(), qnet_act_kernel)(
        y, z, b, x, x_shared, outer, mid, D, eps);
    CUDA_CHECK_LAUNCH();
}

// The fused last layer: s[r] = LN(ReLU(z[r] + b[o])) . w[o], one warp per row; z is read three
// times (sum, variance, dot) instead of being written back.
__global__ void __launch_bounds__(QA_WARPS * 32)
qnet_out_dot_kernel(float *s, const float *z, const float *b, const float *w, long outer, long mid, int D,
                    float eps) {
    const int lane = threadIdx.x & 31;
    const long rows = outer * mid;
    for (long row = (long)blockIdx.x * QA_WARPS + (threadIdx.x >> 5); row < rows; row += (long)gridDim.x * QA_WARPS) {
        const long o = row / mid;
        const float *zr = z + row * D, *br = b + o * D, *wr = w + o * D;
        float acc = 0.0f;
        for (int d = lane; d < D; d += 32) acc += hyp_relu(zr[d] + br[d]);
        const float mean = warp_sum(acc) / (float)D;
        float v = 0.0f;
        for (int d = lane; d < D; d += 32) {
            float t = hyp_relu(zr[d] + br[d]) - mean;
            v += t * t;
        }
        const float rstd = 1.0f / sqrtf(warp_sum(v) / (float)D + eps);
        float dot = 0.0f;
        for (int d = lane; d < D; d += 32) dot += ((hyp_relu(zr[d] + br[d]) - mean) * rstd) * wr[d];
        dot = warp_sum(dot);
        if (lane == 0) s[row] = dot;
    }
}

extern "C" void hyp_cuda_qnet_out_dot(float *s, const float *z, const float *b, const float *w, long outer,
                                      long mid, int D, float eps) {
    long rows = outer * mid;
    if (rows <= 0 || D <= 0) return;
    long need = (rows + QA_WARPS - 1) / QA_WARPS, cap = (long)hyp_cuda_num_sms() * 128;
    HYP_LAUNCH((unsigned)(need < cap ? need : cap), QA_WARPS * 32, 0, hyp_cuda_stream(), qnet_out_dot_kernel)(
        s, z, b, w, outer, mid, D, eps);
    CUDA_CHECK_LAUNCH();
}
