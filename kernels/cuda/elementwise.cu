// elementwise.cu: binary ops with broadcasting, axpy/scale/fill, activations.
// The scalar math is kernels/elementwise.h, shared with the CPU backend.
#include "kernels/cuda/common.cuh"

// b index for element i: i % nb, in 32 bits when the sizes allow it.
__device__ __forceinline__ long bidx(long i, long nb, bool small) {
    return small ? (long)((unsigned)i % (unsigned)nb) : i % nb;
}

// ---------------------------------------------------------------- binary forward
template <int OP>
struct BinaryFwd {
    float *y; const float *a, *b; long nb; bool small;
    __device__ void operator()(long i) const { y[i] = hyp_binary(OP, a[i], b[bidx(i, nb, small)]); }
    __device__ void vec4(long q) const {   // nb % 4 == 0: the 4 b's are consecutive
        const long j = bidx(q << 2, nb, small);
        float4 av = reinterpret_cast<const float4 *>(a)[q];
        float4 bv = *reinterpret_cast<const float4 *>(b + j);
        float4 r = make_float4(hyp_binary(OP, av.x, bv.x), hyp_binary(OP, av.y, bv.y),
                               hyp_binary(OP, av.z, bv.z), hyp_binary(OP, av.w, bv.w));
        reinterpret_cast<float4 *>(y)[q] = r;
    }
};

template <int OP>
static void binary_fwd_t(float *y, const float *a, const float *b, long n, long nb) {
    BinaryFwd<OP> f{y, a, b, nb, n <= 0x7fffffffL};
    hyp_map(f, n, nb % 4 == 0 && hyp_aligned16(y, a, b));
}

static void check_nb(long n, long nb, const char *who) {
    if (nb <= 0 || n % nb != 0)
        hyp_fatal_at(__FILE__, __LINE__, "%s: nb = %ld does not divide n = %ld", who, nb, n);
}

extern "C" void hyp_cuda_binary_fwd(BinaryOp op, float *y, const float *a, const float *b, long n, long nb) {
    if (n <= 0) return;
    check_nb(n, nb, "binary_fwd");
    switch (op) {
    case BIN_ADD: binary_fwd_t<BIN_ADD>(y, a, b, n, nb); break;
    case BIN_SUB: binary_fwd_t<BIN_SUB>(y, a, b, n, nb); break;
    case BIN_MUL: binary_fwd_t<BIN_MUL>(y, a, b, n, nb); break;
    default: hyp_fatal_at(__FILE__, __LINE__, "binary_fwd: bad op %d", (int)op);
    }
}

// ---------------------------------------------------------------- binary backward
// ga[i] += gy[i] * d(a op b)/da. a and b are only read when the derivative needs them
// (MUL), so callers of ADD/SUB may pass NULL.
template <int OP>
struct BinaryBwdA {
    float *ga; const float *gy, *a, *b; long nb; bool small;
    __device__ float d(float av, float bv) const { return hyp_binary_da(OP, av, bv); }
    __device__ void operator()(long i) const {
        float bv = OP == BIN_MUL ? b[bidx(i, nb, small)] : 0.0f;
        ga[i] += gy[i] * d(0.0f, bv);
    }
    __device__ void vec4(long q) const {
        float4 g = reinterpret_cast<const float4 *>(gy)[q];
        float4 bv = make_float4(0.f, 0.f, 0.f, 0.f);
        if (OP == BIN_MUL) bv = *reinterpret_cast<const float4 *>(b + bidx(q << 2, nb, small));
        float4 o = reinterpret_cast<float4 *>(ga)[q];
        o.x += g.x * d(0.0f, bv.x); o.y += g.y * d(0.0f, bv.y);
        o.z += g.z * d(0.0f, bv.z); o.w += g.w * d(0.0f, bv.w);
        reinterpret_cast<float4 *>(ga)[q] = o;
    }
};

// gb[j] += sum_r gy[r*nb + j] * d(a op b)/db (deterministic column sum). The product is
// taken in double, as the CPU backend does: in float, a sum that nearly cancels differs
// from the CPU's in the fifth digit (found by the simulator's first run).
template <int OP>
struct BinaryBwdB {
    const float *gy, *a; long nb;
    __device__ double operator()(long r, long j) const {
        const long i = r * nb + j;
        const float av = OP == BIN_MUL ? a[i] : 0.0f;
        return (double)gy[i] * (double)hyp_binary_db(OP, av, 0.0f);   // db never depends on b
    }
};

template <int OP>
struct BinaryBwdCol {   // element r of column j
    const float *gy, *a; long nb, j;
    __device__ double operator()(long r) const {
        const long i = r * nb + j;
        const float av = OP == BIN_MUL ? a[i] : 0.0f;
        return (double)gy[i] * (double)hyp_binary_db(OP, av, 0.0f);
    }
};

template <int OP>
static void binary_bwd_t(float *ga, float *gb, const float *gy, const float *a, const float *b,
                         long n, long nb) {
    if (ga) {
        BinaryBwdA<OP> f{ga, gy, a, b, nb, n <= 0x7fffffffL};
        hyp_map(f, n, nb % 4 == 0 && hyp_aligned16(ga, gy, OP == BIN_MUL ? b : NULL));
    }
    if (!gb) return;
    const long rows = n / nb;
    if (nb >= 16 || rows < 4096) {
        hyp_colsum_acc(BinaryBwdB<OP>{gy, a, nb}, gb, rows, nb);
    } else {   // few long columns (e.g. a broadcast scalar): one full reduction each
        for (long j = 0; j < nb; j++)
            hyp_reduce_acc(BinaryBwdCol<OP>{gy, a, nb, j}, rows, gb + j, 1.0, true);
    }
}

extern "C" void hyp_cuda_binary_bwd(BinaryOp op, float *ga, float *gb, const float *gy,
                                    const float *a, const float *b, long n, long nb) {
    if (n <= 0 || (!ga && !gb)) return;
    check_nb(n, nb, "binary_bwd");
    switch (op) {
    case BIN_ADD: binary_bwd_t<BIN_ADD>(ga, gb, gy, a, b, n, nb); break;
    case BIN_SUB: binary_bwd_t<BIN_SUB>(ga, gb, gy, a, b, n, nb); break;
    case BIN_MUL: binary_bwd_t<BIN_MUL>(ga, gb, gy, a, b, n, nb); break;
    default: hyp_fatal_at(__FILE__, __LINE__, "binary_bwd: bad op %d", (int)op);
    }
}

// ---------------------------------------------------------------- axpy, scale, fill
struct Axpy {
    float alpha; const float *x; float *y;
    __device__ void operator()(long i) const { y[i] += alpha * x[i]; }
    __device__ void vec4(long q) const {
        float4 xv = reinterpret_cast<const float4 *>(x)[q], yv = reinterpret_cast<float4 *>(y)[q];
        yv.x += alpha * xv.x; yv.y += alpha * xv.y; yv.z += alpha * xv.z; yv.w += alpha * xv.w;
        reinterpret_cast<float4 *>(y)[q] = yv;
    }
};
struct Scale {
    float alpha; const float *x; float *y;
    __device__ void operator()(long i) const { y[i] = alpha * x[i]; }
    __device__ void vec4(long q) const {
        float4 xv = reinterpret_cast<const float4 *>(x)[q];
        reinterpret_cast<float4 *>(y)[q] = make_float4(alpha * xv.x, alpha * xv.y, alpha * xv.z, alpha * xv.w);
    }
};
struct Fill {
    float v; float *y;
    __device__ void operator()(long i) const { y[i] = v; }
    __device__ void vec4(long q) const { reinterpret_cast<float4 *>(y)[q] = make_float4(v, v, v, v); }
};

extern "C" void hyp_cuda_axpy(long n, float alpha, const float *x, float *y) {
    hyp_map(Axpy{alpha, x, y}, n, hyp_aligned16(x, y));
}
extern "C" void hyp_cuda_scale(long n, float alpha, const float *x, float *y) {
    hyp_map(Scale{alpha, x, y}, n, hyp_aligned16(x, y));
}
extern "C" void hyp_cuda_fill(float *y, float v, long n) {
    hyp_map(Fill{v, y}, n, hyp_aligned16(y));
}

// ---------------------------------------------------------------- activations
// act<OP> / act_grad<OP>: the formulas of row OP of kernels/unary_ops.h.
template <int OP>
__device__ __forceinline__ float act(float x) {
#define CUDA_UNARY_ACT(e, name, f, df) if (OP == e) return f(x);
    HYP_UNARY_OPS(CUDA_UNARY_ACT)
#undef CUDA_UNARY_ACT
    return x;
}
template <int OP>
__device__ __forceinline__ float act_grad(float x) {
#define CUDA_UNARY_GRAD(e, name, f, df) if (OP == e) return df(x);
    HYP_UNARY_OPS(CUDA_UNARY_GRAD)
#undef CUDA_UNARY_GRAD
    return 1.0f;
}

template <int OP>
struct UnaryFwd {
    float *y; const float *x;
    __device__ void operator()(long i) const { y[i] = act<OP>(x[i]); }
    __device__ void vec4(long q) const {
        float4 v = reinterpret_cast<const float4 *>(x)[q];
        reinterpret_cast<float4 *>(y)[q] = make_float4(act<OP>(v.x), act<OP>(v.y), act<OP>(v.z), act<OP>(v.w));
    }
};
template <int OP>
struct UnaryBwd {
    float *gx; const float *gy, *x;
    __device__ void operator()(long i) const { gx[i] += gy[i] * act_grad<OP>(x[i]); }
    __device__ void vec4(long q) const {
        float4 v = reinterpret_cast<const float4 *>(x)[q], g = reinterpret_cast<const float4 *>(gy)[q];
        float4 o = reinterpret_cast<float4 *>(gx)[q];
        o.x += g.x * act_grad<OP>(v.x); o.y += g.y * act_grad<OP>(v.y);
        o.z += g.z * act_grad<OP>(v.z); o.w += g.w * act_grad<OP>(v.w);
        reinterpret_cast<float4 *>(gx)[q] = o;
    }
};

extern "C" void hyp_cuda_unary_fwd(UnaryOp op, float *y, const float *x, long n) {
    const bool vec = hyp_aligned16(y, x);
    switch (op) {
#define CUDA_UNARY_FWD(e, name, f, df) case e: hyp_map(UnaryFwd<e>{y, x}, n, vec); return;
    HYP_UNARY_OPS(CUDA_UNARY_FWD)
#undef CUDA_UNARY_FWD
    default: break;
    }
    hyp_fatal_at(__FILE__, __LINE__, "unary_fwd: bad op %d", (int)op);
}
extern "C" void hyp_cuda_unary_bwd(UnaryOp op, float *gx, const float *gy, const float *x, long n) {
    const bool vec = hyp_aligned16(gx, gy, x);
    switch (op) {
#define CUDA_UNARY_BWD(e, name, f, df) case e: hyp_map(UnaryBwd<e>{gx, gy, x}, n, vec); return;
    HYP_UNARY_OPS(CUDA_UNARY_BWD)
#undef CUDA_UNARY_BWD
    default: break;
    }
    hyp_fatal_at(__FILE__, __LINE__, "unary_bwd: bad op %d", (int)op);
}
