// tensor.h: tensors, arenas, the execution context, parameter sets.
// Shapes are in PyTorch order (outermost first), row-major, contiguous.
#ifndef HYP_TENSOR_H
#define HYP_TENSOR_H
#include "autograd/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { HYP_F32 = 0, HYP_BF16 = 1, HYP_I32 = 2 } DType;
typedef enum { HYP_CPU = 0, HYP_CUDA = 1 } Device;
#define HYP_MAX_DIMS 4

typedef struct Tensor {
    DType dtype;
    Device device;
    int ndim;
    int shape[HYP_MAX_DIMS];
    void *data;            // numel elements of dtype, on device
    uint16_t *bf16;        // (numel,) bf16 copy kept for backward (tensor_keep_bf16), or NULL
    struct Tensor *grad;   // f32, same shape; NULL until a gradient flows in
    bool requires_grad;
    const char *name;      // parameters only (HF-style name)
} Tensor;

size_t dtype_size(DType dt);
const char *dtype_name(DType dt);
const char *device_name(Device d);
size_t tensor_numel(const Tensor *t);
size_t tensor_bytes(const Tensor *t);
static inline float *tensor_f32(const Tensor *t) { return (float *)t->data; }
static inline int32_t *tensor_i32(const Tensor *t) { return (int32_t *)t->data; }
// "[2, 3, 4]" into buf (for error messages).
const char *shape_str(const Tensor *t, char *buf, size_t n);
bool same_shape(const Tensor *a, const Tensor *b);
// Product of dims [from, to).
size_t dims_prod(const Tensor *t, int from, int to);

// ---- arenas: bump allocators, one per lifetime (activations per step, etc.)
// Memory grows in blocks so pointers stay valid; reset keeps one block sized
// to the high-water mark so steady-state steps never call the allocator.
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    Device device;
    bool host;              // host memory from malloc, never the device's backend (tensor headers)
    ArenaBlock *head;       // current block (linked to older blocks)
    size_t block_size;
    size_t used_total;      // bytes handed out since reset
    size_t high_water;      // most bytes handed out between two resets
    size_t held, peak_held; // bytes of blocks allocated now / at most (what the device holds)
} Arena;
Arena *arena_new(Device device, size_t block_size);
void *arena_alloc(Arena *a, size_t bytes);   // 256-byte aligned, uninitialised
void arena_reset(Arena *a);
int arena_blocks(const Arena *a);              // blocks currently held
// Peak accounting since creation: *handed = most bytes handed out between resets (the
// steady-state block size), *held = most bytes of blocks held at once (the first step's
// blocks outgrown mid-step included). Either may be NULL. Returns *held.
size_t arena_peak(const Arena *a, size_t *handed, size_t *held);
void arena_free(Arena *a);

// ---- the tape (autograd/tape.h has the node type)
struct Tape;

// ---- execution context: where new tensors go, whether ops are recorded.
// GEMM precision (train.precision; docs/precision.md says what is rounded where).
// F32: fp32 operands and accumulation. BF16: operands rounded to bf16, fp32 accumulation,
// the product rounded to bf16 (PyTorch autocast's bf16 outputs). TF32: operands rounded to
// tf32 (10 mantissa bits), fp32 accumulation and output. The CPU emulates BF16 and TF32
// with the same roundings, so they are specified and tested there.
typedef enum { HYP_MATMUL_F32 = 0, HYP_MATMUL_BF16 = 1, HYP_MATMUL_TF32 = 2 } MatmulPrecision;
struct ParamSet;
typedef struct GradSlot { void *data; size_t bytes; } GradSlot;
typedef struct Ctx {
    Device device;
    Arena *act;             // activations and their gradients; reset per step
    // Buffers of act given back (tensor_release, tensor_release_grad): a later tensor_new of
    // the same size reuses one instead of growing act, so backward holds about a layer's
    // gradients, not all of them (PyTorch frees them likewise). Emptied with act.
    GradSlot *grad_free;
    int n_grad_free, cap_grad_free;
    Arena *hdr;             // tensor headers (always host memory); reset with act
    struct Tape *tape;
    int no_grad_depth;      // > 0: ops are not recorded
    bool training;          // dropout active
    uint64_t seed;          // Philox key for dropout
    uint64_t rng_offset;    // Philox counter base; advanced by every random op
    MatmulPrecision matmul_precision;  // every backend (the CPU emulates bf16/tf32); default F32
    // Parameters whose bf16 copy (paramset_bf16, made once per optimizer step) BF16 GEMMs read
    // instead of rounding the weight on every call; NULL: operands are rounded per call.
    struct ParamSet *params;
    // Called after each tape node's backward (node index, descending) when set: lets the
    // trainer start all-reducing gradient buckets that are already final.
    void (*after_backward_node)(struct Ctx *c, int node_index, void *user);
    void *after_backward_user;
} Ctx;

Ctx *ctx_new(Device device);
void ctx_free(Ctx *c);
// Drop all activations and tape nodes (after the optimizer step).
void ctx_reset(Ctx *c);
static inline void no_grad_begin(Ctx *c) { c->no_grad_depth++; }
static inline void no_grad_end(Ctx *c) { c->no_grad_depth--; }
static inline bool grad_enabled(const Ctx *c) { return c->no_grad_depth == 0; }

// New activation tensor in c->act (uninitialised / zeroed): a released buffer of the same
// size (tensor_release, tensor_release_grad) when there is one.
Tensor *tensor_new(Ctx *c, DType dt, int ndim, const int *shape);
Tensor *tensor_zeros(Ctx *c, DType dt, int ndim, const int *shape);
// Shape literal for (ndim, shape) arguments: tensor_new(c, HYP_F32, HYP_SHAPE(2, 3)).
#define HYP_SHAPE(...) (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__}
// A tensor header viewing existing memory (no copy); shape must match numel of caller's buffer.
Tensor *tensor_view(Ctx *c, const Tensor *src, int ndim, const int *shape);
// A tensor header over memory the caller owns (on the context's device); no copy.
Tensor *tensor_wrap(Ctx *c, DType dt, void *data, int ndim, const int *shape);
// Copy of t (any device) as a new tensor on the context's device.
Tensor *tensor_to_ctx(Ctx *c, const Tensor *t);
// Host <-> tensor copies (t may live on any device).
void tensor_from_host(Tensor *t, const void *host);
void tensor_to_host(const Tensor *t, void *host);
// Zeroed gradient buffer of t (in c->act unless t already has one, e.g. parameters).
Tensor *tensor_grad(Ctx *c, Tensor *t);
// The same for a caller that overwrites every element when the buffer is new: *fresh says
// whether it is (then it is left unfilled) or already holds contributions.
Tensor *tensor_grad_ex(Ctx *c, Tensor *t, bool *fresh);
void tensor_fill_f32(Tensor *t, float v);
// Nothing reads t's values again (an op's temporary; or an output whose consumers' forwards
// have run and that no backward reads, e.g. a linear output only an add+LayerNorm read): its
// buffer (any act tensor's) goes back for reuse and t->data becomes NULL. The header (shape,
// gradient) stays valid.
void tensor_release(Ctx *c, Tensor *t);
// Under bf16 GEMMs (train.precision = bf16), an activation that backward reads only as bf16
// numbers (a bf16 GEMM's output, or a GEMM input, which the GEMM rounds; docs/precision.md)
// and whose forward consumers have all run: its values move to a bf16 copy of half the size
// and the fp32 buffer goes back for reuse (t->data NULL), as autocast saves bf16 tensors.
// Backward sees the fp32 values again: the tape thaws a kept tensor into a fresh fp32 buffer
// for the backward nodes that read it (tensor_thaw; adjacent readers share one) and gives the
// buffer back at the first later node that does not (tensor_freeze).
void tensor_keep_bf16(Ctx *c, Tensor *t);
// t kept as bf16 and without fp32 values: gives it an fp32 buffer holding them, returns true.
bool tensor_thaw(Ctx *c, Tensor *t);
void tensor_freeze(Ctx *c, Tensor *t);   // undoes tensor_thaw (the bf16 copy stays)
// Backward is done with t's gradient (t is an op's output whose producer's backward has run):
// its buffer goes back to c for reuse and t->grad becomes NULL.
void tensor_release_grad(Ctx *c, Tensor *t);

// ---- parameter sets: named parameters in one contiguous buffer, grads in another.
typedef struct ParamSet {
    Device device;
    int n, cap;
    Tensor **params;        // params[i]->name is its HF-style name
    size_t numel;           // total floats
    float *data;            // (numel,) all parameters, in registration order
    float *grad;            // (numel,)
    bool finalized;
    // bf16 copy of data for BF16 GEMMs: remade by paramset_bf16 when version moved on.
    uint64_t version;       // bumped by every update of data (paramset_touch: the optimizer step)
    uint64_t bf16_version;  // version bf16 was made from
    uint16_t *bf16;         // (numel,) on device; NULL until first asked for
} ParamSet;
ParamSet *paramset_new(Device device);
// Register a parameter (before finalize). Returns its tensor (data valid after finalize).
Tensor *paramset_add(ParamSet *ps, const char *name, int ndim, const int *shape);
void paramset_finalize(ParamSet *ps);           // allocates data (zeroed) and grad
Tensor *paramset_get(const ParamSet *ps, const char *name);  // NULL if absent
void paramset_zero_grad(ParamSet *ps);
void paramset_free(ParamSet *ps);
// data changed (an optimizer step): the bf16 copy is stale. Whoever writes parameters while
// a Ctx with c->params = ps is in use calls it (train/optim.c does for every step).
static inline void paramset_touch(ParamSet *ps) { ps->version++; }
// The bf16 copy of all parameters (round to nearest even), converted when stale: one
// conversion per optimizer step however many GEMMs read it.
const uint16_t *paramset_bf16(ParamSet *ps);
// The bf16 copy of the parameter (or view of one) whose data is p, or NULL when p is not
// inside ps's parameter buffer.
const uint16_t *paramset_bf16_of(ParamSet *ps, const void *p);

#ifdef __cplusplus
}
#endif
#endif
