// cpu_kernels.h: the CPU backend, plain C + OpenMP + OpenBLAS. This is the readable
// specification of every kernel (semantics: kernels/kernels.h).
#ifndef HYP_CPU_KERNELS_H
#define HYP_CPU_KERNELS_H
#include "kernels/kernels.h"

// cpu_backend.c: memory, the backend table
void *cpu_alloc(size_t bytes);
void cpu_free(void *p);
void cpu_memset0(void *p, size_t bytes);
void cpu_copy(void *dst, const void *src, size_t bytes, CopyKind kind);
void cpu_synchronize(void);

// cpu_gemm.c: OpenBLAS sgemm; bf16 / tf32 emulated by rounding (docs/precision.md)
void cpu_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, long long strideA,
              const float *B, long long strideB, float beta, float *C, long long strideC, int batch,
              MatmulPrecision prec);
void cpu_gemm_ex(bool ta, bool tb, int M, int N, int K, float alpha, const void *A, bool a_bf16,
                 long long strideA, const void *B, bool b_bf16, long long strideB, const float *bias, float beta, float *C,
                 long long strideC, int batch, MatmulPrecision prec);

// cpu_elementwise.c
void cpu_binary_fwd(BinaryOp op, float *y, const float *a, const float *b, long n, long nb);
void cpu_binary_bwd(BinaryOp op, float *ga, float *gb, const float *gy, const float *a,
                    const float *b, long n, long nb);
void cpu_add_rows_fwd(float *y, const float *x, const float *b, long outer, long mid, int inner);
void cpu_add_rows_bwd(float *gb, const float *gy, long outer, long mid, int inner);
void cpu_axpy(long n, float alpha, const float *x, float *y);
void cpu_scale(long n, float alpha, const float *x, float *y);
void cpu_fill(float *y, float v, long n);
void cpu_unary_fwd(UnaryOp op, float *y, const float *x, long n);
void cpu_unary_bwd(UnaryOp op, float *gx, const float *gy, const float *x, long n);
#define DROP_CHUNK 1024   // elements per stack buffer of multipliers in dropout fwd/bwd
void cpu_dropout_mults(float *m, uint64_t i0, long n, float p, uint64_t seed, uint64_t offset);
void cpu_dropout_fwd(float *y, const float *x, long n, float p, uint64_t seed, uint64_t offset);
void cpu_dropout_bwd(float *gx, const float *gy, long n, float p, uint64_t seed, uint64_t offset);
void cpu_embedding_fwd(float *y, const float *table, const int32_t *ids, long n, int D);
void cpu_embedding_bwd(float *gtable, const float *gy, const int32_t *ids, long n, int D, int padding_idx);
void cpu_f32_to_bf16(uint16_t *y, const float *x, long n);
void cpu_bf16_to_f32(float *y, const uint16_t *x, long n);

// cpu_norm.c
void cpu_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, long rows, int D, float eps);
void cpu_layernorm_bwd(float *gx, float *gw, float *gb, const float *gy, const float *x,
                       const float *mean, const float *rstd, const float *w, long rows, int D);
void cpu_add_layernorm_fwd(float *y, float *s, float *mean, float *rstd, const float *a,
                           const float *r, const float *w, const float *b, long rows, int D, float eps);
void cpu_qnet_act_fwd(float *y, const float *z, const float *b, const float *x, bool x_shared,
                      long outer, long mid, int D, float eps);
void cpu_softmax_row(float *yr, const float *xr, const int32_t *mr, int cols);
void cpu_softmax_bwd_row(float *gxr, const float *gyr, const float *yr, int cols);
void cpu_softmax_fwd(float *y, const float *x, const int32_t *mask, long rows, int cols, long rows_per_mask);
void cpu_softmax_bwd(float *gx, const float *gy, const float *y, long rows, int cols);

// cpu_attention.c
void cpu_attention_fwd(float *y, float *lse, const float *q, const float *k, const float *v, const int32_t *mask,
                       int B, int Tq, int Tk, int H, int dh, float scale, float p, uint64_t seed, uint64_t offset,
                       MatmulPrecision prec);
void cpu_attention_bwd(float *gq, float *gk, float *gv, const float *gy, const float *y, const float *q,
                       const float *k, const float *v, const int32_t *mask, const float *lse, int B, int Tq, int Tk,
                       int H, int dh, float scale, float p, uint64_t seed, uint64_t offset, MatmulPrecision prec);

// cpu_movement.c
void cpu_permute(float *y, const float *x, const int shape[4], const int perm[4], bool accumulate);
void cpu_block_copy(float *dst, int dst_dim, int dst_start, const float *src, int src_dim,
                    int src_start, long outer, int len, long inner, bool accumulate);
void cpu_arange_i32(int32_t *y, int32_t start, int32_t step, long n);

// cpu_reduce.c
void cpu_sum(float *out, const float *x, long n);
void cpu_fill_grad(float *gx, const float *gy, float scale, long n);
void cpu_cross_entropy_fwd(float *loss, float *lse, const float *x, const int32_t *t, long rows, int C);
void cpu_cross_entropy_bwd(float *gx, const float *gloss, const float *x, const float *lse,
                           const int32_t *t, long rows, int C);
void cpu_mse_fwd(float *loss, const float *a, const float *b, long n);
void cpu_mse_bwd(float *ga, float *gb, const float *gloss, const float *a, const float *b, long n);

// cpu_optim.c
void cpu_adamw_step(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                    double beta2, double eps, double weight_decay, double bias_corr1, double bias_corr2,
                    float grad_scale);
void cpu_sum_squares(float *out, const float *x, long n);
void cpu_clip_coef(HypClipState *st, const float *sumsq, const float *check, long n_check, double max_norm,
                   int32_t step, bool sticky);
void cpu_adamw_step_dev(float *p, const float *g, float *m, float *v, long n, double lr, double beta1,
                        double beta2, double eps, double weight_decay, double bias_corr1, double bias_corr2,
                        const float *grad_scale);

// cpu_search.c
void cpu_qnet_out_dot(float *s, const float *z, const float *b, const float *w, long outer, long mid, int D, float eps);
void cpu_topk_rows(uint64_t *kout, const uint64_t *kin, const float *scores, long rows, long n, long ld, int k,
                   int32_t base, const int32_t *skip, int32_t *bad);
void cpu_dense_epilogue(int mode, float *G, const float *rv, const float *cv, long rows, long n);
void cpu_row_sumsq(float *out, const float *x, long n, int D);
void cpu_gather_bf16_rows(float *y, const uint16_t *table, const int32_t *ids, long n, int D);

#endif
