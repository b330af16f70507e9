// bench_ops: our ops against references timed in the same run (DESIGN §7).
//  - matmul / linear (forward) vs raw cblas_sgemm on BERT-base training shapes: GFLOP/s, ratio
//  - layernorm, softmax, GELU forward+backward vs a plain memory copy: GB/s, ratio
// Usage: bench_ops [--quick]
#include "autograd/ops.h"
#include "autograd/gradcheck.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reps = 5;

// Best of `reps` runs after one warm-up (the minimum is the least noisy on shared machines).
// The reference and ours alternate run by run, so a burst of load hits both alike.
#define TIME_PAIR(t_ref, ref_body, t_ours, ours_body) do {                          \
    ref_body; ours_body; t_ref = t_ours = 1e30;                                    \
    for (int r_ = 0; r_ < reps; r_++) {                                            \
        double t0_ = hyp_now(); ref_body; double t1_ = hyp_now(); ours_body;      \
        double t2_ = hyp_now();                                                    \
        if (t1_ - t0_ < t_ref) t_ref = t1_ - t0_;                                  \
        if (t2_ - t1_ < t_ours) t_ours = t2_ - t1_; } } while (0)

static float *rnd(size_t n, uint64_t seed) {
    float *x = hyp_malloc(n * sizeof(float));
    fill_uniform(x, n, -1, 1, seed);
    return x;
}

static void bench_gemm(const char *what, int batch, int M, int N, int K, bool linear) {
    float *A = rnd((size_t)batch * M * K, 1), *B = rnd((size_t)(linear ? 1 : batch) * K * N, 2);
    float *C = hyp_malloc((size_t)batch * M * N * sizeof(float));
    double flops = 2.0 * batch * M * N * K, t_ref, t_ours;
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *a = batch > 1 ? tensor_wrap(c, HYP_F32, A, HYP_SHAPE(batch, M, K)) : tensor_wrap(c, HYP_F32, A, HYP_SHAPE(M, K));
    Tensor *b = linear ? tensor_wrap(c, HYP_F32, B, HYP_SHAPE(N, K)) : tensor_wrap(c, HYP_F32, B, HYP_SHAPE(batch, K, N));
    no_grad_begin(c);
    // Reference: raw sgemm calls with the same layout (linear: W is (N,K), transposed).
    TIME_PAIR(t_ref, for (int z = 0; z < batch; z++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, linear ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                    A + (size_t)z * M * K, K, B + (linear ? 0 : (size_t)z * K * N), linear ? K : N, 0.0f,
                    C + (size_t)z * M * N, N),
              t_ours, { if (linear) op_linear(c, a, b, NULL); else op_matmul(c, a, b, false, false); arena_reset(c->act); });
    no_grad_end(c);
    ctx_free(c);
    printf("%-34s %8.1f GFLOP/s  sgemm %8.1f GFLOP/s  ratio %.3f\n", what, flops / t_ours * 1e-9,
           flops / t_ref * 1e-9, t_ref / t_ours);
    free(A); free(B); free(C);
}

typedef Tensor *(*UnaryFn)(Ctx *c, Tensor *x);
static Tensor *ln_fn(Ctx *c, Tensor *x) { return op_layernorm(c, x, NULL, NULL, 1e-12f); }
static Tensor *sm_fn(Ctx *c, Tensor *x) { return op_softmax(c, x, NULL); }

// Forward + backward of a row-wise op over (rows, D); bytes = what a perfect fused pass moves:
// forward reads x, writes y; backward reads x (or y), gy, writes gx.
static void bench_rowwise(const char *what, UnaryFn fn, long rows, int D) {
    size_t n = (size_t)rows * D, bytes = 5 * n * sizeof(float);
    float *src = rnd(n, 3), *dst = hyp_malloc(n * sizeof(float));
    double t_copy, t_ours;
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *gy = tensor_new(c, HYP_F32, HYP_SHAPE((int)rows, D));
    memcpy(gy->data, src, n * 4);
    Ctx *step = ctx_new(HYP_CPU);
    Tensor *x = tensor_new(c, HYP_F32, HYP_SHAPE((int)rows, D));
    memcpy(x->data, src, n * 4);
    x->requires_grad = true;
    // Reference: memcpy moving the same number of bytes (2.5 copies of the tensor).
    TIME_PAIR(t_copy, { memcpy(dst, src, n * 4); memcpy(dst, src, n * 4); memcpy(dst, src, n * 2); },
              t_ours, { x->grad = NULL; Tensor *y = fn(step, x); backward_from(step, y, gy); ctx_reset(step); });
    x->grad = NULL;
    ctx_free(step);
    ctx_free(c);
    printf("%-34s %8.2f GB/s      memcpy %6.2f GB/s  ratio %.3f\n", what, bytes / t_ours * 1e-9,
           bytes / t_copy * 1e-9, t_copy / t_ours);
    free(src); free(dst);
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (quick) reps = 2;
    int rows = quick ? 512 : 4096;
    printf("bench_ops: %s, OpenBLAS threads %d\n", quick ? "quick" : "full", openblas_get_num_threads());
    char name[64];
    snprintf(name, sizeof name, "linear %dx768x768", rows);        bench_gemm(name, 1, rows, 768, 768, true);
    snprintf(name, sizeof name, "linear %dx768->3072", rows);      bench_gemm(name, 1, rows, 3072, 768, true);
    snprintf(name, sizeof name, "linear %dx3072->768", rows);      bench_gemm(name, 1, rows, 768, 3072, true);
    snprintf(name, sizeof name, "matmul %dx768x768", rows);        bench_gemm(name, 1, rows, 768, 768, false);
    bench_gemm("bmm 64x(9x768 @ 768x768)", quick ? 8 : 64, 9, 768, 768, false);
    bench_rowwise("layernorm fwd+bwd (4096x768)", ln_fn, rows, 768);
    bench_rowwise("softmax fwd+bwd (4096x768)", sm_fn, rows, 768);
    bench_rowwise("gelu fwd+bwd (4096x3072)", op_gelu, rows, 3072);
    return 0;
}
