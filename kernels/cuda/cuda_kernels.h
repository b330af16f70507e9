// cuda_kernels.h: extern "C" launchers of the CUDA backend (kernels/cuda/*.cu).
// Each launcher has exactly the signature of one Backend slot in kernels/kernels.h,
// where its semantics are specified; kernels/backend_cuda.c puts them in the table.
// All pointers are device pointers unless said otherwise. Launchers enqueue work on
// the backend's stream (hyp_cuda_stream(), the legacy default stream) and return
// without synchronising, except where a result must reach the host (copy D2H).
// Not thread-safe: call the backend from one host thread (the matmul plan cache and
// the scratch buffers are process-wide). One GPU per process (the current device).
#ifndef HYP_CUDA_KERNELS_H
#define HYP_CUDA_KERNELS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "autograd/util.h"
#include "autograd/tensor.h"
#include "kernels/kernels.h"

// ---- device discovery (never aborts: 0 when there is no driver or no GPU)
int hyp_cuda_device_count(void);
// Why no device is usable: no driver, a driver too old for this runtime, no visible device.
void hyp_cuda_describe_no_device(char *buf, size_t n);
// The current device's name ("NVIDIA H100 80GB HBM3"; the simulator's says so).
void hyp_cuda_device_name(char *buf, size_t n);
// After a kernel launch (CUDA_CHECK_LAUNCH): the launch error, if any, named by the launch's
// file and line; with HYP_CUDA_SYNC=1 in the environment it also synchronises, so that an
// asynchronous fault (an illegal address) is reported at the launch that caused it.
void hyp_cuda_check_launch(const char *file, int line);

// ---- memory (memory.cu)
void *hyp_cuda_alloc(size_t bytes);
void hyp_cuda_free(void *p);
// Bytes allocated through hyp_cuda_alloc at most since the last reset (which returns the bytes
// held now and makes that the new mark).
size_t hyp_cuda_mem_high_water(void);
size_t hyp_cuda_mem_reset_high_water(void);
void hyp_cuda_memset0(void *p, size_t bytes);
void hyp_cuda_copy(void *dst, const void *src, size_t bytes, CopyKind kind);
void hyp_cuda_synchronize(void);

// ---- matmul (gemm.cu): cuBLASLt, fp32 / tf32 / bf16 inputs with fp32 accumulation.
// HYP_CUDA_TF32=1 in the environment also lets HYP_MATMUL_F32 products use TF32.
void hyp_cuda_gemm(bool ta, bool tb, int M, int N, int K, float alpha,
                   const float *A, long long strideA, const float *B, long long strideB,
                   float beta, float *C, long long strideC, int batch, MatmulPrecision prec);
void hyp_cuda_gemm_ex(bool ta, bool tb, int M, int N, int K, float alpha, const void *A, bool a_bf16,
                      long long strideA, const void *B, bool b_bf16, long long strideB, const float *bias, float beta,
                      float *C, long long strideC, int batch, MatmulPrecision prec);

// ---- element-wise (elementwise.cu)
void hyp_cuda_binary_fwd(BinaryOp op, float *y, const float *a, const float *b, long n, long nb);
void hyp_cuda_binary_bwd(BinaryOp op, float *ga, float *gb, const float *gy,
                         const float *a, const float *b, long n, long nb);
void hyp_cuda_axpy(long n, float alpha, const float *x, float *y);
void hyp_cuda_scale(long n, float alpha, const float *x, float *y);
void hyp_cuda_fill(float *y, float v, long n);
void hyp_cuda_unary_fwd(UnaryOp op, float *y, const float *x, long n);
void hyp_cuda_unary_bwd(UnaryOp op, float *gx, const float *gy, const float *x, long n);

// ---- normalisation (norm.cu)
void hyp_cuda_layernorm_fwd(float *y, float *mean, float *rstd, const float *x,
                            const float *w, const float *b, long rows, int D, float eps);
void hyp_cuda_layernorm_bwd(float *gx, float *gw, float *gb, const float *gy, const float *x,
                            const float *mean, const float *rstd, const float *w, long rows, int D);
void hyp_cuda_add_layernorm_fwd(float *y, float *s, float *mean, float *rstd, const float *a,
                                const float *r, const float *w, const float *b, long rows, int D,
                                float eps);

// ---- softmax (softmax.cu)
void hyp_cuda_softmax_fwd(float *y, const float *x, const int32_t *mask, long rows, int cols,
                          long rows_per_mask);
void hyp_cuda_softmax_bwd(float *gx, const float *gy, const float *y, long rows, int cols);

// ---- fused memory-efficient attention (attention.cu)
void hyp_cuda_attention_fwd(float *y, float *lse, const float *q, const float *k, const float *v,
                            const int32_t *mask, int B, int Tq, int Tk, int H, int dh, float scale,
                            float p, uint64_t seed, uint64_t offset, MatmulPrecision prec);
void hyp_cuda_attention_bwd(float *gq, float *gk, float *gv, const float *gy, const float *y,
                            const float *q, const float *k, const float *v, const int32_t *mask,
                            const float *lse, int B, int Tq, int Tk, int H, int dh, float scale,
                            float p, uint64_t seed, uint64_t offset, MatmulPrecision prec);

// ---- embedding (embedding.cu)
void hyp_cuda_qnet_act_fwd(float *y, const float *z, const float *b, const float *x, bool x_shared,
                           long outer, long mid, int D, float eps);
void hyp_cuda_add_rows_fwd(float *y, const float *x, const float *b, long outer, long mid, int inner);
void hyp_cuda_add_rows_bwd(float *gb, const float *gy, long outer, long mid, int inner);
void hyp_cuda_embedding_fwd(float *y, const float *table, const int32_t *ids, long n, int D);
void hyp_cuda_embedding_bwd(float *gtable, const float *gy, const int32_t *ids, long n, int D, int padding_idx);

// ---- dropout (dropout.cu)
void hyp_cuda_dropout_fwd(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset);
void hyp_cuda_dropout_bwd(float *gx, const float *gy, long n, float p, uint64_t seed, uint64_t offset);

// ---- data movement (movement.cu); shape and perm are HOST arrays.
void hyp_cuda_permute(float *y, const float *x, const int shape[4], const int perm[4], bool accumulate);
void hyp_cuda_block_copy(float *dst, int dst_dim, int dst_start, const float *src, int src_dim,
                         int src_start, long outer, int len, long inner, bool accumulate);
void hyp_cuda_arange_i32(int32_t *y, int32_t start, int32_t step, long n);

// ---- reductions and losses (reduce.cu): deterministic (fixed-order tree reductions).
void hyp_cuda_sum(float *out, const float *x, long n);
void hyp_cuda_fill_grad(float *gx, const float *gy, float scale, long n);
void hyp_cuda_cross_entropy_fwd(float *loss, float *lse, const float *x, const int32_t *t,
                                long rows, int C);
void hyp_cuda_cross_entropy_bwd(float *gx, const float *gloss, const float *x, const float *lse,
                                const int32_t *t, long rows, int C);
void hyp_cuda_mse_fwd(float *loss, const float *a, const float *b, long n);
void hyp_cuda_mse_bwd(float *ga, float *gb, const float *gloss, const float *a, const float *b, long n);

// ---- dtype conversion (convert.cu)
void hyp_cuda_f32_to_bf16(uint16_t *y, const float *x, long n);
void hyp_cuda_bf16_to_f32(float *y, const uint16_t *x, long n);

// ---- optimizer (optim.cu)
void hyp_cuda_adamw_step(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                         double beta2, double eps, double weight_decay, double bias_corr1,
                         double bias_corr2, float grad_scale);
void hyp_cuda_sum_squares(float *out, const float *x, long n);
void hyp_cuda_clip_coef(HypClipState *st, const float *sumsq, const float *check, long n_check, double max_norm,
                        int32_t step, bool sticky);
void hyp_cuda_adamw_step_dev(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                             double beta2, double eps, double weight_decay, double bias_corr1,
                             double bias_corr2, const float *grad_scale);

// search (search.cu, qnet.cu)
void hyp_cuda_qnet_out_dot(float *s, const float *z, const float *b, const float *w, long outer, long mid, int D, float eps);
void hyp_cuda_topk_rows(uint64_t *kout, const uint64_t *kin, const float *scores, long rows, long n, long ld, int k,
                   int32_t base, const int32_t *skip, int32_t *bad);
void hyp_cuda_dense_epilogue(int mode, float *G, const float *rv, const float *cv, long rows, long n);
void hyp_cuda_row_sumsq(float *out, const float *x, long n, int D);
void hyp_cuda_gather_bf16_rows(float *y, const uint16_t *table, const int32_t *ids, long n, int D);

#ifdef __cplusplus
}
#endif
#endif
