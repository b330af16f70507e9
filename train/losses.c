#include "train/losses.h"
#include <stdlib.h>

Tensor *loss_margin_mse(Ctx *c, Tensor *scores, const float *teacher) {
    HYP_CHECK(scores->ndim == 2 && scores->shape[1] >= 2, "margin-mse: scores must be (B, n >= 2)");
    int B = scores->shape[0], n = scores->shape[1];
    // Student margins as one matmul with a constant (n, n-1) matrix: column k is
    // e_0 - e_{k+1}, so margins[b, k] = s[b, 0] - s[b, k+1] (differentiable, no gather op).
    float *M = hyp_calloc((size_t)n * (n - 1), sizeof(float));
    for (int k = 0; k < n - 1; k++) {
        M[0 * (n - 1) + k] = 1.0f;
        M[(k + 1) * (n - 1) + k] = -1.0f;
    }
    float *tm = hyp_malloc((size_t)B * (n - 1) * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int k = 0; k < n - 1; k++) tm[b * (n - 1) + k] = teacher[b * n] - teacher[b * n + k + 1];
    Tensor *Mt = tensor_new(c, HYP_F32, HYP_SHAPE(n, n - 1));
    Tensor *T = tensor_new(c, HYP_F32, HYP_SHAPE(B, n - 1));
    tensor_from_host(Mt, M);
    tensor_from_host(T, tm);
    free(M);
    free(tm);
    return op_mse(c, op_matmul(c, scores, Mt, false, false), T);
}

Tensor *loss_inbatch_ce(Ctx *c, Tensor *S) {
    HYP_CHECK(S->ndim == 2 && S->shape[0] == S->shape[1], "in-batch CE: scores must be (B, B)");
    return loss_inbatch_ce_offset(c, S, 0);
}

Tensor *loss_inbatch_ce_offset(Ctx *c, Tensor *S, int offset) {
    HYP_CHECK(S->ndim == 2 && offset >= 0 && offset + S->shape[0] <= S->shape[1],
              "in-batch CE: scores (B, M) need M >= offset + B");
    int B = S->shape[0];
    int32_t *t = hyp_malloc((size_t)B * sizeof(int32_t));
    for (int i = 0; i < B; i++) t[i] = offset + i;
    Tensor *T = tensor_new(c, HYP_I32, HYP_SHAPE(B));
    tensor_from_host(T, t);
    free(t);
    return op_cross_entropy(c, S, T);
}
