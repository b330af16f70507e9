// train.precision = bf16 / tf32 (docs/precision.md): the GEMM roundings as specified on the
// CPU (bitwise against sgemm on rounded operands), the CUDA backend against the CPU (the
// simulator's cuBLASLt rounds the same way), the ops against PyTorch's CPU autocast
// (tests/fixtures/fx_autocast.py), and the parameters' bf16 copy made once per step.
// BERT and ten training steps under autocast: test_bert.c and test_train10.c.
#include "tests/testlib.h"
#include "kernels/elementwise.h"
#include "train/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *hrand(size_t n, uint64_t seed) {
    float *x = hyp_malloc((n ? n : 1) * sizeof(float));
    fill_uniform(x, n, -1.0f, 1.0f, seed);
    return x;
}
static float *hcopy(const float *x, size_t n) {
    float *y = hyp_malloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

typedef struct {
    bool ta, tb;
    int M, N, K, batch;
    long long sA, sB;       // 0: broadcast; -1: dense
    float alpha, beta;
} Case;

static const Case CASES[] = {
    {false, false, 37, 29, 53, 1, -1, -1, 1.0f, 0.0f},
    {false, true, 64, 40, 96, 1, -1, -1, 0.5f, 0.75f},
    {true, false, 17, 40, 24, 3, -1, -1, 1.25f, 1.0f},
    {true, true, 17, 33, 24, 3, -1, -1, 1.0f, 0.0f},
    {false, true, 9, 11, 16, 4, -1, 0, 1.0f, 0.0f},   // B broadcast (folds into one GEMM)
    {false, false, 9, 11, 16, 4, 0, -1, 1.0f, 1.0f},  // A broadcast, accumulating
    {false, false, 5, 6, 0, 2, -1, -1, 1.0f, 0.5f},   // K = 0: C = beta C
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

typedef struct {
    long long sA, sB, sC;
    size_t nA, nB, nC;
} Sizes;
static Sizes sizes(const Case *k) {
    Sizes s;
    s.sA = k->sA < 0 ? (long long)k->M * k->K : k->sA;
    s.sB = k->sB < 0 ? (long long)k->K * k->N : k->sB;
    s.sC = (long long)k->M * k->N;
    s.nA = (size_t)(k->batch - 1) * s.sA + (size_t)k->M * k->K;
    s.nB = (size_t)(k->batch - 1) * s.sB + (size_t)k->K * k->N;
    s.nC = (size_t)k->batch * s.sC;
    return s;
}

// The specification, spelled out: operands rounded, fp32 sgemm, and for bf16 the product
// rounded before beta C is added.
static void reference(const Case *k, MatmulPrecision prec, const float *A, const float *B, const float *bias,
                      float *C) {
    const Sizes s = sizes(k);
    float *a = hcopy(A, s.nA), *b = hcopy(B, s.nB), *p = hyp_malloc(s.nC * sizeof(float));
    for (size_t i = 0; i < s.nA; i++) a[i] = prec == HYP_MATMUL_BF16 ? hyp_round_bf16(a[i]) : hyp_round_tf32(a[i]);
    for (size_t i = 0; i < s.nB; i++) b[i] = prec == HYP_MATMUL_BF16 ? hyp_round_bf16(b[i]) : hyp_round_tf32(b[i]);
    hyp_cpu_backend.gemm(k->ta, k->tb, k->M, k->N, k->K, k->alpha, a, s.sA, b, s.sB, 0.0f, p, s.sC, k->batch,
                         HYP_MATMUL_F32);
    for (size_t i = 0; i < s.nC; i++) {
        const float v = bias ? p[i] + bias[i % (size_t)k->N] : p[i];
        if (prec == HYP_MATMUL_BF16) C[i] = k->beta == 0.0f ? hyp_round_bf16(v) : hyp_round_bf16(v) + k->beta * C[i];
        else C[i] = k->beta == 0.0f ? v : (bias ? p[i] + k->beta * C[i] + bias[i % (size_t)k->N] : v + k->beta * C[i]);
    }
    free(a); free(b); free(p);
}

static void expect_bitwise(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s: element %zu is %.9g, the specification %.9g",
                  what, i, got[i], want[i]);
}

// CPU bf16 and tf32 GEMMs are exactly the specification, and differ from fp32 (the rounding
// is really applied).
Test(bf16, cpu_gemm_is_the_specification) {
    const Backend *be = &hyp_cpu_backend;
    for (size_t ci = 0; ci < N_CASES; ci++) {
        const Case *k = &CASES[ci];
        const Sizes s = sizes(k);
        for (int pi = 0; pi < 2; pi++) {
            const MatmulPrecision prec = pi ? HYP_MATMUL_TF32 : HYP_MATMUL_BF16;
            float *A = hrand(s.nA, 10 + ci), *B = hrand(s.nB, 20 + ci), *C0 = hrand(s.nC, 30 + ci);
            float *got = hcopy(C0, s.nC), *want = hcopy(C0, s.nC), *f32 = hcopy(C0, s.nC);
            float *bias = ci % 2 ? hrand((size_t)k->N, 35 + ci) : NULL;   // linear's bias on odd cases
            be->gemm_ex(k->ta, k->tb, k->M, k->N, k->K, k->alpha, A, false, s.sA, B, false, s.sB, bias, k->beta, got,
                        s.sC, k->batch, prec);
            reference(k, prec, A, B, bias, want);
            char what[96];
            snprintf(what, sizeof what, "case %zu %s", ci, pi ? "tf32" : "bf16");
            expect_bitwise(got, want, s.nC, what);
            be->gemm_ex(k->ta, k->tb, k->M, k->N, k->K, k->alpha, A, false, s.sA, B, false, s.sB, bias, k->beta, f32,
                        s.sC, k->batch, HYP_MATMUL_F32);
            if (k->K > 0)   // bf16 changes results ~2^-9, tf32 ~2^-11: far above fp32 noise
                cr_assert_gt(rel_err(got, f32, s.nC), 1e-5, "%s: no different from fp32", what);
            else if (!bias || pi)
                expect_bitwise(got, f32, s.nC, what);
            free(A); free(B); free(C0); free(got); free(want); free(f32); free(bias);
        }
    }
}

// A bf16 operand (the parameters' copy) gives exactly the result of its fp32 original.
Test(bf16, cpu_bf16_operands_read_exactly) {
    const Backend *be = &hyp_cpu_backend;
    for (size_t ci = 0; ci < N_CASES; ci++) {
        const Case *k = &CASES[ci];
        const Sizes s = sizes(k);
        float *A = hrand(s.nA, 40 + ci), *B = hrand(s.nB, 50 + ci), *C0 = hrand(s.nC, 60 + ci);
        uint16_t *A16 = hyp_malloc((s.nA + 1) * 2), *B16 = hyp_malloc((s.nB + 1) * 2);
        be->f32_to_bf16(A16, A, (long)s.nA);
        be->f32_to_bf16(B16, B, (long)s.nB);
        float *want = hcopy(C0, s.nC), *ga = hcopy(C0, s.nC), *gb = hcopy(C0, s.nC);
        be->gemm(k->ta, k->tb, k->M, k->N, k->K, k->alpha, A, s.sA, B, s.sB, k->beta, want, s.sC, k->batch,
                 HYP_MATMUL_BF16);
        be->gemm_ex(k->ta, k->tb, k->M, k->N, k->K, k->alpha, A16, true, s.sA, B, false, s.sB, NULL, k->beta, ga, s.sC,
                    k->batch, HYP_MATMUL_BF16);
        be->gemm_ex(k->ta, k->tb, k->M, k->N, k->K, k->alpha, A, false, s.sA, B16, true, s.sB, NULL, k->beta, gb, s.sC,
                    k->batch, HYP_MATMUL_BF16);
        expect_bitwise(ga, want, s.nC, "bf16 A");
        expect_bitwise(gb, want, s.nC, "bf16 B");
        free(A); free(B); free(C0); free(A16); free(B16); free(want); free(ga); free(gb);
    }
}

// CUDA (the simulator's cuBLASLt without a GPU) = the CPU emulation: bitwise, or one unit in
// the last place of the output format where the accumulation order differs.
static void expect_ulp(const float *got, const float *want, size_t n, MatmulPrecision prec, const char *what) {
    for (size_t i = 0; i < n; i++) {
        const float w = want[i], ulp = prec == HYP_MATMUL_BF16 ? ldexpf(fabsf(w), -7) : ldexpf(fabsf(w), -22);
        cr_assert(fabsf(got[i] - w) <= ulp, "%s: element %zu: %.9g on CUDA, %.9g on the CPU", what, i, got[i], w);
    }
}
Test(bf16, cuda_gemm_matches_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    const Backend *G = backend_get(HYP_CUDA), *be = &hyp_cpu_backend;
    for (size_t ci = 0; ci < N_CASES; ci++)
        for (int pi = 0; pi < 3; pi++) {
            const Case *k = &CASES[ci];
            const Sizes s = sizes(k);
            const MatmulPrecision prec = pi == 0 ? HYP_MATMUL_BF16 : pi == 1 ? HYP_MATMUL_TF32 : HYP_MATMUL_F32;
            float *A = hrand(s.nA, 70 + ci), *B = hrand(s.nB, 80 + ci), *C = hrand(s.nC, 90 + ci);
            float *dA = G->alloc(s.nA * 4 + 4), *dB = G->alloc(s.nB * 4 + 4), *dC = G->alloc(s.nC * 4);
            uint16_t *dB16 = G->alloc(s.nB * 2 + 2);
            float *bias = ci % 2 ? hrand((size_t)k->N, 95 + ci) : NULL, *dbias = bias ? G->alloc((size_t)k->N * 4) : NULL;
            if (bias) G->copy(dbias, bias, (size_t)k->N * 4, COPY_H2D);
            G->copy(dA, A, s.nA * 4, COPY_H2D);
            G->copy(dB, B, s.nB * 4, COPY_H2D);
            G->copy(dC, C, s.nC * 4, COPY_H2D);
            if (prec == HYP_MATMUL_BF16) {   // B as a parameter copy: converted once on the device
                G->f32_to_bf16(dB16, dB, (long)s.nB);
                G->gemm_ex(k->ta, k->tb, k->M, k->N, k->K, k->alpha, dA, false, s.sA, dB16, true, s.sB, dbias, k->beta,
                           dC, s.sC, k->batch, prec);
            } else {
                G->gemm_ex(k->ta, k->tb, k->M, k->N, k->K, k->alpha, dA, false, s.sA, dB, false, s.sB, dbias, k->beta,
                           dC, s.sC, k->batch, prec);
            }
            be->gemm_ex(k->ta, k->tb, k->M, k->N, k->K, k->alpha, A, false, s.sA, B, false, s.sB, bias, k->beta, C,
                        s.sC, k->batch, prec);
            float *got = hyp_malloc(s.nC * 4);
            G->copy(got, dC, s.nC * 4, COPY_D2H);
            char what[96];
            snprintf(what, sizeof what, "case %zu prec %d", ci, (int)prec);
            expect_ulp(got, C, s.nC, prec, what);
            G->free(dA); G->free(dB); G->free(dC); G->free(dB16);
            if (dbias) G->free(dbias);
            free(A); free(B); free(C); free(got); free(bias);
        }
}

// ---- ops against torch.autocast("cpu", dtype=torch.bfloat16)
static void run_op_case(Device dev, const char *group, bool linear) {
    H5File *f = fx_open("autocast.h5");
    Ctx *c = ctx_new(dev);
    c->matmul_precision = HYP_MATMUL_BF16;
    Tensor *a = fx_tensor(c, f, group, linear ? "x" : "a", true);
    Tensor *b = fx_tensor(c, f, group, linear ? "w" : "b", true);
    Tensor *bias = linear ? fx_tensor(c, f, group, "b", true) : NULL;
    Tensor *y;
    if (linear) y = op_linear(c, a, b, bias);
    else if (!strcmp(group, "/ops/matmul_tt")) y = op_matmul(c, a, b, true, true);
    else if (!strcmp(group, "/ops/matmul_bcast")) y = op_matmul(c, a, b, false, true);
    else y = op_matmul(c, a, b, false, false);
    backward_from(c, y, fx_tensor(c, f, group, "gy", false));
    expect_fixture(y, f, group, "y", TOL_BF16);
    // Closer to autocast than to fp32: the emulation rounds what autocast rounds.
    float *got = tensor_host_copy(y);
    int nd, sh[4];
    char p[96];
    snprintf(p, sizeof p, "%s/y", group);
    float *y16 = h5_read_f32(f, p, &nd, sh);
    snprintf(p, sizeof p, "%s/y32", group);
    float *y32 = h5_read_f32(f, p, &nd, sh);
    cr_assert(y16 && y32, "%s", hyp_last_error());
    const size_t n = tensor_numel(y);
    const double e16 = rel_err(got, y16, n), e32 = rel_err(got, y32, n);
    cr_assert_lt(e16, 0.5 * e32, "%s: %.3g from autocast, %.3g from fp32", group, e16, e32);
    const char *names[3] = {linear ? "g_x" : "g_a", linear ? "g_w" : "g_b", "g_b"};
    Tensor *ins[3] = {a, b, bias};
    for (int i = 0; i < (linear ? 3 : 2); i++) expect_fixture(ins[i]->grad, f, group, names[i], TOL_BF16);
    free(got); free(y16); free(y32);
    ctx_free(c);
    h5_close(f);
}
// Attention under autocast (SDPA): y and the three gradients within TOL_BF16, and y, g_q, g_k
// closer to autocast's than to fp32's (the products' operands are rounded as SDPA rounds them).
static void attention_autocast(Device dev) {
    const char *g = "/ops/attention";
    H5File *f = fx_open("autocast.h5");
    Ctx *c = ctx_new(dev);
    c->matmul_precision = HYP_MATMUL_BF16;
    Tensor *q = fx_tensor(c, f, g, "q", true), *k = fx_tensor(c, f, g, "k", true), *v = fx_tensor(c, f, g, "v", true);
    double scale;
    cr_assert(h5_read_attr_f64(f, g, "scale", &scale) == 0, "%s", hyp_last_error());
    Tensor *y = op_attention(c, q, k, v, fx_tensor(c, f, g, "mask", false), fx_attr_int(f, g, "heads"), (float)scale);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    const char *names[4] = {"y", "q", "k", "v"};
    Tensor *got[4] = {y, q->grad, k->grad, v->grad};
    for (int i = 0; i < 4; i++) {
        char n16[16], n32[16], p[96];
        snprintf(n16, sizeof n16, i ? "g_%s" : "y", names[i]);
        snprintf(n32, sizeof n32, i ? "g32_%s" : "y32", names[i]);
        expect_fixture(got[i], f, g, n16, TOL_BF16);
        int nd, sh[4];
        snprintf(p, sizeof p, "%s/%s", g, n16);
        float *w16 = h5_read_f32(f, p, &nd, sh);
        snprintf(p, sizeof p, "%s/%s", g, n32);
        float *w32 = h5_read_f32(f, p, &nd, sh);
        float *h = tensor_host_copy(got[i]);
        const size_t n = tensor_numel(got[i]);
        const double e16 = rel_err(h, w16, n), e32 = rel_err(h, w32, n);
        fprintf(stderr, "attention %s %s: %.3g from autocast, %.3g from fp32 (autocast from fp32 %.3g)\n",
                device_name(dev), n16, e16, e32, rel_err(w16, w32, n));
        if (i < 3) cr_assert_lt(e16, e32, "%s: %.3g from autocast, %.3g from fp32", n16, e16, e32);
        free(w16), free(w32), free(h);
    }
    ctx_free(c);
    h5_close(f);
}
Test(bf16, attention_matches_autocast_cpu) { attention_autocast(HYP_CPU); }
Test(bf16, attention_matches_autocast_cuda) { RUN_ON_CUDA_OR_SKIP(); attention_autocast(HYP_CUDA); }

static void ops_autocast(Device dev) {
    run_op_case(dev, "/ops/linear", true);
    run_op_case(dev, "/ops/matmul_nn", false);
    run_op_case(dev, "/ops/matmul_tt", false);
    run_op_case(dev, "/ops/matmul_bcast", false);
}
Test(bf16, ops_match_autocast_cpu) { ops_autocast(HYP_CPU); }
Test(bf16, ops_match_autocast_cuda) { RUN_ON_CUDA_OR_SKIP(); ops_autocast(HYP_CUDA); }

// ---- the parameters' bf16 copy: made at the first bf16 GEMM, reused until the optimizer
// steps, then remade; GEMMs through it equal GEMMs that round the weight themselves.
static void weight_copy(Device dev) {
    ParamSet *ps = paramset_new(dev);
    Tensor *w = paramset_add(ps, "w", HYP_SHAPE(12, 20));
    paramset_finalize(ps);
    float *hw = hrand(tensor_numel(w), 5);
    tensor_from_host(w, hw);
    Ctx *c = ctx_new(dev), *plain = ctx_new(dev);
    c->matmul_precision = plain->matmul_precision = HYP_MATMUL_BF16;
    c->params = ps;
    float *hx = hrand(7 * 20, 6);
    Tensor *x = tensor_from_floats(c, hx, HYP_SHAPE(7, 20), true);
    Tensor *xp = tensor_from_floats(plain, hx, HYP_SHAPE(7, 20), false);
    cr_assert_null(ps->bf16, "no copy before a bf16 GEMM asks for it");
    float *y1 = tensor_host_copy(op_linear(c, x, w, NULL));
    const uint16_t *copy = ps->bf16;
    cr_assert_not_null(copy);
    cr_assert_eq(ps->bf16_version, ps->version);
    float *yp = tensor_host_copy(op_linear(plain, xp, w, NULL));
    expect_bitwise(y1, yp, 7 * 12, "linear through the copy");
    // The copy is reused: a write the optimizer did not announce is not seen (this is why
    // every writer calls paramset_touch) ...
    float *hw2 = hcopy(hw, tensor_numel(w));
    for (size_t i = 0; i < tensor_numel(w); i++) hw2[i] = -hw2[i];
    tensor_from_host(w, hw2);
    float *y2 = tensor_host_copy(op_linear(c, x, w, NULL));
    expect_bitwise(y2, y1, 7 * 12, "a second GEMM in the same step reads the same copy");
    // ... and an optimizer step makes it stale, so the next GEMM sees the new weights.
    AdamWConfig ac = adamw_config_default();
    AdamW *opt = adamw_new(ps, &ac);
    float *hg = hrand(7 * 12, 7);
    backward_from(c, op_linear(c, x, w, NULL), tensor_from_floats(c, hg, HYP_SHAPE(7, 12), false));
    const uint64_t v = ps->version;
    OptimStats st;
    cr_assert_eq(optim_step(opt, ps, 1e-3, &st), OPTIM_OK);
    cr_assert_eq(ps->version, v + 1, "optim_step announces the update");
    float *y3 = tensor_host_copy(op_linear(c, x, w, NULL));
    cr_assert_eq(ps->bf16, copy, "the copy is refreshed in place");
    float *y3p = tensor_host_copy(op_linear(plain, xp, w, NULL));
    expect_bitwise(y3, y3p, 7 * 12, "linear after the step");
    free(hw); free(hw2); free(hx); free(hg); free(y1); free(yp); free(y2); free(y3); free(y3p);
    adamw_free(opt);
    ctx_free(c);
    ctx_free(plain);
    paramset_free(ps);
}
Test(bf16, weight_copy_once_per_step_cpu) { weight_copy(HYP_CPU); }
Test(bf16, weight_copy_once_per_step_cuda) { RUN_ON_CUDA_OR_SKIP(); weight_copy(HYP_CUDA); }
