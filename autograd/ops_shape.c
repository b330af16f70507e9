// ops_shape.c: reshape, permute/transpose, slice, concat, reductions, losses, and
// multi-head attention (built from backend kernels only, so it runs on every backend).
#include "autograd/ops_internal.h"
#include <stdlib.h>

// Python-style dim index: -1 is the last dim. Returns -1 when out of range.
static int norm_dim(int d, int ndim) {
    if (d < 0) d += ndim;
    return d >= 0 && d < ndim ? d : -1;
}

// ---------------------------------------------------------------- reshape
Tensor *op_reshape(Ctx *c, Tensor *x, int ndim, const int *shape) {
    Tensor *in[1] = {x};
    op_backend("reshape", in, 1);
    if (ndim < 1 || ndim > HYP_MAX_DIMS) op_shape_error("reshape", "target rank outside 1..4", in, 1);
    int s[HYP_MAX_DIMS], infer = -1;
    size_t known = 1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) {
            if (infer >= 0) op_shape_error("reshape", "more than one -1 in the target shape", in, 1);
            infer = i;
        } else if (s[i] < 0) {
            op_shape_error("reshape", "negative dimension in the target shape", in, 1);
        } else {
            known *= (size_t)s[i];
        }
    }
    size_t n = tensor_numel(x);
    if (infer >= 0) {
        if (known == 0 || n % known != 0)
            op_shape_error("reshape", "element count is not divisible by the known dims", in, 1);
        s[infer] = (int)(n / known);
        known *= (size_t)s[infer];
    }
    if (known != n) op_shape_error("reshape", "element counts differ", in, 1);
    // The output shares x's data (activations are never written in place); its gradient
    // is a buffer of its own, added into x's gradient in backward.
    Tensor *y = tensor_view(c, x, ndim, s);
    if (tape_wants(c, in, 1)) tape_push(c, OP_RESHAPE, in, 1, y);
    return y;
}

void bw_reshape(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    be->axpy((long)tensor_numel(n->out), 1.0f, n->out->grad->data, gx);
}

// ---------------------------------------------------------------- permute / transpose
Tensor *op_permute(Ctx *c, Tensor *x, const int *perm) {
    Tensor *in[1] = {x};
    const Backend *be = op_backend("permute", in, 1);
    require_f32("permute", in, 1);
    int nd = x->ndim, pad = HYP_MAX_DIMS - nd;
    bool seen[HYP_MAX_DIMS] = {false};
    for (int i = 0; i < nd; i++) {
        if (perm[i] < 0 || perm[i] >= nd || seen[perm[i]])
            op_shape_error("permute", "perm is not a permutation of the input's dims", in, 1);
        seen[perm[i]] = true;
    }
    // Pad to 4-D with leading 1s: the kernel works on 4-D shapes.
    int shape4[4], perm4[4], ys[HYP_MAX_DIMS];
    for (int i = 0; i < pad; i++) shape4[i] = 1, perm4[i] = i;
    for (int i = 0; i < nd; i++) {
        shape4[pad + i] = x->shape[i];
        perm4[pad + i] = pad + perm[i];
        ys[i] = x->shape[perm[i]];
    }
    Tensor *y = out_like(c, nd, ys);
    KERNEL(be, permute, "permute")(y->data, x->data, shape4, perm4, false);
    if (tape_wants(c, in, 1)) {
        Node *n = tape_push(c, OP_PERMUTE, in, 1, y);
        for (int i = 0; i < 4; i++) n->p.permute.shape[i] = shape4[i], n->p.permute.perm[i] = perm4[i];
    }
    return y;
}

void bw_permute(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    // gy has shape shape[perm]; the inverse permutation maps it back onto x, accumulating.
    const int *shape = n->p.permute.shape, *perm = n->p.permute.perm;
    int ys[4], inv[4];
    for (int k = 0; k < 4; k++) {
        ys[k] = shape[perm[k]];
        inv[perm[k]] = k;
    }
    be->permute(gx, n->out->grad->data, ys, inv, true);
}

Tensor *op_transpose(Ctx *c, Tensor *x, int d0, int d1) {
    Tensor *in[1] = {x};
    int a = norm_dim(d0, x->ndim), b = norm_dim(d1, x->ndim);
    if (a < 0 || b < 0) op_shape_error("transpose", "dim out of range", in, 1);
    int perm[HYP_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return op_permute(c, x, perm);
}

// ---------------------------------------------------------------- slice / concat
Tensor *op_slice(Ctx *c, Tensor *x, int dim, int start, int len) {
    Tensor *in[1] = {x};
    const Backend *be = op_backend("slice", in, 1);
    require_f32("slice", in, 1);
    int d = norm_dim(dim, x->ndim);
    if (d < 0) op_shape_error("slice", "dim out of range", in, 1);
    if (start < 0 || len < 0 || (long)start + len > x->shape[d])
        op_shape_error("slice", "range [start, start+len) outside the dim", in, 1);
    int ys[HYP_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) ys[i] = x->shape[i];
    ys[d] = len;
    Tensor *y = out_like(c, x->ndim, ys);
    long outer = (long)dims_prod(x, 0, d), inner = (long)dims_prod(x, d + 1, x->ndim);
    KERNEL(be, block_copy, "slice")(y->data, len, 0, x->data, x->shape[d], start, outer, len, inner, false);
    if (tape_wants(c, in, 1)) {
        Node *n = tape_push(c, OP_SLICE, in, 1, y);
        n->p.slice.dim = d;
        n->p.slice.start = start;
    }
    return y;
}

void bw_slice(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    Tensor *x = n->in[0];
    int d = n->p.slice.dim, len = n->out->shape[d];
    long outer = (long)dims_prod(x, 0, d), inner = (long)dims_prod(x, d + 1, x->ndim);
    be->block_copy(gx, x->shape[d], n->p.slice.start, n->out->grad->data, len, 0, outer, len, inner, true);
}

Tensor *op_concat(Ctx *c, Tensor **xs, int n_in, int dim) {
    if (n_in < 1 || n_in > HYP_MAX_IN)
        HYP_FATAL("op concat: %d inputs (need 1..%d)", n_in, HYP_MAX_IN);
    const Backend *be = op_backend("concat", xs, n_in);
    require_f32("concat", xs, n_in);
    Tensor *x0 = xs[0];
    int d = norm_dim(dim, x0->ndim);
    if (d < 0) op_shape_error("concat", "dim out of range", xs, n_in);
    int ys[HYP_MAX_DIMS];
    for (int i = 0; i < x0->ndim; i++) ys[i] = x0->shape[i];
    ys[d] = 0;
    for (int k = 0; k < n_in; k++) {
        if (xs[k]->ndim != x0->ndim) op_shape_error("concat", "ranks differ", xs, n_in);
        for (int i = 0; i < x0->ndim; i++)
            if (i != d && xs[k]->shape[i] != x0->shape[i])
                op_shape_error("concat", "dims other than the concat dim differ", xs, n_in);
        ys[d] += xs[k]->shape[d];
    }
    Tensor *y = out_like(c, x0->ndim, ys);
    long outer = (long)dims_prod(x0, 0, d), inner = (long)dims_prod(x0, d + 1, x0->ndim);
    int off = 0;
    for (int k = 0; k < n_in; k++) {
        int dk = xs[k]->shape[d];
        KERNEL(be, block_copy, "concat")(y->data, ys[d], off, xs[k]->data, dk, 0, outer, dk, inner, false);
        off += dk;
    }
    if (tape_wants(c, xs, n_in)) {
        Node *n = tape_push(c, OP_CONCAT, xs, n_in, y);
        n->p.concat.dim = d;
    }
    return y;
}

void bw_concat(Ctx *c, Node *n) {
    const Backend *be = backend_get(n->out->device);
    Tensor *y = n->out;
    int d = n->p.concat.dim;
    long outer = (long)dims_prod(y, 0, d), inner = (long)dims_prod(y, d + 1, y->ndim);
    int off = 0;
    for (int k = 0; k < n->n_in; k++) {
        int dk = n->in[k]->shape[d];
        float *gx = in_grad(c, n, k);   // the same tensor twice gets both slices added
        if (gx) be->block_copy(gx, dk, 0, y->grad->data, y->shape[d], off, outer, dk, inner, true);
        off += dk;
    }
}

// ---------------------------------------------------------------- sum / mean
static Tensor *reduce_sum(Ctx *c, Tensor *x, const char *name, bool mean) {
    Tensor *in[1] = {x};
    const Backend *be = op_backend(name, in, 1);
    require_f32(name, in, 1);
    long n = (long)tensor_numel(x);
    if (mean && n == 0) op_shape_error(name, "mean of an empty tensor", in, 1);
    float mult = mean ? 1.0f / (float)n : 1.0f;
    Tensor *y = out_like(c, HYP_SHAPE(1));
    KERNEL(be, sum, name)(y->data, x->data, n);
    if (mean) be->scale(1, mult, y->data, y->data);
    if (tape_wants(c, in, 1)) {
        Node *nd = tape_push(c, OP_SUM, in, 1, y);
        nd->p.sum.mult = mult;
    }
    return y;
}
Tensor *op_sum(Ctx *c, Tensor *x) { return reduce_sum(c, x, "sum", false); }
Tensor *op_mean(Ctx *c, Tensor *x) { return reduce_sum(c, x, "mean", true); }

void bw_sum(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    be->fill_grad(gx, n->out->grad->data, n->p.sum.mult, (long)tensor_numel(n->in[0]));
}

// ---------------------------------------------------------------- integer sequences
Tensor *op_arange(Ctx *c, int n, int32_t start, int32_t step) {
    HYP_CHECK(n >= 0, "op arange: negative length %d", n);
    Tensor *t = tensor_new(c, HYP_I32, HYP_SHAPE(n));
    if (n > 0) KERNEL(backend_get(c->device), arange_i32, "arange")(t->data, start, step, n);
    return t;
}

// ---------------------------------------------------------------- losses
Tensor *op_cross_entropy(Ctx *c, Tensor *logits, Tensor *targets) {
    Tensor *in[2] = {logits, targets};
    const Backend *be = op_backend("cross_entropy", in, 2);
    if (logits->dtype != HYP_F32 || targets->dtype != HYP_I32 || logits->ndim != 2 ||
        targets->ndim != 1 || targets->shape[0] != logits->shape[0] || logits->shape[1] < 1)
        op_shape_error("cross_entropy", "expected logits f32 (R, C) with C >= 1 and targets int32 (R)", in, 2);
    long R = logits->shape[0];
    int C = logits->shape[1];
    // Targets are checked on the host (a kernel reading out of range would not fail loudly);
    // on a device that costs a copy, unless the caller vouches for them.
    int32_t *t;
    const int32_t *h = op_host_indices(targets, R, &t);
    for (long r = 0; h && r < R; r++)
        if (h[r] < 0 || h[r] >= C) {
            int bad = h[r];
            free(t);
            HYP_FATAL("op cross_entropy: target %d in row %ld is outside [0, %d)", bad, r, C);
        }
    free(t);
    Tensor *y = out_like(c, HYP_SHAPE(1));
    Tensor *lse = out_like(c, 1, (int[]){(int)R});   // (R) log-sum-exp per row, for backward
    KERNEL(be, cross_entropy_fwd, "cross_entropy")(y->data, lse->data, logits->data, targets->data, R, C);
    if (tape_wants(c, in, 2)) {
        Node *n = tape_push(c, OP_CROSS_ENTROPY, in, 2, y);
        n->saved[0] = lse;
    }
    return y;
}

void bw_cross_entropy(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    Tensor *x = n->in[0];
    KERNEL(be, cross_entropy_bwd, "cross_entropy")(gx, n->out->grad->data, x->data, n->saved[0]->data,
                                                   n->in[1]->data, x->shape[0], x->shape[1]);
}

Tensor *op_mse(Ctx *c, Tensor *a, Tensor *b) {
    Tensor *in[2] = {a, b};
    const Backend *be = op_backend("mse", in, 2);
    require_f32("mse", in, 2);
    if (!same_shape(a, b)) op_shape_error("mse", "shapes differ", in, 2);
    Tensor *y = out_like(c, HYP_SHAPE(1));
    KERNEL(be, mse_fwd, "mse")(y->data, a->data, b->data, (long)tensor_numel(a));
    if (tape_wants(c, in, 2)) tape_push(c, OP_MSE, in, 2, y);
    return y;
}

void bw_mse(Ctx *c, Node *n) {
    float *ga = in_grad(c, n, 0), *gb = in_grad(c, n, 1);
    if (!ga && !gb) return;
    const Backend *be = backend_get(n->out->device);
    KERNEL(be, mse_bwd, "mse")(ga, gb, n->out->grad->data, n->in[0]->data, n->in[1]->data,
                               (long)tensor_numel(n->in[0]));
}

// ---------------------------------------------------------------- attention
// One fused, memory-efficient kernel on every backend (attention_fwd/bwd in kernels.h):
// what backward keeps is q, k, v (the inputs), the output and lse (B, H, Tq), never the
// (B, H, Tq, Tk) probabilities. A backend without the kernel is an error, not a silent
// fallback to another algorithm.
Tensor *op_attention(Ctx *c, Tensor *q, Tensor *k, Tensor *v, Tensor *mask, int heads, float scale) {
    return op_attention_dropout(c, q, k, v, mask, heads, scale, 0.0f);
}

Tensor *op_attention_dropout(Ctx *c, Tensor *q, Tensor *k, Tensor *v, Tensor *mask, int heads,
                             float scale, float p) {
    Tensor *in[4] = {q, k, v, mask};
    const Backend *be = op_backend("attention", in, 4);
    require_f32("attention", in, 3);
    if (q->ndim != 3 || k->ndim != 3 || !same_shape(k, v) || heads < 1)
        op_shape_error("attention", "expected q (B, Tq, H*dh), k and v (B, Tk, H*dh), heads >= 1", in, 4);
    int B = q->shape[0], Tq = q->shape[1], Tk = k->shape[1], D = q->shape[2];
    if (k->shape[0] != B || k->shape[2] != D || D % heads != 0)
        op_shape_error("attention", "batch or model dims differ, or model dim not divisible by heads", in, 4);
    if (mask && (mask->dtype != HYP_I32 || mask->ndim != 2 || mask->shape[0] != B || mask->shape[1] != Tk))
        op_shape_error("attention", "mask must be int32 (B, Tk)", in, 4);
    int H = heads, dh = D / H;
    bool drop = c->training && p > 0.0f;
    HYP_CHECK(!drop || p < 1.0f, "op attention: dropout probability %g outside [0, 1)", p);
    uint64_t seed = c->seed, offset = c->rng_offset;
    long np = (long)B * H * Tq * Tk;   // dropout elements drawn (the probabilities' count)

    Tensor *lse = out_like(c, HYP_SHAPE(B, H, Tq));   // (B, H, Tq) log-sum-exp per query, for backward
    Tensor *y = out_like(c, HYP_SHAPE(B, Tq, D));
    KERNEL(be, attention_fwd, "attention")(y->data, lse->data, q->data, k->data, v->data, mask ? mask->data : NULL,
                                           B, Tq, Tk, H, dh, scale, drop ? p : 0.0f, seed, offset,
                                           c->matmul_precision);
    if (drop) c->rng_offset += (uint64_t)(np + 3) / 4;
    if (tape_wants(c, in, 4)) {
        Node *n = tape_push(c, OP_ATTENTION, in, 4, y);
        n->saved[0] = lse;
        n->p.attn.heads = H, n->p.attn.scale = scale, n->p.attn.p = drop ? p : 0.0f;
        n->p.attn.seed = seed, n->p.attn.offset = offset, n->p.attn.prec = c->matmul_precision;
    }
    return y;
}

void bw_attention(Ctx *c, Node *n) {
    float *gq = in_grad(c, n, 0), *gk = in_grad(c, n, 1), *gv = in_grad(c, n, 2);
    if (!gq && !gk && !gv) return;
    const Backend *be = backend_get(n->out->device);
    Tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *mask = n->in[3];
    int H = n->p.attn.heads;
    KERNEL(be, attention_bwd, "attention")(gq, gk, gv, n->out->grad->data, n->out->data, q->data, k->data, v->data,
                                           mask ? mask->data : NULL, n->saved[0]->data, q->shape[0], q->shape[1],
                                           k->shape[1], H, q->shape[2] / H, n->p.attn.scale, n->p.attn.p,
                                           n->p.attn.seed, n->p.attn.offset, n->p.attn.prec);
}
