#include "kernels/cpu/cpu_kernels.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

// OpenBLAS picks its kernels when it loads, from the CPU model or OPENBLAS_CORETYPE. Debian
// 12's 0.3.21 does not know CPUs newer than itself and falls back to "Prescott" (SSE3)
// kernels: 4-5x slower GEMMs on AVX-512 machines (61 against 285 GFLOP/s, bench_ops). As
// the choice is made before any of our code runs, a process that finds the fallback on a
// CPU with AVX-512 or AVX2 sets OPENBLAS_CORETYPE and re-executes itself, once. Setting
// OPENBLAS_CORETYPE yourself turns this off. (glibc passes argv to constructors.)
char *openblas_get_corename(void) __attribute__((weak));
#if defined(__GLIBC__) && defined(__x86_64__)
__attribute__((constructor)) static void cpu_blas_core_check(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    if (!openblas_get_corename || !argv || getenv("OPENBLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcmp(core, "Prescott") != 0) return;
    __builtin_cpu_init();
    const char *want = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);   // also stops a second re-execution
    execv("/proc/self/exe", argv);          // on failure: carry on with the slow kernels
}
#endif

bool hyp_cpu_flush_denormals(bool on) {
#if defined(__SSE__) || defined(__x86_64__)
    const unsigned bits = 0x8040;   // MXCSR FTZ (bit 15) | DAZ (bit 6)
    bool was = (_mm_getcsr() & bits) == bits;
#pragma omp parallel
    _mm_setcsr(on ? _mm_getcsr() | bits : _mm_getcsr() & ~bits);
    _mm_setcsr(on ? _mm_getcsr() | bits : _mm_getcsr() & ~bits);   // the caller, if outside the team
    return was;
#else
    (void)on;
    return false;
#endif
}

void *cpu_alloc(size_t bytes) {
    // 256-byte alignment like cudaMalloc, so arena offsets stay aligned on every backend;
    // aligned_alloc needs a multiple of the alignment.
    size_t n = (bytes + 255) & ~(size_t)255;
    void *p = aligned_alloc(256, n ? n : 256);
    HYP_CHECK(p, "out of host memory allocating %zu bytes", bytes);
    return p;
}
void cpu_free(void *p) { free(p); }
void cpu_memset0(void *p, size_t bytes) { memset(p, 0, bytes); }
void cpu_copy(void *dst, const void *src, size_t bytes, CopyKind kind) {
    (void)kind;
    if (bytes) memmove(dst, src, bytes);
}
void cpu_synchronize(void) {}

const Backend hyp_cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memset0 = cpu_memset0,
    .copy = cpu_copy,
    .synchronize = cpu_synchronize,
    .gemm = cpu_gemm,
    .gemm_ex = cpu_gemm_ex,
    .binary_fwd = cpu_binary_fwd,
    .binary_bwd = cpu_binary_bwd,
    .add_rows_fwd = cpu_add_rows_fwd,
    .add_rows_bwd = cpu_add_rows_bwd,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .fill = cpu_fill,
    .unary_fwd = cpu_unary_fwd,
    .unary_bwd = cpu_unary_bwd,
    .layernorm_fwd = cpu_layernorm_fwd,
    .layernorm_bwd = cpu_layernorm_bwd,
    .add_layernorm_fwd = cpu_add_layernorm_fwd,
    .qnet_act_fwd = cpu_qnet_act_fwd,
    .softmax_fwd = cpu_softmax_fwd,
    .softmax_bwd = cpu_softmax_bwd,
    .attention_fwd = cpu_attention_fwd,
    .attention_bwd = cpu_attention_bwd,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .dropout_fwd = cpu_dropout_fwd,
    .dropout_bwd = cpu_dropout_bwd,
    .permute = cpu_permute,
    .block_copy = cpu_block_copy,
    .arange_i32 = cpu_arange_i32,
    .sum = cpu_sum,
    .fill_grad = cpu_fill_grad,
    .cross_entropy_fwd = cpu_cross_entropy_fwd,
    .cross_entropy_bwd = cpu_cross_entropy_bwd,
    .mse_fwd = cpu_mse_fwd,
    .mse_bwd = cpu_mse_bwd,
    .f32_to_bf16 = cpu_f32_to_bf16,
    .bf16_to_f32 = cpu_bf16_to_f32,
    .adamw_step = cpu_adamw_step,
    .sum_squares = cpu_sum_squares,
    .clip_coef = cpu_clip_coef,
    .adamw_step_dev = cpu_adamw_step_dev,
    // search
    .qnet_out_dot = cpu_qnet_out_dot,
    .topk_rows = cpu_topk_rows,
    .dense_epilogue = cpu_dense_epilogue,
    .row_sumsq = cpu_row_sumsq,
    .gather_bf16_rows = cpu_gather_bf16_rows,
};
