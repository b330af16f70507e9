// common.cuh: shared helpers of the CUDA backend (error checks, launch geometry,
// warp/block reductions, scratch buffers). Internal to kernels/cuda/*.cu.
#ifndef HYP_CUDA_COMMON_CUH
#define HYP_CUDA_COMMON_CUH
#include <cuda_runtime.h>
#include "kernels/cuda/cuda_kernels.h"   // includes util.h, kernels.h with C linkage
#include "kernels/elementwise.h"

// Launches and shared memory go through these three macros so that the same kernel
// source builds with nvcc and, as host C++, under the CUDA simulator (make CUDA=sim;
// kernels/cuda/sim/simt.h defines them there).
#ifndef HYP_CUDA_SIM
#define HYP_LAUNCH(grid, block, shmem, stream, ...) __VA_ARGS__<<<(grid), (block), (shmem), (stream)>>>
#define HYP_SHARED(T, name, ...) __shared__ T name __VA_ARGS__
#define HYP_DYNAMIC_SHARED(T, name) \
    extern __shared__ __align__(16) unsigned char hyp_dyn_smem_##name[]; \
    T *name = reinterpret_cast<T *>(hyp_dyn_smem_##name)
#endif

// ---- error checks: "hyp: file:line: CUDA error: ..." and exit(2).
#define CUDA_CHECK(call) do { \
        cudaError_t e_ = (call); \
        if (e_ != cudaSuccess) \
            hyp_fatal_at(__FILE__, __LINE__, "CUDA error %s (%s) in %s", cudaGetErrorName(e_), \
                         cudaGetErrorString(e_), #call); \
    } while (0)
// After every kernel launch: catches bad launch configurations immediately
// (asynchronous faults surface at the next synchronising call, or at once under
// HYP_CUDA_SYNC=1).
// With HYP_CUDA_SYNC=1, also synchronises so that a fault names its own launch.
#define CUDA_CHECK_LAUNCH() hyp_cuda_check_launch(__FILE__, __LINE__)

// The stream every launcher enqueues on. The legacy default stream, so that host
// code using plain cudaMemcpy (and NCCL on its own stream) stays ordered with it.
static inline cudaStream_t hyp_cuda_stream(void) { return (cudaStream_t)0; }

// ---- launch geometry
#define HYP_THREADS 256
#define HYP_WARP 32
// Multiprocessor count of the current device (cached).
int hyp_cuda_num_sms(void);
// Blocks for a grid-stride loop over n work items: enough to fill the GPU
// (a few waves), never more than needed.
static inline unsigned hyp_grid(long n, int threads) {
    if (n <= 0) return 1;
    long need = (n + threads - 1) / threads;
    long cap = (long)hyp_cuda_num_sms() * 16;
    return (unsigned)(need < cap ? need : cap);
}

// Device scratch buffers that only grow (slot-indexed so that one launcher can hold
// several at once). Reusing them across launches is safe because every launcher
// enqueues on the same stream. Growing synchronises the device (cudaFree).
enum { HYP_SCRATCH_GEMM_A = 0, HYP_SCRATCH_GEMM_B = 1, HYP_SCRATCH_REDUCE = 2,
       HYP_SCRATCH_ROWS = 3, HYP_SCRATCH_SORT = 4, HYP_SCRATCH_GEMM_C = 5, HYP_SCRATCH_COUNT = 6 };
void *hyp_cuda_scratch(int slot, size_t bytes);

// True when p is aligned to `bytes` (a power of two).
static inline bool hyp_aligned(const void *p, size_t bytes) {
    return ((uintptr_t)p & (bytes - 1)) == 0;
}

// ---- reductions inside a warp / a block (blockDim.x a multiple of 32, <= 1024)
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Every thread of the block gets the result. `sh` is >= 32 floats of shared memory;
// the function may be called repeatedly with the same buffer.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();                 // sh may still be read by a previous call
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

// ---- element-wise maps. An Op has `__device__ void operator()(long i)` for element i
// and `__device__ void vec4(long q)` for elements 4q..4q+3 (16-byte accesses; only
// called when the launcher says every pointer is 16-byte aligned).
template <class Op>
__global__ void hyp_map_kernel(Op op, long n, bool vec) {
    const long stride = (long)gridDim.x * blockDim.x;
    const long tid = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        const long n4 = n >> 2;
        for (long q = tid; q < n4; q += stride) op.vec4(q);
        for (long i = (n4 << 2) + tid; i < n; i += stride) op(i);
    } else {
        for (long i = tid; i < n; i += stride) op(i);
    }
}
template <class Op>
static inline void hyp_map(const Op &op, long n, bool vec) {
    if (n <= 0) return;
    HYP_LAUNCH(hyp_grid(vec ? (n >> 2) + 1 : n, HYP_THREADS), HYP_THREADS, 0,
                         hyp_cuda_stream(), hyp_map_kernel<Op>)(op, n, vec);
    CUDA_CHECK_LAUNCH();
}
static inline bool hyp_aligned16(const void *a, const void *b = NULL, const void *c = NULL,
                                 const void *d = NULL) {
    return hyp_aligned(a, 16) && hyp_aligned(b, 16) && hyp_aligned(c, 16) && hyp_aligned(d, 16);
}

// ---- deterministic column sums: g[j] += sum_r f(r, j) for r < rows, j < nb.
// Block (32, 8) sums a 32-column tile over a slice of rows in a fixed order and writes
// one partial per slice; a second kernel adds the slices in order. The split depends
// on the shape only, so results are bitwise reproducible. Sums are kept in double
// (as the CPU backend does), which costs nothing in these memory-bound loops.
#define HYP_CS_TX 32
#define HYP_CS_TY 8
template <class F>
__global__ void hyp_colsum_partial(F f, double *part, long rows, long nb, long rows_per_split) {
    HYP_SHARED(double, sh, [HYP_CS_TY][HYP_CS_TX + 1]);
    const long j = (long)blockIdx.x * HYP_CS_TX + threadIdx.x;
    const long r0 = (long)blockIdx.y * rows_per_split;
    const long r1 = min(rows, r0 + rows_per_split);
    double acc = 0.0;
    if (j < nb)
        for (long r = r0 + threadIdx.y; r < r1; r += HYP_CS_TY) acc += (double)f(r, j);
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < nb) {
        double s = 0.0;
#pragma unroll
        for (int k = 0; k < HYP_CS_TY; k++) s += sh[k][threadIdx.x];
        part[(long)blockIdx.y * nb + j] = s;
    }
}
template <typename T>
__global__ void hyp_colsum_final(T *g, const double *part, long nb, int splits) {
    for (long j = blockIdx.x * (long)blockDim.x + threadIdx.x; j < nb; j += (long)gridDim.x * blockDim.x) {
        double s = 0.0;
        for (int k = 0; k < splits; k++) s += part[(long)k * nb + j];
        g[j] += (T)s;
    }
}
template <class F>
static inline void hyp_colsum_acc(const F &f, float *g, long rows, long nb) {
    if (rows <= 0 || nb <= 0) return;
    long splits = (rows + 63) / 64;          // slices of >= 64 rows, at most 128 slices
    if (splits > 128) splits = 128;
    const long rps = (rows + splits - 1) / splits;
    splits = (rows + rps - 1) / rps;
    const long tiles = (nb + HYP_CS_TX - 1) / HYP_CS_TX;
    if (tiles > 0x7fffffffL)
        hyp_fatal_at(__FILE__, __LINE__, "column sum over %ld columns: too many", nb);
    double *part = (double *)hyp_cuda_scratch(HYP_SCRATCH_REDUCE, (size_t)splits * (size_t)nb * sizeof(double));
    dim3 grid((unsigned)tiles, (unsigned)splits), block(HYP_CS_TX, HYP_CS_TY);
    HYP_LAUNCH(grid, block, 0, hyp_cuda_stream(), hyp_colsum_partial<F>)(f, part, rows, nb, rps);
    CUDA_CHECK_LAUNCH();
    HYP_LAUNCH(hyp_grid(nb, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), hyp_colsum_final<float>)(
        g, part, nb, (int)splits);
    CUDA_CHECK_LAUNCH();
}

// ---- deterministic full reductions:
//   out[0] = (accumulate ? out[0] : 0) + (float)(scale * sum_i f(i)), the sum in double.
// A fixed number of blocks (a function of n only) each reduce a grid-strided share
// into one partial; a single block adds the partials in a fixed tree order.
#define HYP_RED_BLOCKS 512
template <class F>
__global__ void hyp_reduce_partial(F f, long n, double *part) {
    HYP_SHARED(double, sh, [32]);
    double acc = 0.0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        acc += (double)f(i);
    acc = block_sum_d(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}
template <typename T>
__global__ void hyp_reduce_final(T *out, const double *part, int m, double scale, bool accumulate) {
    HYP_SHARED(double, sh, [32]);
    double acc = 0.0;
    for (int k = threadIdx.x; k < m; k += blockDim.x) acc += part[k];
    acc = block_sum_d(acc, sh);
    if (threadIdx.x == 0) {
        const T v = (T)(scale * acc);
        out[0] = accumulate ? out[0] + v : v;
    }
}
template <class F>
static inline void hyp_reduce_acc(const F &f, long n, float *out, double scale, bool accumulate) {
    long blocks = (n + HYP_THREADS - 1) / HYP_THREADS;
    if (blocks > HYP_RED_BLOCKS) blocks = HYP_RED_BLOCKS;
    if (blocks < 1) blocks = 1;
    double *part = (double *)hyp_cuda_scratch(HYP_SCRATCH_REDUCE, (size_t)blocks * sizeof(double));
    HYP_LAUNCH((unsigned)blocks, HYP_THREADS, 0, hyp_cuda_stream(), hyp_reduce_partial<F>)(f, n, part);
    CUDA_CHECK_LAUNCH();
    HYP_LAUNCH(1, 512, 0, hyp_cuda_stream(), hyp_reduce_final<float>)(out, part, (int)blocks, scale, accumulate);
    CUDA_CHECK_LAUNCH();
}

#endif
