// cuda_bf16.h (simulator): the part of CUDA's bf16 type the kernels use. Storage is the
// 16 high bits of an fp32; conversions round to nearest even as the device does (the
// same hyp_f32_to_bf16 the CPU backend uses, NaN stays NaN).
#ifndef HYP_SIM_CUDA_BF16_H
#define HYP_SIM_CUDA_BF16_H
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
    uint16_t bits;
};
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) h.bits = (uint16_t)((u >> 16) | 0x40u);   // quiet NaN
    else h.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return h;
}
static inline float __bfloat162float(__nv_bfloat16 h) {
    const uint32_t u = (uint32_t)h.bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
#endif
