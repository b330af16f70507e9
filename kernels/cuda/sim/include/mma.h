// mma.h (simulator): nvcuda::wmma, the warp-level tensor-core API, for kernels built with
// make CUDA=sim. Fragments of 16-bit inputs (__nv_bfloat16, __half) in the shapes m16n16k16,
// m32n8k16, m8n32k16, with fp32 accumulators. Every call is a warp collective
// (hyp_sim::warp_op): all 32 lanes of the warp must make it, with the same pointer, leading
// dimension and layout, or the launch fails with a report, as on a GPU where a partial
// warp's wmma is undefined. load/store also check what the hardware requires: a 256-bit
// aligned pointer, a leading dimension that is a multiple of 16 bytes.
//
// The layout of elements across lanes is unspecified in CUDA; here lane l holds elements
// l, l + 32, l + 64, ... of the fragment's matrix in row-major order, so code that relies
// on any particular mapping (beyond element-wise operations on all of x[]) gets wrong
// results. mma_sync multiplies exactly (16-bit products are exact in fp32) and accumulates
// in fp32 in k order, starting from c.
#ifndef HYP_SIM_MMA_H
#define HYP_SIM_MMA_H
#include <cstdint>
#include <type_traits>
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "kernels/cuda/sim/simt.h"

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
template <class Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { enum { rows = M, cols = K }; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { enum { rows = K, cols = N }; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { enum { rows = M, cols = N }; };
static inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
static inline float widen(__half v) { return __half2float(v); }
static inline float widen(float v) { return v; }
template <class T> static inline T narrow(float v);
template <> inline float narrow<float>(float v) { return v; }
template <> inline __nv_bfloat16 narrow<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> inline __half narrow<__half>(float v) { return __float2half_rn(v); }
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert((M == 16 && N == 16 && K == 16) || (M == 32 && N == 8 && K == 16) || (M == 8 && N == 32 && K == 16),
                  "wmma shapes: m16n16k16, m32n8k16, m8n32k16");
    static_assert(std::is_same<Use, accumulator>::value ? std::is_same<T, float>::value
                                                        : (std::is_same<T, __nv_bfloat16>::value ||
                                                           std::is_same<T, __half>::value),
                  "the simulator's wmma: __nv_bfloat16 or __half inputs, float accumulators");
    static_assert(std::is_same<Use, accumulator>::value == std::is_same<Layout, void>::value,
                  "matrix_a/matrix_b fragments name a layout, accumulators do not");
    enum { rows = detail::dims<Use, M, N, K>::rows, cols = detail::dims<Use, M, N, K>::cols,
           num_elements = rows * cols / 32 };
    typedef T element_type;
    T x[num_elements];
};

namespace detail {
struct MemArgs {        // one lane's arguments to a load or store
    void *frag;
    const void *mem;
    unsigned ldm;
    bool row;           // row-major memory
    float value;        // fill_fragment
};
struct MmaArgs { void *d; const void *a, *b, *c; };

// Uniform arguments, 256-bit aligned pointer, ldm a multiple of 16 bytes and >= the row length.
static inline const char *check_mem(void *const lanes[32], size_t elt, int rows, int cols) {
    const MemArgs *a0 = static_cast<const MemArgs *>(lanes[0]);
    for (int l = 1; l < 32; l++) {
        const MemArgs *a = static_cast<const MemArgs *>(lanes[l]);
        if (a->mem != a0->mem || a->ldm != a0->ldm || a->row != a0->row)
            return "the lanes pass different pointers, leading dimensions or layouts (they must be the same)";
    }
    if ((uintptr_t)a0->mem % 32 != 0) return "the pointer is not 256-bit (32-byte) aligned";
    if (a0->ldm * elt % 16 != 0) return "the leading dimension is not a multiple of 16 bytes";
    if ((int)a0->ldm < (a0->row ? cols : rows)) return "the leading dimension is smaller than the tile";
    return nullptr;
}

template <class F>
static const char *load_op(void *const lanes[32]) {
    typedef typename F::element_type T;
    if (const char *why = check_mem(lanes, sizeof(T), F::rows, F::cols)) return why;
    for (int l = 0; l < 32; l++) {
        const MemArgs *a = static_cast<const MemArgs *>(lanes[l]);
        const T *m = static_cast<const T *>(a->mem);
        F *f = static_cast<F *>(a->frag);
        for (int r = 0; r < F::num_elements; r++) {
            const int e = l + 32 * r, i = e / F::cols, j = e % F::cols;
            f->x[r] = a->row ? m[(size_t)i * a->ldm + j] : m[(size_t)j * a->ldm + i];
        }
    }
    return nullptr;
}

template <class F>
static const char *store_op(void *const lanes[32]) {
    if (const char *why = check_mem(lanes, sizeof(float), F::rows, F::cols)) return why;
    for (int l = 0; l < 32; l++) {
        const MemArgs *a = static_cast<const MemArgs *>(lanes[l]);
        float *m = static_cast<float *>(const_cast<void *>(a->mem));
        const F *f = static_cast<const F *>(a->frag);
        for (int r = 0; r < F::num_elements; r++) {
            const int e = l + 32 * r, i = e / F::cols, j = e % F::cols;
            (a->row ? m[(size_t)i * a->ldm + j] : m[(size_t)j * a->ldm + i]) = f->x[r];
        }
    }
    return nullptr;
}

template <class F>
static const char *fill_op(void *const lanes[32]) {
    const float v = static_cast<const MemArgs *>(lanes[0])->value;
    for (int l = 0; l < 32; l++) {
        const MemArgs *a = static_cast<const MemArgs *>(lanes[l]);
        if (!(a->value == v || (a->value != a->value && v != v)))
            return "the lanes fill with different values (it must be the same)";
        F *f = static_cast<F *>(a->frag);
        for (int r = 0; r < F::num_elements; r++) f->x[r] = narrow<typename F::element_type>(a->value);
    }
    return nullptr;
}

// D = A B + C over the whole warp: gather every lane's elements, multiply, scatter.
template <class FD, class FA, class FB, class FC>
static const char *mma_op(void *const lanes[32]) {
    enum { M = FA::rows, K = FA::cols, N = FB::cols };
    float A[M][K], B[K][N], C[M][N];
    for (int l = 0; l < 32; l++) {
        const MmaArgs *a = static_cast<const MmaArgs *>(lanes[l]);
        const FA *fa = static_cast<const FA *>(a->a);
        const FB *fb = static_cast<const FB *>(a->b);
        const FC *fc = static_cast<const FC *>(a->c);
        for (int r = 0; r < FA::num_elements; r++) { const int e = l + 32 * r; A[e / K][e % K] = widen(fa->x[r]); }
        for (int r = 0; r < FB::num_elements; r++) { const int e = l + 32 * r; B[e / N][e % N] = widen(fb->x[r]); }
        for (int r = 0; r < FC::num_elements; r++) { const int e = l + 32 * r; C[e / N][e % N] = fc->x[r]; }
    }
    for (int l = 0; l < 32; l++) {   // d may alias c: everything was read above
        FD *fd = static_cast<FD *>(static_cast<const MmaArgs *>(lanes[l])->d);
        for (int r = 0; r < FD::num_elements; r++) {
            const int e = l + 32 * r, i = e / N, j = e % N;
            float acc = C[i][j];
            for (int k = 0; k < K; k++) acc += A[i][k] * B[k][j];
            fd->x[r] = acc;
        }
    }
    return nullptr;
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class L>
static inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, float v, const char *file = __builtin_FILE(),
                                 int line = __builtin_LINE()) {
    detail::MemArgs a{&f, nullptr, 0, true, v};
    ::hyp_sim::warp_op(::hyp_sim::W_WMMA_FILL, detail::fill_op<fragment<Use, M, N, K, T, L>>, &a, file, line);
}

template <class Use, int M, int N, int K, class T, class L>
static inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const T *p, unsigned ldm,
                                    const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    static_assert(!std::is_same<Use, accumulator>::value, "an accumulator load names its layout_t");
    detail::MemArgs a{&f, p, ldm, std::is_same<L, row_major>::value, 0.0f};
    ::hyp_sim::warp_op(::hyp_sim::W_WMMA_LOAD, detail::load_op<fragment<Use, M, N, K, T, L>>, &a, file, line);
}

template <int M, int N, int K>
static inline void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p, unsigned ldm,
                                    layout_t layout, const char *file = __builtin_FILE(),
                                    int line = __builtin_LINE()) {
    detail::MemArgs a{&f, p, ldm, layout == mem_row_major, 0.0f};
    ::hyp_sim::warp_op(::hyp_sim::W_WMMA_LOAD, detail::load_op<fragment<accumulator, M, N, K, float>>, &a, file,
                       line);
}

template <int M, int N, int K>
static inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm,
                                     layout_t layout, const char *file = __builtin_FILE(),
                                     int line = __builtin_LINE()) {
    detail::MemArgs a{const_cast<fragment<accumulator, M, N, K, float> *>(&f), p, ldm, layout == mem_row_major,
                      0.0f};
    ::hyp_sim::warp_op(::hyp_sim::W_WMMA_STORE, detail::store_op<fragment<accumulator, M, N, K, float>>, &a, file,
                       line);
}

template <int M, int N, int K, class T, class LA, class LB>
static inline void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, T, LA> &a,
                            const fragment<matrix_b, M, N, K, T, LB> &b,
                            const fragment<accumulator, M, N, K, float> &c, const char *file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
    detail::MmaArgs m{&d, &a, &b, &c};
    ::hyp_sim::warp_op(::hyp_sim::W_WMMA_MMA,
                       detail::mma_op<fragment<accumulator, M, N, K, float>, fragment<matrix_a, M, N, K, T, LA>,
                                      fragment<matrix_b, M, N, K, T, LB>, fragment<accumulator, M, N, K, float>>,
                       &m, file, line);
}

}  // namespace wmma
}  // namespace nvcuda
#endif
