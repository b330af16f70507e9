// ops_matmul.c: matmul (batched, transposes, broadcast) and linear.
#include "autograd/ops_internal.h"

// A GEMM operand as the backend reads it: under bf16 precision a parameter (or a slice of
// one) comes from the parameters' bf16 copy, made once per optimizer step (paramset_bf16)
// instead of being rounded on every call; anything else is the fp32 data itself.
typedef struct { const void *p; bool bf16; } GemmIn;
static GemmIn gemm_in(const Ctx *c, const void *data) {
    if (c->matmul_precision == HYP_MATMUL_BF16 && c->params && c->params->device == c->device) {
        const uint16_t *h = paramset_bf16_of(c->params, data);
        if (h) return (GemmIn){h, true};
    }
    return (GemmIn){data, false};
}

// C = alpha op(A) op(B) (+ bias, before the bf16 rounding) + beta C through gemm_ex with A
// and B as gemm_in reads them.
static void gemm_bias_op(const Ctx *c, const Backend *be, const char *op, bool ta, bool tb, int M, int N, int K,
                         float alpha, const float *A, long long sA, const float *B, long long sB, const float *bias,
                         float beta, float *C, long long sC, int batch) {
    GemmIn a = gemm_in(c, A), b = gemm_in(c, B);
    KERNEL(be, gemm_ex, op)(ta, tb, M, N, K, alpha, a.p, a.bf16, sA, b.p, b.bf16, sB, bias, beta, C, sC, batch,
                            c->matmul_precision);
}
static void gemm_op(const Ctx *c, const Backend *be, const char *op, bool ta, bool tb, int M, int N, int K,
                    float alpha, const float *A, long long sA, const float *B, long long sB, float beta, float *C,
                    long long sC, int batch) {
    gemm_bias_op(c, be, op, ta, tb, M, N, K, alpha, A, sA, B, sB, NULL, beta, C, sC, batch);
}

// Leading ("batch") element count of a tensor used as a matrix operand.
static int batch_of(const Tensor *t) { return (int)dims_prod(t, 0, t->ndim - 2); }

Tensor *op_matmul(Ctx *c, Tensor *a, Tensor *b, bool ta, bool tb) {
    Tensor *in[2] = {a, b};
    const Backend *be = op_backend("matmul", in, 2);
    if (a->ndim < 2 || b->ndim < 2 || a->dtype != HYP_F32 || b->dtype != HYP_F32)
        op_shape_error("matmul", "operands must be f32 with at least 2 dims", in, 2);
    int M = a->shape[a->ndim - (ta ? 1 : 2)], K = a->shape[a->ndim - (ta ? 2 : 1)];
    int Kb = b->shape[b->ndim - (tb ? 1 : 2)], N = b->shape[b->ndim - (tb ? 2 : 1)];
    if (K != Kb) op_shape_error("matmul", "inner dimensions differ", in, 2);
    // Leading dims: equal, or one side 2-D (broadcast over the other's batch).
    const Tensor *lead = a->ndim >= b->ndim ? a : b;
    if (a->ndim > 2 && b->ndim > 2) {
        if (a->ndim != b->ndim) op_shape_error("matmul", "batch ranks differ", in, 2);
        for (int i = 0; i < a->ndim - 2; i++)
            if (a->shape[i] != b->shape[i]) op_shape_error("matmul", "batch dims differ", in, 2);
    }
    int ba = a->ndim > 2 ? batch_of(a) : 0, bb = b->ndim > 2 ? batch_of(b) : 0;
    int batch = ba > bb ? ba : bb;
    if (batch == 0) batch = 1;
    int shape[HYP_MAX_DIMS];
    for (int i = 0; i < lead->ndim - 2; i++) shape[i] = lead->shape[i];
    shape[lead->ndim - 2] = M;
    shape[lead->ndim - 1] = N;
    Tensor *y = out_like(c, lead->ndim, shape);
    gemm_op(c, be, "matmul", ta, tb, M, N, K, 1.0f, a->data, ba ? (long long)M * K : 0, b->data,
            bb ? (long long)K * N : 0, 0.0f, y->data, (long long)M * N, batch);
    if (tape_wants(c, in, 2)) {
        Node *n = tape_push(c, OP_MATMUL, in, 2, y);
        n->p.matmul.ta = ta;
        n->p.matmul.tb = tb;
        n->p.matmul.batch_a = ba;
        n->p.matmul.batch_b = bb;
    }
    return y;
}

void bw_matmul(Ctx *c, Node *n) {
    Tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    const Backend *be = backend_get(y->device);
    bool ta = n->p.matmul.ta, tb = n->p.matmul.tb;
    int ba = n->p.matmul.batch_a, bb = n->p.matmul.batch_b;
    int M = y->shape[y->ndim - 2], N = y->shape[y->ndim - 1];
    int K = a->shape[a->ndim - (ta ? 2 : 1)];
    int batch = ba > bb ? ba : bb;
    if (batch == 0) batch = 1;
    long long sA = (long long)M * K, sB = (long long)K * N, sC = (long long)M * N;
    const float *A = a->data, *B = b->data, *G = y->grad->data;
    float *gA = in_grad(c, n, 0), *gB = in_grad(c, n, 1);
    // A 2-D operand broadcast over the batch accumulates one GEMM per batch element
    // (a batched GEMM writing one output would race on the GPU).
    if (gA) {
        int nz = ba ? 1 : batch, bz = ba ? batch : 1;
        for (int z = 0; z < nz; z++) {
            const float *Gz = G + z * sC, *Bz = B + (bb ? z * sB : 0);
            long long sG = ba ? sC : 0, sBz = ba && bb ? sB : 0;
            if (!ta)   // dA (M,K) += dC op(B)^T
                gemm_op(c, be, "matmul", false, !tb, M, K, N, 1.0f, Gz, sG, Bz, sBz, 1.0f, gA, ba ? sA : 0, bz);
            else       // dA (K,M) += op(B) dC^T
                gemm_op(c, be, "matmul", tb, true, K, M, N, 1.0f, Bz, sBz, Gz, sG, 1.0f, gA, ba ? sA : 0, bz);
        }
    }
    if (gB) {
        int nz = bb ? 1 : batch, bz = bb ? batch : 1;
        for (int z = 0; z < nz; z++) {
            const float *Gz = G + z * sC, *Az = A + (ba ? z * sA : 0);
            long long sG = bb ? sC : 0, sAz = bb && ba ? sA : 0;
            if (!tb)   // dB (K,N) += op(A)^T dC
                gemm_op(c, be, "matmul", !ta, false, K, N, M, 1.0f, Az, sAz, Gz, sG, 1.0f, gB, bb ? sB : 0, bz);
            else       // dB (N,K) += dC^T op(A)
                gemm_op(c, be, "matmul", true, ta, N, K, M, 1.0f, Gz, sG, Az, sAz, 1.0f, gB, bb ? sB : 0, bz);
        }
    }
}

// The checks and output shape of linear(x, w, b) for an op named name; *rows = x's rows.
static Tensor *linear_out(Ctx *c, const char *name, Tensor *x, Tensor *w, Tensor *b, long *rows) {
    Tensor *in[3] = {x, w, b};
    int din = x->shape[x->ndim - 1];
    if (w->ndim != 2 || w->shape[1] != din || (b && (b->ndim != 1 || b->shape[0] != w->shape[0])))
        op_shape_error(name, "expected x (..., in), w (out, in), b (out)", in, b ? 3 : 2);
    *rows = (long)(tensor_numel(x) / (size_t)din);
    int shape[HYP_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = w->shape[0];
    return out_like(c, x->ndim, shape);
}

// y (rows, out) = x (rows, in) w^T + b, at the context's precision.
static void linear_fwd(Ctx *c, const Backend *be, const char *name, const float *x, long rows, Tensor *w, Tensor *b,
                       float *y) {
    const int din = w->shape[1], dout = w->shape[0];
    if (c->matmul_precision == HYP_MATMUL_BF16) {   // autocast's addmm: one rounding, after the bias
        gemm_bias_op(c, be, name, false, true, (int)rows, dout, din, 1.0f, x, 0, w->data, 0, b ? b->data : NULL, 0.0f,
                     y, 0, 1);
    } else {
        gemm_op(c, be, name, false, true, (int)rows, dout, din, 1.0f, x, 0, w->data, 0, 0.0f, y, 0, 1);
        if (b) be->binary_fwd(BIN_ADD, y, y, b->data, rows * dout, dout);
    }
}

// The gradients of y = x w^T + b from G = dy (rows, out): gx (beta: 0 overwrites, 1 adds),
// gw and gb added; each may be NULL.
static void linear_bwd(Ctx *c, const Backend *be, const char *name, const float *G, const float *x, long rows,
                       Tensor *w, Tensor *b, float *gx, float bx, float *gw, float *gb) {
    const int din = w->shape[1], dout = w->shape[0];
    if (gx) gemm_op(c, be, name, false, false, (int)rows, din, dout, 1.0f, G, 0, w->data, 0, bx, gx, 0, 1);
    if (gw) gemm_op(c, be, name, true, false, dout, din, (int)rows, 1.0f, G, 0, x, 0, 1.0f, gw, 0, 1);
    // The bias gradient is the column sum of dY: binary_bwd of an add reduces over rows
    // (the a/b operands only matter for mul; pass valid buffers of the right sizes).
    if (gb) be->binary_bwd(BIN_ADD, NULL, gb, G, G, b->data, rows * dout, dout);
}

Tensor *op_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b) {
    Tensor *in[3] = {x, w, b};
    const Backend *be = op_backend("linear", in, b ? 3 : 2);
    long rows;
    Tensor *y = linear_out(c, "linear", x, w, b, &rows);
    linear_fwd(c, be, "linear", x->data, rows, w, b, y->data);
    if (tape_wants(c, in, b ? 3 : 2)) tape_push(c, OP_LINEAR, in, b ? 3 : 2, y);
    return y;
}

void bw_linear(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    float bx;
    float *gx = in_grad_for_gemm(c, n, 0, &bx), *gw = in_grad(c, n, 1), *gb = b ? in_grad(c, n, 2) : NULL;
    linear_bwd(c, backend_get(n->out->device), "linear", n->out->grad->data, x->data,
               (long)(tensor_numel(x) / (size_t)w->shape[1]), w, b, gx, bx, gw, gb);
}

// linear(act(z), w, b) keeping only z: act(z) lives in a scratch buffer for the GEMM and is
// recomputed in backward (train.recompute = act; llm.c's -r). The same kernels in the same
// order as op_linear(op_unary(z)), so the results are bitwise those of the unfused pair.
Tensor *op_act_linear(Ctx *c, UnaryOp act, Tensor *z, Tensor *w, Tensor *b) {
    const char *name = hyp_unary_name(act);
    HYP_CHECK(name, "op act_linear: unknown activation %d", (int)act);
    Tensor *in[3] = {z, w, b};
    const Backend *be = op_backend("act_linear", in, b ? 3 : 2);
    require_f32("act_linear", in, b ? 3 : 2);
    long rows;
    Tensor *y = linear_out(c, "act_linear", z, w, b, &rows);
    Tensor *h = tensor_new(c, HYP_F32, z->ndim, z->shape);   // act(z), (..., in)
    KERNEL(be, unary_fwd, name)(act, h->data, z->data, (long)tensor_numel(z));
    linear_fwd(c, be, "act_linear", h->data, rows, w, b, y->data);
    tensor_release(c, h);
    if (tape_wants(c, in, b ? 3 : 2)) tape_push(c, OP_ACT_LINEAR, in, b ? 3 : 2, y)->p.unary.op = act;
    return y;
}

void bw_act_linear(Ctx *c, Node *n) {
    Tensor *z = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    const Backend *be = backend_get(n->out->device);
    const UnaryOp act = n->p.unary.op;
    const long rows = (long)(tensor_numel(z) / (size_t)w->shape[1]), nz = (long)tensor_numel(z);
    float *gz = in_grad(c, n, 0), *gw = in_grad(c, n, 1), *gb = b ? in_grad(c, n, 2) : NULL;
    Tensor *h = tensor_new(c, HYP_F32, z->ndim, z->shape);    // act(z) again
    be->unary_fwd(act, h->data, z->data, nz);
    Tensor *dh = gz ? tensor_new(c, HYP_F32, z->ndim, z->shape) : NULL;   // d act(z), overwritten
    linear_bwd(c, be, "act_linear", n->out->grad->data, h->data, rows, w, b, dh ? dh->data : NULL, 0.0f, gw, gb);
    tensor_release(c, h);
    if (dh) {
        be->unary_bwd(act, gz, dh->data, z->data, nz);
        tensor_release(c, dh);
    }
}
