// Basic ops: embedding, add/sub/mul, scale, relu, gelu, dropout, layernorm, add_layernorm,
// softmax. PyTorch fixtures (CPU and CUDA), finite differences, dropout statistics and the
// Philox4x32-10 known-answer vectors, shape errors.
#include "tests/testlib.h"
#include "kernels/elementwise.h"
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- fixtures
typedef void (*CaseFn)(Ctx *c, H5File *f, const char *g);

// Run fn on every case of /<op> in ops_basic.h5, each in a fresh context on dev.
static void for_each_case(Device dev, const char *op, CaseFn fn) {
    H5File *f = fx_open("ops_basic.h5");
    char **names, grp[64];
    snprintf(grp, sizeof grp, "/%s", op);
    int n = h5_list(f, grp, &names);
    cr_assert(n > 0, "no fixture cases under %s: %s", grp, hyp_last_error());
    for (int i = 0; i < n; i++) {
        char g[256];
        snprintf(g, sizeof g, "%s/%s", grp, names[i]);
        Ctx *c = ctx_new(dev);
        fn(c, f, g);
        ctx_free(c);
        free(names[i]);
    }
    free(names);
    h5_close(f);
}

static double attr(H5File *f, const char *g, const char *name) {
    double v;
    cr_assert(h5_read_attr_f64(f, g, name, &v) == 0, "%s: attribute %s: %s", g, name, hyp_last_error());
    return v;
}

static bool fx_has_attr(H5File *f, const char *g, const char *name) {
    double v;
    return h5_read_attr_f64(f, g, name, &v) == 0;
}

static void case_add_rows(Ctx *c, H5File *f, const char *g) {
    Tensor *x = fx_tensor(c, f, g, "x", true), *b = fx_tensor(c, f, g, "b", true);
    Tensor *y = op_add_rows(c, x, b);
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(x->grad, f, g, "g_x", TOL_OP);
    expect_fixture(b->grad, f, g, "g_b", TOL_OP);
}

static void case_embedding(Ctx *c, H5File *f, const char *g) {
    Tensor *table = fx_tensor(c, f, g, "table", true), *ids = fx_tensor(c, f, g, "ids", false);
    cr_assert_eq(ids->dtype, HYP_I32, "%s: ids must load as int32", g);
    int pad = fx_has_attr(f, g, "padding_idx") ? (int)attr(f, g, "padding_idx") : -1;
    Tensor *y = op_embedding_pad(c, table, ids, pad);
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(table->grad, f, g, "g_table", TOL_OP);
}

static void case_binary(Ctx *c, H5File *f, const char *g) {
    Tensor *a = fx_tensor(c, f, g, "a", true), *b = fx_tensor(c, f, g, "b", true);
    int op = (int)attr(f, g, "op");
    Tensor *y = op == BIN_ADD ? op_add(c, a, b) : op == BIN_SUB ? op_sub(c, a, b) : op_mul(c, a, b);
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(a->grad, f, g, "g_a", TOL_OP);
    expect_fixture(b->grad, f, g, "g_b", TOL_OP);
}

static void case_scale(Ctx *c, H5File *f, const char *g) {
    Tensor *x = fx_tensor(c, f, g, "x", true);
    Tensor *y = op_scale(c, x, (float)attr(f, g, "alpha"));
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(x->grad, f, g, "g_x", TOL_OP);
}

// Every activation of kernels/unary_ops.h has fixture cases (unary/<name>_*); attribute
// "op" names the row.
static int unary_cases_seen[UN_COUNT];
static void case_unary(Ctx *c, H5File *f, const char *g) {
    char name[64];
    cr_assert(h5_read_attr_str(f, g, "op", name, sizeof name) == 0, "%s: %s", g, hyp_last_error());
    int op = hyp_unary_from_name(name);
    cr_assert(op >= 0, "%s: fixture names activation '%s', which kernels/unary_ops.h does not have", g, name);
    unary_cases_seen[op]++;
    Tensor *x = fx_tensor(c, f, g, "x", true);
    Tensor *y = op_unary(c, (UnaryOp)op, x);
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(x->grad, f, g, "g_x", TOL_OP);
}

static void case_layernorm(Ctx *c, H5File *f, const char *g) {
    Tensor *x = fx_tensor(c, f, g, "x", true);
    bool affine = fx_has(f, g, "w");
    Tensor *w = affine ? fx_tensor(c, f, g, "w", true) : NULL;
    Tensor *b = affine ? fx_tensor(c, f, g, "b", true) : NULL;
    Tensor *y = op_layernorm(c, x, w, b, (float)attr(f, g, "eps"));
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(x->grad, f, g, "g_x", TOL_OP);
    if (affine) {
        expect_fixture(w->grad, f, g, "g_w", TOL_OP);
        expect_fixture(b->grad, f, g, "g_b", TOL_OP);
    }
}

static void case_add_layernorm(Ctx *c, H5File *f, const char *g) {
    Tensor *x = fx_tensor(c, f, g, "x", true), *r = fx_tensor(c, f, g, "residual", true);
    bool affine = fx_has(f, g, "w");
    Tensor *w = affine ? fx_tensor(c, f, g, "w", true) : NULL;
    Tensor *b = affine ? fx_tensor(c, f, g, "b", true) : NULL;
    Tensor *y = op_add_layernorm(c, x, r, w, b, (float)attr(f, g, "eps"));
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(x->grad, f, g, "g_x", TOL_OP);
    expect_fixture(r->grad, f, g, "g_residual", TOL_OP);
    if (affine) {
        expect_fixture(w->grad, f, g, "g_w", TOL_OP);
        expect_fixture(b->grad, f, g, "g_b", TOL_OP);
    }
}

static void case_softmax(Ctx *c, H5File *f, const char *g) {
    Tensor *x = fx_tensor(c, f, g, "x", true);
    Tensor *mask = fx_has(f, g, "mask") ? fx_tensor(c, f, g, "mask", false) : NULL;
    Tensor *y = op_softmax(c, x, mask);
    expect_fixture(y, f, g, "y", TOL_OP);
    backward_from(c, y, fx_tensor(c, f, g, "gy", false));
    expect_fixture(x->grad, f, g, "g_x", TOL_OP);
}

#define FIXTURE_TESTS(suite, op, fn)                                              \
    Test(suite, fixtures_cpu) { for_each_case(HYP_CPU, op, fn); }                 \
    Test(suite, fixtures_cuda) { RUN_ON_CUDA_OR_SKIP(); for_each_case(HYP_CUDA, op, fn); }

FIXTURE_TESTS(embedding, "embedding", case_embedding)
FIXTURE_TESTS(binary, "binary", case_binary)
FIXTURE_TESTS(scale, "scale", case_scale)
FIXTURE_TESTS(unary, "unary", case_unary)
// A row added to kernels/unary_ops.h without fixture cases fails here.
Test(unary, every_activation_has_fixtures) {
    for_each_case(HYP_CPU, "unary", case_unary);
    for (int op = 0; op < UN_COUNT; op++)
        cr_expect(unary_cases_seen[op] >= 3, "activation %s has %d fixture cases (fx_basic.py)", hyp_unary_name((UnaryOp)op),
                  unary_cases_seen[op]);
}
FIXTURE_TESTS(layernorm, "layernorm", case_layernorm)
FIXTURE_TESTS(add_layernorm, "add_layernorm", case_add_layernorm)
FIXTURE_TESTS(softmax, "softmax", case_softmax)
FIXTURE_TESTS(add_rows, "add_rows", case_add_rows)

static Tensor *add_rows_fn(Ctx *c, Tensor **in, void *u) { return op_add_rows(c, in[0], in[1]); }
Test(add_rows, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[2] = {tensor_rand(c, HYP_SHAPE(3, 5, 4), -1, 1, 1, true), tensor_rand(c, HYP_SHAPE(3, 4), -1, 1, 2, true)};
    expect_gradcheck(add_rows_fn, in, 2, NULL, NULL, "add_rows");
    ctx_free(c);
}
Test(add_rows, shape_error, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_add_rows(c, tensor_rand(c, HYP_SHAPE(3, 5, 4), -1, 1, 1, false), tensor_rand(c, HYP_SHAPE(2, 4), -1, 1, 2, false));
}

// ---------------------------------------------------------------- finite differences
static Tensor *ids_tensor(Ctx *c, const int32_t *ids, int ndim, const int *shape) {
    Tensor *t = tensor_new(c, HYP_I32, ndim, shape);
    tensor_from_host(t, ids);
    return t;
}

static Tensor *emb_fn(Ctx *c, Tensor **in, void *u) { return op_embedding(c, in[0], in[1]); }
Test(embedding, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    int32_t ids[] = {2, 0, 2, 4, 2, 1};   // repeated ids accumulate
    Tensor *in[2] = {tensor_rand(c, HYP_SHAPE(5, 3), -1, 1, 1, true), ids_tensor(c, ids, HYP_SHAPE(2, 3))};
    expect_gradcheck(emb_fn, in, 2, NULL, NULL, "embedding");
    ctx_free(c);
}

static Tensor *bin_fn(Ctx *c, Tensor **in, void *u) {
    int op = (int)(intptr_t)u;
    return op == BIN_ADD ? op_add(c, in[0], in[1]) : op == BIN_SUB ? op_sub(c, in[0], in[1]) : op_mul(c, in[0], in[1]);
}
Test(binary, gradcheck) {
    struct { int na, sa[4], nb, sb[4]; } shapes[] = {
        {2, {3, 4}, 2, {3, 4}},
        {3, {2, 3, 5}, 1, {5}},
        {3, {2, 3, 5}, 2, {3, 5}},
        {4, {2, 1, 2, 3}, 3, {1, 2, 3}},
    };
    for (int op = BIN_ADD; op <= BIN_MUL; op++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            Ctx *c = ctx_new(HYP_CPU);
            Tensor *in[2] = {tensor_rand(c, shapes[i].na, shapes[i].sa, -1, 1, 10 + i, true),
                             tensor_rand(c, shapes[i].nb, shapes[i].sb, -1, 1, 20 + i, true)};
            char what[64];
            snprintf(what, sizeof what, "binary op %d shape case %zu", op, i);
            expect_gradcheck(bin_fn, in, 2, (void *)(intptr_t)op, NULL, what);
            ctx_free(c);
        }
}

// Both operands are the same tensor: the two gradient contributions must add up.
Test(binary, gradcheck_aliased_operands) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(3, 4), -1, 1, 5, true);
    Tensor *in[2] = {x, x};
    expect_gradcheck(bin_fn, in, 2, (void *)(intptr_t)BIN_MUL, NULL, "mul(x, x)");
    expect_gradcheck(bin_fn, in, 2, (void *)(intptr_t)BIN_ADD, NULL, "add(x, x)");
    ctx_free(c);
}

static Tensor *scale_fn(Ctx *c, Tensor **in, void *u) { return op_scale(c, in[0], -1.75f); }
Test(scale, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 3, true)};
    expect_gradcheck(scale_fn, in, 1, NULL, NULL, "scale");
    ctx_free(c);
}

static Tensor *unary_fn(Ctx *c, Tensor **in, void *u) { return op_unary(c, (UnaryOp)(intptr_t)u, in[0]); }
Test(unary, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(4, 9), -2, 2, 4, true);
    // Keep relu's kink out of reach of the finite-difference step (1e-2).
    float *xd = x->data;
    for (int i = 0; i < 36; i++)
        if (fabsf(xd[i]) < 0.1f) xd[i] += xd[i] < 0 ? -0.1f : 0.1f;
    Tensor *in[1] = {x};
    for (int op = 0; op < UN_COUNT; op++)
        expect_gradcheck(unary_fn, in, 1, (void *)(intptr_t)op, NULL, hyp_unary_name((UnaryOp)op));
    ctx_free(c);
}

// The scratch contexts gradcheck makes all start at rng_offset 0, so every probe draws
// the same mask.
static Tensor *dropout_fn(Ctx *c, Tensor **in, void *u) {
    c->training = true;
    return op_dropout(c, in[0], 0.3f);
}
Test(dropout, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(5, 13), -1, 1, 6, true)};
    expect_gradcheck(dropout_fn, in, 1, NULL, NULL, "dropout");
    ctx_free(c);
}

typedef struct { float eps; bool affine; } LNArgs;
static Tensor *ln_fn(Ctx *c, Tensor **in, void *u) {
    LNArgs *a = u;
    return op_layernorm(c, in[0], a->affine ? in[1] : NULL, a->affine ? in[2] : NULL, a->eps);
}
Test(layernorm, gradcheck) {
    LNArgs args[] = {{1e-12f, true}, {1e-5f, true}, {1e-5f, false}, {1e-12f, false}};
    for (size_t i = 0; i < 4; i++) {
        Ctx *c = ctx_new(HYP_CPU);
        Tensor *in[3] = {tensor_rand(c, HYP_SHAPE(2, 3, 7), -2, 2, 30 + i, true),
                         tensor_rand(c, HYP_SHAPE(7), 0.5f, 1.5f, 40 + i, true),
                         tensor_rand(c, HYP_SHAPE(7), -1, 1, 50 + i, true)};
        char what[64];
        snprintf(what, sizeof what, "layernorm eps %g affine %d", (double)args[i].eps, args[i].affine);
        expect_gradcheck(ln_fn, in, args[i].affine ? 3 : 1, &args[i], NULL, what);
        ctx_free(c);
    }
}

static Tensor *aln_fn(Ctx *c, Tensor **in, void *u) {
    LNArgs *a = u;
    return op_add_layernorm(c, in[0], in[1], a->affine ? in[2] : NULL, a->affine ? in[3] : NULL, a->eps);
}
Test(add_layernorm, gradcheck) {
    LNArgs args[] = {{1e-12f, true}, {1e-5f, false}};
    for (size_t i = 0; i < 2; i++) {
        Ctx *c = ctx_new(HYP_CPU);
        Tensor *in[4] = {tensor_rand(c, HYP_SHAPE(3, 6), -1, 1, 60 + i, true),
                         tensor_rand(c, HYP_SHAPE(3, 6), -1, 1, 70 + i, true),
                         tensor_rand(c, HYP_SHAPE(6), 0.5f, 1.5f, 80 + i, true),
                         tensor_rand(c, HYP_SHAPE(6), -1, 1, 90 + i, true)};
        expect_gradcheck(aln_fn, in, args[i].affine ? 4 : 2, &args[i], NULL, "add_layernorm");
        // Only one of x / residual wants a gradient (the backward's direct path).
        in[1]->requires_grad = false;
        expect_gradcheck(aln_fn, in, args[i].affine ? 4 : 2, &args[i], NULL, "add_layernorm, x only");
        in[1]->requires_grad = true;
        in[0]->requires_grad = false;
        expect_gradcheck(aln_fn, in, args[i].affine ? 4 : 2, &args[i], NULL, "add_layernorm, residual only");
        ctx_free(c);
    }
}

// Dropout fused into add_layernorm: a fixed mask on every evaluation (offset reset), so the
// finite differences see one function; and bitwise op_add_layernorm(op_dropout(x)), forward
// and gradients, on every backend (x only, residual only, both).
static Tensor *daln_fn(Ctx *c, Tensor **in, void *u) {
    c->training = true, c->seed = 7, c->rng_offset = 3;
    return op_dropout_add_layernorm(c, in[0], in[1], in[2], in[3], 1e-12f, 0.3f);
}
Test(dropout_add_layernorm, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[4] = {tensor_rand(c, HYP_SHAPE(3, 6), -1, 1, 61, true), tensor_rand(c, HYP_SHAPE(3, 6), -1, 1, 71, true),
                     tensor_rand(c, HYP_SHAPE(6), 0.5f, 1.5f, 81, true), tensor_rand(c, HYP_SHAPE(6), -1, 1, 91, true)};
    expect_gradcheck(daln_fn, in, 4, NULL, NULL, "dropout_add_layernorm");
    in[1]->requires_grad = false;
    expect_gradcheck(daln_fn, in, 4, NULL, NULL, "dropout_add_layernorm, x only");
    ctx_free(c);
}
static void fused_vs_pair(Device dev, bool want_x, bool want_r) {
    float *out[2][4];
    for (int fused = 0; fused < 2; fused++) {
        Ctx *c = ctx_new(dev);
        c->training = true, c->seed = 11, c->rng_offset = 5;
        Tensor *x = tensor_rand(c, HYP_SHAPE(2, 9, 40), -1, 1, 1, want_x), *r = tensor_rand(c, HYP_SHAPE(2, 9, 40), -1, 1, 2, want_r),
               *w = tensor_rand(c, HYP_SHAPE(40), 0.5f, 1.5f, 3, true), *b = tensor_rand(c, HYP_SHAPE(40), -1, 1, 4, true);
        Tensor *y = fused ? op_dropout_add_layernorm(c, x, r, w, b, 1e-12f, 0.1f)
                          : op_add_layernorm(c, op_dropout(c, x, 0.1f), r, w, b, 1e-12f);
        cr_assert_eq(c->rng_offset, 5 + (2 * 9 * 40 + 3) / 4, "the fused op draws what dropout draws");
        backward_from(c, y, tensor_rand(c, HYP_SHAPE(2, 9, 40), -1, 1, 5, false));
        out[fused][0] = tensor_host_copy(y);
        out[fused][1] = want_x ? tensor_host_copy(x->grad) : NULL;
        out[fused][2] = want_r ? tensor_host_copy(r->grad) : NULL;
        out[fused][3] = tensor_host_copy(w->grad);
        ctx_free(c);
    }
    for (int t = 0; t < 4; t++) {
        if (!out[0][t]) continue;
        size_t n = t == 3 ? 40 : 2 * 9 * 40;
        cr_assert_eq(memcmp(out[0][t], out[1][t], n * sizeof(float)), 0, "%s: tensor %d differs", device_name(dev), t);
        free(out[0][t]), free(out[1][t]);
    }
}
static void fused_vs_pairs(Device dev) {
    fused_vs_pair(dev, true, true);
    fused_vs_pair(dev, true, false);
    fused_vs_pair(dev, false, true);
}
Test(dropout_add_layernorm, bitwise_the_pair_cpu) { fused_vs_pairs(HYP_CPU); }
Test(dropout_add_layernorm, bitwise_the_pair_cuda) { RUN_ON_CUDA_OR_SKIP(); fused_vs_pairs(HYP_CUDA); }

static Tensor *softmax_fn(Ctx *c, Tensor **in, void *u) { return op_softmax(c, in[0], u ? in[1] : NULL); }
Test(softmax, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    // Attention scores (B, H, Tq, Tk) masked by (B, Tk); batch 1 is fully padded.
    int32_t mask[] = {1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
    Tensor *in[2] = {tensor_rand(c, HYP_SHAPE(3, 2, 3, 5), -2, 2, 7, true), ids_tensor(c, mask, HYP_SHAPE(3, 5))};
    expect_gradcheck(softmax_fn, in, 2, (void *)1, NULL, "masked softmax");
    expect_gradcheck(softmax_fn, in, 1, NULL, NULL, "softmax");
    ctx_free(c);
}

// ---------------------------------------------------------------- dropout
// Random123's published known-answer vectors for philox4x32 with 10 rounds.
Test(dropout, philox4x32_10_known_answers) {
    struct { uint32_t ctr[4], key[2], want[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t c[4];
        memcpy(c, kat[i].ctr, sizeof c);
        hyp_philox4x32(c, kat[i].key[0], kat[i].key[1]);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(c[j], kat[i].want[j], "vector %d word %d: got %08x, want %08x", i, j, c[j], kat[i].want[j]);
    }
}

// Mask statistics, scaling, determinism in (seed, offset) and the backward, on one device.
static void check_dropout(Device dev) {
    const int n = 200000;
    const float p = 0.25f, keep_scale = 1.0f / (1.0f - p);
    Ctx *c = ctx_new(dev);
    c->training = true;
    c->seed = 1234;
    Tensor *x = tensor_rand(c, HYP_SHAPE(n), 0.5f, 1.5f, 11, true);   // never zero
    float *hx = tensor_host_copy(x);

    c->rng_offset = 0;
    Tensor *y1 = op_dropout(c, x, p);
    cr_assert_eq(c->rng_offset, (uint64_t)(n + 3) / 4, "dropout must advance rng_offset by ceil(n/4)");
    c->rng_offset = 0;
    Tensor *y2 = op_dropout(c, x, p);
    Tensor *y3 = op_dropout(c, x, p);   // offset now (n+3)/4: fresh numbers
    float *h1 = tensor_host_copy(y1), *h2 = tensor_host_copy(y2), *h3 = tensor_host_copy(y3);
    long kept = 0, differ = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(h1[i], h2[i], "element %d differs between two draws with the same seed and offset", i);
        if (h1[i] != 0) {
            kept++;
            float want = hx[i] * keep_scale;
            cr_assert(fabsf(h1[i] - want) <= 1e-6f * want, "kept element %d is %g, want x/(1-p) = %g", i, h1[i], want);
        }
        differ += (h1[i] != 0) != (h3[i] != 0);
    }
    // Binomial(n, 1-p): mean n(1-p), sd sqrt(n p (1-p)) ~ 194; allow 6 sd.
    double mean = n * (1.0 - p), sd = sqrt(n * p * (1.0 - p));
    cr_assert(fabs(kept - mean) < 6 * sd, "kept %ld of %d, expected %.0f +- %.0f", kept, n, mean, 6 * sd);
    // Two independent masks disagree on a fraction 2p(1-p) of the elements.
    double dmean = n * 2.0 * p * (1.0 - p);
    cr_assert(fabs(differ - dmean) < 6 * sqrt(dmean), "a new offset changed %ld mask entries, expected ~%.0f", differ, dmean);

    // Backward: gx = gy * mask / (1-p), accumulated over y1's node only.
    Tensor *gy = tensor_rand(c, HYP_SHAPE(n), -1, 1, 12, false);
    backward_from(c, y1, gy);
    float *hg = tensor_host_copy(x->grad), *hgy = tensor_host_copy(gy);
    for (int i = 0; i < n; i++) {
        float want = h1[i] != 0 ? hgy[i] * keep_scale : 0.0f;
        cr_assert(fabsf(hg[i] - want) <= 1e-6f * fabsf(want), "gx[%d] = %g, want %g", i, hg[i], want);
    }
    free(hx), free(h1), free(h2), free(h3), free(hg), free(hgy);
    ctx_free(c);
}
Test(dropout, mask_and_backward_cpu) { check_dropout(HYP_CPU); }
Test(dropout, mask_and_backward_cuda) { RUN_ON_CUDA_OR_SKIP(); check_dropout(HYP_CUDA); }

// The CPU kernel draws 16 Philox blocks at a time; every element must still be the spec's
// hyp_dropout_mult, whatever the start, length and counter offset (incl. a 2^32 carry).
Test(dropout, cpu_block_generator_equals_spec) {
    const long lens[] = {1, 3, 5, 63, 64, 65, 1023, DROP_CHUNK};
    const uint64_t starts[] = {0, 1, 2, 3, 61, 4096 + 7};
    const uint64_t offsets[] = {0, 77, 0xFFFFFFFFull - 5};
    float m[DROP_CHUNK];
    for (size_t a = 0; a < sizeof lens / sizeof *lens; a++)
        for (size_t b = 0; b < sizeof starts / sizeof *starts; b++)
            for (size_t o = 0; o < sizeof offsets / sizeof *offsets; o++) {
                cpu_dropout_mults(m, starts[b], lens[a], 0.3f, 0x123456789abcdefULL, offsets[o]);
                for (long i = 0; i < lens[a]; i++) {
                    float want = hyp_dropout_mult(0x123456789abcdefULL, offsets[o], starts[b] + (uint64_t)i, 0.3f);
                    cr_assert_eq(m[i], want, "start %llu len %ld offset %llu element %ld: %g, want %g",
                                 (unsigned long long)starts[b], lens[a], (unsigned long long)offsets[o], i, m[i], want);
                }
            }
}

// CPU and GPU draw the identical mask for the same (seed, offset).
Test(dropout, cuda_mask_matches_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    const int n = 10007;
    Ctx *cc = ctx_new(HYP_CPU), *cg = ctx_new(HYP_CUDA);
    cc->training = cg->training = true;
    cc->seed = cg->seed = 0x123456789abcdefULL;
    cc->rng_offset = cg->rng_offset = 77;
    Tensor *xc = tensor_rand(cc, HYP_SHAPE(n), 0.5f, 1.5f, 3, false);
    Tensor *xg = tensor_rand(cg, HYP_SHAPE(n), 0.5f, 1.5f, 3, false);
    float *yc = tensor_host_copy(op_dropout(cc, xc, 0.1f)), *yg = tensor_host_copy(op_dropout(cg, xg, 0.1f));
    for (int i = 0; i < n; i++)
        cr_assert((yc[i] == 0) == (yg[i] == 0), "element %d: cpu %g, cuda %g", i, yc[i], yg[i]);
    cr_assert(rel_err(yg, yc, n) <= 1e-6, "dropout outputs differ between cpu and cuda");
    free(yc), free(yg);
    ctx_free(cc), ctx_free(cg);
}

// Identity (the input itself, no random numbers drawn) when not training or p == 0.
Test(dropout, identity_when_inactive) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(4, 5), -1, 1, 1, true);
    c->training = false;
    cr_assert(op_dropout(c, x, 0.5f) == x);
    c->training = true;
    cr_assert(op_dropout(c, x, 0.0f) == x);
    cr_assert_eq(c->rng_offset, 0);
    ctx_free(c);
}

// ---------------------------------------------------------------- large sizes
// Sizes big enough for the OpenMP / multi-block paths, against plain double-precision
// references computed here: the reductions (broadcast gb, embedding scatter-add,
// layernorm gw/gb) must be race-free and complete.
static float *host_rand(size_t n, float lo, float hi, uint64_t seed) {
    float *h = hyp_malloc(n * sizeof(float));
    fill_uniform(h, n, lo, hi, seed);
    return h;
}
static void expect_host_close(const Tensor *got, const double *want, size_t n, const char *what) {
    float *g = tensor_host_copy(got), *w = hyp_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    double e = rel_err(g, w, n);
    free(g), free(w);
    cr_assert(e <= TOL_OP, "%s on %s: relative error %.3g > %.1g", what, device_name(got->device), e, TOL_OP);
}

static void check_large(Device dev) {
    Ctx *c = ctx_new(dev);
    // mul with b (D) broadcast over (R, D): gb sums over R rows.
    const int R = 300, D = 200;
    float *ha = host_rand((size_t)R * D, -1, 1, 1), *hb = host_rand(D, -1, 1, 2), *hg = host_rand((size_t)R * D, -1, 1, 3);
    Tensor *a = tensor_from_floats(c, ha, HYP_SHAPE(R, D), true), *b = tensor_from_floats(c, hb, HYP_SHAPE(D), true);
    Tensor *y = op_mul(c, a, b);
    backward_from(c, y, tensor_from_floats(c, hg, HYP_SHAPE(R, D), false));
    double *ry = hyp_calloc((size_t)R * D, sizeof(double)), *rga = hyp_calloc((size_t)R * D, sizeof(double));
    double *rgb = hyp_calloc(D, sizeof(double));
    for (int r = 0; r < R; r++)
        for (int j = 0; j < D; j++) {
            size_t i = (size_t)r * D + j;
            ry[i] = (double)ha[i] * hb[j];
            rga[i] = (double)hg[i] * hb[j];
            rgb[j] += (double)hg[i] * ha[i];
        }
    expect_host_close(y, ry, (size_t)R * D, "large mul y");
    expect_host_close(a->grad, rga, (size_t)R * D, "large mul g_a");
    expect_host_close(b->grad, rgb, D, "large mul g_b (broadcast reduction)");

    // embedding with many repeated ids.
    const int V = 50, N = 2000, E = 300;
    float *ht = host_rand((size_t)V * E, -1, 1, 4), *hge = host_rand((size_t)N * E, -1, 1, 5);
    int32_t *ids = hyp_malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) ids[i] = (i * 7) % V;
    Tensor *table = tensor_from_floats(c, ht, HYP_SHAPE(V, E), true);
    Tensor *it = tensor_new(c, HYP_I32, HYP_SHAPE(N));
    tensor_from_host(it, ids);
    Tensor *ye = op_embedding(c, table, it);
    backward_from(c, ye, tensor_from_floats(c, hge, HYP_SHAPE(N, E), false));
    double *rgt = hyp_calloc((size_t)V * E, sizeof(double));
    for (int i = 0; i < N; i++)
        for (int d = 0; d < E; d++) rgt[(size_t)ids[i] * E + d] += hge[(size_t)i * E + d];
    expect_host_close(table->grad, rgt, (size_t)V * E, "large embedding g_table (scatter-add)");

    // layernorm (rows 400, D 150) with affine: forward and all three gradients.
    const int LR = 400, LD = 150;
    float *hx = host_rand((size_t)LR * LD, -2, 3, 6), *hw = host_rand(LD, 0.5f, 1.5f, 7);
    float *hbb = host_rand(LD, -1, 1, 8), *hgl = host_rand((size_t)LR * LD, -1, 1, 9);
    Tensor *x = tensor_from_floats(c, hx, HYP_SHAPE(LR, LD), true);
    Tensor *w = tensor_from_floats(c, hw, HYP_SHAPE(LD), true), *bb = tensor_from_floats(c, hbb, HYP_SHAPE(LD), true);
    Tensor *yl = op_layernorm(c, x, w, bb, 1e-12f);
    backward_from(c, yl, tensor_from_floats(c, hgl, HYP_SHAPE(LR, LD), false));
    double *ryl = hyp_calloc((size_t)LR * LD, sizeof(double)), *rgx = hyp_calloc((size_t)LR * LD, sizeof(double));
    double *rgw = hyp_calloc(LD, sizeof(double)), *rgbb = hyp_calloc(LD, sizeof(double));
    double *xh = hyp_malloc(LD * sizeof(double));
    for (int r = 0; r < LR; r++) {
        const float *xr = hx + (size_t)r * LD, *gr = hgl + (size_t)r * LD;
        double m = 0, v = 0, sg = 0, sgx = 0;
        for (int d = 0; d < LD; d++) m += xr[d];
        m /= LD;
        for (int d = 0; d < LD; d++) v += (xr[d] - m) * (xr[d] - m);
        double rs = 1.0 / sqrt(v / LD + 1e-12);
        for (int d = 0; d < LD; d++) {
            xh[d] = (xr[d] - m) * rs;
            ryl[(size_t)r * LD + d] = xh[d] * hw[d] + hbb[d];
            rgw[d] += gr[d] * xh[d];
            rgbb[d] += gr[d];
            sg += gr[d] * hw[d];
            sgx += gr[d] * hw[d] * xh[d];
        }
        for (int d = 0; d < LD; d++)
            rgx[(size_t)r * LD + d] = rs * (gr[d] * hw[d] - sg / LD - xh[d] * sgx / LD);
    }
    expect_host_close(yl, ryl, (size_t)LR * LD, "large layernorm y");
    expect_host_close(x->grad, rgx, (size_t)LR * LD, "large layernorm g_x");
    expect_host_close(w->grad, rgw, LD, "large layernorm g_w");
    expect_host_close(bb->grad, rgbb, LD, "large layernorm g_b");

    free(ha), free(hb), free(hg), free(ry), free(rga), free(rgb);
    free(ht), free(hge), free(ids), free(rgt);
    free(hx), free(hw), free(hbb), free(hgl), free(ryl), free(rgx), free(rgw), free(rgbb), free(xh);
    ctx_free(c);
}
Test(basic, large_sizes_cpu) { check_large(HYP_CPU); }
Test(basic, large_sizes_cuda) { RUN_ON_CUDA_OR_SKIP(); check_large(HYP_CUDA); }

// ---------------------------------------------------------------- no_grad, accumulation
// In no_grad mode nothing is recorded, and gradients from two uses of a tensor add up.
Test(binary, no_grad_and_accumulation) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(2, 3), -1, 1, 1, true);
    no_grad_begin(c);
    Tensor *y0 = op_gelu(c, op_add(c, x, x));
    no_grad_end(c);
    cr_assert_eq(c->tape->n, 0);
    cr_assert(!y0->requires_grad);
    Tensor *y = op_add(c, op_scale(c, x, 2.0f), op_relu(c, x));
    float ones[6] = {1, 1, 1, 1, 1, 1};
    backward_from(c, y, tensor_from_floats(c, ones, HYP_SHAPE(2, 3), false));
    const float *xd = x->data, *g = x->grad->data;
    for (int i = 0; i < 6; i++) cr_assert_float_eq(g[i], 2.0f + (xd[i] > 0), 1e-6);
    ctx_free(c);
}

// ---------------------------------------------------------------- errors (exit status 2)
Test(binary, shape_error_not_suffix, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_add(c, tensor_rand(c, HYP_SHAPE(3, 5), -1, 1, 1, false), tensor_rand(c, HYP_SHAPE(3), -1, 1, 2, false));
}
Test(binary, shape_error_b_bigger, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_mul(c, tensor_rand(c, HYP_SHAPE(5), -1, 1, 1, false), tensor_rand(c, HYP_SHAPE(2, 5), -1, 1, 2, false));
}
Test(layernorm, shape_error_weight, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_layernorm(c, tensor_rand(c, HYP_SHAPE(2, 4), -1, 1, 1, false), tensor_rand(c, HYP_SHAPE(5), -1, 1, 2, false),
                 tensor_rand(c, HYP_SHAPE(5), -1, 1, 3, false), 1e-5f);
}
Test(layernorm, error_weight_without_bias, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_layernorm(c, tensor_rand(c, HYP_SHAPE(2, 4), -1, 1, 1, false), tensor_rand(c, HYP_SHAPE(4), -1, 1, 2, false),
                 NULL, 1e-5f);
}
Test(add_layernorm, shape_error_residual, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_add_layernorm(c, tensor_rand(c, HYP_SHAPE(2, 4), -1, 1, 1, false),
                     tensor_rand(c, HYP_SHAPE(3, 4), -1, 1, 2, false), NULL, NULL, 1e-5f);
}
Test(dropout_add_layernorm, error_probability_one, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    c->training = true;
    op_dropout_add_layernorm(c, tensor_rand(c, HYP_SHAPE(2, 4), -1, 1, 1, false),
                             tensor_rand(c, HYP_SHAPE(2, 4), -1, 1, 2, false), NULL, NULL, 1e-5f, 1.0f);
}
Test(act_linear, shape_error_weight, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_act_linear(c, UN_GELU, tensor_rand(c, HYP_SHAPE(2, 4), -1, 1, 1, false),
                  tensor_rand(c, HYP_SHAPE(3, 5), -1, 1, 2, false), NULL);
}

// op_act_linear by finite differences (every activation of the table, with and without bias),
// and bitwise op_linear(op_unary(z)) on every backend.
static Tensor *act_linear_nb_fn(Ctx *c, Tensor **in, void *u) {
    return op_act_linear(c, (UnaryOp)(intptr_t)u, in[0], in[1], NULL);
}
static Tensor *act_linear_b_fn(Ctx *c, Tensor **in, void *u) {
    return op_act_linear(c, (UnaryOp)(intptr_t)u, in[0], in[1], in[2]);
}
Test(act_linear, gradcheck) {
    for (int op = 0; op < UN_COUNT; op++) {
        Ctx *c = ctx_new(HYP_CPU);
        Tensor *in[3] = {tensor_rand(c, HYP_SHAPE(2, 3, 5), -1.5f, 1.5f, 40 + op, true),
                         tensor_rand(c, HYP_SHAPE(4, 5), -1, 1, 50 + op, true), tensor_rand(c, HYP_SHAPE(4), -1, 1, 60 + op, true)};
        char what[64];
        snprintf(what, sizeof what, "act_linear %s", hyp_unary_name((UnaryOp)op));
        expect_gradcheck(act_linear_b_fn, in, 3, (void *)(intptr_t)op, NULL, what);
        expect_gradcheck(act_linear_nb_fn, in, 2, (void *)(intptr_t)op, NULL, what);
        ctx_free(c);
    }
}
static void act_linear_vs_pair(Device dev) {
    for (int op = 0; op < UN_COUNT; op++) {
        float *out[2][4];
        for (int fused = 0; fused < 2; fused++) {
            Ctx *c = ctx_new(dev);
            c->matmul_precision = HYP_MATMUL_BF16;
            Tensor *z = tensor_rand(c, HYP_SHAPE(6, 33), -2, 2, 1, true), *w = tensor_rand(c, HYP_SHAPE(17, 33), -1, 1, 2, true),
                   *b = tensor_rand(c, HYP_SHAPE(17), -1, 1, 3, true);
            Tensor *y = fused ? op_act_linear(c, (UnaryOp)op, z, w, b) : op_linear(c, op_unary(c, (UnaryOp)op, z), w, b);
            backward_from(c, y, tensor_rand(c, HYP_SHAPE(6, 17), -1, 1, 4, false));
            out[fused][0] = tensor_host_copy(y), out[fused][1] = tensor_host_copy(z->grad);
            out[fused][2] = tensor_host_copy(w->grad), out[fused][3] = tensor_host_copy(b->grad);
            ctx_free(c);
        }
        const size_t n[4] = {6 * 17, 6 * 33, 17 * 33, 17};
        for (int t = 0; t < 4; t++) {
            cr_assert_eq(memcmp(out[0][t], out[1][t], n[t] * sizeof(float)), 0, "%s %s: tensor %d differs",
                         device_name(dev), hyp_unary_name((UnaryOp)op), t);
            free(out[0][t]), free(out[1][t]);
        }
    }
}
Test(act_linear, bitwise_the_pair_cpu) { act_linear_vs_pair(HYP_CPU); }
Test(act_linear, bitwise_the_pair_cuda) { RUN_ON_CUDA_OR_SKIP(); act_linear_vs_pair(HYP_CUDA); }

// A released buffer is what the next tensor of its size gets: the arena does not grow.
Test(tensor, release_reuses_the_buffer) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *a = tensor_new(c, HYP_F32, HYP_SHAPE(100, 7));
    void *p = a->data;
    size_t before;
    arena_peak(c->act, &before, NULL);
    tensor_release(c, a);
    cr_assert_null(a->data);
    Tensor *b = tensor_new(c, HYP_F32, HYP_SHAPE(7, 100));
    size_t after;
    arena_peak(c->act, &after, NULL);
    cr_assert_eq(b->data, p, "the same-size buffer is reused");
    cr_assert_eq(after, before, "no new arena bytes");
    Tensor *d = tensor_new(c, HYP_F32, HYP_SHAPE(3));   // another size: new bytes
    cr_assert_neq(d->data, p);
    ctx_free(c);
}

Test(softmax, shape_error_mask, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    int32_t m[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    op_softmax(c, tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 1, false), ids_tensor(c, m, HYP_SHAPE(4, 2)));
}
Test(embedding, error_id_out_of_range, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    int32_t ids[] = {0, 3, 5};   // V = 5
    op_embedding(c, tensor_rand(c, HYP_SHAPE(5, 2), -1, 1, 1, false), ids_tensor(c, ids, HYP_SHAPE(3)));
}
Test(embedding, error_negative_id, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    int32_t ids[] = {0, -1};
    op_embedding(c, tensor_rand(c, HYP_SHAPE(5, 2), -1, 1, 1, false), ids_tensor(c, ids, HYP_SHAPE(2)));
}
Test(embedding, error_float_ids, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    op_embedding(c, tensor_rand(c, HYP_SHAPE(5, 2), -1, 1, 1, false), tensor_rand(c, HYP_SHAPE(3), 0, 4, 2, false));
}
Test(dropout, error_p_one, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    c->training = true;
    op_dropout(c, tensor_rand(c, HYP_SHAPE(3), -1, 1, 1, false), 1.0f);
}

// hyp_cpu_flush_denormals reaches every thread of the OpenMP pool and can be undone.
static int denormal_products_on_all_threads(void) {
    int nonzero = 0;
    omp_set_num_threads(2);
#pragma omp parallel reduction(+ : nonzero)
    {
        volatile float a = 1e-30f, b = 1e-10f;
        float p = a * b;   // 1e-40: denormal
        nonzero += p != 0.0f;
    }
    return nonzero;
}
Test(cpu_backend, flush_denormals_on_every_thread) {
    bool was = hyp_cpu_flush_denormals(true);
    cr_assert_eq(denormal_products_on_all_threads(), 0, "a thread still produces denormals");
    cr_assert(hyp_cpu_flush_denormals(false), "the setting should read back as on");
    cr_assert_eq(denormal_products_on_all_threads(), 2, "flushing should be off again on both threads");
    hyp_cpu_flush_denormals(was);
}
