// convert.cu: f32 <-> bf16 (round to nearest even, NaN stays NaN) with the shared
// scalar conversions of elementwise.h.
#include "kernels/cuda/common.cuh"

struct ToBf16 {
    uint16_t *y; const float *x;
    __device__ void operator()(long i) const { y[i] = hyp_f32_to_bf16(x[i]); }
    __device__ void vec4(long q) const {   // 16-byte load, 8-byte store
        const float4 v = reinterpret_cast<const float4 *>(x)[q];
        ushort4 o;
        o.x = hyp_f32_to_bf16(v.x); o.y = hyp_f32_to_bf16(v.y);
        o.z = hyp_f32_to_bf16(v.z); o.w = hyp_f32_to_bf16(v.w);
        reinterpret_cast<ushort4 *>(y)[q] = o;
    }
};
struct FromBf16 {
    float *y; const uint16_t *x;
    __device__ void operator()(long i) const { y[i] = hyp_bf16_to_f32(x[i]); }
    __device__ void vec4(long q) const {
        const ushort4 v = reinterpret_cast<const ushort4 *>(x)[q];
        reinterpret_cast<float4 *>(y)[q] = make_float4(hyp_bf16_to_f32(v.x), hyp_bf16_to_f32(v.y),
                                                       hyp_bf16_to_f32(v.z), hyp_bf16_to_f32(v.w));
    }
};

extern "C" void hyp_cuda_f32_to_bf16(uint16_t *y, const float *x, long n) {
    hyp_map(ToBf16{y, x}, n, hyp_aligned(y, 8) && hyp_aligned(x, 16));
}
extern "C" void hyp_cuda_bf16_to_f32(float *y, const uint16_t *x, long n) {
    hyp_map(FromBf16{y, x}, n, hyp_aligned(y, 16) && hyp_aligned(x, 8));
}
