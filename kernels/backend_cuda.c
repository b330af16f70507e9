// backend_cuda.c: the CUDA backend's table. Every slot is an extern "C" launcher
// from kernels/cuda/*.cu (declared in kernels/cuda/cuda_kernels.h).
#ifdef HYP_HAVE_CUDA
#include "kernels/kernels.h"
#include "kernels/cuda/cuda_kernels.h"

const Backend hyp_cuda_backend = {
    .name = "cuda",
    .alloc = hyp_cuda_alloc,
    .free = hyp_cuda_free,
    .memset0 = hyp_cuda_memset0,
    .copy = hyp_cuda_copy,
    .synchronize = hyp_cuda_synchronize,
    .gemm = hyp_cuda_gemm,
    .gemm_ex = hyp_cuda_gemm_ex,
    .binary_fwd = hyp_cuda_binary_fwd,
    .binary_bwd = hyp_cuda_binary_bwd,
    .add_rows_fwd = hyp_cuda_add_rows_fwd,
    .add_rows_bwd = hyp_cuda_add_rows_bwd,
    .axpy = hyp_cuda_axpy,
    .scale = hyp_cuda_scale,
    .fill = hyp_cuda_fill,
    .unary_fwd = hyp_cuda_unary_fwd,
    .unary_bwd = hyp_cuda_unary_bwd,
    .layernorm_fwd = hyp_cuda_layernorm_fwd,
    .layernorm_bwd = hyp_cuda_layernorm_bwd,
    .add_layernorm_fwd = hyp_cuda_add_layernorm_fwd,
    .qnet_act_fwd = hyp_cuda_qnet_act_fwd,
    .softmax_fwd = hyp_cuda_softmax_fwd,
    .softmax_bwd = hyp_cuda_softmax_bwd,
    .attention_fwd = hyp_cuda_attention_fwd,
    .attention_bwd = hyp_cuda_attention_bwd,
    .embedding_fwd = hyp_cuda_embedding_fwd,
    .embedding_bwd = hyp_cuda_embedding_bwd,
    .dropout_fwd = hyp_cuda_dropout_fwd,
    .dropout_bwd = hyp_cuda_dropout_bwd,
    .permute = hyp_cuda_permute,
    .block_copy = hyp_cuda_block_copy,
    .arange_i32 = hyp_cuda_arange_i32,
    .sum = hyp_cuda_sum,
    .fill_grad = hyp_cuda_fill_grad,
    .cross_entropy_fwd = hyp_cuda_cross_entropy_fwd,
    .cross_entropy_bwd = hyp_cuda_cross_entropy_bwd,
    .mse_fwd = hyp_cuda_mse_fwd,
    .mse_bwd = hyp_cuda_mse_bwd,
    .f32_to_bf16 = hyp_cuda_f32_to_bf16,
    .bf16_to_f32 = hyp_cuda_bf16_to_f32,
    .adamw_step = hyp_cuda_adamw_step,
    .sum_squares = hyp_cuda_sum_squares,
    .clip_coef = hyp_cuda_clip_coef,
    .adamw_step_dev = hyp_cuda_adamw_step_dev,
    // search
    .qnet_out_dot = hyp_cuda_qnet_out_dot,
    .topk_rows = hyp_cuda_topk_rows,
    .dense_epilogue = hyp_cuda_dense_epilogue,
    .row_sumsq = hyp_cuda_row_sumsq,
    .gather_bf16_rows = hyp_cuda_gather_bf16_rows,
};

#else
typedef int hyp_backend_cuda_unused;   // the CUDA backend is not built
#endif
