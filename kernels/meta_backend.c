// meta_backend.c: the memory planner's backend (`hyp train --plan`, train/plan.c).
//
// While enabled for a target device, backend_get(target) returns a table that has the
// target's slots (NULL exactly where the target has none, so every op takes the code path it
// takes on that device) but does no arithmetic: kernels return at once, copies to the host
// zero the host buffer, and alloc hands out fake, 256-byte aligned addresses from an address
// range nothing maps (they are compared and offset, never dereferenced) while counting the
// bytes live and their peak. Host code that would read or write device memory checks
// Backend.meta and skips (tensor_from_host / tensor_to_host, op_host_indices).
//
// The CUDA backend's own buffers that do not go through alloc (the cuBLASLt workspace and the
// grow-only scratch slots of kernels/cuda/common.cuh) are modelled from the calls the meta
// kernels see, with the sizes the CUDA launchers request: meta_memory().workspace.
#include "kernels/kernels.h"
#include <stdlib.h>
#include <string.h>

// A new Backend slot needs its no-op here (and a mirror line in meta_table_for).
_Static_assert(sizeof(Backend) == (2 + 48) * sizeof(void *),   // name, meta, 48 slots
               "Backend changed: give the new slot a meta no-op in kernels/meta_backend.c");

// ---------------------------------------------------------------- counting allocator
typedef struct { uintptr_t addr; size_t bytes; } MetaBlock;
static struct {
    bool on;
    Device target;
    Backend table;
    uintptr_t next;          // next fake address
    MetaBlock *blocks;       // live allocations (unordered)
    int n, cap;
    size_t live, peak;
    long allocs;
    // CUDA workspace model: the cuBLASLt workspace and the scratch slots' capacities
    size_t gemm_ws, scratch[5];
} M;

#define META_BASE ((uintptr_t)1 << 46)   // above any user mapping on x86-64 (47-bit user space)
#define CUDA_GEMM_WORKSPACE ((size_t)32 << 20)   // GEMM_WORKSPACE_BYTES in kernels/cuda/gemm.cu
enum { WS_GEMM_A, WS_GEMM_B, WS_REDUCE, WS_ROWS, WS_SORT };   // HYP_SCRATCH_* of kernels/cuda/common.cuh

static void *meta_alloc(size_t bytes) {
    if (bytes == 0) bytes = 256;
    size_t span = (bytes + 255) & ~(size_t)255;
    if (M.n == M.cap) {
        M.cap = M.cap ? 2 * M.cap : 256;
        M.blocks = hyp_realloc(M.blocks, (size_t)M.cap * sizeof *M.blocks);
    }
    M.blocks[M.n++] = (MetaBlock){M.next, bytes};
    void *p = (void *)M.next;
    M.next += span + 256;   // a gap: neighbours never compare equal to one-past-the-end
    M.live += bytes;
    if (M.live > M.peak) M.peak = M.live;
    M.allocs++;
    return p;
}

static void meta_free(void *p) {
    if (!p) return;
    for (int i = M.n - 1; i >= 0; i--)
        if (M.blocks[i].addr == (uintptr_t)p) {
            M.live -= M.blocks[i].bytes;
            M.blocks[i] = M.blocks[--M.n];
            return;
        }
    HYP_FATAL("meta backend: free of %p, which it did not allocate", p);
}

// A scratch slot grows as hyp_cuda_scratch does: to 1.25x the request, 256-byte rounded.
static void scratch_need(int slot, size_t bytes) {
    if (M.target != HYP_CUDA || bytes <= M.scratch[slot]) return;
    M.scratch[slot] = ((bytes + bytes / 4) + 255) & ~(size_t)255;
}

// ---------------------------------------------------------------- no-op kernels
static void m_memset0(void *p, size_t bytes) {}
static void m_copy(void *dst, const void *src, size_t bytes, CopyKind kind) {
    if (kind == COPY_D2H && bytes) memset(dst, 0, bytes);   // the host reads defined zeros
}
static void m_synchronize(void) {}
static void m_gemm(bool ta, bool tb, int Mm, int N, int K, float alpha, const float *A, long long sA,
                   const float *B, long long sB, float beta, float *C, long long sC, int batch, MatmulPrecision prec) {
    if (Mm == 0 || N == 0 || K == 0 || batch == 0 || M.target != HYP_CUDA) return;
    M.gemm_ws = CUDA_GEMM_WORKSPACE;
    if (prec != HYP_MATMUL_BF16) return;
    // hyp_cuda_gemm's bf16 copies of A and B (after folding a broadcast-B batch into one GEMM)
    if (batch > 1 && sB == 0 && !ta && sA == (long long)Mm * K && sC == (long long)Mm * N) Mm *= batch, batch = 1;
    size_t na = batch > 1 ? (size_t)sA * (batch - 1) + (size_t)Mm * K : (size_t)Mm * K;
    size_t nb = batch > 1 ? (size_t)sB * (batch - 1) + (size_t)K * N : (size_t)K * N;
    scratch_need(WS_GEMM_A, na * 2);
    scratch_need(WS_GEMM_B, nb * 2);
}
static void m_binary_fwd(BinaryOp op, float *y, const float *a, const float *b, long n, long nb) {}
static void m_binary_bwd(BinaryOp op, float *ga, float *gb, const float *gy, const float *a, const float *b, long n,
                         long nb) {
    // a broadcast gradient is a column sum: at most 128 slices of partial sums in double
    if (gb && nb < n) scratch_need(WS_REDUCE, (size_t)128 * (size_t)nb * sizeof(double));
}
static void m_add_rows_fwd(float *y, const float *x, const float *b, long outer, long mid, int inner) {}
static void m_add_rows_bwd(float *gb, const float *gy, long outer, long mid, int inner) {}
static void m_axpy(long n, float alpha, const float *x, float *y) {}
static void m_scale(long n, float alpha, const float *x, float *y) {}
static void m_fill(float *y, float v, long n) {}
static void m_unary_fwd(UnaryOp op, float *y, const float *x, long n) {}
static void m_unary_bwd(UnaryOp op, float *gx, const float *gy, const float *x, long n) {}
static void m_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                            long rows, int D, float eps) {}
static void m_layernorm_bwd(float *gx, float *gw, float *gb, const float *gy, const float *x, const float *mean,
                            const float *rstd, const float *w, long rows, int D) {
    if (gw || gb) scratch_need(WS_REDUCE, (size_t)128 * 2 * (size_t)D * sizeof(double));
}
static void m_add_layernorm_fwd(float *y, float *s, float *mean, float *rstd, const float *a, const float *r,
                                const float *w, const float *b, long rows, int D, float eps) {}
static void m_qnet_act_fwd(float *y, const float *z, const float *b, const float *x, bool x_shared, long outer,
                           long mid, int D, float eps) {}
static void m_softmax_fwd(float *y, const float *x, const int32_t *mask, long rows, int cols, long rows_per_mask) {}
static void m_softmax_bwd(float *gx, const float *gy, const float *y, long rows, int cols) {}
static void m_attention_fwd(float *y, float *lse, const float *q, const float *k, const float *v,
                            const int32_t *mask, int B, int Tq, int Tk, int H, int dh, float scale, float p,
                            uint64_t seed, uint64_t offset, MatmulPrecision prec) {}
static void m_attention_bwd(float *gq, float *gk, float *gv, const float *gy, const float *y, const float *q,
                            const float *k, const float *v, const int32_t *mask, const float *lse, int B, int Tq,
                            int Tk, int H, int dh, float scale, float p, uint64_t seed, uint64_t offset,
                            MatmulPrecision prec) {}
static void m_embedding_fwd(float *y, const float *table, const int32_t *ids, long n, int D) {}
static void m_embedding_bwd(float *gtable, const float *gy, const int32_t *ids, long n, int D, int padding_idx) {
    size_t npow2 = 1;   // the CUDA backward sorts (id, row) keys padded to a power of two
    while (npow2 < (size_t)n) npow2 <<= 1;
    if (n > 0) scratch_need(WS_SORT, npow2 * sizeof(uint64_t));
}
static void m_dropout_fwd(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset) {}
static void m_dropout_bwd(float *gx, const float *gy, long n, float p, uint64_t seed, uint64_t offset) {}
static void m_permute(float *y, const float *x, const int shape[4], const int perm[4], bool accumulate) {}
static void m_block_copy(float *dst, int dst_dim, int dst_start, const float *src, int src_dim, int src_start,
                         long outer, int len, long inner, bool accumulate) {}
static void m_arange_i32(int32_t *y, int32_t start, int32_t step, long n) {}
static void m_sum(float *out, const float *x, long n) { scratch_need(WS_REDUCE, 512 * sizeof(double)); }
static void m_fill_grad(float *gx, const float *gy, float scale, long n) {}
static void m_cross_entropy_fwd(float *loss, float *lse, const float *x, const int32_t *t, long rows, int C) {
    scratch_need(WS_ROWS, (size_t)rows * sizeof(float));
    scratch_need(WS_REDUCE, 512 * sizeof(double));
}
static void m_cross_entropy_bwd(float *gx, const float *gloss, const float *x, const float *lse, const int32_t *t,
                                long rows, int C) {}
static void m_mse_fwd(float *loss, const float *a, const float *b, long n) { scratch_need(WS_REDUCE, 512 * sizeof(double)); }
static void m_mse_bwd(float *ga, float *gb, const float *gloss, const float *a, const float *b, long n) {}
static void m_f32_to_bf16(uint16_t *y, const float *x, long n) {}
static void m_bf16_to_f32(float *y, const uint16_t *x, long n) {}
static void m_adamw_step(float *p, const float *g, float *m, float *v, long n, double lr, double beta1, double beta2,
                         double eps, double weight_decay, double bias_corr1, double bias_corr2, float grad_scale) {}
static void m_sum_squares(float *out, const float *x, long n) { scratch_need(WS_REDUCE, 512 * sizeof(double)); }
static void m_clip_coef(HypClipState *st, const float *sumsq, const float *check, long n_check, double max_norm,
                        int32_t step, bool sticky) {}
static void m_adamw_step_dev(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                             double beta2, double eps, double weight_decay, double bias_corr1, double bias_corr2,
                             const float *grad_scale) {}

// gemm_ex is modelled as gemm (an upper bound: bf16 operands need no converted copy).
static void m_gemm_ex(bool ta, bool tb, int Mm, int N, int K, float alpha, const void *A, bool a_bf16,
                      long long sA, const void *B, bool b_bf16, long long sB, const float *bias, float beta,
                      float *C, long long sC, int batch, MatmulPrecision prec) {
    m_gemm(ta, tb, Mm, N, K, alpha, (const float *)A, sA, (const float *)B, sB, beta, C, sC, batch, prec);
}

// search slots (not part of a training step; mirrored so the table stays complete)
static void m_qnet_out_dot(float *s, const float *z, const float *b, const float *w, long outer, long mid, int D,
                           float eps) {}
static void m_topk_rows(uint64_t *kout, const uint64_t *kin, const float *scores, long rows, long n, long ld, int k,
                        int32_t base, const int32_t *skip, int32_t *bad) {}
static void m_dense_epilogue(int mode, float *G, const float *rv, const float *cv, long rows, long n) {}
static void m_row_sumsq(float *out, const float *x, long n, int D) {}
static void m_gather_bf16_rows(float *y, const uint16_t *table, const int32_t *ids, long n, int D) {}

// The target's table with every present slot replaced by its no-op.
#define m_alloc meta_alloc
#define m_free meta_free
#define MIRROR(slot) t.slot = src->slot ? m_##slot : NULL;
static Backend meta_table_for(const Backend *src) {
    Backend t = {.name = "meta", .meta = true};
    HYP_BACKEND_SLOTS(MIRROR)
    return t;
}
#undef MIRROR

// ---------------------------------------------------------------- interface (kernels.h)
void backend_meta_enable(Device target) {
    HYP_CHECK(!M.on, "backend_meta_enable: the meta backend is already on");
    const Backend *src = backend_get(target);   // fatal when this build lacks the target
    memset(&M, 0, sizeof M);
    M.table = meta_table_for(src);
    M.target = target;
    M.next = META_BASE;
    M.on = true;
}

void backend_meta_disable(void) {
    free(M.blocks);
    memset(&M, 0, sizeof M);
}

const Backend *backend_meta_for(Device d) { return M.on && d == M.target ? &M.table : NULL; }

MetaMemory backend_meta_memory(void) {
    MetaMemory r = {.live = M.live, .peak = M.peak, .allocs = M.allocs, .workspace = M.gemm_ws};
    for (int i = 0; i < 5; i++) r.workspace += M.scratch[i];
    return r;
}
