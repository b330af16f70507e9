// test_cuda_backend.c: every Backend slot of the CUDA backend against the CPU backend
// (the specification) on the same random inputs. fp32 kernels must agree to
// TOL_OP (rel. error 1e-5), bf16 matmuls to TOL_BF16, dropout masks and dtype
// conversions bit for bit. Backward kernels start from random gradients, so the
// accumulation (+=) is checked too; outputs that are overwritten start as NaN on the
// GPU, so an element the kernel forgets to write fails the comparison.
// Without a CUDA build or a visible GPU every test is skipped, visibly.
#include "tests/testlib.h"
#include "kernels/kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HYP_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

#define REQUIRE_GPU() RUN_ON_CUDA_OR_SKIP()

static const Backend *const CPU = &hyp_cpu_backend;
static const Backend *G;   // the CUDA backend, set by BEGIN()
#define BEGIN() do { REQUIRE_GPU(); G = GPU_BACKEND; } while (0)

// ---------------------------------------------------------------- host helpers
static uint64_t rng_state;
static uint64_t rng_next(void) {   // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
// n uniform floats in [lo, hi), deterministic in seed.
static float *hrand(size_t n, float lo, float hi, uint64_t seed) {
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    float *x = hyp_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
    return x;
}
static int32_t *hrand_int(size_t n, int32_t lo, int32_t hi, uint64_t seed) {
    rng_state = seed * 0x9E3779B97F4A7C15ull + 7;
    int32_t *x = hyp_malloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) x[i] = lo + (int32_t)(rng_next() % (uint64_t)(hi - lo));
    return x;
}
static float *hdup(const float *x, size_t n) {
    float *y = hyp_malloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}
// Device copy of a host buffer.
static void *up(const void *h, size_t bytes) {
    void *d = G->alloc(bytes);
    G->copy(d, h, bytes, COPY_H2D);
    return d;
}
// Device buffer of n floats, every byte 0xff (NaN): catches unwritten outputs.
static float *dnan(size_t n) {
    float *h = hyp_malloc((n ? n : 1) * sizeof(float));
    memset(h, 0xff, n * sizeof(float));
    float *d = up(h, n * sizeof(float));
    free(h);
    return d;
}
// Host copy of n floats of a device buffer (synchronises).
static float *down(const float *d, size_t n) {
    float *h = hyp_malloc((n ? n : 1) * sizeof(float));
    G->synchronize();
    G->copy(h, d, n * sizeof(float), COPY_D2H);
    return h;
}
// Compare the device buffer d against the host reference want.
static void expect_dev(const char *what, const float *d, const float *want, size_t n, double tol) {
    float *got = down(d, n);
    double wn = 0;
    for (size_t i = 0; i < n; i++) wn += fabs(want[i]);
    double e = rel_err(got, want, n);
    free(got);
    cr_assert(wn > 0, "%s: the reference is all zeros (never test on zeros)", what);
    cr_assert(e <= tol, "%s: CUDA vs CPU relative error %.3g > %.1g", what, e, tol);
}
static void expect_dev_bitwise(const char *what, const void *d, const void *want, size_t bytes) {
    void *got = hyp_malloc(bytes ? bytes : 1);
    G->synchronize();
    G->copy(got, d, bytes, COPY_D2H);
    int diff = memcmp(got, want, bytes);
    free(got);
    cr_assert(diff == 0, "%s: CUDA and CPU results differ bitwise", what);
}

// ---------------------------------------------------------------- memory
Test(cuda_backend, memory) {
    BEGIN();
    const size_t n = 1000;
    float *h = hrand(n, -1, 1, 1), *back = hyp_malloc(n * sizeof(float));
    float *d = G->alloc(n * sizeof(float)), *d2 = G->alloc(n * sizeof(float));
    G->copy(d, h, n * sizeof(float), COPY_H2D);
    G->copy(d2, d, n * sizeof(float), COPY_D2D);
    G->synchronize();
    G->copy(back, d2, n * sizeof(float), COPY_D2H);
    cr_assert(memcmp(back, h, n * sizeof(float)) == 0, "H2D -> D2D -> D2H round trip changed the data");
    G->memset0(d2 + 10, 100 * sizeof(float));
    G->copy(back, d2, n * sizeof(float), COPY_D2H);
    for (size_t i = 0; i < n; i++) {
        float want = (i >= 10 && i < 110) ? 0.0f : h[i];
        cr_assert(memcmp(&back[i], &want, sizeof(float)) == 0, "memset0: element %zu is %g, want %g",
                  i, back[i], want);
    }
    void *z = G->alloc(0);   // a valid (freeable) pointer
    G->free(z);
    G->free(NULL);
    G->free(d);
    G->free(d2);
    free(h);
    free(back);
}

// ---------------------------------------------------------------- gemm
typedef struct {
    bool ta, tb;
    int M, N, K, batch;
    long long sA, sB, sC;   // -1: dense (M*K, K*N, M*N)
    float alpha, beta;
    int offA;               // start A this many floats into its buffer (misalignment)
} GemmCase;

static void run_gemm(const GemmCase *gc, MatmulPrecision prec, double tol, uint64_t seed) {
    const int M = gc->M, N = gc->N, K = gc->K, batch = gc->batch;
    const long long sA = gc->sA < 0 ? (long long)M * K : gc->sA;
    const long long sB = gc->sB < 0 ? (long long)K * N : gc->sB;
    const long long sC = gc->sC < 0 ? (long long)M * N : gc->sC;
    const size_t nA = (size_t)(batch - 1) * sA + (size_t)M * K + gc->offA;
    const size_t nB = (size_t)(batch - 1) * sB + (size_t)K * N;
    const size_t nC = (size_t)(batch - 1) * sC + (size_t)M * N;
    float *A = hrand(nA, -1, 1, seed), *B = hrand(nB, -1, 1, seed + 1), *C = hrand(nC, -1, 1, seed + 2);
    float *dA = up(A, nA * sizeof(float)), *dB = up(B, nB * sizeof(float));
    float *dC = gc->beta == 0.0f ? dnan(nC) : up(C, nC * sizeof(float));   // beta 0: C is never read
    CPU->gemm(gc->ta, gc->tb, M, N, K, gc->alpha, A + gc->offA, sA, B, sB, gc->beta, C, sC, batch, HYP_MATMUL_F32);
    G->gemm(gc->ta, gc->tb, M, N, K, gc->alpha, dA + gc->offA, sA, dB, sB, gc->beta, dC, sC, batch, prec);
    char what[200];
    snprintf(what, sizeof what, "gemm %s ta=%d tb=%d M=%d N=%d K=%d batch=%d sA=%lld sB=%lld alpha=%g beta=%g offA=%d",
             prec == HYP_MATMUL_BF16 ? "bf16" : "f32", gc->ta, gc->tb, M, N, K, batch, sA, sB, gc->alpha,
             gc->beta, gc->offA);
    expect_dev(what, dC, C, nC, tol);
    G->free(dA); G->free(dB); G->free(dC);
    free(A); free(B); free(C);
}

static void gemm_suite(MatmulPrecision prec, double tol) {
    uint64_t seed = 100;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            GemmCase cases[] = {
                {ta, tb, 37, 29, 53, 1, -1, -1, -1, 1.0f, 0.0f, 0},
                {ta, tb, 64, 96, 128, 1, -1, -1, -1, 0.5f, 0.75f, 0},
                {ta, tb, 17, 40, 24, 3, -1, -1, -1, 1.25f, 1.0f, 0},
                {ta, tb, 17, 40, 24, 3, -1, 0, -1, 1.0f, 0.0f, 0},    // B broadcast
                {ta, tb, 17, 40, 24, 3, 0, -1, -1, 1.0f, 0.5f, 0},    // A broadcast
                {ta, tb, 33, 65, 31, 2, -1, -1, -1, 1.0f, 0.0f, 1},   // misaligned A, odd dims
                {ta, tb, 1, 300, 77, 1, -1, -1, -1, 1.0f, 0.0f, 0},   // a single row
            };
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_gemm(&cases[i], prec, tol, seed++);
        }
}

Test(cuda_backend, gemm_f32) {
    BEGIN();
    gemm_suite(HYP_MATMUL_F32, TOL_OP);
}
Test(cuda_backend, gemm_bf16) {
    BEGIN();
    gemm_suite(HYP_MATMUL_BF16, TOL_BF16);
}
Test(cuda_backend, gemm_bert_shapes) {   // (tokens, 768) x (768, 3072) and the batched attention product
    BEGIN();
    GemmCase lin = {false, true, 512, 3072, 768, 1, -1, -1, -1, 1.0f, 0.0f, 0};
    GemmCase att = {false, true, 128, 128, 64, 24, -1, -1, -1, 0.125f, 0.0f, 0};
    run_gemm(&lin, HYP_MATMUL_F32, TOL_OP, 7);
    run_gemm(&lin, HYP_MATMUL_BF16, TOL_BF16, 8);
    run_gemm(&att, HYP_MATMUL_F32, TOL_OP, 9);
    run_gemm(&att, HYP_MATMUL_BF16, TOL_BF16, 10);
}

// ---------------------------------------------------------------- element-wise
static const char *const BIN_NAME[] = {"add", "sub", "mul"};

static void run_binary(BinaryOp op, long n, long nb, int off, uint64_t seed) {
    float *a = hrand(n + off, -2, 2, seed), *b = hrand(nb + off, -2, 2, seed + 1);
    float *ga = hrand(n + off, -1, 1, seed + 2), *gb = hrand(nb + off, -1, 1, seed + 3);
    float *gy = hrand(n + off, -1, 1, seed + 4), *y = hyp_malloc((n + off) * sizeof(float));
    float *da = up(a, (n + off) * sizeof(float)), *db = up(b, (nb + off) * sizeof(float));
    float *dga = up(ga, (n + off) * sizeof(float)), *dgb = up(gb, (nb + off) * sizeof(float));
    float *dgy = up(gy, (n + off) * sizeof(float)), *dy = dnan(n + off);
    char what[160];
    // forward
    CPU->binary_fwd(op, y + off, a + off, b + off, n, nb);
    G->binary_fwd(op, dy + off, da + off, db + off, n, nb);
    snprintf(what, sizeof what, "binary_fwd %s n=%ld nb=%ld off=%d", BIN_NAME[op], n, nb, off);
    expect_dev(what, dy + off, y + off, n, TOL_OP);
    // backward: both gradients, then each alone
    for (int which = 0; which < 3; which++) {
        float *ga2 = hdup(ga, n + off), *gb2 = hdup(gb, nb + off);
        float *dga2 = up(ga, (n + off) * sizeof(float)), *dgb2 = up(gb, (nb + off) * sizeof(float));
        bool want_a = which != 2, want_b = which != 1;
        CPU->binary_bwd(op, want_a ? ga2 + off : NULL, want_b ? gb2 + off : NULL, gy + off, a + off, b + off, n, nb);
        G->binary_bwd(op, want_a ? dga2 + off : NULL, want_b ? dgb2 + off : NULL, dgy + off, da + off, db + off, n, nb);
        snprintf(what, sizeof what, "binary_bwd %s ga n=%ld nb=%ld off=%d grads=%d", BIN_NAME[op], n, nb, off, which);
        expect_dev(what, dga2 + off, ga2 + off, n, TOL_OP);
        snprintf(what, sizeof what, "binary_bwd %s gb n=%ld nb=%ld off=%d grads=%d", BIN_NAME[op], n, nb, off, which);
        expect_dev(what, dgb2 + off, gb2 + off, nb, TOL_OP);
        G->free(dga2); G->free(dgb2);
        free(ga2); free(gb2);
    }
    G->free(da); G->free(db); G->free(dga); G->free(dgb); G->free(dgy); G->free(dy);
    free(a); free(b); free(ga); free(gb); free(gy); free(y);
}

Test(cuda_backend, binary) {
    BEGIN();
    const long shapes[][2] = {{1000, 1000}, {96 * 37, 96}, {4096 * 3, 3}, {10001, 1}, {7 * 13, 7},
                              {5000 * 5, 5}, {24 * 768, 768}};
    uint64_t seed = 200;
    for (int op = 0; op < 3; op++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int off = 0; off < 2; off++)
                run_binary((BinaryOp)op, shapes[s][0], shapes[s][1], off, seed++);
}

Test(cuda_backend, axpy_scale_fill) {
    BEGIN();
    const long sizes[] = {1, 7, 1003, 65536 + 5};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        long n = sizes[s];
        for (int off = 0; off < 2; off++) {
            float *x = hrand(n + off, -1, 1, 300 + s), *y = hrand(n + off, -1, 1, 400 + s);
            float *dx = up(x, (n + off) * sizeof(float)), *dy = up(y, (n + off) * sizeof(float));
            CPU->axpy(n, 0.37f, x + off, y + off);
            G->axpy(n, 0.37f, dx + off, dy + off);
            expect_dev("axpy", dy + off, y + off, n, TOL_OP);
            float *dz = dnan(n + off), *z = hyp_malloc((n + off) * sizeof(float));
            CPU->scale(n, -1.7f, x + off, z + off);
            G->scale(n, -1.7f, dx + off, dz + off);
            expect_dev("scale", dz + off, z + off, n, TOL_OP);
            CPU->fill(z + off, 2.5f, n);
            G->fill(dz + off, 2.5f, n);
            expect_dev("fill", dz + off, z + off, n, TOL_OP);
            G->free(dx); G->free(dy); G->free(dz);
            free(x); free(y); free(z);
        }
    }
}

Test(cuda_backend, unary) {
    BEGIN();
    const long sizes[] = {5, 1000, 40003};
    for (int op = 0; op < UN_COUNT; op++)   // every row of kernels/unary_ops.h
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int off = 0; off < 2; off++) {
                long n = sizes[s];
                char what[64];
                float *x = hrand(n + off, -12, 12, 500 + s), *gy = hrand(n + off, -1, 1, 600 + s);
                float *gx = hrand(n + off, -1, 1, 700 + s), *y = hyp_malloc((n + off) * sizeof(float));
                float *dx = up(x, (n + off) * sizeof(float)), *dgy = up(gy, (n + off) * sizeof(float));
                float *dgx = up(gx, (n + off) * sizeof(float)), *dy = dnan(n + off);
                CPU->unary_fwd((UnaryOp)op, y + off, x + off, n);
                G->unary_fwd((UnaryOp)op, dy + off, dx + off, n);
                snprintf(what, sizeof what, "%s fwd", hyp_unary_name((UnaryOp)op));
                expect_dev(what, dy + off, y + off, n, TOL_OP);
                CPU->unary_bwd((UnaryOp)op, gx + off, gy + off, x + off, n);
                G->unary_bwd((UnaryOp)op, dgx + off, dgy + off, dx + off, n);
                snprintf(what, sizeof what, "%s bwd", hyp_unary_name((UnaryOp)op));
                expect_dev(what, dgx + off, gx + off, n, TOL_OP);
                G->free(dx); G->free(dgy); G->free(dgx); G->free(dy);
                free(x); free(gy); free(gx); free(y);
            }
}

// ---------------------------------------------------------------- layernorm
static void run_layernorm(long rows, int D, bool affine, float eps, uint64_t seed) {
    const size_t n = (size_t)rows * D;
    float *x = hrand(n, -3, 3, seed), *r = hrand(n, -1, 1, seed + 1);
    float *w = affine ? hrand(D, 0.5f, 1.5f, seed + 2) : NULL, *b = affine ? hrand(D, -0.5f, 0.5f, seed + 3) : NULL;
    float *y = hyp_malloc(n * sizeof(float)), *s = hyp_malloc(n * sizeof(float));
    float *mean = hyp_malloc(rows * sizeof(float)), *rstd = hyp_malloc(rows * sizeof(float));
    float *dx = up(x, n * sizeof(float)), *dr = up(r, n * sizeof(float));
    float *dw = affine ? up(w, D * sizeof(float)) : NULL, *db = affine ? up(b, D * sizeof(float)) : NULL;
    float *dy = dnan(n), *ds = dnan(n), *dmean = dnan(rows), *drstd = dnan(rows);
    char what[160];
#define LN_WHAT(name) (snprintf(what, sizeof what, "%s rows=%ld D=%d affine=%d", name, rows, D, affine), what)

    CPU->layernorm_fwd(y, mean, rstd, x, w, b, rows, D, eps);
    G->layernorm_fwd(dy, dmean, drstd, dx, dw, db, rows, D, eps);
    expect_dev(LN_WHAT("layernorm_fwd y"), dy, y, n, TOL_OP);
    expect_dev(LN_WHAT("layernorm_fwd mean"), dmean, mean, rows, TOL_OP);
    expect_dev(LN_WHAT("layernorm_fwd rstd"), drstd, rstd, rows, TOL_OP);

    // backward with the CPU's saved statistics on both sides
    float *gy = hrand(n, -1, 1, seed + 4), *gx = hrand(n, -1, 1, seed + 5);
    float *gw = hrand(D, -1, 1, seed + 6), *gb = hrand(D, -1, 1, seed + 7);
    float *dgy = up(gy, n * sizeof(float)), *dgx = up(gx, n * sizeof(float));
    float *dgw = up(gw, D * sizeof(float)), *dgb = up(gb, D * sizeof(float));
    float *dmean2 = up(mean, rows * sizeof(float)), *drstd2 = up(rstd, rows * sizeof(float));
    CPU->layernorm_bwd(gx, affine ? gw : NULL, affine ? gb : NULL, gy, x, mean, rstd, w, rows, D);
    G->layernorm_bwd(dgx, affine ? dgw : NULL, affine ? dgb : NULL, dgy, dx, dmean2, drstd2, dw, rows, D);
    expect_dev(LN_WHAT("layernorm_bwd gx"), dgx, gx, n, TOL_OP);
    expect_dev(LN_WHAT("layernorm_bwd gw"), dgw, gw, D, TOL_OP);
    expect_dev(LN_WHAT("layernorm_bwd gb"), dgb, gb, D, TOL_OP);
    if (affine) {   // parameter gradients only
        CPU->layernorm_bwd(NULL, gw, gb, gy, x, mean, rstd, w, rows, D);
        G->layernorm_bwd(NULL, dgw, dgb, dgy, dx, dmean2, drstd2, dw, rows, D);
        expect_dev(LN_WHAT("layernorm_bwd gw only"), dgw, gw, D, TOL_OP);
        expect_dev(LN_WHAT("layernorm_bwd gb only"), dgb, gb, D, TOL_OP);
    }

    // fused residual
    CPU->add_layernorm_fwd(y, s, mean, rstd, x, r, w, b, rows, D, eps);
    G->add_layernorm_fwd(dy, ds, dmean, drstd, dx, dr, dw, db, rows, D, eps);
    expect_dev(LN_WHAT("add_layernorm_fwd y"), dy, y, n, TOL_OP);
    expect_dev(LN_WHAT("add_layernorm_fwd s"), ds, s, n, TOL_OP);
    expect_dev(LN_WHAT("add_layernorm_fwd mean"), dmean, mean, rows, TOL_OP);
    expect_dev(LN_WHAT("add_layernorm_fwd rstd"), drstd, rstd, rows, TOL_OP);
#undef LN_WHAT
    G->free(dx); G->free(dr); G->free(dw); G->free(db); G->free(dy); G->free(ds); G->free(dmean);
    G->free(drstd); G->free(dgy); G->free(dgx); G->free(dgw); G->free(dgb); G->free(dmean2); G->free(drstd2);
    free(x); free(r); free(w); free(b); free(y); free(s); free(mean); free(rstd);
    free(gy); free(gx); free(gw); free(gb);
}

Test(cuda_backend, layernorm) {
    BEGIN();
    const int Ds[] = {768, 64, 100, 4, 1030, 3};
    uint64_t seed = 800;
    for (size_t i = 0; i < sizeof Ds / sizeof Ds[0]; i++)
        for (int affine = 0; affine < 2; affine++) {
            run_layernorm(37, Ds[i], affine, affine ? 1e-12f : 1e-5f, seed);
            seed += 10;
        }
    run_layernorm(300, 768, true, 1e-12f, seed);   // several column-sum slices
}

// ---------------------------------------------------------------- softmax
static void run_softmax(long rows, int cols, long rows_per_mask, bool masked, uint64_t seed) {
    const size_t n = (size_t)rows * cols;
    float *x = hrand(n, -5, 5, seed), *y = hyp_malloc(n * sizeof(float));
    int32_t *mask = NULL, *dmask = NULL;
    if (masked) {
        long mrows = rows / rows_per_mask;
        mask = hrand_int((size_t)mrows * cols, 0, 2, seed + 1);
        for (int c = 0; c < cols; c++) mask[c] = 0;                         // a fully masked row
        if (mrows > 1) for (int c = 0; c < cols; c++) mask[cols + c] = 1;  // and an unmasked one
        dmask = up(mask, (size_t)mrows * cols * sizeof(int32_t));
    }
    float *dx = up(x, n * sizeof(float)), *dy = dnan(n);
    char what[160];
    CPU->softmax_fwd(y, x, mask, rows, cols, rows_per_mask);
    G->softmax_fwd(dy, dx, dmask, rows, cols, rows_per_mask);
    snprintf(what, sizeof what, "softmax_fwd rows=%ld cols=%d rows_per_mask=%ld masked=%d", rows, cols,
             rows_per_mask, masked);
    expect_dev(what, dy, y, n, TOL_OP);
    if (masked) {   // the fully masked rows must be exact zeros
        float *got = down(dy, (size_t)rows_per_mask * cols);
        for (size_t i = 0; i < (size_t)rows_per_mask * cols; i++)
            cr_assert(got[i] == 0.0f, "softmax_fwd: fully masked row has %g at %zu", got[i], i);
        free(got);
    }
    float *gy = hrand(n, -1, 1, seed + 2), *gx = hrand(n, -1, 1, seed + 3);
    float *dgy = up(gy, n * sizeof(float)), *dgx = up(gx, n * sizeof(float)), *dy2 = up(y, n * sizeof(float));
    CPU->softmax_bwd(gx, gy, y, rows, cols);
    G->softmax_bwd(dgx, dgy, dy2, rows, cols);
    snprintf(what, sizeof what, "softmax_bwd rows=%ld cols=%d", rows, cols);
    expect_dev(what, dgx, gx, n, TOL_OP);
    G->free(dx); G->free(dy); G->free(dgy); G->free(dgx); G->free(dy2); G->free(dmask);
    free(x); free(y); free(mask); free(gy); free(gx);
}

Test(cuda_backend, softmax) {
    BEGIN();
    const int cols[] = {1, 7, 33, 128, 300, 1024, 1500};
    uint64_t seed = 900;
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        run_softmax(48, cols[i], 1, false, seed++);
        run_softmax(48, cols[i], 12, true, seed++);   // e.g. (batch 4, heads 3, query 4)
        run_softmax(48, cols[i], 1, true, seed++);
    }
}

// ---------------------------------------------------------------- embedding
Test(cuda_backend, embedding) {
    BEGIN();
    const int Ds[] = {64, 30, 768};
    for (size_t k = 0; k < sizeof Ds / sizeof Ds[0]; k++) {
        const int D = Ds[k], V = 50;
        const long n = 333;   // more ids than rows: repeats exercise the scatter-add
        float *table = hrand((size_t)V * D, -1, 1, 1000 + k), *y = hyp_malloc(n * D * sizeof(float));
        int32_t *ids = hrand_int(n, 0, V, 1100 + k);
        float *dtable = up(table, (size_t)V * D * sizeof(float)), *dy = dnan(n * D);
        int32_t *dids = up(ids, n * sizeof(int32_t));
        CPU->embedding_fwd(y, table, ids, n, D);
        G->embedding_fwd(dy, dtable, dids, n, D);
        expect_dev("embedding_fwd", dy, y, n * D, TOL_OP);
        float *gy = hrand(n * D, -1, 1, 1200 + k), *dgy = up(gy, n * D * sizeof(float));
        CPU->embedding_bwd(table, gy, ids, n, D, ids[0]);   // table doubles as a random initial gradient
        G->embedding_bwd(dtable, dgy, dids, n, D, ids[0]);  // ids[0]'s row is the padding row
        // deterministic and in the CPU's order: bitwise equal, repeats included
        expect_dev_bitwise("embedding_bwd", dtable, table, (size_t)V * D * sizeof(float));
        G->free(dtable); G->free(dy); G->free(dids); G->free(dgy);
        free(table); free(y); free(ids); free(gy);
    }
}

// ---------------------------------------------------------------- dropout
Test(cuda_backend, dropout) {
    BEGIN();
    const long sizes[] = {1, 6, 10001, 65536};
    const float ps[] = {0.1f, 0.5f};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t k = 0; k < 2; k++)
            for (int off = 0; off < 2; off++) {
                const long n = sizes[s];
                const float p = ps[k];
                const uint64_t seed = 0x0123456789abcdefull + s, offset = ((uint64_t)1 << 33) + 12345 * k;
                float *x = hrand(n + off, 0.5f, 1.5f, 1300 + s), *y = hyp_malloc((n + off) * sizeof(float));
                float *dx = up(x, (n + off) * sizeof(float)), *dy = dnan(n + off);
                CPU->dropout_fwd(y + off, x + off, n, p, seed, offset);
                G->dropout_fwd(dy + off, dx + off, n, p, seed, offset);
                expect_dev_bitwise("dropout_fwd (mask and scale)", dy + off, y + off, n * sizeof(float));
                // backward: same mask (dropped elements keep their gradient exactly), same values
                float *gx = hrand(n + off, -1, 1, 1400 + s), *gy = hrand(n + off, -1, 1, 1500 + s);
                float *gx0 = hdup(gx, n + off);
                float *dgx = up(gx, (n + off) * sizeof(float)), *dgy = up(gy, (n + off) * sizeof(float));
                CPU->dropout_bwd(gx + off, gy + off, n, p, seed, offset);
                G->dropout_bwd(dgx + off, dgy + off, n, p, seed, offset);
                float *got = down(dgx + off, n);
                for (long i = 0; i < n; i++)
                    if (y[off + i] == 0.0f)
                        cr_assert(memcmp(&got[i], &gx0[off + i], sizeof(float)) == 0,
                                  "dropout_bwd: dropped element %ld changed its gradient", i);
                cr_assert(rel_err(got, gx + off, n) <= TOL_OP, "dropout_bwd: CUDA vs CPU relative error %.3g",
                          rel_err(got, gx + off, n));
                free(got);
                G->free(dx); G->free(dy); G->free(dgx); G->free(dgy);
                free(x); free(y); free(gx); free(gy); free(gx0);
            }
}

// ---------------------------------------------------------------- movement
Test(cuda_backend, permute) {
    BEGIN();
    const int shapes[][4] = {{2, 3, 4, 8}, {2, 5, 3, 7}, {1, 6, 1, 12}};
    const int perms[][4] = {{0, 2, 1, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {0, 1, 2, 3}, {2, 0, 3, 1}};
    uint64_t seed = 1600;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t p = 0; p < sizeof perms / sizeof perms[0]; p++)
            for (int acc = 0; acc < 2; acc++) {
                const size_t n = (size_t)shapes[s][0] * shapes[s][1] * shapes[s][2] * shapes[s][3];
                float *x = hrand(n, -1, 1, seed), *y = hrand(n, -1, 1, seed + 1);
                seed += 2;
                float *dx = up(x, n * sizeof(float)), *dy = acc ? up(y, n * sizeof(float)) : dnan(n);
                CPU->permute(y, x, shapes[s], perms[p], acc);
                G->permute(dy, dx, shapes[s], perms[p], acc);
                char what[120];
                snprintf(what, sizeof what, "permute shape (%d %d %d %d) perm (%d %d %d %d) acc=%d", shapes[s][0],
                         shapes[s][1], shapes[s][2], shapes[s][3], perms[p][0], perms[p][1], perms[p][2],
                         perms[p][3], acc);
                expect_dev(what, dy, y, n, TOL_OP);
                G->free(dx); G->free(dy);
                free(x); free(y);
            }
}

Test(cuda_backend, block_copy) {
    BEGIN();
    // outer, src_dim, src_start, dst_dim, dst_start, len, inner
    const long cases[][7] = {{3, 7, 2, 5, 1, 4, 8}, {3, 7, 0, 9, 5, 4, 3}, {1, 10, 3, 4, 0, 4, 16},
                             {70000, 2, 1, 3, 2, 1, 1}, {4, 6, 1, 6, 2, 3, 768}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int acc = 0; acc < 2; acc++) {
            const long outer = cases[k][0], inner = cases[k][6];
            const int sd = (int)cases[k][1], ss = (int)cases[k][2], dd = (int)cases[k][3], ds = (int)cases[k][4];
            const int len = (int)cases[k][5];
            const size_t ns = (size_t)outer * sd * inner, nd = (size_t)outer * dd * inner;
            float *src = hrand(ns, -1, 1, 1700 + k), *dst = hrand(nd, -1, 1, 1800 + k);
            float *dsrc = up(src, ns * sizeof(float)), *ddst = up(dst, nd * sizeof(float));
            CPU->block_copy(dst, dd, ds, src, sd, ss, outer, len, inner, acc);
            G->block_copy(ddst, dd, ds, dsrc, sd, ss, outer, len, inner, acc);
            char what[120];
            snprintf(what, sizeof what, "block_copy case %zu acc=%d", k, acc);
            expect_dev(what, ddst, dst, nd, TOL_OP);
            G->free(dsrc); G->free(ddst);
            free(src); free(dst);
        }
}

// ---------------------------------------------------------------- reductions and losses
Test(cuda_backend, sum_and_fill_grad) {
    BEGIN();
    const long sizes[] = {1, 255, 100003, 3000000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const long n = sizes[s];
        float *x = hrand(n, 0.5f, 1.5f, 1900 + s), out;   // positive: no cancellation in the reference
        float *dx = up(x, n * sizeof(float)), *dout = dnan(1);
        CPU->sum(&out, x, n);
        G->sum(dout, dx, n);
        expect_dev("sum", dout, &out, 1, TOL_OP);
        float gy = 0.75f, *dgy = up(&gy, sizeof(float));
        float *gx = hrand(n, -1, 1, 2000 + s), *dgx = up(gx, n * sizeof(float));
        CPU->fill_grad(gx, &gy, -1.5f, n);
        G->fill_grad(dgx, dgy, -1.5f, n);
        expect_dev("fill_grad", dgx, gx, n, TOL_OP);
        G->free(dx); G->free(dout); G->free(dgy); G->free(dgx);
        free(x); free(gx);
    }
}

Test(cuda_backend, cross_entropy) {
    BEGIN();
    const int Cs[] = {2, 10, 64, 5000};
    const long rows_list[] = {1, 37, 600};
    uint64_t seed = 2100;
    for (size_t i = 0; i < sizeof Cs / sizeof Cs[0]; i++)
        for (size_t j = 0; j < sizeof rows_list / sizeof rows_list[0]; j++) {
            const int C = Cs[i];
            const long rows = rows_list[j];
            const size_t n = (size_t)rows * C;
            float *x = hrand(n, -4, 4, seed), loss, *lse = hyp_malloc(rows * sizeof(float));
            int32_t *t = hrand_int(rows, 0, C, seed + 1);
            seed += 2;
            float *dx = up(x, n * sizeof(float)), *dloss = dnan(1), *dlse = dnan(rows);
            int32_t *dt = up(t, rows * sizeof(int32_t));
            CPU->cross_entropy_fwd(&loss, lse, x, t, rows, C);
            G->cross_entropy_fwd(dloss, dlse, dx, dt, rows, C);
            expect_dev("cross_entropy_fwd loss", dloss, &loss, 1, TOL_OP);
            expect_dev("cross_entropy_fwd lse", dlse, lse, rows, TOL_OP);
            float gloss = 1.3f, *dgloss = up(&gloss, sizeof(float));
            float *gx = hrand(n, -0.01f, 0.01f, seed), *dgx = up(gx, n * sizeof(float));
            float *dlse2 = up(lse, rows * sizeof(float));
            CPU->cross_entropy_bwd(gx, &gloss, x, lse, t, rows, C);
            G->cross_entropy_bwd(dgx, dgloss, dx, dlse2, dt, rows, C);
            expect_dev("cross_entropy_bwd", dgx, gx, n, TOL_OP);
            G->free(dx); G->free(dloss); G->free(dlse); G->free(dt); G->free(dgloss); G->free(dgx); G->free(dlse2);
            free(x); free(lse); free(t); free(gx);
        }
}

Test(cuda_backend, mse) {
    BEGIN();
    const long sizes[] = {1, 17, 4096, 100001};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int off = 0; off < 2; off++) {
            const long n = sizes[s];
            float *a = hrand(n + off, -2, 2, 2200 + s), *b = hrand(n + off, -2, 2, 2300 + s), loss;
            float *da = up(a, (n + off) * sizeof(float)), *db = up(b, (n + off) * sizeof(float)), *dloss = dnan(1);
            CPU->mse_fwd(&loss, a + off, b + off, n);
            G->mse_fwd(dloss, da + off, db + off, n);
            expect_dev("mse_fwd", dloss, &loss, 1, TOL_OP);
            float gloss = 0.6f, *dgloss = up(&gloss, sizeof(float));
            for (int which = 0; which < 3; which++) {
                bool wa = which != 2, wb = which != 1;
                float *ga = hrand(n + off, -1, 1, 2400 + s), *gb = hrand(n + off, -1, 1, 2500 + s);
                float *dga = up(ga, (n + off) * sizeof(float)), *dgb = up(gb, (n + off) * sizeof(float));
                CPU->mse_bwd(wa ? ga + off : NULL, wb ? gb + off : NULL, &gloss, a + off, b + off, n);
                G->mse_bwd(wa ? dga + off : NULL, wb ? dgb + off : NULL, dgloss, da + off, db + off, n);
                expect_dev("mse_bwd ga", dga + off, ga + off, n, TOL_OP);
                expect_dev("mse_bwd gb", dgb + off, gb + off, n, TOL_OP);
                G->free(dga); G->free(dgb);
                free(ga); free(gb);
            }
            G->free(da); G->free(db); G->free(dloss); G->free(dgloss);
            free(a); free(b);
        }
}

// ---------------------------------------------------------------- dtype conversion
Test(cuda_backend, convert) {
    BEGIN();
    const long n = 10007;
    float *x = hrand(n, -1000, 1000, 2600);
    // special values: NaN, infinities, signed zeros, denormals, exact rounding ties
    const uint32_t special[] = {0x7fc00000u, 0xffc00001u, 0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u,
                                0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x3f7fffffu};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) memcpy(&x[i * 97], &special[i], 4);
    for (int off = 0; off < 2; off++) {
        const long m = n - off;
        uint16_t *h16 = hyp_malloc(n * sizeof(uint16_t));
        float *dx = up(x, n * sizeof(float));
        uint16_t *d16 = G->alloc(n * sizeof(uint16_t));
        CPU->f32_to_bf16(h16 + off, x + off, m);
        G->f32_to_bf16(d16 + off, dx + off, m);
        expect_dev_bitwise("f32_to_bf16", d16 + off, h16 + off, m * sizeof(uint16_t));
        float *back = hyp_malloc(n * sizeof(float)), *dback = dnan(n);
        CPU->bf16_to_f32(back + off, h16 + off, m);
        G->bf16_to_f32(dback + off, d16 + off, m);
        expect_dev_bitwise("bf16_to_f32", dback + off, back + off, m * sizeof(float));
        G->free(dx); G->free(d16); G->free(dback);
        free(h16); free(back);
    }
    free(x);
}

// ---------------------------------------------------------------- add_rows
Test(cuda_backend, add_rows) {
    BEGIN();
    const long shapes[][3] = {{1, 1, 1}, {3, 8, 768}, {64, 64, 768}, {5, 7, 33}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        long O = shapes[k][0], M = shapes[k][1];
        int I = (int)shapes[k][2];
        size_t n = (size_t)O * M * I, nb = (size_t)O * I;
        float *x = hrand(n, -1, 1, 3000 + k), *b = hrand(nb, -1, 1, 3100 + k), *y = hyp_malloc(n * sizeof(float));
        float *dx = up(x, n * sizeof(float)), *db = up(b, nb * sizeof(float)), *dy = dnan(n);
        CPU->add_rows_fwd(y, x, b, O, M, I);
        G->add_rows_fwd(dy, dx, db, O, M, I);
        expect_dev("add_rows_fwd", dy, y, n, TOL_OP);
        CPU->add_rows_bwd(b, x, O, M, I);   // b doubles as a random initial gradient, x as gy
        G->add_rows_bwd(db, dx, O, M, I);
        expect_dev("add_rows_bwd", db, b, nb, TOL_OP);
        G->free(dx); G->free(db); G->free(dy);
        free(x); free(b); free(y);
    }
}

// ---------------------------------------------------------------- optimizer
// AdamW: several steps (bias corrections change), decoupled decay, a clipping scale;
// the element formula is shared, so CPU and CUDA must agree bit for bit. adamw_step_dev
// (from_device) reads the scale from device memory: bitwise adamw_step with the same value,
// and a non-finite scale (clip_coef's "skip") leaves p, m, v untouched, on both backends.
static void adamw_cases(bool from_device) {
    const long sizes[] = {1, 7, 4099, 300001};
    const float scales[2][4] = {{1.0f, 0.37f, 1.0f}, {1.0f, 0.37f, NAN, INFINITY}};
    const int steps = from_device ? 4 : 3;
    const char *what = from_device ? "adamw_step_dev" : "adamw_step";
    char name[64];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int off = 0; off < 2; off++) {
            const long n = sizes[s], N = n + off;
            float *p = hrand(N, -1, 1, 3200 + s), *g = hrand(N, -0.5f, 0.5f, 3300 + s);
            float *m = hrand(N, -0.1f, 0.1f, 3400 + s), *v = hrand(N, 0.0f, 0.01f, 3500 + s);
            float *dp = up(p, N * sizeof(float)), *dg = up(g, N * sizeof(float));
            float *dm = up(m, N * sizeof(float)), *dv = up(v, N * sizeof(float)), *dscale = dnan(1);
            for (int t = 1; t <= steps; t++) {
                const double b1 = 0.9, b2 = 0.999, lr = 1e-3 * t, wd = off ? 0.01 : 0.0;
                const double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
                const float gs = scales[from_device][t - 1];
                if (!from_device) {
                    CPU->adamw_step(p + off, g + off, m + off, v + off, n, lr, b1, b2, 1e-8, wd, bc1, bc2, gs);
                    G->adamw_step(dp + off, dg + off, dm + off, dv + off, n, lr, b1, b2, 1e-8, wd, bc1, bc2, gs);
                    continue;
                }
                // the CPU slot: adamw_step's update, or none for a non-finite scale
                float *q = hdup(p, N), *qm = hdup(m, N), *qv = hdup(v, N);
                CPU->adamw_step_dev(q + off, g + off, qm + off, qv + off, n, lr, b1, b2, 1e-8, wd, bc1, bc2, &gs);
                if (isfinite(gs)) CPU->adamw_step(p + off, g + off, m + off, v + off, n, lr, b1, b2, 1e-8, wd, bc1, bc2, gs);
                cr_assert(memcmp(q, p, N * sizeof(float)) == 0 && memcmp(qm, m, N * sizeof(float)) == 0 &&
                          memcmp(qv, v, N * sizeof(float)) == 0, "cpu adamw_step_dev differs from adamw_step (scale %g)", gs);
                free(q); free(qm); free(qv);
                G->copy(dscale, &gs, sizeof gs, COPY_H2D);
                G->adamw_step_dev(dp + off, dg + off, dm + off, dv + off, n, lr, b1, b2, 1e-8, wd, bc1, bc2, dscale);
            }
            expect_dev(what, dp + off, p + off, n, TOL_OP);
            snprintf(name, sizeof name, "%s p", what);
            expect_dev_bitwise(name, dp + off, p + off, n * sizeof(float));
            snprintf(name, sizeof name, "%s m", what);
            expect_dev_bitwise(name, dm + off, m + off, n * sizeof(float));
            snprintf(name, sizeof name, "%s v", what);
            expect_dev_bitwise(name, dv + off, v + off, n * sizeof(float));
            snprintf(name, sizeof name, "%s g (read only)", what);
            expect_dev_bitwise(name, dg + off, g + off, n * sizeof(float));
            G->free(dp); G->free(dg); G->free(dm); G->free(dv); G->free(dscale);
            free(p); free(g); free(m); free(v);
        }
}
Test(cuda_backend, adamw_step) {
    BEGIN();
    adamw_cases(false);
}
Test(cuda_backend, adamw_step_dev) {
    BEGIN();
    adamw_cases(true);
}

Test(cuda_backend, sum_squares) {
    BEGIN();
    const long sizes[] = {1, 255, 100003, 3000000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const long n = sizes[s];
        float *x = hrand(n, -1.5f, 1.5f, 3600 + s), out, out2;
        float *dx = up(x, n * sizeof(float)), *dout = dnan(1);
        CPU->sum_squares(&out, x, n);
        G->sum_squares(dout, dx, n);
        expect_dev("sum_squares", dout, &out, 1, TOL_OP);
        float *h1 = down(dout, 1), first = h1[0];   // deterministic: a second launch gives the same bits
        free(h1);
        G->sum_squares(dout, dx, n);
        G->synchronize();
        G->copy(&out2, dout, sizeof(float), COPY_D2H);
        cr_assert(memcmp(&first, &out2, sizeof(float)) == 0, "sum_squares: two launches differ");
        G->free(dx); G->free(dout);
        free(x);
    }
}

// clip_coef: the coefficient, the fp32 norm and the non-finite guard, bit for bit as the CPU.
static void clip_case(const char *what, float sumsq, const float *check, long n_check, double max_norm, int32_t step,
                      bool sticky, HypClipState start, HypClipState want_partial, bool want_nan) {
    HypClipState cpu = start, got;
    CPU->clip_coef(&cpu, &sumsq, check, n_check, max_norm, step, sticky);
    HypClipState *dst = up(&start, sizeof start);
    float *dss = up(&sumsq, sizeof sumsq), *dck = n_check ? up(check, n_check * sizeof(float)) : NULL;
    G->clip_coef(dst, dss, dck, n_check, max_norm, step, sticky);
    G->synchronize();
    G->copy(&got, dst, sizeof got, COPY_D2H);
    cr_assert(memcmp(&got, &cpu, sizeof got) == 0, "clip_coef %s: CUDA {%g, %g, %d} vs CPU {%g, %g, %d}", what,
              (double)got.coef, (double)got.norm, got.bad_step, (double)cpu.coef, (double)cpu.norm, cpu.bad_step);
    cr_assert(want_nan ? isnan(cpu.coef) : cpu.coef == want_partial.coef, "clip_coef %s: coef %g", what, (double)cpu.coef);
    cr_assert_eq(cpu.bad_step, want_partial.bad_step, "clip_coef %s: bad_step %d", what, cpu.bad_step);
    G->free(dst); G->free(dss);
    if (dck) G->free(dck);
}

Test(cuda_backend, clip_coef) {
    BEGIN();
    const HypClipState fresh = {0}, latched = {.coef = NAN, .norm = 1.0f, .bad_step = 3};
    float ok[300], bad[300];
    for (int i = 0; i < 300; i++) ok[i] = bad[i] = 0.5f + i;
    bad[257] = INFINITY;
    const float ss = 6.25f;   // norm 2.5
    const float c25 = 1.0f / (2.5f + 1e-6f);   // torch: max_norm / (norm + 1e-6) in fp32
    clip_case("clipping", ss, ok, 300, 1.0, 7, true, fresh, (HypClipState){.coef = c25}, false);
    clip_case("no clipping needed", ss, ok, 3, 10.0, 7, true, fresh, (HypClipState){.coef = 1.0f}, false);
    clip_case("max_norm 0", ss, NULL, 0, 0.0, 7, true, fresh, (HypClipState){.coef = 1.0f}, false);
    clip_case("inf loss", ss, bad, 300, 1.0, 7, true, fresh, (HypClipState){.bad_step = 7}, true);
    clip_case("nan norm", NAN, ok, 3, 1.0, 9, false, fresh, (HypClipState){.bad_step = 9}, true);
    clip_case("inf sum of squares", INFINITY, ok, 3, 1.0, 9, true, fresh, (HypClipState){.bad_step = 9}, true);
    clip_case("latched stays", ss, ok, 3, 1.0, 11, true, latched, (HypClipState){.bad_step = 3}, true);
    clip_case("first bad step kept", NAN, ok, 3, 1.0, 11, true, latched, (HypClipState){.bad_step = 3}, true);
    clip_case("not sticky", ss, ok, 3, 1.0, 11, false, latched, (HypClipState){.coef = c25, .bad_step = 3}, false);
}

// arange: position ids and in-batch targets built on the device.
Test(cuda_backend, arange_i32) {
    BEGIN();
    const long sizes[] = {1, 5, 1000, 70001};
    const int32_t starts[] = {0, 3, -2, 0}, steps[] = {1, 1, 3, 0};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const long n = sizes[s];
        int32_t *want = hyp_malloc(n * sizeof(int32_t));
        CPU->arange_i32(want, starts[s], steps[s], n);
        for (long i = 0; i < n; i++) cr_assert_eq(want[i], starts[s] + (int32_t)i * steps[s]);
        int32_t *d = (int32_t *)dnan((size_t)n);
        G->arange_i32(d, starts[s], steps[s], n);
        expect_dev_bitwise("arange_i32", d, want, n * sizeof(int32_t));
        G->free(d);
        free(want);
    }
}

// ---------------------------------------------------------------- fused q-net activation
Test(cuda_backend, qnet_act) {
    BEGIN();
    const long shapes[][3] = {{1, 1, 5}, {2, 33, 768}, {3, 7, 37}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        long O = shapes[k][0], M = shapes[k][1];
        int D = (int)shapes[k][2];
        size_t n = (size_t)O * M * D;
        for (int mode = 0; mode < 3; mode++) {   // no residual, per-row residual, shared residual
            float *z = hrand(n, -1, 1, 4000 + k), *b = hrand((size_t)O * D, -1, 1, 4100 + k);
            float *x = hrand(n, -1, 1, 4200 + k), *y = hyp_malloc(n * sizeof(float));
            float *dz = up(z, n * 4), *db = up(b, (size_t)O * D * 4), *dx = up(x, n * 4), *dy = dnan(n);
            const float *xr = mode ? x : NULL, *dxr = mode ? dx : NULL;
            CPU->qnet_act_fwd(y, z, b, xr, mode == 2, O, M, D, 1e-5f);
            G->qnet_act_fwd(dy, dz, db, dxr, mode == 2, O, M, D, 1e-5f);
            expect_dev("qnet_act_fwd", dy, y, n, TOL_OP);
            G->free(dz); G->free(db); G->free(dx); G->free(dy);
            free(z); free(b); free(x); free(y);
        }
    }
}

#ifdef HYP_CUDA_SIM
// The simulator can hide its device (HYP_SIM_DEVICES=0): then the CUDA variants skip with
// the reason, and under HYP_REQUIRE_GPU=1 they fail instead (scripts/gpu-check.sh).
static int run_self(const char *env, const char *filter) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env -u HYP_TEST_STATS -u BXFI_MAP HYP_SIM_DEVICES=0 %s /proc/%d/exe --filter '%s' >/dev/null 2>&1",
             env, (int)getpid(), filter);
    return system(cmd);
}
Test(cuda_backend, no_device_skips_and_require_gpu_fails) {
    cr_assert(run_self("", "cuda_backend/memory") == 0, "without a device the CUDA test should skip, not fail");
    cr_assert(run_self("HYP_REQUIRE_GPU=1", "cuda_backend/memory") != 0,
              "HYP_REQUIRE_GPU=1 should turn the skip into a failure");
    setenv("HYP_SIM_DEVICES", "0", 1);
    char why[512];
    hyp_cuda_describe_no_device(why, sizeof why);
    unsetenv("HYP_SIM_DEVICES");
    cr_assert(strstr(why, "sees no CUDA device"), "no-device reason: %s", why);
}
#endif
