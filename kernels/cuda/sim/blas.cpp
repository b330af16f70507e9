// blas.cpp: cuBLAS and cuBLASLt for the CUDA simulator, on OpenBLAS.
//
// Semantics are NVIDIA's, column-major: D = alpha * op(A) op(B) + beta * C, with op(A)
// m x k, op(B) k x n, C and D m x n, each matrix stored column by column with its
// leading dimension, and batches `stride` elements apart. Inputs in bf16 are widened
// exactly; TF32 compute rounds fp32 inputs to TF32 (10 mantissa bits, nearest even)
// first, as the tensor cores would; products accumulate in fp32 (sgemm). beta == 0
// means C is not read (NaN in C does not propagate). Arguments the real library
// rejects get its status: sizes and leading dimensions (INVALID_VALUE), unsupported
// type / compute / layout combinations (NOT_SUPPORTED), host pointers where device
// memory is required (EXECUTION_FAILED, an illegal address on a GPU).
#include <cublasLt.h>
#include <cublas_v2.h>
#include "kernels/cuda/sim/hyp_sim.h"
#include "kernels/elementwise.h"
#include <cblas.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace hyp_sim {
bool is_device_range(const void *p, size_t bytes);
void note_gemm();
}

struct cublasContext { cudaStream_t stream; cublasMath_t math; };
struct cublasLtContext { int unused; };
struct cublasLtMatmulDescOpaque_t {
    cublasComputeType_t compute;
    cudaDataType scale;
    int32_t pointer_mode;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epilogue;
    const void *bias;
};
struct cublasLtMatrixLayoutOpaque_t {
    cudaDataType type;
    int32_t order;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
};
struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t max_workspace;
    uint32_t align[4];   // A, B, C, D
};

#define ALGO_MAGIC 0x4859502d53494dull   // "HYP-SIM"

namespace {

size_t type_size(cudaDataType t) {
    switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16BF: case CUDA_R_16F: return 2;
    case CUDA_R_64F: return 8;
    case CUDA_R_8I: return 1;
    case CUDA_R_32I: return 4;
    }
    return 0;
}

// The supported (input, output, compute) combinations: fp32 in/out with fp32 or
// TF32/bf16-fast compute, bf16 in with fp32 out and fp32 compute.
bool combo_supported(cudaDataType ab, cudaDataType c, cublasComputeType_t compute) {
    if (c != CUDA_R_32F) return false;
    if (ab == CUDA_R_32F)
        return compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC ||
               compute == CUBLAS_COMPUTE_32F_FAST_TF32 || compute == CUBLAS_COMPUTE_32F_FAST_16BF;
    if (ab == CUDA_R_16BF) return compute == CUBLAS_COMPUTE_32F;
    return false;
}

// The roundings are kernels/elementwise.h's, so the simulator rounds exactly as the CPU
// backend's bf16 / tf32 emulation (kernels/cpu/cpu_gemm.c) does.
struct Mat {
    const void *p;
    cudaDataType type;
    int64_t ld;
    long long stride;   // elements between batches
    uint64_t rows, cols;   // as stored
};

// Elements a stored (rows x cols, ld) matrix touches, from its first.
size_t extent(const Mat &m) { return m.rows == 0 || m.cols == 0 ? 0 : (size_t)m.ld * (m.cols - 1) + m.rows; }
size_t span_bytes(const Mat &m, int batch) {
    const size_t e = extent(m);
    if (e == 0 || batch <= 0) return 0;
    return ((size_t)(batch - 1) * (size_t)(m.stride < 0 ? 0 : m.stride) + e) * type_size(m.type);
}

// The fp32 operand sgemm reads for batch z: the buffer itself, or a widened / rounded copy.
const float *operand(const Mat &m, int z, cublasComputeType_t compute, std::vector<float> &tmp) {
    const size_t e = extent(m);
    const char *base = (const char *)m.p + (size_t)z * (size_t)m.stride * type_size(m.type);
    if (m.type == CUDA_R_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32 && compute != CUBLAS_COMPUTE_32F_FAST_16BF)
        return (const float *)base;
    tmp.resize(e);
    for (size_t i = 0; i < e; i++) {
        if (m.type == CUDA_R_16BF) tmp[i] = hyp_bf16_to_f32(((const uint16_t *)base)[i]);
        else if (compute == CUBLAS_COMPUTE_32F_FAST_TF32) tmp[i] = hyp_round_tf32(((const float *)base)[i]);
        else tmp[i] = hyp_round_bf16(((const float *)base)[i]);
    }
    return tmp.data();
}

// D = alpha op(A) op(B) + beta C (+ bias per row, ReLU), every batch. Arguments valid.
void gemm_run(bool ta, bool tb, int m, int n, int k, float alpha, const Mat &A, const Mat &B, float beta,
              const Mat &C, const Mat &D, int batch, cublasComputeType_t compute, bool relu, const float *bias) {
    hyp_sim::note_gemm();
    std::vector<float> ta_buf, tb_buf;
    for (int z = 0; z < batch; z++) {
        const float *c = (const float *)C.p + (size_t)z * (size_t)C.stride;
        float *d = (float *)D.p + (size_t)z * (size_t)D.stride;
        for (int j = 0; j < n; j++) {   // D = beta C (0 without reading C when beta == 0)
            float *dj = d + (size_t)j * D.ld;
            const float *cj = c + (size_t)j * C.ld;
            for (int i = 0; i < m; i++) dj[i] = beta == 0.0f ? 0.0f : beta * cj[i];
        }
        if (k > 0 && alpha != 0.0f) {
            const float *a = operand(A, z, compute, ta_buf);
            const float *b = operand(B, z, compute, tb_buf);
            cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                        a, (int)A.ld, b, (int)B.ld, 1.0f, d, (int)D.ld);
        }
        if (bias || relu)
            for (int j = 0; j < n; j++) {
                float *dj = d + (size_t)j * D.ld;
                for (int i = 0; i < m; i++) {
                    float v = dj[i] + (bias ? bias[i] : 0.0f);
                    dj[i] = relu && !(v > 0.0f) ? 0.0f : v;
                }
            }
    }
}

cublasStatus_t not_device(const char *who, const char *what) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s is not device memory (an illegal address on a GPU)", who, what);
    fprintf(stderr, "hyp-sim: %s\n", msg);
    return CUBLAS_STATUS_EXECUTION_FAILED;
}

cublasStatus_t check_pointers(const char *who, const Mat &A, const Mat &B, const Mat &C, const Mat &D, int batch,
                              bool need_ab, bool read_c) {
    if (need_ab && !hyp_sim::is_device_range(A.p, span_bytes(A, batch))) return not_device(who, "A");
    if (need_ab && !hyp_sim::is_device_range(B.p, span_bytes(B, batch))) return not_device(who, "B");
    if (read_c && !hyp_sim::is_device_range(C.p, span_bytes(C, batch))) return not_device(who, "C");
    if (!hyp_sim::is_device_range(D.p, span_bytes(D, batch))) return not_device(who, "D");
    return CUBLAS_STATUS_SUCCESS;
}

// The classic API (cublasGemmStridedBatchedEx and the ones built on it).
cublasStatus_t gemm_classic(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, long long sA,
                            const void *B, cudaDataType Btype, int ldb, long long sB, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, long long sC, int batch, cublasComputeType_t compute,
                            const char *who) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T && ta != CUBLAS_OP_C) ||
        (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T && tb != CUBLAS_OP_C))
        return CUBLAS_STATUS_INVALID_VALUE;
    const bool tA = ta != CUBLAS_OP_N, tB = tb != CUBLAS_OP_N;   // real types: C is T
    const int ra = tA ? k : m, rb = tB ? n : k;
    if (lda < (ra > 1 ? ra : 1) || ldb < (rb > 1 ? rb : 1) || ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    if (Atype != Btype || !combo_supported(Atype, Ctype, compute)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    if (compute == CUBLAS_COMPUTE_32F && h->math == CUBLAS_TF32_TENSOR_OP_MATH && Atype == CUDA_R_32F)
        compute = CUBLAS_COMPUTE_32F_FAST_TF32;   // the handle's math mode allows TF32
    const float al = *(const float *)alpha, be = *(const float *)beta;
    Mat mA{A, Atype, lda, sA, (uint64_t)ra, (uint64_t)(tA ? m : k)};
    Mat mB{B, Btype, ldb, sB, (uint64_t)rb, (uint64_t)(tB ? k : n)};
    Mat mC{C, Ctype, ldc, sC, (uint64_t)m, (uint64_t)n};
    cublasStatus_t st = check_pointers(who, mA, mB, mC, mC, batch, k > 0 && al != 0.0f, be != 0.0f);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    gemm_run(tA, tB, m, n, k, al, mA, mB, be, mC, mC, batch, compute, false, NULL);
    return CUBLAS_STATUS_SUCCESS;
}

// ---- cuBLASLt: checks shared by the heuristic and the matmul.
cublasStatus_t lt_check(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                        cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D) {
    if (!d || !A || !B || !C || !D) return CUBLAS_STATUS_INVALID_VALUE;
    const cublasLtMatrixLayout_t all[4] = {A, B, C, D};
    for (auto l : all) {
        if (l->order != CUBLASLT_ORDER_COL) return CUBLAS_STATUS_NOT_SUPPORTED;
        if (l->ld < (int64_t)(l->rows > 1 ? l->rows : 1)) return CUBLAS_STATUS_INVALID_VALUE;
        if (l->batch < 1) return CUBLAS_STATUS_INVALID_VALUE;
    }
    const bool tA = d->ta != CUBLAS_OP_N, tB = d->tb != CUBLAS_OP_N;
    const uint64_t m = C->rows, n = C->cols;
    const uint64_t am = tA ? A->cols : A->rows, ak = tA ? A->rows : A->cols;
    const uint64_t bk = tB ? B->cols : B->rows, bn = tB ? B->rows : B->cols;
    if (am != m || bn != n || ak != bk || D->rows != m || D->cols != n) return CUBLAS_STATUS_INVALID_VALUE;
    if (A->batch != C->batch || B->batch != C->batch || D->batch != C->batch) return CUBLAS_STATUS_INVALID_VALUE;
    if (m > 0x7fffffffu || n > 0x7fffffffu || ak > 0x7fffffffu) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (A->type != B->type || C->type != D->type || !combo_supported(A->type, C->type, d->compute))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->scale != CUDA_R_32F || d->pointer_mode != 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    switch (d->epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT: case CUBLASLT_EPILOGUE_RELU: break;
    case CUBLASLT_EPILOGUE_BIAS: case CUBLASLT_EPILOGUE_RELU_BIAS:
        if (!d->bias) return CUBLAS_STATUS_INVALID_VALUE;
        break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

unsigned ptr_alignment(const void *p) {
    const uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a & (al - 1))) al >>= 1;
    return al;
}

template <class T>
cublasStatus_t set_attr(T *field, const void *buf, size_t bytes) {
    if (!buf || bytes != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(field, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

const char *cublasGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return cublasGetStatusName(s);
    }
}

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new cublasContext{(cudaStream_t)0, CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TENSOR_OP_MATH && mode != CUBLAS_PEDANTIC_MATH &&
        mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *mode) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *mode = h->math;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    return gemm_classic(h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B, CUDA_R_32F, ldb, 0, beta, C, CUDA_R_32F,
                        ldc, 0, 1, CUBLAS_COMPUTE_32F, "cublasSgemm");
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, long long sA,
                                         const float *B, int ldb, long long sB, const float *beta, float *C, int ldc,
                                         long long sC, int batch) {
    return gemm_classic(h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, sA, B, CUDA_R_32F, ldb, sB, beta, C,
                        CUDA_R_32F, ldc, sC, batch, CUBLAS_COMPUTE_32F, "cublasSgemmStridedBatched");
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    (void)algo;
    return gemm_classic(h, ta, tb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1,
                        compute, "cublasGemmEx");
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
                                          long long sA, const void *B, cudaDataType Btype, int ldb, long long sB,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc, long long sC,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    (void)algo;
    return gemm_classic(h, ta, tb, m, n, k, alpha, A, Atype, lda, sA, B, Btype, ldb, sB, beta, C, Ctype, ldc, sC,
                        batch, compute, "cublasGemmStridedBatchedEx");
}

// ---------------------------------------------------------------- cuBLASLt
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = new cublasLtContext{0}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType scale) {
    *d = new cublasLtMatmulDescOpaque_t{compute, scale, 0, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, NULL};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
                                              const void *buf, size_t bytes) {
    if (!d) return CUBLAS_STATUS_NOT_INITIALIZED;
    switch (a) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return set_attr(&d->compute, buf, bytes);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return set_attr(&d->scale, buf, bytes);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return set_attr(&d->pointer_mode, buf, bytes);
    case CUBLASLT_MATMUL_DESC_TRANSA: return set_attr(&d->ta, buf, bytes);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set_attr(&d->tb, buf, bytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set_attr(&d->epilogue, buf, bytes);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set_attr(&d->bias, buf, bytes);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    *l = new cublasLtMatrixLayoutOpaque_t{type, CUBLASLT_ORDER_COL, rows, cols, ld, 1, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a,
                                                const void *buf, size_t bytes) {
    if (!l) return CUBLAS_STATUS_NOT_INITIALIZED;
    switch (a) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: {
        uint32_t t;
        cublasStatus_t s = set_attr(&t, buf, bytes);
        if (s == CUBLAS_STATUS_SUCCESS) l->type = (cudaDataType)t;
        return s;
    }
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return set_attr(&l->order, buf, bytes);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return set_attr(&l->rows, buf, bytes);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return set_attr(&l->cols, buf, bytes);
    case CUBLASLT_MATRIX_LAYOUT_LD: return set_attr(&l->ld, buf, bytes);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set_attr(&l->batch, buf, bytes);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return set_attr(&l->stride, buf, bytes);
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new cublasLtMatmulPreferenceOpaque_t{0, {256, 256, 256, 256}};   // documented defaults
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void *buf,
                                                    size_t bytes) {
    if (!p) return CUBLAS_STATUS_NOT_INITIALIZED;
    switch (a) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: { uint32_t v; return set_attr(&v, buf, bytes); }
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return set_attr(&p->max_workspace, buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set_attr(&p->align[0], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set_attr(&p->align[1], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set_attr(&p->align[2], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set_attr(&p->align[3], buf, bytes);
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

// One algorithm, valid for pointers at least as aligned as the preference said they
// would be (cublasLtMatmul checks that promise).
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A,
                                              cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C,
                                              cublasLtMatrixLayout_t D, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t *results, int *found) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested < 1 || !results || !found || !pref) return CUBLAS_STATUS_INVALID_VALUE;
    *found = 0;
    cublasStatus_t st = lt_check(d, A, B, C, D);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = ALGO_MAGIC;
    for (int i = 0; i < 4; i++) results[0].algo.data[1 + i] = pref->align[i];
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspaceBytes, cudaStream_t stream) {
    (void)workspace; (void)workspaceBytes; (void)stream;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = lt_check(d, Adesc, Bdesc, Cdesc, Ddesc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (C == D && (Cdesc->ld != Ddesc->ld || Cdesc->stride != Ddesc->stride || Cdesc->type != Ddesc->type))
        return CUBLAS_STATUS_INVALID_VALUE;   // in place needs identical C and D layouts
    if (algo) {
        if (algo->data[0] != ALGO_MAGIC) return CUBLAS_STATUS_INVALID_VALUE;
        const void *ptrs[4] = {A, B, C, D};
        const char *names = "ABCD";
        for (int i = 0; i < 4; i++)
            if (ptr_alignment(ptrs[i]) < algo->data[1 + i]) {
                fprintf(stderr, "hyp-sim: cublasLtMatmul: %c is %u-byte aligned, the algorithm was chosen for %u\n",
                        names[i], ptr_alignment(ptrs[i]), (unsigned)algo->data[1 + i]);
                return CUBLAS_STATUS_INVALID_VALUE;
            }
    }
    const int batch = Cdesc->batch;
    const bool tA = d->ta != CUBLAS_OP_N, tB = d->tb != CUBLAS_OP_N;
    const int m = (int)Cdesc->rows, n = (int)Cdesc->cols, k = (int)(tA ? Adesc->rows : Adesc->cols);
    Mat mA{A, Adesc->type, Adesc->ld, Adesc->stride, Adesc->rows, Adesc->cols};
    Mat mB{B, Bdesc->type, Bdesc->ld, Bdesc->stride, Bdesc->rows, Bdesc->cols};
    Mat mC{C, Cdesc->type, Cdesc->ld, Cdesc->stride, Cdesc->rows, Cdesc->cols};
    Mat mD{D, Ddesc->type, Ddesc->ld, Ddesc->stride, Ddesc->rows, Ddesc->cols};
    const float al = *(const float *)alpha, be = *(const float *)beta;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    st = check_pointers("cublasLtMatmul", mA, mB, mC, mD, batch, k > 0 && al != 0.0f, be != 0.0f);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    const bool relu = d->epilogue == CUBLASLT_EPILOGUE_RELU || d->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
    const bool has_bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS || d->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
    if (has_bias && !hyp_sim::is_device_range(d->bias, (size_t)m * sizeof(float)))
        return not_device("cublasLtMatmul", "the bias");
    gemm_run(tA, tB, m, n, k, al, mA, mB, be, mC, mD, batch, d->compute, relu,
             has_bias ? (const float *)d->bias : NULL);
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
