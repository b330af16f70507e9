// elementwise.h: scalar math shared by the CPU loops and the CUDA kernels, so the CPU
// tests exercise exactly the formulas the GPU runs. Everything here is static inline.
#ifndef HYP_ELEMENTWISE_H
#define HYP_ELEMENTWISE_H
#include <stdint.h>
#include <math.h>

#ifdef __CUDACC__
#define HYP_HD __host__ __device__ __forceinline__
#else
#define HYP_HD static inline
#endif

// ---- exp and erfc without library calls: branch-free float arithmetic, so a CPU loop
// of them vectorises and the GPU evaluates the same formulas bit for bit.
union hyp_fbits { float f; int32_t i; };
// e^x, within ~2 ulp: Cody-Waite reduction x = n ln2 + r, Cephes' degree-6 polynomial for
// e^r on [-ln2/2, ln2/2], then 2^n through the exponent bits. Clamped to the normal range
// (so -inf gives e^-87 and +inf e^88); NaN gives NaN. The clamp is written so that NaN
// becomes -87 (NaN must not reach the float-to-int conversion of n: undefined, and a
// negative shift after it) and the final select restores it; finite inputs get exactly
// the same operations as before, and both are selects, so the CPU loops stay vectorised.
HYP_HD float hyp_expf(float x) {
    float xin = x;
    x = x > -87.0f ? (x < 88.0f ? x : 88.0f) : -87.0f;
    float n = rintf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float e = fmaf(p, r * r, r) + 1.0f;
    union hyp_fbits s;
    s.i = ((int32_t)n + 127) << 23;
    return xin == xin ? e * s.f : xin;
}
// erfc(z) for z >= 0 (Numerical Recipes' Chebyshev fit, fractional error < 1.2e-7), times
// e^{z^2}: returns erfc(z) and leaves e^{-z^2} in *ez (the GELU gradient needs it).
HYP_HD float hyp_erfc_pos(float z, float *ez) {
    float t = 1.0f / fmaf(0.5f, z, 1.0f);
    float p = 0.17087277f;
    p = fmaf(p, t, -0.82215223f);
    p = fmaf(p, t, 1.48851587f);
    p = fmaf(p, t, -1.13520398f);
    p = fmaf(p, t, 0.27886807f);
    p = fmaf(p, t, -0.18628806f);
    p = fmaf(p, t, 0.09678418f);
    p = fmaf(p, t, 0.37409196f);
    p = fmaf(p, t, 1.00002368f);
    p = fmaf(p, t, -1.26551223f);
    float e2 = hyp_expf(-z * z);
    *ez = e2;
    return t * e2 * hyp_expf(p);
}

// ---- activations
HYP_HD float hyp_relu(float x) { return x > 0.0f ? x : 0.0f; }
HYP_HD float hyp_relu_grad(float x) { return x > 0.0f ? 1.0f : 0.0f; }
// Exact (erf) GELU as BERT uses it: x * Phi(x), Phi(x) = erfc(-x/sqrt2) / 2.
HYP_HD float hyp_gelu_cdf(float x, float *pdf) {
    float ez, ec = hyp_erfc_pos(fabsf(x) * 0.70710678118654752f, &ez);
    *pdf = 0.39894228040143268f * ez;                // e^{-x^2/2} / sqrt(2 pi)
    return 0.5f * (x >= 0.0f ? 2.0f - ec : ec);
}
HYP_HD float hyp_gelu(float x) { float pdf; return x * hyp_gelu_cdf(x, &pdf); }
HYP_HD float hyp_gelu_grad(float x) {
    float pdf, cdf = hyp_gelu_cdf(x, &pdf);
    return cdf + x * pdf;
}
// GELU with the tanh approximation (HF "gelu_new" / "gelu_pytorch_tanh", torch's
// gelu(approximate="tanh")): x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// tanh(u) = 1 - 2 / (e^{2u} + 1) through hyp_expf (its clamp makes large |u| give +-1).
HYP_HD float hyp_tanhf(float u) { return 1.0f - 2.0f / (hyp_expf(2.0f * u) + 1.0f); }
HYP_HD float hyp_gelu_tanh(float x) {
    float u = 0.79788456080286536f * fmaf(0.044715f * x, x * x, x);
    return 0.5f * x * (1.0f + hyp_tanhf(u));
}
HYP_HD float hyp_gelu_tanh_grad(float x) {
    float x2 = x * x, u = 0.79788456080286536f * fmaf(0.044715f * x, x2, x), t = hyp_tanhf(u);
    float du = 0.79788456080286536f * fmaf(3.0f * 0.044715f, x2, 1.0f);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}
// SiLU (swish): x * sigmoid(x); derivative sigmoid(x) (1 + x (1 - sigmoid(x))).
HYP_HD float hyp_sigmoidf(float x) { return 1.0f / (1.0f + hyp_expf(-x)); }
HYP_HD float hyp_silu(float x) { return x * hyp_sigmoidf(x); }
HYP_HD float hyp_silu_grad(float x) {
    float s = hyp_sigmoidf(x);
    return s * fmaf(x, 1.0f - s, 1.0f);
}

// ---- bf16 (round to nearest even; NaN stays NaN)
HYP_HD uint16_t hyp_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u);
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}
HYP_HD float hyp_bf16_to_f32(uint16_t h) {
    union { float f; uint32_t u; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
// x rounded to the nearest bf16 (an fp32 holding a bf16 value): what a bf16 GEMM operand
// or output holds under train.precision = bf16.
HYP_HD float hyp_round_bf16(float x) { return hyp_bf16_to_f32(hyp_f32_to_bf16(x)); }
// x rounded to the nearest tf32 (10 explicit mantissa bits, ties to even; inf and NaN kept):
// a tensor-core operand under train.precision = tf32.
HYP_HD float hyp_round_tf32(float x) {
    union { float f; uint32_t u; } v;
    v.f = x;
    if ((v.u & 0x7f800000u) != 0x7f800000u) {
        v.u += 0xfffu + ((v.u >> 13) & 1u);
        v.u &= ~0x1fffu;
    }
    return v.f;
}

// ---- Philox4x32-10 (Salmon et al. 2011): counter-based, so element i of a random op
// depends only on (seed, counter) and CPU and GPU draw identical numbers.
HYP_HD void hyp_philox4x32(uint32_t ctr[4], uint32_t key0, uint32_t key1) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ ctr[1] ^ key0;
        uint32_t n2 = hi0 ^ ctr[3] ^ key1;
        ctr[0] = n0; ctr[1] = lo1; ctr[2] = n2; ctr[3] = lo0;
        key0 += 0x9E3779B9u;
        key1 += 0xBB67AE85u;
    }
}
// Uniform in [0,1) for element `idx` of the stream (seed, offset): one Philox block
// gives 4 numbers, so element idx uses lane idx%4 of counter (offset + idx/4).
HYP_HD float hyp_philox_uniform(uint64_t seed, uint64_t offset, uint64_t idx) {
    uint64_t c = offset + (idx >> 2);
    uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0u, 0u};
    hyp_philox4x32(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
    uint32_t u = ctr[idx & 3];
    return (float)(u >> 8) * (1.0f / 16777216.0f);   // 24 random bits
}
// Dropout multiplier for element idx: 0 or 1/(1-p).
HYP_HD float hyp_dropout_mult(uint64_t seed, uint64_t offset, uint64_t idx, float p) {
    return hyp_philox_uniform(seed, offset, idx) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

// ---- binary ops and their partial derivatives
HYP_HD float hyp_binary(int op, float a, float b) {
    return op == 0 ? a + b : op == 1 ? a - b : a * b;
}
HYP_HD float hyp_binary_da(int op, float a, float b) { (void)a; return op == 2 ? b : 1.0f; }
HYP_HD float hyp_binary_db(int op, float a, float b) { (void)b; return op == 0 ? 1.0f : op == 1 ? -1.0f : a; }

// ---- AdamW (torch.optim.AdamW, single-tensor path) on one element.
// The host computes the scalar coefficients in double, as PyTorch's Python code does,
// and rounds each to float once (hyp_adamw_coef); the element update then runs the
// same float operations in the same order as PyTorch's kernels:
//   p = p * (1 - lr*wd)                         param.mul_(1 - lr * weight_decay)
//   g = g * grad_scale                          clip_grad_norm_'s g.mul_(clip_coef)
//   m = lerp(m, g, 1 - b1)                      exp_avg.lerp_(grad, 1 - beta1)
//   v = v * b2 + ((1 - b2) * g) * g             exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
//   d = sqrt(v) / sqrt(bc2) + eps               (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//   p = p + (-(lr / bc1) * m) / d               param.addcdiv_(exp_avg, denom, value=-step_size)
// lerp is ATen's: weight < 0.5 ? m + w (g - m) : g - (g - m)(1 - w), each as one fma (the
// vectorised CPU path). Products and sums are rounded separately (no contraction) so
// the CPU and GPU results are bitwise identical.
#ifdef __CUDA_ARCH__
#define HYP_FMUL_RN(a, b) __fmul_rn((a), (b))
#define HYP_FADD_RN(a, b) __fadd_rn((a), (b))
#else
#define HYP_FMUL_RN(a, b) ((a) * (b))
#define HYP_FADD_RN(a, b) ((a) + (b))
#endif
typedef struct HypAdamWCoef {
    float decay;       // 1 - lr * weight_decay
    float gscale;      // gradient multiplier (clipping coefficient)
    float w1;          // 1 - beta1 (lerp weight)
    float beta2, w2;   // beta2, 1 - beta2
    float bc2_sqrt;    // sqrt(1 - beta2^t)
    float eps;
    float neg_step;    // -lr / (1 - beta1^t)
} HypAdamWCoef;
HYP_HD HypAdamWCoef hyp_adamw_coef(double lr, double beta1, double beta2, double eps, double weight_decay,
                                   double bias_corr1, double bias_corr2, float grad_scale) {
    HypAdamWCoef c;
    c.decay = (float)(1.0 - lr * weight_decay);
    c.gscale = grad_scale;
    c.w1 = (float)(1.0 - beta1);
    c.beta2 = (float)beta2;
    c.w2 = (float)(1.0 - beta2);
    c.bc2_sqrt = (float)sqrt(bias_corr2);
    c.eps = (float)eps;
    c.neg_step = (float)(-(lr / bias_corr1));
    return c;
}
// torch.nn.utils.clip_grad_norm_'s coefficient for a total norm: max_norm / (norm + 1e-6) on
// an fp32 tensor, clamped to 1; 1 when max_norm <= 0 (no clipping). NaN for a NaN norm.
HYP_HD float hyp_clip_coef(float norm, double max_norm) {
    if (!(max_norm > 0)) return 1.0f;
    const float c = (float)max_norm / HYP_FADD_RN(norm, 1e-6f);
    return c > 1.0f ? 1.0f : c;
}

HYP_HD void hyp_adamw_elem(float *p, float *m, float *v, float g, const HypAdamWCoef c) {
    const float pd = HYP_FMUL_RN(*p, c.decay);
    g = HYP_FMUL_RN(g, c.gscale);
    const float mo = *m, diff = g - mo;
    const float mn = c.w1 < 0.5f ? fmaf(c.w1, diff, mo) : fmaf(c.w1 - 1.0f, diff, g);
    const float vn = HYP_FADD_RN(HYP_FMUL_RN(*v, c.beta2), HYP_FMUL_RN(HYP_FMUL_RN(c.w2, g), g));
    const float denom = HYP_FADD_RN(sqrtf(vn) / c.bc2_sqrt, c.eps);
    *m = mn;
    *v = vn;
    *p = HYP_FADD_RN(pd, HYP_FMUL_RN(c.neg_step, mn) / denom);
}

// ---- search (topk_rows, dense_epilogue)
// Ranking key of a hit: the unsigned order of the keys is the ranking order (score desc, then
// index asc). NaN ranks as -inf and -0 as +0 (hit_better finds them equal); idx in [0, 2^31), so
// a real key is never 0, the empty slot.
HYP_HD uint64_t hyp_search_key(float s, int32_t idx) {
    union hyp_fbits u;
    u.f = s != s ? -INFINITY : s == 0.0f ? 0.0f : s;
    uint32_t b = (uint32_t)u.i;
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);   // floats as ordered unsigned integers
    return ((uint64_t)b << 32) | (uint64_t)(0xFFFFFFFFu - (uint32_t)idx);
}
HYP_HD float hyp_search_key_score(uint64_t key) {
    uint32_t b = (uint32_t)(key >> 32);
    union hyp_fbits u;
    u.i = (int32_t)((b & 0x80000000u) ? (b & 0x7FFFFFFFu) : ~b);
    return u.f;
}
HYP_HD int32_t hyp_search_key_idx(uint64_t key) { return (int32_t)(0xFFFFFFFFu - (uint32_t)key); }
// Negated squared L2 distance from the squared norms and the dot product (exact k-NN).
HYP_HD float hyp_l2_score(float rn, float cn, float dot) { return -(rn + cn - 2.0f * dot); }
// 1 / |x| from sum x^2, the norm floored at 1e-12 (torch.nn.functional.normalize's eps).
HYP_HD float hyp_inv_norm(float sumsq) { return 1.0f / fmaxf(sqrtf(sumsq), 1e-12f); }

#endif
