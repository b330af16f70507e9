// movement.cu: 4-D permute and strided block copy, both optionally accumulating; arange.
// When the innermost dimension moves as a whole and is a multiple of 4 floats, they
// run on float4 units (16-byte accesses).
#include "kernels/cuda/common.cuh"

template <typename T> __device__ __forceinline__ void put(T *d, T v, bool acc);
template <> __device__ __forceinline__ void put<float>(float *d, float v, bool acc) { *d = acc ? *d + v : v; }
template <> __device__ __forceinline__ void put<float4>(float4 *d, float4 v, bool acc) {
    if (acc) { const float4 o = *d; v.x += o.x; v.y += o.y; v.z += o.z; v.w += o.w; }
    *d = v;
}

// ---------------------------------------------------------------- permute
struct PermGeom {
    long ys[4];        // output shape (in units of T)
    long xs[4];        // input stride of the input dim that output dim k reads (x stride of perm[k])
};

// Output-ordered: writes coalesce; reads gather. IDX is the index type (32-bit when it fits).
template <typename T, typename IDX>
__global__ void permute_kernel(T *y, const T *x, PermGeom g, IDX total, bool acc) {
    const IDX y1 = (IDX)g.ys[1], y2 = (IDX)g.ys[2], y3 = (IDX)g.ys[3];
    const IDX s0 = (IDX)g.xs[0], s1 = (IDX)g.xs[1], s2 = (IDX)g.xs[2], s3 = (IDX)g.xs[3];
    for (IDX o = (IDX)blockIdx.x * blockDim.x + threadIdx.x; o < total; o += (IDX)gridDim.x * blockDim.x) {
        IDX r = o;
        const IDX i3 = r % y3; r /= y3;
        const IDX i2 = r % y2; r /= y2;
        const IDX i1 = r % y1; r /= y1;
        const IDX in = r * s0 + i1 * s1 + i2 * s2 + i3 * s3;
        put<T>(y + o, x[in], acc);
    }
}

template <typename T>
static void permute_launch(T *y, const T *x, const long shape[4], const int perm[4], bool acc) {
    long xstride[4];
    xstride[3] = 1;
    for (int d = 2; d >= 0; d--) xstride[d] = xstride[d + 1] * shape[d + 1];
    PermGeom g;
    long total = 1;
    for (int k = 0; k < 4; k++) { g.ys[k] = shape[perm[k]]; g.xs[k] = xstride[perm[k]]; total *= g.ys[k]; }
    if (total <= 0) return;
    const unsigned grid = hyp_grid(total, HYP_THREADS);
    if (total < 0x7fffffffL)
        HYP_LAUNCH(grid, HYP_THREADS, 0, hyp_cuda_stream(), permute_kernel<T, unsigned>)(
            y, x, g, (unsigned)total, acc);
    else
        HYP_LAUNCH(grid, HYP_THREADS, 0, hyp_cuda_stream(), permute_kernel<T, unsigned long long>)(
            y, x, g, (unsigned long long)total, acc);
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_permute(float *y, const float *x, const int shape[4], const int perm[4], bool accumulate) {
    int seen = 0;
    for (int k = 0; k < 4; k++) {
        if (perm[k] < 0 || perm[k] > 3 || (seen & (1 << perm[k])))
            hyp_fatal_at(__FILE__, __LINE__, "permute: bad perm (%d %d %d %d)", perm[0], perm[1], perm[2], perm[3]);
        seen |= 1 << perm[k];
        if (shape[k] < 0) hyp_fatal_at(__FILE__, __LINE__, "permute: negative dim %d", shape[k]);
    }
    long sh[4] = {shape[0], shape[1], shape[2], shape[3]};
    if (perm[3] == 3 && sh[3] % 4 == 0 && hyp_aligned16(y, x)) {
        sh[3] /= 4;
        permute_launch<float4>(reinterpret_cast<float4 *>(y), reinterpret_cast<const float4 *>(x), sh, perm, accumulate);
    } else {
        permute_launch<float>(y, x, sh, perm, accumulate);
    }
}

// ---------------------------------------------------------------- block copy
// dst (outer, dst_dim, inner)[:, dst_start:dst_start+len, :] (+)= src (outer, src_dim, inner)[:, src_start:..., :]
// In units of T: each outer slab is one contiguous run of w = len*inner elements.
template <typename T>
__global__ void block_copy_kernel(T *dst, long dst_pitch, const T *src, long src_pitch, long outer, long w,
                                  bool acc) {
    for (long o = blockIdx.y; o < outer; o += gridDim.y) {
        T *d = dst + o * dst_pitch;
        const T *s = src + o * src_pitch;
        for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < w; e += (long)gridDim.x * blockDim.x)
            put<T>(d + e, s[e], acc);
    }
}

template <typename T>
static void block_copy_launch(T *dst, long dst_pitch, const T *src, long src_pitch, long outer, long w, bool acc) {
    long gx = (w + HYP_THREADS - 1) / HYP_THREADS;
    const long target = (long)hyp_cuda_num_sms() * 16;      // total blocks to aim for
    long gy = outer < 65535 ? outer : 65535;
    if (gx * gy > target) gx = (target + gy - 1) / gy;      // threads loop over the rest
    if (gx < 1) gx = 1;
    HYP_LAUNCH(dim3((unsigned)gx, (unsigned)gy), HYP_THREADS, 0, hyp_cuda_stream(), block_copy_kernel<T>)(
        dst, dst_pitch, src, src_pitch, outer, w, acc);
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_block_copy(float *dst, int dst_dim, int dst_start, const float *src, int src_dim,
                                    int src_start, long outer, int len, long inner, bool accumulate) {
    if (outer <= 0 || len <= 0 || inner <= 0) return;
    if (dst_start < 0 || src_start < 0 || dst_start + len > dst_dim || src_start + len > src_dim)
        hyp_fatal_at(__FILE__, __LINE__, "block_copy: rows [%d,+%d) of %d into [%d,+%d) of %d out of range",
                     src_start, len, src_dim, dst_start, len, dst_dim);
    float *d = dst + (long)dst_start * inner;
    const float *s = src + (long)src_start * inner;
    const long w = (long)len * inner, dp = (long)dst_dim * inner, sp = (long)src_dim * inner;
    if (w % 4 == 0 && dp % 4 == 0 && sp % 4 == 0 && hyp_aligned16(d, s))
        block_copy_launch<float4>(reinterpret_cast<float4 *>(d), dp / 4, reinterpret_cast<const float4 *>(s),
                                  sp / 4, outer, w / 4, accumulate);
    else
        block_copy_launch<float>(d, dp, s, sp, outer, w, accumulate);
}

// ---------------------------------------------------------------- arange
struct Arange {
    int32_t *y; int32_t start, step;
    __device__ void operator()(long i) const { y[i] = (int32_t)(start + (long long)i * step); }
    __device__ void vec4(long q) const {}   // never called: hyp_map without vec
};
extern "C" void hyp_cuda_arange_i32(int32_t *y, int32_t start, int32_t step, long n) {
    hyp_map(Arange{y, start, step}, n, false);
}
