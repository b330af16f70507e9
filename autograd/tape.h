// tape.h: eager ops append nodes; backward walks them in reverse.
#ifndef HYP_TAPE_H
#define HYP_TAPE_H
#include "autograd/tensor.h"
#include "kernels/kernels.h"

#define HYP_MAX_IN 8      // most inputs of one node (concat)
#define HYP_MAX_SAVED 4

typedef enum {
    OP_EMBEDDING,
    OP_BINARY,          // add, sub, mul with broadcasting of the second operand
    OP_SCALE,
    OP_MATMUL,
    OP_LINEAR,
    OP_LAYERNORM,
    OP_ADD_LAYERNORM,
    OP_UNARY,           // relu, gelu
    OP_SOFTMAX,
    OP_ATTENTION,
    OP_DROPOUT,
    OP_RESHAPE,
    OP_PERMUTE,         // transpose is a permute
    OP_SLICE,
    OP_CONCAT,
    OP_SUM,             // sum and mean
    OP_CROSS_ENTROPY,
    OP_MSE,
    OP_ADD_ROWS,        // per-batch bias rows
    OP_ACT_LINEAR,      // linear(act(z)) with act(z) recomputed in backward
    OP_COUNT
} OpId;

// Small POD parameters of a node; the member is named after the op.
typedef union OpParams {
    struct { bool ta, tb; int batch_a, batch_b; } matmul;   // batch_* = 0 when 2-D (broadcast)
    struct { int padding_idx; } embedding;                  // -1: every row gets gradients
    struct { float eps, p; uint64_t seed, offset; } ln;   // p: dropout of add_layernorm's x
    struct { BinaryOp op; } binary;
    struct { float alpha; } scale;
    struct { UnaryOp op; } unary;
    struct { float p; uint64_t seed, offset; } dropout;
    struct { int shape[4]; int perm[4]; } permute;          // input shape padded to 4-D
    struct { int dim, start; } slice;
    struct { int dim; } concat;
    struct { int heads; float scale, p; uint64_t seed, offset; MatmulPrecision prec; } attn;   // p: probs dropout
    struct { float mult; } sum;                               // 1 (sum) or 1/n (mean)
} OpParams;

typedef struct Node {
    OpId op;
    int n_in;
    Tensor *in[HYP_MAX_IN];
    Tensor *out;
    Tensor *saved[HYP_MAX_SAVED];   // op-specific tensors kept for backward
    OpParams p;
} Node;

typedef struct Tape {
    Node *nodes;
    int n, cap;
} Tape;

// One registry entry per op: its name (for errors) and its backward, which reads
// node->out->grad and accumulates into the inputs' gradients.
// unread: values the backward never reads (bit i: in[i], OP_UNREAD_OUT: out), so that the
// tape does not thaw them when they are kept as bf16 (tensor_keep_bf16); 0 thaws every one.
typedef struct OpDef {
    const char *name;
    void (*backward)(Ctx *c, Node *n);
    unsigned unread;
} OpDef;
#define OP_UNREAD_IN(i) (1u << (i))
#define OP_UNREAD_OUT (1u << HYP_MAX_IN)
// Unsized here, so that tape.c's _Static_assert on its length really guards the table;
// holes inside it (an op without an entry) are found by tape_registry_check().
extern const OpDef hyp_ops[];
// The first op whose entry has no name or no backward, or -1 when every op has both.
int tape_registry_check(void);

// True if any input requires grad and recording is on; then out->requires_grad is set.
bool tape_wants(Ctx *c, Tensor **in, int n_in);
// Append a node (only call when tape_wants returned true). Returns it so the op can
// fill saved tensors and params.
Node *tape_push(Ctx *c, OpId op, Tensor **in, int n_in, Tensor *out);
void tape_clear(Tape *t);

// Per-op time profile (HYP_PROFILE=1 in the environment): forward time is the time
// from the previous recorded op to this op's node (host work in between included),
// backward time is each backward call. Synchronises the device around each backward.
typedef struct OpProfile { double fwd[OP_COUNT], bwd[OP_COUNT]; long calls[OP_COUNT]; } OpProfile;
extern OpProfile hyp_profile;
bool profile_enabled(void);
void profile_mark(void);                       // start of a forward pass
void profile_report(FILE *out);                // table of the accumulated times

// Backward from a scalar loss (d loss / d loss = 1). Consumes the tape (clears it).
void backward(Ctx *c, Tensor *loss);
// Backward with an explicit upstream gradient for `out` (same shape, same device).
void backward_from(Ctx *c, Tensor *out, const Tensor *grad_out);

#endif
