// ops_basic.c: embedding, element-wise binary ops (with broadcasting), scale, activations,
// dropout, layernorm (plain and fused with a residual add) and masked softmax.
#include "autograd/ops_internal.h"
#include <stdlib.h>

static long numel_l(const Tensor *t) { return (long)tensor_numel(t); }
static int last_dim(const Tensor *t) { return t->shape[t->ndim - 1]; }

// ---------------------------------------------------------------- index checks
static _Thread_local bool g_device_index_checks = true;
bool op_set_device_index_checks(bool on) {
    bool prev = g_device_index_checks;
    g_device_index_checks = on;
    return prev;
}
bool op_device_index_checks(void) { return g_device_index_checks; }

const int32_t *op_host_indices(const Tensor *t, long n, int32_t **copy) {
    *copy = NULL;
    if (backend_get(t->device)->meta) return NULL;   // the planner: no ids to check
    if (t->device == HYP_CPU) return t->data;
    if (!op_device_index_checks()) return NULL;
    *copy = hyp_malloc((size_t)n * sizeof(int32_t) + 1);
    tensor_to_host(t, *copy);
    return *copy;
}

// ---------------------------------------------------------------- embedding
Tensor *op_embedding(Ctx *c, Tensor *table, Tensor *ids) { return op_embedding_pad(c, table, ids, -1); }

Tensor *op_embedding_pad(Ctx *c, Tensor *table, Tensor *ids, int padding_idx) {
    Tensor *in[2] = {table, ids};
    const Backend *be = op_backend("embedding", in, 2);
    if (table->dtype != HYP_F32 || table->ndim != 2 || ids->dtype != HYP_I32 || ids->ndim >= HYP_MAX_DIMS)
        op_shape_error("embedding", "expected table f32 (V, D) and ids int32 with at most 3 dims", in, 2);
    int V = table->shape[0], D = table->shape[1];
    long n = numel_l(ids);
    // Range check on the host: an out-of-range id would read (and scatter) out of bounds.
    // On a device it costs a copy to the host, unless the caller vouches for the ids.
    int32_t *copy;
    const int32_t *h = op_host_indices(ids, n, &copy);
    for (long i = 0; h && i < n; i++)
        if (h[i] < 0 || h[i] >= V) {
            int32_t bad = h[i];
            free(copy);
            HYP_FATAL("op embedding: id %d at position %ld is outside the table [0, %d)", (int)bad, i, V);
        }
    free(copy);
    int shape[HYP_MAX_DIMS];
    for (int i = 0; i < ids->ndim; i++) shape[i] = ids->shape[i];
    shape[ids->ndim] = D;
    Tensor *y = out_like(c, ids->ndim + 1, shape);
    KERNEL(be, embedding_fwd, "embedding")(y->data, table->data, ids->data, n, D);
    if (tape_wants(c, in, 2)) tape_push(c, OP_EMBEDDING, in, 2, y)->p.embedding.padding_idx = padding_idx;
    return y;
}

void bw_embedding(Ctx *c, Node *n) {
    Tensor *table = n->in[0], *ids = n->in[1];
    float *gt = in_grad(c, n, 0);
    if (!gt) return;
    const Backend *be = backend_get(n->out->device);
    KERNEL(be, embedding_bwd, "embedding")(gt, n->out->grad->data, ids->data, numel_l(ids), table->shape[1],
                                           n->p.embedding.padding_idx);
}

// ---------------------------------------------------------------- binary ops
static const char *binary_name(BinaryOp op) { return op == BIN_ADD ? "add" : op == BIN_SUB ? "sub" : "mul"; }

// b's shape must equal a's trailing dims (b broadcasts over a's leading dims).
static Tensor *binary(Ctx *c, BinaryOp op, Tensor *a, Tensor *b) {
    const char *name = binary_name(op);
    Tensor *in[2] = {a, b};
    const Backend *be = op_backend(name, in, 2);
    if (a->dtype != HYP_F32 || b->dtype != HYP_F32)
        op_shape_error(name, "operands must be f32", in, 2);
    if (b->ndim > a->ndim) op_shape_error(name, "the second operand's shape must be a suffix of the first's", in, 2);
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[b->ndim - 1 - i] != a->shape[a->ndim - 1 - i])
            op_shape_error(name, "the second operand's shape must be a suffix of the first's", in, 2);
    Tensor *y = out_like(c, a->ndim, a->shape);
    long n = numel_l(a), nb = numel_l(b);
    if (n > 0) KERNEL(be, binary_fwd, name)(op, y->data, a->data, b->data, n, nb);
    if (tape_wants(c, in, 2)) {
        Node *nd = tape_push(c, OP_BINARY, in, 2, y);
        nd->p.binary.op = op;
    }
    return y;
}

Tensor *op_add(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_ADD, a, b); }
Tensor *op_sub(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_SUB, a, b); }
Tensor *op_mul(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_MUL, a, b); }

void bw_binary(Ctx *c, Node *n) {
    Tensor *a = n->in[0], *b = n->in[1];
    float *ga = in_grad(c, n, 0), *gb = in_grad(c, n, 1);
    long na = numel_l(a);
    if ((!ga && !gb) || na == 0) return;
    const Backend *be = backend_get(n->out->device);
    KERNEL(be, binary_bwd, binary_name(n->p.binary.op))(n->p.binary.op, ga, gb, n->out->grad->data,
                                                        a->data, b->data, na, numel_l(b));
}

// ---------------------------------------------------------------- scale
Tensor *op_scale(Ctx *c, Tensor *x, float alpha) {
    Tensor *in[1] = {x};
    const Backend *be = op_backend("scale", in, 1);
    if (x->dtype != HYP_F32) op_shape_error("scale", "input must be f32", in, 1);
    Tensor *y = out_like(c, x->ndim, x->shape);
    KERNEL(be, scale, "scale")(numel_l(x), alpha, x->data, y->data);
    if (tape_wants(c, in, 1)) {
        Node *n = tape_push(c, OP_SCALE, in, 1, y);
        n->p.scale.alpha = alpha;
    }
    return y;
}

void bw_scale(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    KERNEL(be, axpy, "scale")(numel_l(n->in[0]), n->p.scale.alpha, n->out->grad->data, gx);
}

// ---------------------------------------------------------------- unary activations
Tensor *op_unary(Ctx *c, UnaryOp op, Tensor *x) {
    const char *name = hyp_unary_name(op);
    HYP_CHECK(name, "op unary: unknown activation %d", (int)op);
    Tensor *in[1] = {x};
    const Backend *be = op_backend(name, in, 1);
    if (x->dtype != HYP_F32) op_shape_error(name, "input must be f32", in, 1);
    Tensor *y = out_like(c, x->ndim, x->shape);
    KERNEL(be, unary_fwd, name)(op, y->data, x->data, numel_l(x));
    if (tape_wants(c, in, 1)) {
        Node *n = tape_push(c, OP_UNARY, in, 1, y);
        n->p.unary.op = op;
    }
    return y;
}

Tensor *op_relu(Ctx *c, Tensor *x) { return op_unary(c, UN_RELU, x); }
Tensor *op_gelu(Ctx *c, Tensor *x) { return op_unary(c, UN_GELU, x); }

void bw_unary(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    KERNEL(be, unary_bwd, hyp_unary_name(n->p.unary.op))(
        n->p.unary.op, gx, n->out->grad->data, n->in[0]->data, numel_l(n->in[0]));
}

// ---------------------------------------------------------------- dropout
Tensor *op_dropout(Ctx *c, Tensor *x, float p) {
    Tensor *in[1] = {x};
    const Backend *be = op_backend("dropout", in, 1);
    if (x->dtype != HYP_F32) op_shape_error("dropout", "input must be f32", in, 1);
    HYP_CHECK(p >= 0.0f && p < 1.0f, "op dropout: probability %g outside [0, 1)", (double)p);
    if (!c->training || p == 0.0f) return x;   // the identity: no node needed
    long n = numel_l(x);
    uint64_t seed = c->seed, offset = c->rng_offset;
    c->rng_offset += ((uint64_t)n + 3) / 4;    // one Philox block gives 4 numbers
    Tensor *y = out_like(c, x->ndim, x->shape);
    KERNEL(be, dropout_fwd, "dropout")(y->data, x->data, n, p, seed, offset);
    if (tape_wants(c, in, 1)) {
        Node *nd = tape_push(c, OP_DROPOUT, in, 1, y);
        nd->p.dropout.p = p;
        nd->p.dropout.seed = seed;
        nd->p.dropout.offset = offset;
    }
    return y;
}

void bw_dropout(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    const Backend *be = backend_get(n->out->device);
    KERNEL(be, dropout_bwd, "dropout")(gx, n->out->grad->data, numel_l(n->in[0]), n->p.dropout.p,
                                       n->p.dropout.seed, n->p.dropout.offset);
}

// ---------------------------------------------------------------- layernorm
// Checks x (..., D) f32 and w, b (D) both given or both NULL; returns D.
static int ln_check(const char *name, Tensor **in, int n_in, Tensor *x, Tensor *w, Tensor *b) {
    if (x->dtype != HYP_F32 || last_dim(x) == 0)
        op_shape_error(name, "input must be f32 with a non-empty last dim", in, n_in);
    int D = last_dim(x);
    if ((w == NULL) != (b == NULL)) op_shape_error(name, "w and b must both be given or both be NULL", in, n_in);
    if (w && (w->ndim != 1 || w->shape[0] != D || b->ndim != 1 || b->shape[0] != D ||
              w->dtype != HYP_F32 || b->dtype != HYP_F32))
        op_shape_error(name, "w and b must be f32 of shape (D), D the input's last dim", in, n_in);
    return D;
}

Tensor *op_layernorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps) {
    Tensor *in[3] = {x, w, b};
    int n_in = w ? 3 : 1;
    const Backend *be = op_backend("layernorm", in, n_in);
    int D = ln_check("layernorm", in, n_in, x, w, b);
    long rows = numel_l(x) / D;
    Tensor *y = out_like(c, x->ndim, x->shape);
    Tensor *mean = tensor_new(c, HYP_F32, HYP_SHAPE((int)rows));
    Tensor *rstd = tensor_new(c, HYP_F32, HYP_SHAPE((int)rows));
    KERNEL(be, layernorm_fwd, "layernorm")(y->data, mean->data, rstd->data, x->data,
                                           w ? w->data : NULL, b ? b->data : NULL, rows, D, eps);
    if (tape_wants(c, in, n_in)) {
        Node *n = tape_push(c, OP_LAYERNORM, in, n_in, y);
        n->p.ln.eps = eps;
        n->saved[0] = mean;
        n->saved[1] = rstd;
    }
    return y;
}

void bw_layernorm(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->n_in > 1 ? n->in[1] : NULL;
    float *gx = in_grad(c, n, 0);
    float *gw = w ? in_grad(c, n, 1) : NULL, *gb = w ? in_grad(c, n, 2) : NULL;
    if (!gx && !gw && !gb) return;
    int D = last_dim(x);
    const Backend *be = backend_get(n->out->device);
    KERNEL(be, layernorm_bwd, "layernorm")(gx, gw, gb, n->out->grad->data, x->data, n->saved[0]->data,
                                           n->saved[1]->data, w ? w->data : NULL, numel_l(x) / D, D);
}

// y = LayerNorm(dropout(x, p) + residual). The dropped x lives in a scratch buffer only
// while the sum is formed: backward needs the sum s (saved) and regenerates the dropout
// mask from Philox, so the pair costs one (..., D) tensor less than op_dropout then
// op_add_layernorm, with bitwise the same results (the same kernels in the same order).
Tensor *op_dropout_add_layernorm(Ctx *c, Tensor *x, Tensor *residual, Tensor *w, Tensor *b, float eps, float p) {
    Tensor *in[4] = {x, residual, w, b};
    int n_in = w ? 4 : 2;
    const Backend *be = op_backend("add_layernorm", in, n_in);
    int D = ln_check("add_layernorm", in, n_in, x, w, b);
    if (!same_shape(x, residual) || residual->dtype != HYP_F32)
        op_shape_error("add_layernorm", "x and residual must be f32 of the same shape", in, n_in);
    HYP_CHECK(p >= 0.0f && p < 1.0f, "op dropout: probability %g outside [0, 1)", (double)p);
    const bool drop = c->training && p > 0.0f;
    long rows = numel_l(x) / D, numel = numel_l(x);
    uint64_t seed = c->seed, offset = c->rng_offset;
    Tensor *xd = x;   // dropout(x)
    if (drop) {
        c->rng_offset += ((uint64_t)numel + 3) / 4;   // as op_dropout draws
        xd = tensor_new(c, HYP_F32, x->ndim, x->shape);
        KERNEL(be, dropout_fwd, "dropout")(xd->data, x->data, numel, p, seed, offset);
    }
    Tensor *y = out_like(c, x->ndim, x->shape);
    Tensor *s = tensor_new(c, HYP_F32, x->ndim, x->shape);   // dropout(x) + residual
    Tensor *mean = tensor_new(c, HYP_F32, HYP_SHAPE((int)rows));
    Tensor *rstd = tensor_new(c, HYP_F32, HYP_SHAPE((int)rows));
    KERNEL(be, add_layernorm_fwd, "add_layernorm")(y->data, s->data, mean->data, rstd->data, xd->data,
                                                   residual->data, w ? w->data : NULL,
                                                   b ? b->data : NULL, rows, D, eps);
    if (drop) tensor_release(c, xd);
    if (tape_wants(c, in, n_in)) {
        Node *n = tape_push(c, OP_ADD_LAYERNORM, in, n_in, y);
        n->p.ln.eps = eps;
        n->p.ln.p = drop ? p : 0.0f, n->p.ln.seed = seed, n->p.ln.offset = offset;
        n->saved[0] = s;
        n->saved[1] = mean;
        n->saved[2] = rstd;
    }
    return y;
}

Tensor *op_add_layernorm(Ctx *c, Tensor *x, Tensor *residual, Tensor *w, Tensor *b, float eps) {
    return op_dropout_add_layernorm(c, x, residual, w, b, eps, 0.0f);
}

void bw_add_layernorm(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->n_in > 2 ? n->in[2] : NULL;
    float *gx = in_grad(c, n, 0), *gr = in_grad(c, n, 1);
    float *gw = w ? in_grad(c, n, 2) : NULL, *gb = w ? in_grad(c, n, 3) : NULL;
    if (!gx && !gr && !gw && !gb) return;
    int D = last_dim(x);
    long numel = numel_l(x), rows = numel / D;
    const Backend *be = backend_get(n->out->device);
    const float p = n->p.ln.p;
    // d/d(dropped x) = d/dresidual = d/ds. Unless only one of them is wanted and there is no
    // dropout, LN backward goes into a zeroed scratch that is then added to each (they may
    // already hold gradients from other nodes); x's share goes through the dropout mask.
    Tensor *tmp = NULL;
    float *gs = gx ? gx : gr;
    if ((gx && gr) || (gx && p > 0.0f)) {
        tmp = tensor_zeros(c, HYP_F32, x->ndim, x->shape);
        gs = tmp->data;
    }
    KERNEL(be, layernorm_bwd, "add_layernorm")(gs, gw, gb, n->out->grad->data, n->saved[0]->data,
                                               n->saved[1]->data, n->saved[2]->data,
                                               w ? w->data : NULL, rows, D);
    if (tmp) {
        if (gx && p > 0.0f) KERNEL(be, dropout_bwd, "dropout")(gx, gs, numel, p, n->p.ln.seed, n->p.ln.offset);
        else if (gx) be->axpy(numel, 1.0f, gs, gx);
        if (gr) be->axpy(numel, 1.0f, gs, gr);
        tensor_release(c, tmp);
    }
}

// ---------------------------------------------------------------- softmax
Tensor *op_softmax(Ctx *c, Tensor *x, Tensor *mask) {
    Tensor *in[2] = {x, mask};
    const Backend *be = op_backend("softmax", in, mask ? 2 : 1);
    if (x->dtype != HYP_F32 || last_dim(x) == 0)
        op_shape_error("softmax", "input must be f32 with a non-empty last dim", in, mask ? 2 : 1);
    int cols = last_dim(x);
    long rows = numel_l(x) / cols, rows_per_mask = 1;
    if (mask) {
        if (mask->dtype != HYP_I32 || mask->ndim != 2 || x->ndim < 2 || mask->shape[0] != x->shape[0] ||
            mask->shape[1] != cols)
            op_shape_error("softmax", "mask must be int32 (B, cols) for x (B, ..., cols)", in, 2);
        rows_per_mask = mask->shape[0] ? rows / mask->shape[0] : 1;
    }
    Tensor *y = out_like(c, x->ndim, x->shape);
    if (rows > 0)
        KERNEL(be, softmax_fwd, "softmax")(y->data, x->data, mask ? mask->data : NULL, rows, cols, rows_per_mask);
    if (tape_wants(c, in, 1)) tape_push(c, OP_SOFTMAX, in, mask ? 2 : 1, y);   // y is the saved output
    return y;
}

void bw_softmax(Ctx *c, Node *n) {
    float *gx = in_grad(c, n, 0);
    if (!gx) return;
    Tensor *y = n->out;
    int cols = last_dim(y);
    long rows = numel_l(y) / cols;
    if (rows == 0) return;
    const Backend *be = backend_get(y->device);
    KERNEL(be, softmax_bwd, "softmax")(gx, y->grad->data, y->data, rows, cols);
}

// ---------------------------------------------------------------- per-batch bias rows
Tensor *op_add_rows(Ctx *c, Tensor *x, Tensor *b) {
    Tensor *in[2] = {x, b};
    const Backend *be = op_backend("add_rows", in, 2);
    if (x->dtype != HYP_F32 || b->dtype != HYP_F32 || x->ndim != 3 || b->ndim != 2 ||
        b->shape[0] != x->shape[0] || b->shape[1] != x->shape[2])
        op_shape_error("add_rows", "expected x (B, N, D) and b (B, D)", in, 2);
    Tensor *y = out_like(c, x->ndim, x->shape);
    KERNEL(be, add_rows_fwd, "add_rows")(y->data, x->data, b->data, x->shape[0], x->shape[1], x->shape[2]);
    if (tape_wants(c, in, 2)) tape_push(c, OP_ADD_ROWS, in, 2, y);
    return y;
}

void bw_add_rows(Ctx *c, Node *n) {
    const Backend *be = backend_get(n->out->device);
    Tensor *x = n->in[0];
    float *gx = in_grad(c, n, 0), *gb = in_grad(c, n, 1);
    const float *gy = n->out->grad->data;
    if (gx) be->axpy(numel_l(x), 1.0f, gy, gx);
    if (gb) KERNEL(be, add_rows_bwd, "add_rows")(gb, gy, x->shape[0], x->shape[1], x->shape[2]);
}
