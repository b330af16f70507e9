#include "train/losses.h"
#include <stdlib.h>

Tensor *loss_margin_mse(Ctx *c, Tensor *scores, const float *teacher) {
    HYP_CHECK(scores->ndim == 2 && scores->shape[1] >= 2, "margin-mse: scores must be (B, n >= 2)");
    int B = scores->shape[0], n = scores->shape[1];
    // Student margins as one matmul with a constant (n, n-1) matrix: column k is
    // e_0 - e_{k+1}, so margins[b, k] = s[b, 0] - s[b, k+1] (differentiable, no gather op).
    // Both constants go up in one copy: M (n, n-1), then the teacher margins (B, n-1) at a
    // 256-byte aligned offset.
    size_t nm = (size_t)n * (n - 1), off = (nm + 63) & ~(size_t)63, nt = (size_t)B * (n - 1);
    float *h = hyp_calloc(off + nt, sizeof(float));
    float *M = h, *tm = h + off;
    for (int k = 0; k < n - 1; k++) {
        M[0 * (n - 1) + k] = 1.0f;
        M[(k + 1) * (n - 1) + k] = -1.0f;
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < n - 1; k++) tm[b * (n - 1) + k] = teacher[b * n] - teacher[b * n + k + 1];
    Tensor *both = tensor_new(c, HYP_F32, HYP_SHAPE((int)(off + nt)));
    tensor_from_host(both, h);
    free(h);
    Tensor *Mt = tensor_wrap(c, HYP_F32, tensor_f32(both), HYP_SHAPE(n, n - 1));
    Tensor *T = tensor_wrap(c, HYP_F32, tensor_f32(both) + off, HYP_SHAPE(B, n - 1));
    return op_mse(c, op_matmul(c, scores, Mt, false, false), T);
}

Tensor *loss_inbatch_ce(Ctx *c, Tensor *S) {
    HYP_CHECK(S->ndim == 2 && S->shape[0] == S->shape[1], "in-batch CE: scores must be (B, B)");
    return loss_inbatch_ce_offset(c, S, 0);
}

Tensor *loss_inbatch_ce_offset(Ctx *c, Tensor *S, int offset) {
    HYP_CHECK(S->ndim == 2 && offset >= 0 && offset + S->shape[0] <= S->shape[1],
              "in-batch CE: scores (B, M) need M >= offset + B");
    // Targets offset + i, built on the device and in [0, M) by the check above.
    Tensor *T = op_arange(c, S->shape[0], offset, 1);
    bool checks = op_set_device_index_checks(false);
    Tensor *loss = op_cross_entropy(c, S, T);
    op_set_device_index_checks(checks);
    return loss;
}
