// Shape ops, reductions, losses and attention: PyTorch fixtures (CPU and CUDA), finite
// differences, shape errors, gradient accumulation and the tape.
#include "tests/testlib.h"
#include "kernels/elementwise.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// ---------------------------------------------------------------- fixture driver
// A builder loads one case's inputs from group g, runs the op and returns its output;
// it lists the inputs whose gradients the fixture holds (names[i] -> "g_<name>").
typedef struct {
    int n;
    Tensor *in[HYP_MAX_IN];
    char names[HYP_MAX_IN][16];
} FxInputs;
typedef Tensor *(*FxBuild)(Ctx *c, H5File *f, const char *g, FxInputs *xs);

static Tensor *fx_input(Ctx *c, H5File *f, const char *g, const char *name, FxInputs *xs) {
    Tensor *t = fx_tensor(c, f, g, name, true);
    xs->in[xs->n] = t;
    snprintf(xs->names[xs->n], sizeof xs->names[0], "%s", name);
    xs->n++;
    return t;
}

// Int dataset "<g>/<name>" into dst (at most HYP_MAX_DIMS entries); returns its length.
static int fx_ints(H5File *f, const char *g, const char *name, int *dst) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g, name);
    int nd, sh[HYP_MAX_DIMS];
    int32_t *v = h5_read_i32(f, p, &nd, sh);
    cr_assert(v && nd == 1 && sh[0] <= HYP_MAX_DIMS, "%s: %s", p, hyp_last_error());
    for (int i = 0; i < sh[0]; i++) dst[i] = v[i];
    free(v);
    return sh[0];
}

// Every case under /<op>: forward output and every input gradient at TOL_OP.
static void run_fixtures(Device dev, const char *op, FxBuild build) {
    H5File *f = fx_open("ops_shape.h5");
    char root[64], **names;
    snprintf(root, sizeof root, "/%s", op);
    int n = h5_list(f, root, &names);
    cr_assert(n > 0, "%s: %s", root, hyp_last_error());
    for (int i = 0; i < n; i++) {
        char g[256];
        snprintf(g, sizeof g, "%s/%s", root, names[i]);
        Ctx *c = ctx_new(dev);
        FxInputs xs = {0};
        Tensor *y = build(c, f, g, &xs);
        cr_assert_eq(y->device, dev, "%s: output on the wrong device", g);
        expect_fixture(y, f, g, "y", TOL_OP);
        backward_from(c, y, fx_tensor(c, f, g, "gy", false));
        for (int k = 0; k < xs.n; k++) {
            char gname[32];
            snprintf(gname, sizeof gname, "g_%s", xs.names[k]);
            expect_fixture(xs.in[k]->grad, f, g, gname, TOL_OP);
        }
        ctx_free(c);
        free(names[i]);
    }
    free(names);
    h5_close(f);
}

static Tensor *build_reshape(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *x = fx_input(c, f, g, "x", xs);
    int shape[HYP_MAX_DIMS];
    int nd = fx_ints(f, g, "shape", shape);
    Tensor *y = op_reshape(c, x, nd, shape);
    cr_assert_eq(y->data, x->data, "%s: reshape must share x's data", g);
    return y;
}
static Tensor *build_transpose(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *x = fx_input(c, f, g, "x", xs);
    return op_transpose(c, x, fx_attr_int(f, g, "d0"), fx_attr_int(f, g, "d1"));
}
static Tensor *build_permute(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *x = fx_input(c, f, g, "x", xs);
    int perm[HYP_MAX_DIMS];
    cr_assert_eq(fx_ints(f, g, "perm", perm), x->ndim);
    return op_permute(c, x, perm);
}
static Tensor *build_slice(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *x = fx_input(c, f, g, "x", xs);
    return op_slice(c, x, fx_attr_int(f, g, "dim"), fx_attr_int(f, g, "start"), fx_attr_int(f, g, "len"));
}
static Tensor *build_concat(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    int n = fx_attr_int(f, g, "n");
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        fx_input(c, f, g, name, xs);
    }
    return op_concat(c, xs->in, n, fx_attr_int(f, g, "dim"));
}
static Tensor *build_sum(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    return op_sum(c, fx_input(c, f, g, "x", xs));
}
static Tensor *build_mean(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    return op_mean(c, fx_input(c, f, g, "x", xs));
}
static Tensor *build_cross_entropy(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *logits = fx_input(c, f, g, "logits", xs);
    return op_cross_entropy(c, logits, fx_tensor(c, f, g, "targets", false));
}
static Tensor *build_mse(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *a = fx_input(c, f, g, "a", xs), *b = fx_input(c, f, g, "b", xs);
    return op_mse(c, a, b);
}
static Tensor *build_attention(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *q = fx_input(c, f, g, "q", xs), *k = fx_input(c, f, g, "k", xs), *v = fx_input(c, f, g, "v", xs);
    Tensor *mask = fx_has(f, g, "mask") ? fx_tensor(c, f, g, "mask", false) : NULL;
    double scale;
    cr_assert(h5_read_attr_f64(f, g, "scale", &scale) == 0);
    return op_attention(c, q, k, v, mask, fx_attr_int(f, g, "heads"), (float)scale);
}
// loss = CE(linear(x, w, b), t) + mse(slice(transpose(logits), 0, 1, 2), target) + mean(concat(x, x, 1))
static Tensor *composite_loss(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *t, Tensor *target) {
    Tensor *logits = op_linear(c, x, w, b);
    Tensor *ce = op_cross_entropy(c, logits, t);
    Tensor *m = op_mse(c, op_slice(c, op_transpose(c, logits, 0, 1), 0, 1, 2), target);
    Tensor *xx = op_concat(c, (Tensor *[]){x, x}, 2, 1);
    return op_add(c, op_add(c, ce, m), op_mean(c, xx));
}
static Tensor *build_composite(Ctx *c, H5File *f, const char *g, FxInputs *xs) {
    Tensor *x = fx_input(c, f, g, "x", xs), *w = fx_input(c, f, g, "w", xs), *b = fx_input(c, f, g, "b", xs);
    Tensor *target = fx_input(c, f, g, "target", xs);
    return composite_loss(c, x, w, b, fx_tensor(c, f, g, "t", false), target);
}

#define FIXTURE_TESTS(op)                                                        \
    Test(op, fixtures_cpu) { run_fixtures(HYP_CPU, #op, build_##op); }          \
    Test(op, fixtures_cuda) { RUN_ON_CUDA_OR_SKIP(); run_fixtures(HYP_CUDA, #op, build_##op); }
FIXTURE_TESTS(reshape)
FIXTURE_TESTS(transpose)
FIXTURE_TESTS(permute)
FIXTURE_TESTS(slice)
FIXTURE_TESTS(concat)
FIXTURE_TESTS(sum)
FIXTURE_TESTS(mean)
FIXTURE_TESTS(cross_entropy)
FIXTURE_TESTS(mse)
FIXTURE_TESTS(attention)

// ---------------------------------------------------------------- finite differences
static Tensor *gc_reshape(Ctx *c, Tensor **in, void *u) { return op_reshape(c, in[0], HYP_SHAPE(4, -1)); }
static Tensor *gc_transpose(Ctx *c, Tensor **in, void *u) { return op_transpose(c, in[0], 0, 2); }
static Tensor *gc_permute(Ctx *c, Tensor **in, void *u) { return op_permute(c, in[0], (int[]){2, 0, 3, 1}); }
static Tensor *gc_slice(Ctx *c, Tensor **in, void *u) { return op_slice(c, in[0], 1, 1, 2); }
static Tensor *gc_concat(Ctx *c, Tensor **in, void *u) { return op_concat(c, in, 3, 1); }
static Tensor *gc_sum(Ctx *c, Tensor **in, void *u) { return op_sum(c, in[0]); }
static Tensor *gc_mean(Ctx *c, Tensor **in, void *u) { return op_mean(c, in[0]); }
static Tensor *gc_ce(Ctx *c, Tensor **in, void *u) { return op_cross_entropy(c, in[0], in[1]); }
static Tensor *gc_mse(Ctx *c, Tensor **in, void *u) { return op_mse(c, in[0], in[1]); }
// user != NULL: in[3] is the mask (gradcheck takes no NULL inputs).
static Tensor *gc_attention(Ctx *c, Tensor **in, void *u) {
    return op_attention(c, in[0], in[1], in[2], u ? in[3] : NULL, 2, 0.7f);
}
static Tensor *gc_self_attention(Ctx *c, Tensor **in, void *u) { return op_attention(c, in[0], in[0], in[0], in[1], 3, 0.5f); }

Test(reshape, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 1, true)};
    expect_gradcheck(gc_reshape, in, 1, NULL, NULL, "reshape");
    ctx_free(c);
}
Test(transpose, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 2, true)};
    expect_gradcheck(gc_transpose, in, 1, NULL, NULL, "transpose");
    ctx_free(c);
}
Test(permute, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(2, 3, 1, 5), -1, 1, 3, true)};
    expect_gradcheck(gc_permute, in, 1, NULL, NULL, "permute");
    ctx_free(c);
}
Test(slice, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(3, 4, 2), -1, 1, 4, true)};
    expect_gradcheck(gc_slice, in, 1, NULL, NULL, "slice");
    ctx_free(c);
}
Test(concat, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[3] = {tensor_rand(c, HYP_SHAPE(2, 1, 3), -1, 1, 5, true),
                     tensor_rand(c, HYP_SHAPE(2, 3, 3), -1, 1, 6, true),
                     tensor_rand(c, HYP_SHAPE(2, 2, 3), -1, 1, 7, true)};
    expect_gradcheck(gc_concat, in, 3, NULL, NULL, "concat");
    ctx_free(c);
}
Test(sum, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(3, 5), -1, 1, 8, true)};
    expect_gradcheck(gc_sum, in, 1, NULL, NULL, "sum");
    ctx_free(c);
}
Test(mean, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[1] = {tensor_rand(c, HYP_SHAPE(3, 5), -1, 1, 9, true)};
    expect_gradcheck(gc_mean, in, 1, NULL, NULL, "mean");
    ctx_free(c);
}
Test(cross_entropy, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *t = tensor_new(c, HYP_I32, HYP_SHAPE(5));
    memcpy(t->data, (int32_t[]){3, 0, 6, 2, 3}, 5 * sizeof(int32_t));
    Tensor *in[2] = {tensor_rand(c, HYP_SHAPE(5, 7), -2, 2, 10, true), t};
    expect_gradcheck(gc_ce, in, 2, NULL, NULL, "cross_entropy (logits)");
    ctx_free(c);
}
Test(mse, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[2] = {tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 11, true),
                     tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 12, true)};
    expect_gradcheck(gc_mse, in, 2, NULL, NULL, "mse");
    ctx_free(c);
}
Test(attention, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    // B=2, Tq=3, Tk=4, H=2, dh=3; batch 1 pads its last key.
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(2, 4));
    memcpy(mask->data, (int32_t[]){1, 1, 1, 1, 1, 1, 1, 0}, 8 * sizeof(int32_t));
    Tensor *in[4] = {tensor_rand(c, HYP_SHAPE(2, 3, 6), -1, 1, 13, true),
                     tensor_rand(c, HYP_SHAPE(2, 4, 6), -1, 1, 14, true),
                     tensor_rand(c, HYP_SHAPE(2, 4, 6), -1, 1, 15, true), mask};
    expect_gradcheck(gc_attention, in, 4, mask, NULL, "attention");
    expect_gradcheck(gc_attention, in, 3, NULL, NULL, "attention without mask");
    // Only k needs a gradient (q and v are constants).
    in[0]->requires_grad = in[2]->requires_grad = false;
    expect_gradcheck(gc_attention, in, 4, mask, NULL, "attention, gradient for k only");
    ctx_free(c);
}
// Attention-probability dropout: the same mask on every evaluation (offset reset), so the
// finite differences see one fixed function.
static Tensor *gc_attention_dropout(Ctx *c, Tensor **in, void *u) {
    c->training = true, c->seed = 99, c->rng_offset = 5;
    return op_attention_dropout(c, in[0], in[1], in[2], in[3], 2, 0.7f, 0.3f);
}
Test(attention, gradcheck_dropout) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(2, 4));
    memcpy(mask->data, (int32_t[]){1, 1, 1, 1, 1, 0, 1, 1}, 8 * sizeof(int32_t));
    Tensor *in[4] = {tensor_rand(c, HYP_SHAPE(2, 3, 6), -1, 1, 17, true),
                     tensor_rand(c, HYP_SHAPE(2, 4, 6), -1, 1, 18, true),
                     tensor_rand(c, HYP_SHAPE(2, 4, 6), -1, 1, 19, true), mask};
    expect_gradcheck(gc_attention_dropout, in, 4, NULL, NULL, "attention with dropout");
    ctx_free(c);
}
// The forward against plain loops: head split, scale, masked softmax, and dropout element
// ((b*H + h)*Tq + i)*Tk + j of Philox (seed, offset) on the probabilities, as every backend draws it.
static void check_attention_dropout_loops(Device dev) {
    enum { B = 2, Tq = 5, Tk = 7, H = 3, dh = 4, D = H * dh };
    const float scale = 0.6f, p = 0.25f;
    Ctx *c = ctx_new(dev);
    c->training = true, c->seed = 4242, c->rng_offset = 11;
    int32_t hm[B * Tk] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0};
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(B, Tk));
    tensor_from_host(mask, hm);
    Tensor *q = tensor_rand(c, HYP_SHAPE(B, Tq, D), -1, 1, 20, false), *k = tensor_rand(c, HYP_SHAPE(B, Tk, D), -1, 1, 21, false),
           *v = tensor_rand(c, HYP_SHAPE(B, Tk, D), -1, 1, 22, false);
    float *y = tensor_host_copy(op_attention_dropout(c, q, k, v, mask, H, scale, p));
    cr_assert_eq(c->rng_offset, 11 + (uint64_t)(B * H * Tq * Tk + 3) / 4);
    float *hq = tensor_host_copy(q), *hk = tensor_host_copy(k), *hv = tensor_host_copy(v);
    float want[B * Tq * D];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                double s[Tk], mx = -1e30, sum = 0;
                for (int j = 0; j < Tk; j++) {
                    s[j] = 0;
                    for (int e = 0; e < dh; e++) s[j] += (double)hq[(b * Tq + i) * D + h * dh + e] * hk[(b * Tk + j) * D + h * dh + e];
                    s[j] *= scale;
                    if (hm[b * Tk + j] && s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < Tk; j++) sum += s[j] = hm[b * Tk + j] ? exp(s[j] - mx) : 0.0;
                for (int e = 0; e < dh; e++) {
                    double acc = 0;
                    for (int j = 0; j < Tk; j++) {
                        uint64_t idx = (uint64_t)(((b * H + h) * Tq + i) * Tk + j);
                        acc += s[j] / sum * hyp_dropout_mult(4242, 11, idx, p) * hv[(b * Tk + j) * D + h * dh + e];
                    }
                    want[(b * Tq + i) * D + h * dh + e] = (float)acc;
                }
            }
    for (int i = 0; i < B * Tq * D; i++)
        cr_assert(fabsf(y[i] - want[i]) <= 1e-5f * (1 + fabsf(want[i])), "y[%d] = %g, want %g", i, y[i], want[i]);
    free(y), free(hq), free(hk), free(hv);
    ctx_free(c);
}
Test(attention, dropout_matches_loops_cpu) { check_attention_dropout_loops(HYP_CPU); }
Test(attention, dropout_matches_loops_cuda) { RUN_ON_CUDA_OR_SKIP(); check_attention_dropout_loops(HYP_CUDA); }

// CUDA's fused kernels (tiles of 64 x 32 queries x keys, tensor cores in bf16) against the
// CPU spec, forward and all three gradients, with padding (one batch row fully padded in the
// first case) and dropout. Shapes cross the tiles: odd lengths, a head dim padded to the
// tile (40 -> 48), one query, 512 tokens. fp32: every element to TOL_OP. bf16: both round
// q, k, v, dy, the dropped probabilities and dS to bf16 and accumulate in fp32, in another
// order, so a dS element may round to the neighbouring bf16 value on one side; dq and dk
// cancel heavily, so such a flip is large next to an element but not next to the tensor:
// relative L2 error to TOL_BF16.
typedef struct { int B, Tq, Tk, H, dh; float p; int pad; } AttnCase;
static const AttnCase ATTN_CASES[] = {
    {2, 37, 70, 2, 40, 0.1f, 70},   // batch 1 fully padded: its rows are 0, lse -inf, no gradient
    {3, 1, 9, 2, 8, 0.0f, 4},       // a single query
    {1, 65, 33, 3, 24, 0.2f, 5},    // Tq just past a forward tile, Tk past a key tile
    {1, 512, 512, 1, 16, 0.1f, 100},
};
static void attention_on(Device dev, const AttnCase *k, MatmulPrecision prec, float *out[4]) {
    Ctx *c = ctx_new(dev);
    c->matmul_precision = prec, c->training = true, c->seed = 77, c->rng_offset = 3;
    const int D = k->H * k->dh;
    int32_t *hm = hyp_malloc((size_t)k->B * k->Tk * sizeof(int32_t));
    for (int b = 0; b < k->B; b++)   // the last batch row pads its last `pad` keys
        for (int j = 0; j < k->Tk; j++) hm[b * k->Tk + j] = !(b == k->B - 1 && j >= k->Tk - k->pad);
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(k->B, k->Tk));
    tensor_from_host(mask, hm);
    Tensor *q = tensor_rand(c, HYP_SHAPE(k->B, k->Tq, D), -2, 2, 31, true),
           *kk = tensor_rand(c, HYP_SHAPE(k->B, k->Tk, D), -2, 2, 32, true),
           *v = tensor_rand(c, HYP_SHAPE(k->B, k->Tk, D), -1, 1, 33, true),
           *w = tensor_rand(c, HYP_SHAPE(k->B, k->Tq, D), -1, 1, 34, false);
    Tensor *y = op_attention_dropout(c, q, kk, v, mask, k->H, 1.0f / sqrtf((float)k->dh), k->p);
    backward(c, op_sum(c, op_mul(c, y, w)));
    out[0] = tensor_host_copy(y), out[1] = tensor_host_copy(q->grad), out[2] = tensor_host_copy(kk->grad),
    out[3] = tensor_host_copy(v->grad);
    free(hm);
    ctx_free(c);
}
static void check_attention_cuda_vs_cpu(MatmulPrecision prec, double tol) {
    static const char *what[4] = {"y", "dq", "dk", "dv"};
    for (size_t ci = 0; ci < sizeof ATTN_CASES / sizeof *ATTN_CASES; ci++) {
        const AttnCase *k = &ATTN_CASES[ci];
        float *cpu[4], *gpu[4];
        attention_on(HYP_CPU, k, prec, cpu);
        attention_on(HYP_CUDA, k, prec, gpu);
        for (int t = 0; t < 4; t++) {
            size_t n = (size_t)k->B * (t == 0 || t == 1 ? k->Tq : k->Tk) * k->H * k->dh;
            const bool bf16 = prec == HYP_MATMUL_BF16;
            const double e = rel_err(gpu[t], cpu[t], n);
            cr_assert(e <= tol, "case %zu %s %s: relative error %.3g", ci, bf16 ? "bf16" : "fp32", what[t], e);
            for (size_t i = 0; i < n && !bf16; i++)
                cr_assert(fabs(gpu[t][i] - cpu[t][i]) <= tol * (1 + fabs(cpu[t][i])), "case %zu fp32 %s[%zu]: cuda %g, cpu %g",
                          ci, what[t], i, gpu[t][i], cpu[t][i]);
            if (bf16) fprintf(stderr, "attention case %zu bf16 %s: cuda vs cpu relative error %.3g\n", ci, what[t], e);
            if (ci == 0)   // the fully padded batch row: no output, no gradient for its queries
                for (size_t i = n / 2; i < n && t <= 1; i++) cr_assert_eq(gpu[t][i], 0.0f, "%s[%zu]", what[t], i);
            free(cpu[t]), free(gpu[t]);
        }
    }
}
Test(attention, cuda_equals_cpu_fp32) { RUN_ON_CUDA_OR_SKIP(); check_attention_cuda_vs_cpu(HYP_MATMUL_F32, TOL_OP); }
Test(attention, cuda_equals_cpu_bf16) { RUN_ON_CUDA_OR_SKIP(); check_attention_cuda_vs_cpu(HYP_MATMUL_BF16, TOL_BF16); }

// The CUDA backward is two kernels with no atomics: two runs are bitwise equal.
Test(attention, cuda_backward_is_repeatable) {
    RUN_ON_CUDA_OR_SKIP();
    const AttnCase *k = &ATTN_CASES[2];
    float *a[4], *b[4];
    attention_on(HYP_CUDA, k, HYP_MATMUL_BF16, a);
    attention_on(HYP_CUDA, k, HYP_MATMUL_BF16, b);
    for (int t = 0; t < 4; t++) {
        size_t n = (size_t)k->B * (t <= 1 ? k->Tq : k->Tk) * k->H * k->dh;
        cr_assert_eq(memcmp(a[t], b[t], n * sizeof(float)), 0, "tensor %d differs between two runs", t);
        free(a[t]), free(b[t]);
    }
}

Test(attention, gradcheck_self) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(2, 3));
    memcpy(mask->data, (int32_t[]){1, 1, 1, 1, 0, 0}, 6 * sizeof(int32_t));
    Tensor *in[2] = {tensor_rand(c, HYP_SHAPE(2, 3, 6), -1, 1, 16, true), mask};
    expect_gradcheck(gc_self_attention, in, 2, NULL, NULL, "self-attention (q = k = v)");
    ctx_free(c);
}

// ---------------------------------------------------------------- shape errors (exit 2)
#define SHAPE_ERROR_TEST(suite, name, ...)                 \
    Test(suite, name, .exit_code = 2) {                     \
        Ctx *c = ctx_new(HYP_CPU);                          \
        Tensor *a = tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 1, true); \
        (void)a;                                            \
        __VA_ARGS__;                                        \
    }
SHAPE_ERROR_TEST(reshape, numel_mismatch, op_reshape(c, a, HYP_SHAPE(5, 5)))
SHAPE_ERROR_TEST(reshape, two_inferred_dims, op_reshape(c, a, HYP_SHAPE(-1, -1)))
SHAPE_ERROR_TEST(reshape, indivisible, op_reshape(c, a, HYP_SHAPE(5, -1)))
SHAPE_ERROR_TEST(transpose, dim_out_of_range, op_transpose(c, a, 0, 3))
SHAPE_ERROR_TEST(permute, not_a_permutation, op_permute(c, a, (int[]){0, 1, 1}))
SHAPE_ERROR_TEST(slice, past_the_end, op_slice(c, a, 2, 2, 3))
SHAPE_ERROR_TEST(slice, bad_dim, op_slice(c, a, 3, 0, 1))
SHAPE_ERROR_TEST(concat, other_dims_differ,
                 op_concat(c, (Tensor *[]){a, tensor_rand(c, HYP_SHAPE(2, 4, 4), -1, 1, 2, true)}, 2, 0))
SHAPE_ERROR_TEST(concat, ranks_differ,
                 op_concat(c, (Tensor *[]){a, tensor_rand(c, HYP_SHAPE(2, 3), -1, 1, 2, true)}, 2, 0))
SHAPE_ERROR_TEST(mse, shapes_differ, op_mse(c, a, tensor_rand(c, HYP_SHAPE(2, 4, 3), -1, 1, 2, true)))
SHAPE_ERROR_TEST(cross_entropy, targets_rows_differ,
                 op_cross_entropy(c, tensor_rand(c, HYP_SHAPE(4, 3), -1, 1, 2, true), tensor_zeros(c, HYP_I32, HYP_SHAPE(5))))
SHAPE_ERROR_TEST(cross_entropy, float_targets,
                 op_cross_entropy(c, tensor_rand(c, HYP_SHAPE(4, 3), -1, 1, 2, true), tensor_rand(c, HYP_SHAPE(4), 0, 1, 3, false)))
SHAPE_ERROR_TEST(attention, heads_do_not_divide, op_attention(c, a, a, a, NULL, 3, 1.0f))
SHAPE_ERROR_TEST(attention, kv_differ,
                 op_attention(c, a, a, tensor_rand(c, HYP_SHAPE(2, 2, 4), -1, 1, 2, true), NULL, 2, 1.0f))
SHAPE_ERROR_TEST(attention, mask_shape, op_attention(c, a, a, a, tensor_zeros(c, HYP_I32, HYP_SHAPE(2, 4)), 2, 1.0f))

// Targets outside [0, C) are rejected on the host, on every backend.
static void ce_bad_target(Device dev, int32_t bad) {
    Ctx *c = ctx_new(dev);
    Tensor *x = tensor_rand(c, HYP_SHAPE(3, 4), -1, 1, 1, true);
    Tensor *t = tensor_new(c, HYP_I32, HYP_SHAPE(3));
    tensor_from_host(t, (int32_t[]){0, bad, 1});
    op_cross_entropy(c, x, t);
}
Test(cross_entropy, target_too_large, .exit_code = 2) { ce_bad_target(HYP_CPU, 4); }
Test(cross_entropy, target_negative, .exit_code = 2) { ce_bad_target(HYP_CPU, -1); }
// A skipped test cannot also expect exit code 2, so the CUDA variant runs in a child
// process that probes for the GPU itself (the parent never touches CUDA before fork).
Test(cross_entropy, target_too_large_cuda) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        if (!hyp_cuda_available()) _exit(77);
        ce_bad_target(HYP_CUDA, 4);
        _exit(0);
    }
    int status;
    cr_assert(waitpid(pid, &status, 0) == pid);
    cr_assert(WIFEXITED(status), "the child died from a signal");
    if (WEXITSTATUS(status) == 77)
        cr_skip_test("no CUDA device (%s build): the CUDA variant of this test is skipped", hyp_backends_compiled());
    cr_assert_eq(WEXITSTATUS(status), 2, "bad target on CUDA: exit status %d, want 2", WEXITSTATUS(status));
}

// ---------------------------------------------------------------- accumulation
// One tensor used several times: every use adds into its gradient.
static void shared_input_accumulates(Device dev) {
    Ctx *c = ctx_new(dev);
    Tensor *x = tensor_rand(c, HYP_SHAPE(3, 4), -1, 1, 21, true);
    // sum(concat(x, x)) + sum(slice(x, rows 1..2)) + sum(reshape(x)) + mse(x, x) (= 0, gradient 0)
    Tensor *s1 = op_sum(c, op_concat(c, (Tensor *[]){x, x}, 2, 0));
    Tensor *s2 = op_sum(c, op_slice(c, x, 0, 1, 2));
    Tensor *s3 = op_sum(c, op_reshape(c, x, HYP_SHAPE(-1)));
    Tensor *loss = op_add(c, op_add(c, op_add(c, s1, s2), s3), op_mse(c, x, x));
    backward(c, loss);
    float *g = tensor_host_copy(x->grad);
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 4; j++) {
            float want = r >= 1 ? 4.0f : 3.0f;
            cr_assert_float_eq(g[r * 4 + j], want, 1e-6, "x.grad[%d][%d] = %g, want %g", r, j, g[r * 4 + j], want);
        }
    free(g);
    ctx_free(c);
}
Test(tape, shared_input_accumulates_cpu) { shared_input_accumulates(HYP_CPU); }
Test(tape, shared_input_accumulates_cuda) { RUN_ON_CUDA_OR_SKIP(); shared_input_accumulates(HYP_CUDA); }

// attention(x, x, x) has the gradient of attention(q, k, v) summed over q, k and v.
static void self_attention_sums_grads(Device dev) {
    Ctx *c = ctx_new(dev);
    Tensor *x = tensor_rand(c, HYP_SHAPE(2, 5, 12), -1, 1, 31, true);
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(2, 5));
    tensor_from_host(mask, (int32_t[]){1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
    Tensor *qkv[3];
    for (int i = 0; i < 3; i++) qkv[i] = tensor_rand(c, HYP_SHAPE(2, 5, 12), -1, 1, 31, true);   // copies of x
    Tensor *gy = tensor_rand(c, HYP_SHAPE(2, 5, 12), -1, 1, 32, false);
    backward_from(c, op_attention(c, x, x, x, mask, 3, 0.5f), gy);
    backward_from(c, op_attention(c, qkv[0], qkv[1], qkv[2], mask, 3, 0.5f), gy);
    Tensor *sum = op_add(c, op_add(c, qkv[0]->grad, qkv[1]->grad), qkv[2]->grad);
    expect_close(x->grad, sum, 1e-6, "self-attention gradient vs q + k + v gradients");
    ctx_free(c);
}
Test(attention, self_attention_sums_grads_cpu) { self_attention_sums_grads(HYP_CPU); }
Test(attention, self_attention_sums_grads_cuda) { RUN_ON_CUDA_OR_SKIP(); self_attention_sums_grads(HYP_CUDA); }

// ---------------------------------------------------------------- tape
Test(tape, no_grad_records_no_shape_ops) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(2, 3, 6), -1, 1, 41, true);
    Tensor *t = tensor_zeros(c, HYP_I32, HYP_SHAPE(6));
    no_grad_begin(c);
    Tensor *outs[] = {
        op_reshape(c, x, HYP_SHAPE(6, -1)), op_transpose(c, x, 0, 1), op_permute(c, x, (int[]){2, 1, 0}),
        op_slice(c, x, 2, 1, 3), op_concat(c, (Tensor *[]){x, x}, 2, 1), op_sum(c, x), op_mean(c, x),
        op_cross_entropy(c, op_reshape(c, x, HYP_SHAPE(6, 6)), t), op_mse(c, x, x),
        op_attention(c, x, x, x, NULL, 2, 0.5f),
    };
    no_grad_end(c);
    cr_assert_eq(c->tape->n, 0, "%d nodes recorded under no_grad", c->tape->n);
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        cr_assert(!outs[i]->requires_grad, "output %zu requires grad under no_grad", i);
    // Recording resumes after the scope.
    op_sum(c, x);
    cr_assert_eq(c->tape->n, 1);
    ctx_free(c);
}

// backward() from a loss built of several ops matches PyTorch's gradients.
static void composite_matches_torch(Device dev) {
    H5File *f = fx_open("ops_shape.h5");
    const char *g = "/composite/ce_linear_mse";
    Ctx *c = ctx_new(dev);
    FxInputs xs = {0};
    Tensor *loss = build_composite(c, f, g, &xs);
    expect_fixture(loss, f, g, "y", TOL_OP);
    backward(c, loss);
    for (int k = 0; k < xs.n; k++) {
        char gname[32];
        snprintf(gname, sizeof gname, "g_%s", xs.names[k]);
        expect_fixture(xs.in[k]->grad, f, g, gname, TOL_OP);
    }
    ctx_free(c);
    h5_close(f);
}
Test(tape, composite_matches_torch_cpu) { composite_matches_torch(HYP_CPU); }
Test(tape, composite_matches_torch_cuda) { RUN_ON_CUDA_OR_SKIP(); composite_matches_torch(HYP_CUDA); }

// ---- attention with dropout on the probabilities (BERT's attention_probs_dropout)
static Tensor *attn_drop_fn(Ctx *c, Tensor **in, void *u) {
    (void)u;
    c->training = true;   // every scratch context starts at the same seed/offset: same mask
    return op_attention_dropout(c, in[0], in[1], in[2], in[3], 2, 0.5f, 0.3f);
}

Test(attention, dropout_gradcheck_and_mask_reuse) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *q = tensor_rand(c, HYP_SHAPE(2, 3, 4), -1, 1, 11, true);
    Tensor *k = tensor_rand(c, HYP_SHAPE(2, 5, 4), -1, 1, 12, true);
    Tensor *v = tensor_rand(c, HYP_SHAPE(2, 5, 4), -1, 1, 13, true);
    Tensor *m = tensor_new(c, HYP_I32, HYP_SHAPE(2, 5));
    int32_t mh[10] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    tensor_from_host(m, mh);
    Tensor *in[4] = {q, k, v, m};
    expect_gradcheck(attn_drop_fn, in, 4, NULL, NULL, "attention with probs dropout");

    // Training output differs from eval output, eval equals plain attention, and the
    // random stream advanced.
    Ctx *d = ctx_new(HYP_CPU);
    Tensor *plain = op_attention(d, q, k, v, m, 2, 0.5f);
    Tensor *eval = op_attention_dropout(d, q, k, v, m, 2, 0.5f, 0.3f);
    expect_close(eval, plain, 0, "eval-mode attention dropout is the identity");
    cr_assert_eq(d->rng_offset, 0);
    d->training = true;
    Tensor *tr = op_attention_dropout(d, q, k, v, m, 2, 0.5f, 0.3f);
    cr_assert_gt(d->rng_offset, 0);
    cr_assert_gt(rel_err(tr->data, plain->data, tensor_numel(tr)), 1e-3, "dropout changed nothing");
    ctx_free(d);
    ctx_free(c);
}
