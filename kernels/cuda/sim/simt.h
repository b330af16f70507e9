// simt.h: the device side of the CUDA simulator. With `make CUDA=sim` the kernels in
// kernels/cuda/*.cu are compiled as host C++ (g++) against this header instead of nvcc:
// a launch runs every block of the grid in turn on the calling host thread, and the
// threads of a block as cooperative fibers (kernels/cuda/sim/runtime.cpp), so that
// __syncthreads() is a real block barrier and the warp intrinsics exchange values only
// once every lane named in their mask has arrived. What a GPU would do wrong silently
// or hang on is reported as a launch failure instead: a divergent barrier, a lane that
// exits while others wait for it, a shuffle reading a lane outside its mask, a launch
// configuration the driver refuses.
//
// Kernels stay ordinary CUDA, with three conventions (kernels/cuda/common.cuh):
//   HYP_LAUNCH(grid, block, shmem, stream, kernel)(args...)    instead of <<<...>>>
//   HYP_SHARED(type, name, [dims]);                            instead of __shared__
//   HYP_DYNAMIC_SHARED(type, name);                            extern __shared__ type name[]
// Shared memory is poisoned with 0xff bytes (NaN for floats) when each block starts, so
// reading it before writing it shows up in results.
#ifndef HYP_SIMT_H
#define HYP_SIMT_H
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <utility>

// ---------------------------------------------------------------- vector types
struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) ushort4 { unsigned short x, y, z, w; };
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline int2 make_int2(int x, int y) { return int2{x, y}; }
static inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
static inline ushort4 make_ushort4(unsigned short x, unsigned short y, unsigned short z, unsigned short w) {
    return ushort4{x, y, z, w};
}

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// Plain __shared__ cannot be poisoned per block (g++ ignores section attributes on
// template statics): the build refuses it and names the replacement.
#define __shared__ _Pragma("GCC error \"write HYP_SHARED(type, name, [dims]) instead of __shared__ (kernels/cuda/sim/simt.h)\"")

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;

namespace hyp_sim {

// ---------------------------------------------------------------- per-host-thread state
struct Thread;
struct Block;
struct Tls {                 // trivially constructible: no TLS wrapper calls
    Thread *thread;          // the fiber running now (NULL outside a kernel)
    Block *block;
    uint3 block_idx;
    dim3 block_dim, grid_dim;
    unsigned char *dyn_shared;
    const void *kernel;      // the kernel function running now (static shared memory is counted per kernel)
};
extern thread_local Tls tls;
const uint3 &thread_idx();   // the current fiber's threadIdx (fails outside a kernel)

// ---------------------------------------------------------------- shared memory
// Registers a static shared variable once (the first time a thread reaches it) and
// poisons it; runtime.cpp poisons every registered variable again at each block start.
struct SharedReg {
    SharedReg(void *p, size_t bytes, const char *name, const char *file, int line);
};
unsigned char *dynamic_shared();

// ---------------------------------------------------------------- synchronisation
void syncthreads(const char *file, int line);
enum WarpKind { W_SHFL = 0, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL, W_SYNCWARP,
                W_WMMA_FILL, W_WMMA_LOAD, W_WMMA_STORE, W_WMMA_MMA, W_KINDS };
// One warp-collective step: waits until every lane of `mask` has arrived at a warp
// collective (the same kind, the same mask), then returns this lane's result.
uint64_t warp_collective(WarpKind kind, unsigned mask, uint64_t value, int param, int width,
                         const char *file, int line);
unsigned active_mask();
// A warp-wide operation (the wmma calls of include/mma.h): every one of the 32 lanes of a full
// warp must call it with the same kind and the same op; op then runs once, on the lanes'
// arguments (lanes[l] is what lane l passed as `mine`), before any lane carries on. It
// returns NULL, or why the call is invalid on a GPU (non-uniform pointer, misaligned
// address), which fails the launch.
typedef const char *(*WarpOp)(void *const lanes[32]);
void warp_op(WarpKind kind, WarpOp op, void *mine, const char *file, int line);

template <class T>
static inline T shfl_as(WarpKind kind, unsigned mask, T v, int param, int width, const char *file, int line) {
    static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = warp_collective(kind, mask, bits, param, width, file, line);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

// ---------------------------------------------------------------- launches
struct LaunchSite { const char *kernel, *file; int line; };
typedef void (*ThreadEntry)(void *ctx);
// Validates the configuration, runs every block, records the error (cudaGetLastError).
void run_grid(const LaunchSite &site, const void *kernel, dim3 grid, dim3 block, size_t shmem,
              cudaStream_t stream, ThreadEntry entry, void *ctx);

template <class... P>
struct Launch {
    LaunchSite site;
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;
    void (*fn)(P...);
    template <class... A>
    void operator()(A &&...a) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
        struct Ctx { void (*fn)(P...); const std::tuple<P...> *args; };
        const std::tuple<P...> args(std::forward<A>(a)...);   // kernel parameters, by value
        Ctx c{fn, &args};
        run_grid(site, (const void *)fn, grid, block, shmem, stream, [](void *p) {
            const Ctx *cx = static_cast<const Ctx *>(p);
            std::tuple<P...> local = *cx->args;                 // each thread its own copy
            std::apply(cx->fn, local);
        }, &c);
    }
};
template <class... P>
static inline Launch<P...> launch(const char *kernel, const char *file, int line, dim3 grid, dim3 block,
                                  size_t shmem, cudaStream_t stream, void (*fn)(P...)) {
    return Launch<P...>{LaunchSite{kernel, file, line}, grid, block, shmem, stream, fn};
}

}  // namespace hyp_sim

#define HYP_LAUNCH(grid, block, shmem, stream, ...) \
    ::hyp_sim::launch(#__VA_ARGS__, __FILE__, __LINE__, (grid), (block), (shmem), (stream), __VA_ARGS__)
#define HYP_SHARED(T, name, ...) \
    static __attribute__((used)) T name __VA_ARGS__; \
    static const ::hyp_sim::SharedReg hyp_shared_reg_##name(&name, sizeof name, #name, __FILE__, __LINE__)
#define HYP_DYNAMIC_SHARED(T, name) T *name = reinterpret_cast<T *>(::hyp_sim::dynamic_shared())

// ---------------------------------------------------------------- built-in variables
#define threadIdx (::hyp_sim::thread_idx())
#define blockIdx (::hyp_sim::tls.block_idx)
#define blockDim (::hyp_sim::tls.block_dim)
#define gridDim (::hyp_sim::tls.grid_dim)
#define warpSize 32

#define __syncthreads() ::hyp_sim::syncthreads(__FILE__, __LINE__)
static inline void __syncwarp(unsigned mask = 0xffffffffu, const char *file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
    ::hyp_sim::warp_collective(::hyp_sim::W_SYNCWARP, mask, 0, 0, 32, file, line);
}
static inline void __threadfence() {}
static inline void __threadfence_block() {}
static inline unsigned __activemask() { return ::hyp_sim::active_mask(); }

template <class T>
static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, const char *file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
    return ::hyp_sim::shfl_as(::hyp_sim::W_SHFL, mask, v, src, width, file, line);
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                               const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::hyp_sim::shfl_as(::hyp_sim::W_SHFL_UP, mask, v, (int)delta, width, file, line);
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                                 const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::hyp_sim::shfl_as(::hyp_sim::W_SHFL_DOWN, mask, v, (int)delta, width, file, line);
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                                const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::hyp_sim::shfl_as(::hyp_sim::W_SHFL_XOR, mask, v, lane_mask, width, file, line);
}
static inline unsigned __ballot_sync(unsigned mask, int pred, const char *file = __builtin_FILE(),
                                     int line = __builtin_LINE()) {
    return (unsigned)::hyp_sim::warp_collective(::hyp_sim::W_BALLOT, mask, pred != 0, 0, 32, file, line);
}
static inline int __any_sync(unsigned mask, int pred, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
    return (int)::hyp_sim::warp_collective(::hyp_sim::W_ANY, mask, pred != 0, 0, 32, file, line);
}
static inline int __all_sync(unsigned mask, int pred, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
    return (int)::hyp_sim::warp_collective(::hyp_sim::W_ALL, mask, pred != 0, 0, 32, file, line);
}

// ---------------------------------------------------------------- atomics
// Fibers of a grid never run at the same time, so a plain read-modify-write is atomic.
template <class T>
static inline T hyp_sim_atomic_rmw(T *p, T v, int op) {
    const T old = *p;
    switch (op) {
    case 0: *p = old + v; break;
    case 1: *p = v; break;
    case 2: *p = old > v ? old : v; break;
    case 3: *p = old < v ? old : v; break;
    }
    return old;
}
static inline float atomicAdd(float *p, float v) { return hyp_sim_atomic_rmw(p, v, 0); }
static inline double atomicAdd(double *p, double v) { return hyp_sim_atomic_rmw(p, v, 0); }
static inline int atomicAdd(int *p, int v) { return hyp_sim_atomic_rmw(p, v, 0); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { return hyp_sim_atomic_rmw(p, v, 0); }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
    return hyp_sim_atomic_rmw(p, v, 0);
}
static inline int atomicExch(int *p, int v) { return hyp_sim_atomic_rmw(p, v, 1); }
static inline unsigned atomicExch(unsigned *p, unsigned v) { return hyp_sim_atomic_rmw(p, v, 1); }
static inline float atomicExch(float *p, float v) { return hyp_sim_atomic_rmw(p, v, 1); }
static inline int atomicMax(int *p, int v) { return hyp_sim_atomic_rmw(p, v, 2); }
static inline unsigned atomicMax(unsigned *p, unsigned v) { return hyp_sim_atomic_rmw(p, v, 2); }
static inline int atomicMin(int *p, int v) { return hyp_sim_atomic_rmw(p, v, 3); }
static inline unsigned atomicMin(unsigned *p, unsigned v) { return hyp_sim_atomic_rmw(p, v, 3); }
static inline int atomicCAS(int *p, int cmp, int v) { const int o = *p; if (o == cmp) *p = v; return o; }
static inline unsigned atomicCAS(unsigned *p, unsigned cmp, unsigned v) {
    const unsigned o = *p; if (o == cmp) *p = v; return o;
}
static inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long cmp, unsigned long long v) {
    const unsigned long long o = *p; if (o == cmp) *p = v; return o;
}

// ---------------------------------------------------------------- math and intrinsics
// The device overloads of min/max that CUDA code calls unqualified.
static inline int min(int a, int b) { return a < b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline long min(long a, long b) { return a < b ? a : b; }
static inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long max(long a, long b) { return a > b ? a : b; }
static inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
static inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
static inline float __fmul_rn(float a, float b) { return a * b; }   // contraction is off in this build
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
template <class T>
static inline T __ldg(const T *p) { return *p; }

#endif
