// ops.h: differentiable operations. Each runs eagerly on the device of its inputs,
// returns a new tensor in c->act, and records a tape node when gradients are wanted.
// A shape mismatch is fatal with a message naming the op and the shapes.
#ifndef HYP_OPS_H
#define HYP_OPS_H
#include "autograd/tape.h"

// Range checks of integer inputs: op_embedding's ids in [0, V), op_cross_entropy's targets in
// [0, C); out of range is fatal ("op embedding: id 7 at position 3 is outside the table [0, 5)").
// On the CPU they always run (a loop over the values). On a device they copy the values to
// the host, a round trip that stalls the GPU: code that validated its ids on the host before
// the upload (the trainer's batches) or built them in range on the device (op_arange: position
// ids, in-batch targets) turns them off around the ops that use them, and the ops then take
// their fast path. On by default; per thread. Returns the previous setting.
bool op_set_device_index_checks(bool on);
bool op_device_index_checks(void);

// table (V, D), ids int32 (...)  ->  (..., D). Backward scatter-adds into table.
Tensor *op_embedding(Ctx *c, Tensor *table, Tensor *ids);
// Same, with nn.Embedding's padding_idx: that row receives no gradient (HF BERT's
// word embeddings use pad_token_id).
Tensor *op_embedding_pad(Ctx *c, Tensor *table, Tensor *ids, int padding_idx);
// a (...), b a suffix of a's shape (e.g. (D) or (T, D) for a (B, T, D)) or the same shape.
Tensor *op_add(Ctx *c, Tensor *a, Tensor *b);
Tensor *op_sub(Ctx *c, Tensor *a, Tensor *b);
Tensor *op_mul(Ctx *c, Tensor *a, Tensor *b);
Tensor *op_scale(Ctx *c, Tensor *x, float alpha);
// x (B, N, D) + b (B, D) broadcast over N: each batch element's own bias row
// (a query's q-net bias added to all of its documents).
Tensor *op_add_rows(Ctx *c, Tensor *x, Tensor *b);
// op(a) @ op(b) over the last two dims; a (..., M, K), b (..., K, N) (op = transpose of
// the last two dims when ta/tb). Leading dims must match, or one side is 2-D and
// broadcasts. Gradients flow to both operands (q-net weights are activations).
Tensor *op_matmul(Ctx *c, Tensor *a, Tensor *b, bool ta, bool tb);
// x (..., in), w (out, in) as torch.nn.Linear, b (out) or NULL  ->  (..., out).
Tensor *op_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b);
// linear(act(z), w, b) that stores z only and recomputes act(z) in backward: bitwise
// op_linear(op_unary(act, z), w, b), without the (..., in) activation held for backward.
Tensor *op_act_linear(Ctx *c, UnaryOp act, Tensor *z, Tensor *w, Tensor *b);
// Over the last dim; w, b (D) or both NULL (no affine).
Tensor *op_layernorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps);
// LN(x + residual) in one pass (BERT's sub-layer output).
Tensor *op_add_layernorm(Ctx *c, Tensor *x, Tensor *residual, Tensor *w, Tensor *b, float eps);
// LayerNorm(dropout(x, p) + residual) (training only; p = 0 or eval: op_add_layernorm), the
// dropped x not kept: bitwise op_add_layernorm(op_dropout(x, p), residual, ...).
Tensor *op_dropout_add_layernorm(Ctx *c, Tensor *x, Tensor *residual, Tensor *w, Tensor *b, float eps, float p);
// An activation of kernels/unary_ops.h (y = f(x), element-wise).
Tensor *op_unary(Ctx *c, UnaryOp op, Tensor *x);
Tensor *op_relu(Ctx *c, Tensor *x);
Tensor *op_gelu(Ctx *c, Tensor *x);            // exact erf GELU
// Softmax over the last dim. mask: int32 (B, cols) with 0 = padding, x (B, ..., cols);
// or NULL. A fully masked row gives zeros (PyTorch would give NaN).
Tensor *op_softmax(Ctx *c, Tensor *x, Tensor *mask);
// Multi-head scaled dot-product attention as BERT uses it: q (B, Tq, H*dh),
// k, v (B, Tk, H*dh), mask int32 (B, Tk) or NULL  ->  (B, Tq, H*dh).
// scores = scale * q_h k_h^T, masked softmax over keys, times v_h.
Tensor *op_attention(Ctx *c, Tensor *q, Tensor *k, Tensor *v, Tensor *mask, int heads, float scale);
// The same with inverted dropout p on the attention probabilities (BERT's
// attention_probs_dropout_prob), active when c->training; Philox(c->seed, c->rng_offset).
Tensor *op_attention_dropout(Ctx *c, Tensor *q, Tensor *k, Tensor *v, Tensor *mask, int heads,
                             float scale, float p);
// Inverted dropout (identity when !c->training or p == 0). Philox(c->seed, c->rng_offset).
Tensor *op_dropout(Ctx *c, Tensor *x, float p);
// One dim may be -1. The output shares x's data (activations are never written in
// place); its gradient is its own buffer, added into x's in backward.
Tensor *op_reshape(Ctx *c, Tensor *x, int ndim, const int *shape);
Tensor *op_transpose(Ctx *c, Tensor *x, int d0, int d1);
Tensor *op_permute(Ctx *c, Tensor *x, const int *perm);   // perm has x->ndim entries
Tensor *op_slice(Ctx *c, Tensor *x, int dim, int start, int len);
Tensor *op_concat(Ctx *c, Tensor **xs, int n, int dim);
Tensor *op_sum(Ctx *c, Tensor *x);             // all elements -> (1)
Tensor *op_mean(Ctx *c, Tensor *x);
// int32 (n) = start + i * step, built on the context's device (no upload); not differentiable.
Tensor *op_arange(Ctx *c, int n, int32_t start, int32_t step);
// logits (R, C), targets int32 (R) -> mean cross-entropy (1).
Tensor *op_cross_entropy(Ctx *c, Tensor *logits, Tensor *targets);
// mean (a - b)^2 over all elements -> (1).
Tensor *op_mse(Ctx *c, Tensor *a, Tensor *b);

// Helpers for op implementations.
const Backend *op_backend(const char *op, Tensor **in, int n_in);   // all on one device
void op_shape_error(const char *op, const char *why, Tensor **in, int n_in) __attribute__((noreturn));

#endif
