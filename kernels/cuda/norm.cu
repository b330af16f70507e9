// norm.cu: layernorm forward/backward and the fused residual + layernorm.
// One warp per row, fp32 statistics (two-pass: mean, then mean of squared
// deviations). Rows with D % 4 == 0 and D <= 1024 (BERT's 768, the q-net widths)
// are held in registers as float4s and read once; other rows take the generic path.
// gw/gb are deterministic column sums (no atomics).
#include "kernels/cuda/common.cuh"

#define LN_WARPS 8   // rows per block

__device__ __forceinline__ float4 f4add(float4 a, float4 b) { return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w); }
__device__ __forceinline__ float f4sum(float4 a) { return (a.x + a.y) + (a.z + a.w); }

// ---------------------------------------------------------------- forward
// r != NULL: the row is x + r, written to s. w/b NULL: no affine. mean/rstd may be NULL.
template <int K>
__global__ void __launch_bounds__(LN_WARPS * 32)
ln_fwd_vec(float *y, float *s, float *mean, float *rstd, const float *x, const float *r,
           const float *w, const float *b, long rows, int D, float eps) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const int D4 = D >> 2;
    const float4 *x4 = reinterpret_cast<const float4 *>(x + row * D);
    const float4 *r4 = r ? reinterpret_cast<const float4 *>(r + row * D) : NULL;
    float4 *s4 = s ? reinterpret_cast<float4 *>(s + row * D) : NULL;
    float4 v[K];
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int q = lane + 32 * k;
        v[k] = make_float4(0.f, 0.f, 0.f, 0.f);
        if (q < D4) {
            v[k] = x4[q];
            if (r4) { v[k] = f4add(v[k], r4[q]); s4[q] = v[k]; }
            sum += f4sum(v[k]);
        }
    }
    const float mu = warp_sum(sum) / (float)D;
    float sq = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        if (lane + 32 * k < D4) {
            const float a = v[k].x - mu, bb = v[k].y - mu, c = v[k].z - mu, d = v[k].w - mu;
            sq += (a * a + bb * bb) + (c * c + d * d);
        }
    }
    const float var = warp_sum(sq) / (float)D;
    const float rs = 1.0f / sqrtf(var + eps);
    float4 *y4 = reinterpret_cast<float4 *>(y + row * D);
    const float4 *w4 = reinterpret_cast<const float4 *>(w), *b4 = reinterpret_cast<const float4 *>(b);
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int q = lane + 32 * k;
        if (q < D4) {
            float4 o = make_float4((v[k].x - mu) * rs, (v[k].y - mu) * rs, (v[k].z - mu) * rs, (v[k].w - mu) * rs);
            if (w4) { const float4 wv = w4[q]; o.x *= wv.x; o.y *= wv.y; o.z *= wv.z; o.w *= wv.w; }
            if (b4) o = f4add(o, b4[q]);
            y4[q] = o;
        }
    }
    if (lane == 0) {
        if (mean) mean[row] = mu;
        if (rstd) rstd[row] = rs;
    }
}

__global__ void __launch_bounds__(LN_WARPS * 32)
ln_fwd_generic(float *y, float *s, float *mean, float *rstd, const float *x, const float *r,
               const float *w, const float *b, long rows, int D, float eps) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *xr = x + row * D;
    const float *src = xr;               // where passes 2 and 3 read the row from
    float sum = 0.0f;
    if (r) {
        const float *rr = r + row * D;
        float *sr = s + row * D;
        for (int i = lane; i < D; i += 32) { const float v = xr[i] + rr[i]; sr[i] = v; sum += v; }
        src = sr;                        // each lane re-reads only what it wrote
    } else {
        for (int i = lane; i < D; i += 32) sum += xr[i];
    }
    const float mu = warp_sum(sum) / (float)D;
    float sq = 0.0f;
    for (int i = lane; i < D; i += 32) { const float d = src[i] - mu; sq += d * d; }
    const float var = warp_sum(sq) / (float)D;
    const float rs = 1.0f / sqrtf(var + eps);
    float *yr = y + row * D;
    for (int i = lane; i < D; i += 32) {
        float o = (src[i] - mu) * rs;
        if (w) o *= w[i];
        if (b) o += b[i];
        yr[i] = o;
    }
    if (lane == 0) {
        if (mean) mean[row] = mu;
        if (rstd) rstd[row] = rs;
    }
}

// Register-cached path when every row is float4-aligned and fits in K float4s per lane.
static int vec_k(int D, bool aligned) {
    if (!aligned || D % 4 != 0 || D <= 0 || D > 1024) return 0;
    const int need = (D / 4 + 31) / 32;
    return need <= 1 ? 1 : need <= 2 ? 2 : need <= 4 ? 4 : need <= 6 ? 6 : 8;
}

static void ln_fwd_launch(float *y, float *s, float *mean, float *rstd, const float *x, const float *r,
                          const float *w, const float *b, long rows, int D, float eps) {
    if (rows <= 0) return;
    if (D <= 0) hyp_fatal_at(__FILE__, __LINE__, "layernorm: D = %d", D);
    const long blocks = (rows + LN_WARPS - 1) / LN_WARPS;
    if (blocks > 0x7fffffffL) hyp_fatal_at(__FILE__, __LINE__, "layernorm: %ld rows: too many", rows);
    const int K = vec_k(D, hyp_aligned16(y, s, x, r) && hyp_aligned16(w, b));
    const dim3 grid((unsigned)blocks), block(LN_WARPS * 32);
    cudaStream_t st = hyp_cuda_stream();
    switch (K) {
    case 1: HYP_LAUNCH(grid, block, 0, st, ln_fwd_vec<1>)(y, s, mean, rstd, x, r, w, b, rows, D, eps); break;
    case 2: HYP_LAUNCH(grid, block, 0, st, ln_fwd_vec<2>)(y, s, mean, rstd, x, r, w, b, rows, D, eps); break;
    case 4: HYP_LAUNCH(grid, block, 0, st, ln_fwd_vec<4>)(y, s, mean, rstd, x, r, w, b, rows, D, eps); break;
    case 6: HYP_LAUNCH(grid, block, 0, st, ln_fwd_vec<6>)(y, s, mean, rstd, x, r, w, b, rows, D, eps); break;
    case 8: HYP_LAUNCH(grid, block, 0, st, ln_fwd_vec<8>)(y, s, mean, rstd, x, r, w, b, rows, D, eps); break;
    default: HYP_LAUNCH(grid, block, 0, st, ln_fwd_generic)(y, s, mean, rstd, x, r, w, b, rows, D, eps); break;
    }
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_layernorm_fwd(float *y, float *mean, float *rstd, const float *x,
                                       const float *w, const float *b, long rows, int D, float eps) {
    ln_fwd_launch(y, NULL, mean, rstd, x, NULL, w, b, rows, D, eps);
}

extern "C" void hyp_cuda_add_layernorm_fwd(float *y, float *s, float *mean, float *rstd, const float *a,
                                           const float *r, const float *w, const float *b, long rows,
                                           int D, float eps) {
    if (!s || !r) hyp_fatal_at(__FILE__, __LINE__, "add_layernorm_fwd: s and r must not be NULL");
    ln_fwd_launch(y, s, mean, rstd, a, r, w, b, rows, D, eps);
}

// ---------------------------------------------------------------- backward
// g = gy * w (gy without affine), xhat = (x - mean) * rstd:
// gx += rstd * (g - mean(g) - xhat * mean(g * xhat))
template <int K>
__global__ void __launch_bounds__(LN_WARPS * 32)
ln_bwd_vec(float *gx, const float *gy, const float *x, const float *mean, const float *rstd,
           const float *w, long rows, int D) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const int D4 = D >> 2;
    const float mu = mean[row], rs = rstd[row];
    const float4 *x4 = reinterpret_cast<const float4 *>(x + row * D);
    const float4 *g4 = reinterpret_cast<const float4 *>(gy + row * D);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
    float4 g[K] = {}, xh[K] = {};   // (initialised: g++ cannot see the unrolled loop does it)
    float sg = 0.0f, sgx = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int q = lane + 32 * k;
        g[k] = make_float4(0.f, 0.f, 0.f, 0.f);
        xh[k] = g[k];
        if (q < D4) {
            const float4 xv = x4[q];
            g[k] = g4[q];
            if (w4) { const float4 wv = w4[q]; g[k].x *= wv.x; g[k].y *= wv.y; g[k].z *= wv.z; g[k].w *= wv.w; }
            xh[k] = make_float4((xv.x - mu) * rs, (xv.y - mu) * rs, (xv.z - mu) * rs, (xv.w - mu) * rs);
            sg += f4sum(g[k]);
            sgx += (g[k].x * xh[k].x + g[k].y * xh[k].y) + (g[k].z * xh[k].z + g[k].w * xh[k].w);
        }
    }
    const float mg = warp_sum(sg) / (float)D, mgx = warp_sum(sgx) / (float)D;
    float4 *o4 = reinterpret_cast<float4 *>(gx + row * D);
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int q = lane + 32 * k;
        if (q < D4) {
            float4 o = o4[q];
            o.x += rs * (g[k].x - mg - xh[k].x * mgx);
            o.y += rs * (g[k].y - mg - xh[k].y * mgx);
            o.z += rs * (g[k].z - mg - xh[k].z * mgx);
            o.w += rs * (g[k].w - mg - xh[k].w * mgx);
            o4[q] = o;
        }
    }
}

__global__ void __launch_bounds__(LN_WARPS * 32)
ln_bwd_generic(float *gx, const float *gy, const float *x, const float *mean, const float *rstd,
               const float *w, long rows, int D) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float mu = mean[row], rs = rstd[row];
    const float *xr = x + row * D, *gr = gy + row * D;
    float sg = 0.0f, sgx = 0.0f;
    for (int i = lane; i < D; i += 32) {
        const float g = w ? gr[i] * w[i] : gr[i];
        sg += g;
        sgx += g * ((xr[i] - mu) * rs);
    }
    const float mg = warp_sum(sg) / (float)D, mgx = warp_sum(sgx) / (float)D;
    float *o = gx + row * D;
    for (int i = lane; i < D; i += 32) {
        const float g = w ? gr[i] * w[i] : gr[i];
        const float xh = (xr[i] - mu) * rs;
        o[i] += rs * (g - mg - xh * mgx);
    }
}

struct LnGradW {   // gy * xhat
    const float *gy, *x, *mean, *rstd; long D;
    __device__ float operator()(long r, long j) const {
        const long i = r * D + j;
        return gy[i] * ((x[i] - mean[r]) * rstd[r]);
    }
};
struct LnGradB {   // gy
    const float *gy; long D;
    __device__ float operator()(long r, long j) const { return gy[r * D + j]; }
};

extern "C" void hyp_cuda_layernorm_bwd(float *gx, float *gw, float *gb, const float *gy, const float *x,
                                       const float *mean, const float *rstd, const float *w, long rows,
                                       int D) {
    if (rows <= 0) return;
    if (D <= 0) hyp_fatal_at(__FILE__, __LINE__, "layernorm_bwd: D = %d", D);
    if (gx) {
        const long blocks = (rows + LN_WARPS - 1) / LN_WARPS;
        if (blocks > 0x7fffffffL) hyp_fatal_at(__FILE__, __LINE__, "layernorm_bwd: %ld rows: too many", rows);
        const int K = vec_k(D, hyp_aligned16(gx, gy, x, w));
        const dim3 grid((unsigned)blocks), block(LN_WARPS * 32);
        cudaStream_t st = hyp_cuda_stream();
        switch (K) {
        case 1: HYP_LAUNCH(grid, block, 0, st, ln_bwd_vec<1>)(gx, gy, x, mean, rstd, w, rows, D); break;
        case 2: HYP_LAUNCH(grid, block, 0, st, ln_bwd_vec<2>)(gx, gy, x, mean, rstd, w, rows, D); break;
        case 4: HYP_LAUNCH(grid, block, 0, st, ln_bwd_vec<4>)(gx, gy, x, mean, rstd, w, rows, D); break;
        case 6: HYP_LAUNCH(grid, block, 0, st, ln_bwd_vec<6>)(gx, gy, x, mean, rstd, w, rows, D); break;
        case 8: HYP_LAUNCH(grid, block, 0, st, ln_bwd_vec<8>)(gx, gy, x, mean, rstd, w, rows, D); break;
        default: HYP_LAUNCH(grid, block, 0, st, ln_bwd_generic)(gx, gy, x, mean, rstd, w, rows, D); break;
        }
        CUDA_CHECK_LAUNCH();
    }
    if (gw) hyp_colsum_acc(LnGradW{gy, x, mean, rstd, D}, gw, rows, D);
    if (gb) hyp_colsum_acc(LnGradB{gy, D}, gb, rows, D);
}
