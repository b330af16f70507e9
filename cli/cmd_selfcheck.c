// hyp selfcheck: a short end-to-end check of the build on every available backend:
// a two-layer network's loss decreases under plain gradient descent, its gradients
// pass a finite-difference check, and CUDA (when present) agrees with the CPU.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "autograd/gradcheck.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

typedef struct { Tensor *w1, *b1, *w2, *b2; } Net;

static Tensor *loss_fn(Ctx *c, Tensor **in, void *user) {
    // in: x (8,6), w1 (16,6), b1 (16), w2 (4,16), b2 (4), targets (8) i32
    Tensor *h = op_gelu(c, op_layernorm(c, op_linear(c, in[0], in[1], in[2]), NULL, NULL, 1e-5f));
    return op_cross_entropy(c, op_linear(c, h, in[3], in[4]), in[5]);
}

static Tensor *upload(Ctx *c, const float *h, int ndim, const int *shape) {
    Tensor *t = tensor_new(c, HYP_F32, ndim, shape);
    tensor_from_host(t, h);
    t->requires_grad = true;
    return t;
}

// Returns the final loss after `steps` of gradient descent on device dev.
static float train(Device dev, int steps, float *first) {
    Ctx *c = ctx_new(dev);
    int shapes[5][2] = {{8, 6}, {16, 6}, {16, 0}, {4, 16}, {4, 0}};
    Tensor *in[6];
    for (int i = 0; i < 5; i++) {
        int nd = shapes[i][1] ? 2 : 1;
        size_t n = (size_t)shapes[i][0] * (shapes[i][1] ? shapes[i][1] : 1);
        float *h = malloc(n * sizeof(float));
        fill_uniform(h, n, -1.f, 1.f, 100 + i);
        in[i] = upload(c, h, nd, shapes[i]);
        free(h);
    }
    in[0]->requires_grad = false;
    int32_t tg[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    in[5] = tensor_new(c, HYP_I32, HYP_SHAPE(8));
    tensor_from_host(in[5], tg);
    // Parameters outlive the per-step arena, so keep them in their own context.
    Ctx *step = ctx_new(dev);
    float loss = 0;
    for (int s = 0; s < steps; s++) {
        for (int i = 1; i < 5; i++) in[i]->grad = NULL;
        Tensor *l = loss_fn(step, in, NULL);
        backward(step, l);
        tensor_to_host(l, &loss);
        if (s == 0 && first) *first = loss;
        for (int i = 1; i < 5; i++)
            backend_get(dev)->axpy((long)tensor_numel(in[i]), -0.5f, in[i]->grad->data, in[i]->data);
        ctx_reset(step);
    }
    for (int i = 1; i < 5; i++) in[i]->grad = NULL;
    ctx_free(step);
    ctx_free(c);
    return loss;
}

int cmd_selfcheck(int argc, char **argv) {
    int rc = cli_parse("selfcheck", "(no options: a 50-step CPU training run, a gradient check, and the same run on the GPU when one is visible)",
                       NULL, 0, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : 1;
    int fails = 0;
    printf("hyp %s selfcheck (backends: %s)\n", HYP_VERSION, hyp_backends_compiled());

    float l0, l1 = train(HYP_CPU, 50, &l0);
    bool ok = l1 < 0.5f * l0;
    printf("  %-4s cpu: 50 steps of gradient descent, loss %.4f -> %.4f\n", ok ? "ok" : "FAIL", l0, l1);
    fails += !ok;

    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[6];
    int shapes[5][2] = {{8, 6}, {16, 6}, {16, 0}, {4, 16}, {4, 0}};
    for (int i = 0; i < 5; i++) {
        int nd = shapes[i][1] ? 2 : 1;
        size_t n = (size_t)shapes[i][0] * (shapes[i][1] ? shapes[i][1] : 1);
        float *h = malloc(n * sizeof(float));
        fill_uniform(h, n, -1.f, 1.f, 200 + i);
        in[i] = upload(c, h, nd, shapes[i]);
        free(h);
    }
    int32_t tg[8] = {1, 1, 2, 3, 0, 2, 1, 0};
    in[5] = tensor_new(c, HYP_I32, HYP_SHAPE(8));
    tensor_from_host(in[5], tg);
    char report[256] = "";
    ok = gradcheck(loss_fn, in, 6, NULL, NULL, report, sizeof report);
    printf("  %-4s cpu: finite-difference gradient check of linear/layernorm/gelu/cross-entropy %s\n",
           ok ? "ok" : "FAIL", report);
    fails += !ok;
    ctx_free(c);

    if (hyp_cuda_available()) {
        float g0, g1 = train(HYP_CUDA, 50, &g0);
        ok = fabsf(g1 - l1) <= 1e-4f * fabsf(l1) + 1e-6f;
        printf("  %-4s cuda: same run on the GPU, loss %.6f vs cpu %.6f\n", ok ? "ok" : "FAIL", g1, l1);
        fails += !ok;
    } else {
        printf("  skip cuda: %s\n", strcmp(hyp_backends_compiled(), "cpu") ? "no GPU visible" : "not compiled in");
    }
    printf("%s\n", fails ? "selfcheck FAILED" : "selfcheck passed");
    return fails ? 1 : 0;
}
