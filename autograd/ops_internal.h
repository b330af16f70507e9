// ops_internal.h: the backward functions the registry (autograd/tape.c) points to.
// Forward/backward pairs live together: ops_matmul.c, ops_basic.c, ops_shape.c.
#ifndef HYP_OPS_INTERNAL_H
#define HYP_OPS_INTERNAL_H
#include "autograd/ops.h"

void bw_embedding(Ctx *c, Node *n);
void bw_binary(Ctx *c, Node *n);
void bw_scale(Ctx *c, Node *n);
void bw_matmul(Ctx *c, Node *n);
void bw_linear(Ctx *c, Node *n);
void bw_layernorm(Ctx *c, Node *n);
void bw_add_layernorm(Ctx *c, Node *n);
void bw_unary(Ctx *c, Node *n);
void bw_softmax(Ctx *c, Node *n);
void bw_attention(Ctx *c, Node *n);
void bw_dropout(Ctx *c, Node *n);
void bw_reshape(Ctx *c, Node *n);
void bw_permute(Ctx *c, Node *n);
void bw_slice(Ctx *c, Node *n);
void bw_concat(Ctx *c, Node *n);
void bw_sum(Ctx *c, Node *n);
void bw_cross_entropy(Ctx *c, Node *n);
void bw_mse(Ctx *c, Node *n);
void bw_add_rows(Ctx *c, Node *n);
void bw_act_linear(Ctx *c, Node *n);

// A shape error (op_shape_error) unless every non-NULL input is f32.
static inline void require_f32(const char *op, Tensor **in, int n_in) {
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->dtype != HYP_F32) op_shape_error(op, "inputs must be f32", in, n_in);
}

// Gradient buffer of input i of node n if it wants one, else NULL (so kernels skip it).
float *in_grad(Ctx *c, Node *n, int i);
// The same for a caller that writes every element with one GEMM: *beta is 0 when the
// gradient buffer is new (left unfilled) and 1 when it already holds contributions.
float *in_grad_for_gemm(Ctx *c, Node *n, int i, float *beta);
// New f32 output tensor on the inputs' device.
Tensor *out_like(Ctx *c, int ndim, const int *shape);

// The int32 values of t (n of them) on the host for a range check: t's own data on the CPU,
// a copy from a device (*copy, to free), or NULL when device checks are off
// (op_set_device_index_checks).
const int32_t *op_host_indices(const Tensor *t, long n, int32_t **copy);

#endif
