// reduce.cu: sum, fill_grad, cross-entropy and MSE losses.
// Scalars (out, loss, gloss, gy) are 1-element DEVICE buffers: nothing here reads
// them on the host and nothing synchronises. Reductions are deterministic: fixed
// grids and fixed-order trees in double (common.cuh), no float atomics.
#include "kernels/cuda/common.cuh"

struct Ident {
    const float *x;
    __device__ float operator()(long i) const { return x[i]; }
};
extern "C" void hyp_cuda_sum(float *out, const float *x, long n) {
    hyp_reduce_acc(Ident{x}, n < 0 ? 0 : n, out, 1.0, false);
}

struct FillGrad {
    float *gx; const float *gy; float scale;
    __device__ void operator()(long i) const { gx[i] += scale * gy[0]; }
    __device__ void vec4(long q) const {
        const float g = scale * gy[0];
        float4 o = reinterpret_cast<float4 *>(gx)[q];
        o.x += g; o.y += g; o.z += g; o.w += g;
        reinterpret_cast<float4 *>(gx)[q] = o;
    }
};
extern "C" void hyp_cuda_fill_grad(float *gx, const float *gy, float scale, long n) {
    hyp_map(FillGrad{gx, gy, scale}, n, hyp_aligned16(gx));
}

// ---------------------------------------------------------------- cross-entropy
// One warp per row (C <= 4096) or one block per row: lse = max + log(sum exp(x - max)),
// row loss = lse - x[t] (NaN when t is out of range, so a bad target is visible).
#define CE_WARPS 8
__device__ __forceinline__ float ce_row_loss(float lse, const float *xr, int32_t t, int C) {
    return (t >= 0 && t < C) ? lse - xr[t] : __int_as_float(0x7fc00000);
}

__global__ void __launch_bounds__(CE_WARPS * 32)
ce_fwd_warp(float *rowloss, float *lse, const float *x, const int32_t *t, long rows, int C) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * CE_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *xr = x + row * C;
    float mx = -INFINITY;
    for (int c = lane; c < C; c += 32) mx = fmaxf(mx, xr[c]);
    mx = warp_max(mx);
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += expf(xr[c] - mx);
    s = warp_sum(s);
    if (lane == 0) {
        const float l = mx + logf(s);
        if (lse) lse[row] = l;
        rowloss[row] = ce_row_loss(l, xr, t[row], C);
    }
}

__global__ void ce_fwd_block(float *rowloss, float *lse, const float *x, const int32_t *t, long rows, int C) {
    HYP_SHARED(float, sh, [32]);
    for (long row = blockIdx.x; row < rows; row += gridDim.x) {
        const float *xr = x + row * C;
        float mx = -INFINITY;
        for (int c = threadIdx.x; c < C; c += blockDim.x) mx = fmaxf(mx, xr[c]);
        mx = block_max(mx, sh);
        float s = 0.0f;
        for (int c = threadIdx.x; c < C; c += blockDim.x) s += expf(xr[c] - mx);
        s = block_sum(s, sh);
        if (threadIdx.x == 0) {
            const float l = mx + logf(s);
            if (lse) lse[row] = l;
            rowloss[row] = ce_row_loss(l, xr, t[row], C);
        }
    }
}


extern "C" void hyp_cuda_cross_entropy_fwd(float *loss, float *lse, const float *x, const int32_t *t,
                                           long rows, int C) {
    if (rows <= 0) {   // mean over no rows: 0 (documented choice; the CPU spec decides)
        hyp_cuda_memset0(loss, sizeof(float));
        return;
    }
    if (C <= 0) hyp_fatal_at(__FILE__, __LINE__, "cross_entropy_fwd: C = %d", C);
    float *rowloss = (float *)hyp_cuda_scratch(HYP_SCRATCH_ROWS, (size_t)rows * sizeof(float));
    if (C <= 4096) {
        const long blocks = (rows + CE_WARPS - 1) / CE_WARPS;
        if (blocks > 0x7fffffffL) hyp_fatal_at(__FILE__, __LINE__, "cross_entropy_fwd: too many rows");
        HYP_LAUNCH((unsigned)blocks, CE_WARPS * 32, 0, hyp_cuda_stream(), ce_fwd_warp)(rowloss, lse, x, t, rows, C);
    } else {
        const long cap = (long)hyp_cuda_num_sms() * 8;
        HYP_LAUNCH((unsigned)(rows < cap ? rows : cap), 512, 0, hyp_cuda_stream(), ce_fwd_block)(
            rowloss, lse, x, t, rows, C);
    }
    CUDA_CHECK_LAUNCH();
    hyp_reduce_acc(Ident{rowloss}, rows, loss, 1.0 / (double)rows, false);
}

// gx[r, c] += gloss[0] / rows * (softmax(x_r)[c] - [c == t_r])
__global__ void ce_bwd_kernel(float *gx, const float *gloss, const float *x, const float *lse,
                              const int32_t *t, long rows, int C) {
    const float g = gloss[0] / (float)rows;
    for (long row = blockIdx.y; row < rows; row += gridDim.y) {
        const float l = lse[row];
        const int32_t tr = t[row];
        const float *xr = x + row * C;
        float *o = gx + row * C;
        for (long c = blockIdx.x * (long)blockDim.x + threadIdx.x; c < C; c += (long)gridDim.x * blockDim.x)
            o[c] += g * (expf(xr[c] - l) - (c == tr ? 1.0f : 0.0f));
    }
}

extern "C" void hyp_cuda_cross_entropy_bwd(float *gx, const float *gloss, const float *x, const float *lse,
                                           const int32_t *t, long rows, int C) {
    if (rows <= 0 || C <= 0) return;
    const long gxn = (C + HYP_THREADS - 1) / HYP_THREADS;
    const long gyn = rows < 65535 ? rows : 65535;
    HYP_LAUNCH(dim3((unsigned)gxn, (unsigned)gyn), HYP_THREADS, 0, hyp_cuda_stream(), ce_bwd_kernel)(
        gx, gloss, x, lse, t, rows, C);
    CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- MSE
struct SqDiff {
    const float *a, *b;
    __device__ float operator()(long i) const { const float d = a[i] - b[i]; return d * d; }
};
extern "C" void hyp_cuda_mse_fwd(float *loss, const float *a, const float *b, long n) {
    if (n <= 0) { hyp_cuda_memset0(loss, sizeof(float)); return; }
    hyp_reduce_acc(SqDiff{a, b}, n, loss, 1.0 / (double)n, false);
}

// d = gloss[0] * 2 (a - b) / n;  ga += d;  gb -= d  (either may be NULL)
struct MseBwd {
    float *ga, *gb; const float *gloss, *a, *b; float two_over_n;
    __device__ void operator()(long i) const {
        const float d = gloss[0] * two_over_n * (a[i] - b[i]);
        if (ga) ga[i] += d;
        if (gb) gb[i] -= d;
    }
    __device__ void vec4(long q) const {
        const float g = gloss[0] * two_over_n;
        const float4 av = reinterpret_cast<const float4 *>(a)[q], bv = reinterpret_cast<const float4 *>(b)[q];
        const float4 d = make_float4(g * (av.x - bv.x), g * (av.y - bv.y), g * (av.z - bv.z), g * (av.w - bv.w));
        if (ga) {
            float4 o = reinterpret_cast<float4 *>(ga)[q];
            o.x += d.x; o.y += d.y; o.z += d.z; o.w += d.w;
            reinterpret_cast<float4 *>(ga)[q] = o;
        }
        if (gb) {
            float4 o = reinterpret_cast<float4 *>(gb)[q];
            o.x -= d.x; o.y -= d.y; o.z -= d.z; o.w -= d.w;
            reinterpret_cast<float4 *>(gb)[q] = o;
        }
    }
};
extern "C" void hyp_cuda_mse_bwd(float *ga, float *gb, const float *gloss, const float *a, const float *b, long n) {
    if (n <= 0 || (!ga && !gb)) return;
    hyp_map(MseBwd{ga, gb, gloss, a, b, 2.0f / (float)n}, n, hyp_aligned16(ga, gb, a, b));
}
