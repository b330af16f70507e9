#include "train/losses.h"
#include <stdlib.h>
#include <string.h>

// Student margins as one matmul with a constant (n, n-1) matrix: column k is e_0 - e_{k+1},
// so margins[b, k] = s[b, 0] - s[b, k+1] (differentiable, no gather op). The constants are
// M, then at a 256-byte aligned offset the teacher margins (B, n-1).
static size_t margin_offset(int n) { return ((size_t)n * (n - 1) + 63) & ~(size_t)63; }

size_t loss_margin_mse_consts_floats(int B, int n) { return margin_offset(n) + (size_t)B * (n - 1); }

void loss_margin_mse_consts(float *dst, const float *teacher, int B, int n) {
    HYP_CHECK(n >= 2, "margin-mse: n >= 2 items per query");
    memset(dst, 0, loss_margin_mse_consts_floats(B, n) * sizeof(float));
    float *M = dst, *tm = dst + margin_offset(n);
    for (int k = 0; k < n - 1; k++) {
        M[0 * (n - 1) + k] = 1.0f;
        M[(k + 1) * (n - 1) + k] = -1.0f;
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < n - 1; k++) tm[b * (n - 1) + k] = teacher[b * n] - teacher[b * n + k + 1];
}

Tensor *loss_margin_mse_dev(Ctx *c, Tensor *scores, float *consts) {
    HYP_CHECK(scores->ndim == 2 && scores->shape[1] >= 2, "margin-mse: scores must be (B, n >= 2)");
    int B = scores->shape[0], n = scores->shape[1];
    Tensor *Mt = tensor_wrap(c, HYP_F32, consts, HYP_SHAPE(n, n - 1));
    Tensor *T = tensor_wrap(c, HYP_F32, consts + margin_offset(n), HYP_SHAPE(B, n - 1));
    return op_mse(c, op_matmul(c, scores, Mt, false, false), T);
}

Tensor *loss_margin_mse(Ctx *c, Tensor *scores, const float *teacher) {
    HYP_CHECK(scores->ndim == 2 && scores->shape[1] >= 2, "margin-mse: scores must be (B, n >= 2)");
    int B = scores->shape[0], n = scores->shape[1];
    size_t len = loss_margin_mse_consts_floats(B, n);
    float *h = hyp_malloc(len * sizeof(float));
    loss_margin_mse_consts(h, teacher, B, n);
    Tensor *consts = tensor_new(c, HYP_F32, HYP_SHAPE((int)len));   // one upload for both
    tensor_from_host(consts, h);
    free(h);
    return loss_margin_mse_dev(c, scores, tensor_f32(consts));
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
