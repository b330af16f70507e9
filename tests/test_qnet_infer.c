// The q-net's fused inference path (no_grad: one qnet_act_fwd pass per layer) equals the
// differentiable op-by-op path, for per-query and shared documents, on every backend.
#include "tests/testlib.h"
#include "model/hypencoder.h"
#include <string.h>

static QNet random_qnet(Ctx *c, int B, int L, int d, uint64_t seed) {
    QNet q = {.B = B, .layers = L, .dim = d, .eps = 1e-5f};
    for (int i = 0; i < L; i++) {
        q.W[i] = tensor_rand(c, HYP_SHAPE(B, d, d), -0.3f, 0.3f, seed + i, false);
        q.b[i] = tensor_rand(c, HYP_SHAPE(B, d), -0.2f, 0.2f, seed + 100 + i, false);
    }
    q.W[L] = tensor_rand(c, HYP_SHAPE(B, 1, d), -0.3f, 0.3f, seed + 200, false);
    return q;
}

static void check_fused(Device dev) {
    Ctx *c = ctx_new(dev);
    int B = 3, L = 4, d = 37, N = 11;
    QNet q = random_qnet(c, B, L, d, 1);
    Tensor *Xs = tensor_rand(c, HYP_SHAPE(N, d), -1, 1, 7, false);       // shared documents
    Tensor *Xq = tensor_rand(c, HYP_SHAPE(B, N, d), -1, 1, 8, false);    // per-query documents
    Tensor *ref_s = qnet_score_shared(c, &q, Xs), *ref_q = qnet_score(c, &q, Xq);   // op by op
    no_grad_begin(c);
    Tensor *got_s = qnet_score_shared(c, &q, Xs), *got_q = qnet_score(c, &q, Xq);   // fused
    no_grad_end(c);
    expect_close(got_s, ref_s, TOL_OP, "fused q-net, shared documents");
    expect_close(got_q, ref_q, TOL_OP, "fused q-net, per-query documents");
    if (dev == HYP_CPU) {   // one hidden-layer formula: on the CPU the fused pass is the ops' arithmetic
        float a[3 * 11], r[3 * 11];
        tensor_to_host(got_q, a);
        tensor_to_host(ref_q, r);
        cr_assert_eq(memcmp(a, r, sizeof a), 0, "fused and op-by-op q-net differ in bits on the CPU");
        tensor_to_host(got_s, a);
        tensor_to_host(ref_s, r);
        cr_assert_eq(memcmp(a, r, sizeof a), 0, "fused and op-by-op q-net (shared) differ in bits on the CPU");
    }
    ctx_free(c);
}

Test(qnet_infer, fused_equals_ops_cpu) { check_fused(HYP_CPU); }
Test(qnet_infer, fused_equals_ops_cuda) { RUN_ON_CUDA_OR_SKIP(); check_fused(HYP_CUDA); }
