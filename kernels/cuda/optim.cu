// optim.cu: the AdamW update and the sum of squares behind the global gradient norm.
// The element formula is kernels/elementwise.h (shared with the CPU, bitwise identical);
// the reduction is the deterministic two-pass tree of common.cuh (no float atomics).
#include "kernels/cuda/common.cuh"

struct AdamWStep {
    float *p; const float *g; float *m, *v; HypAdamWCoef c;
    __device__ void operator()(long i) const { hyp_adamw_elem(&p[i], &m[i], &v[i], g[i], c); }
    __device__ void vec4(long q) const {
        float4 pv = reinterpret_cast<float4 *>(p)[q], mv = reinterpret_cast<float4 *>(m)[q];
        float4 vv = reinterpret_cast<float4 *>(v)[q];
        const float4 gv = reinterpret_cast<const float4 *>(g)[q];
        hyp_adamw_elem(&pv.x, &mv.x, &vv.x, gv.x, c);
        hyp_adamw_elem(&pv.y, &mv.y, &vv.y, gv.y, c);
        hyp_adamw_elem(&pv.z, &mv.z, &vv.z, gv.z, c);
        hyp_adamw_elem(&pv.w, &mv.w, &vv.w, gv.w, c);
        reinterpret_cast<float4 *>(p)[q] = pv;
        reinterpret_cast<float4 *>(m)[q] = mv;
        reinterpret_cast<float4 *>(v)[q] = vv;
    }
};

extern "C" void hyp_cuda_adamw_step(float *p, const float *g, float *m, float *v, long n, double lr,
                                    double beta1, double beta2, double eps, double weight_decay,
                                    double bias_corr1, double bias_corr2, float grad_scale) {
    const HypAdamWCoef c = hyp_adamw_coef(lr, beta1, beta2, eps, weight_decay, bias_corr1, bias_corr2, grad_scale);
    hyp_map(AdamWStep{p, g, m, v, c}, n, hyp_aligned16(p, g, m, v));
}

struct Square {
    const float *x;
    __device__ double operator()(long i) const { const double t = x[i]; return t * t; }   // as the CPU
};
extern "C" void hyp_cuda_sum_squares(float *out, const float *x, long n) {
    hyp_reduce_acc(Square{x}, n < 0 ? 0 : n, out, 1.0, false);
}
