// cuda_fp16.h (simulator): the part of CUDA's half type the kernels use, IEEE binary16 with
// round-to-nearest-even conversions (subnormals, overflow to infinity, NaN kept).
#ifndef HYP_SIM_CUDA_FP16_H
#define HYP_SIM_CUDA_FP16_H
#include <cmath>
#include <cstdint>
#include <cstring>

struct __half {
    uint16_t bits;
};
static inline __half __float2half_rn(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    __half h;
    if (a > 0x7f800000u) { h.bits = (uint16_t)(sign | 0x7e00u); return h; }        // NaN
    if (a >= 0x477ff000u) { h.bits = (uint16_t)(sign | 0x7c00u); return h; }       // rounds past 65504
    if (a < 0x38800000u) {   // below 2^-14: a subnormal half, 2^-24 units, ties to even by rint
        const float m = std::fabs(f) * 16777216.0f;
        h.bits = (uint16_t)(sign | (uint32_t)std::nearbyint(m));
        return h;
    }
    const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);   // round the 13 dropped mantissa bits
    h.bits = (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    return h;
}
static inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.bits & 0x8000u) << 16, e = (h.bits >> 10) & 0x1fu, m = h.bits & 0x3ffu;
    float f;
    if (e == 0) {
        f = (float)m * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    const uint32_t u = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
    std::memcpy(&f, &u, 4);
    return f;
}
#endif
