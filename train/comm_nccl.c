// comm_nccl.c: the NCCL engine (CUDA buffers) and the GPU choice by local rank.
// The communicator is non-blocking (ncclConfig_t.blocking = 0) so that nothing waits
// without a deadline: init and every enqueue are settled by polling
// ncclCommGetAsyncError, and comm_wait polls the completion event, the async error and
// the clock; on an error or after timeout_s the communicator is aborted (ncclCommAbort).
// Collectives run on the communicator's own stream, ordered after the work already on
// the compute stream (the CUDA backend's legacy default stream) by an event, and
// comm_wait orders the compute stream after them (and waits on the host).
// NCCL's reductions are deterministic for a fixed topology and algorithm but not
// rank-ordered; NCCL_ALGO=Ring NCCL_PROTO=Simple pins them across runs.
#include "train/comm_internal.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(HYP_HAVE_NCCL)
#include <cuda_runtime.h>
#include <nccl.h>
#elif defined(HYP_HAVE_CUDA)
// The two CUDA runtime calls needed to pick a GPU, without its headers on the path.
int cudaGetDeviceCount(int *count);
int cudaSetDevice(int device);
#endif

int comm__cuda_select_device(Comm *c) {
#ifdef HYP_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != 0 || n <= 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        hyp_set_error("comm (%s) rank %d/%d: no CUDA device visible%s%s%s", comm_backend_name(c->backend),
                      c->rank, c->world, vis ? " (CUDA_VISIBLE_DEVICES=\"" : "", vis ? vis : "",
                      vis ? "\")" : "");
        return -1;
    }
    // One visible GPU (SLURM or a launcher setting CUDA_VISIBLE_DEVICES per rank): device 0,
    // whatever the local rank. Several: local rank modulo the count, which must give each
    // rank of the host its own GPU.
    if (c->backend == COMM_NCCL && n > 1 && c->local_world > n) {
        hyp_set_error("comm (nccl) rank %d/%d: %d ranks on this host share %d visible GPUs: NCCL needs "
                      "one GPU per rank (launch at most %d ranks per host, or give each rank one GPU "
                      "with CUDA_VISIBLE_DEVICES)", c->rank, c->world, c->local_world, n, n);
        return -1;
    }
    int d = n == 1 ? 0 : c->local_rank % n;
    if (cudaSetDevice(d) != 0) {
        hyp_set_error("comm (%s) rank %d/%d: cudaSetDevice(%d) failed", comm_backend_name(c->backend),
                      c->rank, c->world, d);
        return -1;
    }
    c->cuda_device = d;
    return 0;
#else
    hyp_set_error("comm (%s): a CUDA job, but this build has no CUDA backend", comm_backend_name(c->backend));
    return -1;
#endif
}

#ifdef HYP_HAVE_NCCL

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
    cudaEvent_t ready;   // compute stream reached the collective
    cudaEvent_t done;    // the communicator's stream finished what was enqueued
} Nccl;

bool comm__nccl_built(void) { return true; }

static Nccl *nc(Comm *c) { return (Nccl *)c->impl->nccl; }

static void pause_us(long us) {
    struct timespec ts = { 0, us * 1000L };
    nanosleep(&ts, NULL);
}

static int nccl_err(Comm *c, ncclResult_t r, const char *what) {
    const char *last = nc(c) && nc(c)->comm ? ncclGetLastError(nc(c)->comm) : NULL;
    return comm__fail(c, "%s: NCCL error: %s%s%s", what, ncclGetErrorString(r),
                      last && *last ? ": " : "", last && *last ? last : "");
}

static int cuda_err(Comm *c, cudaError_t e, const char *what) {
    return comm__fail(c, "%s: CUDA error: %s", what, cudaGetErrorString(e));
}

// Non-blocking communicator: poll until the last call is no longer in progress.
static int settle(Comm *c, ncclResult_t r, const char *what) {
    if (r != ncclSuccess && r != ncclInProgress) return nccl_err(c, r, what);
    double deadline = hyp_now() + c->timeout_s;
    for (;;) {
        ncclResult_t a = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(nc(c)->comm, &a);
        if (q != ncclSuccess) return nccl_err(c, q, what);
        if (a == ncclSuccess) return 0;
        if (a != ncclInProgress) return nccl_err(c, a, what);
        if (hyp_now() > deadline)
            return comm__fail(c, "%s did not complete within %.0f s (HYP_COMM_TIMEOUT): a peer rank is "
                              "stalled or dead", what, c->timeout_s);
        pause_us(50);
    }
}

int comm__nccl_init(Comm *c) {
    // Init failures are returned (comm_init gives NULL and prints nothing itself).
    bool er = c->errors_return;
    c->errors_return = true;
    Nccl *n = hyp_calloc(1, sizeof *n);
    c->impl->nccl = n;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int rc = 0;
    ncclResult_t r;
    if (c->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) rc = nccl_err(c, r, "ncclGetUniqueId");
    if (rc == 0 && c->world > 1) rc = c->impl->host->broadcast(c, &id, sizeof id, 0);
    if (rc == 0) {
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        r = ncclCommInitRankConfig(&n->comm, c->world, id, c->rank, &cfg);
        if (r != ncclSuccess && r != ncclInProgress) rc = nccl_err(c, r, "ncclCommInitRankConfig");
        else rc = settle(c, r, "NCCL init (ncclCommInitRankConfig)");
    }
    cudaError_t e;
    if (rc == 0 && (e = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking)) != cudaSuccess)
        rc = cuda_err(c, e, "cudaStreamCreate");
    if (rc == 0 && ((e = cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming)) != cudaSuccess ||
                    (e = cudaEventCreateWithFlags(&n->done, cudaEventDisableTiming)) != cudaSuccess))
        rc = cuda_err(c, e, "cudaEventCreate");
    c->errors_return = er;
    if (rc != 0) {
        c->impl->broken = false;
        comm__nccl_abort(c);
    }
    return rc;
}

// Order the communicator's stream after the compute stream.
static int begin(Comm *c, const char *what) {
    cudaError_t e = cudaEventRecord(nc(c)->ready, cudaStreamLegacy);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(nc(c)->stream, nc(c)->ready, 0);
    return e == cudaSuccess ? 0 : cuda_err(c, e, what);
}

static int end(Comm *c, ncclResult_t r, const char *what) {
    int rc = settle(c, r, what);
    if (rc == 0) c->impl->cuda_pending = true;
    return rc;
}

int comm__nccl_allreduce(Comm *c, float *buf, size_t n, CommOp op) {
    if (n == 0) return 0;
    if (begin(c, "allreduce")) return -1;
    return end(c, ncclAllReduce(buf, buf, n, ncclFloat32, op == COMM_MEAN ? ncclAvg : ncclSum,
                                nc(c)->comm, nc(c)->stream), "allreduce (ncclAllReduce)");
}

int comm__nccl_broadcast(Comm *c, void *buf, size_t bytes, int root) {
    if (bytes == 0) return 0;
    if (begin(c, "broadcast")) return -1;
    return end(c, ncclBroadcast(buf, buf, bytes, ncclUint8, root, nc(c)->comm, nc(c)->stream),
               "broadcast (ncclBroadcast)");
}

int comm__nccl_allgather(Comm *c, const void *send, size_t bytes, void *recv) {
    if (bytes == 0) return 0;
    if (begin(c, "allgather")) return -1;
    return end(c, ncclAllGather(send, recv, bytes, ncclUint8, nc(c)->comm, nc(c)->stream),
               "allgather (ncclAllGather)");
}

int comm__nccl_wait(Comm *c) {
    Nccl *n = nc(c);
    cudaError_t e = cudaEventRecord(n->done, n->stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(cudaStreamLegacy, n->done, 0);
    if (e != cudaSuccess) return cuda_err(c, e, "wait");
    double deadline = hyp_now() + c->timeout_s;
    long spins = 0;
    for (;;) {
        e = cudaEventQuery(n->done);
        if (e == cudaSuccess) break;
        if (e != cudaErrorNotReady) return cuda_err(c, e, "collective");
        ncclResult_t a = ncclSuccess;
        ncclCommGetAsyncError(n->comm, &a);
        if (a != ncclSuccess && a != ncclInProgress) return nccl_err(c, a, "collective");
        if (hyp_now() > deadline)
            return comm__fail(c, "collective did not complete within %.0f s (HYP_COMM_TIMEOUT): a peer "
                              "rank is stalled or dead", c->timeout_s);
        if (++spins > 1000) pause_us(20);
    }
    c->impl->cuda_pending = false;
    return 0;
}

void comm__nccl_abort(Comm *c) {
    Nccl *n = nc(c);
    if (!n) return;
    if (n->comm) ncclCommAbort(n->comm);
    if (n->ready) cudaEventDestroy(n->ready);
    if (n->done) cudaEventDestroy(n->done);
    if (n->stream) cudaStreamDestroy(n->stream);
    free(n);
    c->impl->nccl = NULL;
}

void comm__nccl_finalize(Comm *c) {
    Nccl *n = nc(c);
    if (!n) return;
    bool er = c->errors_return;
    c->errors_return = true;
    int rc = settle(c, ncclCommFinalize(n->comm), "shutdown (ncclCommFinalize)");
    c->errors_return = er;
    if (rc != 0) { comm__nccl_abort(c); return; }
    ncclCommDestroy(n->comm);
    n->comm = NULL;
    cudaEventDestroy(n->ready);
    cudaEventDestroy(n->done);
    cudaStreamDestroy(n->stream);
    free(n);
    c->impl->nccl = NULL;
}

#else  // ---------------------------------------------------------------- built without NCCL

bool comm__nccl_built(void) { return false; }
static int no_nccl(Comm *c) {
    return comm__fail(c, "this build has no NCCL (needs the CUDA toolkit with nccl.h and libnccl)");
}
int comm__nccl_init(Comm *c) {
    hyp_set_error("comm (nccl): this build has no NCCL (needs the CUDA backend and nccl.h/libnccl; "
                  "the Makefile enables it when scripts/probes/nccl.c compiles and links)");
    return -1;
}
int comm__nccl_allreduce(Comm *c, float *buf, size_t n, CommOp op) { return no_nccl(c); }
int comm__nccl_broadcast(Comm *c, void *buf, size_t bytes, int root) { return no_nccl(c); }
int comm__nccl_allgather(Comm *c, const void *send, size_t bytes, void *recv) { return no_nccl(c); }
int comm__nccl_wait(Comm *c) { return no_nccl(c); }
void comm__nccl_abort(Comm *c) {}
void comm__nccl_finalize(Comm *c) {}
#endif
