// dropout.cu: Philox4x32-10 dropout, bitwise identical to the CPU backend.
// hyp_philox_uniform (elementwise.h) maps element i to lane i % 4 of the Philox block
// at counter offset + i / 4. A thread here owns one such block: it runs Philox once
// and uses all four lanes, converting each exactly as hyp_philox_uniform and
// hyp_dropout_mult do (the CUDA test suite checks the masks bit for bit).
#include "kernels/cuda/common.cuh"

// The 4 multipliers of elements 4q..4q+3; mirrors hyp_philox_uniform / hyp_dropout_mult.
__device__ __forceinline__ void dropout_mults(uint64_t seed, uint64_t offset, long q, float p, float m[4]) {
    const uint64_t c = offset + (uint64_t)q;
    uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0u, 0u};
    hyp_philox4x32(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
    const float keep = 1.0f / (1.0f - p);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float u = (float)(ctr[k] >> 8) * (1.0f / 16777216.0f);
        m[k] = u >= p ? keep : 0.0f;
    }
}

// BWD = false: y = x * m.  BWD = true: y += x * m (gx += gy * m).
template <bool BWD>
__global__ void dropout_kernel(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset,
                               bool vec) {
    const long groups = (n + 3) >> 2;
    for (long q = blockIdx.x * (long)blockDim.x + threadIdx.x; q < groups; q += (long)gridDim.x * blockDim.x) {
        float m[4];
        dropout_mults(seed, offset, q, p, m);
        const long i0 = q << 2;
        if (vec && i0 + 3 < n) {
            const float4 xv = reinterpret_cast<const float4 *>(x)[q];
            float4 o;
            if (BWD) {
                o = reinterpret_cast<float4 *>(y)[q];
                o.x += xv.x * m[0]; o.y += xv.y * m[1]; o.z += xv.z * m[2]; o.w += xv.w * m[3];
            } else {   // no "0 +": keeps the sign of zero products, bit-identical to the CPU
                o = make_float4(xv.x * m[0], xv.y * m[1], xv.z * m[2], xv.w * m[3]);
            }
            reinterpret_cast<float4 *>(y)[q] = o;
        } else {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const long i = i0 + k;
                if (i < n) {
                    if (BWD) y[i] += x[i] * m[k];
                    else y[i] = x[i] * m[k];
                }
            }
        }
    }
}

extern "C" void hyp_cuda_dropout_fwd(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset) {
    if (n <= 0) return;
    HYP_LAUNCH(hyp_grid((n + 3) / 4, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), dropout_kernel<false>)(
        y, x, n, p, seed, offset, hyp_aligned16(y, x));
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_dropout_bwd(float *gx, const float *gy, long n, float p, uint64_t seed, uint64_t offset) {
    if (n <= 0) return;
    HYP_LAUNCH(hyp_grid((n + 3) / 4, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), dropout_kernel<true>)(
        gx, gy, n, p, seed, offset, hyp_aligned16(gx, gy));
    CUDA_CHECK_LAUNCH();
}
