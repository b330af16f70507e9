// optim.cu: the AdamW update, the sum of squares behind the global gradient norm, and the
// clipping coefficient computed on the device (clip_coef, adamw_step_dev: no host round trip).
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

// The clipping coefficient is read from device memory by every thread (one cached load);
// a non-finite value (clip_coef's "skip this update") leaves every element as it was.
struct AdamWStepDev {
    float *p; const float *g; float *m, *v; HypAdamWCoef c; const float *scale;
    __device__ HypAdamWCoef coef() const { HypAdamWCoef k = c; k.gscale = *scale; return k; }
    __device__ void operator()(long i) const {
        const HypAdamWCoef k = coef();
        if (isfinite(k.gscale)) hyp_adamw_elem(&p[i], &m[i], &v[i], g[i], k);
    }
    __device__ void vec4(long q) const {
        const HypAdamWCoef k = coef();
        if (isfinite(k.gscale)) AdamWStep{p, g, m, v, k}.vec4(q);
    }
};

extern "C" void hyp_cuda_adamw_step_dev(float *p, const float *g, float *m, float *v, long n, double lr,
                                        double beta1, double beta2, double eps, double weight_decay,
                                        double bias_corr1, double bias_corr2, const float *grad_scale) {
    const HypAdamWCoef c = hyp_adamw_coef(lr, beta1, beta2, eps, weight_decay, bias_corr1, bias_corr2, 1.0f);
    hyp_map(AdamWStepDev{p, g, m, v, c, grad_scale}, n, hyp_aligned16(p, g, m, v));
}

// One block: the threads check the losses (check may be long only in theory), thread 0
// turns the sum of squares into the coefficient, as cpu_clip_coef.
__global__ void clip_coef_kernel(HypClipState *st, const float *sumsq, const float *check, long n_check,
                                 double max_norm, int32_t step, bool sticky) {
    HYP_SHARED(int, bad_any, [1]);
    if (threadIdx.x == 0) bad_any[0] = 0;
    __syncthreads();
    for (long i = threadIdx.x; i < n_check; i += blockDim.x)
        if (!isfinite(check[i])) bad_any[0] = 1;   // benign race: every writer stores 1
    __syncthreads();
    if (threadIdx.x == 0) {
        const float norm = (float)sqrt((double)sumsq[0]);
        const bool bad = !isfinite(norm) || bad_any[0];
        const bool latched = sticky && isnan(st->coef);
        st->norm = norm;
        if (bad && st->bad_step == 0) st->bad_step = step;
        st->coef = bad || latched ? NAN : hyp_clip_coef(norm, max_norm);
    }
}

extern "C" void hyp_cuda_clip_coef(HypClipState *st, const float *sumsq, const float *check, long n_check,
                                   double max_norm, int32_t step, bool sticky) {
    HYP_LAUNCH(1, 128, 0, hyp_cuda_stream(), clip_coef_kernel)(st, sumsq, check, n_check < 0 ? 0 : n_check,
                                                                max_norm, step, sticky);
    CUDA_CHECK_LAUNCH();
}

struct Square {
    const float *x;
    __device__ double operator()(long i) const { const double t = x[i]; return t * t; }   // as the CPU
};
extern "C" void hyp_cuda_sum_squares(float *out, const float *x, long n) {
    hyp_reduce_acc(Square{x}, n < 0 ? 0 : n, out, 1.0, false);
}
