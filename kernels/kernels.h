// kernels.h: the only interface between autograd and hardware.
// A Backend is a table of kernels over raw device pointers. kernels/cpu/ is the
// readable fp32 specification; kernels/cuda/ implements the same table with
// extern "C" launchers. All float buffers are fp32 and contiguous (row-major).
// Backward kernels ACCUMULATE into gradient buffers (+=) unless said otherwise.
#ifndef HYP_KERNELS_H
#define HYP_KERNELS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "autograd/tensor.h"
#include "kernels/unary_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { COPY_H2D = 0, COPY_D2H = 1, COPY_D2D = 2 } CopyKind;
typedef enum { BIN_ADD = 0, BIN_SUB = 1, BIN_MUL = 2 } BinaryOp;
#define HYP_UNARY_ENUM(e, name, f, df) e,
typedef enum { HYP_UNARY_OPS(HYP_UNARY_ENUM) UN_COUNT } UnaryOp;   // rows of kernels/unary_ops.h
#undef HYP_UNARY_ENUM
// "gelu", "relu", ... for op in [0, UN_COUNT), else NULL.
const char *hyp_unary_name(UnaryOp op);
// The op named `name` (a unary_ops.h name), or -1.
int hyp_unary_from_name(const char *name);

// Device-side state of global-norm clipping (clip_coef, adamw_step_dev): 16 bytes, read by
// the host only when it needs the values (a log line, a checkpoint).
typedef struct HypClipState {
    float coef;          // clipping coefficient the next adamw_step_dev applies; NaN: skip the update
    float norm;          // global L2 norm (fp32) of the gradients of the last clip_coef
    int32_t bad_step;    // first step flagged non-finite since the host last reset it; 0: none
    int32_t reserved;    // 0
} HypClipState;

typedef struct Backend {
    const char *name;
    // Capability: the planner's meta backend (kernels/meta_backend.c). Kernels do no work and
    // buffers hold no data: host code must not read or write device memory (it skips instead).
    bool meta;
    // Every field below is a slot of HYP_BACKEND_SLOTS (after the struct), in any order.

    // ---- memory
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*memset0)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes, CopyKind kind);  // H2D/D2H block the host
    void (*synchronize)(void);

    // ---- matmul
    // For z < batch: C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z], row-major,
    // op(A[z]) is (M,K), op(B[z]) is (K,N), C[z] is (M,N); A[z] = A + z*strideA
    // (stride 0 broadcasts one matrix over the batch). Leading dims are the
    // contiguous ones: lda = ta ? M : K, ldb = tb ? K : N, ldc = N.
    // beta == 0 means C is not read (it may hold garbage, even NaN).
    // prec (MatmulPrecision, autograd/tensor.h), the same on every backend (the CPU emulates):
    //   F32:  C = alpha op(A) op(B) + beta C in fp32.
    //   TF32: A and B rounded to tf32 (hyp_round_tf32), fp32 accumulation and output.
    //   BF16: A and B rounded to bf16 (hyp_round_bf16), fp32 accumulation, P = alpha op(A) op(B)
    //         rounded to bf16, then C = P + beta C in fp32 (autocast's bf16 output, accumulated
    //         into fp32 gradients as autocast's casts do).
    // Backends agree bitwise up to the fp32 accumulation order of their BLAS.
    void (*gemm)(bool ta, bool tb, int M, int N, int K, float alpha,
                 const float *A, long long strideA, const float *B, long long strideB,
                 float beta, float *C, long long strideC, int batch, MatmulPrecision prec);
    // gemm with A and/or B given in bf16 (a_bf16 / b_bf16: the buffer holds uint16_t bf16
    // values and the strides count them, e.g. the parameters' copy from paramset_bf16). A bf16
    // operand is read exactly, so with prec BF16 the result equals gemm on its fp32 original.
    // bf16 operands need prec == HYP_MATMUL_BF16. bias (N) or NULL is added to every row of
    // the product before the bf16 rounding: C = bf16(alpha op(A) op(B) + bias) + beta C, as
    // autocast's linear (addmm) rounds once after its bias; fp32/tf32: C = P + beta C + bias.
    void (*gemm_ex)(bool ta, bool tb, int M, int N, int K, float alpha, const void *A, bool a_bf16,
                    long long strideA, const void *B, bool b_bf16, long long strideB, const float *bias,
                    float beta, float *C, long long strideC, int batch, MatmulPrecision prec);

    // ---- element-wise. b broadcasts over leading dims: b index = i % nb (nb divides n).
    void (*binary_fwd)(BinaryOp op, float *y, const float *a, const float *b, long n, long nb);
    // ga (n) and gb (nb) may be NULL (no gradient wanted); gb sums over the broadcast rows.
    // For add/sub the values of a and b are not needed, but callers pass valid buffers.
    void (*binary_bwd)(BinaryOp op, float *ga, float *gb, const float *gy,
                       const float *a, const float *b, long n, long nb);
    // Per-batch bias: x, y (outer, mid, inner), b (outer, inner); y[o,m,i] = x[o,m,i] + b[o,i]
    // (each query's q-net bias over its documents). y may alias x.
    void (*add_rows_fwd)(float *y, const float *x, const float *b, long outer, long mid, int inner);
    void (*add_rows_bwd)(float *gb, const float *gy, long outer, long mid, int inner);  // gb[o,i] += sum_m gy[o,m,i]
    void (*axpy)(long n, float alpha, const float *x, float *y);      // y += alpha * x
    void (*scale)(long n, float alpha, const float *x, float *y);     // y = alpha * x
    void (*fill)(float *y, float v, long n);                          // y = v
    void (*unary_fwd)(UnaryOp op, float *y, const float *x, long n);
    void (*unary_bwd)(UnaryOp op, float *gx, const float *gy, const float *x, long n);

    // ---- normalisation. x (rows, D); w, b (D) both given or both NULL (no affine);
    // mean, rstd (rows) saved (never NULL).
    void (*layernorm_fwd)(float *y, float *mean, float *rstd, const float *x,
                          const float *w, const float *b, long rows, int D, float eps);
    // gx (rows,D) += ; gw, gb (D) += (either may be NULL).
    void (*layernorm_bwd)(float *gx, float *gw, float *gb, const float *gy, const float *x,
                          const float *mean, const float *rstd, const float *w, long rows, int D);
    // Fused residual: s = a + r (saved for backward), y = LN(s).
    void (*add_layernorm_fwd)(float *y, float *s, float *mean, float *rstd, const float *a,
                              const float *r, const float *w, const float *b, long rows, int D,
                              float eps);

    // Fused q-net hidden-layer activation for inference (search): rows r = o*mid + m,
    // y[r] = LN(ReLU(z[r] + b[o])) (+ x[r], or + x[m] when x_shared), LN without affine.
    // x may be NULL (no residual). y may alias z. One pass instead of four.
    void (*qnet_act_fwd)(float *y, const float *z, const float *b, const float *x, bool x_shared,
                         long outer, long mid, int D, float eps);

    // ---- softmax over the last dim. x (rows, cols). mask (rows/rows_per_mask, cols) int32,
    // 0 = padding (probability 0), or NULL. A fully masked row gives all zeros.
    void (*softmax_fwd)(float *y, const float *x, const int32_t *mask, long rows, int cols,
                        long rows_per_mask);
    void (*softmax_bwd)(float *gx, const float *gy, const float *y, long rows, int cols);

    // ---- fused multi-head attention, memory-efficient (flash-attention style: tiles of
    // queries x keys with an online softmax; the (Tq, Tk) probabilities are never stored, the
    // backward recomputes them from the saved log-sum-exp). q (B, Tq, H*dh), k, v (B, Tk, H*dh)
    // in projection layout; mask (B, Tk) int32 (0 = padding key, probability 0) or NULL;
    // y (B, Tq, H*dh); lse (B, H, Tq) = log sum_j exp(scale q_i.k_j) over the unmasked keys,
    // -INFINITY for a query whose keys are all masked (its output row is 0). Dropout p on the
    // probabilities: element ((b*H + h)*Tq + i)*Tk + j is multiplied by hyp_dropout_mult(seed,
    // offset, that index, p), as the composed path (softmax then dropout_fwd) would. prec:
    // HYP_MATMUL_BF16 rounds the products' inputs to bf16 (q, k, v and the dropped
    // probabilities; in backward also dy and d scores) and accumulates in fp32 (autocast);
    // HYP_MATMUL_F32 keeps fp32. Backward: y is the forward's output (dy.y per row is the
    // softmax-backward term); gq, gk, gv (each may be NULL) +=.
    void (*attention_fwd)(float *y, float *lse, const float *q, const float *k, const float *v,
                          const int32_t *mask, int B, int Tq, int Tk, int H, int dh, float scale,
                          float p, uint64_t seed, uint64_t offset, MatmulPrecision prec);
    void (*attention_bwd)(float *gq, float *gk, float *gv, const float *gy, const float *y,
                          const float *q, const float *k, const float *v, const int32_t *mask,
                          const float *lse, int B, int Tq, int Tk, int H, int dh, float scale,
                          float p, uint64_t seed, uint64_t offset, MatmulPrecision prec);

    // ---- embedding: y (n, D) = table[ids[i]] ; table (V, D). Out-of-range ids must be
    // rejected by the caller (op_embedding checks on the host, or its caller validated them). Backward skips rows whose
    // id equals padding_idx (nn.Embedding's padding_idx; -1 for none).
    void (*embedding_fwd)(float *y, const float *table, const int32_t *ids, long n, int D);
    void (*embedding_bwd)(float *gtable, const float *gy, const int32_t *ids, long n, int D,
                          int padding_idx);

    // ---- dropout with Philox4x32-10 keyed by seed, counter offset + i: element i is
    // kept with probability 1-p and scaled by 1/(1-p). Backward regenerates the mask.
    void (*dropout_fwd)(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset);
    void (*dropout_bwd)(float *gx, const float *gy, long n, float p, uint64_t seed, uint64_t offset);

    // ---- data movement
    // y = x.permute(perm) where x has 4-D shape `shape` (leading dims padded with 1);
    // y's shape is shape[perm[0..3]]. accumulate: y += instead of y =.
    void (*permute)(float *y, const float *x, const int shape[4], const int perm[4], bool accumulate);
    // src viewed as (outer, src_dim, inner), dst as (outer, dst_dim, inner): copy rows
    // [src_start, src_start+len) of src into rows [dst_start, ...) of dst (+= if accumulate).
    void (*block_copy)(float *dst, int dst_dim, int dst_start, const float *src, int src_dim,
                       int src_start, long outer, int len, long inner, bool accumulate);

    // ---- integer sequence: y[i] = start + i * step (position ids and in-batch targets built
    // on the device instead of uploaded).
    void (*arange_i32)(int32_t *y, int32_t start, int32_t step, long n);

    // ---- reductions and losses (scalars are 1-element device buffers)
    void (*sum)(float *out, const float *x, long n);                        // out[0] = sum x
    void (*fill_grad)(float *gx, const float *gy, float scale, long n);     // gx[i] += scale*gy[0]
    // loss[0] = mean_r (logsumexp(x_r) - x_r[t_r]); lse (rows) saved. x (rows, C).
    // Targets must be in [0, C) (op_cross_entropy checks on the host).
    void (*cross_entropy_fwd)(float *loss, float *lse, const float *x, const int32_t *t,
                              long rows, int C);
    void (*cross_entropy_bwd)(float *gx, const float *gloss, const float *x, const float *lse,
                              const int32_t *t, long rows, int C);
    void (*mse_fwd)(float *loss, const float *a, const float *b, long n);   // mean (a-b)^2
    void (*mse_bwd)(float *ga, float *gb, const float *gloss, const float *a, const float *b, long n);

    // ---- dtype conversion (round to nearest even)
    void (*f32_to_bf16)(uint16_t *y, const float *x, long n);
    void (*bf16_to_f32)(float *y, const uint16_t *x, long n);

    // ---- optimizer (train/optim.c). One AdamW step (torch.optim.AdamW semantics, formula in
    // kernels/elementwise.h) over p, g, m, v (n): the scalars are the Python-side doubles
    // (bias_corr = 1 - beta^t); g is read as g * grad_scale (the clipping coefficient) and
    // not modified. Bitwise identical on every backend.
    void (*adamw_step)(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double bias_corr1,
                       double bias_corr2, float grad_scale);
    // out[0] = sum x^2 (1-element device buffer), accumulated in double; deterministic.
    void (*sum_squares)(float *out, const float *x, long n);
    // Clipping decided on the device (no host round trip per step). From sumsq[0] (sum_squares
    // of the gradients): st->norm = sqrt(sumsq[0]) rounded to fp32, st->coef = hyp_clip_coef(norm,
    // max_norm) (torch's clip coefficient; 1 when max_norm <= 0). When the norm or one of
    // check[0..n_check) (the step's losses; NULL when n_check is 0) is not finite: st->coef = NaN
    // and st->bad_step = step unless it is already set. sticky: a NaN st->coef stays NaN (no update
    // until the host resets st). One thread's work; st, sumsq and check are device memory.
    void (*clip_coef)(HypClipState *st, const float *sumsq, const float *check, long n_check,
                      double max_norm, int32_t step, bool sticky);
    // adamw_step with the clipping coefficient read from device memory (*grad_scale, e.g.
    // &st->coef); a non-finite *grad_scale changes nothing. Bitwise identical to adamw_step
    // with the same value.
    void (*adamw_step_dev)(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                           double beta2, double eps, double weight_decay, double bias_corr1,
                           double bias_corr2, const float *grad_scale);

    // ---- search (search/exhaustive.c, search/graph.c; CPU spec in kernels/cpu/cpu_search.c)
    // Fused last q-net layer: rows r = o*mid + m, s[r] = LN(ReLU(z[r] + b[o])) . w[o] (LN without
    // affine, eps). z (outer*mid, D), b, w (outer, D), s (outer*mid).
    void (*qnet_out_dot)(float *s, const float *z, const float *b, const float *w, long outer, long mid,
                         int D, float eps);
    // Running per-row top-k over streamed score blocks, as uint64 keys (search_key: unsigned order
    // = ranking order, score desc then index asc, NaN as -inf; 0 = empty slot). For each row
    // r < rows: kout[r] (k) = the k largest of kin[r] (k) and the keys of (scores[r*ld + j],
    // base + j) for j < n, j + base != skip[r] (skip NULL: none); order within kout unspecified
    // (callers sort the final k). kin and kout must not overlap; kin's keys and the block's indices
    // are distinct. bad (rows) or NULL: bad[r] = min(bad[r], base + j) over non-finite scores.
    void (*topk_rows)(uint64_t *kout, const uint64_t *kin, const float *scores, long rows, long n, long ld,
                      int k, int32_t base, const int32_t *skip, int32_t *bad);
    // Dense score epilogue in place on G (rows, n): mode 0 (L2): G = -(rv[i] + cv[j] - 2 G)
    // (hyp_l2_score: negated squared distance from squared norms); mode 1 (cosine):
    // G = G * hyp_inv_norm(cv[j]) (cv: the rows' sums of squares; rv unused).
    void (*dense_epilogue)(int mode, float *G, const float *rv, const float *cv, long rows, long n);
    // out[i] = sum_j x[i,j]^2 (fp32), x (n, D).
    void (*row_sumsq)(float *out, const float *x, long n, int D);
    // y (n, D) fp32 = bf16 rows table[ids[i]] (bf16 bits); gather of fp32 rows is embedding_fwd.
    void (*gather_bf16_rows)(float *y, const uint16_t *table, const int32_t *ids, long n, int D);
} Backend;

// Every slot once: the meta backend mirrors them, backend_check checks them. A slot added to
// the struct but not here fails the assertion in kernels/backend.c.
#define HYP_BACKEND_SLOTS(X) X(alloc) X(free) X(memset0) X(copy) X(synchronize) X(gemm) X(gemm_ex) \
    X(binary_fwd) X(binary_bwd) X(add_rows_fwd) X(add_rows_bwd) X(axpy) X(scale) X(fill) X(unary_fwd) \
    X(unary_bwd) X(layernorm_fwd) X(layernorm_bwd) X(add_layernorm_fwd) X(qnet_act_fwd) X(softmax_fwd) \
    X(softmax_bwd) X(attention_fwd) X(attention_bwd) X(embedding_fwd) X(embedding_bwd) X(dropout_fwd) \
    X(dropout_bwd) X(permute) X(block_copy) X(arange_i32) X(sum) X(fill_grad) X(cross_entropy_fwd) \
    X(cross_entropy_bwd) X(mse_fwd) X(mse_bwd) X(f32_to_bf16) X(bf16_to_f32) X(adamw_step) X(sum_squares) \
    X(clip_coef) X(adamw_step_dev) X(qnet_out_dot) X(topk_rows) X(dense_epilogue) X(row_sumsq) \
    X(gather_bf16_rows)
// A backend's table is complete: every slot set (attention has one algorithm, the fused
// kernel, on every backend). 0, or -1 + error naming the backend and slot.
int backend_check(const Backend *be);

extern const Backend hyp_cpu_backend;
#ifdef HYP_HAVE_CUDA
extern const Backend hyp_cuda_backend;
#endif

// x86 flush-to-zero and denormals-are-zero on every CPU thread of the OpenMP pool (threads
// created later inherit it). Denormal floats (below 1.2e-38) then read and compute as 0:
// they stall vector units ~100x (a hyperhead's tiny early gradients made some GEMMs of a
// training step 150x slower). Returns the previous setting. No effect on GPUs or non-x86.
bool hyp_cpu_flush_denormals(bool on);

// The backend for a device; fatal with a clear message if it was not built.
const Backend *backend_get(Device d);
// True when the CUDA backend was compiled in and a GPU is visible.
bool hyp_cuda_available(void);
// Why hyp_cuda_available() is false, in the user's terms (no CUDA backend in this build,
// no NVIDIA driver, a driver older than the runtime, no visible device), or "" when true.
const char *hyp_cuda_why_unavailable(void);
// "cpu" or "cpu cuda".
const char *hyp_backends_compiled(void);

// ---- the memory planner's meta backend (kernels/meta_backend.c). While enabled for a
// target device, backend_get(target) returns a table with the target's slots (NULL where it
// has none, so ops take the same paths) that does no arithmetic and allocates fake addresses
// while counting bytes. Not thread-safe: one planner per process at a time.
typedef struct MetaMemory {
    size_t live, peak;       // bytes allocated through the table now / at most
    size_t workspace;        // modelled CUDA workspace: cuBLASLt workspace + scratch slots (0 on the CPU)
    long allocs;             // allocations made
} MetaMemory;
void backend_meta_enable(Device target);
void backend_meta_disable(void);
const Backend *backend_meta_for(Device d);    // the meta table when enabled for d, else NULL
MetaMemory backend_meta_memory(void);

// Name a kernel slot for "op X is not implemented on <backend>" errors.
#define KERNEL(be, slot, opname) \
    ((be)->slot ? (be)->slot : (HYP_FATAL("op %s is not implemented on the %s backend", opname, (be)->name), (be)->slot))

#ifdef __cplusplus
}
#endif
#endif
