// bench_qnet: the Hypencoder's two hot paths on the CPU, against references timed in the same run.
//  1. q-net scoring: one query's 768-wide 6-layer q-net over N documents (documents/s), vs the
//     raw sgemm rate of the same GEMMs (target >= 80%).
//  2. hyperhead forward+backward for 64 queries x 32 tokens (6-layer q-net, d = 768).
// Usage: bench_qnet [N_docs]
#include "model/hypencoder.h"
#include "autograd/gradcheck.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Tensor *rand_t(Ctx *c, int ndim, const int *shape, float a, uint64_t seed) {
    Tensor *t = tensor_new(c, HYP_F32, ndim, shape);
    fill_uniform(t->data, tensor_numel(t), -a, a, seed);
    return t;
}

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 32768, d = 768, L = 6, reps = 3;
    Ctx *c = ctx_new(HYP_CPU);
    // A q-net for one query: random generated weights at the scale the hyperhead produces.
    QNet q = {.B = 1, .layers = L, .dim = d, .eps = 1e-5f};
    for (int i = 0; i < L; i++) {
        q.W[i] = rand_t(c, HYP_SHAPE(1, d, d), 0.06f, 10 + i);
        q.b[i] = rand_t(c, HYP_SHAPE(1, d), 0.1f, 30 + i);
    }
    q.W[L] = rand_t(c, HYP_SHAPE(1, 1, d), 0.06f, 50);
    Tensor *X = rand_t(c, HYP_SHAPE(N, d), 1.0f, 60);
    float *Y = hyp_malloc((size_t)N * d * sizeof(float));
    double flops = 2.0 * N * ((double)L * d * d + d), t_ref = 1e30, t_ours = 1e30;
    Ctx *s = ctx_new(HYP_CPU);
    no_grad_begin(s);
    for (int r = 0; r <= reps; r++) {
        double t0 = hyp_now();
        for (int i = 0; i < L; i++)   // the same GEMMs, nothing else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, d, d, 1.0f, X->data, d, q.W[i]->data, d, 0.0f, Y, d);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, d, 1.0f, X->data, d, q.W[L]->data, 1, 0.0f, Y, 1);
        double t1 = hyp_now();
        qnet_score_shared(s, &q, X);
        double t2 = hyp_now();
        ctx_reset(s);
        if (r > 0) {
            if (t1 - t0 < t_ref) t_ref = t1 - t0;
            if (t2 - t1 < t_ours) t_ours = t2 - t1;
        }
    }
    printf("q-net scoring (d %d, %d layers, %d docs, 1 query)\n", d, L, N);
    printf("  ours   %10.0f docs/s  %7.1f GFLOP/s\n", N / t_ours, flops / t_ours * 1e-9);
    printf("  sgemm  %10.0f docs/s  %7.1f GFLOP/s   ours/sgemm %.3f (target >= 0.80)\n", N / t_ref,
           flops / t_ref * 1e-9, t_ref / t_ours);
    no_grad_end(s);

    // Hyperhead forward + backward.
    HypencoderConfig cfg = hypencoder_config_default(L);
    cfg.bert.layers = 1;   // BERT is not run; keep its registration small
    cfg.bert.vocab_size = 8;
    ParamSet *ps = paramset_new(HYP_CPU);
    Hypencoder m;
    hypencoder_register(&m, ps, &cfg);
    paramset_finalize(ps);
    hypencoder_init(&m, 1);
    int B = 64, T = 32;
    Tensor *H = rand_t(c, HYP_SHAPE(B, T, d), 1.0f, 70);
    H->requires_grad = true;
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(B, T));
    for (int i = 0; i < B * T; i++) tensor_i32(mask)[i] = (i % T) < T - (i / T) % 8;
    double best = 1e30;
    for (int r = 0; r <= 2; r++) {
        H->grad = NULL;
        paramset_zero_grad(ps);
        double t0 = hyp_now();
        QNet qn = hyperhead_forward(s, &m, H, mask);
        Tensor *loss = op_sum(s, qn.W[0]);
        for (int i = 1; i <= L; i++) loss = op_add(s, loss, op_sum(s, qn.W[i]));
        for (int j = 0; j < L; j++) loss = op_add(s, loss, op_sum(s, qn.b[j]));
        backward(s, loss);
        double t = hyp_now() - t0;
        ctx_reset(s);
        if (r > 0 && t < best) best = t;
    }
    printf("hyperhead fwd+bwd (%d queries x %d tokens, %d-layer q-net, d %d): %.1f ms, %.0f queries/s\n",
           B, T, L, d, best * 1e3, B / best);
    H->grad = NULL;
    hypencoder_free(&m);
    paramset_free(ps);
    ctx_free(s);
    ctx_free(c);
    free(Y);
    return 0;
}
