#include "autograd/tensor.h"
#include "autograd/tape.h"
#include "kernels/kernels.h"
#include <stdlib.h>
#include <string.h>

size_t dtype_size(DType dt) {
    switch (dt) {
    case HYP_F32: return 4;
    case HYP_BF16: return 2;
    case HYP_I32: return 4;
    }
    HYP_FATAL("unknown dtype %d", (int)dt);
}
const char *dtype_name(DType dt) {
    return dt == HYP_F32 ? "f32" : dt == HYP_BF16 ? "bf16" : dt == HYP_I32 ? "i32" : "?";
}
const char *device_name(Device d) { return d == HYP_CPU ? "cpu" : "cuda"; }

size_t tensor_numel(const Tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}
size_t tensor_bytes(const Tensor *t) { return tensor_numel(t) * dtype_size(t->dtype); }
size_t dims_prod(const Tensor *t, int from, int to) {
    size_t n = 1;
    for (int i = from; i < to; i++) n *= (size_t)t->shape[i];
    return n;
}
const char *shape_str(const Tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += snprintf(buf + k, n - k, i ? ", %d" : "%d", t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}
bool same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

// ---------------------------------------------------------------- arenas
struct ArenaBlock {
    ArenaBlock *prev;
    char *base;
    size_t cap, used;
};
#define ARENA_ALIGN 256

static ArenaBlock *block_new(Arena *a, size_t cap) {
    ArenaBlock *b = hyp_calloc(1, sizeof *b);
    b->base = a->host ? hyp_malloc(cap) : backend_get(a->device)->alloc(cap);
    b->cap = cap;
    a->held += cap;
    if (a->held > a->peak_held) a->peak_held = a->held;
    return b;
}

Arena *arena_new(Device device, size_t block_size) {
    Arena *a = hyp_calloc(1, sizeof *a);
    a->device = device;
    a->block_size = block_size ? block_size : (64u << 20);
    return a;
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0) need = ARENA_ALIGN;
    ArenaBlock *b = a->head;
    if (b && b->used + need > b->cap && need >= a->block_size) {
        // A request of a block or more gets a block of its own, linked behind the current
        // one, which keeps filling: a large tensor does not strand the current block's tail
        // (at BERT-base scale most activations are larger than a block).
        ArenaBlock *own = block_new(a, need);
        own->used = need;
        own->prev = b->prev;
        b->prev = own;
        a->used_total += need;
        if (a->used_total > a->high_water) a->high_water = a->used_total;
        return own->base;
    }
    if (!b || b->used + need > b->cap) {
        size_t cap = need > a->block_size ? need : a->block_size;
        ArenaBlock *nb = block_new(a, cap);
        nb->prev = b;
        a->head = b = nb;
    }
    void *p = b->base + b->used;
    b->used += need;
    a->used_total += need;
    if (a->used_total > a->high_water) a->high_water = a->used_total;
    return p;
}

static void blocks_free(Arena *a, ArenaBlock *b) {
    while (b) {
        ArenaBlock *prev = b->prev;
        if (a->host) free(b->base);
        else backend_get(a->device)->free(b->base);
        a->held -= b->cap;
        free(b);
        b = prev;
    }
}

void arena_reset(Arena *a) {
    // Several blocks mean the step outgrew the block size: replace them by one
    // block that holds the whole high-water mark.
    if (a->head && a->head->prev) {
        blocks_free(a, a->head);
        a->head = NULL;
        if (a->high_water > a->block_size) a->block_size = a->high_water;
    }
    if (a->head) a->head->used = 0;
    a->used_total = 0;
}

int arena_blocks(const Arena *a) {
    int n = 0;
    for (const ArenaBlock *b = a->head; b; b = b->prev) n++;
    return n;
}

size_t arena_peak(const Arena *a, size_t *handed, size_t *held) {
    if (handed) *handed = a->high_water;
    if (held) *held = a->peak_held;
    return a->peak_held;
}

void arena_free(Arena *a) {
    if (!a) return;
    blocks_free(a, a->head);
    free(a);
}

// ---------------------------------------------------------------- context
Ctx *ctx_new(Device device) {
    Ctx *c = hyp_calloc(1, sizeof *c);
    c->device = device;
    c->act = arena_new(device, 0);
    c->hdr = arena_new(HYP_CPU, 1 << 20);
    c->hdr->host = true;   // headers are read by the host, also when the planner's meta backend runs
    c->tape = hyp_calloc(1, sizeof(Tape));
    c->seed = 42;
    return c;
}
void ctx_reset(Ctx *c) {
    c->n_grad_free = 0;   // the buffers were act's
    tape_clear(c->tape);
    arena_reset(c->act);
    arena_reset(c->hdr);
}
void ctx_free(Ctx *c) {
    if (!c) return;
    free(c->tape->nodes);
    free(c->tape);
    arena_free(c->act);
    arena_free(c->hdr);
    free(c->grad_free);
    free(c);
}

static Tensor *header_new(Ctx *c, DType dt, int ndim, const int *shape) {
    HYP_CHECK(ndim >= 1 && ndim <= HYP_MAX_DIMS, "tensor rank %d outside 1..%d", ndim, HYP_MAX_DIMS);
    Tensor *t = arena_alloc(c->hdr, sizeof(Tensor));
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->device = c->device;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        HYP_CHECK(shape[i] >= 0, "negative dimension %d in tensor shape", shape[i]);
        t->shape[i] = shape[i];
    }
    return t;
}

// Sizes as the arena hands them out (256-byte granules), so equal shapes share slots.
static size_t grad_granule(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

// bytes of act: a released buffer of the same granule size, else new from the arena.
static void *act_take(Ctx *c, size_t bytes) {
    const size_t g = grad_granule(bytes);
    for (int i = c->n_grad_free - 1; i >= 0; i--)
        if (c->grad_free[i].bytes == g) {
            void *p = c->grad_free[i].data;
            c->grad_free[i] = c->grad_free[--c->n_grad_free];
            return p;
        }
    return arena_alloc(c->act, bytes);
}

Tensor *tensor_new(Ctx *c, DType dt, int ndim, const int *shape) {
    Tensor *t = header_new(c, dt, ndim, shape);
    t->data = act_take(c, tensor_bytes(t));
    return t;
}
Tensor *tensor_zeros(Ctx *c, DType dt, int ndim, const int *shape) {
    Tensor *t = tensor_new(c, dt, ndim, shape);
    backend_get(t->device)->memset0(t->data, tensor_bytes(t));
    return t;
}
Tensor *tensor_view(Ctx *c, const Tensor *src, int ndim, const int *shape) {
    Tensor *t = header_new(c, src->dtype, ndim, shape);
    HYP_CHECK(tensor_numel(t) == tensor_numel(src), "view: numel mismatch");
    t->device = src->device;
    t->data = src->data;
    return t;
}
Tensor *tensor_wrap(Ctx *c, DType dt, void *data, int ndim, const int *shape) {
    Tensor *t = header_new(c, dt, ndim, shape);
    t->data = data;
    return t;
}
Tensor *tensor_to_ctx(Ctx *c, const Tensor *t) {
    Tensor *o = tensor_new(c, t->dtype, t->ndim, t->shape);
    Device src = t->device, dst = c->device;
    CopyKind kind = src == dst ? COPY_D2D : src == HYP_CPU ? COPY_H2D : COPY_D2H;
    backend_get(src == HYP_CPU ? dst : src)->copy(o->data, t->data, tensor_bytes(t), kind);
    return o;
}
// On the meta backend (the planner) buffers hold no data: nothing to copy.
void tensor_from_host(Tensor *t, const void *host) {
    if (backend_get(t->device)->meta) return;
    if (t->device == HYP_CPU) memcpy(t->data, host, tensor_bytes(t));
    else backend_get(t->device)->copy(t->data, host, tensor_bytes(t), COPY_H2D);
}
void tensor_to_host(const Tensor *t, void *host) {
    if (backend_get(t->device)->meta) { memset(host, 0, tensor_bytes(t)); return; }
    if (t->device == HYP_CPU) memcpy(host, t->data, tensor_bytes(t));
    else backend_get(t->device)->copy(host, t->data, tensor_bytes(t), COPY_D2H);
}

// t's buffer back to c for reuse by a later tensor_new of its size.
static void pool_put(Ctx *c, Tensor *t) {
    if (c->n_grad_free == c->cap_grad_free) {
        c->cap_grad_free = c->cap_grad_free ? 2 * c->cap_grad_free : 64;
        c->grad_free = hyp_realloc(c->grad_free, (size_t)c->cap_grad_free * sizeof *c->grad_free);
    }
    c->grad_free[c->n_grad_free++] = (GradSlot){t->data, grad_granule(tensor_bytes(t))};
    t->data = NULL;
}

Tensor *tensor_grad_ex(Ctx *c, Tensor *t, bool *fresh) {
    if (fresh) *fresh = !t->grad;
    if (!t->grad) {
        HYP_CHECK(t->device == c->device, "tensor_grad: tensor on %s, context on %s",
                  device_name(t->device), device_name(c->device));
        // A caller told the buffer is fresh overwrites it, so it is not zero-filled.
        t->grad = fresh ? tensor_new(c, HYP_F32, t->ndim, t->shape) : tensor_zeros(c, HYP_F32, t->ndim, t->shape);
    }
    return t->grad;
}

void tensor_release(Ctx *c, Tensor *t) {
    HYP_CHECK(t->data && !t->name, "tensor_release: not an activation with data (a parameter, or released)");
    pool_put(c, t);
}

void tensor_release_grad(Ctx *c, Tensor *t) {
    if (!t->grad) return;
    pool_put(c, t->grad);
    t->grad = NULL;
}
void tensor_keep_bf16(Ctx *c, Tensor *t) {
    HYP_CHECK(t->dtype == HYP_F32 && t->data && !t->name && !t->bf16,
              "tensor_keep_bf16: not an fp32 activation with data (a parameter, released or kept)");
    const long n = (long)tensor_numel(t);
    t->bf16 = act_take(c, (size_t)n * sizeof(uint16_t));
    backend_get(t->device)->f32_to_bf16(t->bf16, t->data, n);
    pool_put(c, t);
}
bool tensor_thaw(Ctx *c, Tensor *t) {
    if (!t || t->data || !t->bf16) return false;
    const long n = (long)tensor_numel(t);
    t->data = act_take(c, (size_t)n * sizeof(float));
    backend_get(t->device)->bf16_to_f32(t->data, t->bf16, n);
    return true;
}
void tensor_freeze(Ctx *c, Tensor *t) {
    HYP_CHECK(t->data && t->bf16, "tensor_freeze: the tensor was not thawed");
    pool_put(c, t);
}
Tensor *tensor_grad(Ctx *c, Tensor *t) { return tensor_grad_ex(c, t, NULL); }
void tensor_fill_f32(Tensor *t, float v) {
    HYP_CHECK(t->dtype == HYP_F32, "tensor_fill_f32 on a %s tensor", dtype_name(t->dtype));
    backend_get(t->device)->fill(t->data, v, (long)tensor_numel(t));
}

// ---------------------------------------------------------------- parameter sets
ParamSet *paramset_new(Device device) {
    ParamSet *ps = hyp_calloc(1, sizeof *ps);
    ps->device = device;
    return ps;
}
Tensor *paramset_add(ParamSet *ps, const char *name, int ndim, const int *shape) {
    HYP_CHECK(!ps->finalized, "paramset_add(%s) after finalize", name);
    HYP_CHECK(!paramset_get(ps, name), "duplicate parameter name %s", name);
    HYP_CHECK(ndim >= 1 && ndim <= HYP_MAX_DIMS, "parameter %s: rank %d", name, ndim);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->params = hyp_realloc(ps->params, ps->cap * sizeof(Tensor *));
    }
    Tensor *t = hyp_calloc(1, sizeof *t);
    t->dtype = HYP_F32;
    t->device = ps->device;
    t->ndim = ndim;
    memcpy(t->shape, shape, ndim * sizeof(int));
    t->name = hyp_strdup(name);
    t->requires_grad = true;
    ps->params[ps->n++] = t;
    ps->numel += tensor_numel(t);
    return t;
}
void paramset_finalize(ParamSet *ps) {
    HYP_CHECK(!ps->finalized, "paramset finalized twice");
    const Backend *be = backend_get(ps->device);
    size_t bytes = ps->numel * sizeof(float);
    ps->data = be->alloc(bytes);
    ps->grad = be->alloc(bytes);
    be->memset0(ps->data, bytes);
    be->memset0(ps->grad, bytes);
    size_t off = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->params[i];
        t->data = ps->data + off;
        Tensor *g = hyp_calloc(1, sizeof *g);
        *g = *t;
        g->name = NULL;
        g->requires_grad = false;
        g->data = ps->grad + off;
        t->grad = g;
        off += tensor_numel(t);
    }
    ps->finalized = true;
}
Tensor *paramset_get(const ParamSet *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->params[i]->name, name) == 0) return ps->params[i];
    return NULL;
}
void paramset_zero_grad(ParamSet *ps) {
    backend_get(ps->device)->memset0(ps->grad, ps->numel * sizeof(float));
}
const uint16_t *paramset_bf16(ParamSet *ps) {
    HYP_CHECK(ps->finalized, "paramset_bf16 before finalize");
    const Backend *be = backend_get(ps->device);
    if (!ps->bf16) {
        ps->bf16 = be->alloc(ps->numel * sizeof(uint16_t));
        ps->bf16_version = ps->version - 1;   // stale
    }
    if (ps->bf16_version != ps->version) {
        be->f32_to_bf16(ps->bf16, ps->data, (long)ps->numel);
        ps->bf16_version = ps->version;
    }
    return ps->bf16;
}
const uint16_t *paramset_bf16_of(ParamSet *ps, const void *p) {
    if (!ps || !ps->finalized || ps->numel == 0) return NULL;
    const float *f = p;
    if (f < ps->data || f >= ps->data + ps->numel) return NULL;
    return paramset_bf16(ps) + (f - ps->data);
}
void paramset_free(ParamSet *ps) {
    if (!ps) return;
    const Backend *be = backend_get(ps->device);
    if (ps->finalized) { be->free(ps->data); be->free(ps->grad); }
    if (ps->bf16) be->free(ps->bf16);
    for (int i = 0; i < ps->n; i++) {
        free((char *)ps->params[i]->name);
        free(ps->params[i]->grad);
        free(ps->params[i]);
    }
    free(ps->params);
    free(ps);
}
