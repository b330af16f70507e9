#include "autograd/ops_internal.h"
#include <stdlib.h>
#include <string.h>

const OpDef hyp_ops[] = {
    [OP_EMBEDDING] = {"embedding", bw_embedding},
    [OP_BINARY] = {"binary", bw_binary},
    [OP_SCALE] = {"scale", bw_scale},
    [OP_MATMUL] = {"matmul", bw_matmul},
    [OP_LINEAR] = {"linear", bw_linear, OP_UNREAD_OUT},
    [OP_LAYERNORM] = {"layernorm", bw_layernorm, OP_UNREAD_OUT},
    // add+LN reads the saved sum, never its input, residual or output
    [OP_ADD_LAYERNORM] = {"add_layernorm", bw_add_layernorm, OP_UNREAD_IN(0) | OP_UNREAD_IN(1) | OP_UNREAD_OUT},
    [OP_UNARY] = {"unary", bw_unary, OP_UNREAD_OUT},
    [OP_ACT_LINEAR] = {"act_linear", bw_act_linear, OP_UNREAD_OUT},
    [OP_SOFTMAX] = {"softmax", bw_softmax},
    [OP_ATTENTION] = {"attention", bw_attention},
    [OP_DROPOUT] = {"dropout", bw_dropout},
    [OP_RESHAPE] = {"reshape", bw_reshape},
    [OP_PERMUTE] = {"permute", bw_permute},
    [OP_SLICE] = {"slice", bw_slice},
    [OP_CONCAT] = {"concat", bw_concat},
    [OP_SUM] = {"sum", bw_sum},
    [OP_CROSS_ENTROPY] = {"cross_entropy", bw_cross_entropy},
    [OP_MSE] = {"mse", bw_mse},
    [OP_ADD_ROWS] = {"add_rows", bw_add_rows},
};
_Static_assert(sizeof hyp_ops / sizeof hyp_ops[0] == OP_COUNT, "every op needs a registry entry");

int tape_registry_check(void) {
    for (int i = 0; i < OP_COUNT; i++)
        if (!hyp_ops[i].name || !hyp_ops[i].backward) return i;
    return -1;
}

bool tape_wants(Ctx *c, Tensor **in, int n_in) {
    if (!grad_enabled(c)) return false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

OpProfile hyp_profile;
static double profile_last;

bool profile_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("HYP_PROFILE");
        on = e && *e && *e != '0';
    }
    return on;
}
void profile_mark(void) { profile_last = hyp_now(); }
void profile_report(FILE *out) {
    double tf = 0, tb = 0;
    for (int i = 0; i < OP_COUNT; i++) { tf += hyp_profile.fwd[i]; tb += hyp_profile.bwd[i]; }
    fprintf(out, "%-16s %8s %10s %10s\n", "op", "calls", "fwd ms", "bwd ms");
    for (int i = 0; i < OP_COUNT; i++)
        if (hyp_profile.calls[i])
            fprintf(out, "%-16s %8ld %10.1f %10.1f\n", hyp_ops[i].name, hyp_profile.calls[i],
                    hyp_profile.fwd[i] * 1e3, hyp_profile.bwd[i] * 1e3);
    fprintf(out, "%-16s %8s %10.1f %10.1f\n", "total", "", tf * 1e3, tb * 1e3);
}

Node *tape_push(Ctx *c, OpId op, Tensor **in, int n_in, Tensor *out) {
    if (profile_enabled()) {
        backend_get(out->device)->synchronize();
        double now = hyp_now();
        if (profile_last > 0) hyp_profile.fwd[op] += now - profile_last;
        hyp_profile.calls[op]++;
        profile_last = now;
    }
    HYP_CHECK(n_in <= HYP_MAX_IN, "op %s: %d inputs (max %d)", hyp_ops[op].name, n_in, HYP_MAX_IN);
    Tape *t = c->tape;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->nodes = hyp_realloc(t->nodes, t->cap * sizeof(Node));
    }
    Node *n = &t->nodes[t->n++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    n->out = out;
    out->requires_grad = true;
    return n;
}

void tape_clear(Tape *t) { t->n = 0; }

float *in_grad(Ctx *c, Node *n, int i) {
    Tensor *x = n->in[i];
    if (!x || !x->requires_grad || x->dtype != HYP_F32) return NULL;
    return tensor_grad(c, x)->data;
}

float *in_grad_for_gemm(Ctx *c, Node *n, int i, float *beta) {
    Tensor *x = n->in[i];
    if (!x || !x->requires_grad || x->dtype != HYP_F32) return NULL;
    bool fresh;
    float *g = tensor_grad_ex(c, x, &fresh)->data;
    *beta = fresh ? 0.0f : 1.0f;   // first contribution: the caller's GEMM overwrites
    return g;
}

Tensor *out_like(Ctx *c, int ndim, const int *shape) {
    return tensor_new(c, HYP_F32, ndim, shape);
}

// Whether n's backward reads t (OpDef.unread says what it never reads).
static bool node_reads(const Node *n, const Tensor *t) {
    const unsigned unread = hyp_ops[n->op].unread;
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] == t && !(unread & OP_UNREAD_IN(i))) return true;
    for (int i = 0; i < HYP_MAX_SAVED; i++)
        if (n->saved[i] == t) return true;
    return n->out == t && !(unread & OP_UNREAD_OUT);
}

// Kept-bf16 tensors (tensor_keep_bf16) get fp32 values for the nodes that read them. live:
// the ones thawed so far; those n reads stay thawed (adjacent nodes often share one: the layer
// input of the q, k and v linears, the attention output), the others are frozen; then every
// other kept tensor n reads is thawed. Returns how many are live for n.
static int thaw_for_node(Ctx *c, const Node *n, Tensor **live, int n_live) {
    int k = 0;
    for (int j = 0; j < n_live; j++) {
        if (node_reads(n, live[j])) live[k++] = live[j];
        else tensor_freeze(c, live[j]);
    }
    const unsigned unread = hyp_ops[n->op].unread;
    for (int i = 0; i < n->n_in; i++)
        if (!(unread & OP_UNREAD_IN(i)) && tensor_thaw(c, n->in[i])) live[k++] = n->in[i];
    for (int i = 0; i < HYP_MAX_SAVED; i++)
        if (tensor_thaw(c, n->saved[i])) live[k++] = n->saved[i];
    if (!(unread & OP_UNREAD_OUT) && tensor_thaw(c, n->out)) live[k++] = n->out;
    return k;
}

static void run_backward(Ctx *c) {
    // Nodes whose output received no gradient are skipped: nothing flows from them.
    Tensor *live[HYP_MAX_IN + HYP_MAX_SAVED + 1];   // kept-bf16 tensors thawed, in fp32 for now
    int n_live = 0;
    for (int i = c->tape->n - 1; i >= 0; i--) {
        Node *n = &c->tape->nodes[i];
        if (c->after_backward_node && i < c->tape->n - 1) c->after_backward_node(c, i + 1, c->after_backward_user);
        if (!n->out->grad) continue;
        n_live = thaw_for_node(c, n, live, n_live);
        if (profile_enabled()) {
            const Backend *be = backend_get(n->out->device);
            be->synchronize();
            double t0 = hyp_now();
            hyp_ops[n->op].backward(c, n);
            be->synchronize();
            hyp_profile.bwd[n->op] += hyp_now() - t0;
        } else {
            hyp_ops[n->op].backward(c, n);
        }
        // n->out's gradient has reached n's inputs; no other node reads it (the tape is in
        // creation order, so every consumer of n->out ran before n).
        tensor_release_grad(c, n->out);
    }
    for (int j = 0; j < n_live; j++) tensor_freeze(c, live[j]);
    if (c->after_backward_node && c->tape->n) c->after_backward_node(c, 0, c->after_backward_user);
    // Like PyTorch without retain_graph: the graph is consumed, so a later backward
    // (e.g. gradient accumulation) cannot run these nodes a second time.
    tape_clear(c->tape);
}

void backward(Ctx *c, Tensor *loss) {
    HYP_CHECK(tensor_numel(loss) == 1, "backward: loss must be a scalar, has %zu elements", tensor_numel(loss));
    HYP_CHECK(loss->requires_grad, "backward: loss does not depend on anything that requires grad");
    tensor_fill_f32(tensor_grad(c, loss), 1.0f);
    run_backward(c);
}

void backward_from(Ctx *c, Tensor *out, const Tensor *grad_out) {
    HYP_CHECK(same_shape(out, grad_out) && out->device == grad_out->device,
              "backward_from: gradient shape/device does not match the output");
    HYP_CHECK(out->requires_grad, "backward_from: output does not require grad");
    Tensor *g = tensor_grad(c, out);
    backend_get(out->device)->copy(g->data, grad_out->data, tensor_bytes(g), COPY_D2D);
    run_backward(c);
}

// ---------------------------------------------------------------- op helpers
const Backend *op_backend(const char *op, Tensor **in, int n_in) {
    Device d = in[0]->device;
    for (int i = 1; i < n_in; i++)
        if (in[i] && in[i]->device != d)
            HYP_FATAL("op %s: input %d is on %s, input 0 on %s", op, i, device_name(in[i]->device), device_name(d));
    return backend_get(d);
}

void op_shape_error(const char *op, const char *why, Tensor **in, int n_in) {
    char msg[1024];
    size_t k = (size_t)snprintf(msg, sizeof msg, "op %s: %s; input shapes:", op, why);
    for (int i = 0; i < n_in && k < sizeof msg; i++) {
        char b[64];
        k += (size_t)snprintf(msg + k, sizeof msg - k, " %s", in[i] ? shape_str(in[i], b, sizeof b) : "NULL");
    }
    HYP_FATAL("%s", msg);
}
