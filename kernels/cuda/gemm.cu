// gemm.cu: row-major strided-batched matmul through cuBLASLt.
//
// Row-major trick: a row-major (r, c) matrix with leading dim c is the column-major
// (c, r) matrix with the same leading dim, i.e. its transpose. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: we hand
// cuBLAS the B buffer as its "A" and the A buffer as its "B", keep the transpose
// flags, and swap M and N.
//
// Precision (kernels.h; the CPU backend emulates the same roundings, cpu_gemm.c):
// HYP_MATMUL_F32 runs CUBLAS_COMPUTE_32F (TF32 only if HYP_CUDA_TF32=1), HYP_MATMUL_TF32
// CUBLAS_COMPUTE_32F_FAST_TF32. HYP_MATMUL_BF16 hands cuBLASLt bf16 A and B (an operand
// already in bf16, the parameters' per-step copy, is used as it is; fp32 ones are rounded
// with hyp_f32_to_bf16 into scratch), accumulates in fp32 (CUBLAS_COMPUTE_32F), and rounds
// the product to bf16 before beta C is added (autocast's bf16 outputs).
//
// Matmul plans (descriptors + the heuristic's algorithm) are cached per problem
// shape and pointer-alignment class; a batch whose A or B has stride 0 (broadcast)
// goes through cublasGemmStridedBatchedEx unless it folds into a single GEMM, and
// so does any problem the Lt heuristic has no algorithm for.
#include "kernels/cuda/common.cuh"
#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdlib.h>
#include <string.h>

#define CUBLAS_CHECK(call) do { \
        cublasStatus_t s_ = (call); \
        if (s_ != CUBLAS_STATUS_SUCCESS) \
            hyp_fatal_at(__FILE__, __LINE__, "cuBLAS error %d (%s) in %s", (int)s_, \
                         cublasGetStatusString(s_), #call); \
    } while (0)

#define GEMM_WORKSPACE_BYTES ((size_t)32 << 20)   // 32 MiB: what Hopper kernels want
#define PLAN_CACHE_SIZE 1024                       // open addressing, power of two

typedef struct {
    int ta, tb, M, N, K, batch, prec;
    long long sA, sB, sC;
    unsigned alA, alB, alC;                 // alignment classes (bytes) of the pointers
} PlanKey;

typedef struct {
    bool used;
    bool use_lt;                            // false: cublasGemmStridedBatchedEx
    PlanKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;      // cuBLAS's A (= our B), B (= our A), C
    cublasLtMatmulAlgo_t algo;
} Plan;

static struct {
    bool init;
    bool tf32;
    cublasLtHandle_t lt;
    cublasHandle_t blas;
    void *ws;
    Plan plans[PLAN_CACHE_SIZE];
} G;

static void gemm_init(void) {
    if (G.init) return;
    CUBLAS_CHECK(cublasLtCreate(&G.lt));
    CUBLAS_CHECK(cublasCreate(&G.blas));
    CUBLAS_CHECK(cublasSetStream(G.blas, hyp_cuda_stream()));
    const char *e = getenv("HYP_CUDA_TF32");
    G.tf32 = e && e[0] && strcmp(e, "0") != 0;
    // Pure fp32 unless asked (CUBLAS_DEFAULT_MATH never uses TF32 on its own).
    CUBLAS_CHECK(cublasSetMathMode(G.blas, G.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    G.ws = hyp_cuda_alloc(GEMM_WORKSPACE_BYTES);
    G.init = true;
}

static cublasComputeType_t compute_type(int prec) {
    if (prec == HYP_MATMUL_TF32 || (prec == HYP_MATMUL_F32 && G.tf32)) return CUBLAS_COMPUTE_32F_FAST_TF32;
    return CUBLAS_COMPUTE_32F;
}

// Largest power of two (<= 256) dividing the address and, for a batch, the stride in bytes.
static unsigned align_class(const void *p, long long stride, size_t elt, int batch) {
    uintptr_t a = (uintptr_t)p;
    unsigned long long s = batch > 1 ? (unsigned long long)stride * elt : 0;
    unsigned al = 256;
    while (al > 1 && ((a & (al - 1)) || (s & (al - 1)))) al >>= 1;
    return al;
}

static uint64_t key_hash(const PlanKey *k) {
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull;    // FNV-1a over the (zero-padded) key
    for (size_t i = 0; i < sizeof *k; i++) { h ^= p[i]; h *= 1099511628211ull; }
    return h;
}

static cublasLtMatrixLayout_t make_layout(cudaDataType t, uint64_t rows, uint64_t cols, int64_t ld,
                                          int batch, long long stride) {
    cublasLtMatrixLayout_t l;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, rows, cols, ld));
    if (batch > 1) {
        int32_t bc = batch;
        int64_t st = stride;
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st, sizeof st));
    }
    return l;
}

static void plan_destroy(Plan *p) {
    if (!p->used) return;
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    memset(p, 0, sizeof *p);
}

// Build descriptors and ask the heuristic; p->use_lt says whether it found an algorithm.
static void plan_build(Plan *p, const PlanKey *k) {
    memset(p, 0, sizeof *p);
    p->used = true;
    p->key = *k;
    const bool bf16 = k->prec == HYP_MATMUL_BF16;
    const cudaDataType tin = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    const cublasComputeType_t ct = compute_type(k->prec);
    // column-major problem: C^T (N x M) = opB'(N x K) * opA'(K x M)
    const cublasOperation_t opa = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N;   // applies to our B
    const cublasOperation_t opb = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N;   // applies to our A
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, ct, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    // our B buffer: row-major (K,N) [tb=0] or (N,K) [tb=1] = column-major (N,K) or (K,N)
    p->la = k->tb ? make_layout(tin, k->K, k->N, k->K, k->batch, k->sB)
                  : make_layout(tin, k->N, k->K, k->N, k->batch, k->sB);
    // our A buffer: row-major (M,K) [ta=0] or (K,M) [ta=1] = column-major (K,M) or (M,K)
    p->lb = k->ta ? make_layout(tin, k->M, k->K, k->M, k->batch, k->sA)
                  : make_layout(tin, k->K, k->M, k->K, k->batch, k->sA);
    p->lc = make_layout(CUDA_R_32F, k->N, k->M, k->N, k->batch, k->sC);

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = GEMM_WORKSPACE_BYTES;
    uint32_t alA = k->alB, alB = k->alA, alC = k->alC;   // cuBLAS's A is our B
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alA, sizeof alA));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alB, sizeof alB));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alC, sizeof alC));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alC, sizeof alC));
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(G.lt, p->desc, p->la, p->lb, p->lc, p->lc,
                                                       pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    // No algorithm (NOT_SUPPORTED) sends the shape to cuBLAS; anything else means the
    // descriptors above are wrong, which a silent fallback would hide.
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED)
        hyp_fatal_at(__FILE__, __LINE__, "cuBLASLt heuristic refused the matmul layouts (%s): ta=%d tb=%d M=%d N=%d "
                     "K=%d batch=%d", cublasGetStatusString(st), k->ta, k->tb, k->M, k->N, k->K, k->batch);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        p->algo = res.algo;
        p->use_lt = true;
    }
}

static Plan *plan_get(const PlanKey *k, Plan *tmp) {
    uint64_t h = key_hash(k);
    for (int probe = 0; probe < 16; probe++) {
        Plan *p = &G.plans[(h + (uint64_t)probe) & (PLAN_CACHE_SIZE - 1)];
        if (!p->used) { plan_build(p, k); return p; }
        if (memcmp(&p->key, k, sizeof *k) == 0) return p;
    }
    plan_build(tmp, k);                     // cache region full: a one-off plan
    return tmp;
}

// C[z] = beta * C[z] (0 when beta == 0, even over NaN) for the K == 0 case.
__global__ void gemm_scale_c_kernel(float *C, long long strideC, long mn, int batch, float beta) {
    const long total = mn * (long)batch;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long z = i / mn, e = i - z * mn;
        float *c = C + z * strideC + e;
        *c = beta == 0.0f ? 0.0f : beta * *c;
    }
}

// The epilogue: C[z] = bf16(P[z] + bias) + beta C[z] (round), or C[z] = P[z] + bias with P
// = C (no round: fp32 / tf32 with a bias). beta == 0: C is not read; bias (N) may be NULL.
__global__ void gemm_epilogue_kernel(float *C, long long strideC, const float *P, long long strideP,
                                     const float *bias, int N, long mn, int batch, float beta, bool round) {
    const long total = mn * (long)batch;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long z = i / mn, e = i - z * mn;
        float *c = C + z * strideC + e;
        const float p = P[z * strideP + e];
        const float v = bias ? p + bias[e % N] : p;
        if (!round) { *c = v; continue; }
        const float r = hyp_round_bf16(v);
        *c = beta == 0.0f ? r : r + beta * *c;
    }
}

// Elements from the first to the last one a strided batch touches.
static size_t span_elems(long long stride, size_t mat, int batch) {
    return batch > 1 ? (size_t)stride * (size_t)(batch - 1) + mat : mat;
}

static void gemm_fallback(const PlanKey *k, float alpha, const void *A, const void *B, float beta,
                          float *C) {
    const cudaDataType tin = k->prec == HYP_MATMUL_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const cublasComputeType_t ct = compute_type(k->prec);
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        G.blas, k->tb ? CUBLAS_OP_T : CUBLAS_OP_N, k->ta ? CUBLAS_OP_T : CUBLAS_OP_N,
        k->N, k->M, k->K, &alpha,
        B, tin, k->tb ? k->K : k->N, k->sB,
        A, tin, k->ta ? k->M : k->K, k->sA,
        &beta, C, CUDA_R_32F, k->N, k->sC, k->batch, ct, CUBLAS_GEMM_DEFAULT));
}

// One cuBLASLt (or cuBLAS) call: C = alpha op(A) op(B) + beta C with A, B already in the
// plan's input type; the caller has folded broadcasts and zeroed the strides of one matrix.
static void gemm_call(bool ta, bool tb, int M, int N, int K, float alpha, const void *A, long long strideA,
                      const void *B, long long strideB, float beta, float *C, long long strideC, int batch,
                      MatmulPrecision prec) {
    const size_t elt = prec == HYP_MATMUL_BF16 ? 2 : 4;
    PlanKey k;
    memset(&k, 0, sizeof k);                // padding bytes take part in hashing/compare
    k.ta = ta; k.tb = tb; k.M = M; k.N = N; k.K = K; k.batch = batch; k.prec = (int)prec;
    k.sA = strideA; k.sB = strideB; k.sC = strideC;
    k.alA = align_class(A, strideA, elt, batch);
    k.alB = align_class(B, strideB, elt, batch);
    k.alC = align_class(C, strideC, sizeof(float), batch);

    // Lt's handling of a zero batch stride is not documented: broadcasts go to cuBLAS.
    const bool broadcast = batch > 1 && (strideA == 0 || strideB == 0);
    if (!broadcast) {
        Plan tmp;
        Plan *p = plan_get(&k, &tmp);
        bool done = false;
        if (p->use_lt) {
            cublasStatus_t st = cublasLtMatmul(G.lt, p->desc, &alpha, B, p->la, A, p->lb, &beta,
                                               C, p->lc, C, p->lc, &p->algo, G.ws, GEMM_WORKSPACE_BYTES,
                                               hyp_cuda_stream());
            if (st == CUBLAS_STATUS_SUCCESS) done = true;
            else p->use_lt = false;         // remember: use cuBLAS for this shape from now on
        }
        if (p == &tmp) plan_destroy(&tmp);
        if (done) return;
    }
    gemm_fallback(&k, alpha, A, B, beta, C);
}

extern "C" void hyp_cuda_gemm_ex(bool ta, bool tb, int M, int N, int K, float alpha, const void *A, bool a_bf16,
                                 long long strideA, const void *B, bool b_bf16, long long strideB, const float *bias,
                                 float beta, float *C, long long strideC, int batch, MatmulPrecision prec) {
    if (M < 0 || N < 0 || K < 0 || batch < 0 || strideA < 0 || strideB < 0 || strideC < 0)
        hyp_fatal_at(__FILE__, __LINE__, "hyp_cuda_gemm: negative size (M=%d N=%d K=%d batch=%d)",
                     M, N, K, batch);
    if (prec != HYP_MATMUL_F32 && prec != HYP_MATMUL_BF16 && prec != HYP_MATMUL_TF32)
        hyp_fatal_at(__FILE__, __LINE__, "hyp_cuda_gemm: unknown precision %d", (int)prec);
    if ((a_bf16 || b_bf16) && prec != HYP_MATMUL_BF16)
        hyp_fatal_at(__FILE__, __LINE__, "hyp_cuda_gemm: a bf16 operand needs bf16 precision");
    if (M == 0 || N == 0 || batch == 0) return;
    if (batch > 1 && strideC == 0)
        hyp_fatal_at(__FILE__, __LINE__, "hyp_cuda_gemm: strideC = 0 with batch %d", batch);
    if (K == 0) {                           // empty sum: C = beta * C, then the bias as below
        const long mn = (long)M * N;
        HYP_LAUNCH(hyp_grid(mn * batch, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), gemm_scale_c_kernel)(
            C, strideC, mn, batch, beta);
        CUDA_CHECK_LAUNCH();
        if (!bias) return;                  // bf16(0) = 0
        const bool round = prec == HYP_MATMUL_BF16;
        float *P = C;                       // fp32: C += bias; bf16: C = bf16(0 + bias) + C
        if (round) {
            P = (float *)hyp_cuda_scratch(HYP_SCRATCH_GEMM_C, (size_t)mn * batch * sizeof(float));
            hyp_cuda_memset0(P, (size_t)mn * batch * sizeof(float));
        }
        HYP_LAUNCH(hyp_grid(mn * batch, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), gemm_epilogue_kernel)(
            C, strideC, P, round ? mn : strideC, bias, N, mn, batch, round ? 1.0f : 0.0f, round);
        CUDA_CHECK_LAUNCH();
        return;
    }
    gemm_init();
    // A batch of (M,K) slabs times one shared B is a single (batch*M, K) x B product.
    if (batch > 1 && strideB == 0 && !ta && strideA == (long long)M * K && strideC == (long long)M * N &&
        (long long)M * batch <= 0x7fffffffLL) {
        M *= batch;
        batch = 1;
    }
    if (batch == 1) strideA = strideB = strideC = 0;

    if (prec != HYP_MATMUL_BF16) {
        gemm_call(ta, tb, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC, batch, prec);
        if (bias) {
            const long mn = (long)M * N;
            HYP_LAUNCH(hyp_grid(mn * batch, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), gemm_epilogue_kernel)(
                C, strideC, C, strideC, bias, N, mn, batch, 0.0f, false);
            CUDA_CHECK_LAUNCH();
        }
        return;
    }
    const void *A16 = A, *B16 = B;         // bf16 operands: given, or rounded into scratch
    if (!a_bf16) {
        size_t na = span_elems(strideA, (size_t)M * K, batch);
        uint16_t *a16 = (uint16_t *)hyp_cuda_scratch(HYP_SCRATCH_GEMM_A, na * sizeof(uint16_t));
        hyp_cuda_f32_to_bf16(a16, (const float *)A, (long)na);
        A16 = a16;
    }
    if (!b_bf16) {
        size_t nb = span_elems(strideB, (size_t)K * N, batch);
        uint16_t *b16 = (uint16_t *)hyp_cuda_scratch(HYP_SCRATCH_GEMM_B, nb * sizeof(uint16_t));
        hyp_cuda_f32_to_bf16(b16, (const float *)B, (long)nb);
        B16 = b16;
    }
    // The product P = alpha op(A) op(B) in fp32, then C = bf16(P + bias) (+ beta C): in place when
    // C is not read, else through a scratch P (batch, M, N).
    const long mn = (long)M * N;
    float *P = C;
    long long strideP = strideC;
    if (beta != 0.0f) {
        P = (float *)hyp_cuda_scratch(HYP_SCRATCH_GEMM_C, (size_t)mn * batch * sizeof(float));
        strideP = batch > 1 ? mn : 0;
    }
    gemm_call(ta, tb, M, N, K, alpha, A16, strideA, B16, strideB, 0.0f, P, strideP, batch, prec);
    HYP_LAUNCH(hyp_grid(mn * batch, HYP_THREADS), HYP_THREADS, 0, hyp_cuda_stream(), gemm_epilogue_kernel)(
        C, strideC, P, strideP, bias, N, mn, batch, beta, true);
    CUDA_CHECK_LAUNCH();
}

extern "C" void hyp_cuda_gemm(bool ta, bool tb, int M, int N, int K, float alpha,
                              const float *A, long long strideA, const float *B, long long strideB,
                              float beta, float *C, long long strideC, int batch,
                              MatmulPrecision prec) {
    hyp_cuda_gemm_ex(ta, tb, M, N, K, alpha, A, false, strideA, B, false, strideB, NULL, beta, C, strideC, batch, prec);
}
