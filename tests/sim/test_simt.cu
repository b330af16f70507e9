// test_simt.cu: the CUDA simulator's own tests (built only with make CUDA=sim): barriers,
// warp collectives, divergence reported instead of hanging, poisoned shared memory,
// launch bounds, device memory rules, and cuBLAS / cuBLASLt in every transpose and
// leading-dimension combination against a plain triple loop.
#include <criterion/criterion.h>
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include "kernels/cuda/sim/hyp_sim.h"
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

// ---------------------------------------------------------------- helpers
template <class T>
static T *dev(size_t n) {
    void *p = NULL;
    cr_assert(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
    return (T *)p;
}
template <class T>
static std::vector<T> host(const T *d, size_t n) {
    std::vector<T> h(n);
    cr_assert(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
}
template <class T>
static T *upload(const std::vector<T> &h) {
    T *d = dev<T>(h.size());
    cr_assert(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}
// A launch the test provokes to fail: quiet, then the error and the report.
static void expect_launch_failure(cudaError_t want, const char *needle) {
    const cudaError_t e = cudaGetLastError();
    cr_assert(e == want, "expected %s, got %s", cudaGetErrorName(want), cudaGetErrorName(e));
    cr_assert(strstr(hyp_sim_last_report(), needle) != NULL, "report '%s' does not mention '%s'",
              hyp_sim_last_report(), needle);
    hyp_sim_clear_report();
}
static void quiet() {
    hyp_sim_set_quiet(1);
    hyp_sim_clear_report();
    (void)cudaGetLastError();
}

// ---------------------------------------------------------------- barrier
// Each block reverses its slice through shared memory: only a real barrier between the
// writes and the reads gives the right answer (every thread reads another's element).
__global__ void reverse_kernel(int *out, const int *in, int n) {
    HYP_SHARED(int, sh, [256]);
    const int base = blockIdx.x * blockDim.x, t = threadIdx.x;
    sh[t] = base + t < n ? in[base + t] : -1;
    __syncthreads();
    const int src = blockDim.x - 1 - t;
    if (base + t < n) out[base + t] = sh[src];
}

Test(simt, barrier_reverses_blocks) {
    const int n = 1000, bs = 256, blocks = (n + bs - 1) / bs;
    std::vector<int> h(n);
    for (int i = 0; i < n; i++) h[i] = i * 7 + 1;
    int *in = upload(h), *out = dev<int>(n);
    HYP_LAUNCH(blocks, bs, 0, (cudaStream_t)0, reverse_kernel)(out, in, n);
    cr_assert(cudaGetLastError() == cudaSuccess);
    std::vector<int> got = host(out, n);
    for (int i = 0; i < n; i++) {
        const int b = i / bs, t = i % bs, src = b * bs + (bs - 1 - t);
        const int want = src < n ? h[src] : -1;
        cr_assert(got[i] == want, "element %d: %d, want %d", i, got[i], want);
    }
    cudaFree(in);
    cudaFree(out);
}

// Several barriers in a loop, 2-D blocks: a running prefix over the block.
__global__ void block_scan_kernel(float *out, const float *in) {
    HYP_SHARED(float, sh, [2][128]);
    const int t = threadIdx.y * blockDim.x + threadIdx.x, n = blockDim.x * blockDim.y;
    int cur = 0;
    sh[cur][t] = in[blockIdx.x * n + t];
    __syncthreads();
    for (int off = 1; off < n; off <<= 1) {
        const float v = sh[cur][t] + (t >= off ? sh[cur][t - off] : 0.0f);
        sh[cur ^ 1][t] = v;
        cur ^= 1;
        __syncthreads();
    }
    out[blockIdx.x * n + t] = sh[cur][t];
}

Test(simt, barrier_in_a_loop_2d_block) {
    const int per = 128, blocks = 3;
    std::vector<float> h(per * blocks);
    for (size_t i = 0; i < h.size(); i++) h[i] = (float)(i % 5);
    float *in = upload(h), *out = dev<float>(h.size());
    HYP_LAUNCH(blocks, dim3(32, 4), 0, (cudaStream_t)0, block_scan_kernel)(out, in);
    cr_assert(cudaGetLastError() == cudaSuccess);
    std::vector<float> got = host(out, h.size());
    for (int b = 0; b < blocks; b++) {
        float s = 0;
        for (int t = 0; t < per; t++) {
            s += h[b * per + t];
            cr_assert(got[b * per + t] == s, "block %d thread %d: %g, want %g", b, t, got[b * per + t], s);
        }
    }
    cudaFree(in);
    cudaFree(out);
}

// ---------------------------------------------------------------- warp collectives
__global__ void warp_ops_kernel(float *sum_xor, float *sum_down, int *up, unsigned *ballot, int *any_all,
                                float *seg_sum, const float *in, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31;
    const float x = i < n ? in[i] : 0.0f;
    float a = x;
    for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
    sum_xor[i] = a;
    float b = x;
    for (int o = 16; o > 0; o >>= 1) b += __shfl_down_sync(0xffffffffu, b, o);
    if (lane == 0) sum_down[i / 32] = b;
    up[i] = __shfl_up_sync(0xffffffffu, lane, 3);
    ballot[i] = __ballot_sync(0xffffffffu, x > 0.0f);
    any_all[i] = __any_sync(0xffffffffu, x > 0.5f) * 2 + __all_sync(0xffffffffu, x > -2.0f);
    float c = x;   // sums over segments of 8 lanes
    for (int o = 4; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o, 8);
    seg_sum[i] = __shfl_sync(0xffffffffu, c, 0, 8);   // lane 0 of the segment
}

Test(simt, warp_shuffles_votes_and_widths) {
    const int n = 64 + 20;   // the third warp is fed zeros past n
    const int threads = 96;
    std::vector<float> h(n);
    for (int i = 0; i < n; i++) h[i] = (float)((i * 37) % 11) - 5.0f + 0.25f * (float)(i % 3);
    float *in = upload(h), *sx = dev<float>(threads), *sd = dev<float>(3), *seg = dev<float>(threads);
    int *up = dev<int>(threads), *aa = dev<int>(threads);
    unsigned *bal = dev<unsigned>(threads);
    HYP_LAUNCH(1, threads, 0, (cudaStream_t)0, warp_ops_kernel)(sx, sd, up, bal, aa, seg, in, n);
    cr_assert(cudaGetLastError() == cudaSuccess, "%s", hyp_sim_last_report());
    std::vector<float> gx = host(sx, threads), gd = host(sd, 3), gs = host(seg, threads);
    std::vector<int> gu = host(up, threads), ga = host(aa, threads);
    std::vector<unsigned> gb = host(bal, threads);
    for (int w = 0; w < 3; w++) {
        float s = 0;
        unsigned bl = 0;
        bool any = false, all = true;
        for (int l = 0; l < 32; l++) {
            const int i = w * 32 + l;
            const float x = i < n ? h[i] : 0.0f;
            s += x;
            bl |= (x > 0.0f ? 1u : 0u) << l;
            any = any || x > 0.5f;
            all = all && x > -2.0f;
        }
        cr_assert(fabsf(gd[w] - s) < 1e-4f, "warp %d: shfl_down sum %g, want %g", w, gd[w], s);
        for (int l = 0; l < 32; l++) {
            const int i = w * 32 + l;
            cr_assert(fabsf(gx[i] - s) < 1e-4f, "lane %d: shfl_xor sum %g, want %g", i, gx[i], s);
            cr_assert(gb[i] == bl, "lane %d: ballot %08x, want %08x", i, gb[i], bl);
            cr_assert(ga[i] == (any ? 2 : 0) + (all ? 1 : 0), "lane %d: any/all %d", i, ga[i]);
            cr_assert(gu[i] == (l < 3 ? l : l - 3), "lane %d: shfl_up gave %d", i, gu[i]);
            float seg_s = 0;
            for (int k = l & ~7; k < (l & ~7) + 8; k++) seg_s += (w * 32 + k < n ? h[w * 32 + k] : 0.0f);
            cr_assert(fabsf(gs[i] - seg_s) < 1e-4f, "lane %d: width-8 sum %g, want %g", i, gs[i], seg_s);
        }
    }
    cudaFree(in); cudaFree(sx); cudaFree(sd); cudaFree(seg); cudaFree(up); cudaFree(aa); cudaFree(bal);
}

// A partial warp (48 threads): the second warp has 16 lanes, so a full mask is a bug
// there; the lanes that exist must name only themselves.
__global__ void partial_warp_kernel(float *out, unsigned mask_for_second) {
    const int lane = threadIdx.x & 31;
    const unsigned mask = threadIdx.x < 32 ? 0xffffffffu : mask_for_second;
    float v = (float)threadIdx.x;
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o);
    out[threadIdx.x] = v + 0.0f * lane;
}

Test(simt, partial_warp_masks) {
    quiet();
    float *out = dev<float>(48);
    HYP_LAUNCH(1, 48, 0, (cudaStream_t)0, partial_warp_kernel)(out, 0x0000ffffu);
    cr_assert(cudaGetLastError() == cudaSuccess, "%s", hyp_sim_last_report());
    std::vector<float> g = host(out, 48);
    float s = 0;
    for (int t = 32; t < 48; t++) s += (float)t;
    cr_assert(g[40] == s, "16-lane warp sum %g, want %g", g[40], s);
    HYP_LAUNCH(1, 48, 0, (cudaStream_t)0, partial_warp_kernel)(out, 0xffffffffu);
    expect_launch_failure(cudaErrorLaunchFailure, "lanes that do not exist");
    cudaFree(out);
}

// ---------------------------------------------------------------- divergence is reported
__global__ void divergent_barrier_kernel(int *out) {
    if (threadIdx.x < 16) __syncthreads();   // the other threads never arrive
    out[threadIdx.x] = 1;
}
__global__ void two_barriers_kernel(int *out) {
    if (threadIdx.x & 1) __syncthreads();
    else __syncthreads();
    out[threadIdx.x] = 1;
}
__global__ void divergent_shuffle_kernel(float *out) {
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);   // lanes 16..31 exit
    out[threadIdx.x] = v;
}
__global__ void shuffle_vs_barrier_kernel(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x == 5) __syncthreads();
    else v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}
__global__ void read_outside_mask_kernel(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x < 8) v = __shfl_down_sync(0x000000ffu, v, 4, 16);   // lane 4+4 is outside the mask
    out[threadIdx.x] = v;
}

Test(simt, divergence_is_reported_not_a_hang) {
    quiet();
    int *o = dev<int>(64);
    float *f = dev<float>(64);
    HYP_LAUNCH(2, 64, 0, (cudaStream_t)0, divergent_barrier_kernel)(o);
    expect_launch_failure(cudaErrorLaunchFailure, "__syncthreads");
    HYP_LAUNCH(1, 64, 0, (cudaStream_t)0, two_barriers_kernel)(o);
    expect_launch_failure(cudaErrorLaunchFailure, "divergent __syncthreads");
    HYP_LAUNCH(1, 64, 0, (cudaStream_t)0, divergent_shuffle_kernel)(f);
    expect_launch_failure(cudaErrorLaunchFailure, "exited while lanes");
    HYP_LAUNCH(1, 32, 0, (cudaStream_t)0, shuffle_vs_barrier_kernel)(f);
    expect_launch_failure(cudaErrorLaunchFailure, "__syncthreads");
    HYP_LAUNCH(1, 32, 0, (cudaStream_t)0, read_outside_mask_kernel)(f);
    expect_launch_failure(cudaErrorLaunchFailure, "not in the mask");
    // The report names the kernel, the block and the thread.
    HYP_LAUNCH(3, 64, 0, (cudaStream_t)0, divergent_barrier_kernel)(o);
    cr_assert(strstr(hyp_sim_last_report(), "divergent_barrier_kernel") != NULL, "%s", hyp_sim_last_report());
    cr_assert(strstr(hyp_sim_last_report(), "block (0,0,0)") != NULL, "%s", hyp_sim_last_report());
    cr_assert(strstr(hyp_sim_last_report(), "test_simt.cu") != NULL, "%s", hyp_sim_last_report());
    (void)cudaGetLastError();
    // A later, correct launch runs normally.
    int *in = dev<int>(64);
    cudaMemset(in, 0, 64 * sizeof(int));
    HYP_LAUNCH(1, 64, 0, (cudaStream_t)0, reverse_kernel)(o, in, 64);
    cr_assert(cudaGetLastError() == cudaSuccess, "%s", hyp_sim_last_report());
    cudaFree(in);
    cudaFree(o);
    cudaFree(f);
}

// ---------------------------------------------------------------- shared memory poison
__global__ void read_before_write_kernel(float *out) {
    HYP_SHARED(float, sh, [64]);
    out[blockIdx.x * blockDim.x + threadIdx.x] = sh[threadIdx.x];   // never written first
    __syncthreads();
    sh[threadIdx.x] = 1.0f;                                          // ...for the next block
}
__global__ void dynamic_shared_kernel(float *out, int n) {
    HYP_DYNAMIC_SHARED(float, buf);
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = (float)i;
    __syncthreads();
    float s = 0;
    for (int i = 0; i < n; i++) s += buf[i];
    out[threadIdx.x] = s;
}

Test(simt, shared_memory_is_poisoned_and_dynamic_works) {
    quiet();
    float *out = dev<float>(3 * 64);
    HYP_LAUNCH(3, 64, 0, (cudaStream_t)0, read_before_write_kernel)(out);
    cr_assert(cudaGetLastError() == cudaSuccess);
    std::vector<float> g = host(out, 3 * 64);
    for (int i = 0; i < 3 * 64; i++)
        cr_assert(std::isnan(g[i]), "element %d read %g from unwritten shared memory (block %d)", i, g[i], i / 64);
    const int n = 5000;   // 20000 bytes of dynamic shared memory
    HYP_LAUNCH(1, 64, n * sizeof(float), (cudaStream_t)0, dynamic_shared_kernel)(out, n);
    cr_assert(cudaGetLastError() == cudaSuccess, "%s", hyp_sim_last_report());
    g = host(out, 64);
    cr_assert(g[7] == (float)n * (n - 1) / 2, "dynamic shared sum %g", g[7]);
    // Over 48 KiB needs the opt-in, as on the driver.
    const int big = 20000;
    HYP_LAUNCH(1, 64, big * sizeof(float), (cudaStream_t)0, dynamic_shared_kernel)(out, big);
    expect_launch_failure(cudaErrorInvalidValue, "dynamic shared memory");
    cr_assert(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)(big * sizeof(float))) == cudaSuccess);
    HYP_LAUNCH(1, 64, big * sizeof(float), (cudaStream_t)0, dynamic_shared_kernel)(out, big);
    cr_assert(cudaGetLastError() == cudaSuccess, "%s", hyp_sim_last_report());
    cudaFree(out);
}

__global__ void big_static_shared_kernel(float *out) {
    HYP_SHARED(float, a, [8192]);   // 32 KiB
    HYP_SHARED(float, b, [8192]);   // another 32 KiB: 64 KiB of static shared memory
    a[threadIdx.x] = 1.0f;
    b[threadIdx.x] = 2.0f;
    __syncthreads();
    out[threadIdx.x] = a[threadIdx.x] + b[threadIdx.x];
}
__global__ void some_static_shared_kernel(float *out, int n) {
    HYP_SHARED(float, a, [8192]);   // 32 KiB static
    HYP_DYNAMIC_SHARED(float, d);
    a[threadIdx.x] = 1.0f;
    if ((int)threadIdx.x < n) d[threadIdx.x] = 2.0f;
    __syncthreads();
    out[threadIdx.x] = a[threadIdx.x] + ((int)threadIdx.x < n ? d[threadIdx.x] : 0.0f);
}

Test(simt, static_shared_memory_limit) {
    quiet();
    float *out = dev<float>(64);
    HYP_LAUNCH(1, 64, 0, (cudaStream_t)0, big_static_shared_kernel)(out);
    expect_launch_failure(cudaErrorLaunchOutOfResources, "static");
    HYP_LAUNCH(1, 64, 0, (cudaStream_t)0, big_static_shared_kernel)(out);   // known now: refused up front
    expect_launch_failure(cudaErrorLaunchOutOfResources, "static");
    HYP_LAUNCH(1, 64, 8 * 1024, (cudaStream_t)0, some_static_shared_kernel)(out, 64);   // 32 + 8 KiB: fits
    cr_assert(cudaGetLastError() == cudaSuccess, "%s", hyp_sim_last_report());
    HYP_LAUNCH(1, 64, 20 * 1024, (cudaStream_t)0, some_static_shared_kernel)(out, 64);  // 32 + 20 KiB: too much
    expect_launch_failure(cudaErrorInvalidValue, "static");
    cudaFree(out);
}

// ---------------------------------------------------------------- launch bounds
__global__ void count_kernel(unsigned *c) { atomicAdd(c, 1u); }

Test(simt, launch_configuration_errors) {
    quiet();
    unsigned *c = dev<unsigned>(1);
    cudaMemset(c, 0, sizeof(unsigned));
    HYP_LAUNCH(1, 1025, 0, (cudaStream_t)0, count_kernel)(c);
    expect_launch_failure(cudaErrorInvalidConfiguration, "invalid block");
    HYP_LAUNCH(1, dim3(32, 32, 2), 0, (cudaStream_t)0, count_kernel)(c);
    expect_launch_failure(cudaErrorInvalidConfiguration, "invalid block");
    HYP_LAUNCH(dim3(1, 65536), 32, 0, (cudaStream_t)0, count_kernel)(c);
    expect_launch_failure(cudaErrorInvalidConfiguration, "invalid grid");
    HYP_LAUNCH(0, 32, 0, (cudaStream_t)0, count_kernel)(c);
    expect_launch_failure(cudaErrorInvalidConfiguration, "invalid grid");
    cr_assert(host(c, 1)[0] == 0, "a refused launch ran");
    HYP_LAUNCH(dim3(3, 2, 2), dim3(8, 4, 2), 0, (cudaStream_t)0, count_kernel)(c);
    cr_assert(cudaGetLastError() == cudaSuccess);
    cr_assert(host(c, 1)[0] == 12 * 64, "threads run: %u", host(c, 1)[0]);
    cudaFree(c);
}

// ---------------------------------------------------------------- device memory
Test(simt, device_memory_rules) {
    quiet();
    float *d = dev<float>(16);
    std::vector<float> g = host(d, 16);
    for (int i = 0; i < 16; i++) cr_assert(std::isnan(g[i]), "fresh device memory is not poisoned");
    float h[16] = {0};
    cr_assert(cudaMemcpy(d, h, sizeof h, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
              "a copy whose kind names the wrong sides succeeded");
    cr_assert(cudaMemcpy(d, h, 17 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
              "a copy past the end of the allocation succeeded");
    cr_assert(cudaFree(h) == cudaErrorInvalidDevicePointer);
    (void)cudaGetLastError();
    HypSimStats s0 = hyp_sim_stats();
    cr_assert(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice) == cudaSuccess);
    cr_assert(hyp_sim_stats().copies_h2d == s0.copies_h2d + 1, "H2D copies are counted");
    cudaFree(d);
}

// ---------------------------------------------------------------- cuBLAS
static float rnd(unsigned &s) {
    s = s * 1664525u + 1013904223u;
    return (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
}
// Column-major reference: D = alpha op(A) op(B) + beta C.
static void ref_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                     int ldb, float beta, const float *C, int ldc, float *D, int ldd) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                const float a = ta ? A[p + (size_t)i * lda] : A[i + (size_t)p * lda];
                const float b = tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb];
                s += (double)a * b;
            }
            D[i + (size_t)j * ldd] = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * C[i + (size_t)j * ldc]));
        }
}

Test(simt, cublas_every_transpose_and_leading_dimension) {
    cublasHandle_t h;
    cr_assert(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    cublasLtHandle_t lt;
    cr_assert(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS);
    unsigned seed = 5;
    const int m = 7, n = 5, k = 6, batch = 2;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int pad = 0; pad < 2; pad++)
                for (int beta_nz = 0; beta_nz < 2; beta_nz++) {
                    const int ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
                    const int lda = ra + 3 * pad, ldb = rb + 2 * pad, ldc = m + pad;
                    const long long sA = (long long)lda * ca + pad, sB = (long long)ldb * cb, sC = (long long)ldc * n + 4;
                    std::vector<float> A(sA * batch), B(sB * batch), C(sC * batch), want(sC * batch);
                    for (auto &x : A) x = rnd(seed);
                    for (auto &x : B) x = rnd(seed);
                    for (auto &x : C) x = beta_nz ? rnd(seed) : NAN;   // beta 0: C is never read
                    const float alpha = 0.75f, beta = beta_nz ? -0.5f : 0.0f;
                    want = C;
                    for (int z = 0; z < batch; z++)
                        ref_gemm(ta, tb, m, n, k, alpha, &A[z * sA], lda, &B[z * sB], ldb, beta, &C[z * sC], ldc,
                                 &want[z * sC], ldc);
                    // the classic strided-batched API
                    float *dA = upload(A), *dB = upload(B), *dC = upload(C);
                    cr_assert(cublasGemmStridedBatchedEx(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                         m, n, k, &alpha, dA, CUDA_R_32F, lda, sA, dB, CUDA_R_32F, ldb,
                                                         sB, &beta, dC, CUDA_R_32F, ldc, sC, batch, CUBLAS_COMPUTE_32F,
                                                         CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
                    std::vector<float> got = host(dC, C.size());
                    for (int z = 0; z < batch; z++)
                        for (int j = 0; j < n; j++)
                            for (int i = 0; i < m; i++) {
                                const size_t e = z * sC + (size_t)j * ldc + i;
                                cr_assert(fabsf(got[e] - want[e]) < 1e-5f, "Ex ta=%d tb=%d pad=%d beta=%d (%d,%d,%d): %g, want %g",
                                          ta, tb, pad, beta_nz, z, i, j, got[e], want[e]);
                            }
                    // cuBLASLt with the same problem, D in place of C
                    cudaFree(dC);
                    dC = upload(C);
                    cublasLtMatmulDesc_t d;
                    cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
                    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
                    cr_assert(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa) == 0);
                    cr_assert(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb) == 0);
                    cr_assert(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &opb, 2) ==
                              CUBLAS_STATUS_INVALID_VALUE, "an attribute of the wrong size was accepted");
                    cublasLtMatrixLayout_t la, lb, lc;
                    cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, ra, ca, lda);
                    cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, rb, cb, ldb);
                    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, ldc);
                    int32_t bc = batch;
                    int64_t st[3] = {sA, sB, sC};
                    cublasLtMatrixLayout_t ls[3] = {la, lb, lc};
                    for (int q = 0; q < 3; q++) {
                        cublasLtMatrixLayoutSetAttribute(ls[q], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
                        cublasLtMatrixLayoutSetAttribute(ls[q], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st[q], sizeof st[q]);
                    }
                    cublasLtMatmulPreference_t pref;
                    cublasLtMatmulPreferenceCreate(&pref);
                    uint32_t al4 = 4;
                    for (int a = 0; a < 4; a++)
                        cublasLtMatmulPreferenceSetAttribute(pref, (cublasLtMatmulPreferenceAttributes_t)
                                                             (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + a), &al4, 4);
                    cublasLtMatmulHeuristicResult_t res;
                    int found = 0;
                    cr_assert(cublasLtMatmulAlgoGetHeuristic(lt, d, la, lb, lc, lc, pref, 1, &res, &found) == 0 && found == 1);
                    cr_assert(cublasLtMatmul(lt, d, &alpha, dA, la, dB, lb, &beta, dC, lc, dC, lc, &res.algo, NULL, 0,
                                             (cudaStream_t)0) == CUBLAS_STATUS_SUCCESS);
                    got = host(dC, C.size());
                    for (int z = 0; z < batch; z++)
                        for (int j = 0; j < n; j++)
                            for (int i = 0; i < m; i++) {
                                const size_t e = z * sC + (size_t)j * ldc + i;
                                cr_assert(fabsf(got[e] - want[e]) < 1e-5f, "Lt ta=%d tb=%d pad=%d beta=%d (%d,%d,%d): %g, want %g",
                                          ta, tb, pad, beta_nz, z, i, j, got[e], want[e]);
                            }
                    // the swapped layout of A (a transpose forgotten) is refused, not computed
                    cublasLtMatrixLayout_t bad;
                    cublasLtMatrixLayoutCreate(&bad, CUDA_R_32F, ca, ra, ca);
                    cublasLtMatrixLayoutSetAttribute(bad, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
                    if (ra != ca)
                        cr_assert(cublasLtMatmulAlgoGetHeuristic(lt, d, bad, lb, lc, lc, pref, 1, &res, &found) ==
                                  CUBLAS_STATUS_INVALID_VALUE && found == 0, "a mismatched A layout was accepted");
                    cublasLtMatrixLayoutDestroy(bad);
                    cublasLtMatrixLayoutDestroy(la);
                    cublasLtMatrixLayoutDestroy(lb);
                    cublasLtMatrixLayoutDestroy(lc);
                    cublasLtMatmulDescDestroy(d);
                    cublasLtMatmulPreferenceDestroy(pref);
                    cudaFree(dA); cudaFree(dB); cudaFree(dC);
                }
    cublasLtDestroy(lt);
    cublasDestroy(h);
}

Test(simt, cublas_rejects_what_the_library_rejects) {
    cublasHandle_t h;
    cublasCreate(&h);
    float *A = dev<float>(64), *B = dev<float>(64), *C = dev<float>(64);
    const float one = 1.0f, zero = 0.0f;
    // lda smaller than the rows of A as stored
    cr_assert(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, 3, B, 4, &zero, C, 4) ==
              CUBLAS_STATUS_INVALID_VALUE);
    cr_assert(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 5, &one, A, 4, B, 5, &zero, C, 4) ==
              CUBLAS_STATUS_INVALID_VALUE, "lda >= k is required with op T");
    cr_assert(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, 4, B, 4, &zero, C, 3) ==
              CUBLAS_STATUS_INVALID_VALUE);
    cr_assert(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 4, &one, A, 4, B, 4, &zero, C, 4) ==
              CUBLAS_STATUS_INVALID_VALUE);
    // bf16 A with fp32 B
    cr_assert(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, CUDA_R_16BF, 4, B, CUDA_R_32F, 4, &zero, C,
                           CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED);
    // a host pointer where device memory is required
    std::vector<float> hostA(64, 1.0f);
    cr_assert(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, hostA.data(), 4, B, 4, &zero, C, 4) ==
              CUBLAS_STATUS_EXECUTION_FAILED);
    // bf16 inputs: exact products of bf16 values, accumulated in fp32
    std::vector<uint16_t> a16(16), b16(16);
    std::vector<float> af(16), bf(16);
    for (int i = 0; i < 16; i++) {
        const float va = 1.0f + i / 128.0f, vb = -0.5f + i / 64.0f;   // exactly representable in bf16
        uint32_t ua, ub;
        memcpy(&ua, &va, 4);
        memcpy(&ub, &vb, 4);
        a16[i] = (uint16_t)(ua >> 16);
        b16[i] = (uint16_t)(ub >> 16);
        af[i] = va;
        bf[i] = vb;
    }
    uint16_t *dA16 = upload(a16), *dB16 = upload(b16);
    cr_assert(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, 4, 4, 4, &one, dA16, CUDA_R_16BF, 4, dB16, CUDA_R_16BF, 4, &zero,
                           C, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    std::vector<float> want(16), got = host(C, 16);
    ref_gemm(false, true, 4, 4, 4, 1.0f, af.data(), 4, bf.data(), 4, 0.0f, NULL, 4, want.data(), 4);
    for (int i = 0; i < 16; i++) cr_assert(fabsf(got[i] - want[i]) < 1e-6f, "bf16 gemm [%d] %g vs %g", i, got[i], want[i]);
    cudaFree(A); cudaFree(B); cudaFree(C); cudaFree(dA16); cudaFree(dB16);
    cublasDestroy(h);
}
